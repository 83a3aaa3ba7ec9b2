//! Rule sets: an ordered list of (rule, value) and a default. The first rule that
//! matches gives the value; when none does, the default. This is the shape of a
//! switch's targeted values, a release's audiences and an experiment's entry.
//!
//! JSON form: `{"rules": [{"when": RULE, "value": V}, ...], "default": V}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ast::Rule;
use super::context::{DeviceContext, Env};
use super::error::{Location, RuleError, RuleErrorCode};
use super::eval::{compile, Node};
use super::MAX_RULES;
use crate::bucketing::BucketSalt;

/// One targeted value: when `when` matches, the answer is `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetedValue<T> {
    /// The rule.
    pub when: Rule,
    /// The value it selects.
    pub value: T,
}

/// Ordered targeted values with a default; first match wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet<T> {
    /// In priority order.
    pub rules: Vec<TargetedValue<T>>,
    /// The value when no rule matches.
    pub default: T,
}

fn prefixed(error: RuleError, prefix: &str) -> RuleError {
    let location = match error.location {
        Some(Location::Path(path)) if path == "/" => Location::Path(prefix.to_string()),
        Some(Location::Path(path)) => Location::Path(format!("{prefix}{path}")),
        other => other.unwrap_or_else(|| Location::Path(prefix.to_string())),
    };
    RuleError {
        location: Some(location),
        ..error
    }
}

impl<T> RuleSet<T> {
    /// No rules: everyone gets `default`.
    pub fn new(default: T) -> RuleSet<T> {
        RuleSet {
            rules: Vec::new(),
            default,
        }
    }

    /// Checks the count and every rule; errors are located by JSON pointer
    /// (`/rules/2/when/and/0/value`).
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.rules.len() > MAX_RULES {
            return Err(RuleError::new(
                RuleErrorCode::TooManyRules,
                format!("a rule set has at most {MAX_RULES} rules"),
            )
            .at_path("/rules"));
        }
        for (index, targeted) in self.rules.iter().enumerate() {
            targeted
                .when
                .validate()
                .map_err(|error| prefixed(error, &format!("/rules/{index}/when")))?;
        }
        Ok(())
    }

    /// Validates and compiles every rule under `salt`.
    pub fn compile(&self, salt: &str) -> Result<CompiledRuleSet<T>, RuleError>
    where
        T: Clone,
    {
        self.validate()?;
        Ok(CompiledRuleSet {
            rules: self
                .rules
                .iter()
                .map(|targeted| (compile(&targeted.when), targeted.value.clone()))
                .collect(),
            default: self.default.clone(),
            salt: BucketSalt::new(salt),
        })
    }

    /// Reads and validates the JSON form, with a stable code and a JSON pointer
    /// for every error (serde's derived reader, also available, only has text).
    pub fn from_json(value: &Value) -> Result<RuleSet<T>, RuleError>
    where
        T: DeserializeOwned,
    {
        let shape = |message: &str, path: &str| {
            RuleError::new(RuleErrorCode::InvalidJson, message).at_path(path)
        };
        let unknown = |key: &str, path: &str, known: &str| {
            RuleError::new(
                RuleErrorCode::UnknownField,
                format!("unknown key `{key}`; expected {known}"),
            )
            .at_path(&format!("{path}/{key}"))
        };
        let read_value = |value: &Value, path: &str| {
            serde_json::from_value::<T>(value.clone())
                .map_err(|error| shape(&error.to_string(), path))
        };
        let Value::Object(object) = value else {
            return Err(shape(
                "a rule set is an object with `rules` and `default`",
                "/",
            ));
        };
        if let Some(key) = object
            .keys()
            .find(|key| !["rules", "default"].contains(&key.as_str()))
        {
            return Err(unknown(key, "", "`rules` and `default`"));
        }
        let default = read_value(
            object
                .get("default")
                .ok_or_else(|| shape("missing `default`", "/default"))?,
            "/default",
        )?;
        let items = match object.get("rules") {
            Some(Value::Array(items)) => items.as_slice(),
            None => &[],
            Some(_) => return Err(shape("`rules` is an array", "/rules")),
        };
        if items.len() > MAX_RULES {
            return Err(RuleError::new(
                RuleErrorCode::TooManyRules,
                format!("a rule set has at most {MAX_RULES} rules"),
            )
            .at_path("/rules"));
        }
        let mut rules = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("/rules/{index}");
            let Value::Object(entry) = item else {
                return Err(shape(
                    "a rule set entry is an object with `when` and `value`",
                    &path,
                ));
            };
            if let Some(key) = entry
                .keys()
                .find(|key| !["when", "value"].contains(&key.as_str()))
            {
                return Err(unknown(key, &path, "`when` and `value`"));
            }
            let when = entry
                .get("when")
                .ok_or_else(|| shape("missing `when`", &format!("{path}/when")))?;
            let when =
                Rule::from_json(when).map_err(|error| prefixed(error, &format!("{path}/when")))?;
            let value = entry
                .get("value")
                .ok_or_else(|| shape("missing `value`", &format!("{path}/value")))?;
            let value = read_value(value, &format!("{path}/value"))?;
            rules.push(TargetedValue { when, value });
        }
        Ok(RuleSet { rules, default })
    }
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct CompiledRuleSet<T> {
    rules: Vec<(Node, T)>,
    default: T,
    salt: BucketSalt,
}

impl<T> CompiledRuleSet<T> {
    /// The index of the first rule that matches, if any.
    pub fn first_match(&self, device: &DeviceContext, env: &Env<'_>) -> Option<usize> {
        self.rules
            .iter()
            .position(|(rule, _)| rule.matches(device, env, &self.salt))
    }

    /// The value of the first rule that matches, or the default.
    pub fn evaluate(&self, device: &DeviceContext, env: &Env<'_>) -> &T {
        match self.first_match(device, env) {
            Some(index) => &self.rules[index].1,
            None => &self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DeviceAttributes;
    use serde_json::json;

    #[test]
    fn first_match_wins() {
        let set: RuleSet<String> = RuleSet::from_json(&json!({
            "rules": [
                {"when": {"field": "platform", "op": "=", "value": "ios"}, "value": "blue"},
                {"when": {"field": "channel", "op": "=", "value": "play"}, "value": "green"},
                {"when": {"percent": 100}, "value": "red"}
            ],
            "default": "grey"
        }))
        .unwrap();
        let compiled = set.compile("sw_colour").unwrap();
        let env = Env::empty();
        let device = |platform: &str, channel: &str| {
            DeviceContext::new(DeviceAttributes {
                device_id: "d".into(),
                platform: Some(platform.into()),
                channel: Some(channel.into()),
                ..DeviceAttributes::default()
            })
        };
        assert_eq!(compiled.evaluate(&device("ios", "play"), &env), "blue");
        assert_eq!(compiled.evaluate(&device("android", "PLAY"), &env), "green");
        assert_eq!(compiled.first_match(&device("android", "x"), &env), Some(2));
        let none = RuleSet::new("grey".to_string()).compile("s").unwrap();
        assert_eq!(none.evaluate(&device("ios", "x"), &env), "grey");
        let round_trip: RuleSet<String> =
            serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
        assert_eq!(round_trip, set);
    }

    #[test]
    fn errors_are_located_in_the_set() {
        for (value, code, path) in [
            (json!({"rules": []}), RuleErrorCode::InvalidJson, "/default"),
            (
                json!({"rules": [], "default": 1, "x": 2}),
                RuleErrorCode::UnknownField,
                "/x",
            ),
            (
                json!({"rules": [{"when": {"percent": 5}}], "default": 1}),
                RuleErrorCode::InvalidJson,
                "/rules/0/value",
            ),
            (
                json!({"rules": [{"when": {"percent": 5}, "value": "a"}], "default": 1}),
                RuleErrorCode::InvalidJson,
                "/rules/0/value",
            ),
            (
                json!({"rules": [{"when": {"percent": 5}, "value": 1, "then": 2}], "default": 1}),
                RuleErrorCode::UnknownField,
                "/rules/0/then",
            ),
            (
                json!({"rules": [{"when": {"percent": 5}, "value": 1}, {"when": {"or": [{"percent": 5}, {"percent": 500}]}, "value": 2}], "default": 1}),
                RuleErrorCode::InvalidPercentage,
                "/rules/1/when/or/1/percent",
            ),
            (
                json!({"rules": [{"when": {"and": [{"percent": 5}]}, "value": 1}], "default": 1}),
                RuleErrorCode::GroupTooSmall,
                "/rules/0/when",
            ),
        ] {
            let error = RuleSet::<u32>::from_json(&value).expect_err(&value.to_string());
            assert_eq!(error.code, code, "{value}: {error}");
            assert_eq!(
                error.location,
                Some(Location::Path(path.into())),
                "{value}: {error}"
            );
        }
        let many: Vec<Value> = (0..=MAX_RULES)
            .map(|_| json!({"when": {"percent": 5}, "value": 1}))
            .collect();
        let error = RuleSet::<u32>::from_json(&json!({"rules": many, "default": 0})).unwrap_err();
        assert_eq!(error.code, RuleErrorCode::TooManyRules);
    }
}
