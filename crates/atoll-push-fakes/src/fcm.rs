//! A fake FCM HTTP v1 with a Google-style OAuth2 token endpoint.
//!
//! `POST /token` takes the service-account JWT-bearer grant and verifies the
//! RS256 assertion; `POST /v1/projects/{project}/messages:send` checks the
//! bearer token and the message and answers with FCM's error model
//! (`error.status` plus a `google.firebase.fcm.v1.FcmError` detail).

use crate::jwt::Jwt;
use crate::server::{self, json, json_with, Req, Resp};
use crate::{Controls, Core, Fault, Received};
use parking_lot::Mutex;
use ring::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The service account's key: generating RSA keys is slow (and ring cannot),
/// so the fakes ship two fixed test keys. Never use them for anything real.
const TEST_KEY: &str = include_str!("test_key_a.pem");
/// A second key the fake does not know: assertions signed with it fail.
const OTHER_KEY: &str = include_str!("test_key_b.pem");
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const MAX_PAYLOAD: usize = 4096;

const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];
const ANDROID_FIELDS: &[&str] = &[
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
];
const ANDROID_NOTIFICATION_FIELDS: &[&str] = &[
    "title",
    "body",
    "icon",
    "color",
    "sound",
    "tag",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "channel_id",
    "ticker",
    "sticky",
    "event_time",
    "local_only",
    "notification_priority",
    "default_sound",
    "default_vibrate_timings",
    "default_light_settings",
    "vibrate_timings",
    "visibility",
    "notification_count",
    "light_settings",
    "image",
    "bypass_proxy_notification",
    "proxy",
];

struct FcmState {
    core: Arc<Core>,
    project_id: String,
    client_email: String,
    private_key_id: String,
    public_key: Vec<u8>,
    base: String,
    /// Issued access tokens and their expiry (fake clock, ms).
    issued: Mutex<HashMap<String, i64>>,
    token_lifetime_secs: AtomicI64,
}

/// A fake FCM (plain HTTP). Dropping it stops accepting.
pub struct FakeFcm {
    controls: Controls,
    state: Arc<FcmState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::ops::Deref for FakeFcm {
    type Target = Controls;
    fn deref(&self) -> &Controls {
        &self.controls
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeFcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFcm").field("addr", &self.addr).finish()
    }
}

fn public_key_of(pem: &str) -> std::io::Result<Vec<u8>> {
    let der = atoll_push_vendors::jwt::pem_to_der(pem, "PRIVATE KEY")
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(pair.public_key().as_ref().to_vec())
}

impl FakeFcm {
    /// Starts on a free port of 127.0.0.1. Panics if it cannot (tests).
    pub async fn start() -> FakeFcm {
        Self::start_on(0).await.expect("start the fake FCM")
    }

    /// Starts on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> std::io::Result<FakeFcm> {
        let (listener, addr) = server::bind(port).await?;
        let controls = Controls::default();
        let project_id = "atoll-fake-project".to_string();
        let state = Arc::new(FcmState {
            core: controls.core.clone(),
            client_email: format!("atoll-push@{project_id}.iam.gserviceaccount.com"),
            project_id,
            private_key_id: server::random_id(),
            public_key: public_key_of(TEST_KEY)?,
            base: format!("http://127.0.0.1:{}", addr.port()),
            issued: Mutex::new(HashMap::new()),
            token_lifetime_secs: AtomicI64::new(3599),
        });
        let handler_state = state.clone();
        let task = server::serve_plain(
            listener,
            server::handler(move |req| {
                let state = handler_state.clone();
                async move { handle(&state, req).await }
            }),
        );
        Ok(FakeFcm {
            controls,
            state,
            addr,
            task,
        })
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        self.state.base.clone()
    }

    /// The project the fake serves.
    pub fn project_id(&self) -> String {
        self.state.project_id.clone()
    }

    /// `FcmCredentials` JSON: a service-account file as Google hands it out,
    /// `token_uri` and `api_base` pointing at the fake.
    pub fn credentials(&self) -> Value {
        self.credentials_with_key(TEST_KEY)
    }

    /// Like [`FakeFcm::credentials`] but with a key the fake does not know:
    /// the token endpoint answers `invalid_grant`.
    pub fn credentials_with_unknown_key(&self) -> Value {
        self.credentials_with_key(OTHER_KEY)
    }

    fn credentials_with_key(&self, key: &str) -> Value {
        let s = &self.state;
        json!({
            "type": "service_account",
            "project_id": s.project_id,
            "private_key_id": s.private_key_id,
            "private_key": key,
            "client_email": s.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", s.base),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
            "api_base": s.base,
        })
    }

    /// `expires_in` of the access tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state
            .token_lifetime_secs
            .store(secs, Ordering::Relaxed);
    }

    /// Invalidates every access token issued so far (sends get 401).
    pub fn expire_access_tokens(&self) {
        self.state.issued.lock().clear();
    }
}

async fn handle(state: &FcmState, req: Req) -> Resp {
    if req.method != hyper::Method::POST {
        return error(
            state,
            405,
            "INVALID_ARGUMENT",
            None,
            "Method not allowed",
            None,
        );
    }
    if req.path == "/token" {
        return token(state, &req);
    }
    let Some(project) = req
        .path
        .strip_prefix("/v1/projects/")
        .and_then(|p| p.strip_suffix("/messages:send"))
    else {
        return error(state, 404, "NOT_FOUND", None, "Not found", None);
    };
    state.core.begin_send().await;
    send(state, project, &req)
}

fn token_error(state: &FcmState, error: &str, description: &str) -> Resp {
    state.core.token_request(false);
    json(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

fn token(state: &FcmState, req: &Req) -> Resp {
    let form = req.form();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return token_error(state, "unsupported_grant_type", "Invalid grant_type");
    }
    let Some(jwt) = form.get("assertion").and_then(|a| Jwt::parse(a)) else {
        return token_error(state, "invalid_grant", "Invalid JWT: malformed");
    };
    if jwt.header_str("alg") != Some("RS256")
        || jwt
            .header_str("kid")
            .is_some_and(|k| k != state.private_key_id)
        || !jwt.verify(&RSA_PKCS1_2048_8192_SHA256, &state.public_key)
    {
        return token_error(state, "invalid_grant", "Invalid JWT Signature.");
    }
    if jwt.claim_str("iss") != Some(state.client_email.as_str()) {
        return token_error(state, "invalid_grant", "Invalid grant: account not found");
    }
    if jwt.claim_str("aud") != Some(format!("{}/token", state.base).as_str()) {
        return token_error(
            state,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        );
    }
    if !jwt
        .claim_str("scope")
        .is_some_and(|s| s.split(' ').any(|s| s == SCOPE))
    {
        return token_error(state, "invalid_scope", "Missing scope firebase.messaging");
    }
    let now = state.core.now_ms().div_euclid(1000);
    let (Some(iat), Some(exp)) = (jwt.claim_i64("iat"), jwt.claim_i64("exp")) else {
        return token_error(state, "invalid_grant", "Invalid JWT: missing iat/exp");
    };
    if exp - iat > 3600 || exp <= now || iat > now + 60 {
        return token_error(
            state,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    state.core.token_request(true);
    let lifetime = state.token_lifetime_secs.load(Ordering::Relaxed);
    let access = format!("ya29.fake-{}", server::random_id());
    state
        .issued
        .lock()
        .insert(access.clone(), state.core.now_ms() + lifetime * 1000);
    json(
        200,
        &json!({"access_token": access, "expires_in": lifetime, "token_type": "Bearer"}),
    )
}

/// FCM's error body; `fcm_code` becomes the FcmError detail.
fn error(
    state: &FcmState,
    status: u16,
    rpc_status: &str,
    fcm_code: Option<&str>,
    message: &str,
    bad_field: Option<&str>,
) -> Resp {
    state.core.reject(fcm_code.unwrap_or(rpc_status));
    let mut details = Vec::new();
    if let Some(code) = fcm_code {
        details.push(json!({
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }));
    }
    if let Some(field) = bad_field {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": message}],
        }));
    }
    json(
        status,
        &json!({"error": {"code": status, "message": message, "status": rpc_status, "details": details}}),
    )
}

fn invalid(state: &FcmState, message: &str) -> Resp {
    error(
        state,
        400,
        "INVALID_ARGUMENT",
        Some("INVALID_ARGUMENT"),
        message,
        None,
    )
}

fn unknown_field(fields: &Map<String, Value>, known: &[&str]) -> Option<String> {
    fields
        .keys()
        .find(|k| !known.contains(&k.as_str()))
        .cloned()
}

fn valid_duration(s: &str) -> bool {
    let Some(num) = s.strip_suffix('s') else {
        return false;
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Validates a message; `Err` is the `INVALID_ARGUMENT` message.
fn validate(message: &Map<String, Value>) -> Result<(), String> {
    if let Some(f) = unknown_field(message, MESSAGE_FIELDS) {
        return Err(format!(
            "Invalid JSON payload received. Unknown name \"{f}\" at 'message': Cannot find field."
        ));
    }
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|t| message.contains_key(**t))
        .count();
    if targets != 1 {
        return Err("Exactly one of token, topic or condition must be set".into());
    }
    if let Some(data) = message.get("data") {
        let Some(data) = data.as_object() else {
            return Err("message.data must be a map of strings".into());
        };
        for (k, v) in data {
            if !v.is_string() {
                return Err(format!(
                    "Invalid value at 'message.data[{k}].value' (TYPE_STRING)"
                ));
            }
            if matches!(k.as_str(), "from" | "notification" | "message_type")
                || k.starts_with("google")
                || k.starts_with("gcm")
            {
                return Err(format!("Invalid data payload key: {k}"));
            }
        }
    }
    if let Some(n) = message.get("notification") {
        let Some(n) = n.as_object() else {
            return Err("message.notification must be an object".into());
        };
        if let Some(f) = unknown_field(n, &["title", "body", "image"]) {
            return Err(format!("Unknown name \"{f}\" at 'message.notification'"));
        }
        if n.values().any(|v| !v.is_string()) {
            return Err("message.notification fields must be strings".into());
        }
    }
    if let Some(android) = message.get("android") {
        let Some(android) = android.as_object() else {
            return Err("message.android must be an object".into());
        };
        if let Some(f) = unknown_field(android, ANDROID_FIELDS) {
            return Err(format!("Unknown name \"{f}\" at 'message.android'"));
        }
        if let Some(p) = android.get("priority") {
            if !matches!(p.as_str(), Some("NORMAL" | "HIGH")) {
                return Err(format!("Invalid value at 'message.android.priority': {p}"));
            }
        }
        if let Some(ttl) = android.get("ttl") {
            if !ttl.as_str().is_some_and(valid_duration) {
                return Err(format!("Invalid value at 'message.android.ttl': {ttl}"));
            }
        }
        if let Some(c) = android.get("collapse_key") {
            if !c.is_string() {
                return Err("message.android.collapse_key must be a string".into());
            }
        }
        if let Some(n) = android.get("notification") {
            let Some(n) = n.as_object() else {
                return Err("message.android.notification must be an object".into());
            };
            if let Some(f) = unknown_field(n, ANDROID_NOTIFICATION_FIELDS) {
                return Err(format!(
                    "Unknown name \"{f}\" at 'message.android.notification'"
                ));
            }
        }
    }
    Ok(())
}

fn send(state: &FcmState, project: &str, req: &Req) -> Resp {
    let authorized = req
        .bearer()
        .and_then(|t| state.issued.lock().get(t).copied());
    match authorized {
        Some(expiry) if expiry > state.core.now_ms() => {}
        _ => {
            return error(
                state,
                401,
                "UNAUTHENTICATED",
                None,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                None,
            )
        }
    }
    if project != state.project_id {
        return error(
            state,
            403,
            "PERMISSION_DENIED",
            None,
            "Permission 'cloudmessaging.messages.create' denied on resource",
            None,
        );
    }
    match state.core.take_fault() {
        Some(Fault::Throttle(secs)) => {
            state.core.reject("QUOTA_EXCEEDED");
            return json_with(
                429,
                &json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for quota metric 'Send requests'",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                 "errorCode": "QUOTA_EXCEEDED"}]}}),
                &[("retry-after", secs.to_string())],
            );
        }
        Some(Fault::Unavailable) => {
            return error(
                state,
                503,
                "UNAVAILABLE",
                Some("UNAVAILABLE"),
                "The service is currently unavailable.",
                None,
            )
        }
        None => {}
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return invalid(state, "Invalid JSON payload received."),
    };
    let Some(message) = body.get("message").and_then(Value::as_object) else {
        return invalid(state, "Invalid JSON payload received. message is required");
    };
    if let Some(f) = body
        .as_object()
        .and_then(|b| unknown_field(b, &["message", "validate_only"]))
    {
        return invalid(state, &format!("Unknown name \"{f}\": Cannot find field."));
    }
    if let Err(m) = validate(message) {
        return invalid(state, &m);
    }
    let mut measured = message.clone();
    measured.remove("token");
    if Value::Object(measured).to_string().len() > MAX_PAYLOAD {
        return invalid(state, "Message is too big");
    }
    let token = message
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return error(
            state,
            400,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            "The registration token is not a valid FCM registration token",
            Some("message.token"),
        );
    }
    if state.core.is_dead(token) {
        return error(
            state,
            404,
            "NOT_FOUND",
            Some("UNREGISTERED"),
            "Requested entity was not found.",
            None,
        );
    }
    let notification = message.get("notification");
    let android_notification = message.get("android").and_then(|a| a.get("notification"));
    let text = |key: &str| {
        notification
            .and_then(|n| n.get(key))
            .or_else(|| android_notification.and_then(|n| n.get(key)))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = format!(
        "projects/{}/messages/0:{}",
        state.project_id,
        server::random_id()
    );
    state.core.accept(Received {
        token: token.to_string(),
        msg_id: message
            .get("data")
            .and_then(|d| d.get("atoll_msg_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        collapse_key: message
            .get("android")
            .and_then(|a| a.get("collapse_key"))
            .and_then(Value::as_str)
            .map(str::to_string),
        title: text("title"),
        body: text("body"),
        silent: notification.is_none() && android_notification.is_none(),
        headers: req.header_map(),
        http_version: req.version_text(),
        raw_json: body.clone(),
    });
    json(200, &json!({ "name": name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert!(valid_duration("3600s"));
        assert!(valid_duration("3.5s"));
        assert!(!valid_duration("3600"));
        assert!(!valid_duration("s"));
        assert!(!valid_duration("-1s"));
    }

    #[test]
    fn fixed_keys_load() {
        assert_ne!(
            public_key_of(TEST_KEY).unwrap(),
            public_key_of(OTHER_KEY).unwrap()
        );
    }
}
