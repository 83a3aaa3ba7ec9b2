//! An app's set of switches as a document: validation, canonical order, and the
//! key-by-key diff between two sets.

use crate::targeting;
use crate::{Error, Result};
use atoll_protocol::switches::{
    limits, ChangedSwitch, Switch, SwitchDiff, SwitchType, TargetedValue,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Checks one switch; `Err` names the key and what is wrong.
pub fn validate_switch(switch: &Switch) -> Result<()> {
    let key = &switch.key;
    let invalid = |detail: String| Error::Invalid(format!("switch '{key}': {detail}"));
    if !valid_key(key) {
        return Err(Error::Invalid(format!(
            "switch key '{key}' is not valid: 1 to {} bytes of letters, digits, '_', '-' and '.', starting with a letter",
            limits::MAX_KEY_BYTES
        )));
    }
    if switch.description.len() > limits::MAX_TEXT_BYTES {
        return Err(invalid(format!(
            "the description is over {} bytes",
            limits::MAX_TEXT_BYTES
        )));
    }
    let mut platforms = HashSet::new();
    if !switch
        .platforms
        .iter()
        .all(|platform| platforms.insert(*platform))
    {
        return Err(invalid("a platform is listed twice".into()));
    }
    check_value(switch.value_type, &switch.default)
        .map_err(|detail| invalid(format!("default: {detail}")))?;
    if switch.rules.len() > limits::MAX_RULES_PER_SWITCH {
        return Err(invalid(format!(
            "{} targeted values (at most {})",
            switch.rules.len(),
            limits::MAX_RULES_PER_SWITCH
        )));
    }
    for (index, TargetedValue { when, value }) in switch.rules.iter().enumerate() {
        let position = index + 1;
        check_value(switch.value_type, value)
            .map_err(|detail| invalid(format!("targeted value {position}: {detail}")))?;
        targeting::compile(when, key).map_err(|error| Error::InvalidRule {
            key: key.clone(),
            position,
            detail: error,
        })?;
    }
    Ok(())
}

/// Checks a whole set: every switch, unique keys, the caps. Returns it sorted by
/// key (the stored and diffed order).
pub fn validate_set(mut switches: Vec<Switch>) -> Result<Vec<Switch>> {
    if switches.len() > limits::MAX_SWITCHES {
        return Err(Error::Invalid(format!(
            "{} switches (at most {} per app)",
            switches.len(),
            limits::MAX_SWITCHES
        )));
    }
    for switch in &switches {
        validate_switch(switch)?;
    }
    switches.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(pair) = switches.windows(2).find(|pair| pair[0].key == pair[1].key) {
        return Err(Error::Invalid(format!(
            "switch '{}' is defined twice",
            pair[0].key
        )));
    }
    let size = serde_json::to_vec(&switches)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > limits::MAX_DOCUMENT_BYTES {
        return Err(Error::Invalid(format!(
            "the switches take {size} bytes as JSON (at most {})",
            limits::MAX_DOCUMENT_BYTES
        )));
    }
    Ok(switches)
}

fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    key.len() <= limits::MAX_KEY_BYTES
        && bytes
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

fn check_value(value_type: SwitchType, value: &Value) -> std::result::Result<(), String> {
    let fits = match value_type {
        SwitchType::Bool => value.is_boolean(),
        SwitchType::Number => value.is_number(),
        SwitchType::String => value.is_string(),
        SwitchType::Json => true,
    };
    if !fits {
        return Err(format!("{value} is not a {value_type}"));
    }
    let size = serde_json::to_vec(value)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > limits::MAX_VALUE_BYTES {
        return Err(format!(
            "the value takes {size} bytes (at most {})",
            limits::MAX_VALUE_BYTES
        ));
    }
    Ok(())
}

/// The fields of a switch that differ between two definitions of one key.
fn changed_fields(before: &Switch, after: &Switch) -> Vec<String> {
    let mut fields = Vec::new();
    if before.value_type != after.value_type {
        fields.push("type");
    }
    if before.description != after.description {
        fields.push("description");
    }
    if before.platforms != after.platforms {
        fields.push("platforms");
    }
    if before.default != after.default {
        fields.push("default");
    }
    if before.rules != after.rules {
        fields.push("rules");
    }
    fields.into_iter().map(str::to_owned).collect()
}

/// What changes from `before` (version `from_version`) to `after`.
pub fn diff(from_version: u64, before: &[Switch], after: &[Switch]) -> SwitchDiff {
    let old: BTreeMap<&str, &Switch> = before.iter().map(|s| (s.key.as_str(), s)).collect();
    let new: BTreeMap<&str, &Switch> = after.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut diff = SwitchDiff {
        from_version,
        ..SwitchDiff::default()
    };
    for (key, switch) in &new {
        match old.get(key) {
            None => diff.added.push((*switch).clone()),
            Some(previous) => {
                let fields = changed_fields(previous, switch);
                if !fields.is_empty() {
                    diff.changed.push(ChangedSwitch {
                        key: (*key).to_owned(),
                        fields,
                        before: (*previous).clone(),
                        after: (*switch).clone(),
                    });
                }
            }
        }
    }
    for (key, switch) in &old {
        if !new.contains_key(key) {
            diff.removed.push((*switch).clone());
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn switch(key: &str, value_type: SwitchType, default: Value) -> Switch {
        Switch {
            key: key.into(),
            value_type,
            description: String::new(),
            platforms: vec![],
            default,
            rules: vec![],
        }
    }

    #[test]
    fn values_must_have_the_switch_type() {
        assert!(validate_switch(&switch("a", SwitchType::Bool, json!(true))).is_ok());
        assert!(validate_switch(&switch("a", SwitchType::Bool, json!(1))).is_err());
        assert!(validate_switch(&switch("a", SwitchType::Number, json!(1.5))).is_ok());
        assert!(validate_switch(&switch("a", SwitchType::String, json!(2))).is_err());
        assert!(validate_switch(&switch("a", SwitchType::Json, json!({"x": [1]}))).is_ok());
        let mut targeted = switch("a", SwitchType::Bool, json!(false));
        targeted.rules.push(TargetedValue {
            when: "platform = ios".into(),
            value: json!("yes"),
        });
        let error = validate_switch(&targeted).unwrap_err().to_string();
        assert!(error.contains("targeted value 1"), "{error}");
    }

    #[test]
    fn keys_are_checked_and_unique() {
        for bad in ["", "1abc", "a b", "a/b", &"k".repeat(129)] {
            assert!(
                validate_switch(&switch(bad, SwitchType::Bool, json!(true))).is_err(),
                "{bad}"
            );
        }
        for good in ["a", "new_checkout.enabled", "A-1"] {
            assert!(
                validate_switch(&switch(good, SwitchType::Bool, json!(true))).is_ok(),
                "{good}"
            );
        }
        let twice = vec![
            switch("b", SwitchType::Bool, json!(true)),
            switch("b", SwitchType::Bool, json!(false)),
        ];
        assert!(validate_set(twice).is_err());
        let sorted = validate_set(vec![
            switch("b", SwitchType::Bool, json!(true)),
            switch("a", SwitchType::Bool, json!(false)),
        ])
        .unwrap();
        assert_eq!(sorted[0].key, "a");
    }

    #[test]
    fn a_bad_rule_is_reported_with_its_key_and_position() {
        let mut targeted = switch("checkout", SwitchType::Bool, json!(false));
        targeted.rules.push(TargetedValue {
            when: "platform = ios".into(),
            value: json!(true),
        });
        targeted.rules.push(TargetedValue {
            when: "app_version >= ".into(),
            value: json!(true),
        });
        match validate_switch(&targeted).unwrap_err() {
            Error::InvalidRule { key, position, .. } => {
                assert_eq!((key.as_str(), position), ("checkout", 2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_diff_lists_added_removed_and_changed_keys_with_fields() {
        let before = vec![
            switch("a", SwitchType::Bool, json!(true)),
            switch("b", SwitchType::Number, json!(1)),
            switch("c", SwitchType::String, json!("x")),
        ];
        let mut changed = switch("b", SwitchType::Number, json!(2));
        changed.description = "now two".into();
        let after = vec![
            switch("a", SwitchType::Bool, json!(true)),
            changed,
            switch("d", SwitchType::Json, json!(null)),
        ];
        let diff = diff(7, &before, &after);
        assert_eq!(diff.from_version, 7);
        assert_eq!(diff.added.iter().map(|s| &s.key).collect::<Vec<_>>(), ["d"]);
        assert_eq!(
            diff.removed.iter().map(|s| &s.key).collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(diff.changed.len(), 1);
        assert_eq!(diff.changed[0].fields, ["description", "default"]);
        assert!(super::diff(1, &after, &after).is_empty());
    }
}
