//! How switches use the platform's target rules (`atoll_core::rules`): rules are
//! written in the text form, compiled with the switch key as the bucketing salt,
//! and evaluated against the device's registered attributes.

use atoll_core::rules::{DeviceAttributes, DeviceContext, Env, Rule};
use atoll_protocol::switches::SampleDevice;

pub use atoll_core::rules::CompiledRule;

/// Parses and compiles `text` for the switch `key`; the error names the rule
/// engine's code and the column.
pub fn compile(text: &str, key: &str) -> Result<CompiledRule, String> {
    Rule::parse(text)
        .and_then(|rule| rule.compile(key))
        .map_err(|error| format!("{}: {error}", error.code))
}

/// A device prepared for evaluating many rules.
pub fn context(device: &SampleDevice) -> DeviceContext {
    DeviceContext::new(DeviceAttributes {
        device_id: device.device_id.clone(),
        user_id: device.user_id.clone(),
        app_version: device.app_version.clone(),
        platform: device.platform.map(|platform| platform.as_str().to_owned()),
        os: device.os.clone(),
        os_version: device.os_version.clone(),
        model: device.model.clone(),
        channel: device.channel.clone(),
        region: device.region.clone(),
        city: None,
        network: device.network.clone(),
        locale: device.locale.clone(),
    })
}

/// Whether the prepared device matches. Switches use no uploaded lists yet: a
/// rule naming a list sees it empty, as the rules define for a missing list.
pub fn matches(rule: &CompiledRule, device: &DeviceContext) -> bool {
    rule.matches(device, &Env::empty())
}
