//! The rule tree (what both the text and the JSON form mean) and its validation.
//!
//! Values are kept exactly as written (strings, versions as their text), so the two
//! forms convert into each other without loss; [`super::eval`] parses versions and
//! folds case once, when a rule is compiled.

use atoll_protocol::device::Platform;

use super::error::{RuleError, RuleErrorCode};
use super::version::{CmpOp, Version, VersionPattern, VersionRange};
use super::{MAX_CONDITIONS, MAX_DEPTH, MAX_INLINE_VALUES, MAX_NAME_LEN, MAX_VALUE_LEN};
use crate::bucketing::Percentage;

/// A device attribute a condition can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The app's version (a [`Version`]).
    AppVersion,
    /// The OS version (a [`Version`]).
    OsVersion,
    /// The platform: android, ios, harmony, web, miniprogram.
    Platform,
    /// The OS name, e.g. `Android`.
    Os,
    /// The device model, e.g. `Pixel 8`.
    Model,
    /// The distribution channel, e.g. `play`.
    Channel,
    /// The region (country or province code).
    Region,
    /// The city.
    City,
    /// The network type, e.g. `wifi`, `4g`.
    Network,
    /// The locale, e.g. `en-gb`.
    Locale,
    /// The device id (exact, case-sensitive).
    Device,
    /// The user id (exact, case-sensitive); absent for anonymous devices.
    User,
}

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Versions: ordered, with patterns and ranges.
    Version,
    /// Descriptive text: compared ignoring case.
    Text,
    /// Ids: compared exactly; also usable with uploaded lists.
    Id,
}

impl Field {
    /// Every field, in the order of the documentation.
    pub const ALL: [Field; 12] = [
        Field::AppVersion,
        Field::OsVersion,
        Field::Platform,
        Field::Os,
        Field::Model,
        Field::Channel,
        Field::Region,
        Field::City,
        Field::Network,
        Field::Locale,
        Field::Device,
        Field::User,
    ];

    /// The name in both forms.
    pub fn name(self) -> &'static str {
        match self {
            Field::AppVersion => "app_version",
            Field::OsVersion => "os_version",
            Field::Platform => "platform",
            Field::Os => "os",
            Field::Model => "model",
            Field::Channel => "channel",
            Field::Region => "region",
            Field::City => "city",
            Field::Network => "network",
            Field::Locale => "locale",
            Field::Device => "device",
            Field::User => "user",
        }
    }

    /// Parses a name, ignoring case.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(name))
    }

    /// How values compare.
    pub fn kind(self) -> FieldKind {
        match self {
            Field::AppVersion | Field::OsVersion => FieldKind::Version,
            Field::Device | Field::User => FieldKind::Id,
            _ => FieldKind::Text,
        }
    }

    fn operators(self) -> &'static str {
        match self.kind() {
            FieldKind::Version => "=, !=, <, <=, >, >=, in ( ), not in ( )",
            FieldKind::Text => "=, !=, in ( ), not in ( )",
            FieldKind::Id => "=, !=, in ( ), not in ( ), in list:NAME, not in list:NAME",
        }
    }
}

/// Whose id a percentage buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unit {
    /// The device id (the default): one install, one answer.
    #[default]
    Device,
    /// The user id, so a user gets the same answer on every device. A device with no
    /// user falls back to its device id.
    User,
}

impl Unit {
    /// The name in both forms.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Device => "device",
            Unit::User => "user",
        }
    }

    /// Parses a name, ignoring case.
    pub fn parse(name: &str) -> Option<Unit> {
        [Unit::Device, Unit::User]
            .into_iter()
            .find(|unit| unit.name().eq_ignore_ascii_case(name))
    }
}

/// A target rule: conditions combined with and, or and not.
///
/// Its text form is its [`Display`](std::fmt::Display) and
/// [`parse`](Rule::parse); its JSON form is its serde form. Both are validated on
/// the way in; a rule built in code can be checked with [`Rule::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Every member matches (at least two members).
    All(Vec<Rule>),
    /// At least one member matches (at least two members).
    Any(Vec<Rule>),
    /// The member does not match.
    Not(Box<Rule>),
    /// A single test.
    Condition(Condition),
}

/// One test of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `field op value`. Versions take every operator; text and ids `=` and `!=`.
    /// For versions, `=` and `!=` take a pattern (`1.2.x`).
    Compare {
        /// The field.
        field: Field,
        /// The operator.
        op: CmpOp,
        /// The value as written.
        value: String,
    },
    /// `field in (a, b)` or `field not in (a, b)`. For versions each member is a
    /// range (`>=1.2 <2.0`, `1.2.x`, `2.0.1`).
    In {
        /// The field.
        field: Field,
        /// `not in`.
        negated: bool,
        /// The values as written.
        values: Vec<String>,
    },
    /// `user in list:NAME`: membership of an uploaded id list (ids fields only).
    InList {
        /// [`Field::Device`] or [`Field::User`].
        field: Field,
        /// `not in`.
        negated: bool,
        /// The list's name.
        list: String,
    },
    /// `percent(5)`: the unit's bucket under the caller's salt is below 5 %.
    Percent {
        /// How many buckets.
        percentage: Percentage,
        /// Whose id is bucketed.
        unit: Unit,
    },
    /// `segment(NAME)`: answered by the caller's
    /// [`SegmentMembership`](super::SegmentMembership).
    Segment {
        /// The segment's name.
        name: String,
    },
}

impl From<Condition> for Rule {
    fn from(condition: Condition) -> Rule {
        Rule::Condition(condition)
    }
}

/// Which operator a value is used with, for checking it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Use {
    Compare(CmpOp),
    In,
}

pub(crate) fn check_compare(field: Field, op: CmpOp) -> Result<(), RuleError> {
    if op.is_ordering() && field.kind() != FieldKind::Version {
        return Err(RuleError::new(
            RuleErrorCode::InvalidOperator,
            format!(
                "`{}` orders versions only; `{}` takes {}",
                op.symbol(),
                field.name(),
                field.operators()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_in_list(field: Field) -> Result<(), RuleError> {
    if field.kind() != FieldKind::Id {
        return Err(RuleError::new(
            RuleErrorCode::InvalidOperator,
            format!(
                "uploaded lists hold device or user ids; `{}` takes {}",
                field.name(),
                field.operators()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_value(field: Field, usage: Use, value: &str) -> Result<(), RuleError> {
    let invalid = |message: String| Err(RuleError::new(RuleErrorCode::InvalidValue, message));
    match field.kind() {
        FieldKind::Version => {
            let parsed = match usage {
                Use::Compare(op) if op.is_ordering() => Version::parse(value).map(drop),
                Use::Compare(_) => VersionPattern::parse(value).map(drop),
                Use::In => VersionRange::parse(value).map(drop),
            };
            parsed.map_err(|error| RuleError::new(RuleErrorCode::InvalidVersion, error.0))
        }
        FieldKind::Id => {
            if value.is_empty()
                || value.len() > 128
                || !value.bytes().all(|byte| byte.is_ascii_graphic())
            {
                return invalid(format!(
                    "a {} id is 1-128 printable ASCII characters without spaces",
                    field.name()
                ));
            }
            Ok(())
        }
        FieldKind::Text => {
            if value.is_empty() {
                return invalid(format!(
                    "an empty {} value; it would never match",
                    field.name()
                ));
            }
            if value.chars().count() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
                return invalid(format!(
                    "a {} value has at most {MAX_VALUE_LEN} characters and no control characters",
                    field.name()
                ));
            }
            if field == Field::Platform
                && !Platform::ALL
                    .iter()
                    .any(|platform| platform.as_str().eq_ignore_ascii_case(value))
            {
                let known: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
                return invalid(format!(
                    "unknown platform `{value}`; expected one of {}",
                    known.join(", ")
                ));
            }
            Ok(())
        }
    }
}

pub(crate) fn check_values_count(count: usize) -> Result<(), RuleError> {
    if count == 0 {
        return Err(RuleError::new(
            RuleErrorCode::EmptyList,
            "an empty list `( )` would never match; give at least one value",
        ));
    }
    if count > MAX_INLINE_VALUES {
        return Err(RuleError::new(
            RuleErrorCode::TooManyValues,
            format!(
                "at most {MAX_INLINE_VALUES} values in ( ); upload longer id lists and use `in list:NAME`"
            ),
        ));
    }
    Ok(())
}

/// List and segment names: 1-64 of letters, digits, `_`, `-`, `.`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), RuleError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RuleError::new(
            RuleErrorCode::InvalidValue,
            format!("a {what} name is 1-{MAX_NAME_LEN} letters, digits, `_`, `-` or `.`"),
        ))
    }
}

pub(crate) fn too_deep() -> RuleError {
    RuleError::new(
        RuleErrorCode::TooDeep,
        format!("and/or/not groups nest at most {MAX_DEPTH} levels deep"),
    )
}

pub(crate) fn too_many_conditions() -> RuleError {
    RuleError::new(
        RuleErrorCode::TooManyConditions,
        format!("a rule has at most {MAX_CONDITIONS} conditions"),
    )
}

pub(crate) fn group_too_small(keyword: &str) -> RuleError {
    RuleError::new(
        RuleErrorCode::GroupTooSmall,
        format!("an `{keyword}` group needs at least two members"),
    )
}

impl Rule {
    /// Checks everything the parsers check, for a rule built in code. Errors are
    /// located by JSON pointer.
    pub fn validate(&self) -> Result<(), RuleError> {
        let mut path = String::new();
        let mut conditions = 0;
        validate(self, &mut path, 0, &mut conditions)
    }

    /// How many conditions (leaves) the rule has.
    pub fn condition_count(&self) -> usize {
        match self {
            Rule::All(members) | Rule::Any(members) => {
                members.iter().map(Rule::condition_count).sum()
            }
            Rule::Not(member) => member.condition_count(),
            Rule::Condition(_) => 1,
        }
    }

    /// How many and/or/not levels the deepest condition is under.
    pub fn depth(&self) -> usize {
        match self {
            Rule::All(members) | Rule::Any(members) => {
                1 + members.iter().map(Rule::depth).max().unwrap_or(0)
            }
            Rule::Not(member) => 1 + member.depth(),
            Rule::Condition(_) => 0,
        }
    }
}

/// Runs `check` with `segment` appended to `path`, locating its error there.
fn under<T>(
    path: &mut String,
    segment: &str,
    check: impl FnOnce(&mut String) -> Result<T, RuleError>,
) -> Result<T, RuleError> {
    let length = path.len();
    path.push('/');
    path.push_str(segment);
    let result = check(path).map_err(|error| error.at_path(path));
    path.truncate(length);
    result
}

fn validate(
    rule: &Rule,
    path: &mut String,
    depth: usize,
    conditions: &mut usize,
) -> Result<(), RuleError> {
    let (keyword, members) = match rule {
        Rule::All(members) => ("and", members),
        Rule::Any(members) => ("or", members),
        Rule::Not(member) => {
            if depth + 1 > MAX_DEPTH {
                return Err(too_deep().at_path(path));
            }
            return under(path, "not", |path| {
                validate(member, path, depth + 1, conditions)
            });
        }
        Rule::Condition(condition) => {
            *conditions += 1;
            if *conditions > MAX_CONDITIONS {
                return Err(too_many_conditions().at_path(path));
            }
            return validate_condition(condition, path);
        }
    };
    if depth + 1 > MAX_DEPTH {
        return Err(too_deep().at_path(path));
    }
    if members.len() < 2 {
        return Err(group_too_small(keyword).at_path(path));
    }
    under(path, keyword, |path| {
        for (index, member) in members.iter().enumerate() {
            under(path, &index.to_string(), |path| {
                validate(member, path, depth + 1, conditions)
            })?;
        }
        Ok(())
    })
}

fn validate_condition(condition: &Condition, path: &mut String) -> Result<(), RuleError> {
    match condition {
        Condition::Compare { field, op, value } => {
            under(path, "op", |_| check_compare(*field, *op))?;
            under(path, "value", |_| {
                check_value(*field, Use::Compare(*op), value)
            })
        }
        Condition::In { field, values, .. } => under(path, "values", |path| {
            check_values_count(values.len())?;
            for (index, value) in values.iter().enumerate() {
                under(path, &index.to_string(), |_| {
                    check_value(*field, Use::In, value)
                })?;
            }
            Ok(())
        }),
        Condition::InList { field, list, .. } => {
            under(path, "op", |_| check_in_list(*field))?;
            under(path, "list", |_| check_name("list", list))
        }
        // A `Percentage` is valid by construction.
        Condition::Percent { .. } => Ok(()),
        Condition::Segment { name } => under(path, "segment", |_| check_name("segment", name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(field: Field, op: CmpOp, value: &str) -> Rule {
        Rule::Condition(Condition::Compare {
            field,
            op,
            value: value.into(),
        })
    }

    #[test]
    fn validation_locates_errors_by_json_pointer() {
        let rule = Rule::Any(vec![
            compare(Field::Platform, CmpOp::Eq, "ios"),
            Rule::All(vec![
                compare(Field::Channel, CmpOp::Eq, "play"),
                compare(Field::AppVersion, CmpOp::Ge, "2.x"),
            ]),
        ]);
        let error = rule.validate().unwrap_err();
        assert_eq!(error.code, RuleErrorCode::InvalidVersion);
        assert_eq!(
            error.location,
            Some(super::super::Location::Path("/or/1/and/1/value".into()))
        );
    }

    #[test]
    fn structural_limits() {
        let leaf = compare(Field::Platform, CmpOp::Eq, "ios");
        assert_eq!(
            Rule::All(vec![leaf.clone()]).validate().unwrap_err().code,
            RuleErrorCode::GroupTooSmall
        );
        let mut deep = leaf.clone();
        for _ in 0..MAX_DEPTH {
            deep = Rule::Not(Box::new(deep));
        }
        assert!(deep.validate().is_ok());
        assert_eq!(deep.depth(), MAX_DEPTH);
        let deeper = Rule::Not(Box::new(deep));
        assert_eq!(deeper.validate().unwrap_err().code, RuleErrorCode::TooDeep);
        let wide = Rule::Any(vec![leaf.clone(); MAX_CONDITIONS]);
        assert!(wide.validate().is_ok());
        let wider = Rule::Any(vec![leaf; MAX_CONDITIONS + 1]);
        assert_eq!(
            wider.validate().unwrap_err().code,
            RuleErrorCode::TooManyConditions
        );
        assert_eq!(wider.condition_count(), MAX_CONDITIONS + 1);
    }

    #[test]
    fn operators_per_field() {
        assert_eq!(
            compare(Field::Platform, CmpOp::Lt, "ios")
                .validate()
                .unwrap_err()
                .code,
            RuleErrorCode::InvalidOperator
        );
        let list = Rule::Condition(Condition::InList {
            field: Field::Channel,
            negated: false,
            list: "beta".into(),
        });
        assert_eq!(
            list.validate().unwrap_err().code,
            RuleErrorCode::InvalidOperator
        );
        assert_eq!(
            compare(Field::Platform, CmpOp::Eq, "andriod")
                .validate()
                .unwrap_err()
                .code,
            RuleErrorCode::InvalidValue
        );
        assert!(compare(Field::Platform, CmpOp::Eq, "iOS")
            .validate()
            .is_ok());
        assert_eq!(
            compare(Field::User, CmpOp::Eq, "has space")
                .validate()
                .unwrap_err()
                .code,
            RuleErrorCode::InvalidValue
        );
    }
}
