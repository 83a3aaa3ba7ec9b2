//! FCM HTTP v1: `projects.messages.send` with an OAuth2 access token from a
//! service account.
//!
//! The access token comes from Google's token endpoint in exchange for an
//! RS256-signed JWT assertion (the service-account flow) and is cached until
//! a minute before it expires; concurrent sends share one refresh.

use crate::http::{self, deep_merge, AccessToken, TokenCache};
use crate::jwt::Rs256Signer;
use crate::{
    ClickAction, CredentialsError, HttpOptions, Notification, PushProvider, SendOutcome, Style,
};
use atoll_protocol::device::PushChannel;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Google's OAuth2 token endpoint (the service account's usual `token_uri`).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The FCM API's base URL.
pub const FCM_API_BASE: &str = "https://fcm.googleapis.com";
/// The OAuth scope sending needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// FCM's payload limit (we measure the `message` object without its target).
pub const FCM_MAX_PAYLOAD: usize = 4096;
/// FCM keeps a message at most 28 days.
const FCM_MAX_TTL_SECS: u64 = 28 * 24 * 3600;

fn default_token_uri() -> String {
    GOOGLE_TOKEN_URI.to_string()
}

/// The fields of a Google service-account key file that FCM needs. The file
/// as downloaded parses as it is (its other fields are ignored).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase project.
    pub project_id: String,
    /// The service account (JWT `iss`).
    pub client_email: String,
    /// PKCS#8 PEM RSA private key.
    pub private_key: String,
    /// The key's id (JWT header `kid`).
    #[serde(default)]
    pub private_key_id: String,
    /// Where to exchange the assertion for an access token.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

/// Credentials for FCM HTTP v1.
///
/// Accepted JSON shapes: the service-account file itself (optionally with an
/// `api_base` field added), or `{"service_account": {...}, "api_base": ...}`.
/// Serialized in the flat form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FcmCredentialsWire")]
pub struct FcmCredentials {
    /// The service account.
    #[serde(flatten)]
    pub service_account: ServiceAccount,
    /// Overrides the API base (tests); default `https://fcm.googleapis.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
}

#[derive(Deserialize)]
struct FcmCredentialsWire {
    #[serde(default)]
    service_account: Option<ServiceAccount>,
    #[serde(default)]
    api_base: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl TryFrom<FcmCredentialsWire> for FcmCredentials {
    type Error = String;

    fn try_from(wire: FcmCredentialsWire) -> Result<Self, String> {
        if let Some(kind) = wire.rest.get("type").and_then(Value::as_str) {
            if kind != "service_account" {
                return Err(format!(
                    "expected a service-account key file, got type \"{kind}\""
                ));
            }
        }
        let service_account = match wire.service_account {
            Some(sa) => sa,
            None => serde_json::from_value(Value::Object(wire.rest)).map_err(|e| e.to_string())?,
        };
        Ok(FcmCredentials {
            service_account,
            api_base: wire.api_base,
        })
    }
}

impl FcmCredentials {
    /// Checks the fields and parses the key.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        self.signer().map(|_| ())
    }

    fn signer(&self) -> Result<Rs256Signer, CredentialsError> {
        let sa = &self.service_account;
        if sa.project_id.is_empty()
            || !sa
                .project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
        {
            return Err(CredentialsError::Invalid(format!(
                "fcm: project_id {:?} is not a project id",
                sa.project_id
            )));
        }
        if sa.client_email.is_empty() {
            return Err(CredentialsError::Invalid(
                "fcm: client_email is empty".into(),
            ));
        }
        if !sa.token_uri.starts_with("https://") && !sa.token_uri.starts_with("http://") {
            return Err(CredentialsError::Invalid(
                "fcm: token_uri is not a URL".into(),
            ));
        }
        Rs256Signer::from_pem(&sa.private_key)
            .map_err(|e| CredentialsError::Invalid(format!("fcm: private_key: {e}")))
    }

    fn send_url(&self) -> String {
        let base = self
            .api_base
            .as_deref()
            .unwrap_or(FCM_API_BASE)
            .trim_end_matches('/');
        format!(
            "{base}/v1/projects/{}/messages:send",
            self.service_account.project_id
        )
    }
}

/// Sends through FCM HTTP v1.
#[derive(Debug)]
pub struct FcmProvider {
    credentials: FcmCredentials,
    signer: Rs256Signer,
    send_url: String,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl FcmProvider {
    /// Validates the credentials and builds the client.
    pub fn new(
        credentials: FcmCredentials,
        options: &HttpOptions,
    ) -> Result<Self, CredentialsError> {
        let signer = credentials.signer()?;
        Ok(FcmProvider {
            send_url: credentials.send_url(),
            client: http::build_client(options, false)?,
            credentials,
            signer,
            tokens: TokenCache::default(),
        })
    }

    async fn fetch_token(&self, now_ms: i64) -> Result<AccessToken, SendOutcome> {
        let sa = &self.credentials.service_account;
        let iat = now_ms.div_euclid(1000);
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if !sa.private_key_id.is_empty() {
            header["kid"] = json!(sa.private_key_id);
        }
        let assertion = self
            .signer
            .sign(
                &header,
                &json!({
                    "iss": sa.client_email,
                    "scope": FCM_SCOPE,
                    "aud": sa.token_uri,
                    "iat": iat,
                    "exp": iat + 3600,
                }),
            )
            .map_err(|reason| SendOutcome::Rejected { reason })?;
        http::fetch_access_token(
            &self.client,
            &sa.token_uri,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ],
            now_ms,
        )
        .await
    }
}

/// The `message` object without its target, as FCM measures it.
pub fn build_message(n: &Notification, now_ms: i64) -> Result<Value, SendOutcome> {
    let ttl = http::ttl_secs(n.expires_at_ms, now_ms)
        .ok_or_else(http::expired)?
        .min(FCM_MAX_TTL_SECS);
    let mut data = Map::new();
    for (k, v) in &n.extras {
        if reserved_data_key(k) {
            return Err(SendOutcome::Rejected {
                reason: format!("reserved_data_key: {k}"),
            });
        }
        data.insert(k.clone(), json!(v));
    }
    data.insert("atoll_msg_id".into(), json!(n.msg_id));
    if let Some(click) = &n.click {
        let (kind, value) = click_parts(click);
        data.insert("atoll_click_kind".into(), json!(kind));
        data.insert("atoll_click".into(), json!(value));
    }
    let mut message = Map::new();
    let mut android = Map::new();
    if let Some(c) = &n.collapse_key {
        android.insert("collapse_key".into(), json!(c));
    }
    android.insert(
        "priority".into(),
        json!(if n.high_priority { "HIGH" } else { "NORMAL" }),
    );
    android.insert("ttl".into(), json!(format!("{ttl}s")));
    if !n.silent {
        let mut notification = Map::new();
        notification.insert("title".into(), json!(n.title));
        notification.insert("body".into(), json!(n.body));
        if let Style::Image { url } = &n.style {
            notification.insert("image".into(), json!(url));
        }
        message.insert("notification".into(), Value::Object(notification));
        let mut android_notification = Map::new();
        if let Some(c) = &n.collapse_key {
            // `tag` replaces the shown notification; `collapse_key` only
            // collapses messages still queued at FCM.
            android_notification.insert("tag".into(), json!(c));
        }
        if let Some(ClickAction::Intent(action)) = &n.click {
            android_notification.insert("click_action".into(), json!(action));
        }
        if !android_notification.is_empty() {
            android.insert("notification".into(), Value::Object(android_notification));
        }
    }
    message.insert("data".into(), Value::Object(data));
    message.insert("android".into(), Value::Object(android));
    let mut message = Value::Object(message);
    if let Some(options) = n.vendor_options.get("fcm") {
        if options.is_object() {
            deep_merge(&mut message, options);
        }
    }
    Ok(message)
}

/// FCM refuses these data keys.
fn reserved_data_key(key: &str) -> bool {
    matches!(key, "from" | "notification" | "message_type")
        || key.starts_with("google")
        || key.starts_with("gcm")
}

fn click_parts(click: &ClickAction) -> (&'static str, &str) {
    match click {
        ClickAction::Url(v) => ("url", v),
        ClickAction::DeepLink(v) => ("deep_link", v),
        ClickAction::Intent(v) => ("intent", v),
    }
}

/// What an FCM error body says.
#[derive(Debug, Default, PartialEq)]
pub struct FcmError {
    /// `error.status` (`INVALID_ARGUMENT`, `UNAUTHENTICATED`...).
    pub status: String,
    /// The `FcmError` detail's `errorCode` (`UNREGISTERED`...), if any.
    pub error_code: Option<String>,
    /// `error.message`.
    pub message: String,
    /// The fields named by a `BadRequest` detail.
    pub bad_fields: Vec<String>,
}

impl FcmError {
    /// Parses `{"error": {...}}`; a body of another shape gives the default.
    pub fn parse(body: &[u8]) -> FcmError {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return FcmError::default();
        };
        let e = &v["error"];
        let mut out = FcmError {
            status: e["status"].as_str().unwrap_or_default().to_string(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
            ..FcmError::default()
        };
        for d in e["details"].as_array().into_iter().flatten() {
            let kind = d["@type"].as_str().unwrap_or_default();
            if kind.ends_with("google.firebase.fcm.v1.FcmError") {
                out.error_code = d["errorCode"].as_str().map(str::to_string);
            } else if kind.ends_with("google.rpc.BadRequest") {
                for f in d["fieldViolations"].as_array().into_iter().flatten() {
                    if let Some(field) = f["field"].as_str() {
                        out.bad_fields.push(field.to_string());
                    }
                }
            }
        }
        out
    }

    /// The most specific code: the FcmError one, else the status.
    pub fn code(&self) -> &str {
        self.error_code.as_deref().unwrap_or(&self.status)
    }
}

/// Maps an FCM answer to an outcome; the flag asks for a new access token.
pub fn classify(
    status: u16,
    error: &FcmError,
    after: Option<std::time::Duration>,
) -> (SendOutcome, bool) {
    let code = error.code();
    let described = |c: &str| {
        if error.message.is_empty() {
            c.to_string()
        } else {
            format!("{c}: {}", error.message)
        }
    };
    let outcome = match code {
        "UNREGISTERED" | "SENDER_ID_MISMATCH" => SendOutcome::TokenInvalid {
            reason: code.to_string(),
        },
        "INVALID_ARGUMENT"
            if error.bad_fields.iter().any(|f| f == "message.token")
                || error.message.contains("registration token") =>
        {
            SendOutcome::TokenInvalid {
                reason: "INVALID_ARGUMENT: invalid registration token".into(),
            }
        }
        "QUOTA_EXCEEDED" => SendOutcome::Retry {
            after,
            reason: code.to_string(),
            throttled: true,
        },
        "UNAVAILABLE" | "INTERNAL" => SendOutcome::Retry {
            after,
            reason: code.to_string(),
            throttled: false,
        },
        // The APNs/web-push credentials stored in Firebase are wrong: only
        // the app's owner can fix that.
        "THIRD_PARTY_AUTH_ERROR" => SendOutcome::Rejected {
            reason: described(code),
        },
        _ => match status {
            401 => {
                return (
                    SendOutcome::Retry {
                        after: None,
                        reason: "UNAUTHENTICATED".into(),
                        throttled: false,
                    },
                    true,
                )
            }
            429 => SendOutcome::Retry {
                after,
                reason: "QUOTA_EXCEEDED".into(),
                throttled: true,
            },
            s if s >= 500 => SendOutcome::Retry {
                after,
                reason: if code.is_empty() {
                    format!("http_{s}")
                } else {
                    code.to_string()
                },
                throttled: false,
            },
            s => SendOutcome::Rejected {
                reason: if code.is_empty() {
                    format!("http_{s}")
                } else {
                    described(code)
                },
            },
        },
    };
    (outcome, false)
}

#[async_trait::async_trait]
impl PushProvider for FcmProvider {
    fn channel(&self) -> PushChannel {
        PushChannel::Fcm
    }

    fn max_payload_bytes(&self) -> usize {
        FCM_MAX_PAYLOAD
    }

    async fn send(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome {
        if token.is_empty() {
            return SendOutcome::TokenInvalid {
                reason: "empty token".into(),
            };
        }
        let mut message = match build_message(notification, now_ms) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        // Checked before any request (token fetch included) goes out.
        if message.to_string().len() > FCM_MAX_PAYLOAD {
            return http::too_large();
        }
        message["token"] = json!(token);
        let body = json!({ "message": message });
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
        if (200..300).contains(&status) {
            let name = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string));
            return SendOutcome::Accepted {
                vendor_msg_id: name,
            };
        }
        let (outcome, refresh) = classify(status, &FcmError::parse(&bytes), after);
        if refresh {
            self.tokens.invalidate(&access);
        }
        outcome
    }

    async fn revoke(&self, _: &Notification, _: &str, _: i64) -> SendOutcome {
        // FCM has no way to withdraw or replace a delivered notification
        // short of a data message the app itself handles.
        crate::revoke_unsupported()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use std::time::Duration;

    #[test]
    fn message_shape() {
        let mut n = sample();
        n.click = Some(ClickAction::Intent("OPEN_ORDER".into()));
        n.style = Style::Image {
            url: "https://img.example/x.png".into(),
        };
        n.extras.insert("order".into(), "42".into());
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        assert_eq!(
            m,
            json!({
                "notification": {"title": "Hello", "body": "World", "image": "https://img.example/x.png"},
                "data": {
                    "order": "42",
                    "atoll_msg_id": n.msg_id,
                    "atoll_click_kind": "intent",
                    "atoll_click": "OPEN_ORDER"
                },
                "android": {
                    "collapse_key": "orders",
                    "priority": "NORMAL",
                    "ttl": "3600s",
                    "notification": {"tag": "orders", "click_action": "OPEN_ORDER"}
                }
            })
        );
    }

    #[test]
    fn silent_message_has_no_notification() {
        let mut n = sample();
        n.silent = true;
        n.high_priority = true;
        n.collapse_key = None;
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        assert!(m.get("notification").is_none());
        assert_eq!(m["android"], json!({"priority": "HIGH", "ttl": "3600s"}));
    }

    #[test]
    fn vendor_options_and_reserved_keys() {
        let mut n = sample();
        n.vendor_options.insert(
            "fcm".into(),
            json!({"android": {"notification": {"channel_id": "orders"}}, "fcm_options": {"analytics_label": "x"}}),
        );
        let m = build_message(&n, 1_700_000_000_000).unwrap();
        assert_eq!(m["android"]["notification"]["channel_id"], "orders");
        assert_eq!(m["android"]["notification"]["tag"], "orders");
        assert_eq!(m["fcm_options"]["analytics_label"], "x");
        n.extras.insert("google.x".into(), "1".into());
        assert!(matches!(
            build_message(&n, 0),
            Err(SendOutcome::Rejected { .. })
        ));
        let mut n = sample();
        n.expires_at_ms = 5;
        assert_eq!(build_message(&n, 5), Err(http::expired()));
    }

    #[test]
    fn classification() {
        let err = |status: &str, code: Option<&str>, fields: &[&str], msg: &str| FcmError {
            status: status.into(),
            error_code: code.map(str::to_string),
            message: msg.into(),
            bad_fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        let c = |s, e: &FcmError| classify(s, e, Some(Duration::from_secs(9)));
        assert!(matches!(
            c(404, &err("NOT_FOUND", Some("UNREGISTERED"), &[], "")).0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(matches!(
            c(
                403,
                &err("PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), &[], "")
            )
            .0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(matches!(
            c(
                400,
                &err(
                    "INVALID_ARGUMENT",
                    Some("INVALID_ARGUMENT"),
                    &["message.token"],
                    ""
                )
            )
            .0,
            SendOutcome::TokenInvalid { .. }
        ));
        assert!(
            matches!(c(400, &err("INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), &[], "bad ttl")).0, SendOutcome::Rejected { reason } if reason == "INVALID_ARGUMENT: bad ttl")
        );
        assert_eq!(
            c(
                429,
                &err("RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), &[], "")
            )
            .0,
            SendOutcome::Retry {
                after: Some(Duration::from_secs(9)),
                reason: "QUOTA_EXCEEDED".into(),
                throttled: true
            }
        );
        assert!(matches!(
            c(503, &err("UNAVAILABLE", Some("UNAVAILABLE"), &[], "")).0,
            SendOutcome::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            c(500, &FcmError::default()).0,
            SendOutcome::Retry { .. }
        ));
        let (o, refresh) = c(401, &err("UNAUTHENTICATED", None, &[], ""));
        assert!(refresh && matches!(o, SendOutcome::Retry { .. }));
        let (o, refresh) = c(
            401,
            &err("UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR"), &[], ""),
        );
        assert!(!refresh && matches!(o, SendOutcome::Rejected { .. }));
        assert!(matches!(
            c(404, &err("NOT_FOUND", None, &[], "")).0,
            SendOutcome::Rejected { .. }
        ));
    }

    #[test]
    fn parses_error_bodies() {
        let body = br#"{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}"#;
        let e = FcmError::parse(body);
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert_eq!(e.bad_fields, vec!["message.token"]);
        assert_eq!(FcmError::parse(b"<html>").code(), "");
    }

    #[test]
    fn credentials_shapes() {
        let sa = json!({
            "type": "service_account",
            "project_id": "p-1",
            "private_key_id": "k1",
            "private_key": "pem",
            "client_email": "a@p-1.iam.gserviceaccount.com",
            "client_id": "123",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "universe_domain": "googleapis.com"
        });
        let flat: FcmCredentials = serde_json::from_value(sa.clone()).unwrap();
        assert_eq!(flat.service_account.project_id, "p-1");
        assert_eq!(flat.api_base, None);
        let nested: FcmCredentials =
            serde_json::from_value(json!({"service_account": sa, "api_base": "http://x"})).unwrap();
        assert_eq!(nested.service_account, flat.service_account);
        assert_eq!(nested.api_base.as_deref(), Some("http://x"));
        // Round trip through the flat form.
        let back: FcmCredentials =
            serde_json::from_value(serde_json::to_value(&nested).unwrap()).unwrap();
        assert_eq!(back, nested);
        assert!(
            serde_json::from_value::<FcmCredentials>(json!({"type": "authorized_user"})).is_err()
        );
    }
}
