//! The JSON form: what the API accepts and stores. One object per node:
//!
//! ```json
//! {"or": [
//!   {"and": [
//!     {"field": "app_version", "op": ">=", "value": "2.1"},
//!     {"field": "platform", "op": "in", "values": ["android", "ios"]},
//!     {"percent": 5}
//!   ]},
//!   {"field": "user", "op": "in_list", "list": "beta-testers"}
//! ]}
//! ```
//!
//! - groups: `{"and": [..]}`, `{"or": [..]}`, `{"not": {..}}`;
//! - comparisons: `{"field", "op": "=" | "!=" | "<" | "<=" | ">" | ">=", "value"}`;
//! - value lists: `{"field", "op": "in" | "not_in", "values": [..]}`;
//! - uploaded lists: `{"field": "device" | "user", "op": "in_list" | "not_in_list", "list"}`;
//! - `{"percent": 12.5}` or `{"percent": 12.5, "unit": "user"}`;
//! - `{"segment": "whales"}`.
//!
//! Values are strings, percentages numbers with at most three decimals. Unknown
//! keys are errors (`rule_unknown_field`), so a typo never silently widens a rule.
//! Reading goes through [`serde_json::Value`] rather than derived serde code, so
//! every error has a stable code and a JSON pointer.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::ast::{Condition, Field, Rule, Unit};
use super::error::{RuleError, RuleErrorCode};
use super::version::CmpOp;
use super::MAX_DEPTH;
use crate::bucketing::Percentage;

const KINDS: [&str; 6] = ["and", "or", "not", "field", "percent", "segment"];

fn percentage_to_json(percentage: Percentage) -> Value {
    let thousandths = percentage.thousandths();
    if thousandths.is_multiple_of(1000) {
        Value::from(thousandths / 1000)
    } else {
        // The nearest double to thousandths/1000, which serde_json prints as the
        // shortest decimal that reads back as it: 12.345 stays "12.345".
        Value::from(f64::from(thousandths) / 1000.0)
    }
}

fn percentage_from_json(value: &Value) -> Result<Percentage, RuleError> {
    let Some(number) = value.as_f64() else {
        return Err(RuleError::new(
            RuleErrorCode::InvalidPercentage,
            "`percent` is a number such as 5 or 12.5",
        ));
    };
    if !number.is_finite() || !(0.0..=100.0).contains(&number) {
        return Err(RuleError::new(
            RuleErrorCode::InvalidPercentage,
            "a percentage is between 0 and 100",
        ));
    }
    let scaled = number * 1000.0;
    let rounded = scaled.round();
    // A decimal with three places, read as a double and scaled, lands within a
    // few ulps of a whole number; anything further has a fourth decimal.
    if (scaled - rounded).abs() > 1e-7 {
        return Err(RuleError::new(
            RuleErrorCode::InvalidPercentage,
            "a percentage has at most 3 decimals (0.001 % is one bucket)",
        ));
    }
    Percentage::from_thousandths(rounded as u32).ok_or_else(|| {
        RuleError::new(
            RuleErrorCode::InvalidPercentage,
            "a percentage is between 0 and 100",
        )
    })
}

impl Rule {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        match self {
            Rule::All(members) => {
                object.insert("and".into(), members.iter().map(Rule::to_json).collect());
            }
            Rule::Any(members) => {
                object.insert("or".into(), members.iter().map(Rule::to_json).collect());
            }
            Rule::Not(member) => {
                object.insert("not".into(), member.to_json());
            }
            Rule::Condition(condition) => condition_to_json(condition, &mut object),
        }
        Value::Object(object)
    }

    /// Reads and validates the JSON form.
    pub fn from_json(value: &Value) -> Result<Rule, RuleError> {
        let mut path = String::new();
        let rule = rule_from_json(value, &mut path, 0)?;
        rule.validate()?;
        Ok(rule)
    }

    /// Reads and validates the JSON form from text.
    pub fn from_json_str(text: &str) -> Result<Rule, RuleError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|error| RuleError::new(RuleErrorCode::InvalidJson, error.to_string()))?;
        Rule::from_json(&value)
    }
}

fn condition_to_json(condition: &Condition, object: &mut Map<String, Value>) {
    let strings = |values: &[String]| Value::from(values.to_vec());
    match condition {
        Condition::Compare { field, op, value } => {
            object.insert("field".into(), field.name().into());
            object.insert("op".into(), op.symbol().into());
            object.insert("value".into(), value.as_str().into());
        }
        Condition::In {
            field,
            negated,
            values,
        } => {
            object.insert("field".into(), field.name().into());
            object.insert("op".into(), if *negated { "not_in" } else { "in" }.into());
            object.insert("values".into(), strings(values));
        }
        Condition::InList {
            field,
            negated,
            list,
        } => {
            object.insert("field".into(), field.name().into());
            let op = if *negated { "not_in_list" } else { "in_list" };
            object.insert("op".into(), op.into());
            object.insert("list".into(), list.as_str().into());
        }
        Condition::Percent { percentage, unit } => {
            object.insert("percent".into(), percentage_to_json(*percentage));
            if *unit != Unit::Device {
                object.insert("unit".into(), unit.name().into());
            }
        }
        Condition::Segment { name } => {
            object.insert("segment".into(), name.as_str().into());
        }
    }
}

/// A JSON pointer token: `~` and `/` escaped (RFC 6901).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Appends a JSON pointer token and runs `read` there.
fn under<T>(
    path: &mut String,
    segment: &str,
    read: impl FnOnce(&mut String) -> Result<T, RuleError>,
) -> Result<T, RuleError> {
    let length = path.len();
    path.push('/');
    path.push_str(&token(segment));
    let result = read(path).map_err(|error| error.at_path(path));
    path.truncate(length);
    result
}

fn shape(message: impl Into<String>) -> RuleError {
    RuleError::new(RuleErrorCode::InvalidJson, message)
}

fn string<'v>(object: &'v Map<String, Value>, key: &str) -> Result<&'v str, RuleError> {
    match object.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(shape(format!("`{key}` is a string"))),
        None => Err(shape(format!("missing `{key}`"))),
    }
}

fn rule_from_json(value: &Value, path: &mut String, depth: usize) -> Result<Rule, RuleError> {
    let Value::Object(object) = value else {
        return Err(shape(
            "a rule is an object with one of `and`, `or`, `not`, `field`, `percent`, `segment`",
        )
        .at_path(path));
    };
    let kinds: Vec<&str> = KINDS
        .into_iter()
        .filter(|kind| object.contains_key(*kind))
        .collect();
    let kind =
        match kinds.as_slice() {
            [kind] => *kind,
            [] => return Err(shape(
                "a rule is an object with one of `and`, `or`, `not`, `field`, `percent`, `segment`",
            )
            .at_path(path)),
            [first, second, ..] => {
                return Err(shape(format!(
                    "an object holds one rule, but this one has both `{first}` and `{second}`"
                ))
                .at_path(path))
            }
        };
    let allowed: &[&str] = match kind {
        "field" => &["field", "op", "value", "values", "list"],
        "percent" => &["percent", "unit"],
        other => std::slice::from_ref(KINDS.iter().find(|k| **k == other).unwrap_or(&"")),
    };
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(RuleError::new(
                RuleErrorCode::UnknownField,
                format!(
                    "unknown key `{key}`; a `{kind}` rule has {}",
                    allowed
                        .iter()
                        .map(|key| format!("`{key}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .at_path(&format!("{path}/{}", token(key))));
        }
    }
    match kind {
        "and" | "or" => {
            if depth + 1 > MAX_DEPTH {
                return Err(super::ast::too_deep().at_path(path));
            }
            under(path, kind, |path| {
                let Some(Value::Array(items)) = object.get(kind) else {
                    return Err(shape(format!("`{kind}` is an array of rules")));
                };
                let mut members = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    members.push(under(path, &index.to_string(), |path| {
                        rule_from_json(item, path, depth + 1)
                    })?);
                }
                Ok(if kind == "and" {
                    Rule::All(members)
                } else {
                    Rule::Any(members)
                })
            })
        }
        "not" => {
            if depth + 1 > MAX_DEPTH {
                return Err(super::ast::too_deep().at_path(path));
            }
            let member = under(path, "not", |path| {
                rule_from_json(&object["not"], path, depth + 1)
            })?;
            Ok(Rule::Not(Box::new(member)))
        }
        "percent" => {
            let percentage = under(path, "percent", |_| {
                percentage_from_json(&object["percent"])
            })?;
            let unit = match object.get("unit") {
                None => Unit::Device,
                Some(value) => under(path, "unit", |_| {
                    value.as_str().and_then(Unit::parse).ok_or_else(|| {
                        RuleError::new(
                            RuleErrorCode::InvalidValue,
                            "`unit` is \"device\" or \"user\"",
                        )
                    })
                })?,
            };
            Ok(Rule::Condition(Condition::Percent { percentage, unit }))
        }
        "segment" => {
            let name = under(path, "segment", |_| string(object, "segment"))?;
            Ok(Rule::Condition(Condition::Segment { name: name.into() }))
        }
        _ => condition_from_json(object, path).map(Rule::Condition),
    }
}

fn condition_from_json(
    object: &Map<String, Value>,
    path: &mut String,
) -> Result<Condition, RuleError> {
    let field = under(path, "field", |_| {
        let name = string(object, "field")?;
        Field::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
            RuleError::new(
                RuleErrorCode::UnknownField,
                format!("unknown field `{name}`; fields are {}", known.join(", ")),
            )
        })
    })?;
    let op = under(path, "op", |_| string(object, "op"))?;
    // Which value key the operator takes; any other one is a mistake to report,
    // not to ignore.
    let (key, condition) = match op {
        "in" | "not_in" => {
            let values = under(path, "values", |path| {
                let Some(Value::Array(items)) = object.get("values") else {
                    return Err(shape(format!(
                        "op `{op}` takes `values`, an array of strings"
                    )));
                };
                let mut values = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let value = under(path, &index.to_string(), |_| {
                        item.as_str().ok_or_else(|| shape("values are strings"))
                    })?;
                    values.push(value.to_string());
                }
                Ok(values)
            })?;
            let negated = op == "not_in";
            (
                "values",
                Condition::In {
                    field,
                    negated,
                    values,
                },
            )
        }
        "in_list" | "not_in_list" => {
            let list = under(path, "list", |_| string(object, "list"))?;
            let negated = op == "not_in_list";
            let list = list.to_string();
            (
                "list",
                Condition::InList {
                    field,
                    negated,
                    list,
                },
            )
        }
        symbol => {
            let Some(op) = CmpOp::parse(symbol).filter(|_| symbol != "==") else {
                return Err(RuleError::new(
                    RuleErrorCode::InvalidOperator,
                    format!(
                        "unknown op `{symbol}`; expected =, !=, <, <=, >, >=, in, not_in, in_list or not_in_list"
                    ),
                )
                .at_path(&format!("{path}/op")));
            };
            let value = under(path, "value", |_| string(object, "value"))?.to_string();
            ("value", Condition::Compare { field, op, value })
        }
    };
    for other in ["value", "values", "list"] {
        if other != key && object.contains_key(other) {
            return Err(RuleError::new(
                RuleErrorCode::UnknownField,
                format!("unexpected key `{other}`: op `{op}` takes `{key}`"),
            )
            .at_path(&format!("{path}/{}", token(other))));
        }
    }
    Ok(condition)
}

/// Serializes as the JSON form.
impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// Reads and validates the JSON form; the error text starts with the stable code.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rule, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Rule::from_json(&value)
            .map_err(|error| serde::de::Error::custom(format!("{}: {error}", error.code)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_example_from_the_issue() {
        let text = "app_version >= 2.1 and platform in (android, ios) and percent(5) or user in list:beta-testers";
        let rule = Rule::parse(text).unwrap();
        let expected = json!({"or": [
            {"and": [
                {"field": "app_version", "op": ">=", "value": "2.1"},
                {"field": "platform", "op": "in", "values": ["android", "ios"]},
                {"percent": 5}
            ]},
            {"field": "user", "op": "in_list", "list": "beta-testers"}
        ]});
        assert_eq!(rule.to_json(), expected);
        assert_eq!(Rule::from_json(&expected).unwrap(), rule);
        let through_serde: Rule =
            serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
        assert_eq!(through_serde, rule);
    }

    #[test]
    fn every_percentage_survives_json() {
        for thousandths in 0..=crate::bucketing::BUCKETS {
            let percentage = Percentage::from_thousandths(thousandths).unwrap();
            let text = serde_json::to_string(&percentage_to_json(percentage)).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(percentage_from_json(&value), Ok(percentage), "{text}");
            assert_eq!(
                text,
                percentage.to_string(),
                "JSON prints the same decimal as the text form"
            );
        }
    }

    #[test]
    fn errors_have_codes_and_pointers() {
        for (value, code, path) in [
            (json!([]), RuleErrorCode::InvalidJson, "/"),
            (json!({}), RuleErrorCode::InvalidJson, "/"),
            (
                json!({"and": [], "or": []}),
                RuleErrorCode::InvalidJson,
                "/",
            ),
            (json!({"and": {}}), RuleErrorCode::InvalidJson, "/and"),
            (
                json!({"and": [{"segment": "a"}]}),
                RuleErrorCode::GroupTooSmall,
                "/",
            ),
            (
                json!({"field": "platform", "op": "=", "value": "ios", "extra": 1}),
                RuleErrorCode::UnknownField,
                "/extra",
            ),
            (
                json!({"field": "platform", "op": "=", "values": ["ios"]}),
                RuleErrorCode::InvalidJson,
                "/value",
            ),
            (
                json!({"field": "platform", "op": "in", "values": ["ios"], "value": "x"}),
                RuleErrorCode::UnknownField,
                "/value",
            ),
            (
                json!({"field": "plat", "op": "=", "value": "ios"}),
                RuleErrorCode::UnknownField,
                "/field",
            ),
            (
                json!({"field": "platform", "op": "~", "value": "ios"}),
                RuleErrorCode::InvalidOperator,
                "/op",
            ),
            (
                json!({"field": "platform", "op": "==", "value": "ios"}),
                RuleErrorCode::InvalidOperator,
                "/op",
            ),
            (
                json!({"field": "platform", "op": "<", "value": "ios"}),
                RuleErrorCode::InvalidOperator,
                "/op",
            ),
            (
                json!({"field": "app_version", "op": "=", "value": 2}),
                RuleErrorCode::InvalidJson,
                "/value",
            ),
            (
                json!({"or": [{"segment": "a"}, {"field": "app_version", "op": "in", "values": ["1.x", "2..0"]}]}),
                RuleErrorCode::InvalidVersion,
                "/or/1/values/1",
            ),
            (
                json!({"field": "channel", "op": "in", "values": []}),
                RuleErrorCode::EmptyList,
                "/values",
            ),
            (
                json!({"percent": 100.5}),
                RuleErrorCode::InvalidPercentage,
                "/percent",
            ),
            (
                json!({"percent": -1}),
                RuleErrorCode::InvalidPercentage,
                "/percent",
            ),
            (
                json!({"percent": 1.2345}),
                RuleErrorCode::InvalidPercentage,
                "/percent",
            ),
            (
                json!({"percent": "5"}),
                RuleErrorCode::InvalidPercentage,
                "/percent",
            ),
            (
                json!({"percent": 5, "unit": "session"}),
                RuleErrorCode::InvalidValue,
                "/unit",
            ),
            (
                json!({"segment": "no spaces"}),
                RuleErrorCode::InvalidValue,
                "/segment",
            ),
            (
                json!({"field": "channel", "op": "in_list", "list": "x"}),
                RuleErrorCode::InvalidOperator,
                "/op",
            ),
            (
                json!({"not": {"not": {"a/b": 1}}}),
                RuleErrorCode::InvalidJson,
                "/not/not",
            ),
        ] {
            let error = Rule::from_json(&value).expect_err(&value.to_string());
            assert_eq!(error.code, code, "{value}: {error}");
            assert_eq!(
                error.location,
                Some(super::super::Location::Path(path.into())),
                "{value}: {error}"
            );
        }
        let mut deep = json!({"segment": "a"});
        for _ in 0..=MAX_DEPTH {
            deep = json!({ "not": deep });
        }
        assert_eq!(
            Rule::from_json(&deep).unwrap_err().code,
            RuleErrorCode::TooDeep
        );
        assert_eq!(
            Rule::from_json_str("{").unwrap_err().code,
            RuleErrorCode::InvalidJson
        );
        let serde_error = serde_json::from_str::<Rule>(r#"{"percent": 101}"#).unwrap_err();
        assert!(serde_error
            .to_string()
            .starts_with("rule_invalid_percentage: at /percent"));
    }
}
