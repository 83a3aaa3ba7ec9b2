//! Target rules: the one targeting language of releases, switches, experiments,
//! campaigns and push audiences (DESIGN.md §1).
//!
//! A [`Rule`] is conditions on a device combined with `and`, `or` and `not`. It has
//! two forms that convert into each other without loss: the JSON form ([`json`],
//! what the API stores) and a one-line text form ([`text`], for the CLI):
//!
//! ```
//! use atoll_core::rules::{DeviceAttributes, DeviceContext, Env, Rule};
//!
//! let rule = Rule::parse("app_version >= 2.1 and platform in (android, ios) and percent(5)")?;
//! let compiled = rule.compile("sw_new_checkout")?; // the salt: the switch's id
//! let device = DeviceContext::new(DeviceAttributes {
//!     device_id: "8c1e6f1a".into(),
//!     app_version: Some("2.3.0".into()),
//!     platform: Some("android".into()),
//!     ..DeviceAttributes::default()
//! });
//! let _included: bool = compiled.matches(&device, &Env::empty());
//! assert_eq!(Rule::from_json(&rule.to_json())?, rule);
//! assert_eq!(Rule::parse(&rule.to_string())?, rule);
//! # Ok::<(), atoll_core::rules::RuleError>(())
//! ```
//!
//! A [`RuleSet`] is an ordered list of (rule, value) with a default: the first rule
//! that matches wins.
//!
//! # Conditions and their meaning
//!
//! | field | kind | operators |
//! |---|---|---|
//! | `app_version`, `os_version` | version | `=` `!=` (exact or `1.2.x`), `<` `<=` `>` `>=`, `in`/`not in` (ranges such as `">=1.2 <2.0"`) |
//! | `platform`, `os`, `model`, `channel`, `region`, `city`, `network`, `locale` | text | `=` `!=` `in` `not in` |
//! | `device`, `user` | id | `=` `!=` `in` `not in`, `in list:NAME`, `not in list:NAME` |
//!
//! plus `percent(P)` / `percent(P, user)` and `segment(NAME)`.
//!
//! - **Case.** Text fields ignore case (both sides are lower-cased with Unicode
//!   rules, once: rule values when compiled, device values when the
//!   [`DeviceContext`] is prepared). Ids, list names and segment names are exact.
//!   Keywords and field names in the text form ignore case.
//! - **Versions** are tolerant dotted versions ([`version`]): `10.2` = `10.2.0`,
//!   `2.3.0-beta.1` < `2.3.0`.
//! - **Missing attributes.** A device without the attribute (or with an empty one,
//!   or with a version that does not parse) matches no *positive* test (`=`, `in`,
//!   `<`, `>=`, `in list`, ...), and therefore every negative one: `!=` and
//!   `not in` are exactly `not (=)` and `not (in)`. So `user not in list:blocked`
//!   includes anonymous devices, and `app_version < 2.0` excludes devices whose
//!   version is unknown.
//! - **Percentages** use [`crate::bucketing`]: the unit is the device id, or the
//!   user id with `percent(P, user)`; a device with no signed-in user falls back
//!   to its device id (a stable answer now; possibly another after sign-in). The
//!   salt is given by the caller when compiling (the release, switch or experiment
//!   id), so two percentages in one rule pick nested sets of units, while
//!   different releases pick unrelated ones. Raising P never moves a unit out.
//! - **Lists** are uploaded id lists ([`Lists`], [`MemoryLists`]: up to
//!   [`MAX_LIST_IDS`] ids); a missing list is empty. **Segments** are a hook
//!   ([`SegmentMembership`]) answered by whoever computes them.
//!
//! # Limits
//!
//! At most [`MAX_CONDITIONS`] conditions, [`MAX_DEPTH`] levels of groups,
//! [`MAX_INLINE_VALUES`] values per `in ( )`, [`MAX_TEXT_LEN`] bytes of text,
//! [`MAX_RULES`] rules per set. Every violation is a [`RuleError`] with a stable
//! [`RuleErrorCode`] and a column or JSON pointer.
//!
//! # Speed
//!
//! Rules are compiled ([`Rule::compile`]) once and evaluated many times; a typical
//! rule of four conditions with a percentage takes tens of nanoseconds (see
//! `bench/README.md`, "Target rules").

pub mod ast;
pub mod context;
pub mod error;
pub mod eval;
pub mod json;
pub mod ruleset;
pub mod text;
pub mod version;

#[cfg(test)]
mod tests;

pub use ast::{Condition, Field, FieldKind, Rule, Unit};
pub use context::{
    DeviceAttributes, DeviceContext, Env, Lists, MemoryLists, NoLists, NoSegments,
    SegmentMembership,
};
pub use error::{Location, RuleError, RuleErrorCode};
pub use eval::CompiledRule;
pub use ruleset::{CompiledRuleSet, RuleSet, TargetedValue};
pub use version::{CmpOp, Comparator, Version, VersionError, VersionPattern, VersionRange};

/// Most levels of `and`/`or`/`not` above a condition.
pub const MAX_DEPTH: usize = 10;
/// Most conditions in one rule.
pub const MAX_CONDITIONS: usize = 64;
/// Most values in one `in ( )`; longer id lists are uploaded as lists.
pub const MAX_INLINE_VALUES: usize = 1000;
/// Longest text value, in characters.
pub const MAX_VALUE_LEN: usize = 256;
/// Longest list or segment name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest text form, in bytes.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Most rules in one rule set.
pub const MAX_RULES: usize = 100;
/// Most ids in one uploaded list.
pub const MAX_LIST_IDS: usize = 100_000;
