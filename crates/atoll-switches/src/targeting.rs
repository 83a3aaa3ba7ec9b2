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
    DeviceContext::new(DeviceAttributes::from(device))
}

/// Whether the prepared device matches, with the app's uploaded lists.
pub fn matches(rule: &CompiledRule, device: &DeviceContext, env: &Env<'_>) -> bool {
    rule.matches(device, env)
}
