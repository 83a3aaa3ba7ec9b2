//! Cross-cutting tests of the rule engine: the golden vectors in
//! `contracts/rules.json`, and properties over generated rules (both forms convert
//! without loss; the compiled evaluator agrees with a direct reading of the
//! documented semantics; percentages only grow).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::bucketing::{self, Percentage};

// ---------------------------------------------------------------------------
// A reference evaluator: the semantics of `rules` (module documentation) read
// as directly as possible, with none of the compiler's preparation.

struct Fixture {
    lists: MemoryLists,
    /// Device ids in each segment.
    segments: HashMap<String, HashSet<String>>,
}

impl SegmentMembership for Fixture {
    fn is_member(&self, segment: &str, device: &DeviceContext) -> bool {
        self.segments
            .get(segment)
            .is_some_and(|devices| devices.contains(device.device_id()))
    }
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|text| !text.is_empty())
}

fn attribute(attributes: &DeviceAttributes, field: Field) -> Option<&str> {
    match field {
        Field::AppVersion => nonempty(&attributes.app_version),
        Field::OsVersion => nonempty(&attributes.os_version),
        Field::Platform => nonempty(&attributes.platform),
        Field::Os => nonempty(&attributes.os),
        Field::Model => nonempty(&attributes.model),
        Field::Channel => nonempty(&attributes.channel),
        Field::Region => nonempty(&attributes.region),
        Field::City => nonempty(&attributes.city),
        Field::Network => nonempty(&attributes.network),
        Field::Locale => nonempty(&attributes.locale),
        Field::Device => Some(attributes.device_id.as_str()),
        Field::User => nonempty(&attributes.user_id),
    }
}

fn equal(field: Field, device: &str, value: &str) -> bool {
    match field.kind() {
        FieldKind::Text => device.to_lowercase() == value.to_lowercase(),
        _ => device == value,
    }
}

fn reference(rule: &Rule, attributes: &DeviceAttributes, salt: &str, fixture: &Fixture) -> bool {
    let all = |members: &Vec<Rule>| {
        members
            .iter()
            .all(|m| reference(m, attributes, salt, fixture))
    };
    match rule {
        Rule::All(members) => all(members),
        Rule::Any(members) => members
            .iter()
            .any(|m| reference(m, attributes, salt, fixture)),
        Rule::Not(member) => !reference(member, attributes, salt, fixture),
        Rule::Condition(condition) => match condition {
            Condition::Compare { field, op, value } => {
                let Some(device) = attribute(attributes, *field) else {
                    return *op == CmpOp::Ne;
                };
                if field.kind() == FieldKind::Version {
                    let Ok(version) = Version::parse(device.trim()) else {
                        return *op == CmpOp::Ne;
                    };
                    return match op {
                        CmpOp::Eq => VersionPattern::parse(value).unwrap().matches(&version),
                        CmpOp::Ne => !VersionPattern::parse(value).unwrap().matches(&version),
                        _ => {
                            // An ordering takes an exact version, whose last
                            // pre-release part may be `x` (`1.0-beta.x`).
                            let bound = Version::parse(value).unwrap();
                            let order = version.compare(&bound);
                            match op {
                                CmpOp::Lt => order == Ordering::Less,
                                CmpOp::Le => order != Ordering::Greater,
                                CmpOp::Gt => order == Ordering::Greater,
                                _ => order != Ordering::Less,
                            }
                        }
                    };
                }
                equal(*field, device, value) != (*op == CmpOp::Ne)
            }
            Condition::In {
                field,
                negated,
                values,
            } => {
                let hit = attribute(attributes, *field).is_some_and(|device| {
                    if field.kind() == FieldKind::Version {
                        Version::parse(device.trim()).is_ok_and(|version| {
                            values
                                .iter()
                                .any(|range| VersionRange::parse(range).unwrap().matches(&version))
                        })
                    } else {
                        values.iter().any(|value| equal(*field, device, value))
                    }
                });
                hit != *negated
            }
            Condition::InList {
                field,
                negated,
                list,
            } => {
                let hit = attribute(attributes, *field)
                    .is_some_and(|id| fixture.lists.contains(list, id));
                hit != *negated
            }
            Condition::Percent { percentage, unit } => {
                let id = match unit {
                    Unit::User => nonempty(&attributes.user_id).unwrap_or(&attributes.device_id),
                    Unit::Device => &attributes.device_id,
                };
                let joined = format!("{salt}:{id}");
                bucketing::murmur3_x86_32(joined.as_bytes(), 0) % bucketing::BUCKETS
                    < percentage.thousandths()
            }
            Condition::Segment { name } => fixture
                .segments
                .get(name)
                .is_some_and(|devices| devices.contains(&attributes.device_id)),
        },
    }
}

// ---------------------------------------------------------------------------
// Golden vectors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Golden {
    #[allow(dead_code)]
    description: String,
    version: u32,
    lists: HashMap<String, Vec<String>>,
    segments: HashMap<String, Vec<String>>,
    cases: Vec<Case>,
    rule_sets: Vec<SetCase>,
    errors: Vec<ErrorCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    text: String,
    #[serde(default)]
    also: Vec<String>,
    json: Value,
    salt: String,
    devices: Vec<DeviceCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceCase {
    attributes: DeviceAttributes,
    matches: bool,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetCase {
    name: String,
    salt: String,
    set: Value,
    devices: Vec<SetDeviceCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDeviceCase {
    attributes: DeviceAttributes,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorCase {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    json: Option<Value>,
    code: String,
    #[serde(default)]
    column: Option<usize>,
    #[serde(default)]
    path: Option<String>,
}

fn golden() -> (Golden, Fixture) {
    let golden: Golden =
        serde_json::from_str(include_str!("../../../../contracts/rules.json")).unwrap();
    let mut lists = MemoryLists::new();
    for (name, ids) in &golden.lists {
        lists.insert(name, ids.iter().cloned()).unwrap();
    }
    let segments = golden
        .segments
        .iter()
        .map(|(name, devices)| (name.clone(), devices.iter().cloned().collect()))
        .collect();
    (golden, Fixture { lists, segments })
}

#[test]
fn golden_rules() {
    let (golden, fixture) = golden();
    assert_eq!(golden.version, 1);
    assert!(golden.cases.len() >= 20);
    let env = Env::new(&fixture.lists, &fixture);
    for case in &golden.cases {
        let name = &case.name;
        let parsed = Rule::parse(&case.text)
            .unwrap_or_else(|error| panic!("{name}: {}", error.render(&case.text)));
        assert_eq!(
            parsed.to_string(),
            case.text,
            "{name}: the text is canonical"
        );
        let from_json =
            Rule::from_json(&case.json).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(from_json, parsed, "{name}: text and JSON are the same rule");
        assert_eq!(parsed.to_json(), case.json, "{name}: the JSON is canonical");
        for other in &case.also {
            assert_eq!(Rule::parse(other).as_ref(), Ok(&parsed), "{name}: {other}");
        }
        let compiled = parsed.compile(&case.salt).unwrap();
        for device in &case.devices {
            let context = DeviceContext::new(device.attributes.clone());
            assert_eq!(
                compiled.matches(&context, &env),
                device.matches,
                "{name}: {:?}",
                device.attributes
            );
            assert_eq!(
                reference(&parsed, &device.attributes, &case.salt, &fixture),
                device.matches,
                "{name} (reference): {:?}",
                device.attributes
            );
        }
    }
    for case in &golden.rule_sets {
        let set = RuleSet::<Value>::from_json(&case.set)
            .unwrap_or_else(|error| panic!("{}: {error}", case.name));
        let compiled = set.compile(&case.salt).unwrap();
        for device in &case.devices {
            let context = DeviceContext::new(device.attributes.clone());
            assert_eq!(
                compiled.evaluate(&context, &env),
                &device.value,
                "{}: {:?}",
                case.name,
                device.attributes
            );
        }
    }
    assert!(golden.errors.len() >= 15);
    for case in &golden.errors {
        let (error, label) = match (&case.text, &case.json) {
            (Some(text), None) => (Rule::parse(text).expect_err(text), text.clone()),
            (None, Some(json)) => (
                Rule::from_json(json).expect_err(&json.to_string()),
                json.to_string(),
            ),
            _ => panic!("an error case has either text or json"),
        };
        assert_eq!(error.code.as_str(), case.code, "{label}: {error}");
        match &error.location {
            Some(Location::Column(column)) => assert_eq!(Some(*column), case.column, "{label}"),
            Some(Location::Path(path)) => assert_eq!(Some(path), case.path.as_ref(), "{label}"),
            None => assert!(case.column.is_none() && case.path.is_none(), "{label}"),
        }
    }
}

#[test]
fn every_error_code_is_distinct_and_parses_back() {
    let codes: HashSet<&str> = RuleErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    assert_eq!(codes.len(), RuleErrorCode::ALL.len());
    for code in RuleErrorCode::ALL {
        assert_eq!(RuleErrorCode::parse(code.as_str()), Some(*code));
    }
}

// ---------------------------------------------------------------------------
// Generated rules. Values come mostly from small pools shared with the generated
// devices, so that conditions match often enough to test something.

const PLATFORMS: [&str; 6] = ["android", "ios", "IOS", "Harmony", "web", "miniprogram"];
const TEXTS: [&str; 8] = [
    "play",
    "Play",
    "huawei",
    "wifi",
    "4G",
    "上海",
    "São Paulo",
    "and",
];
const IDS: [&str; 6] = ["dev-1", "dev-2", "Dev-1", "u-1", "u-2", "a\"b\\c"];
const VERSIONS: [&str; 8] = [
    "1.0",
    "1.2",
    "1.2.0",
    "1.2.5",
    "2.0.0-beta.1",
    "2.0",
    "10.1",
    "v2.1.0+7",
];
const LISTS: [&str; 2] = ["beta", "and"];
const SEGMENTS: [&str; 2] = ["whales", "new-users"];

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(pool).prop_map(str::to_string)
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => pick(&TEXTS),
        1 => "[a-zA-Z0-9_.+*@-]{1,12}",
        1 => "[ a-z\"\\\\'(),]{1,8}",
        1 => "(and|OR|Not|in|list|percent)",
        1 => "[\u{4e00}-\u{4e10}é ]{1,4}",
    ]
}

fn id_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => pick(&IDS), 1 => "[!-~]{1,20}"]
}

fn version_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => pick(&VERSIONS),
        // A pre-release part never starts with `x`: in a range `1.0-b.x` reads
        // as a wildcard, which only `=` and `!=` take.
        1 => "v?[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(-[a-wyz0-9][a-z0-9]{0,3}(\\.[a-wyz0-9][a-z0-9]{0,2})?)?(\\+[a-z0-9]{1,3})?",
    ]
}

fn pattern_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => version_value(),
        1 => "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}\\.(x|X|\\*)",
    ]
}

fn range_value() -> impl Strategy<Value = String> {
    let comparator = prop_oneof![
        ("(>=|<|<=|>)", version_value()).prop_map(|(op, version)| format!("{op}{version}")),
        ("(|=|!=)", pattern_value()).prop_map(|(op, pattern)| format!("{op}{pattern}")),
    ];
    proptest::collection::vec(comparator, 1..3).prop_map(|parts| parts.join(" "))
}

fn text_field() -> impl Strategy<Value = Field> {
    proptest::sample::select(&Field::ALL[3..10])
}

fn condition() -> impl Strategy<Value = Condition> {
    let version_field = proptest::sample::select(&[Field::AppVersion, Field::OsVersion][..]);
    let id_field = proptest::sample::select(&[Field::Device, Field::User][..]);
    let equality = proptest::sample::select(&[CmpOp::Eq, CmpOp::Ne][..]);
    let ordering = proptest::sample::select(&[CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..]);
    let values = |value: BoxedStrategy<String>| proptest::collection::vec(value, 1..4);
    prop_oneof![
        (text_field(), equality.clone(), text_value())
            .prop_map(|(field, op, value)| Condition::Compare { field, op, value }),
        (equality.clone(), pick(&PLATFORMS)).prop_map(|(op, value)| Condition::Compare {
            field: Field::Platform,
            op,
            value
        }),
        (id_field.clone(), equality.clone(), id_value())
            .prop_map(|(field, op, value)| Condition::Compare { field, op, value }),
        (version_field.clone(), ordering, version_value())
            .prop_map(|(field, op, value)| Condition::Compare { field, op, value }),
        (version_field.clone(), equality, pattern_value())
            .prop_map(|(field, op, value)| Condition::Compare { field, op, value }),
        (text_field(), any::<bool>(), values(text_value().boxed())).prop_map(
            |(field, negated, values)| Condition::In {
                field,
                negated,
                values
            }
        ),
        (id_field.clone(), any::<bool>(), values(id_value().boxed())).prop_map(
            |(field, negated, values)| Condition::In {
                field,
                negated,
                values
            }
        ),
        (version_field, any::<bool>(), values(range_value().boxed())).prop_map(
            |(field, negated, values)| Condition::In {
                field,
                negated,
                values
            }
        ),
        (id_field, any::<bool>(), pick(&LISTS)).prop_map(|(field, negated, list)| {
            Condition::InList {
                field,
                negated,
                list,
            }
        }),
        (0u32..=bucketing::BUCKETS, any::<bool>()).prop_map(|(thousandths, by_user)| {
            Condition::Percent {
                percentage: Percentage::from_thousandths(thousandths).unwrap(),
                unit: if by_user { Unit::User } else { Unit::Device },
            }
        }),
        pick(&SEGMENTS).prop_map(|name| Condition::Segment { name }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    condition()
        .prop_map(Rule::Condition)
        .prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Rule::All),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Rule::Any),
                inner.prop_map(|member| Rule::Not(Box::new(member))),
            ]
        })
        .prop_filter("within the limits", |rule| rule.validate().is_ok())
}

fn maybe(pool: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => pick(pool).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(String::new())),
    ]
}

fn device() -> impl Strategy<Value = DeviceAttributes> {
    (
        pick(&IDS),
        maybe(&IDS),
        maybe(&VERSIONS),
        maybe(&PLATFORMS),
        maybe(&VERSIONS),
        maybe(&TEXTS),
        maybe(&TEXTS),
        maybe(&TEXTS),
    )
        .prop_map(
            |(device_id, user_id, app_version, platform, os_version, channel, city, network)| {
                DeviceAttributes {
                    device_id,
                    user_id,
                    app_version,
                    platform,
                    os_version,
                    channel,
                    city,
                    network,
                    ..DeviceAttributes::default()
                }
            },
        )
}

fn fixture() -> Fixture {
    let mut lists = MemoryLists::new();
    lists.insert("beta", ["dev-1", "u-1"]).unwrap();
    lists.insert("and", ["u-2", "Dev-1"]).unwrap();
    let segments = HashMap::from([
        ("whales".to_string(), HashSet::from(["dev-2".to_string()])),
        (
            "new-users".to_string(),
            HashSet::from(["dev-1".to_string(), "u-1".to_string()]),
        ),
    ]);
    Fixture { lists, segments }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_form_round_trips(rule in rule()) {
        let text = rule.to_string();
        let parsed = Rule::parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&rule), "{}", text);
        prop_assert!(!text.contains('\n'));
    }

    #[test]
    fn json_form_round_trips(rule in rule()) {
        let back = Rule::from_json(&rule.to_json());
        prop_assert_eq!(back.as_ref(), Ok(&rule));
        let through_text: Rule = serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
        prop_assert_eq!(through_text, rule);
    }

    #[test]
    fn compiled_rules_agree_with_the_reference(
        rule in rule(),
        devices in proptest::collection::vec(device(), 8),
        salt in "[a-z_]{0,12}",
    ) {
        let fixture = fixture();
        let env = Env::new(&fixture.lists, &fixture);
        let compiled = rule.compile(&salt).unwrap();
        for attributes in devices {
            let expected = reference(&rule, &attributes, &salt, &fixture);
            let context = DeviceContext::new(attributes.clone());
            prop_assert_eq!(compiled.matches(&context, &env), expected, "{} on {:?}", rule, attributes);
        }
    }

    #[test]
    fn raising_a_rules_percentage_never_excludes(
        prefix in rule(),
        low in 0u32..=bucketing::BUCKETS,
        raise in 0u32..=bucketing::BUCKETS,
        by_user in any::<bool>(),
        devices in proptest::collection::vec(device(), 8),
    ) {
        let unit = if by_user { Unit::User } else { Unit::Device };
        let with = |thousandths: u32| {
            let percent = Rule::Condition(Condition::Percent {
                percentage: Percentage::from_thousandths(thousandths.min(bucketing::BUCKETS)).unwrap(),
                unit,
            });
            Rule::All(vec![prefix.clone(), percent]).compile("rel_1")
        };
        let (Ok(low_rule), Ok(high_rule)) = (with(low), with(low + raise)) else {
            return Ok(()); // the prefix was already at the condition limit
        };
        let fixture = fixture();
        let env = Env::new(&fixture.lists, &fixture);
        for attributes in devices {
            let context = DeviceContext::new(attributes);
            if low_rule.matches(&context, &env) {
                prop_assert!(high_rule.matches(&context, &env));
            }
        }
    }

    #[test]
    fn the_parser_never_panics(text in "\\PC{0,60}") {
        if let Ok(rule) = Rule::parse(&text) {
            prop_assert_eq!(Rule::parse(&rule.to_string()), Ok(rule));
        }
    }

    #[test]
    fn the_parser_never_panics_on_rule_like_text(
        words in proptest::collection::vec(
            "(and|or|not|in|list|:|\\(|\\)|,|=|!=|>=|<|percent|segment|platform|app_version|user|ios|1\\.2|\"x y\"|5|%)",
            0..20,
        )
    ) {
        let text = words.join(" ");
        if let Ok(rule) = Rule::parse(&text) {
            prop_assert_eq!(Rule::parse(&rule.to_string()), Ok(rule));
        }
    }
}
