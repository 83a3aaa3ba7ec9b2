//! A fake APNs: `POST /3/device/{token}` over HTTP/2 + TLS with token-based
//! (ES256 JWT) authentication, answering with Apple's status codes and
//! `{"reason": ...}` bodies.

use crate::jwt::Jwt;
use crate::server::{self, empty_with, json, json_with, Req, Resp};
use crate::{Controls, Core, Fault, Received};
use atoll_push_vendors::HttpOptions;
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

const MAX_PAYLOAD: usize = 4096;
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "location",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
    "widgets",
];

struct ApnsState {
    core: Arc<Core>,
    team_id: String,
    key_id: String,
    private_key_pem: String,
    public_key: Vec<u8>,
    topics: Mutex<HashSet<String>>,
    /// The `iat` of the newest provider token seen, to catch clients that
    /// mint tokens too often.
    last_iat: Mutex<Option<i64>>,
}

/// A fake APNs over HTTP/2 with TLS. Dropping it stops accepting.
pub struct FakeApns {
    controls: Controls,
    state: Arc<ApnsState>,
    addr: SocketAddr,
    ca_pem: String,
    task: JoinHandle<()>,
}

impl std::ops::Deref for FakeApns {
    type Target = Controls;
    fn deref(&self) -> &Controls {
        &self.controls
    }
}

impl Drop for FakeApns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeApns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApns")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeApns {
    /// Starts on a free port of 127.0.0.1. Panics if it cannot (tests).
    pub async fn start() -> FakeApns {
        Self::start_on(0).await.expect("start the fake APNs")
    }

    /// Starts on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> std::io::Result<FakeApns> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let id = server::random_id().to_uppercase();
        let controls = Controls::default();
        let state = Arc::new(ApnsState {
            core: controls.core.clone(),
            team_id: id[..10].to_string(),
            key_id: id[10..20].to_string(),
            private_key_pem: server::pem("PRIVATE KEY", pkcs8.as_ref()),
            public_key: pair.public_key().as_ref().to_vec(),
            topics: Mutex::new(HashSet::new()),
            last_iat: Mutex::new(None),
        });
        let (ca_pem, tls) = server::test_tls()?;
        let (listener, addr) = server::bind(port).await?;
        let handler_state = state.clone();
        let task = server::serve_h2_tls(
            listener,
            tls,
            server::handler(move |req| {
                let state = handler_state.clone();
                async move { handle(&state, req).await }
            }),
        );
        Ok(FakeApns {
            controls,
            state,
            addr,
            ca_pem,
            task,
        })
    }

    /// The base URL (`https://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The CA certificate that signed the fake's TLS certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Client options trusting [`FakeApns::ca_pem`].
    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            extra_root_certs_pem: vec![self.ca_pem()],
            ..HttpOptions::default()
        }
    }

    /// `ApnsCredentials` JSON for `topic` (which becomes allowed), with the
    /// fake's `.p8` key and the endpoint pointing at the fake.
    pub fn credentials(&self, topic: &str) -> Value {
        self.state.topics.lock().insert(topic.to_string());
        json!({
            "team_id": self.state.team_id,
            "key_id": self.state.key_id,
            "private_key_pem": self.state.private_key_pem,
            "topic": topic,
            "endpoint": self.url(),
            "sandbox": false,
        })
    }
}

fn reason(state: &ApnsState, status: u16, reason: &str) -> Resp {
    state.core.reject(reason);
    let mut body = json!({ "reason": reason });
    if status == 410 {
        body["timestamp"] = json!(state.core.now_ms());
    }
    json(status, &body)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Checks the provider token; `Some` is the rejection (status, reason).
fn check_auth(state: &ApnsState, req: &Req) -> Option<(u16, &'static str)> {
    let Some(token) = req.bearer() else {
        return Some((403, "MissingProviderToken"));
    };
    let Some(jwt) = Jwt::parse(token) else {
        return Some((403, "InvalidProviderToken"));
    };
    let valid = jwt.header_str("alg") == Some("ES256")
        && jwt.header_str("kid") == Some(state.key_id.as_str())
        && jwt.claim_str("iss") == Some(state.team_id.as_str())
        && jwt.verify(&ECDSA_P256_SHA256_FIXED, &state.public_key);
    let Some(iat) = jwt.claim_i64("iat").filter(|_| valid) else {
        return Some((403, "InvalidProviderToken"));
    };
    let now = state.core.now_ms().div_euclid(1000);
    if now - iat > 3600 {
        return Some((403, "ExpiredProviderToken"));
    }
    let mut last = state.last_iat.lock();
    match *last {
        // A newer token within 20 minutes of the previous one.
        Some(prev) if iat > prev && iat - prev < 20 * 60 => {
            drop(last);
            return Some((429, "TooManyProviderTokenUpdates"));
        }
        Some(prev) if iat <= prev => {}
        _ => *last = Some(iat),
    }
    None
}

async fn handle(state: &ApnsState, req: Req) -> Resp {
    if req.method != hyper::Method::POST {
        return reason(state, 405, "MethodNotAllowed");
    }
    let Some(token) = req.path.strip_prefix("/3/device/").map(str::to_string) else {
        return reason(state, 404, "BadPath");
    };
    state.core.begin_send().await;
    for name in [
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "apns-id",
        "authorization",
    ] {
        if req.header_count(name) > 1 {
            return reason(state, 400, "DuplicateHeaders");
        }
    }
    if let Some((status, why)) = check_auth(state, &req) {
        return reason(state, status, why);
    }
    match state.core.take_fault() {
        Some(Fault::Throttle(secs)) => {
            state.core.reject("TooManyRequests");
            return json_with(
                429,
                &json!({"reason": "TooManyRequests"}),
                &[("retry-after", secs.to_string())],
            );
        }
        Some(Fault::Unavailable) => return reason(state, 503, "ServiceUnavailable"),
        None => {}
    }
    let Some(topic) = req.header("apns-topic") else {
        return reason(state, 400, "MissingTopic");
    };
    let allowed = {
        let topics = state.topics.lock();
        topics.contains(topic)
            || [".voip", ".complication", ".pushkit.fileprovider"]
                .iter()
                .any(|s| topic.strip_suffix(s).is_some_and(|t| topics.contains(t)))
    };
    if !allowed {
        return reason(state, 400, "TopicDisallowed");
    }
    let push_type = req.header("apns-push-type").unwrap_or_default().to_string();
    if !PUSH_TYPES.contains(&push_type.as_str()) {
        return reason(state, 400, "InvalidPushType");
    }
    let priority = match req.header("apns-priority") {
        None => 10,
        Some(p) => match p.parse::<u8>() {
            Ok(p @ (1 | 5 | 10)) => p,
            _ => return reason(state, 400, "BadPriority"),
        },
    };
    if push_type == "background" && priority == 10 {
        return reason(state, 400, "BadPriority");
    }
    if let Some(e) = req.header("apns-expiration") {
        if e.parse::<u64>().is_err() {
            return reason(state, 400, "BadExpirationDate");
        }
    }
    let collapse_key = req.header("apns-collapse-id").map(str::to_string);
    if collapse_key.as_ref().is_some_and(|c| c.len() > 64) {
        return reason(state, 400, "BadCollapseId");
    }
    let apns_id = match req.header("apns-id") {
        Some(id) if !is_uuid(id) => return reason(state, 400, "BadMessageId"),
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().hyphenated().to_string(),
    };
    if token.is_empty() {
        return reason(state, 400, "MissingDeviceToken");
    }
    if token.len() < 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return reason(state, 400, "BadDeviceToken");
    }
    if req.body.is_empty() {
        return reason(state, 400, "PayloadEmpty");
    }
    if req.body.len() > MAX_PAYLOAD {
        return reason(state, 413, "PayloadTooLarge");
    }
    // Apple's documentation has no reason for malformed JSON; the fake says
    // `BadPayload` so that a test sees what went wrong.
    let payload: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return reason(state, 400, "BadPayload"),
    };
    let Some(aps) = payload.get("aps").and_then(Value::as_object) else {
        return reason(state, 400, "BadPayload");
    };
    let content_available = aps.get("content-available").and_then(Value::as_i64) == Some(1);
    if push_type == "background" && (!content_available || aps.contains_key("alert")) {
        // Apple drops such pushes silently; the fake refuses them loudly.
        return reason(state, 400, "BadPayload");
    }
    if state.core.is_dead(&token) {
        return reason(state, 410, "Unregistered");
    }
    let alert = aps.get("alert");
    let (title, body) = match alert {
        Some(Value::String(s)) => (None, Some(s.clone())),
        Some(Value::Object(a)) => (
            a.get("title").and_then(Value::as_str).map(str::to_string),
            a.get("body").and_then(Value::as_str).map(str::to_string),
        ),
        _ => (None, None),
    };
    state.core.accept(Received {
        token,
        msg_id: payload
            .pointer("/atoll/msg_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        collapse_key,
        title,
        body,
        silent: push_type == "background",
        headers: req.header_map(),
        http_version: req.version_text(),
        raw_json: payload,
    });
    empty_with(200, &[("apns-id", apns_id)])
}
