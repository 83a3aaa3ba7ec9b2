//! Mock answers: a JSON value generated from an API's response schema, so apps can
//! be built before the backend exists.
//!
//! The subset of JSON Schema (draft 2020-12) and OpenAPI 3 understood: `type` (a
//! name or a list; the first that is not `null` is used), `properties` (all are
//! generated) and `required`, `items` and `prefixItems`, `enum`, `const`,
//! `example`, `examples` and `default` (a value written by a person beats a
//! random one, so they are preferred), `format` (`date-time`, `date`, `time`,
//! `uuid`, `email`, `uri`, `hostname`, `ipv4`, `ipv6`), `minimum`/`maximum` (and
//! their exclusive forms, both styles), `multipleOf`, `minLength`/`maxLength`,
//! `minItems`/`maxItems` (1 to 3 items by default), `uniqueItems`, `oneOf`/`anyOf`
//! (the first alternative), `allOf` (merged), `nullable` and local `$ref`s
//! (`#/$defs/...`, `#/definitions/...`, `#/components/schemas/...`, any local JSON
//! pointer). `pattern` is not followed.
//!
//! The output is the same for the same schema and seed (a SplitMix64 generator of
//! our own, so it does not change with a dependency's version). Schemas come from
//! tenants, so the work is bounded: `$ref`s nest at most 16 deep (after 4, only
//! required properties and the fewest items are generated, which ends most
//! recursive schemas), and the output is at most about 1 MiB.

use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// Deepest chain of `$ref`s followed.
pub const MAX_REF_DEPTH: u32 = 16;
/// From this many nested `$ref`s on, only what is required is generated.
const SHALLOW_REF_DEPTH: u32 = 4;
/// Deepest nesting of schemas (inline and referenced).
const MAX_DEPTH: u32 = 64;
/// Bytes of output (strings plus 8 per value) generated at most.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Why no value could be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    /// The schema is not valid (for this subset).
    #[error("invalid schema at {at}: {reason}")]
    Invalid {
        /// JSON pointer of the offending schema.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A `$ref` that cannot be followed.
    #[error("cannot resolve $ref '{reference}' at {at}: {reason}")]
    Ref {
        /// JSON pointer of the schema holding the `$ref`.
        at: String,
        /// The reference.
        reference: String,
        /// Why.
        reason: &'static str,
    },
    /// `$ref`s or schemas nested too deep.
    #[error(
        "schema nesting at {at} is deeper than the mock generator follows (16 $refs, 64 levels)"
    )]
    TooDeep {
        /// JSON pointer where it stopped.
        at: String,
    },
    /// The value would be larger than [`MAX_OUTPUT_BYTES`].
    #[error("the generated value would be larger than 1 MiB")]
    TooLarge,
}

/// Generates a value matching `schema`, the same one for the same seed.
pub fn generate(schema: &Value, seed: u64) -> Result<Value, MockError> {
    let mut generator = Generator {
        root: schema,
        rng: SplitMix64(seed),
        budget: MAX_OUTPUT_BYTES,
    };
    generator.value(schema, "#", 0, 0)
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (bias below 2^-64 per draw, irrelevant for mocks).
    fn between(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo + 1) as u128;
        let draw = (u128::from(self.next()) << 64) | u128::from(self.next());
        lo + (draw % span) as i128
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }
}

struct Generator<'r> {
    root: &'r Value,
    rng: SplitMix64,
    budget: usize,
}

fn invalid(at: &str, reason: impl Into<String>) -> MockError {
    MockError::Invalid {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "string", "integer",
];

impl<'r> Generator<'r> {
    /// Charges `bytes` of output against the budget.
    fn spend(&mut self, bytes: usize) -> Result<(), MockError> {
        self.budget = self.budget.checked_sub(bytes).ok_or(MockError::TooLarge)?;
        Ok(())
    }

    /// Charges a value copied from the schema (walks it, stopping once over).
    fn charge(&mut self, value: &Value) -> Result<(), MockError> {
        self.spend(8)?;
        match value {
            Value::String(text) => self.spend(text.len()),
            Value::Array(items) => items.iter().try_for_each(|item| self.charge(item)),
            Value::Object(map) => map.iter().try_for_each(|(name, item)| {
                self.spend(name.len())?;
                self.charge(item)
            }),
            _ => Ok(()),
        }
    }

    fn resolve(&self, reference: &str, at: &str) -> Result<&'r Value, MockError> {
        let error = |reason| MockError::Ref {
            at: at.to_owned(),
            reference: reference.to_owned(),
            reason,
        };
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| error("only local references (starting with '#') are followed"))?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(error("a local reference is '#' or '#/a/json/pointer'"));
        }
        self.root
            .pointer(pointer)
            .ok_or_else(|| error("nothing at that location"))
    }

    fn value(
        &mut self,
        schema: &Value,
        at: &str,
        refs: u32,
        depth: u32,
    ) -> Result<Value, MockError> {
        if depth > MAX_DEPTH {
            return Err(MockError::TooDeep { at: at.to_owned() });
        }
        self.spend(8)?;
        let schema = match schema {
            Value::Bool(true) => return Ok(Value::Null),
            Value::Bool(false) => return Err(invalid(at, "the schema `false` admits no value")),
            Value::Object(schema) => schema,
            _ => return Err(invalid(at, "a schema is an object or a boolean")),
        };
        let shallow = refs >= SHALLOW_REF_DEPTH;

        // Values written by a person.
        for keyword in ["const", "example", "default"] {
            if let Some(value) = schema.get(keyword) {
                self.charge(value)?;
                return Ok(value.clone());
            }
        }
        if let Some(examples) = schema.get("examples") {
            let examples = examples
                .as_array()
                .ok_or_else(|| invalid(at, "`examples` must be an array"))?;
            if let Some(first) = examples.first() {
                self.charge(first)?;
                return Ok(first.clone());
            }
        }
        if let Some(options) = schema.get("enum") {
            let options = options
                .as_array()
                .filter(|o| !o.is_empty())
                .ok_or_else(|| invalid(at, "`enum` must be a non-empty array"))?;
            let pick = &options[self.rng.between(0, options.len() as i128 - 1) as usize];
            self.charge(pick)?;
            return Ok(pick.clone());
        }

        if let Some(reference) = schema.get("$ref") {
            let reference = reference
                .as_str()
                .ok_or_else(|| invalid(at, "`$ref` must be a string"))?;
            if refs + 1 > MAX_REF_DEPTH {
                return Err(MockError::TooDeep { at: at.to_owned() });
            }
            let target = self.resolve(reference, at)?;
            return self.value(target, reference, refs + 1, depth + 1);
        }
        if schema.contains_key("allOf") {
            let mut merged = Map::new();
            let refs = self.merge_all_of(schema, at, refs, depth, &mut merged)?;
            return self.value(&Value::Object(merged), at, refs, depth + 1);
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(keyword) {
                let options = options
                    .as_array()
                    .filter(|o| !o.is_empty())
                    .ok_or_else(|| invalid(at, format!("`{keyword}` must be a non-empty array")))?;
                // Deep in a recursive schema, take the way out if there is one.
                let index = if shallow {
                    options
                        .iter()
                        .position(|o| o.get("type").and_then(Value::as_str) == Some("null"))
                        .or_else(|| options.iter().position(|o| o.get("$ref").is_none()))
                        .unwrap_or(0)
                } else {
                    0
                };
                return self.value(
                    &options[index],
                    &format!("{at}/{keyword}/{index}"),
                    refs,
                    depth + 1,
                );
            }
        }

        let nullable = schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kind = match schema.get("type") {
            None => infer_type(schema),
            Some(Value::String(name)) => name.as_str(),
            Some(Value::Array(names)) => {
                let mut first = None;
                let mut has_null = false;
                for name in names {
                    let name = name.as_str().ok_or_else(|| {
                        invalid(at, "`type` must be a string or an array of strings")
                    })?;
                    if !TYPES.contains(&name) {
                        return Err(invalid(at, format!("unknown type '{name}'")));
                    }
                    if name == "null" {
                        has_null = true;
                    } else if first.is_none() {
                        first = Some(name);
                    }
                }
                if shallow && has_null {
                    return Ok(Value::Null);
                }
                first.unwrap_or("null")
            }
            Some(other) => {
                return Err(invalid(
                    at,
                    format!("`type` must be a string or an array of strings, not {other}"),
                ))
            }
        };
        if shallow && nullable {
            return Ok(Value::Null);
        }
        match kind {
            "null" => Ok(Value::Null),
            "boolean" => Ok(Value::Bool(self.rng.next() & 1 == 1)),
            "string" => self.string(schema, at).map(Value::String),
            "integer" => self.integer(schema, at),
            "number" => self.number(schema, at),
            "array" => self.array(schema, at, refs, depth),
            "object" => self.object(schema, at, refs, depth),
            "any" => Ok(Value::Null),
            other => Err(invalid(at, format!("unknown type '{other}'"))),
        }
    }

    /// Flattens `allOf` (and the `$ref`s of its members) into one schema:
    /// properties and `required` are united, other keywords keep the first value
    /// seen. Returns the `$ref` depth reached.
    fn merge_all_of(
        &mut self,
        schema: &Map<String, Value>,
        at: &str,
        mut refs: u32,
        depth: u32,
        merged: &mut Map<String, Value>,
    ) -> Result<u32, MockError> {
        if depth > MAX_DEPTH {
            return Err(MockError::TooDeep { at: at.to_owned() });
        }
        for (keyword, value) in schema {
            match keyword.as_str() {
                "allOf" | "$ref" => {}
                "properties" => {
                    let properties = value
                        .as_object()
                        .ok_or_else(|| invalid(at, "`properties` must be an object"))?;
                    let target = merged
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(target) = target {
                        for (name, property) in properties {
                            target
                                .entry(name.clone())
                                .or_insert_with(|| property.clone());
                        }
                    }
                }
                "required" => {
                    let names = value
                        .as_array()
                        .ok_or_else(|| invalid(at, "`required` must be an array"))?;
                    let target = merged
                        .entry("required")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(target) = target {
                        for name in names {
                            if !target.contains(name) {
                                target.push(name.clone());
                            }
                        }
                    }
                }
                _ => {
                    merged
                        .entry(keyword.clone())
                        .or_insert_with(|| value.clone());
                }
            }
        }
        if let Some(reference) = schema.get("$ref") {
            let reference = reference
                .as_str()
                .ok_or_else(|| invalid(at, "`$ref` must be a string"))?;
            refs += 1;
            if refs > MAX_REF_DEPTH {
                return Err(MockError::TooDeep { at: at.to_owned() });
            }
            let target = self.resolve(reference, at)?;
            let target = target
                .as_object()
                .ok_or_else(|| invalid(reference, "an allOf member must be an object schema"))?;
            refs = self.merge_all_of(target, reference, refs, depth + 1, merged)?;
        }
        if let Some(members) = schema.get("allOf") {
            let members = members
                .as_array()
                .ok_or_else(|| invalid(at, "`allOf` must be an array"))?;
            for (i, member) in members.iter().enumerate() {
                let member_at = format!("{at}/allOf/{i}");
                let member = member.as_object().ok_or_else(|| {
                    invalid(&member_at, "an allOf member must be an object schema")
                })?;
                refs = refs.max(self.merge_all_of(member, &member_at, refs, depth + 1, merged)?);
            }
        }
        Ok(refs)
    }

    fn string(&mut self, schema: &Map<String, Value>, at: &str) -> Result<String, MockError> {
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            if let Some(text) = self.formatted(format) {
                self.spend(text.len())?;
                return Ok(text);
            }
        }
        let min = count(schema, "minLength", at)?.unwrap_or(0);
        let max = count(schema, "maxLength", at)?;
        if max.is_some_and(|max| max < min) {
            return Err(invalid(at, "`minLength` is greater than `maxLength`"));
        }
        let low = min.max(4);
        let high = max.unwrap_or(low + 8).min(low + 8);
        let len = if high < low {
            max.unwrap_or(0)
        } else {
            self.rng.between(low as i128, high as i128) as usize
        };
        self.spend(len)?;
        Ok(self.rng.word(len))
    }

    fn formatted(&mut self, format: &str) -> Option<String> {
        let rng = &mut self.rng;
        let mut date = || {
            format!(
                "{:04}-{:02}-{:02}",
                rng.between(2020, 2029),
                rng.between(1, 12),
                rng.between(1, 28)
            )
        };
        Some(match format {
            "date" => date(),
            "date-time" => {
                let day = date();
                format!(
                    "{day}T{:02}:{:02}:{:02}Z",
                    self.rng.between(0, 23),
                    self.rng.between(0, 59),
                    self.rng.between(0, 59)
                )
            }
            "time" => format!(
                "{:02}:{:02}:{:02}Z",
                self.rng.between(0, 23),
                self.rng.between(0, 59),
                self.rng.between(0, 59)
            ),
            "uuid" => {
                let high = self.rng.next();
                let low = self.rng.next();
                // Version 4, RFC 4122 variant.
                let high = (high & !0xf000) | 0x4000;
                let low = (low & !(0b11 << 62)) | (0b10 << 62);
                let mut text = format!("{high:016x}{low:016x}");
                for position in [8, 13, 18, 23] {
                    text.insert(position, '-');
                }
                text
            }
            "email" => format!("{}@example.com", self.rng.word(8)),
            "uri" | "url" | "iri" => format!("https://example.com/{}", self.rng.word(8)),
            "uri-reference" | "iri-reference" => format!("/{}", self.rng.word(8)),
            "hostname" | "idn-hostname" => format!("{}.example.com", self.rng.word(8)),
            "ipv4" => format!("192.0.2.{}", self.rng.between(1, 254)),
            "ipv6" => format!("2001:db8::{:x}", self.rng.between(1, 0xffff)),
            _ => return None,
        })
    }

    /// The bounds of a number: (low, low exclusive, high, high exclusive).
    fn bounds(
        schema: &Map<String, Value>,
        at: &str,
    ) -> Result<(Option<f64>, bool, Option<f64>, bool), MockError> {
        let number = |keyword: &str| -> Result<Option<f64>, MockError> {
            match schema.get(keyword) {
                None => Ok(None),
                Some(value) => value
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| invalid(at, format!("`{keyword}` must be a number"))),
            }
        };
        let mut low = (number("minimum")?, false);
        let mut high = (number("maximum")?, false);
        // 2020-12: a number; OpenAPI 3.0: a flag on minimum/maximum.
        for (keyword, bound) in [
            ("exclusiveMinimum", &mut low),
            ("exclusiveMaximum", &mut high),
        ] {
            match schema.get(keyword) {
                None | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => bound.1 = true,
                Some(value) => {
                    let value = value.as_f64().ok_or_else(|| {
                        invalid(at, format!("`{keyword}` must be a number or a boolean"))
                    })?;
                    *bound = (Some(value), true);
                }
            }
        }
        Ok((low.0, low.1, high.0, high.1))
    }

    fn multiple_of(schema: &Map<String, Value>, at: &str) -> Result<Option<f64>, MockError> {
        match schema.get("multipleOf") {
            None => Ok(None),
            Some(value) => match value.as_f64() {
                Some(m) if m > 0.0 => Ok(Some(m)),
                _ => Err(invalid(at, "`multipleOf` must be a number above 0")),
            },
        }
    }

    fn integer(&mut self, schema: &Map<String, Value>, at: &str) -> Result<Value, MockError> {
        let (low, low_ex, high, high_ex) = Self::bounds(schema, at)?;
        let clamp = |x: f64| x.clamp(i64::MIN as f64, i64::MAX as f64) as i128;
        let mut lo = low.map(|l| {
            let c = l.ceil();
            clamp(if low_ex && c == l { c + 1.0 } else { c })
        });
        let mut hi = high.map(|h| {
            let f = h.floor();
            clamp(if high_ex && f == h { f - 1.0 } else { f })
        });
        match (lo, hi) {
            (None, None) => (lo, hi) = (Some(0), Some(1000)),
            (Some(l), None) => hi = Some(l.saturating_add(1000).min(i64::MAX as i128)),
            (None, Some(h)) => lo = Some(h.saturating_sub(1000).max(i64::MIN as i128)),
            _ => {}
        }
        let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(0));
        let (lo, hi, step) = match Self::multiple_of(schema, at)? {
            Some(m) if m.fract() == 0.0 && m <= i64::MAX as f64 => {
                let m = m as i128;
                (
                    lo.div_euclid(m) + i128::from(lo.rem_euclid(m) != 0),
                    hi.div_euclid(m),
                    m,
                )
            }
            Some(_) => {
                return Err(invalid(
                    at,
                    "an integer's `multipleOf` must be a whole number",
                ))
            }
            None => (lo, hi, 1),
        };
        if lo > hi {
            return Err(invalid(
                at,
                "no integer lies between the minimum and the maximum",
            ));
        }
        let value = self.rng.between(lo, hi) * step;
        Ok(Value::Number(Number::from(
            i64::try_from(value).map_err(|_| invalid(at, "bounds out of range"))?,
        )))
    }

    fn number(&mut self, schema: &Map<String, Value>, at: &str) -> Result<Value, MockError> {
        let (low, low_ex, high, high_ex) = Self::bounds(schema, at)?;
        let (lo, hi) = match (low, high) {
            (None, None) => (0.0, 1000.0),
            (Some(l), None) => (l, l + 1000.0),
            (None, Some(h)) => (h - 1000.0, h),
            (Some(l), Some(h)) => (l, h),
        };
        if lo > hi || (lo == hi && (low_ex || high_ex)) {
            return Err(invalid(
                at,
                "no number lies between the minimum and the maximum",
            ));
        }
        let inside = |x: f64| (x > lo || (!low_ex && x == lo)) && (x < hi || (!high_ex && x == hi));
        let value = if let Some(m) = Self::multiple_of(schema, at)? {
            let first = (lo / m).ceil();
            let last = (hi / m).floor();
            let candidates = [first, first + 1.0, last - 1.0, last];
            let pick = (first + (last - first) * self.rng.unit()).round();
            std::iter::once(pick)
                .chain(candidates)
                .map(|k| k * m)
                .find(|&x| inside(x) && x.is_finite())
                .ok_or_else(|| {
                    invalid(
                        at,
                        "no multiple of `multipleOf` lies between the minimum and the maximum",
                    )
                })?
        } else {
            let x = lo + (hi - lo) * self.rng.unit();
            let rounded = (x * 100.0).round() / 100.0;
            [rounded, x, (lo + hi) / 2.0]
                .into_iter()
                .find(|&x| inside(x))
                .unwrap_or((lo + hi) / 2.0)
        };
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| invalid(at, "the bounds are not finite numbers"))
    }

    fn array(
        &mut self,
        schema: &Map<String, Value>,
        at: &str,
        refs: u32,
        depth: u32,
    ) -> Result<Value, MockError> {
        let tuple = match (schema.get("prefixItems"), schema.get("items")) {
            (Some(Value::Array(items)), _) => Some(("prefixItems", items)),
            (_, Some(Value::Array(items))) => Some(("items", items)),
            (Some(_), _) => return Err(invalid(at, "`prefixItems` must be an array")),
            _ => None,
        };
        if let Some((keyword, items)) = tuple {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(self.value(item, &format!("{at}/{keyword}/{i}"), refs, depth + 1)?);
            }
            return Ok(Value::Array(out));
        }
        let items = schema.get("items").unwrap_or(&Value::Bool(true));
        if !items.is_object() && !items.is_boolean() {
            return Err(invalid(at, "`items` must be a schema"));
        }
        let shallow = refs >= SHALLOW_REF_DEPTH;
        let min = count(schema, "minItems", at)?;
        let max = count(schema, "maxItems", at)?;
        let low = min.unwrap_or(if shallow { 0 } else { 1 });
        let high = max.unwrap_or(low.max(3));
        if high < low {
            return Err(invalid(at, "`minItems` is greater than `maxItems`"));
        }
        if low > MAX_OUTPUT_BYTES / 8 {
            return Err(MockError::TooLarge);
        }
        let len = if shallow {
            low
        } else {
            self.rng.between(low as i128, high as i128) as usize
        };
        let unique = schema
            .get("uniqueItems")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let items_at = format!("{at}/items");
        let mut out: Vec<Value> = Vec::with_capacity(len);
        for _ in 0..len {
            let mut attempts = 0;
            loop {
                let item = self.value(items, &items_at, refs, depth + 1)?;
                if !unique || !out.contains(&item) {
                    out.push(item);
                    break;
                }
                attempts += 1;
                // Few distinct values (a small enum): settle for fewer items.
                if attempts == 8 {
                    break;
                }
            }
        }
        Ok(Value::Array(out))
    }

    fn object(
        &mut self,
        schema: &Map<String, Value>,
        at: &str,
        refs: u32,
        depth: u32,
    ) -> Result<Value, MockError> {
        let required: Vec<&str> = match schema.get("required") {
            None => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| {
                    n.as_str()
                        .ok_or_else(|| invalid(at, "`required` must be an array of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(at, "`required` must be an array of strings")),
        };
        let empty = Map::new();
        let properties = match schema.get("properties") {
            None => &empty,
            Some(Value::Object(properties)) => properties,
            Some(_) => return Err(invalid(at, "`properties` must be an object")),
        };
        let shallow = refs >= SHALLOW_REF_DEPTH;
        let mut out = Map::new();
        for (name, property) in properties {
            if shallow && !required.contains(&name.as_str()) {
                continue;
            }
            self.spend(name.len())?;
            let mut property_at = String::with_capacity(at.len() + name.len() + 12);
            let _ = write!(property_at, "{at}/properties/{}", pointer_token(name));
            out.insert(
                name.clone(),
                self.value(property, &property_at, refs, depth + 1)?,
            );
        }
        // Required but not described: from `additionalProperties` if it is a
        // schema, else a string.
        for name in required {
            if !out.contains_key(name) {
                self.spend(name.len())?;
                let value = match schema.get("additionalProperties") {
                    Some(extra @ Value::Object(_)) => self.value(
                        extra,
                        &format!("{at}/additionalProperties"),
                        refs,
                        depth + 1,
                    )?,
                    _ => Value::String(self.rng.word(8)),
                };
                out.insert(name.to_owned(), value);
            }
        }
        Ok(Value::Object(out))
    }
}

fn count(schema: &Map<String, Value>, keyword: &str, at: &str) -> Result<Option<usize>, MockError> {
    match schema.get(keyword) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| {
                invalid(
                    at,
                    format!("`{keyword}` must be a whole number of 0 or more"),
                )
            }),
    }
}

/// The type of a schema that names none, from its keywords.
fn infer_type(schema: &Map<String, Value>) -> &'static str {
    let has = |keywords: &[&str]| keywords.iter().any(|k| schema.contains_key(*k));
    if has(&["properties", "required", "additionalProperties"]) {
        "object"
    } else if has(&["items", "prefixItems", "minItems", "maxItems"]) {
        "array"
    } else if has(&["minLength", "maxLength", "format", "pattern"]) {
        "string"
    } else if has(&[
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ]) {
        "number"
    } else {
        "null"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A small validator for the subset, written independently of the generator.
    fn check(value: &Value, schema: &Value, root: &Value) -> Result<(), String> {
        let Some(s) = schema.as_object() else {
            return if schema == &json!(false) {
                Err("false".into())
            } else {
                Ok(())
            };
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            check(value, root.pointer(&r[1..]).ok_or("ref")?, root)?;
        }
        if let Some(c) = s.get("const") {
            if c != value {
                return Err(format!("{value} != const {c}"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(value) {
                return Err(format!("{value} not in enum"));
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                check(value, sub, root)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = s.get(key).and_then(Value::as_array) {
                if !any.iter().any(|sub| check(value, sub, root).is_ok()) {
                    return Err(format!("{value} matches no {key}"));
                }
            }
        }
        if value.is_null() && s.get("nullable") == Some(&json!(true)) {
            return Ok(());
        }
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let type_ok = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
            return Err(format!("{value} is not {types:?}"));
        }
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(x) = value.as_f64() {
            if num("minimum").is_some_and(|m| x < m) || num("maximum").is_some_and(|m| x > m) {
                return Err(format!("{x} out of bounds"));
            }
            if num("exclusiveMinimum").is_some_and(|m| x <= m)
                || num("exclusiveMaximum").is_some_and(|m| x >= m)
            {
                return Err(format!("{x} out of exclusive bounds"));
            }
            if let Some(m) = num("multipleOf") {
                let k = x / m;
                if (k - k.round()).abs() > 1e-9 {
                    return Err(format!("{x} not a multiple of {m}"));
                }
            }
        }
        if let Some(text) = value.as_str() {
            let len = text.chars().count() as f64;
            if num("minLength").is_some_and(|m| len < m)
                || num("maxLength").is_some_and(|m| len > m)
            {
                return Err(format!("{text:?} length out of bounds"));
            }
            let ok = match s.get("format").and_then(Value::as_str) {
                Some("uuid") => {
                    text.len() == 36
                        && text.as_bytes()[14] == b'4'
                        && text.split('-').map(str::len).eq([8, 4, 4, 4, 12])
                }
                Some("date-time") => {
                    text.len() == 20 && text.ends_with('Z') && &text[10..11] == "T"
                }
                Some("date") => text.len() == 10 && text.split('-').count() == 3,
                Some("email") => text.contains('@'),
                Some("uri") => url::Url::parse(text).is_ok(),
                _ => true,
            };
            if !ok {
                return Err(format!("{text:?} not in its format"));
            }
        }
        if let Some(items) = value.as_array() {
            let len = items.len() as f64;
            if num("minItems").is_some_and(|m| len < m) || num("maxItems").is_some_and(|m| len > m)
            {
                return Err(format!("{len} items out of bounds"));
            }
            if let Some(sub) = s.get("items") {
                for item in items {
                    check(item, sub, root)?;
                }
            }
        }
        if let Some(map) = value.as_object() {
            for name in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !map.contains_key(name.as_str().unwrap()) {
                    return Err(format!("missing {name}"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    if let Some(v) = map.get(name) {
                        check(v, sub, root)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn valid(schema: &Value, seed: u64) -> Value {
        let value = generate(schema, seed).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = check(&value, schema, schema) {
            panic!("{value} does not match {schema}: {e}");
        }
        value
    }

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "required": ["id", "items"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "created": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "email": {"type": "string", "format": "email"},
                "link": {"type": "string", "format": "uri"},
                "status": {"enum": ["new", "paid", "shipped"]},
                "kind": {"const": "order"},
                "note": {"type": ["null", "string"], "minLength": 2, "maxLength": 3},
                "total": {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1.0},
                "count": {"type": "integer", "minimum": -5, "maximum": 5},
                "even": {"type": "integer", "exclusiveMinimum": 10, "maximum": 20, "multipleOf": 4},
                "price": {"type": "number", "minimum": 1, "maximum": 2, "multipleOf": 0.25},
                "paid": {"type": "boolean"},
                "items": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"$ref": "#/$defs/item"}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "customer": {"$ref": "#/definitions/customer"},
                "address": {"allOf": [{"$ref": "#/components/schemas/place"}, {"type": "object", "required": ["zip"], "properties": {"zip": {"type": "string", "maxLength": 5}}}]},
                "choice": {"oneOf": [{"type": "integer", "minimum": 100}, {"type": "string"}]},
                "legacy": {"type": "integer", "minimum": 1, "maximum": 2, "exclusiveMinimum": true},
                "anything": {}
            },
            "$defs": {"item": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string", "minLength": 1}, "qty": {"type": "integer", "minimum": 1}}}},
            "definitions": {"customer": {"type": "object", "properties": {"name": {"type": "string", "example": "Ada"}}}},
            "components": {"schemas": {"place": {"type": "object", "properties": {"city": {"type": "string", "default": "Lyon"}}}}}
        })
    }

    #[test]
    fn generates_valid_values() {
        let schema = order_schema();
        for seed in 0..200 {
            let value = valid(&schema, seed);
            assert_eq!(value["customer"]["name"], "Ada");
            assert_eq!(value["address"]["city"], "Lyon");
            assert_eq!(value["legacy"], 2);
            assert!(value["address"]["zip"].is_string());
            assert!(value["note"].is_string());
            assert!(value["choice"].as_i64().unwrap() >= 100);
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let schema = order_schema();
        assert_eq!(generate(&schema, 7), generate(&schema, 7));
        let distinct: std::collections::HashSet<String> = (0..20)
            .map(|s| generate(&schema, s).unwrap().to_string())
            .collect();
        assert!(distinct.len() > 15);
        // Pinned values win over the type.
        assert_eq!(
            generate(&json!({"type": "integer", "examples": [3, 4]}), 1),
            Ok(json!(3))
        );
        assert_eq!(
            generate(
                &json!({"type": "string", "example": "x", "default": "y"}),
                1
            ),
            Ok(json!("x"))
        );
    }

    #[test]
    fn defaults_to_one_to_three_items_and_all_properties() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "boolean"}}}});
        let mut lengths = std::collections::HashSet::new();
        for seed in 0..100 {
            let value = valid(&schema, seed);
            assert_eq!(value.as_object().unwrap().len(), 2);
            lengths.insert(value["b"].as_array().unwrap().len());
        }
        assert_eq!(lengths, [1, 2, 3].into_iter().collect());
    }

    #[test]
    fn recursive_schemas_end() {
        let tree = json!({
            "$ref": "#/$defs/node",
            "$defs": {"node": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                "parent": {"$ref": "#/$defs/node", "nullable": true}
            }}}
        });
        for seed in 0..20 {
            valid(&tree, seed);
        }
        let list = json!({"type": "object", "properties": {"next": {"oneOf": [{"$ref": "#"}, {"type": "null"}]}}});
        valid(&list, 1);
        // A recursion with no way out stops at the depth cap with a clear error.
        let endless =
            json!({"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#"}}});
        let err = generate(&endless, 1).unwrap_err();
        assert!(matches!(err, MockError::TooDeep { .. }), "{err}");
        let cycle = json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}});
        assert!(matches!(
            generate(&cycle, 1),
            Err(MockError::TooDeep { .. })
        ));
    }

    #[test]
    fn output_is_bounded() {
        let wide = json!({"type": "array", "minItems": 100, "items": {"type": "array", "minItems": 100, "items": {"type": "string", "minLength": 100}}});
        assert_eq!(generate(&wide, 1), Err(MockError::TooLarge));
        assert_eq!(
            generate(&json!({"type": "string", "minLength": 10_000_000}), 1),
            Err(MockError::TooLarge)
        );
        assert_eq!(
            generate(&json!({"type": "array", "minItems": 1_000_000_000u64}), 1),
            Err(MockError::TooLarge)
        );
        let big = "x".repeat(1000);
        let pinned = json!({"type": "array", "minItems": 2000, "items": {"example": big}});
        assert_eq!(generate(&pinned, 1), Err(MockError::TooLarge));
    }

    #[test]
    fn invalid_schemas_are_explained() {
        let cases = [
            (json!({"type": 5}), "invalid schema at #: `type` must be a string or an array of strings, not 5"),
            (json!({"type": "thing"}), "invalid schema at #: unknown type 'thing'"),
            (json!({"type": ["string", 3]}), "invalid schema at #: `type` must be a string or an array of strings"),
            (json!({"properties": {"a": {"$ref": "#/$defs/missing"}}}), "cannot resolve $ref '#/$defs/missing' at #/properties/a: nothing at that location"),
            (json!({"$ref": "http://example.com/s.json"}), "cannot resolve $ref 'http://example.com/s.json' at #: only local references (starting with '#') are followed"),
            (json!({"type": "string", "minLength": 5, "maxLength": 2}), "invalid schema at #: `minLength` is greater than `maxLength`"),
            (json!({"type": "integer", "minimum": 5, "maximum": 4}), "invalid schema at #: no integer lies between the minimum and the maximum"),
            (json!({"type": "integer", "minimum": 1, "maximum": 3, "multipleOf": 5}), "invalid schema at #: no integer lies between the minimum and the maximum"),
            (json!({"type": "number", "minimum": "a"}), "invalid schema at #: `minimum` must be a number"),
            (json!({"type": "array", "minItems": -1}), "invalid schema at #: `minItems` must be a whole number of 0 or more"),
            (json!({"enum": []}), "invalid schema at #: `enum` must be a non-empty array"),
            (json!({"type": "object", "properties": {"a/b": {"type": "object", "properties": []}}}), "invalid schema at #/properties/a~1b: `properties` must be an object"),
            (json!(false), "invalid schema at #: the schema `false` admits no value"),
            (json!("string"), "invalid schema at #: a schema is an object or a boolean"),
        ];
        for (schema, message) in cases {
            let err = generate(&schema, 1).unwrap_err();
            assert_eq!(err.to_string(), message, "{schema}");
        }
    }

    fn schema_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            (0usize..6, 0usize..10).prop_map(
                |(min, extra)| json!({"type": "string", "minLength": min, "maxLength": min + extra})
            ),
            (-50i64..50, 0i64..100).prop_map(
                |(min, span)| json!({"type": "integer", "minimum": min, "maximum": min + span})
            ),
            (-5.0f64..5.0, 0.01f64..10.0).prop_map(
                |(min, span)| json!({"type": "number", "minimum": min, "maximum": min + span})
            ),
            Just(json!({"type": "boolean"})),
            Just(json!({"type": ["null", "integer"]})),
            prop::collection::vec("[a-z]{1,4}", 1..4).prop_map(|v| json!({"enum": v})),
            prop::sample::select(vec!["uuid", "date-time", "date", "email", "uri"])
                .prop_map(|f| json!({"type": "string", "format": f})),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                (inner.clone(), 0usize..3, 0usize..3).prop_map(|(items, min, extra)| json!({"type": "array", "items": items, "minItems": min, "maxItems": min + extra})),
                prop::collection::btree_map("[a-z]{1,5}", inner.clone(), 0..4).prop_map(|props| {
                    let required: Vec<&String> = props.keys().step_by(2).collect();
                    json!({"type": "object", "properties": props, "required": required})
                }),
                prop::collection::vec(inner, 1..3).prop_map(|alternatives| json!({"anyOf": alternatives})),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_schemas_give_valid_values(schema in schema_strategy(), seed in any::<u64>()) {
            let value = generate(&schema, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(check(&value, &schema, &schema).is_ok(), "{} vs {}: {:?}", value, schema, check(&value, &schema, &schema));
            prop_assert_eq!(generate(&schema, seed).unwrap(), value);
        }

        #[test]
        fn never_panics_on_odd_schemas(text in "\\{(\"(type|minimum|maximum|items|\\$ref|enum|allOf|oneOf|minLength|properties|required)\":(\"[a-z#/$]*\"|-?[0-9]{1,3}|\\[\\]|\\{\\}|true|null),?){0,5}\\}", seed in any::<u64>()) {
            if let Ok(schema) = serde_json::from_str::<Value>(&text.replace(",}", "}")) {
                let _ = generate(&schema, seed);
            }
        }
    }
}
