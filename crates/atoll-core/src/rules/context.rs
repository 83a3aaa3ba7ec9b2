//! What a rule is evaluated against: the device ([`DeviceContext`]), uploaded id
//! lists ([`Lists`]) and segments ([`SegmentMembership`]).
//!
//! A [`DeviceContext`] is prepared once per request from plain
//! [`DeviceAttributes`]: versions are parsed and text is lower-cased there, so that
//! evaluating many rules against one device repeats neither.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ast::{check_name, Field};
use super::error::{RuleError, RuleErrorCode};
use super::version::Version;
use super::MAX_LIST_IDS;

/// What a device says about itself, as plain strings (the SDK's register body, the
/// device registry). Empty strings count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAttributes {
    /// The device id (always present).
    pub device_id: String,
    /// The signed-in user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The app's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The platform (`android`, `ios`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The OS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The device model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The distribution channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The network type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Text fields in slot order (see [`text_slot`]).
pub(crate) const TEXT_FIELDS: usize = 8;

/// Where a text field lives in [`DeviceContext`]; `None` for versions and ids.
pub(crate) fn text_slot(field: Field) -> Option<usize> {
    Some(match field {
        Field::Platform => 0,
        Field::Os => 1,
        Field::Model => 2,
        Field::Channel => 3,
        Field::Region => 4,
        Field::City => 5,
        Field::Network => 6,
        Field::Locale => 7,
        _ => return None,
    })
}

/// Case folding for text fields, applied to device values and rule values alike.
/// Unicode lower-casing (`str::to_lowercase`): `iOS`, `IOS` and `ios` are one value.
pub(crate) fn fold(text: &str) -> Box<str> {
    if text
        .bytes()
        .any(|byte| byte.is_ascii_uppercase() || !byte.is_ascii())
    {
        text.to_lowercase().into()
    } else {
        text.into()
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|text| !text.is_empty())
}

/// A device prepared for evaluation.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    attributes: DeviceAttributes,
    app_version: Option<Version>,
    os_version: Option<Version>,
    text: [Option<Box<str>>; TEXT_FIELDS],
}

impl DeviceContext {
    /// Prepares `attributes`. A version that does not parse counts as unknown.
    pub fn new(attributes: DeviceAttributes) -> DeviceContext {
        let version = |value: &Option<String>| {
            present(value).and_then(|text| Version::parse(text.trim()).ok())
        };
        let text = |value: &Option<String>| present(value).map(fold);
        DeviceContext {
            app_version: version(&attributes.app_version),
            os_version: version(&attributes.os_version),
            text: [
                text(&attributes.platform),
                text(&attributes.os),
                text(&attributes.model),
                text(&attributes.channel),
                text(&attributes.region),
                text(&attributes.city),
                text(&attributes.network),
                text(&attributes.locale),
            ],
            attributes,
        }
    }

    /// The attributes as given.
    pub fn attributes(&self) -> &DeviceAttributes {
        &self.attributes
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.attributes.device_id
    }

    /// The user id, if a user is signed in.
    pub fn user_id(&self) -> Option<&str> {
        present(&self.attributes.user_id)
    }

    /// The parsed app version, if known and well-formed.
    pub fn app_version(&self) -> Option<&Version> {
        self.app_version.as_ref()
    }

    /// The parsed OS version, if known and well-formed.
    pub fn os_version(&self) -> Option<&Version> {
        self.os_version.as_ref()
    }

    #[inline]
    pub(crate) fn text(&self, slot: usize) -> Option<&str> {
        self.text[slot].as_deref()
    }

    #[inline]
    pub(crate) fn version(&self, field: Field) -> Option<&Version> {
        match field {
            Field::AppVersion => self.app_version.as_ref(),
            _ => self.os_version.as_ref(),
        }
    }
}

impl From<DeviceAttributes> for DeviceContext {
    fn from(attributes: DeviceAttributes) -> DeviceContext {
        DeviceContext::new(attributes)
    }
}

impl From<&atoll_protocol::switches::SampleDevice> for DeviceAttributes {
    /// A device described on the wire (a registered device, or a sample for a
    /// preview) as rules see it.
    fn from(device: &atoll_protocol::switches::SampleDevice) -> DeviceAttributes {
        DeviceAttributes {
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
        }
    }
}

/// Uploaded id lists (allow-lists of devices or users), looked up by list name.
/// Ids compare exactly. A list that does not exist contains nothing.
pub trait Lists {
    /// Whether list `list` contains `id`.
    fn contains(&self, list: &str, id: &str) -> bool;
}

/// Segment membership, answered by whoever computes segments (analytics). The
/// rule engine only asks; how membership is decided is the implementor's.
pub trait SegmentMembership {
    /// Whether the device (or its user) is in `segment`.
    fn is_member(&self, segment: &str, device: &DeviceContext) -> bool;
}

/// No lists: every list is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLists;

impl Lists for NoLists {
    fn contains(&self, _list: &str, _id: &str) -> bool {
        false
    }
}

/// No segments: nobody is in any.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSegments;

impl SegmentMembership for NoSegments {
    fn is_member(&self, _segment: &str, _device: &DeviceContext) -> bool {
        false
    }
}

/// Lists held in memory, each a hash set of at most [`MAX_LIST_IDS`] ids.
#[derive(Debug, Clone, Default)]
pub struct MemoryLists {
    lists: HashMap<String, HashSet<String>>,
}

impl MemoryLists {
    /// No lists yet.
    pub fn new() -> MemoryLists {
        MemoryLists::default()
    }

    /// Creates or replaces list `name`. Duplicates count once. Refuses a list with
    /// more than [`MAX_LIST_IDS`] distinct ids (`rule_list_too_large`) or a bad
    /// name, and then leaves any previous list of that name as it was.
    pub fn insert<I, S>(&mut self, name: &str, ids: I) -> Result<(), RuleError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        check_name("list", name)?;
        let mut set = HashSet::new();
        for id in ids {
            set.insert(id.into());
            if set.len() > MAX_LIST_IDS {
                return Err(RuleError::new(
                    RuleErrorCode::ListTooLarge,
                    format!(
                        "list `{name}` has more than {MAX_LIST_IDS} ids; split it or target a segment instead"
                    ),
                ));
            }
        }
        self.lists.insert(name.to_string(), set);
        Ok(())
    }

    /// Removes list `name`; whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        self.lists.remove(name).is_some()
    }

    /// How many ids list `name` holds, if it exists.
    pub fn len_of(&self, name: &str) -> Option<usize> {
        self.lists.get(name).map(HashSet::len)
    }
}

impl Lists for MemoryLists {
    fn contains(&self, list: &str, id: &str) -> bool {
        self.lists.get(list).is_some_and(|ids| ids.contains(id))
    }
}

/// The lists and segments a rule may consult besides the device itself.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Uploaded id lists.
    pub lists: &'a dyn Lists,
    /// Segment membership.
    pub segments: &'a dyn SegmentMembership,
}

impl<'a> Env<'a> {
    /// An environment with these lists and segments.
    pub fn new(lists: &'a dyn Lists, segments: &'a dyn SegmentMembership) -> Env<'a> {
        Env { lists, segments }
    }
}

impl Env<'static> {
    /// No lists and no segments.
    pub fn empty() -> Env<'static> {
        Env {
            lists: &NoLists,
            segments: &NoSegments,
        }
    }
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparation_folds_case_and_parses_versions() {
        let context = DeviceContext::new(DeviceAttributes {
            device_id: "Dev-1".into(),
            user_id: Some(String::new()),
            app_version: Some(" 2.1.0 ".into()),
            os_version: Some("fourteen".into()),
            platform: Some("iOS".into()),
            city: Some("MÜNCHEN".into()),
            channel: Some(String::new()),
            ..DeviceAttributes::default()
        });
        assert_eq!(context.device_id(), "Dev-1");
        assert_eq!(context.user_id(), None);
        assert_eq!(
            context.app_version().map(ToString::to_string).as_deref(),
            Some("2.1.0")
        );
        assert!(context.os_version().is_none());
        assert_eq!(
            context.text(text_slot(Field::Platform).unwrap()),
            Some("ios")
        );
        assert_eq!(
            context.text(text_slot(Field::City).unwrap()),
            Some("münchen")
        );
        assert_eq!(context.text(text_slot(Field::Channel).unwrap()), None);
    }

    #[test]
    fn memory_lists_are_capped() {
        let mut lists = MemoryLists::new();
        lists.insert("beta", ["u1", "u2", "u2"]).unwrap();
        assert_eq!(lists.len_of("beta"), Some(2));
        assert!(lists.contains("beta", "u1"));
        assert!(!lists.contains("beta", "U1"), "ids are case-sensitive");
        assert!(!lists.contains("other", "u1"));
        lists
            .insert("full", (0..MAX_LIST_IDS).map(|n| n.to_string()))
            .unwrap();
        let error = lists
            .insert("beta", (0..=MAX_LIST_IDS).map(|n| n.to_string()))
            .unwrap_err();
        assert_eq!(error.code, RuleErrorCode::ListTooLarge);
        assert_eq!(
            lists.len_of("beta"),
            Some(2),
            "a refused upload changes nothing"
        );
        assert_eq!(
            lists.insert("bad name", ["x"]).unwrap_err().code,
            RuleErrorCode::InvalidValue
        );
        assert!(lists.remove("beta"));
        assert!(!lists.contains("beta", "u1"));
    }
}
