//! Event tracking on the wire: the batch a device posts to `POST /device/v1/events`,
//! the built-in event names, and the default limits both sides check.
//!
//! A batch is accepted or refused as a unit. Each event carries a client-generated
//! uuid, so a batch sent again after a lost response is stored once.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Built-in event: the app process started.
pub const LAUNCH: &str = "$launch";
/// Built-in event: the app came to the foreground (a session starts or resumes).
pub const FOREGROUND: &str = "$foreground";
/// Built-in event: the app went to the background; `duration_ms` is the time spent
/// in the foreground since the matching `$foreground`.
pub const BACKGROUND: &str = "$background";
/// Built-in event: a page was shown; `page`, `referrer` and `duration_ms` (the stay).
pub const PAGE_VIEW: &str = "$page_view";
/// Built-in event: a user signed in (the device is bound to `user_id`).
pub const LOGIN: &str = "$login";
/// Built-in event: the user signed out.
pub const LOGOUT: &str = "$logout";

/// Every built-in event name; names starting with `$` are reserved for these.
pub const BUILT_IN_EVENTS: &[&str] = &[LAUNCH, FOREGROUND, BACKGROUND, PAGE_VIEW, LOGIN, LOGOUT];

/// Default limits (DESIGN §6); the server's configuration may change them.
pub mod limits {
    /// Events per batch.
    pub const MAX_EVENTS_PER_BATCH: usize = 500;
    /// Custom attributes per event.
    pub const MAX_ATTRIBUTES: usize = 25;
    /// Characters in an event or attribute name.
    pub const MAX_NAME_CHARS: usize = 40;
    /// Characters in an attribute value, page, referrer or session id.
    pub const MAX_VALUE_CHARS: usize = 100;
    /// Decompressed bytes of one batch.
    pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
}

/// The body of `POST /device/v1/events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events, oldest first.
    pub events: Vec<TrackedEvent>,
    /// The network the device is on now (`wifi`, `4g`, ...), overriding the
    /// registered value for these events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// One tracked event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrackedEvent {
    /// A client-generated UUID (any version, hyphenated text); a repeat is stored once.
    pub uuid: String,
    /// The event name: a built-in `$name` or the app's own (letters, digits, `_`, `.`, `-`).
    pub event_id: String,
    /// When it happened on the device, in milliseconds since the Unix epoch.
    pub time: i64,
    /// The session it belongs to (the SDK starts a new one after 30 min in background).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The page shown when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// For `$page_view`: the page before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// For `$page_view` (stay) and `$background` (foreground time): milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// For `$login`: the account that signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Custom attributes: text, number or boolean values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, serde_json::Value>))]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// A custom attribute value. Numbers keep their JSON form; everything is stored as
/// text with the type the app's registry declares.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `"red"`.
    Text(String),
    /// `3`, `-1`, `2.5`.
    Number(f64),
    /// `true`.
    Bool(bool),
}

impl AttributeValue {
    /// The value as stored: text as is, integers without a fraction, booleans as
    /// `true`/`false`.
    pub fn to_text(&self) -> String {
        match self {
            AttributeValue::Text(text) => text.clone(),
            other => other.clone().into_text(),
        }
    }

    /// The value as stored, moving the text of a text value.
    pub fn into_text(self) -> String {
        match self {
            AttributeValue::Text(text) => text,
            AttributeValue::Number(number) => format_number(number),
            AttributeValue::Bool(flag) => flag.to_string(),
        }
    }

    /// The type name used by the registry: `string`, `number` or `boolean`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::Text(_) => "string",
            AttributeValue::Number(_) => "number",
            AttributeValue::Bool(_) => "boolean",
        }
    }
}

fn format_number(number: f64) -> String {
    // Integral values print without ".0" so that `3` and `3.0` group together.
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

impl From<&str> for AttributeValue {
    fn from(text: &str) -> Self {
        AttributeValue::Text(text.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(text: String) -> Self {
        AttributeValue::Text(text)
    }
}

impl From<f64> for AttributeValue {
    fn from(number: f64) -> Self {
        AttributeValue::Number(number)
    }
}

impl From<i64> for AttributeValue {
    fn from(number: i64) -> Self {
        AttributeValue::Number(number as f64)
    }
}

impl From<bool> for AttributeValue {
    fn from(flag: bool) -> Self {
        AttributeValue::Bool(flag)
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::Text(text) => serializer.serialize_str(text),
            AttributeValue::Number(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
                serializer.serialize_i64(*number as i64)
            }
            AttributeValue::Number(number) => serializer.serialize_f64(*number),
            AttributeValue::Bool(flag) => serializer.serialize_bool(*flag),
        }
    }
}

/// A hand-written visitor rather than `#[serde(untagged)]`: untagged enums buffer
/// every value before trying each variant, which is measurably slower on the
/// ingest path.
struct AttributeValueVisitor;

impl Visitor<'_> for AttributeValueVisitor {
    type Value = AttributeValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string, number or boolean")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Number(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Number(value as f64))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Number(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Text(value))
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AttributeValueVisitor)
    }
}

/// The answer to an accepted batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBatchResponse {
    /// Events stored by this request.
    pub accepted: u32,
    /// Events whose uuid was already stored (a retried batch); not stored again.
    pub duplicates: u32,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub server_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_keep_their_json_type() {
        let event: TrackedEvent = serde_json::from_str(
            r#"{"uuid":"u","event_id":"buy","time":1,"attributes":{"a":"x","b":3,"c":2.5,"d":true,"e":-4}}"#,
        )
        .unwrap();
        assert_eq!(event.attributes["a"], AttributeValue::Text("x".into()));
        assert_eq!(event.attributes["b"].to_text(), "3");
        assert_eq!(event.attributes["c"].to_text(), "2.5");
        assert_eq!(event.attributes["d"].to_text(), "true");
        assert_eq!(event.attributes["e"].to_text(), "-4");
        let back = serde_json::to_string(&event).unwrap();
        assert!(back.contains(r#""b":3"#), "{back}");
        let error = serde_json::from_str::<TrackedEvent>(
            r#"{"uuid":"u","event_id":"buy","time":1,"attributes":{"a":[1]}}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("string, number or boolean"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<EventBatch>(r#"{"events":[],"extra":1}"#).is_err());
    }
}
