//! Rule errors: a stable code for programs, a message for people, and where the
//! problem is (a column of the text form, or a JSON pointer into the JSON form).

use std::fmt;

use atoll_protocol::ErrorCode;

/// What is wrong with a rule, as a stable machine-readable code. Codes are part of
/// the API (clients and the console match on them): never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleErrorCode {
    /// The text form does not parse (unexpected character or token).
    Syntax,
    /// The JSON form has the wrong shape (wrong type, missing key).
    InvalidJson,
    /// An unknown field name, or an unknown key in the JSON form.
    UnknownField,
    /// An operator the field does not support (e.g. `<` on `platform`).
    InvalidOperator,
    /// A value that is not allowed (empty, too long, unknown platform, bad name).
    InvalidValue,
    /// A version or version range that does not parse.
    InvalidVersion,
    /// A percentage outside 0..=100 or with more than 3 decimals.
    InvalidPercentage,
    /// An `in ( )` list with no values.
    EmptyList,
    /// An `in ( )` list with more values than [`super::MAX_INLINE_VALUES`].
    TooManyValues,
    /// An `and`/`or` group with fewer than two members.
    GroupTooSmall,
    /// Groups nested deeper than [`super::MAX_DEPTH`].
    TooDeep,
    /// More conditions than [`super::MAX_CONDITIONS`] in one rule.
    TooManyConditions,
    /// A text form longer than [`super::MAX_TEXT_LEN`].
    TooLong,
    /// More rules than [`super::MAX_RULES`] in one rule set.
    TooManyRules,
    /// An uploaded list with more ids than [`super::MAX_LIST_IDS`].
    ListTooLarge,
}

impl RuleErrorCode {
    /// Every code.
    pub const ALL: &'static [RuleErrorCode] = &[
        RuleErrorCode::Syntax,
        RuleErrorCode::InvalidJson,
        RuleErrorCode::UnknownField,
        RuleErrorCode::InvalidOperator,
        RuleErrorCode::InvalidValue,
        RuleErrorCode::InvalidVersion,
        RuleErrorCode::InvalidPercentage,
        RuleErrorCode::EmptyList,
        RuleErrorCode::TooManyValues,
        RuleErrorCode::GroupTooSmall,
        RuleErrorCode::TooDeep,
        RuleErrorCode::TooManyConditions,
        RuleErrorCode::TooLong,
        RuleErrorCode::TooManyRules,
        RuleErrorCode::ListTooLarge,
    ];

    /// The code as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleErrorCode::Syntax => "rule_syntax",
            RuleErrorCode::InvalidJson => "rule_invalid_json",
            RuleErrorCode::UnknownField => "rule_unknown_field",
            RuleErrorCode::InvalidOperator => "rule_invalid_operator",
            RuleErrorCode::InvalidValue => "rule_invalid_value",
            RuleErrorCode::InvalidVersion => "rule_invalid_version",
            RuleErrorCode::InvalidPercentage => "rule_invalid_percentage",
            RuleErrorCode::EmptyList => "rule_empty_list",
            RuleErrorCode::TooManyValues => "rule_too_many_values",
            RuleErrorCode::GroupTooSmall => "rule_group_too_small",
            RuleErrorCode::TooDeep => "rule_too_deep",
            RuleErrorCode::TooManyConditions => "rule_too_many_conditions",
            RuleErrorCode::TooLong => "rule_too_long",
            RuleErrorCode::TooManyRules => "rule_too_many_rules",
            RuleErrorCode::ListTooLarge => "rule_list_too_large",
        }
    }

    /// Parses a code sent by [`RuleErrorCode::as_str`].
    pub fn parse(code: &str) -> Option<RuleErrorCode> {
        RuleErrorCode::ALL
            .iter()
            .copied()
            .find(|candidate| candidate.as_str() == code)
    }
}

impl fmt::Display for RuleErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in its input a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A 1-based column (in characters) of the text form.
    Column(usize),
    /// A JSON pointer (RFC 6901) into the JSON form, e.g. `/or/1/values/0`.
    Path(String),
}

/// A rule that cannot be accepted, with a stable [`RuleErrorCode`], a message that
/// says what was expected, and the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// The stable code.
    pub code: RuleErrorCode,
    /// What is wrong and, where it helps, what was expected.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
}

impl RuleError {
    pub(crate) fn new(code: RuleErrorCode, message: impl Into<String>) -> RuleError {
        RuleError {
            code,
            message: message.into(),
            location: None,
        }
    }

    pub(crate) fn at_column(mut self, column: usize) -> RuleError {
        self.location = Some(Location::Column(column));
        self
    }

    pub(crate) fn at_path(mut self, path: &str) -> RuleError {
        if self.location.is_none() {
            let path = if path.is_empty() { "/" } else { path };
            self.location = Some(Location::Path(path.to_string()));
        }
        self
    }

    /// The column of the text form, if the error came from one.
    pub fn column(&self) -> Option<usize> {
        match self.location {
            Some(Location::Column(column)) => Some(column),
            _ => None,
        }
    }

    /// The catalogue code an API answers with: every rule error is an
    /// `invalid_rule` whose detail is this error's text (with its own code).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidRule
    }

    /// The error under the line of text it is about, with a caret at the column, for
    /// a terminal:
    ///
    /// ```text
    /// app_version => 2
    ///             ^ rule_syntax: unexpected `=>`; did you mean `>=`?
    /// ```
    pub fn render(&self, text: &str) -> String {
        match self.column() {
            Some(column) => format!(
                "{text}\n{}^ {}: {}",
                " ".repeat(column.saturating_sub(1)),
                self.code,
                self.message
            ),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(Location::Column(column)) => write!(f, "column {column}: {}", self.message),
            Some(Location::Path(path)) => write!(f, "at {path}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
