//! Switches (remote config): typed keys whose value a device gets from ordered,
//! targeted rules, published as numbered versions of an app's whole set.
//!
//! - Admin API: read the set in force, publish a changed set (whole, or one key at
//!   a time), preview the diff of a change before publishing it, list versions,
//!   roll back to an earlier one, and evaluate the set for a sample device.
//! - Device API: `GET /device/v1/config` answers the values for the calling device
//!   with an `ETag`; a request carrying that tag in `If-None-Match` gets `304`.
//!
//! Rules are written in the target-rule text form (`app_version >= 2.1 and
//! percent(5)`); the first rule that matches gives the value, else the default.

use crate::device::{wire_enum, Platform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits on an app's switches.
pub mod limits {
    /// Keys per app.
    pub const MAX_SWITCHES: usize = 2000;
    /// Targeted values per key.
    pub const MAX_RULES_PER_SWITCH: usize = 50;
    /// Bytes of a key.
    pub const MAX_KEY_BYTES: usize = 128;
    /// Bytes of one value as JSON (a default or a targeted value).
    pub const MAX_VALUE_BYTES: usize = 64 * 1024;
    /// Bytes of the whole set as JSON.
    pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
    /// Bytes of a description or a publish message.
    pub const MAX_TEXT_BYTES: usize = 1000;
    /// Versions kept per app; older ones are deleted when a new one is published.
    pub const MAX_VERSIONS: usize = 300;
}

wire_enum! {
    /// The type of a switch's values.
    SwitchType {
        /// `true` or `false`.
        Bool = "bool",
        /// A JSON number.
        Number = "number",
        /// A string.
        String = "string",
        /// Any JSON value.
        Json = "json",
    }
}

/// A value for the devices a rule selects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TargetedValue {
    /// The target rule, in text form (`platform = ios and percent(10)`).
    pub when: String,
    /// The value those devices get.
    pub value: serde_json::Value,
}

/// One remote-config key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// The key: letters, digits, `_`, `-` and `.`, starting with a letter.
    pub key: String,
    /// The type every value must have.
    #[serde(rename = "type")]
    pub value_type: SwitchType,
    /// What the switch is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The platforms that receive the key; empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// The value when no rule matches.
    pub default: serde_json::Value,
    /// Ordered targeted values: the first whose rule matches wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TargetedValue>,
}

/// The set of switches in force for an app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchSet {
    /// The version number; 0 before the first publish.
    pub version: u64,
    /// When it was published (Unix ms); 0 before the first publish.
    pub published_at: i64,
    /// Who published it.
    pub author: String,
    /// Why.
    pub message: String,
    /// The switches, ordered by key.
    pub switches: Vec<Switch>,
}

/// `PUT …/switches`: publish a whole new set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishSwitches {
    /// Refuse with `conflict` unless this is the version in force (optimistic
    /// concurrency between two editors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why (shown in the history).
    #[serde(default)]
    pub message: String,
    /// The complete new set.
    pub switches: Vec<Switch>,
}

/// `PUT …/switches/{key}`: add or replace one key, publishing a new version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutSwitch {
    /// As in [`PublishSwitches::expected_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why (shown in the history).
    #[serde(default)]
    pub message: String,
    /// The key's new definition (its `key` must match the path).
    pub switch: Switch,
}

/// `POST …/switches/rollback`: publish an earlier version's set again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackSwitches {
    /// The version whose set becomes current again.
    pub version: u64,
    /// As in [`PublishSwitches::expected_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// One changed key and its definition before and after.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedSwitch {
    /// The key.
    pub key: String,
    /// What changed: `type`, `description`, `platforms`, `default`, `rules`.
    pub fields: Vec<String>,
    /// The definition before.
    pub before: Switch,
    /// The definition after.
    pub after: Switch,
}

/// What a publish changes, key by key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchDiff {
    /// The version compared from.
    pub from_version: u64,
    /// New keys.
    pub added: Vec<Switch>,
    /// Deleted keys.
    pub removed: Vec<Switch>,
    /// Changed keys.
    pub changed: Vec<ChangedSwitch>,
}

impl SwitchDiff {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// One entry of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchVersion {
    /// The version number.
    pub version: u64,
    /// When (Unix ms).
    pub published_at: i64,
    /// Who.
    pub author: String,
    /// Why.
    pub message: String,
    /// Keys in the set.
    pub switches: usize,
    /// What changed from the version before.
    pub diff: SwitchDiff,
}

/// A device as the rules see it, for `POST …/switches/evaluate` (a preview of
/// what a given device would get). Unset fields are unknown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SampleDevice {
    /// The device id (used by percentages and device lists).
    pub device_id: String,
    /// The bound user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// App version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// OS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl From<&crate::admin::Device> for SampleDevice {
    /// A registered device as the rules see it.
    fn from(device: &crate::admin::Device) -> SampleDevice {
        SampleDevice {
            device_id: device.device_id.clone(),
            user_id: device.user_id.clone(),
            platform: device.platform,
            app_version: device.app_version.clone(),
            os_version: device.os_version.clone(),
            os: device.os.clone(),
            model: device.model.clone(),
            channel: device.channel.clone(),
            region: device.region.clone(),
            network: device.network.clone(),
            locale: device.locale.clone(),
        }
    }
}

/// `GET /device/v1/config`: the values for the calling device.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SwitchValues {
    /// The version of the set they were evaluated from.
    pub version: u64,
    /// Key → value, for every key of the device's platform.
    pub values: BTreeMap<String, serde_json::Value>,
}

impl SwitchType {
    /// Reads a value as a person types it: JSON for bool, number and JSON
    /// switches, the text itself for strings.
    pub fn read_value(self, text: &str) -> Result<serde_json::Value, String> {
        match self {
            SwitchType::String => Ok(serde_json::Value::String(text.to_owned())),
            _ => serde_json::from_str(text.trim())
                .map_err(|_| format!("'{}' is not a {self} value", text.trim())),
        }
    }

    /// The inverse of [`SwitchType::read_value`], for editing.
    pub fn write_value(self, value: &serde_json::Value) -> String {
        match (self, value) {
            (SwitchType::String, serde_json::Value::String(text)) => text.clone(),
            _ => value.to_string(),
        }
    }

    /// The type a typed value most likely has (`true` → bool, `2` → number,
    /// `{…}`/`[…]` → JSON, anything else → string).
    pub fn guess(text: &str) -> SwitchType {
        match serde_json::from_str::<serde_json::Value>(text.trim()) {
            Ok(serde_json::Value::Bool(_)) => SwitchType::Bool,
            Ok(serde_json::Value::Number(_)) => SwitchType::Number,
            Ok(serde_json::Value::Object(_) | serde_json::Value::Array(_)) => SwitchType::Json,
            _ => SwitchType::String,
        }
    }
}

impl TargetedValue {
    /// The separator of the one-line form `WHEN => VALUE`.
    pub const SEPARATOR: &'static str = "=>";

    /// Reads the one-line form `WHEN => VALUE` (the value per `value_type`).
    pub fn read_line(value_type: SwitchType, line: &str) -> Result<TargetedValue, String> {
        // Split at the first `=>`: rules never contain one, values (strings) may.
        let Some((when, value)) = line.split_once(Self::SEPARATOR) else {
            return Err(format!(
                "a targeted value is 'WHEN => VALUE', e.g. 'platform = ios => true'; got '{}'",
                line.trim()
            ));
        };
        Ok(TargetedValue {
            when: when.trim().to_owned(),
            value: value_type.read_value(value.trim())?,
        })
    }

    /// The one-line form, for editing.
    pub fn write_line(&self, value_type: SwitchType) -> String {
        format!(
            "{} {} {}",
            self.when,
            Self::SEPARATOR,
            value_type.write_value(&self.value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_lines_round_trip_through_their_text_forms() {
        assert_eq!(SwitchType::Bool.read_value(" true "), Ok(json!(true)));
        assert!(SwitchType::Number.read_value("ten").is_err());
        assert_eq!(SwitchType::String.read_value("a => b"), Ok(json!("a => b")));
        assert_eq!(SwitchType::guess("12.5"), SwitchType::Number);
        assert_eq!(SwitchType::guess("[1]"), SwitchType::Json);
        assert_eq!(SwitchType::guess("hello"), SwitchType::String);
        let line = TargetedValue::read_line(SwitchType::Json, "platform = ios => {\"a\": 1}");
        let line = line.unwrap();
        assert_eq!(line.when, "platform = ios");
        assert_eq!(line.value, json!({"a": 1}));
        let text = line.write_line(SwitchType::Json);
        assert_eq!(TargetedValue::read_line(SwitchType::Json, &text), Ok(line));
        assert!(TargetedValue::read_line(SwitchType::Bool, "platform = ios").is_err());
        let arrow = TargetedValue::read_line(SwitchType::String, "channel = x => a => b").unwrap();
        assert_eq!(arrow.value, json!("a => b"));
    }
}
