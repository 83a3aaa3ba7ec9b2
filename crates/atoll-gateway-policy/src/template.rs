//! Path templates of gateway APIs: `/orders/${id}/items/${item.sku}`.
//!
//! The template is written by an admin, the values come from a device, so rendering
//! must never let a value leave its path segment: every byte outside the RFC 3986
//! unreserved set is percent-encoded, and a rendered segment that a URL parser
//! would treat as a dot segment (`.`, `..`, `%2e`, ...) is an error, because the
//! backend's router would otherwise resolve it to a different path.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `${` without its `}`.
    #[error("unclosed '${{' at byte {at}")]
    Unclosed {
        /// Byte offset of the `$`.
        at: usize,
    },
    /// `${}` or an empty dotted part such as `${a..b}`.
    #[error("empty placeholder name at byte {at}")]
    EmptyName {
        /// Byte offset of the `$`.
        at: usize,
    },
    /// A placeholder name that is not `[A-Za-z_][A-Za-z0-9_]*` (dot-separated).
    #[error("invalid placeholder name '{name}': use letters, digits and '_', not starting with a digit, nested with '.'")]
    BadName {
        /// The name as written.
        name: String,
    },
    /// A character the path may not contain (`?`, `#`, `\`, control characters).
    #[error("the path may not contain {ch:?}: the query and fragment are built by the gateway")]
    ForbiddenChar {
        /// The character.
        ch: char,
    },
    /// A literal `.` or `..` segment.
    #[error("the path may not contain '.' or '..' segments")]
    DotSegment,
    /// The request has no value for a placeholder.
    #[error("the request has no field '{field}' for the path")]
    MissingField {
        /// Dotted name of the field.
        field: String,
    },
    /// The value of a placeholder is an object, array or null.
    #[error("the field '{field}' is {kind}; the path needs a string, number or boolean")]
    NotScalar {
        /// Dotted name of the field.
        field: String,
        /// `an object`, `an array` or `null`.
        kind: &'static str,
    },
    /// A value that is empty or would render a `.` or `..` segment.
    #[error("the field '{field}' would make an empty, '.' or '..' path segment")]
    BadValue {
        /// Dotted name of the field.
        field: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The dotted name split into its parts.
    Field(Vec<String>),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a URL parser would treat a (raw, percent-encoded) segment as `.` or `..`:
/// the WHATWG URL standard also folds `%2e` in any case.
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    let folded = lower.replace("%2e", ".");
    folded == "." || folded == ".."
}

impl PathTemplate {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<PathTemplate, TemplateError> {
        if !text.starts_with('/') {
            return Err(TemplateError::NotAbsolute);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${") {
                let close = after
                    .find('}')
                    .ok_or(TemplateError::Unclosed { at: offset })?;
                let name = &after[..close];
                if name.is_empty() {
                    return Err(TemplateError::EmptyName { at: offset });
                }
                let names: Vec<String> = name.split('.').map(str::to_owned).collect();
                if names.iter().any(String::is_empty) {
                    return Err(TemplateError::EmptyName { at: offset });
                }
                if !names.iter().all(|n| is_name(n)) {
                    return Err(TemplateError::BadName {
                        name: name.to_owned(),
                    });
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(names));
                let used = 2 + close + 1;
                rest = &rest[used..];
                offset += used;
                continue;
            }
            let ch = rest.chars().next().expect("rest is not empty");
            // `\` is a path separator to WHATWG URL parsers for http(s), so it
            // could smuggle a `..` segment past the check below.
            if ch == '?' || ch == '#' || ch == '\\' || ch.is_control() {
                return Err(TemplateError::ForbiddenChar { ch });
            }
            literal.push(ch);
            rest = &rest[ch.len_utf8()..];
            offset += ch.len_utf8();
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let template = PathTemplate { parts };
        // Check the segments made only of literal text now; segments with a
        // placeholder are checked when rendered.
        let mut segment = String::new();
        let mut has_field = false;
        for part in &template.parts {
            match part {
                Part::Field(_) => has_field = true,
                Part::Literal(text) => {
                    for (i, piece) in text.split('/').enumerate() {
                        if i > 0 {
                            if !has_field && is_dot_segment(&segment) {
                                return Err(TemplateError::DotSegment);
                            }
                            segment.clear();
                            has_field = false;
                        }
                        segment.push_str(piece);
                    }
                }
            }
        }
        if !has_field && is_dot_segment(&segment) {
            return Err(TemplateError::DotSegment);
        }
        Ok(template)
    }

    /// The top-level request fields the template uses, in order, without repeats:
    /// `${item.sku}` uses `item`. These are the fields to leave out of the query
    /// string.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Field(names) = part {
                let top = names[0].as_str();
                if !fields.contains(&top) {
                    fields.push(top);
                }
            }
        }
        fields
    }

    /// Whether the template has no placeholder.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Fills the placeholders from the request, each value percent-encoded as (part
    /// of) one path segment.
    pub fn render(&self, request: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::new();
        // The placeholders of the segment being written, to name one in an error.
        let mut segment_start = 0;
        let mut segment_field: Option<String> = None;
        let check = |out: &str, start: usize, field: &Option<String>| match field {
            Some(field) if is_dot_segment(&out[start..]) => Err(TemplateError::BadValue {
                field: field.clone(),
            }),
            _ => Ok(()),
        };
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    for (i, piece) in text.split('/').enumerate() {
                        if i > 0 {
                            check(&out, segment_start, &segment_field)?;
                            out.push('/');
                            segment_start = out.len();
                            segment_field = None;
                        }
                        out.push_str(piece);
                    }
                }
                Part::Field(names) => {
                    let field = names.join(".");
                    let text = scalar_text(lookup(request, names), &field)?;
                    if text.is_empty() {
                        return Err(TemplateError::BadValue { field });
                    }
                    encode_segment(&text, &mut out);
                    segment_field = Some(field);
                }
            }
        }
        check(&out, segment_start, &segment_field)?;
        Ok(out)
    }
}

impl std::fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Field(names) => write!(f, "${{{}}}", names.join("."))?,
            }
        }
        Ok(())
    }
}

fn lookup<'a>(request: &'a Map<String, Value>, names: &[String]) -> Option<&'a Value> {
    let mut value = request.get(&names[0])?;
    for name in &names[1..] {
        value = value.as_object()?.get(name)?;
    }
    Some(value)
}

fn scalar_text(value: Option<&Value>, field: &str) -> Result<String, TemplateError> {
    let not_scalar = |kind| TemplateError::NotScalar {
        field: field.to_owned(),
        kind,
    };
    match value {
        None => Err(TemplateError::MissingField {
            field: field.to_owned(),
        }),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(Value::Bool(flag)) => Ok(flag.to_string()),
        Some(Value::Null) => Err(not_scalar("null")),
        Some(Value::Array(_)) => Err(not_scalar("an array")),
        Some(Value::Object(_)) => Err(not_scalar("an object")),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so no value can
/// carry a `/`, `?`, `#`, `%` or `\` into the URL.
fn encode_segment(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// The query string of a GET, DELETE or HEAD call: the request's top-level fields
/// not in `exclude_top_level` (the path's fields), sorted by name and
/// form-urlencoded. Scalars are written as text, arrays as repeated keys, `null` is
/// left out, and objects (also inside arrays) as compact JSON. Empty when nothing
/// remains; no leading `?`.
pub fn query_string(request: &Map<String, Value>, exclude_top_level: &[&str]) -> String {
    let mut fields: Vec<(&String, &Value)> = request
        .iter()
        .filter(|(name, _)| !exclude_top_level.contains(&name.as_str()))
        .collect();
    // Sorted explicitly: `Map` keeps insertion order when serde_json's
    // `preserve_order` feature is on somewhere in the build.
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(text) = query_text(item) {
                        query.append_pair(name, &text);
                    }
                }
            }
            other => {
                if let Some(text) = query_text(other) {
                    query.append_pair(name, &text);
                }
            }
        }
    }
    query.finish()
}

fn query_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Array(_) | Value::Object(_) => Some(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn parses_and_renders() {
        let t = PathTemplate::parse("/orders/${id}/items/${item.sku}").unwrap();
        assert_eq!(t.fields(), vec!["id", "item"]);
        assert_eq!(t.to_string(), "/orders/${id}/items/${item.sku}");
        let req = obj(json!({"id": 42, "item": {"sku": "a b/c"}, "x": true}));
        assert_eq!(t.render(&req).unwrap(), "/orders/42/items/a%20b%2Fc");
    }

    #[test]
    fn renders_scalars_and_partial_segments() {
        let t = PathTemplate::parse("/f/${name}.json/${flag}/${n}").unwrap();
        let req = obj(json!({"name": "r\u{e9}sum\u{e9}?#%", "flag": false, "n": -1.5}));
        assert_eq!(
            t.render(&req).unwrap(),
            "/f/r%C3%A9sum%C3%A9%3F%23%25.json/false/-1.5"
        );
        assert!(PathTemplate::parse("/static/path").unwrap().is_static());
        assert_eq!(t.fields(), vec!["name", "flag", "n"]);
    }

    #[test]
    fn repeated_fields_are_listed_once() {
        let t = PathTemplate::parse("/${a}/${a}/${b.c}/${b.d}").unwrap();
        assert_eq!(t.fields(), vec!["a", "b"]);
    }

    #[test]
    fn rejects_bad_templates() {
        use TemplateError::*;
        let cases: &[(&str, TemplateError)] = &[
            ("orders", NotAbsolute),
            ("", NotAbsolute),
            ("/a/${id", Unclosed { at: 3 }),
            ("/a/${}", EmptyName { at: 3 }),
            ("/a/${a..b}", EmptyName { at: 3 }),
            ("/a/${.a}", EmptyName { at: 3 }),
            ("/a/${1a}", BadName { name: "1a".into() }),
            ("/a/${a-b}", BadName { name: "a-b".into() }),
            ("/a/${a b}", BadName { name: "a b".into() }),
            ("/a?b=1", ForbiddenChar { ch: '?' }),
            ("/a#frag", ForbiddenChar { ch: '#' }),
            ("/a\\b", ForbiddenChar { ch: '\\' }),
            ("/a\nb", ForbiddenChar { ch: '\n' }),
            ("/a/\u{7f}", ForbiddenChar { ch: '\u{7f}' }),
            ("/a/../b", DotSegment),
            ("/a/..", DotSegment),
            ("/..", DotSegment),
            ("/a/./b", DotSegment),
            ("/a/%2e%2E/b", DotSegment),
            ("/a/.%2e", DotSegment),
        ];
        for (text, want) in cases {
            assert_eq!(&PathTemplate::parse(text).unwrap_err(), want, "{text}");
        }
        // Dots inside a segment are fine.
        PathTemplate::parse("/a/.well-known/b..c/${x}.v1").unwrap();
        // A `$` without `{` is literal.
        PathTemplate::parse("/price/$5/}").unwrap();
    }

    #[test]
    fn render_errors_name_the_field() {
        let t = PathTemplate::parse("/o/${order.id}").unwrap();
        let err = t.render(&obj(json!({"order": {}}))).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingField {
                field: "order.id".into()
            }
        );
        assert!(err.to_string().contains("order.id"));
        let err = t.render(&obj(json!({"order": 5}))).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingField {
                field: "order.id".into()
            }
        );
        for (value, kind) in [
            (json!(null), "null"),
            (json!([1]), "an array"),
            (json!({"a": 1}), "an object"),
        ] {
            let err = t.render(&obj(json!({"order": {"id": value}}))).unwrap_err();
            assert_eq!(
                err,
                TemplateError::NotScalar {
                    field: "order.id".into(),
                    kind
                }
            );
        }
    }

    #[test]
    fn values_cannot_make_dot_segments() {
        let t = PathTemplate::parse("/a/${x}/b").unwrap();
        for bad in [".", "..", ""] {
            let err = t.render(&obj(json!({ "x": bad }))).unwrap_err();
            assert_eq!(
                err,
                TemplateError::BadValue { field: "x".into() },
                "{bad:?}"
            );
        }
        // A literal dot next to the value can complete a `..`.
        let t = PathTemplate::parse("/a/.${x}/b").unwrap();
        assert!(t.render(&obj(json!({"x": "."}))).is_err());
        assert_eq!(t.render(&obj(json!({"x": ".."}))).unwrap(), "/a/.../b");
        assert_eq!(t.render(&obj(json!({"x": "a"}))).unwrap(), "/a/.a/b");
    }

    #[test]
    fn query_strings() {
        let req = obj(json!({
            "z": "last", "id": 7, "a": [1, "two", null, {"k": 1}],
            "nothing": null, "filter": {"kind": "x", "n": [1,2]}, "b": true,
            "s": "a b&c=d/é"
        }));
        assert_eq!(
            query_string(&req, &["id"]),
            "a=1&a=two&a=%7B%22k%22%3A1%7D&b=true&filter=%7B%22kind%22%3A%22x%22%2C%22n%22%3A%5B1%2C2%5D%7D&s=a+b%26c%3Dd%2F%C3%A9&z=last"
        );
        assert_eq!(query_string(&obj(json!({"id": 1})), &["id"]), "");
        assert_eq!(query_string(&Map::new(), &[]), "");
    }

    proptest! {
        /// Whatever a device sends, the rendered path has exactly the template's
        /// segments, none is a dot segment, and decoding gives the value back.
        #[test]
        fn values_stay_in_their_segment(value in "\\PC*") {
            let t = PathTemplate::parse("/a/${v}/b").unwrap();
            match t.render(&obj(json!({ "v": value.clone() }))) {
                Ok(path) => {
                    let segments: Vec<&str> = path.split('/').collect();
                    prop_assert_eq!(segments.len(), 4);
                    prop_assert!(!is_dot_segment(segments[2]));
                    prop_assert!(!path.contains(['?', '#', '\\', ' ']));
                    let decoded: String = url::form_urlencoded::parse(
                        format!("x={}", segments[2].replace('+', "%2B")).as_bytes(),
                    ).next().unwrap().1.into_owned();
                    prop_assert_eq!(decoded, value);
                    // The url crate keeps the path as rendered.
                    let url = url::Url::parse(&format!("http://h{path}")).unwrap();
                    prop_assert_eq!(url.path(), path);
                }
                Err(_) => prop_assert!(value.is_empty() || value == "." || value == ".."),
            }
        }

        /// Parsing never panics and a parsed template prints back as written.
        #[test]
        fn parse_round_trips(text in "/[a-z${}._/?-]{0,24}") {
            if let Ok(t) = PathTemplate::parse(&text) {
                prop_assert_eq!(t.to_string(), text);
            }
        }
    }
}
