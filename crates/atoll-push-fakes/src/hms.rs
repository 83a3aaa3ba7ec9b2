//! A fake HMS Push Kit: the OAuth2 client-credentials token endpoint
//! (`POST /oauth2/v3/token`) and `POST /v1/{appId}/messages:send`, answering
//! with Push Kit's `{"code", "msg", "requestId"}` bodies.

use crate::server::{self, json, json_with, Req, Resp};
use crate::{Controls, Core, Fault, Received};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

const MAX_PAYLOAD: usize = 4096;
const MAX_TOKENS: usize = 1000;

struct HmsState {
    core: Arc<Core>,
    app_id: String,
    client_secret: String,
    base: String,
    issued: Mutex<HashMap<String, i64>>,
    token_lifetime_secs: AtomicI64,
    next_request_id: AtomicU64,
}

/// A fake HMS Push Kit (plain HTTP). Dropping it stops accepting.
pub struct FakeHms {
    controls: Controls,
    state: Arc<HmsState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::ops::Deref for FakeHms {
    type Target = Controls;
    fn deref(&self) -> &Controls {
        &self.controls
    }
}

impl Drop for FakeHms {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeHms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHms").field("addr", &self.addr).finish()
    }
}

impl FakeHms {
    /// Starts on a free port of 127.0.0.1. Panics if it cannot (tests).
    pub async fn start() -> FakeHms {
        Self::start_on(0).await.expect("start the fake HMS")
    }

    /// Starts on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> std::io::Result<FakeHms> {
        let (listener, addr) = server::bind(port).await?;
        let controls = Controls::default();
        let state = Arc::new(HmsState {
            core: controls.core.clone(),
            app_id: "104567890".to_string(),
            client_secret: server::random_id(),
            base: format!("http://127.0.0.1:{}", addr.port()),
            issued: Mutex::new(HashMap::new()),
            token_lifetime_secs: AtomicI64::new(3600),
            next_request_id: AtomicU64::new(160_000_000_000_000_000),
        });
        let handler_state = state.clone();
        let task = server::serve_plain(
            listener,
            server::handler(move |req| {
                let state = handler_state.clone();
                async move { handle(&state, req).await }
            }),
        );
        Ok(FakeHms {
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

    /// `HmsCredentials` JSON pointing at the fake.
    pub fn credentials(&self) -> Value {
        json!({
            "app_id": self.state.app_id,
            "client_secret": self.state.client_secret,
            "token_url": format!("{}/oauth2/v3/token", self.state.base),
            "api_base": self.state.base,
        })
    }

    /// `expires_in` of the access tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state
            .token_lifetime_secs
            .store(secs, Ordering::Relaxed);
    }

    /// Invalidates every access token issued so far: sends get HTTP 401 with
    /// `80200003` (token expired).
    pub fn expire_access_tokens(&self) {
        let mut issued = self.state.issued.lock();
        for expiry in issued.values_mut() {
            *expiry = i64::MIN;
        }
    }
}

async fn handle(state: &HmsState, req: Req) -> Resp {
    if req.method != hyper::Method::POST {
        return json(
            405,
            &json!({"code": "80100001", "msg": "Method not allowed"}),
        );
    }
    if req.path == "/oauth2/v3/token" {
        return token(state, &req);
    }
    let Some(app_id) = req
        .path
        .strip_prefix("/v1/")
        .and_then(|p| p.strip_suffix("/messages:send"))
    else {
        return json(404, &json!({"code": "80100001", "msg": "Not found"}));
    };
    state.core.begin_send().await;
    send(state, app_id, &req)
}

fn token(state: &HmsState, req: &Req) -> Resp {
    let form = req.form();
    let refuse = |code: i64, sub: i64, description: &str| {
        state.core.token_request(false);
        json(
            400,
            &json!({"error": code, "sub_error": sub, "error_description": description}),
        )
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse(1102, 20001, "unsupported grant_type");
    }
    if form.get("client_id") != Some(&state.app_id)
        || form.get("client_secret") != Some(&state.client_secret)
    {
        return refuse(1101, 20003, "invalid client");
    }
    state.core.token_request(true);
    let lifetime = state.token_lifetime_secs.load(Ordering::Relaxed);
    let access = format!("CgB6e3x9{}==", server::random_id());
    state
        .issued
        .lock()
        .insert(access.clone(), state.core.now_ms() + lifetime * 1000);
    json(
        200,
        &json!({"access_token": access, "expires_in": lifetime, "token_type": "Bearer"}),
    )
}

fn answer(state: &HmsState, status: u16, code: &str, msg: &str) -> Resp {
    if code != "80000000" {
        state.core.reject(code);
    }
    let id = state.next_request_id.fetch_add(1, Ordering::Relaxed);
    json(
        status,
        &json!({"code": code, "msg": msg, "requestId": id.to_string()}),
    )
}

fn structure_error(state: &HmsState, what: &str) -> Resp {
    answer(state, 400, "80100003", &format!("Illegal payload, {what}"))
}

/// Validates a message; `Err` describes the structure error.
fn validate(message: &Map<String, Value>) -> Result<(), String> {
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|t| message.contains_key(**t))
        .count();
    if targets != 1 {
        return Err("exactly one of token, topic, condition is required".into());
    }
    if let Some(tokens) = message.get("token") {
        let Some(tokens) = tokens.as_array() else {
            return Err("token must be an array".into());
        };
        if tokens.is_empty() || tokens.iter().any(|t| t.as_str().is_none_or(str::is_empty)) {
            return Err("token must hold non-empty strings".into());
        }
    }
    if let Some(data) = message.get("data") {
        if !data.is_string() {
            return Err("data must be a string".into());
        }
    }
    let android = match message.get("android") {
        None => None,
        Some(Value::Object(a)) => Some(a),
        Some(_) => return Err("android must be an object".into()),
    };
    let top_notification = message.get("notification");
    let android_notification = android.and_then(|a| a.get("notification"));
    if message.get("data").is_none() && top_notification.is_none() && android_notification.is_none()
    {
        return Err("message has no payload".into());
    }
    if let Some(a) = android {
        if let Some(c) = a.get("collapse_key") {
            if !c.as_i64().is_some_and(|c| (-1..=100).contains(&c)) {
                return Err("collapse_key must be an integer from -1 to 100".into());
            }
        }
        if let Some(u) = a.get("urgency") {
            if !matches!(u.as_str(), Some("HIGH" | "NORMAL")) {
                return Err("urgency must be HIGH or NORMAL".into());
            }
        }
        if let Some(ttl) = a.get("ttl") {
            let ok = ttl.as_str().is_some_and(|t| {
                let t = t.trim_end_matches(['s', 'S']);
                let (int, frac) = t.split_once('.').unwrap_or((t, ""));
                !int.is_empty()
                    && int.bytes().all(|b| b.is_ascii_digit())
                    && frac.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err("ttl must be like \"86400s\"".into());
            }
        }
        if let Some(bi) = a.get("bi_tag") {
            if !bi.is_string() {
                return Err("bi_tag must be a string".into());
            }
        }
    }
    if let Some(n) = android_notification {
        let Some(n) = n.as_object() else {
            return Err("android.notification must be an object".into());
        };
        let has = |k: &str| {
            n.get(k)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                || top_notification
                    .and_then(|t| t.get(k))
                    .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        };
        if !has("title") || !has("body") {
            return Err("notification title and body are required".into());
        }
        let Some(click) = n.get("click_action").and_then(Value::as_object) else {
            return Err("android.notification.click_action is required".into());
        };
        match click.get("type").and_then(Value::as_i64) {
            Some(1) if click.contains_key("intent") || click.contains_key("action") => {}
            Some(1) => return Err("click_action type 1 needs intent or action".into()),
            Some(2)
                if click
                    .get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("https://")) => {}
            Some(2) => return Err("click_action type 2 needs an https url".into()),
            Some(3) => {}
            _ => return Err("click_action type must be 1, 2 or 3".into()),
        }
        match n.get("style").map(Value::as_i64) {
            None | Some(Some(0)) | Some(Some(3)) => {}
            Some(Some(1)) => {
                if !n.contains_key("big_title") || !n.contains_key("big_body") {
                    return Err("style 1 needs big_title and big_body".into());
                }
            }
            _ => return Err("style must be 0, 1 or 3".into()),
        }
        if let Some(image) = n.get("image") {
            if !image.as_str().is_some_and(|u| u.starts_with("https://")) {
                return Err("image must be an https URL".into());
            }
        }
    }
    Ok(())
}

fn send(state: &HmsState, app_id: &str, req: &Req) -> Resp {
    let expiry = req
        .bearer()
        .and_then(|t| state.issued.lock().get(t).copied());
    match expiry {
        None => return answer(state, 401, "80200001", "Oauth authentication error"),
        Some(e) if e <= state.core.now_ms() => {
            return answer(state, 401, "80200003", "Oauth Token expired.")
        }
        Some(_) => {}
    }
    if app_id != state.app_id {
        // An access token of another app.
        return answer(state, 401, "80200001", "Oauth authentication error");
    }
    match state.core.take_fault() {
        Some(Fault::Throttle(secs)) => {
            state.core.reject("http_429");
            return json_with(
                429,
                &json!({"msg": "Too Many Requests"}),
                &[("retry-after", secs.to_string())],
            );
        }
        Some(Fault::Unavailable) => {
            state.core.reject("http_503");
            return json(503, &json!({"msg": "Service Unavailable"}));
        }
        None => {}
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return structure_error(state, "body is not JSON"),
    };
    if let Some(v) = body.get("validate_only") {
        if !v.is_boolean() {
            return structure_error(state, "validate_only must be a boolean");
        }
    }
    let Some(message) = body.get("message").and_then(Value::as_object) else {
        return structure_error(state, "message is required");
    };
    if let Err(what) = validate(message) {
        return structure_error(state, &what);
    }
    let mut measured = message.clone();
    measured.remove("token");
    if Value::Object(measured).to_string().len() > MAX_PAYLOAD {
        return answer(
            state,
            400,
            "80300008",
            "The message body size exceeds the default value",
        );
    }
    let tokens: Vec<String> = message
        .get("token")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if tokens.len() > MAX_TOKENS {
        return answer(
            state,
            400,
            "80300010",
            "The number of tokens exceeds the limit",
        );
    }
    let (dead, live): (Vec<String>, Vec<String>) =
        tokens.into_iter().partition(|t| state.core.is_dead(t));
    if live.is_empty() {
        return answer(state, 400, "80300007", "All the tokens are invalid");
    }
    if body.get("validate_only") == Some(&Value::Bool(true)) {
        return answer(state, 200, "80000000", "Success");
    }
    let android_notification = message.get("android").and_then(|a| a.get("notification"));
    let top_notification = message.get("notification");
    let text = |key: &str| {
        android_notification
            .and_then(|n| n.get(key))
            .or_else(|| top_notification.and_then(|n| n.get(key)))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let data: Option<Value> = message
        .get("data")
        .and_then(Value::as_str)
        .and_then(|d| serde_json::from_str(d).ok());
    let msg_id = message
        .get("android")
        .and_then(|a| a.get("bi_tag"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            data.as_ref()
                .and_then(|d| d.get("atoll_msg_id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    for token in &live {
        state.core.accept(Received {
            token: token.clone(),
            msg_id: msg_id.clone(),
            collapse_key: android_notification
                .and_then(|n| n.get("tag"))
                .and_then(Value::as_str)
                .map(str::to_string),
            title: text("title"),
            body: text("body"),
            silent: android_notification.is_none() && top_notification.is_none(),
            headers: req.header_map(),
            http_version: req.version_text(),
            raw_json: body.clone(),
        });
    }
    if dead.is_empty() {
        answer(state, 200, "80000000", "Success")
    } else {
        let detail = json!({"success": live.len(), "failure": dead.len(), "illegal_tokens": dead});
        answer(state, 200, "80100000", &detail.to_string())
    }
}
