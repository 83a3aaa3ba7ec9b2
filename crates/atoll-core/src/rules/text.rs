//! The one-line text form, for the CLI and the console:
//!
//! ```text
//! (app_version >= 2.1 and platform in (android, ios) and percent(5)) or user in list:beta-testers
//! ```
//!
//! Grammar (keywords and field names ignore case; `not` binds tighter than `and`,
//! which binds tighter than `or`):
//!
//! ```text
//! rule      = and ("or" and)*
//! and       = unary ("and" unary)*
//! unary     = "not" unary | "(" rule ")" | condition
//! condition = field op value                       op: = == != < <= > >=
//!           | field ["not"] "in" "(" value ("," value)* [","] ")"
//!           | field ["not"] "in" "list" ":" name     (device and user only)
//!           | "percent" "(" number ["%"] ["," ("device" | "user")] ")"
//!           | "segment" "(" name ")"
//! value     = word | "double-quoted string" | 'single-quoted string'
//! ```
//!
//! A word is letters, digits and `_ . - + * @`; anything else (spaces, `>=1.2 <2`)
//! is quoted, with `\"`, `\\`, `\n`, `\t`, `\r` and `\u{…}` escapes. The words
//! `and`, `or`, `not` and `in` must be quoted to be values.
//!
//! [`Display`](std::fmt::Display) prints the canonical form: lower-case keywords
//! and fields, single spaces, words bare when they can be, and parentheses around
//! every group inside another group (so nesting is visible, and printing then
//! parsing gives back the same tree). Errors carry the 1-based column and say what
//! was expected.

use std::fmt::{self, Write as _};

use super::ast::{
    check_compare, check_in_list, check_name, check_value, check_values_count, too_deep,
    too_many_conditions, Condition, Field, FieldKind, Rule, Unit, Use,
};
use super::error::{RuleError, RuleErrorCode};
use super::version::CmpOp;
use super::{MAX_CONDITIONS, MAX_DEPTH, MAX_INLINE_VALUES, MAX_TEXT_LEN};
use crate::bucketing::Percentage;

/// Parentheses and `not`s the parser follows before giving up: a guard for its
/// stack. Redundant parentheses make it larger than [`MAX_DEPTH`], which the tree
/// itself must respect.
const MAX_PARSE_NESTING: usize = 4 * MAX_DEPTH;

const KEYWORDS: [&str; 4] = ["and", "or", "not", "in"];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | '*' | '@')
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS
        .iter()
        .any(|keyword| keyword.eq_ignore_ascii_case(word))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    Comma,
    Colon,
    PercentSign,
    Op(CmpOp),
    Word(&'a str),
    Str(String),
    End,
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset of the first character.
    start: usize,
}

fn column(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.chars().count() + 1)
}

fn syntax(text: &str, offset: usize, message: impl Into<String>) -> RuleError {
    RuleError::new(RuleErrorCode::Syntax, message).at_column(column(text, offset))
}

fn lex(text: &str) -> Result<Vec<Token<'_>>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let next = chars.peek().map(|&(_, next)| next);
        let tok = match c {
            _ if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            ':' => Tok::Colon,
            '%' => Tok::PercentSign,
            '=' => match next {
                Some('=') => {
                    chars.next();
                    Tok::Op(CmpOp::Eq)
                }
                Some('>') => {
                    return Err(syntax(text, start, "unexpected `=>`; did you mean `>=`?"))
                }
                Some('<') => {
                    return Err(syntax(text, start, "unexpected `=<`; did you mean `<=`?"))
                }
                _ => Tok::Op(CmpOp::Eq),
            },
            '!' => {
                if next == Some('=') {
                    chars.next();
                    Tok::Op(CmpOp::Ne)
                } else {
                    return Err(syntax(text, start, "unexpected `!`; write `not` or `!=`"));
                }
            }
            '<' | '>' => {
                let or_equal = next == Some('=');
                if or_equal {
                    chars.next();
                }
                Tok::Op(match (c, or_equal) {
                    ('<', false) => CmpOp::Lt,
                    ('<', true) => CmpOp::Le,
                    (_, false) => CmpOp::Gt,
                    (_, true) => CmpOp::Ge,
                })
            }
            '&' => return Err(syntax(text, start, "unexpected `&`; write `and`")),
            '|' => return Err(syntax(text, start, "unexpected `|`; write `or`")),
            '"' | '\'' => Tok::Str(lex_string(text, start, c, &mut chars)?),
            _ if is_word_char(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(offset, next)) = chars.peek() {
                    if !is_word_char(next) {
                        break;
                    }
                    end = offset + next.len_utf8();
                    chars.next();
                }
                Tok::Word(&text[start..end])
            }
            _ => {
                return Err(syntax(
                    text,
                    start,
                    format!("unexpected character `{}`", c.escape_debug()),
                ))
            }
        };
        tokens.push(Token { tok, start });
    }
    tokens.push(Token {
        tok: Tok::End,
        start: text.len(),
    });
    Ok(tokens)
}

fn lex_string(
    text: &str,
    start: usize,
    quote: char,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<String, RuleError> {
    let mut value = String::new();
    loop {
        let Some((offset, c)) = chars.next() else {
            return Err(syntax(
                text,
                start,
                format!("unterminated string: expected a closing {quote}"),
            ));
        };
        if c == quote {
            return Ok(value);
        }
        if c != '\\' {
            value.push(c);
            continue;
        }
        let escaped =
            match chars.next() {
                Some((_, 'n')) => '\n',
                Some((_, 't')) => '\t',
                Some((_, 'r')) => '\r',
                Some((_, c @ ('\\' | '"' | '\''))) => c,
                Some((_, 'u')) => {
                    let mut hex = String::new();
                    let opened = chars.next().is_some_and(|(_, c)| c == '{');
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        hex.push(c);
                        if hex.len() > 6 {
                            break;
                        }
                    }
                    let code = (opened && closed && !hex.is_empty() && hex.len() <= 6)
                        .then(|| u32::from_str_radix(&hex, 16).ok())
                        .flatten()
                        .and_then(char::from_u32);
                    match code {
                        Some(c) => c,
                        None => return Err(syntax(
                            text,
                            offset,
                            "bad escape: expected \\u{…} with 1-6 hex digits of a Unicode scalar",
                        )),
                    }
                }
                _ => {
                    return Err(syntax(
                        text,
                        offset,
                        r#"bad escape: expected \", \', \\, \n, \t, \r or \u{…}"#,
                    ))
                }
            };
        value.push(escaped);
    }
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Colon => "`:`".into(),
        Tok::PercentSign => "`%`".into(),
        Tok::Op(op) => format!("`{}`", op.symbol()),
        Tok::Word(word) if word.chars().count() > 40 => {
            format!("`{}…`", word.chars().take(40).collect::<String>())
        }
        Tok::Word(word) => format!("`{word}`"),
        Tok::Str(_) => "a quoted string".into(),
        Tok::End => "the end of the rule".into(),
    }
}

/// Levenshtein distance, for "did you mean" on field names.
fn distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, l) in left.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &r) in right.iter().enumerate() {
            let cost = usize::from(l != r);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}

fn unknown_field(word: &str) -> RuleError {
    let lower = word.to_lowercase();
    let trimmed = lower.trim_end_matches("_id");
    let suggestion = Field::ALL
        .into_iter()
        .map(|field| {
            (
                distance(trimmed, field.name()).min(distance(&lower, field.name())),
                field,
            )
        })
        .min_by_key(|&(distance, _)| distance)
        .filter(|&(distance, _)| distance <= 2)
        .map(|(_, field)| format!("did you mean `{}`? ", field.name()))
        .unwrap_or_default();
    let known: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
    RuleError::new(
        RuleErrorCode::UnknownField,
        format!(
            "unknown field `{word}`; {suggestion}fields are {}, or percent( ) and segment( )",
            known.join(", ")
        ),
    )
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token<'a>>,
    position: usize,
    nesting: usize,
    conditions: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        &self.tokens[self.position].tok
    }

    fn peek_is_word(&self, keyword: &str) -> bool {
        matches!(self.peek(), Tok::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn offset(&self) -> usize {
        self.tokens[self.position].start
    }

    fn column(&self) -> usize {
        column(self.text, self.offset())
    }

    fn advance(&mut self) -> (Tok<'a>, usize) {
        let token = &self.tokens[self.position];
        let result = (token.tok.clone(), token.start);
        if token.tok != Tok::End {
            self.position += 1;
        }
        result
    }

    fn expected(&self, what: &str) -> RuleError {
        syntax(
            self.text,
            self.offset(),
            format!("expected {what}, found {}", describe(self.peek())),
        )
    }

    fn expect(&mut self, tok: Tok<'static>, what: &str) -> Result<(), RuleError> {
        if *self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn enter(&mut self) -> Result<(), RuleError> {
        self.nesting += 1;
        if self.nesting > MAX_PARSE_NESTING {
            return Err(too_deep().at_column(self.column()));
        }
        Ok(())
    }

    /// `rule`: returns the tree and its depth.
    fn parse_or(&mut self) -> Result<(Rule, usize), RuleError> {
        self.parse_group("or", Self::parse_and, Rule::Any)
    }

    fn parse_and(&mut self) -> Result<(Rule, usize), RuleError> {
        self.parse_group("and", Self::parse_unary, Rule::All)
    }

    fn parse_group(
        &mut self,
        keyword: &str,
        member: fn(&mut Self) -> Result<(Rule, usize), RuleError>,
        build: fn(Vec<Rule>) -> Rule,
    ) -> Result<(Rule, usize), RuleError> {
        let start = self.offset();
        let (first, mut depth) = member(self)?;
        if !self.peek_is_word(keyword) {
            return Ok((first, depth));
        }
        let mut members = vec![first];
        while self.peek_is_word(keyword) {
            self.advance();
            let (next, next_depth) = member(self)?;
            members.push(next);
            depth = depth.max(next_depth);
        }
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep().at_column(column(self.text, start)));
        }
        Ok((build(members), depth))
    }

    fn parse_unary(&mut self) -> Result<(Rule, usize), RuleError> {
        let start = self.offset();
        if self.peek_is_word("not") {
            self.advance();
            self.enter()?;
            let (member, depth) = self.parse_unary()?;
            self.nesting -= 1;
            if depth + 1 > MAX_DEPTH {
                return Err(too_deep().at_column(column(self.text, start)));
            }
            return Ok((Rule::Not(Box::new(member)), depth + 1));
        }
        if *self.peek() == Tok::LParen {
            self.advance();
            self.enter()?;
            let inner = self.parse_or()?;
            self.expect(Tok::RParen, "`and`, `or` or `)`")?;
            self.nesting -= 1;
            return Ok(inner);
        }
        let condition = self.parse_condition()?;
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(too_many_conditions().at_column(column(self.text, start)));
        }
        Ok((Rule::Condition(condition), 0))
    }

    fn parse_condition(&mut self) -> Result<Condition, RuleError> {
        let start = self.offset();
        let word = match self.peek() {
            Tok::Word(word) => *word,
            _ => {
                return Err(self.expected(
                    "a condition: a field such as app_version or platform, percent( ), segment( ), `not` or `(`",
                ))
            }
        };
        let followed_by_paren = matches!(
            self.tokens.get(self.position + 1),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        );
        if followed_by_paren && word.eq_ignore_ascii_case("percent") {
            return self.parse_percent();
        }
        if followed_by_paren && word.eq_ignore_ascii_case("segment") {
            self.advance();
            self.advance();
            let name = self.parse_name("segment")?;
            self.expect(Tok::RParen, "`)` after the segment's name")?;
            return Ok(Condition::Segment { name });
        }
        if is_keyword(word) {
            return Err(self.expected("a condition"));
        }
        let field = Field::parse(word)
            .ok_or_else(|| unknown_field(word).at_column(column(self.text, start)))?;
        self.advance();
        let op_column = self.column();
        match self.peek().clone() {
            Tok::Op(op) => {
                self.advance();
                check_compare(field, op).map_err(|error| error.at_column(op_column))?;
                let value = self.parse_value(field, Use::Compare(op))?;
                Ok(Condition::Compare { field, op, value })
            }
            Tok::Word(word) if word.eq_ignore_ascii_case("in") => {
                self.advance();
                self.parse_in(field, false, op_column)
            }
            Tok::Word(word) if word.eq_ignore_ascii_case("not") => {
                self.advance();
                if !self.peek_is_word("in") {
                    return Err(self.expected("`in` after `not`"));
                }
                self.advance();
                self.parse_in(field, true, op_column)
            }
            _ => Err(self.expected(&format!(
                "an operator after `{}`: {}",
                field.name(),
                field_operators(field)
            ))),
        }
    }

    fn parse_in(
        &mut self,
        field: Field,
        negated: bool,
        op_column: usize,
    ) -> Result<Condition, RuleError> {
        if self.peek_is_word("list") {
            self.advance();
            check_in_list(field).map_err(|error| error.at_column(op_column))?;
            self.expect(
                Tok::Colon,
                "`:` and the list's name, as in list:beta-testers",
            )?;
            let list = self.parse_name("list")?;
            return Ok(Condition::InList {
                field,
                negated,
                list,
            });
        }
        let open = self.offset();
        self.expect(Tok::LParen, "`(` and values, or list:NAME, after `in`")?;
        let mut values = Vec::new();
        while *self.peek() != Tok::RParen {
            if values.len() == MAX_INLINE_VALUES {
                return Err(check_values_count(MAX_INLINE_VALUES + 1)
                    .unwrap_err()
                    .at_column(self.column()));
            }
            values.push(self.parse_value(field, Use::In)?);
            if *self.peek() == Tok::Comma {
                self.advance();
            } else if *self.peek() != Tok::RParen {
                return Err(self.expected("`,` or `)` in the list of values"));
            }
        }
        self.advance();
        check_values_count(values.len())
            .map_err(|error| error.at_column(column(self.text, open)))?;
        Ok(Condition::In {
            field,
            negated,
            values,
        })
    }

    fn parse_value(&mut self, field: Field, usage: Use) -> Result<String, RuleError> {
        let value_column = self.column();
        let value =
            match self.peek() {
                Tok::Word(word) if is_keyword(word) => {
                    return Err(self.expected(&format!(
                        "a value (the keyword `{word}` is a value only in quotes: \"{word}\")"
                    )))
                }
                Tok::Word(word) => (*word).to_string(),
                Tok::Str(value) => value.clone(),
                Tok::Op(_) if field.kind() == FieldKind::Version => return Err(self.expected(
                    "a version, a pattern such as 1.2.x, or a quoted range such as \">=2.0 <2.5\"",
                )),
                _ => return Err(self.expected("a value: a word or a \"quoted string\"")),
            };
        self.advance();
        check_value(field, usage, &value).map_err(|error| error.at_column(value_column))?;
        Ok(value)
    }

    fn parse_name(&mut self, what: &str) -> Result<String, RuleError> {
        let name_column = self.column();
        let name = match self.peek() {
            Tok::Word(word) => (*word).to_string(),
            Tok::Str(value) => value.clone(),
            _ => return Err(self.expected(&format!("the {what}'s name"))),
        };
        self.advance();
        check_name(what, &name).map_err(|error| error.at_column(name_column))?;
        Ok(name)
    }

    fn parse_percent(&mut self) -> Result<Condition, RuleError> {
        self.advance();
        self.advance();
        let number_column = self.column();
        let percentage = match self.peek() {
            Tok::Word(word) => Percentage::parse(word).map_err(|error| {
                RuleError::new(RuleErrorCode::InvalidPercentage, error.to_string())
                    .at_column(number_column)
            })?,
            _ => return Err(self.expected("a percentage such as 5 or 12.5")),
        };
        self.advance();
        if *self.peek() == Tok::PercentSign {
            self.advance();
        }
        let mut unit = Unit::Device;
        if *self.peek() == Tok::Comma {
            self.advance();
            unit = match self.peek() {
                Tok::Word(word) => Unit::parse(word),
                _ => None,
            }
            .ok_or_else(|| self.expected("`user` or `device`, whose id is bucketed"))?;
            self.advance();
        }
        self.expect(Tok::RParen, "`)`, or `, user` to bucket by user")?;
        Ok(Condition::Percent { percentage, unit })
    }
}

fn field_operators(field: Field) -> &'static str {
    match field.kind() {
        FieldKind::Version => "=, !=, <, <=, >, >=, in ( ) or not in ( )",
        FieldKind::Text => "=, !=, in ( ) or not in ( )",
        FieldKind::Id => "=, !=, in ( ), not in ( ), in list:NAME or not in list:NAME",
    }
}

impl Rule {
    /// Parses the text form, validating it; errors say where (column) and what was
    /// expected.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(RuleError::new(
                RuleErrorCode::TooLong,
                format!("a rule's text has at most {MAX_TEXT_LEN} bytes"),
            ));
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            text,
            tokens,
            position: 0,
            nesting: 0,
            conditions: 0,
        };
        let (rule, _) = parser.parse_or()?;
        if *parser.peek() != Tok::End {
            let mut error = parser.expected("`and`, `or` or the end of the rule");
            if matches!(parser.peek(), Tok::Word(_) | Tok::Str(_)) {
                error
                    .message
                    .push_str("; a value with spaces needs quotes, as in model = \"Pixel 8\"");
            }
            return Err(error);
        }
        // The parser checks as it goes, with columns; this is a net for anything a
        // future change to it might miss.
        rule.validate()?;
        Ok(rule)
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Rule, RuleError> {
        Rule::parse(text)
    }
}

/// Writes a value bare when it lexes back as the same word, else quoted.
fn write_value(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    if !value.is_empty() && value.chars().all(is_word_char) && !is_keyword(value) {
        return f.write_str(value);
    }
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_member(f: &mut fmt::Formatter<'_>, rule: &Rule) -> fmt::Result {
    match rule {
        Rule::All(_) | Rule::Any(_) => write!(f, "({rule})"),
        _ => write!(f, "{rule}"),
    }
}

/// The canonical text form.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (separator, members) = match self {
            Rule::All(members) => (" and ", members),
            Rule::Any(members) => (" or ", members),
            Rule::Not(member) => {
                f.write_str("not ")?;
                return write_member(f, member);
            }
            Rule::Condition(condition) => return condition.fmt(f),
        };
        for (index, member) in members.iter().enumerate() {
            if index > 0 {
                f.write_str(separator)?;
            }
            write_member(f, member)?;
        }
        Ok(())
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "not " } else { "" };
        match self {
            Condition::Compare { field, op, value } => {
                write!(f, "{} {} ", field.name(), op.symbol())?;
                write_value(f, value)
            }
            Condition::In {
                field,
                negated,
                values,
            } => {
                write!(f, "{} {}in (", field.name(), not(*negated))?;
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write_value(f, value)?;
                }
                f.write_str(")")
            }
            Condition::InList {
                field,
                negated,
                list,
            } => {
                write!(f, "{} {}in list:", field.name(), not(*negated))?;
                write_value(f, list)
            }
            Condition::Percent { percentage, unit } => match unit {
                Unit::Device => write!(f, "percent({percentage})"),
                Unit::User => write!(f, "percent({percentage}, user)"),
            },
            Condition::Segment { name } => {
                f.write_str("segment(")?;
                write_value(f, name)?;
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Rule {
        Rule::parse(text).unwrap_or_else(|error| panic!("{}", error.render(text)))
    }

    fn error(text: &str) -> RuleError {
        Rule::parse(text).expect_err(text)
    }

    #[test]
    fn the_example_from_the_issue() {
        let text = "app_version >= 2.1 and platform in (android, ios) and percent(5) or user in list:beta-testers";
        let rule = parse(text);
        let Rule::Any(members) = &rule else {
            panic!("{rule:?}")
        };
        assert_eq!(members.len(), 2);
        assert!(matches!(&members[0], Rule::All(inner) if inner.len() == 3));
        assert_eq!(
            rule.to_string(),
            "(app_version >= 2.1 and platform in (android, ios) and percent(5)) or user in list:beta-testers"
        );
        assert_eq!(parse(&rule.to_string()), rule);
    }

    #[test]
    fn canonical_printing() {
        for (text, canonical) in [
            ("APP_VERSION>=2.1", "app_version >= 2.1"),
            ("model == \"Pixel 8\"", "model = \"Pixel 8\""),
            ("channel = 'play'", "channel = play"),
            ("not not platform = ios", "not not platform = ios"),
            ("not (a_b = 1)", ""),
            ("percent(12.50%, USER)", "percent(12.5, user)"),
            ("percent(5, device)", "percent(5)"),
            ("segment(\"whales\")", "segment(whales)"),
            ("user not in list : vip", "user not in list:vip"),
            (
                "city in (上海, \"São Paulo\", 'and')",
                "city in (上海, \"São Paulo\", \"and\")",
            ),
            (
                "app_version in (1.2.x, \">=2.0 <2.5\",)",
                "app_version in (1.2.x, \">=2.0 <2.5\")",
            ),
            ("((platform = ios))", "platform = ios"),
            (
                "platform = ios and (channel = a and channel = b)",
                "platform = ios and (channel = a and channel = b)",
            ),
            (
                "not (platform = ios or channel = play)",
                "not (platform = ios or channel = play)",
            ),
            (
                "model = \"quote\\\" back\\\\slash\"",
                "model = \"quote\\\" back\\\\slash\"",
            ),
            ("model = \"\\u{e9}t\\u{E9}\"", "model = été"),
        ] {
            if canonical.is_empty() {
                assert!(Rule::parse(text).is_err());
                continue;
            }
            let rule = parse(text);
            assert_eq!(rule.to_string(), canonical, "{text}");
            assert_eq!(parse(canonical), rule);
        }
    }

    #[test]
    fn precedence() {
        let rule = parse("not platform = ios and channel = a or channel = b");
        let expected = parse("((not platform = ios) and channel = a) or channel = b");
        assert_eq!(rule, expected);
        assert_eq!(
            rule.to_string(),
            "(not platform = ios and channel = a) or channel = b"
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        for (text, code, column, fragment) in [
            (
                "app_version => 2",
                RuleErrorCode::Syntax,
                13,
                "did you mean `>=`",
            ),
            (
                "platform = ios &&",
                RuleErrorCode::Syntax,
                16,
                "write `and`",
            ),
            (
                "platform ios",
                RuleErrorCode::Syntax,
                10,
                "an operator after `platform`: =, !=, in ( ) or not in ( )",
            ),
            (
                "user_id = 7",
                RuleErrorCode::UnknownField,
                1,
                "did you mean `user`?",
            ),
            (
                "plattform = ios",
                RuleErrorCode::UnknownField,
                1,
                "did you mean `platform`?",
            ),
            (
                "platform < ios",
                RuleErrorCode::InvalidOperator,
                10,
                "orders versions only",
            ),
            (
                "platform = andriod",
                RuleErrorCode::InvalidValue,
                12,
                "unknown platform `andriod`",
            ),
            (
                "channel in list:x",
                RuleErrorCode::InvalidOperator,
                9,
                "uploaded lists hold device or user ids",
            ),
            (
                "app_version >= 2.x",
                RuleErrorCode::InvalidVersion,
                16,
                "`2.x` is not a version",
            ),
            (
                "app_version in (1.x, >=2 <3)",
                RuleErrorCode::Syntax,
                22,
                "a quoted range such as",
            ),
            (
                "app_version in (\">=2.x\")",
                RuleErrorCode::InvalidVersion,
                17,
                "a wildcard only goes with = or !=",
            ),
            (
                "percent(101)",
                RuleErrorCode::InvalidPercentage,
                9,
                "between 0 and 100",
            ),
            (
                "percent(5.0001)",
                RuleErrorCode::InvalidPercentage,
                9,
                "at most 3 decimals",
            ),
            (
                "percent(5, everyone)",
                RuleErrorCode::Syntax,
                12,
                "`user` or `device`",
            ),
            ("platform in ()", RuleErrorCode::EmptyList, 13, "empty list"),
            ("platform in (ios", RuleErrorCode::Syntax, 17, "`,` or `)`"),
            ("model = Pixel 8", RuleErrorCode::Syntax, 15, "needs quotes"),
            (
                "model = \"Pixel 8",
                RuleErrorCode::Syntax,
                9,
                "unterminated string",
            ),
            ("channel = and", RuleErrorCode::Syntax, 11, "only in quotes"),
            (
                "channel = \"\"",
                RuleErrorCode::InvalidValue,
                11,
                "empty channel value",
            ),
            (
                "(platform = ios",
                RuleErrorCode::Syntax,
                16,
                "expected `and`, `or` or `)`, found the end",
            ),
            (
                "platform = ios)",
                RuleErrorCode::Syntax,
                15,
                "`and`, `or` or the end",
            ),
            ("", RuleErrorCode::Syntax, 1, "expected a condition"),
            (
                "platform = ios and",
                RuleErrorCode::Syntax,
                19,
                "expected a condition",
            ),
            (
                "segment(bad name!)",
                RuleErrorCode::Syntax,
                17,
                "unexpected `!`",
            ),
            (
                "segment(\"bad name\")",
                RuleErrorCode::InvalidValue,
                9,
                "segment name",
            ),
            (
                "user in list:",
                RuleErrorCode::Syntax,
                14,
                "the list's name",
            ),
            (
                "device = \"a b\"",
                RuleErrorCode::InvalidValue,
                10,
                "printable ASCII",
            ),
            ("model = \"\\q\"", RuleErrorCode::Syntax, 10, "bad escape"),
            (
                "platform = ios # comment",
                RuleErrorCode::Syntax,
                16,
                "unexpected character `#`",
            ),
        ] {
            let error = error(text);
            assert_eq!(error.code, code, "{text}: {error}");
            assert_eq!(error.column(), Some(column), "{text}: {error}");
            assert!(error.message.contains(fragment), "{text}: {error}");
        }
    }

    #[test]
    fn limits() {
        let deep = format!("{}platform = ios", "not ".repeat(MAX_DEPTH));
        assert!(Rule::parse(&deep).is_ok());
        let deeper = format!("not {deep}");
        assert_eq!(error(&deeper).code, RuleErrorCode::TooDeep);
        // Redundant parentheses do not nest the tree, but are bounded too.
        let parens = format!("{}platform = ios{}", "(".repeat(20), ")".repeat(20));
        assert!(Rule::parse(&parens).is_ok());
        let many_parens = format!("{}platform = ios{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(error(&many_parens).code, RuleErrorCode::TooDeep);
        let wide = vec!["platform = ios"; MAX_CONDITIONS].join(" or ");
        assert!(Rule::parse(&wide).is_ok());
        let wider = format!("{wide} or channel = x");
        let too_many = error(&wider);
        assert_eq!(too_many.code, RuleErrorCode::TooManyConditions);
        assert_eq!(too_many.column(), Some(wide.len() + 5));
        let values = vec!["a"; MAX_INLINE_VALUES + 1].join(",");
        assert_eq!(
            error(&format!("channel in ({values})")).code,
            RuleErrorCode::TooManyValues
        );
        let long = format!("channel = \"{}\"", "a".repeat(MAX_TEXT_LEN));
        assert_eq!(error(&long).code, RuleErrorCode::TooLong);
    }

    #[test]
    fn render_points_at_the_column() {
        let text = "app_version => 2";
        assert_eq!(
            error(text).render(text),
            "app_version => 2\n            ^ rule_syntax: unexpected `=>`; did you mean `>=`?"
        );
    }

    #[test]
    fn columns_count_characters() {
        let error = error("city = 上海 and plattform = x");
        assert_eq!(error.column(), Some(15));
    }
}
