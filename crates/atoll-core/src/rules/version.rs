//! Tolerant app and OS versions, patterns and ranges.
//!
//! Mobile versions are not semver: `10.2`, `14`, `1.0.0.1234` and `4.0.0.115` are all
//! in the wild. A [`Version`] is therefore one to eight dot-separated numbers, with an
//! optional semver-style pre-release (`-beta.1`) and build (`+45`). Comparison:
//!
//! - numbers compare numerically, a missing number counts as 0 (`10.2` = `10.2.0`);
//! - a pre-release sorts before its release (`2.3.0-beta.1` < `2.3.0`), and
//!   pre-release identifiers compare as in semver (numbers numerically, below words;
//!   words in ASCII order; a shorter list first); words are case-insensitive;
//! - build metadata is ignored.
//!
//! A leading `v` (`v2.1`) is accepted. Everything else (`2.1 beta`, `1.x.3`) is not a
//! version: in a rule that is an error, on a device it is "unknown version", which no
//! positive version test matches.
//!
//! A [`VersionPattern`] is an exact version or a wildcard (`1.2.x`, `1.*`), and a
//! [`VersionRange`] is a space-separated conjunction of comparisons such as
//! `>=1.2 <2.0`.

use std::cmp::Ordering;
use std::fmt;

/// Most numbers in one version (`1.0.0.1234` has four).
pub const MAX_VERSION_NUMBERS: usize = 8;

/// Longest version text accepted.
pub const MAX_VERSION_LEN: usize = 64;

/// A tolerant dotted version. Equality (`==`) is structural (`10.2` != `10.2.0`);
/// use [`Version::compare`] for ordering, under which they are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    numbers: Box<[u64]>,
    pre: Box<[PreId]>,
    build: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PreId {
    Number(u64),
    Word(Box<str>),
}

/// Why a version, pattern or range does not parse (the message names the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError(pub String);

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VersionError {}

fn bad(text: &str, why: &str) -> VersionError {
    VersionError(format!("`{text}` is not a version: {why}"))
}

/// Parses one dot-separated number, refusing anything that could overflow.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() || part.len() > 18 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn strip_v(text: &str) -> &str {
    match text.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => text,
    }
}

impl Version {
    /// Parses a version such as `10.2`, `v1.0.0.1234` or `2.3.0-beta.1+45`.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        if text.len() > MAX_VERSION_LEN {
            return Err(VersionError(format!(
                "a version has at most {MAX_VERSION_LEN} characters"
            )));
        }
        let body = strip_v(text);
        let (body, build) = match body.split_once('+') {
            Some((body, build)) => {
                let ok = !build.is_empty()
                    && build
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                if !ok {
                    return Err(bad(
                        text,
                        "build metadata after `+` is letters, digits, `.` and `-`",
                    ));
                }
                (body, Some(Box::from(build)))
            }
            None => (body, None),
        };
        let (core, pre) = match body.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (body, None),
        };
        let mut numbers = Vec::new();
        for part in core.split('.') {
            let Some(value) = number(part) else {
                return Err(bad(
                    text,
                    "expected numbers separated by dots, such as 2.1 or 1.0.0.1234",
                ));
            };
            numbers.push(value);
        }
        if numbers.len() > MAX_VERSION_NUMBERS {
            return Err(bad(text, &format!("at most {MAX_VERSION_NUMBERS} numbers")));
        }
        let mut identifiers = Vec::new();
        if let Some(pre) = pre {
            for part in pre.split('.') {
                let ok = !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    return Err(bad(
                        text,
                        "a pre-release after `-` is dot-separated letters, digits and `-`, such as beta.1",
                    ));
                }
                identifiers.push(match number(part) {
                    Some(value) => PreId::Number(value),
                    None if part.bytes().all(|b| b.is_ascii_digit()) => {
                        return Err(bad(text, "pre-release number too large"));
                    }
                    None => PreId::Word(part.to_ascii_lowercase().into()),
                });
            }
        }
        Ok(Version {
            numbers: numbers.into(),
            pre: identifiers.into(),
            build,
        })
    }

    /// The numbers (`[10, 2]` for `10.2`).
    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    /// Whether there is a pre-release part.
    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Version order: numbers (missing ones are 0), then pre-release below release.
    pub fn compare(&self, other: &Version) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        for index in 0..len {
            let left = self.numbers.get(index).copied().unwrap_or(0);
            let right = other.numbers.get(index).copied().unwrap_or(0);
            match left.cmp(&right) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (left, right) in self.pre.iter().zip(other.pre.iter()) {
                    let order = match (left, right) {
                        (PreId::Number(left), PreId::Number(right)) => left.cmp(right),
                        (PreId::Number(_), PreId::Word(_)) => Ordering::Less,
                        (PreId::Word(_), PreId::Number(_)) => Ordering::Greater,
                        (PreId::Word(left), PreId::Word(right)) => left.cmp(right),
                    };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        }
    }

    /// Whether the first numbers are `prefix` (missing numbers count as 0).
    fn starts_with(&self, prefix: &[u64]) -> bool {
        prefix
            .iter()
            .enumerate()
            .all(|(index, &want)| self.numbers.get(index).copied().unwrap_or(0) == want)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_numbers(f, &self.numbers)?;
        for (index, identifier) in self.pre.iter().enumerate() {
            f.write_str(if index == 0 { "-" } else { "." })?;
            match identifier {
                PreId::Number(value) => write!(f, "{value}")?,
                PreId::Word(word) => f.write_str(word)?,
            }
        }
        if let Some(build) = &self.build {
            write!(f, "+{build}")?;
        }
        Ok(())
    }
}

fn write_numbers(f: &mut fmt::Formatter<'_>, numbers: &[u64]) -> fmt::Result {
    for (index, value) in numbers.iter().enumerate() {
        if index > 0 {
            f.write_str(".")?;
        }
        write!(f, "{value}")?;
    }
    Ok(())
}

/// An exact version or a wildcard such as `1.2.x` (also `1.2.X`, `1.2.*`), which
/// matches every version whose first numbers are `1.2`, pre-releases included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionPattern {
    /// Equal under [`Version::compare`].
    Exact(Version),
    /// The first numbers.
    Wildcard(Box<[u64]>),
}

impl VersionPattern {
    /// Parses `2.1`, `1.2.x`, `1.*`.
    pub fn parse(text: &str) -> Result<VersionPattern, VersionError> {
        let is_wild = |part: &str| matches!(part, "x" | "X" | "*");
        let body = strip_v(text);
        if !body.split('.').any(is_wild) {
            return Version::parse(text).map(VersionPattern::Exact);
        }
        let mut prefix = Vec::new();
        let mut wild = false;
        for part in body.split('.') {
            if is_wild(part) {
                wild = true;
            } else if wild {
                return Err(bad(
                    text,
                    "a wildcard (x or *) only stands at the end, as in 1.2.x",
                ));
            } else if let Some(value) = number(part) {
                prefix.push(value);
            } else {
                return Err(bad(
                    text,
                    "a wildcard pattern is numbers then x, such as 1.2.x",
                ));
            }
        }
        if prefix.is_empty() {
            return Err(bad(text, "a wildcard needs at least one number, as in 1.x"));
        }
        if prefix.len() > MAX_VERSION_NUMBERS {
            return Err(bad(text, &format!("at most {MAX_VERSION_NUMBERS} numbers")));
        }
        Ok(VersionPattern::Wildcard(prefix.into()))
    }

    /// Whether `version` matches.
    pub fn matches(&self, version: &Version) -> bool {
        match self {
            VersionPattern::Exact(exact) => version.compare(exact) == Ordering::Equal,
            VersionPattern::Wildcard(prefix) => version.starts_with(prefix),
        }
    }
}

impl fmt::Display for VersionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionPattern::Exact(version) => version.fmt(f),
            VersionPattern::Wildcard(prefix) => {
                write_numbers(f, prefix)?;
                f.write_str(".x")
            }
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// Every operator.
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    /// The symbol, as in both the text and the JSON form.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Parses a symbol (`==` is accepted for `=`).
    pub fn parse(symbol: &str) -> Option<CmpOp> {
        Some(match symbol {
            "=" | "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    /// Whether this operator orders (`<`, `<=`, `>`, `>=`).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// One comparison of a [`VersionRange`]: an ordering operator with an exact
/// version, or `=` / `!=` with a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Comparator {
    op: CmpOp,
    pattern: VersionPattern,
}

impl Comparator {
    /// A comparison; `None` for an ordering operator with a wildcard, whose meaning
    /// (`<1.2.x`?) would be a guess.
    pub fn new(op: CmpOp, pattern: VersionPattern) -> Option<Comparator> {
        if op.is_ordering() && matches!(pattern, VersionPattern::Wildcard(_)) {
            None
        } else {
            Some(Comparator { op, pattern })
        }
    }

    /// Parses `>=1.2`, `1.2.x` (`=` implied), `!=2.0.1`.
    pub fn parse(text: &str) -> Result<Comparator, VersionError> {
        let (op, rest) = ["<=", ">=", "!=", "==", "<", ">", "="]
            .iter()
            .find_map(|symbol| {
                text.strip_prefix(symbol)
                    .map(|rest| (CmpOp::parse(symbol).unwrap_or(CmpOp::Eq), rest))
            })
            .unwrap_or((CmpOp::Eq, text));
        let pattern = VersionPattern::parse(rest)?;
        Comparator::new(op, pattern).ok_or_else(|| {
            bad(
                text,
                "a wildcard only goes with = or !=; write >=1.2 instead of >=1.2.x",
            )
        })
    }

    /// Whether `version` satisfies the comparison.
    pub fn matches(&self, version: &Version) -> bool {
        match (self.op, &self.pattern) {
            (CmpOp::Eq, pattern) => pattern.matches(version),
            (CmpOp::Ne, pattern) => !pattern.matches(version),
            (op, VersionPattern::Exact(bound)) => {
                let order = version.compare(bound);
                match op {
                    CmpOp::Lt => order == Ordering::Less,
                    CmpOp::Le => order != Ordering::Greater,
                    CmpOp::Gt => order == Ordering::Greater,
                    _ => order != Ordering::Less,
                }
            }
            // Refused by `Comparator::new`.
            (_, VersionPattern::Wildcard(_)) => false,
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op != CmpOp::Eq {
            f.write_str(self.op.symbol())?;
        }
        self.pattern.fmt(f)
    }
}

/// Comparisons that must all hold, written separated by spaces: `>=1.2 <2.0`,
/// `1.2.x`, `2.0.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionRange {
    comparators: Box<[Comparator]>,
}

/// Most comparisons in one range.
const MAX_COMPARATORS: usize = 8;

impl VersionRange {
    /// Parses a range.
    pub fn parse(text: &str) -> Result<VersionRange, VersionError> {
        let comparators = text
            .split_ascii_whitespace()
            .map(Comparator::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if comparators.is_empty() {
            return Err(VersionError(
                "an empty version range; expected e.g. `>=1.2 <2.0` or `1.2.x`".into(),
            ));
        }
        if comparators.len() > MAX_COMPARATORS {
            return Err(VersionError(format!(
                "`{text}`: at most {MAX_COMPARATORS} comparisons in one range"
            )));
        }
        Ok(VersionRange {
            comparators: comparators.into(),
        })
    }

    /// A range of one comparison.
    pub(crate) fn single(comparator: Comparator) -> VersionRange {
        VersionRange {
            comparators: Box::new([comparator]),
        }
    }

    /// Whether `version` satisfies every comparison.
    pub fn matches(&self, version: &Version) -> bool {
        self.comparators
            .iter()
            .all(|comparator| comparator.matches(version))
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, comparator) in self.comparators.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            comparator.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn tolerant_versions_order() {
        let ascending = [
            "0.9",
            "1",
            "1.0.0.1234",
            "1.0.1",
            "1.2",
            "2.3.0-alpha",
            "2.3.0-alpha.1",
            "2.3.0-alpha.beta",
            "2.3.0-beta",
            "2.3.0-beta.2",
            "2.3.0-beta.11",
            "2.3.0-rc.1",
            "2.3.0",
            "10.2",
            "10.10",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(v(pair[0]).compare(&v(pair[1])), Ordering::Less, "{pair:?}");
            assert_eq!(
                v(pair[1]).compare(&v(pair[0])),
                Ordering::Greater,
                "{pair:?}"
            );
        }
        assert_eq!(v("10.2").compare(&v("10.2.0")), Ordering::Equal);
        assert_eq!(v("v2.1").compare(&v("2.1.0+45")), Ordering::Equal);
        assert_eq!(v("2.3.0-RC.1").compare(&v("2.3.0-rc.1")), Ordering::Equal);
        assert_ne!(v("10.2"), v("10.2.0"), "structural equality keeps the text");
    }

    #[test]
    fn versions_that_do_not_parse() {
        for text in [
            "",
            "x",
            "1.",
            ".1",
            "1..2",
            "1.2 beta",
            "1.2-",
            "1.2-beta..1",
            "1.2+",
            "1.2+a+b",
            "-1",
            "1.2.3.4.5.6.7.8.9",
            "v",
            "1.2.x",
            "99999999999999999999",
            "１.２",
        ] {
            assert!(Version::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn patterns_and_ranges() {
        let wildcard = VersionPattern::parse("1.2.x").unwrap();
        assert!(wildcard.matches(&v("1.2")));
        assert!(wildcard.matches(&v("1.2.9.1")));
        assert!(wildcard.matches(&v("1.2.0-beta")));
        assert!(!wildcard.matches(&v("1.3")));
        assert!(!wildcard.matches(&v("1")));
        assert_eq!(VersionPattern::parse("1.*.X").unwrap().to_string(), "1.x");
        for text in ["x", "*", "1.x.3", "a.x"] {
            assert!(VersionPattern::parse(text).is_err(), "{text}");
        }
        let range = VersionRange::parse(">=1.2  <2.0").unwrap();
        assert_eq!(range.to_string(), ">=1.2 <2.0");
        assert!(range.matches(&v("1.2")));
        assert!(range.matches(&v("1.99.3")));
        assert!(!range.matches(&v("2.0")));
        assert!(
            range.matches(&v("2.0-beta")),
            "a pre-release of 2.0 is below 2.0"
        );
        assert!(!range.matches(&v("1.1.9")));
        let except = VersionRange::parse("1.x !=1.4.2").unwrap();
        assert!(except.matches(&v("1.4.3")));
        assert!(!except.matches(&v("1.4.2")));
        assert!(VersionRange::parse(">=1.2.x").is_err());
        assert!(VersionRange::parse(" ").is_err());
        assert_eq!(VersionRange::parse("=1.2").unwrap().to_string(), "1.2");
    }

    fn version_text() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(0u64..30, 1..5),
            proptest::option::of(proptest::collection::vec(
                prop_oneof![(0u64..5).prop_map(|n| n.to_string()), "[a-c]{1,3}"],
                1..3,
            )),
        )
            .prop_map(|(numbers, pre)| {
                let mut text = numbers
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(".");
                if let Some(pre) = pre {
                    text.push('-');
                    text.push_str(&pre.join("."));
                }
                text
            })
    }

    proptest! {
        #[test]
        fn compare_is_a_total_order(a in version_text(), b in version_text(), c in version_text()) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
            if a.compare(&b) != Ordering::Greater && b.compare(&c) != Ordering::Greater {
                prop_assert_ne!(a.compare(&c), Ordering::Greater);
            }
        }

        #[test]
        fn display_parses_back(text in version_text()) {
            let version = v(&text);
            prop_assert_eq!(Version::parse(&version.to_string()), Ok(version));
        }

        #[test]
        fn trailing_zeros_do_not_matter(text in version_text()) {
            let version = v(&text);
            let (core, pre) = match text.split_once('-') {
                Some((core, pre)) => (core.to_string(), format!("-{pre}")),
                None => (text.clone(), String::new()),
            };
            let padded = v(&format!("{core}.0{pre}"));
            prop_assert_eq!(version.compare(&padded), Ordering::Equal);
        }
    }
}
