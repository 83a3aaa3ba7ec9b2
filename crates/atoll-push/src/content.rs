//! What a message says: templates with `#name#` placeholders, the shared send
//! options, and their validation against the mPaaS limits. Pure functions; the
//! service stores what they produce.

use crate::{Error, Result};
use atoll_protocol::push::{limits, ClickAction, PushStyle, SendOptions, TemplateSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A message as rendered for its target: what every channel sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Data only.
    #[serde(default)]
    pub silent: bool,
    /// How it is drawn.
    #[serde(default)]
    pub style: PushStyle,
    /// What a tap does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click: Option<ClickAction>,
    /// Key/values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, String>,
    /// Collapse key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// High priority.
    #[serde(default)]
    pub high_priority: bool,
    /// Vendor pass-through options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vendor_options: BTreeMap<String, serde_json::Value>,
}

impl Content {
    /// The content of `options` with this title and body.
    pub fn new(title: String, body: String, options: &SendOptions) -> Content {
        Content {
            title,
            body,
            silent: options.silent,
            style: options.style.clone(),
            click: options.click.clone(),
            extras: options.extras.clone(),
            collapse_key: options.collapse_key.clone(),
            high_priority: !options.low_priority,
            vendor_options: options.vendor_options.clone(),
        }
    }

    /// Checks the rendered message: a notification needs a title or a body,
    /// lengths, the extras cap and the overall size every vendor can carry.
    pub fn check(&self) -> Result<()> {
        if !self.silent && self.title.trim().is_empty() && self.body.trim().is_empty() {
            return Err(Error::Invalid(
                "a notification needs a title or a body (or set silent)".into(),
            ));
        }
        if self.title.chars().count() > limits::MAX_TITLE_CHARS {
            return Err(Error::Invalid(format!(
                "the title is longer than {} characters",
                limits::MAX_TITLE_CHARS
            )));
        }
        if self.body.chars().count() > limits::MAX_BODY_CHARS {
            return Err(Error::Invalid(format!(
                "the body is longer than {} characters",
                limits::MAX_BODY_CHARS
            )));
        }
        if self.extras.len() > limits::MAX_EXTRAS {
            return Err(Error::TooManyExtras(format!(
                "{} extra parameters; at most {} are allowed",
                self.extras.len(),
                limits::MAX_EXTRAS
            )));
        }
        if let Some(key) = self.extras.keys().find(|k| k.is_empty() || k.len() > 64) {
            return Err(Error::Invalid(format!(
                "extra parameter name '{key}' must be 1 to 64 bytes"
            )));
        }
        if let Some(key) = &self.collapse_key {
            if key.is_empty() || key.len() > limits::MAX_COLLAPSE_KEY_BYTES {
                return Err(Error::Invalid(format!(
                    "collapse_key must be 1 to {} bytes",
                    limits::MAX_COLLAPSE_KEY_BYTES
                )));
            }
        }
        if let PushStyle::Image { url } = &self.style {
            check_url("style.url", url, &["https"])?;
        }
        match &self.click {
            Some(ClickAction::Url(url)) => check_url("click", url, &["http", "https"])?,
            Some(ClickAction::DeepLink(link)) if !link.contains(':') || link.len() > 1024 => {
                return Err(Error::Invalid(
                    "click deep link must be a URI such as myapp://path".into(),
                ))
            }
            Some(ClickAction::Intent(intent)) if intent.is_empty() || intent.len() > 1024 => {
                return Err(Error::Invalid(
                    "click intent must be 1 to 1024 bytes".into(),
                ))
            }
            _ => {}
        }
        for key in self.vendor_options.keys() {
            if !matches!(key.as_str(), "apns" | "fcm" | "hms") {
                return Err(Error::Invalid(format!(
                    "vendor_options has '{key}'; the vendors are apns, fcm and hms"
                )));
            }
        }
        let size = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > limits::MAX_MESSAGE_BYTES {
            return Err(Error::TooLarge(format!(
                "the message is {size} bytes; at most {} fit every vendor",
                limits::MAX_MESSAGE_BYTES
            )));
        }
        Ok(())
    }
}

fn check_url(field: &str, url: &str, schemes: &[&str]) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|_| Error::Invalid(format!("{field} '{url}' is not a URL")))?;
    if !schemes.contains(&parsed.scheme()) || url.len() > 1024 {
        return Err(Error::Invalid(format!(
            "{field} must be an {} URL of at most 1024 bytes",
            schemes.join(" or ")
        )));
    }
    Ok(())
}

/// Checks the expiry and returns it in milliseconds.
pub fn expiry_ms(options: &SendOptions) -> Result<i64> {
    let secs = options.expires_in_secs;
    if !(limits::MIN_EXPIRES_SECS..=limits::MAX_EXPIRES_SECS).contains(&secs) {
        return Err(Error::Expiry(format!(
            "expires_in_secs must be {} to {} (15 days); got {secs}",
            limits::MIN_EXPIRES_SECS,
            limits::MAX_EXPIRES_SECS
        )));
    }
    Ok(secs as i64 * 1000)
}

/// Checks a business message id.
pub fn check_msg_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > limits::MAX_MSG_KEY_BYTES || key.chars().any(char::is_control)
    {
        return Err(Error::Invalid(format!(
            "msg_key must be 1 to {} bytes without control characters",
            limits::MAX_MSG_KEY_BYTES
        )));
    }
    Ok(())
}

/// The placeholders of a text, in order of first use: `#name#` where name is
/// `[A-Za-z0-9_]+`. A `#` not starting a placeholder stays text.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    scan(text, |part| {
        if let Part::Placeholder(name) = part {
            if !found.iter().any(|f| f == name) {
                found.push(name.to_owned());
            }
        }
    });
    found
}

enum Part<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits a text into literal parts and placeholders.
fn scan<'a>(text: &'a str, mut each: impl FnMut(Part<'a>)) {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' {
            let name_len = bytes[i + 1..]
                .iter()
                .take_while(|b| is_name_byte(**b))
                .count();
            let end = i + 1 + name_len;
            if name_len > 0 && bytes.get(end) == Some(&b'#') {
                if start < i {
                    each(Part::Text(&text[start..i]));
                }
                each(Part::Placeholder(&text[i + 1..end]));
                i = end + 1;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    if start < bytes.len() {
        each(Part::Text(&text[start..]));
    }
}

/// Fills the placeholders of `text` from `values`; names without a value are
/// added to `missing`.
pub fn render(text: &str, values: &BTreeMap<String, String>, missing: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, |part| match part {
        Part::Text(t) => out.push_str(t),
        Part::Placeholder(name) => match values.get(name) {
            Some(value) => out.push_str(value),
            None => {
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_owned());
                }
            }
        },
    });
    out
}

/// Title, body and URL of a template filled with `values`; every missing
/// value is named in the error (mPaaS `TEMPLATEKV_NOT_ENOUGH`).
pub fn fill_template(
    template: &TemplateSpec,
    values: &BTreeMap<String, String>,
) -> Result<(String, String, Option<String>)> {
    let mut missing = Vec::new();
    let title = render(&template.title, values, &mut missing);
    let body = render(&template.body, values, &mut missing);
    let url = template
        .url
        .as_deref()
        .map(|url| render(url, values, &mut missing));
    if !missing.is_empty() {
        return Err(Error::TemplateValues(format!(
            "template '{}' needs values for: {}",
            template.name,
            missing.join(", ")
        )));
    }
    Ok((title, body, url))
}

/// Checks a template's name, description and texts.
pub fn check_template(spec: &TemplateSpec) -> Result<()> {
    if spec.name.is_empty()
        || spec.name.len() > limits::MAX_TEMPLATE_NAME
        || !spec.name.bytes().all(is_name_byte)
    {
        return Err(Error::Invalid(format!(
            "template name '{}' must be 1 to {} characters of A-Z, a-z, 0-9 and _",
            spec.name,
            limits::MAX_TEMPLATE_NAME
        )));
    }
    if spec.description.chars().count() > limits::MAX_DESCRIPTION {
        return Err(Error::Invalid(format!(
            "the description is longer than {} characters",
            limits::MAX_DESCRIPTION
        )));
    }
    if spec.title.trim().is_empty() && spec.body.trim().is_empty() {
        return Err(Error::Invalid("a template needs a title or a body".into()));
    }
    if spec.title.chars().count() > limits::MAX_TITLE_CHARS
        || spec.body.chars().count() > limits::MAX_BODY_CHARS
    {
        return Err(Error::Invalid(format!(
            "a template's title is at most {} and its body {} characters",
            limits::MAX_TITLE_CHARS,
            limits::MAX_BODY_CHARS
        )));
    }
    if let Some(url) = &spec.url {
        if url.is_empty() || url.len() > 1024 {
            return Err(Error::Invalid("a template's url is 1 to 1024 bytes".into()));
        }
    }
    Ok(())
}

/// Every placeholder of a template, in order of first use.
pub fn template_placeholders(spec: &TemplateSpec) -> Vec<String> {
    let mut all = placeholders(&spec.title);
    for name in placeholders(&spec.body)
        .into_iter()
        .chain(spec.url.as_deref().map(placeholders).unwrap_or_default())
    {
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_names_between_hashes() {
        assert_eq!(
            placeholders("Hi #name#, order #order_id# is #state#; #name# again"),
            vec!["name", "order_id", "state"]
        );
        assert!(placeholders("# not one #, ## nor #a b#").is_empty());
        assert_eq!(placeholders("##x##"), vec!["x"]);
    }

    #[test]
    fn missing_values_are_all_named() {
        let template = TemplateSpec {
            name: "order_shipped".into(),
            description: String::new(),
            title: "Order #order# shipped".into(),
            body: "Hi #name#, #carrier# has it".into(),
            url: Some("myapp://orders/#order#".into()),
        };
        let error = fill_template(&template, &values(&[("order", "42")])).unwrap_err();
        assert!(matches!(&error, Error::TemplateValues(d) if d.contains("name, carrier")));
        let (title, body, url) = fill_template(
            &template,
            &values(&[("order", "42"), ("name", "Ana"), ("carrier", "DHL")]),
        )
        .unwrap();
        assert_eq!(title, "Order 42 shipped");
        assert_eq!(body, "Hi Ana, DHL has it");
        assert_eq!(url.as_deref(), Some("myapp://orders/42"));
    }

    #[test]
    fn template_names_follow_mpaas() {
        let mut spec = TemplateSpec {
            name: "ok_Name_1".into(),
            description: String::new(),
            title: "t".into(),
            body: String::new(),
            url: None,
        };
        assert!(check_template(&spec).is_ok());
        for bad in ["", "has space", "comma,", "dash-x", &"a".repeat(201)] {
            spec.name = bad.into();
            assert!(check_template(&spec).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Rendering with every value given leaves no placeholder and keeps
        /// the literal text; values are inserted verbatim (never re-scanned).
        #[test]
        fn render_fills_every_placeholder(
            parts in proptest::collection::vec(("[a-z #]{0,6}", proptest::option::of("[a-z_]{1,5}")), 0..6),
            value in "[#a-z]{0,5}",
        ) {
            let mut text = String::new();
            let mut expected = String::new();
            let mut map = BTreeMap::new();
            for (literal, name) in &parts {
                // A literal ending in a name byte next to '#' could form a
                // longer placeholder; keep literals free of '#'-name joins.
                let literal = literal.replace('#', " ");
                text.push_str(&literal);
                expected.push_str(&literal);
                if let Some(name) = name {
                    text.push_str(&format!("#{name}#"));
                    expected.push_str(&value);
                    map.insert(name.clone(), value.clone());
                }
            }
            let mut missing = Vec::new();
            prop_assert_eq!(render(&text, &map, &mut missing), expected);
            prop_assert!(missing.is_empty());
        }
    }
}
