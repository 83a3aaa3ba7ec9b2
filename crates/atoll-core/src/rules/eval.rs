//! Compiled rules and their evaluation.
//!
//! Compiling does once what evaluation would otherwise repeat on every request:
//! versions and ranges are parsed, text values case-folded, long value lists put
//! in hash sets, the salt's hash prefix computed, 0 % and 100 % turned into
//! constants, and the members of each and/or group ordered cheapest first (every
//! test is free of side effects, so the order cannot change the answer, only how
//! soon a group short-circuits). Evaluation then allocates nothing.

use std::collections::HashSet;

use super::ast::{Condition, Field, FieldKind, Rule, Unit};
use super::context::{fold, text_slot, DeviceContext, Env};
use super::error::RuleError;
use super::version::{CmpOp, Comparator, VersionPattern, VersionRange};
use crate::bucketing::{BucketSalt, BUCKETS};

/// Value lists longer than this are looked up in a hash set instead of scanned.
const SCAN_LIMIT: usize = 8;

/// A validated rule ready for evaluation under one salt (the id of the release,
/// switch or experiment it belongs to). Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    root: Node,
    salt: BucketSalt,
}

impl Rule {
    /// Validates and compiles the rule; `salt` is the id of the release, switch or
    /// experiment whose percentages it decides.
    pub fn compile(&self, salt: &str) -> Result<CompiledRule, RuleError> {
        self.validate()?;
        Ok(CompiledRule {
            root: compile(self),
            salt: BucketSalt::new(salt),
        })
    }
}

impl CompiledRule {
    /// Whether `device` matches.
    #[inline]
    pub fn matches(&self, device: &DeviceContext, env: &Env<'_>) -> bool {
        self.root.matches(device, env, &self.salt)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Const(bool),
    /// A text or id field equal to one of `values`; `negated` for `!=`/`not in`.
    Str {
        source: Source,
        values: Values,
        negated: bool,
    },
    /// A version satisfying one of `ranges`.
    Version {
        field: Field,
        ranges: Box<[VersionRange]>,
        negated: bool,
    },
    List {
        user: bool,
        list: Box<str>,
        negated: bool,
    },
    Percent {
        threshold: u32,
        by_user: bool,
    },
    Segment(Box<str>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Text(usize),
    Device,
    User,
}

#[derive(Debug, Clone)]
pub(crate) enum Values {
    Scan(Box<[Box<str>]>),
    Set(HashSet<Box<str>>),
}

impl Values {
    fn new(values: Vec<Box<str>>) -> Values {
        if values.len() > SCAN_LIMIT {
            Values::Set(values.into_iter().collect())
        } else {
            Values::Scan(values.into())
        }
    }

    #[inline]
    fn contains(&self, value: &str) -> bool {
        match self {
            Values::Scan(values) => values.iter().any(|candidate| **candidate == *value),
            Values::Set(values) => values.contains(value),
        }
    }
}

/// A rough relative cost, to order group members cheapest first.
fn cost(node: &Node) -> u32 {
    match node {
        Node::Const(_) => 0,
        Node::Str { .. } => 1,
        Node::Version { .. } => 2,
        Node::Percent { .. } => 3,
        Node::List { .. } => 4,
        Node::Segment(_) => 16,
        Node::Not(member) => cost(member),
        Node::All(members) | Node::Any(members) => members.iter().map(cost).sum(),
    }
}

fn group(members: &[Rule]) -> Box<[Node]> {
    let mut nodes: Vec<Node> = members.iter().map(compile).collect();
    nodes.sort_by_key(cost);
    nodes.into()
}

pub(crate) fn compile(rule: &Rule) -> Node {
    match rule {
        Rule::All(members) => Node::All(group(members)),
        Rule::Any(members) => Node::Any(group(members)),
        Rule::Not(member) => Node::Not(Box::new(compile(member))),
        Rule::Condition(condition) => compile_condition(condition),
    }
}

fn source(field: Field) -> Source {
    match field {
        Field::Device => Source::Device,
        Field::User => Source::User,
        other => Source::Text(text_slot(other).unwrap_or(0)),
    }
}

fn compile_condition(condition: &Condition) -> Node {
    match condition {
        Condition::Compare { field, op, value } => match field.kind() {
            FieldKind::Version => {
                // `!=` is the negation of `=`, so that an unknown version is "not
                // equal" (see the module documentation of `rules`).
                let (op, negated) = match op {
                    CmpOp::Ne => (CmpOp::Eq, true),
                    other => (*other, false),
                };
                let range = VersionPattern::parse(value)
                    .ok()
                    .and_then(|pattern| Comparator::new(op, pattern))
                    .map(VersionRange::single);
                Node::Version {
                    field: *field,
                    ranges: range.into_iter().collect(),
                    negated,
                }
            }
            _ => Node::Str {
                source: source(*field),
                values: Values::new(vec![value_for(*field, value)]),
                negated: *op == CmpOp::Ne,
            },
        },
        Condition::In {
            field,
            negated,
            values,
        } => match field.kind() {
            FieldKind::Version => Node::Version {
                field: *field,
                ranges: values
                    .iter()
                    .filter_map(|value| VersionRange::parse(value).ok())
                    .collect(),
                negated: *negated,
            },
            _ => Node::Str {
                source: source(*field),
                values: Values::new(
                    values
                        .iter()
                        .map(|value| value_for(*field, value))
                        .collect(),
                ),
                negated: *negated,
            },
        },
        Condition::InList {
            field,
            negated,
            list,
        } => Node::List {
            user: *field == Field::User,
            list: list.as_str().into(),
            negated: *negated,
        },
        Condition::Percent { percentage, unit } => match percentage.thousandths() {
            0 => Node::Const(false),
            BUCKETS => Node::Const(true),
            threshold => Node::Percent {
                threshold,
                by_user: *unit == Unit::User,
            },
        },
        Condition::Segment { name } => Node::Segment(name.as_str().into()),
    }
}

fn value_for(field: Field, value: &str) -> Box<str> {
    match field.kind() {
        FieldKind::Text => fold(value),
        _ => value.into(),
    }
}

impl Node {
    pub(crate) fn matches(&self, device: &DeviceContext, env: &Env<'_>, salt: &BucketSalt) -> bool {
        match self {
            Node::All(members) => members
                .iter()
                .all(|member| member.matches(device, env, salt)),
            Node::Any(members) => members
                .iter()
                .any(|member| member.matches(device, env, salt)),
            Node::Not(member) => !member.matches(device, env, salt),
            Node::Const(answer) => *answer,
            Node::Str {
                source,
                values,
                negated,
            } => {
                let value = match source {
                    Source::Text(slot) => device.text(*slot),
                    Source::Device => Some(device.device_id()),
                    Source::User => device.user_id(),
                };
                value.is_some_and(|value| values.contains(value)) != *negated
            }
            Node::Version {
                field,
                ranges,
                negated,
            } => {
                let hit = device
                    .version(*field)
                    .is_some_and(|version| ranges.iter().any(|range| range.matches(version)));
                hit != *negated
            }
            Node::List {
                user,
                list,
                negated,
            } => {
                let id = if *user {
                    device.user_id()
                } else {
                    Some(device.device_id())
                };
                id.is_some_and(|id| env.lists.contains(list, id)) != *negated
            }
            Node::Percent { threshold, by_user } => {
                // Without a signed-in user, a by-user percentage buckets the device:
                // the device gets a stable answer now, and may get another once a
                // user signs in.
                let unit = match by_user {
                    true => device.user_id().unwrap_or(device.device_id()),
                    false => device.device_id(),
                };
                salt.bucket(unit) < *threshold
            }
            Node::Segment(name) => env.segments.is_member(name, device),
        }
    }
}
