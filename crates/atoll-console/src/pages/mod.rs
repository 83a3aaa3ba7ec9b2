//! Console pages, one module per area. Handlers load the shared frame
//! ([`crate::view::Shell`]), call `PlatformService` as the logged-in user, and
//! render. Changes are POST forms carrying the session's CSRF token; a failed
//! change re-renders its page with the platform's message, a successful one
//! redirects (post/redirect/get) — except where the answer shows a secret once,
//! which must not be stored anywhere a redirect could carry it.

pub mod analytics;
pub mod apps;
pub mod audit;
pub mod delivery;
pub mod devices;
pub mod gateway;
pub mod members;
pub mod push;
pub mod switches;
pub mod sync;
pub mod tokens;
pub mod workspaces;

use serde::Deserialize;

/// A form that carries nothing but its CSRF token (buttons such as "revoke").
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf_token: String,
}

/// `?done=…`: which change just succeeded (see `view::done_message`).
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
}

/// A form body as ordered pairs, for forms with repeated fields (checkbox lists):
/// `serde_urlencoded` cannot put repeated keys into a struct's `Vec`, but reads
/// any form as a list of pairs.
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// An optional whole-number field: blank is `None`, anything else must parse.
    pub fn number(&self, name: &str) -> Result<Option<u32>, atoll_platform::Error> {
        non_blank(self.get(name))
            .map(|text| {
                text.parse::<u32>().map_err(|_| {
                    atoll_platform::Error::Validation(format!("{name}: a whole number"))
                })
            })
            .transpose()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// `Some(text)` for a non-blank field, trimmed.
pub fn non_blank(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_repeated_values() {
        let fields = Fields(vec![
            ("name".into(), "Shop".into()),
            ("platform".into(), "ios".into()),
            ("platform".into(), "android".into()),
        ]);
        assert_eq!(fields.get("name"), "Shop");
        assert_eq!(fields.get("missing"), "");
        assert_eq!(fields.all("platform"), ["ios", "android"]);
        assert_eq!(non_blank("  "), None);
        assert_eq!(non_blank(" x "), Some("x".into()));
    }
}
