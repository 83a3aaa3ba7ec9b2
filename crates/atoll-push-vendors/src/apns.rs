//! APNs provider API: HTTP/2 over TLS, token-based (`.p8`) authentication.
//!
//! One `POST /3/device/{token}` per notification on a long-lived HTTP/2
//! connection. The provider token (an ES256 JWT) is minted once and reused
//! for 50 minutes: Apple rejects tokens older than an hour and answers
//! `TooManyProviderTokenUpdates` when a key mints more often than every 20
//! minutes, so a token per request would be throttled.

use crate::http::{self, deep_merge};
use crate::jwt::Es256Signer;
use crate::{
    ClickAction, CredentialsError, HttpOptions, Notification, PushProvider, SendOutcome, Style,
};
use atoll_protocol::device::PushChannel;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Apple's production endpoint.
pub const APNS_PRODUCTION: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) endpoint.
pub const APNS_SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// The APNs payload limit for regular (non-VoIP) notifications.
pub const APNS_MAX_PAYLOAD: usize = 4096;
/// `apns-collapse-id` may not exceed 64 bytes.
pub const APNS_MAX_COLLAPSE_ID: usize = 64;
/// Mint a new provider token after this long (Apple: valid for 60 minutes).
const JWT_REFRESH_SECS: i64 = 50 * 60;
/// Apple refuses a new token sooner than this after the previous one.
const JWT_MIN_REFRESH_SECS: i64 = 20 * 60;

/// The `aps` dictionary's keys: vendor options naming them at the top level
/// (`{"sound": "default", "badge": 3}`) are moved into `aps`.
const APS_KEYS: &[&str] = &[
    "alert",
    "badge",
    "sound",
    "thread-id",
    "category",
    "content-available",
    "mutable-content",
    "target-content-id",
    "interruption-level",
    "relevance-score",
    "filter-criteria",
    "stale-date",
    "content-state",
    "timestamp",
    "event",
    "dismissal-date",
];

/// Credentials for token-based APNs authentication.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApnsCredentials {
    /// The 10-character Team ID (JWT `iss`).
    pub team_id: String,
    /// The 10-character Key ID of the `.p8` key (JWT `kid`).
    pub key_id: String,
    /// The `.p8` file's content: a PKCS#8 PEM EC P-256 private key.
    pub private_key_pem: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Overrides the endpoint (tests, proxies); default from `sandbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Use Apple's development environment.
    #[serde(default)]
    pub sandbox: bool,
}

impl std::fmt::Debug for ApnsCredentials {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsCredentials")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key_pem", &"<redacted>")
            .field("topic", &self.topic)
            .field("endpoint", &self.endpoint)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl ApnsCredentials {
    /// The base URL requests go to.
    pub fn base_url(&self) -> String {
        let base = self.endpoint.as_deref().unwrap_or(if self.sandbox {
            APNS_SANDBOX
        } else {
            APNS_PRODUCTION
        });
        base.trim_end_matches('/').to_string()
    }

    /// Checks the fields and parses the key.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        self.signer().map(|_| ())
    }

    fn signer(&self) -> Result<Es256Signer, CredentialsError> {
        for (name, value) in [
            ("team_id", &self.team_id),
            ("key_id", &self.key_id),
            ("topic", &self.topic),
        ] {
            if value.trim().is_empty() {
                return Err(CredentialsError::Invalid(format!("apns: {name} is empty")));
            }
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CredentialsError::Invalid(format!(
                    "apns: {name} has characters not allowed in a header"
                )));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            if !endpoint.starts_with("https://") {
                return Err(CredentialsError::Invalid(
                    "apns: endpoint must be an https:// URL (APNs is HTTP/2 over TLS)".into(),
                ));
            }
        }
        Es256Signer::from_pem(&self.private_key_pem)
            .map_err(|e| CredentialsError::Invalid(format!("apns: private_key_pem: {e}")))
    }
}

#[derive(Debug)]
struct ProviderToken {
    iat: i64,
    jwt: Arc<str>,
}

/// Sends through APNs.
#[derive(Debug)]
pub struct ApnsProvider {
    credentials: ApnsCredentials,
    base: String,
    signer: Es256Signer,
    client: reqwest::Client,
    token: parking_lot::Mutex<Option<ProviderToken>>,
}

impl ApnsProvider {
    /// Validates the credentials and builds the HTTP/2 client.
    pub fn new(
        credentials: ApnsCredentials,
        options: &HttpOptions,
    ) -> Result<Self, CredentialsError> {
        let signer = credentials.signer()?;
        let client = http::build_client(options, true)?;
        Ok(ApnsProvider {
            base: credentials.base_url(),
            credentials,
            signer,
            client,
            token: parking_lot::Mutex::new(None),
        })
    }

    /// The provider token to use at `now_ms`, minted when missing or 50
    /// minutes old.
    fn provider_token(&self, now_ms: i64) -> Result<Arc<str>, SendOutcome> {
        let now = now_ms.div_euclid(1000);
        let mut slot = self.token.lock();
        if let Some(t) = slot.as_ref() {
            // A clock that went backwards keeps the token: Apple's clock is
            // the one that decides.
            if now - t.iat < JWT_REFRESH_SECS {
                return Ok(t.jwt.clone());
            }
        }
        let jwt: Arc<str> = self
            .signer
            .sign(
                &json!({"alg": "ES256", "kid": self.credentials.key_id}),
                &json!({"iss": self.credentials.team_id, "iat": now}),
            )
            .map_err(|reason| SendOutcome::Rejected { reason })?
            .into();
        tracing::debug!(key_id = %self.credentials.key_id, iat = now, "apns: minted a provider token");
        *slot = Some(ProviderToken {
            iat: now,
            jwt: jwt.clone(),
        });
        Ok(jwt)
    }

    /// Apple said `ExpiredProviderToken`: mint anew on the next send unless
    /// the token is younger than Apple's 20-minute minimum by our clock (then
    /// the clocks disagree, a new token would carry the same `iat`, and
    /// Apple would count it as a too-early update).
    fn expire_token(&self, used: &str, now_ms: i64) {
        let now = now_ms.div_euclid(1000);
        let mut slot = self.token.lock();
        if let Some(t) = slot.as_ref() {
            if &*t.jwt == used && now - t.iat >= JWT_MIN_REFRESH_SECS {
                *slot = None;
            }
        }
    }

    async fn deliver(
        &self,
        n: &Notification,
        token: &str,
        now_ms: i64,
        revocation: bool,
    ) -> SendOutcome {
        if n.expires_at_ms <= now_ms {
            return http::expired();
        }
        if !valid_device_token(token) {
            return SendOutcome::TokenInvalid {
                reason: "BadDeviceToken".into(),
            };
        }
        if let Some(c) = &n.collapse_key {
            if c.len() > APNS_MAX_COLLAPSE_ID || c.is_empty() {
                return SendOutcome::Rejected {
                    reason: "BadCollapseId".into(),
                };
            }
        }
        let payload = build_payload(n);
        let body = payload.to_string();
        if body.len() > APNS_MAX_PAYLOAD {
            return http::too_large();
        }
        let jwt = match self.provider_token(now_ms) {
            Ok(jwt) => jwt,
            Err(outcome) => return outcome,
        };
        let headers = match request_headers(n, &self.credentials.topic, revocation) {
            Ok(h) => h,
            Err(outcome) => return outcome,
        };
        let mut request = self
            .client
            .post(format!("{}/3/device/{}", self.base, token))
            .header("authorization", format!("bearer {jwt}"))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return http::network_outcome(&e),
        };
        let status = response.status().as_u16();
        let apns_id = response
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let after = http::retry_after(response.headers(), now_ms);
        let reason = if status == 200 {
            None
        } else {
            response
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string))
        };
        let (outcome, refresh) = classify(status, reason.as_deref(), apns_id, after);
        if refresh {
            self.expire_token(&jwt, now_ms);
        }
        outcome
    }
}

/// Device tokens are hex (64 characters today; Apple says not to assume a
/// length). Anything else would also break the request path.
fn valid_device_token(token: &str) -> bool {
    !token.is_empty() && token.len() & 1 == 0 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `apns-*` headers of one request.
fn request_headers(
    n: &Notification,
    topic: &str,
    revocation: bool,
) -> Result<Vec<(&'static str, String)>, SendOutcome> {
    let silent = n.silent && !revocation;
    let mut headers = vec![
        ("apns-topic", topic.to_string()),
        (
            "apns-push-type",
            if silent { "background" } else { "alert" }.to_string(),
        ),
        // Apple: background pushes must use priority 5.
        (
            "apns-priority",
            if n.high_priority && !silent {
                "10"
            } else {
                "5"
            }
            .to_string(),
        ),
        (
            "apns-expiration",
            n.expires_at_ms.div_euclid(1000).max(0).to_string(),
        ),
    ];
    if let Some(c) = &n.collapse_key {
        if reqwest::header::HeaderValue::from_str(c).is_err() {
            return Err(SendOutcome::Rejected {
                reason: "BadCollapseId".into(),
            });
        }
        headers.push(("apns-collapse-id", c.clone()));
    }
    // A revocation is a second notification: it must not reuse the id.
    if !revocation {
        if let Ok(id) = uuid::Uuid::parse_str(&n.msg_id) {
            headers.push(("apns-id", id.hyphenated().to_string()));
        }
    }
    Ok(headers)
}

/// The JSON body: `aps` for the system, the app's extras at the top level,
/// Atoll's own fields under `atoll`, then the `apns` vendor options.
pub fn build_payload(n: &Notification) -> Value {
    let mut aps = Map::new();
    if n.silent {
        aps.insert("content-available".into(), json!(1));
    } else {
        let mut alert = Map::new();
        if !n.title.is_empty() {
            alert.insert("title".into(), json!(n.title));
        }
        alert.insert("body".into(), json!(n.body));
        aps.insert("alert".into(), Value::Object(alert));
        if matches!(n.style, Style::Image { .. }) {
            // Lets the app's notification service extension fetch the image.
            aps.insert("mutable-content".into(), json!(1));
        }
    }
    let mut root = Map::new();
    for (k, v) in &n.extras {
        // `aps` and `atoll` are ours; an extra cannot replace them.
        if k != "aps" && k != "atoll" {
            root.insert(k.clone(), json!(v));
        }
    }
    let mut atoll = Map::new();
    atoll.insert("msg_id".into(), json!(n.msg_id));
    if let Some(click) = &n.click {
        atoll.insert("click".into(), click_json(click));
    }
    if let Style::Image { url } = &n.style {
        atoll.insert("image".into(), json!(url));
    }
    root.insert("aps".into(), Value::Object(aps));
    root.insert("atoll".into(), Value::Object(atoll));
    let mut payload = Value::Object(root);
    if let Some(Value::Object(options)) = n.vendor_options.get("apns") {
        for (k, v) in options {
            let patch = if k == "aps" {
                json!({ "aps": v })
            } else if APS_KEYS.contains(&k.as_str()) {
                json!({ "aps": { k: v } })
            } else {
                json!({ k: v })
            };
            deep_merge(&mut payload, &patch);
        }
    }
    payload
}

fn click_json(click: &ClickAction) -> Value {
    let (kind, value) = match click {
        ClickAction::Url(v) => ("url", v),
        ClickAction::DeepLink(v) => ("deep_link", v),
        ClickAction::Intent(v) => ("intent", v),
    };
    json!({"kind": kind, "value": value})
}

/// Maps an APNs answer to an outcome; the flag asks for a new provider token.
pub fn classify(
    status: u16,
    reason: Option<&str>,
    apns_id: Option<String>,
    after: Option<std::time::Duration>,
) -> (SendOutcome, bool) {
    let reason_or = |default: &str| reason.unwrap_or(default).to_string();
    let outcome = match (status, reason) {
        (200, _) => SendOutcome::Accepted {
            vendor_msg_id: apns_id,
        },
        (410, _) => SendOutcome::TokenInvalid {
            reason: reason_or("Unregistered"),
        },
        (400, Some(r @ ("BadDeviceToken" | "DeviceTokenNotForTopic"))) => {
            SendOutcome::TokenInvalid { reason: r.into() }
        }
        (403, Some("ExpiredProviderToken")) => {
            return (
                SendOutcome::Retry {
                    after,
                    reason: "ExpiredProviderToken".into(),
                    throttled: false,
                },
                true,
            )
        }
        (413, _) => http::too_large(),
        (429, _) => SendOutcome::Retry {
            after,
            reason: reason_or("TooManyRequests"),
            throttled: true,
        },
        (s, _) if s >= 500 => SendOutcome::Retry {
            after,
            reason: reason_or(&format!("http_{s}")),
            throttled: false,
        },
        (s, _) => SendOutcome::Rejected {
            reason: reason_or(&format!("http_{s}")),
        },
    };
    (outcome, false)
}

#[async_trait::async_trait]
impl PushProvider for ApnsProvider {
    fn channel(&self) -> PushChannel {
        PushChannel::Apns
    }

    fn max_payload_bytes(&self) -> usize {
        APNS_MAX_PAYLOAD
    }

    async fn send(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        self.deliver(notification, token, now_ms, false).await
    }

    async fn revoke(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        match crate::revocation_of(notification) {
            Some(replacement) => self.deliver(&replacement, token, now_ms, true).await,
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
    fn alert_payload_shape() {
        let mut n = sample();
        n.style = Style::Image {
            url: "https://img.example/x.png".into(),
        };
        n.click = Some(ClickAction::DeepLink("app://orders/42".into()));
        n.extras.insert("order".into(), "42".into());
        n.extras.insert("aps".into(), "sneaky".into());
        let p = build_payload(&n);
        assert_eq!(
            p,
            json!({
                "aps": {"alert": {"title": "Hello", "body": "World"}, "mutable-content": 1},
                "order": "42",
                "atoll": {
                    "msg_id": n.msg_id,
                    "click": {"kind": "deep_link", "value": "app://orders/42"},
                    "image": "https://img.example/x.png"
                }
            })
        );
    }

    #[test]
    fn silent_payload_and_headers() {
        let mut n = sample();
        n.silent = true;
        n.title.clear();
        n.body.clear();
        n.high_priority = true;
        let p = build_payload(&n);
        assert_eq!(p["aps"], json!({"content-available": 1}));
        let h = request_headers(&n, "com.example.app", false).unwrap();
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("apns-push-type").as_deref(), Some("background"));
        assert_eq!(get("apns-priority").as_deref(), Some("5"));
        assert_eq!(get("apns-expiration").as_deref(), Some("1700003600"));
        assert_eq!(
            get("apns-id").as_deref(),
            Some("0190f3a4-5b6c-7d8e-9f00-112233445566")
        );
        assert_eq!(get("apns-collapse-id").as_deref(), Some("orders"));
    }

    #[test]
    fn vendor_options_go_into_aps_or_top_level() {
        let mut n = sample();
        n.vendor_options.insert(
            "apns".into(),
            json!({"sound": "default", "badge": 3, "aps": {"thread-id": "t1"}, "custom": {"a": 1}}),
        );
        let p = build_payload(&n);
        assert_eq!(p["aps"]["sound"], "default");
        assert_eq!(p["aps"]["badge"], 3);
        assert_eq!(p["aps"]["thread-id"], "t1");
        assert_eq!(p["aps"]["alert"]["title"], "Hello");
        assert_eq!(p["custom"], json!({"a": 1}));
    }

    #[test]
    fn classification() {
        let c = |s, r: Option<&str>| classify(s, r, Some("id".into()), None);
        assert_eq!(
            c(200, None).0,
            SendOutcome::Accepted {
                vendor_msg_id: Some("id".into())
            }
        );
        assert!(
            matches!(c(410, Some("Unregistered")).0, SendOutcome::TokenInvalid { reason } if reason == "Unregistered")
        );
        assert!(matches!(
            c(400, Some("BadDeviceToken")).0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(matches!(
            c(400, Some("DeviceTokenNotForTopic")).0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(
            matches!(c(400, Some("BadTopic")).0, SendOutcome::Rejected { reason } if reason == "BadTopic")
        );
        assert!(matches!(
            c(403, Some("InvalidProviderToken")).0,
            SendOutcome::Rejected { .. }
        ));
        let (o, refresh) = c(403, Some("ExpiredProviderToken"));
        assert!(
            refresh
                && matches!(
                    o,
                    SendOutcome::Retry {
                        throttled: false,
                        ..
                    }
                )
        );
        let (o, _) = classify(
            429,
            Some("TooManyRequests"),
            None,
            Some(Duration::from_secs(3)),
        );
        assert_eq!(
            o,
            SendOutcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "TooManyRequests".into(),
                throttled: true
            }
        );
        assert!(matches!(
            c(503, Some("ServiceUnavailable")).0,
            SendOutcome::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(c(500, None).0, SendOutcome::Retry { .. }));
        assert_eq!(c(413, Some("PayloadTooLarge")).0, http::too_large());
    }

    #[test]
    fn device_tokens() {
        assert!(valid_device_token(&"ab".repeat(32)));
        assert!(!valid_device_token(""));
        assert!(!valid_device_token("abc"));
        assert!(!valid_device_token("zz"));
        assert!(!valid_device_token("ab/cd"));
    }
}
