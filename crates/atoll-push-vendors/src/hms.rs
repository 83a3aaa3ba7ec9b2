//! HMS Push Kit server API v1: `POST /v1/{appId}/messages:send` with an
//! OAuth2 client-credentials access token.
//!
//! Huawei answers with a result code in the body (`80000000` is success) as
//! well as an HTTP status; both are read. The limit of 4096 bytes applies to
//! the message without its tokens.

use crate::http::{self, deep_merge, AccessToken, TokenCache};
use crate::{
    ClickAction, CredentialsError, HttpOptions, Notification, PushProvider, SendOutcome, Style,
};
use atoll_protocol::device::PushChannel;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Huawei's OAuth2 token endpoint.
pub const HMS_TOKEN_URL: &str = "https://oauth-login.cloud.huawei.com/oauth2/v3/token";
/// The Push Kit API's base URL.
pub const HMS_API_BASE: &str = "https://push-api.cloud.huawei.com";
/// Push Kit's limit on the message body, tokens excluded.
pub const HMS_MAX_PAYLOAD: usize = 4096;
/// Push Kit keeps a message at most 15 days.
const HMS_MAX_TTL_SECS: u64 = 15 * 24 * 3600;

/// Credentials for Push Kit (AppGallery Connect: the app's OAuth client).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct HmsCredentials {
    /// The app id (the OAuth client id).
    pub app_id: String,
    /// The app secret (the OAuth client secret).
    pub client_secret: String,
    /// Overrides the token endpoint (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Overrides the API base (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
}

impl std::fmt::Debug for HmsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmsCredentials")
            .field("app_id", &self.app_id)
            .field("client_secret", &"<redacted>")
            .field("token_url", &self.token_url)
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl HmsCredentials {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        if self.app_id.is_empty() || !self.app_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CredentialsError::Invalid(format!(
                "hms: app_id {:?} is not an app id",
                self.app_id
            )));
        }
        if self.client_secret.is_empty() {
            return Err(CredentialsError::Invalid(
                "hms: client_secret is empty".into(),
            ));
        }
        Ok(())
    }

    fn token_url(&self) -> &str {
        self.token_url.as_deref().unwrap_or(HMS_TOKEN_URL)
    }

    fn send_url(&self) -> String {
        let base = self
            .api_base
            .as_deref()
            .unwrap_or(HMS_API_BASE)
            .trim_end_matches('/');
        format!("{base}/v1/{}/messages:send", self.app_id)
    }
}

/// Sends through HMS Push Kit.
#[derive(Debug)]
pub struct HmsProvider {
    credentials: HmsCredentials,
    send_url: String,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl HmsProvider {
    /// Validates the credentials and builds the client.
    pub fn new(
        credentials: HmsCredentials,
        options: &HttpOptions,
    ) -> Result<Self, CredentialsError> {
        credentials.validate()?;
        Ok(HmsProvider {
            send_url: credentials.send_url(),
            client: http::build_client(options, false)?,
            credentials,
            tokens: TokenCache::default(),
        })
    }

    async fn fetch_token(&self, now_ms: i64) -> Result<AccessToken, SendOutcome> {
        http::fetch_access_token(
            &self.client,
            self.credentials.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", self.credentials.app_id.as_str()),
                ("client_secret", self.credentials.client_secret.as_str()),
            ],
            now_ms,
        )
        .await
    }

    async fn deliver(&self, n: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        if token.is_empty() {
            return SendOutcome::TokenInvalid {
                reason: "empty token".into(),
            };
        }
        let mut message = match build_message(n, now_ms) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        if message.to_string().len() > HMS_MAX_PAYLOAD {
            return http::too_large();
        }
        message["token"] = json!([token]);
        let body = json!({"validate_only": false, "message": message});
        let access: Arc<str> = match self.tokens.get(now_ms, || self.fetch_token(now_ms)).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let http::VendorAnswer {
            status,
            after,
            body: bytes,
        } = match http::post_json(&self.client, &self.send_url, &access, &body, now_ms).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let answer = HmsAnswer::parse(&bytes);
        let (outcome, refresh) = classify(status, &answer, token, after);
        if refresh {
            self.tokens.invalidate(&access);
        }
        outcome
    }
}

/// The `message` object without `token`, as Push Kit measures it.
pub fn build_message(n: &Notification, now_ms: i64) -> Result<Value, SendOutcome> {
    let ttl = http::ttl_secs(n.expires_at_ms, now_ms)
        .ok_or_else(http::expired)?
        .min(HMS_MAX_TTL_SECS);
    // `data` is a string in Push Kit (a JSON object for us).
    let mut data = Map::new();
    for (k, v) in &n.extras {
        data.insert(k.clone(), json!(v));
    }
    data.insert("atoll_msg_id".into(), json!(n.msg_id));
    let mut android = Map::new();
    // -1: Push Kit keeps every offline message (the string collapse key
    // becomes the notification `tag` below).
    android.insert("collapse_key".into(), json!(-1));
    android.insert(
        "urgency".into(),
        json!(if n.high_priority { "HIGH" } else { "NORMAL" }),
    );
    android.insert("ttl".into(), json!(format!("{ttl}s")));
    android.insert("bi_tag".into(), json!(n.msg_id));
    if !n.silent {
        let mut notification = Map::new();
        notification.insert("title".into(), json!(n.title));
        notification.insert("body".into(), json!(n.body));
        if let Some(c) = &n.collapse_key {
            notification.insert("tag".into(), json!(c));
        }
        match &n.style {
            Style::Default => {}
            Style::BigText => {
                notification.insert("style".into(), json!(1));
                // Push Kit requires both with style 1.
                notification.insert("big_title".into(), json!(n.title));
                notification.insert("big_body".into(), json!(n.body));
            }
            Style::Image { url } => {
                notification.insert("image".into(), json!(url));
            }
        }
        // click_action is mandatory in Android notification messages.
        let click = match &n.click {
            None => json!({"type": 3}),
            Some(ClickAction::Url(url)) => json!({"type": 2, "url": url}),
            // Push Kit's type 1 takes an intent URI or a deep link alike.
            Some(ClickAction::Intent(uri)) | Some(ClickAction::DeepLink(uri)) => {
                json!({"type": 1, "intent": uri})
            }
        };
        notification.insert("click_action".into(), click);
        android.insert("notification".into(), Value::Object(notification));
    } else if let Some(click) = &n.click {
        let (kind, value) = match click {
            ClickAction::Url(v) => ("url", v),
            ClickAction::DeepLink(v) => ("deep_link", v),
            ClickAction::Intent(v) => ("intent", v),
        };
        data.insert("atoll_click_kind".into(), json!(kind));
        data.insert("atoll_click".into(), json!(value));
    }
    let mut message = json!({
        "data": Value::Object(data).to_string(),
        "android": Value::Object(android),
    });
    if let Some(options) = n.vendor_options.get("hms") {
        if options.is_object() {
            deep_merge(&mut message, options);
        }
    }
    Ok(message)
}

/// Push Kit's answer body.
#[derive(Debug, Default, PartialEq)]
pub struct HmsAnswer {
    /// The result code (`80000000`...).
    pub code: String,
    /// Its description (for `80100000`, a JSON string naming bad tokens).
    pub msg: String,
    /// Huawei's request id.
    pub request_id: Option<String>,
}

impl HmsAnswer {
    /// Parses `{"code","msg","requestId"}`; another shape gives the default.
    pub fn parse(body: &[u8]) -> HmsAnswer {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return HmsAnswer::default();
        };
        let text = |k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        HmsAnswer {
            code: text("code"),
            msg: text("msg"),
            request_id: Some(text("requestId")).filter(|s| !s.is_empty()),
        }
    }
}

/// Maps a Push Kit answer to an outcome; the flag asks for a new access token.
pub fn classify(
    status: u16,
    answer: &HmsAnswer,
    token: &str,
    after: Option<std::time::Duration>,
) -> (SendOutcome, bool) {
    let described = || format!("{}: {}", answer.code, answer.msg);
    let outcome = match (status, answer.code.as_str()) {
        (_, "80200001" | "80200003") | (401, _) => {
            return (
                SendOutcome::Retry {
                    after: None,
                    reason: if answer.code.is_empty() {
                        "http_401".into()
                    } else {
                        described()
                    },
                    throttled: false,
                },
                true,
            )
        }
        // The status decides over the body here: a throttled answer may
        // carry any code.
        (429, _) => SendOutcome::Retry {
            after,
            reason: "http_429".into(),
            throttled: true,
        },
        // Huawei documents 503 as its flow control, not as an outage.
        (503, _) => SendOutcome::Retry {
            after,
            reason: "http_503".into(),
            throttled: true,
        },
        (200, "80000000") => SendOutcome::Accepted {
            vendor_msg_id: answer.request_id.clone(),
        },
        (_, "80100000") => {
            // Partial success: `msg` is JSON naming the illegal tokens.
            let illegal = serde_json::from_str::<Value>(&answer.msg)
                .ok()
                .and_then(|m| m["illegal_tokens"].as_array().cloned())
                .unwrap_or_default();
            if illegal.iter().any(|t| t.as_str() == Some(token)) {
                SendOutcome::TokenInvalid {
                    reason: "80100000: illegal token".into(),
                }
            } else {
                SendOutcome::Accepted {
                    vendor_msg_id: answer.request_id.clone(),
                }
            }
        }
        (_, "80300007") => SendOutcome::TokenInvalid {
            reason: described(),
        },
        (_, "80300008") => http::too_large(),
        (_, "81000001") => SendOutcome::Retry {
            after,
            reason: described(),
            throttled: false,
        },
        (s, _) if s >= 500 => SendOutcome::Retry {
            after,
            reason: format!("http_{s}"),
            throttled: false,
        },
        (s, "") => SendOutcome::Rejected {
            reason: format!("http_{s}"),
        },
        _ => SendOutcome::Rejected {
            reason: described(),
        },
    };
    (outcome, false)
}

#[async_trait::async_trait]
impl PushProvider for HmsProvider {
    fn channel(&self) -> PushChannel {
        PushChannel::Hms
    }

    fn max_payload_bytes(&self) -> usize {
        HMS_MAX_PAYLOAD
    }

    async fn send(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        self.deliver(notification, token, now_ms).await
    }

    async fn revoke(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        match crate::revocation_of(notification) {
            Some(replacement) => self.deliver(&replacement, token, now_ms).await,
            None => crate::revoke_unsupported(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use std::time::Duration;

    #[test]
    fn notification_message_shape() {
        let mut n = sample();
        n.style = Style::BigText;
        n.click = Some(ClickAction::Url("https://example.com/o/42".into()));
        n.high_priority = true;
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        let data = format!(r#"{{"atoll_msg_id":"{}"}}"#, n.msg_id);
        assert_eq!(
            m,
            json!({
                "data": data,
                "android": {
                    "collapse_key": -1,
                    "urgency": "HIGH",
                    "ttl": "3600s",
                    "bi_tag": n.msg_id,
                    "notification": {
                        "title": "Hello", "body": "World", "tag": "orders",
                        "style": 1, "big_title": "Hello", "big_body": "World",
                        "click_action": {"type": 2, "url": "https://example.com/o/42"}
                    }
                }
            })
        );
    }

    #[test]
    fn silent_message_is_data_only() {
        let mut n = sample();
        n.silent = true;
        n.extras.insert("k".into(), "v".into());
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        assert!(m["android"].get("notification").is_none());
        let data: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, json!({"k": "v", "atoll_msg_id": n.msg_id}));
    }

    #[test]
    fn default_click_opens_the_app() {
        let n = sample();
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        assert_eq!(
            m["android"]["notification"]["click_action"],
            json!({"type": 3})
        );
    }

    #[test]
    fn classification() {
        let a = |code: &str, msg: &str| HmsAnswer {
            code: code.into(),
            msg: msg.into(),
            request_id: Some("r1".into()),
        };
        let c = |s, answer: &HmsAnswer| classify(s, answer, "tok", Some(Duration::from_secs(2)));
        assert_eq!(
            c(200, &a("80000000", "Success")).0,
            SendOutcome::Accepted {
                vendor_msg_id: Some("r1".into())
            }
        );
        assert!(matches!(
            c(400, &a("80300007", "All the tokens are invalid")).0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(matches!(
            c(
                200,
                &a(
                    "80100000",
                    r#"{"success":0,"failure":1,"illegal_tokens":["tok"]}"#
                )
            )
            .0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(matches!(
            c(
                200,
                &a(
                    "80100000",
                    r#"{"success":1,"failure":1,"illegal_tokens":["other"]}"#
                )
            )
            .0,
            SendOutcome::Accepted { .. }
        ));
        let (o, refresh) = c(401, &a("80200003", "Oauth Token expired."));
        assert!(refresh && matches!(o, SendOutcome::Retry { .. }));
        assert_eq!(c(400, &a("80300008", "too big")).0, http::too_large());
        assert!(
            matches!(c(400, &a("80100003", "Illegal payload")).0, SendOutcome::Rejected { reason } if reason.starts_with("80100003"))
        );
        assert!(matches!(
            c(500, &a("81000001", "System inner error")).0,
            SendOutcome::Retry {
                throttled: false,
                ..
            }
        ));
        assert_eq!(
            c(429, &HmsAnswer::default()).0,
            SendOutcome::Retry {
                after: Some(Duration::from_secs(2)),
                reason: "http_429".into(),
                throttled: true
            }
        );
        assert!(matches!(
            c(503, &HmsAnswer::default()).0,
            SendOutcome::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            c(502, &HmsAnswer::default()).0,
            SendOutcome::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            c(404, &HmsAnswer::default()).0,
            SendOutcome::Rejected { .. }
        ));
    }
}
