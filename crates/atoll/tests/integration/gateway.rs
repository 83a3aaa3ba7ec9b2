//! The gateway, end to end: a real backend in this process (axum on a free
//! port), the real binary in front of it, devices calling through the SDK or
//! with hand-made signed requests.

use crate::support::{align_to_second, now_secs, TestServer};
use atoll_protocol::gateway::*;
use atoll_protocol::ErrorCode;
use atoll_sdk::{AdminClient, DeviceClient};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WS: &str = "demo";

/// One request the backend received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Whether the forwarded signature verified with the group secret.
    verified: bool,
}

/// The backend: records every request and checks the gateway's signature.
#[derive(Default)]
struct Backend {
    secret: Mutex<String>,
    seen: Mutex<Vec<Seen>>,
    failing: AtomicBool,
    counter: AtomicU64,
}

impl Backend {
    fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.path == path)
            .count()
    }

    fn last(&self, path: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|seen| seen.path == path)
            .cloned()
            .unwrap_or_else(|| panic!("the backend saw no request to {path}"))
    }
}

async fn backend_handler(
    State(backend): State<Arc<Backend>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let secret = backend.secret.lock().unwrap().clone();
    let verified = atoll_sdk::backend::verify_forwarded(
        &secret,
        method.as_str(),
        &path,
        &query,
        &headers,
        &body,
        now_secs(),
    )
    .is_ok();
    backend.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.to_vec(),
        verified,
    });
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    match path.as_str() {
        slow if slow.starts_with("/api/slow") => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            axum::Json(json!({"slow": true})).into_response()
        }
        "/api/flaky" if backend.failing.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
        }
        "/api/counter" => {
            let n = backend.counter.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"n": n})).into_response()
        }
        "/api/nostore" => {
            let n = backend.counter.fetch_add(1, Ordering::SeqCst);
            ([("cache-control", "no-store")], axum::Json(json!({"n": n}))).into_response()
        }
        "/api/auth" => match header("authorization").as_str() {
            "Bearer alice" => axum::Json(json!({"principal": "user:alice"})).into_response(),
            _ => (StatusCode::UNAUTHORIZED, "who are you").into_response(),
        },
        "/api/missing" => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such order"})),
        )
            .into_response(),
        _ => axum::Json(json!({
            "method": method.as_str(),
            "path": path,
            "query": query,
            "verified": verified,
            "user": header("x-atoll-user-id"),
            "principal": header("x-atoll-principal"),
            "body": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        }))
        .into_response(),
    }
}

/// Starts the backend on a free port: its state and its address.
async fn start_backend() -> (Arc<Backend>, String) {
    let backend = Arc::new(Backend::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new()
        .fallback(backend_handler)
        .with_state(backend.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (backend, address)
}

/// A server whose SSRF guard allows the backend, plus an admin client.
async fn setup() -> (TestServer, AdminClient, Arc<Backend>, String) {
    let (backend, address) = start_backend().await;
    let server = TestServer::start_with_env(&[("ATOLL_GATEWAY_ALLOWED_BACKENDS", &address)]).await;
    let admin = server.admin().await;
    (server, admin, backend, address)
}

fn group(name: &str, address: &str) -> ApiGroupSpec {
    ApiGroupSpec {
        name: name.into(),
        base_url: format!("http://{address}/api"),
        timeout_ms: None,
        headers_add: BTreeMap::from([("x-tenant".to_owned(), "shop".to_owned())]),
        headers_remove: vec!["x-debug".into()],
        tls_verify: true,
        max_pending: None,
        breaker: BreakerSpec::default(),
    }
}

fn api(operation_type: &str, method: HttpMethod, path: &str) -> ApiSpec {
    serde_json::from_value(json!({
        "operation_type": operation_type,
        "group": "shop",
        "method": method,
        "path": path,
        "enabled": true,
    }))
    .unwrap()
}

async fn make_group(admin: &AdminClient, app: &str, spec: ApiGroupSpec, backend: &Backend) {
    let created = admin.create_gateway_group(WS, app, &spec).await.unwrap();
    *backend.secret.lock().unwrap() = created.secret;
}

async fn registered_device(server: &TestServer) -> (DeviceClient, tempfile::TempDir) {
    let (device, dir) = server.device();
    device
        .register(&atoll_protocol::device::RegisterRequest::default())
        .await
        .unwrap();
    (device, dir)
}

fn code(error: &atoll_sdk::Error) -> Option<ErrorCode> {
    error.code()
}

/// A gateway call with extra (unsigned) request headers.
async fn call_with_headers(
    device: &DeviceClient,
    operation_type: &str,
    body: &Value,
    headers: &[(&'static str, &str)],
) -> atoll_sdk::Result<atoll_sdk::GatewayResponse> {
    let options = atoll_sdk::RequestOptions {
        headers: headers
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect(),
        ..atoll_sdk::RequestOptions::default()
    };
    device.call_with(operation_type, body, &options).await
}

#[tokio::test]
async fn routes_with_templates_timeouts_identity_and_a_verifiable_signature() {
    let (server, admin, backend, address) = setup().await;
    let app = server.demo.app_key.clone();
    let mut shop = group("shop", &address);
    shop.timeout_ms = Some(900);
    make_group(&admin, &app, shop, &backend).await;
    for spec in [
        api("com.shop.order.get", HttpMethod::Get, "/orders/${id}"),
        api("com.shop.order.create", HttpMethod::Post, "/orders"),
        api("com.shop.slow.group", HttpMethod::Get, "/slow"),
        ApiSpec {
            timeout_ms: Some(150),
            ..api("com.shop.slow.api", HttpMethod::Get, "/slow/short")
        },
        ApiSpec {
            enabled: false,
            ..api("com.shop.order.delete", HttpMethod::Delete, "/orders/${id}")
        },
        api("com.shop.order.missing", HttpMethod::Get, "/missing"),
    ] {
        admin.create_gateway_api(WS, &app, &spec).await.unwrap();
    }
    let (device, _dir) = registered_device(&server).await;
    device.bind_user("u-1").await.unwrap();

    let answer = device
        .call(
            "com.shop.order.get",
            &json!({"id": "a/42", "verbose": true, "tags": ["x", "y"]}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.result_status, Some(1000));
    let body: Value = answer.json().unwrap();
    assert_eq!(body["method"], "GET");
    assert_eq!(
        body["path"], "/api/orders/a%2F42",
        "template values stay one segment"
    );
    assert_eq!(body["query"], "tags=x&tags=y&verbose=true");
    assert_eq!(
        body["verified"], true,
        "the backend verifies the gateway's signature"
    );
    assert_eq!(body["user"], "u-1");
    let seen = backend.last("/api/orders/a%2F42");
    assert_eq!(seen.query, "tags=x&tags=y&verbose=true");
    assert_eq!(seen.headers["x-tenant"], "shop");
    assert_eq!(seen.headers["x-atoll-device-id"], device.device_id());
    assert_eq!(seen.headers["x-atoll-operation-type"], "com.shop.order.get");

    // POST: the body is forwarded as JSON; a device cannot set the identity
    // headers itself, and the group's removals apply.
    let answer = call_with_headers(
        &device,
        "com.shop.order.create",
        &json!({"sku": "tea", "count": 2}),
        &[
            ("x-atoll-user-id", "mallory"),
            ("x-debug", "1"),
            ("accept-language", "fr"),
        ],
    )
    .await
    .unwrap();
    let body: Value = answer.json().unwrap();
    assert_eq!(body["body"], json!({"sku": "tea", "count": 2}));
    assert_eq!(body["user"], "u-1");
    let seen = backend.last("/api/orders");
    assert_eq!(seen.method, "POST");
    assert!(seen.verified);
    assert!(seen.headers.get("x-debug").is_none());
    assert_eq!(seen.headers["accept-language"], "fr");
    assert_eq!(seen.headers.get_all("x-atoll-user-id").iter().count(), 1);

    // Timeouts: the API's 150 ms wins over the group's 900 ms; without its own,
    // the API gets the group's, which the 500 ms backend meets.
    let started = Instant::now();
    let error = device
        .call("com.shop.slow.api", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::BackendTimeout));
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let answer = device
        .call("com.shop.slow.group", &json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);

    // A backend's own 4xx passes through as it is.
    let answer = device
        .call("com.shop.order.missing", &json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json::<Value>().unwrap()["error"], "no such order");

    // Disabled and unknown APIs, and a missing template field.
    let error = device
        .call("com.shop.order.delete", &json!({"id": "1"}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::ApiDisabled));
    let error = device
        .call("com.shop.nothing.here", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::UnknownOperation));
    let error = device
        .call("com.shop.order.get", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::ValidationFailed));
    assert_eq!(backend.count("/api/orders/"), 0);

    // Stats and the OpenAPI round trip.
    let stats = admin.gateway_stats(WS, &app).await.unwrap();
    let get = stats
        .iter()
        .find(|stats| stats.operation_type == "com.shop.order.get")
        .unwrap();
    assert_eq!(get.requests, 2);
    assert_eq!((get.status_2xx, get.status_4xx), (1, 1));
    assert!(get.p99_ms > 0.0);
    let document = admin.gateway_group_openapi(WS, &app, "shop").await.unwrap();
    assert!(document["paths"]["/orders/{id}"]["get"].is_object());
    let report = admin
        .import_gateway_group_openapi(WS, &app, "shop", &document)
        .await
        .unwrap();
    assert_eq!(report["updated"].as_array().unwrap().len(), 6, "{report}");

    // The console's test call goes through the same runtime, even to a disabled API.
    let result = admin
        .gateway_test_call(
            WS,
            &app,
            &TestCall {
                operation_type: "com.shop.order.delete".into(),
                body: json!({"id": "7"}),
                headers: BTreeMap::new(),
                device_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(result.status, 200, "{result:?}");
    assert!(result
        .backend_request
        .unwrap()
        .starts_with("DELETE http://"));
}

/// A signed gateway call made by hand, so each signed part can be altered.
struct RawCall<'a> {
    operation_type: &'a str,
    body: Vec<u8>,
    timestamp: i64,
    nonce: String,
    /// What is signed as the operation type (differs from the header to tamper).
    signed_operation_type: &'a str,
    /// The query that is signed.
    query: &'a str,
    /// The query that is sent (differs from `query` to tamper).
    sent_query: &'a str,
    content_type: &'a str,
}

impl<'a> RawCall<'a> {
    fn new(operation_type: &'a str, body: &[u8]) -> RawCall<'a> {
        RawCall {
            operation_type,
            body: body.to_vec(),
            timestamp: now_secs(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            signed_operation_type: operation_type,
            query: "",
            sent_query: "",
            content_type: "application/json",
        }
    }

    async fn send(
        &self,
        server: &TestServer,
        device: &DeviceClient,
        tamper: impl FnOnce(&mut Vec<u8>, &mut String),
    ) -> (u16, Value) {
        use atoll_protocol::signing::*;
        let path = signed_path(self.signed_operation_type);
        let mut signature = sign(
            &server.demo.app_secret,
            &SignedParts {
                app_key: &server.demo.app_key,
                device_id: device.device_id(),
                method: "POST",
                path: &path,
                query: self.query,
                timestamp: self.timestamp,
                nonce: &self.nonce,
                body: &self.body,
            },
        );
        let mut body = self.body.clone();
        tamper(&mut body, &mut signature);
        let url = if self.sent_query.is_empty() {
            format!("{}{CALL_PATH}", server.url)
        } else {
            format!("{}{CALL_PATH}?{}", server.url, self.sent_query)
        };
        let response = reqwest::Client::new()
            .post(url)
            .header(HEADER_APP_KEY, &server.demo.app_key)
            .header(HEADER_DEVICE_ID, device.device_id())
            .header(HEADER_TIMESTAMP, self.timestamp.to_string())
            .header(HEADER_NONCE, &self.nonce)
            .header(HEADER_SIGNATURE, signature)
            .header(HEADER_OPERATION_TYPE, self.operation_type)
            .header("content-type", self.content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn signature_window_replay_and_every_signed_part() {
    let (server, admin, backend, address) = setup().await;
    let app = server.demo.app_key.clone();
    make_group(&admin, &app, group("shop", &address), &backend).await;
    admin
        .create_gateway_api(
            WS,
            &app,
            &api("com.shop.order.create", HttpMethod::Post, "/orders"),
        )
        .await
        .unwrap();
    admin
        .create_gateway_api(
            WS,
            &app,
            &api("com.shop.order.cancel", HttpMethod::Post, "/cancel"),
        )
        .await
        .unwrap();
    let (device, _dir) = registered_device(&server).await;
    let body = br#"{"sku":"tea"}"#;

    for (offset, accepted) in [(299, true), (-299, true), (301, false), (-301, false)] {
        align_to_second().await;
        let mut call = RawCall::new("com.shop.order.create", body);
        call.timestamp = now_secs() + offset;
        let (status, problem) = call.send(&server, &device, |_, _| {}).await;
        if accepted {
            assert_eq!(status, 200, "offset {offset}: {problem}");
        } else {
            assert_eq!(problem["code"], "timestamp_skew", "offset {offset}");
        }
    }
    let forwarded = backend.count("/api/orders");
    assert_eq!(forwarded, 2);

    // The same signed request twice: the second is a replay.
    let call = RawCall::new("com.shop.order.create", body);
    assert_eq!(call.send(&server, &device, |_, _| {}).await.0, 200);
    let (_, problem) = call.send(&server, &device, |_, _| {}).await;
    assert_eq!(problem["code"], "replayed_nonce");

    // Any one-byte change of a signed part is refused before the backend.
    for byte in 0..body.len() {
        let call = RawCall::new("com.shop.order.create", body);
        let (status, problem) = call
            .send(&server, &device, |body, _| body[byte] ^= 0x01)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (401, Some("invalid_signature")),
            "byte {byte}"
        );
    }
    let mut call = RawCall::new("com.shop.order.cancel", body);
    call.signed_operation_type = "com.shop.order.create";
    let (_, problem) = call.send(&server, &device, |_, _| {}).await;
    assert_eq!(
        problem["code"], "invalid_signature",
        "the operation type is signed"
    );
    let call = RawCall::new("com.shop.order.create", body);
    let (_, problem) = call
        .send(&server, &device, |_, signature| {
            let last = signature.pop().unwrap();
            signature.push(if last == '0' { '1' } else { '0' });
        })
        .await;
    assert_eq!(problem["code"], "invalid_signature");
    let mut call = RawCall::new("com.shop.order.create", body);
    call.sent_query = "a=1";
    let (_, problem) = call.send(&server, &device, |_, _| {}).await;
    assert_eq!(
        problem["code"], "invalid_signature",
        "the query is signed too"
    );
    assert_eq!(backend.count("/api/orders"), forwarded + 1);
    assert_eq!(backend.count("/api/cancel"), 0);

    // An API that does not require a signature takes unsigned calls; one that does refuses them.
    admin
        .create_gateway_api(
            WS,
            &app,
            &ApiSpec {
                require_signature: false,
                ..api("com.shop.catalog.list", HttpMethod::Get, "/catalog")
            },
        )
        .await
        .unwrap();
    for (operation_type, expected) in [
        ("com.shop.catalog.list", 200),
        ("com.shop.order.create", 401),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}{CALL_PATH}", server.url))
            .header(
                atoll_protocol::signing::HEADER_APP_KEY,
                &server.demo.app_key,
            )
            .header(HEADER_OPERATION_TYPE, operation_type)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{operation_type}");
    }
}

#[tokio::test]
async fn encrypted_calls_round_trip_in_every_suite_and_tampering_never_reaches_the_backend() {
    let (server, admin, backend, address) = setup().await;
    let app = server.demo.app_key.clone();
    make_group(&admin, &app, group("shop", &address), &backend).await;
    admin
        .create_gateway_api(
            WS,
            &app,
            &ApiSpec {
                require_encryption: true,
                ..api("com.shop.card.save", HttpMethod::Post, "/cards")
            },
        )
        .await
        .unwrap();
    let (device, _dir) = registered_device(&server).await;
    let keys = device.gateway_keys().await.unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(admin.workspace_gateway_keys(WS).await.unwrap(), keys);

    for key in &keys {
        let public = atoll_sdk::gateway::server_public_key(key).unwrap();
        let answer = device
            .call_encrypted(
                "com.shop.card.save",
                &json!({"pan": "4111", "suite": key.suite}),
                &public,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", key.suite);
        let body: Value = answer.json().unwrap();
        assert_eq!(body["body"]["suite"], key.suite.as_str());
        let seen = backend.last("/api/cards");
        assert_eq!(
            serde_json::from_slice::<Value>(&seen.body).unwrap()["pan"],
            "4111"
        );
    }
    let forwarded = backend.count("/api/cards");

    // Plain text to an API that requires encryption.
    let error = device
        .call("com.shop.card.save", &json!({"pan": "4111"}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::EncryptionRequired));

    // The same envelope opens untouched; with one ciphertext byte flipped (and
    // correctly signed) it is refused before the backend.
    let public = atoll_sdk::gateway::server_public_key(&keys[0]).unwrap();
    let timestamp = now_secs();
    let context = atoll_envelope::encode_context(&[
        server.demo.app_key.as_bytes(),
        b"com.shop.card.save",
        timestamp.to_string().as_bytes(),
    ]);
    let (envelope, _) =
        atoll_envelope::seal_request(&public, br#"{"pan":"4111"}"#, &context).unwrap();
    for flip in [false, true] {
        let mut sent = envelope.clone();
        if flip {
            let last = sent.len() - 1;
            sent[last] ^= 0x80;
        }
        let mut call = RawCall::new("com.shop.card.save", &sent);
        call.timestamp = timestamp;
        call.content_type = ENVELOPE_CONTENT_TYPE;
        let (status, problem) = call.send(&server, &device, |_, _| {}).await;
        if flip {
            assert_eq!(
                (status, problem["code"].as_str()),
                (400, Some("envelope_decrypt_failed")),
                "{problem}"
            );
        } else {
            assert_eq!(status, 200, "{problem}");
        }
    }
    assert_eq!(backend.count("/api/cards"), forwarded + 1);

    // Rotation: the old key works during the overlap; with no overlap it is expired.
    let rotated = admin
        .rotate_workspace_gateway_keys(
            WS,
            &RotateGatewayKeys {
                suite: Some("x25519-aes256gcm".into()),
                overlap_secs: Some(3600),
            },
        )
        .await
        .unwrap();
    assert!(rotated.iter().any(|key| key.expires_at.is_some()));
    let old = atoll_sdk::gateway::server_public_key(
        keys.iter()
            .find(|key| key.suite == "x25519-aes256gcm")
            .unwrap(),
    )
    .unwrap();
    assert!(device
        .call_encrypted("com.shop.card.save", &json!({}), &old)
        .await
        .is_ok());
    admin
        .rotate_workspace_gateway_keys(
            WS,
            &RotateGatewayKeys {
                suite: Some("x25519-aes256gcm".into()),
                overlap_secs: Some(0),
            },
        )
        .await
        .unwrap();
    let current = device.gateway_keys().await.unwrap();
    let middle = rotated
        .iter()
        .find(|key| key.suite == "x25519-aes256gcm" && key.expires_at.is_none())
        .unwrap();
    assert!(current.iter().all(|key| key.key_id != middle.key_id));
    let error = device
        .call_encrypted(
            "com.shop.card.save",
            &json!({}),
            &atoll_sdk::gateway::server_public_key(middle).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            code(&error),
            Some(ErrorCode::EnvelopeKeyExpired) | Some(ErrorCode::EnvelopeUnknownKey)
        ),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limits_cache_mock_and_authorizer() {
    let (server, admin, backend, address) = setup().await;
    let app = server.demo.app_key.clone();
    make_group(&admin, &app, group("shop", &address), &backend).await;
    let limited = ApiSpec {
        rate_limit: RateLimitSpec {
            qps: Some(20),
            per_device_qps: None,
        },
        ..api("com.shop.limited.call", HttpMethod::Get, "/limited")
    };
    let cached = ApiSpec {
        cache: Some(CacheSpec {
            ttl_secs: 60,
            key: vec!["$.id".into()],
        }),
        ..api("com.shop.counter.get", HttpMethod::Get, "/counter")
    };
    let no_store = ApiSpec {
        cache: Some(CacheSpec {
            ttl_secs: 60,
            key: vec![],
        }),
        ..api("com.shop.counter.fresh", HttpMethod::Get, "/nostore")
    };
    let fixed_mock = ApiSpec {
        mock: Some(MockSpec {
            enabled: true,
            status: 200,
            body: Some(json!({"mocked": true})),
            delay_ms: 0,
        }),
        ..api("com.shop.mock.fixed", HttpMethod::Get, "/never")
    };
    let schema_mock = ApiSpec {
        response_schema: Some(
            json!({"type": "object", "required": ["id", "items"], "properties": {
                "id": {"type": "string", "format": "uuid"},
                "items": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}}
            }}),
        ),
        mock: Some(MockSpec {
            enabled: true,
            status: 200,
            body: None,
            delay_ms: 0,
        }),
        ..api("com.shop.mock.schema", HttpMethod::Get, "/never")
    };
    let authorizer = api("com.shop.auth.check", HttpMethod::Get, "/auth");
    let protected = ApiSpec {
        authorizer: Some(AuthorizerSpec {
            operation_type: "com.shop.auth.check".into(),
            headers: vec!["authorization".into()],
            cache_ttl_secs: 60,
        }),
        ..api("com.shop.profile.get", HttpMethod::Get, "/profile")
    };
    for spec in [
        limited,
        cached,
        no_store,
        fixed_mock,
        schema_mock,
        authorizer,
        protected,
    ] {
        admin.create_gateway_api(WS, &app, &spec).await.unwrap();
    }
    let (device, _dir) = registered_device(&server).await;

    // Cache: a hit does not reach the backend; another key does; no-store bypasses.
    let first = device
        .call("com.shop.counter.get", &json!({"id": 1}))
        .await
        .unwrap();
    let again = device
        .call("com.shop.counter.get", &json!({"id": 1}))
        .await
        .unwrap();
    let other = device
        .call("com.shop.counter.get", &json!({"id": 2}))
        .await
        .unwrap();
    assert_eq!(first.cache.as_deref(), Some("miss"));
    assert_eq!(again.cache.as_deref(), Some("hit"));
    assert_eq!(first.body, again.body);
    assert_eq!(other.cache.as_deref(), Some("miss"));
    assert_eq!(backend.count("/api/counter"), 2);
    for _ in 0..2 {
        let fresh = device
            .call("com.shop.counter.fresh", &json!({}))
            .await
            .unwrap();
        assert_eq!(fresh.cache.as_deref(), Some("bypass"));
    }
    assert_eq!(backend.count("/api/nostore"), 2);

    // Mocks answer without the backend.
    let fixed = device
        .call("com.shop.mock.fixed", &json!({}))
        .await
        .unwrap();
    assert_eq!(fixed.json::<Value>().unwrap(), json!({"mocked": true}));
    let generated: Value = device
        .call("com.shop.mock.schema", &json!({}))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(generated["id"].as_str().unwrap().len(), 36, "{generated}");
    assert!(generated["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| (1..=9).contains(&n.as_i64().unwrap())));
    assert_eq!(backend.count("/api/never"), 0);

    // Authorizer: asked once, its principal cached and passed on; refusals map to their code.
    for _ in 0..3 {
        let body: Value = call_with_headers(
            &device,
            "com.shop.profile.get",
            &json!({}),
            &[("authorization", "Bearer alice")],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
        assert_eq!(body["principal"], "user:alice");
    }
    assert_eq!(backend.count("/api/auth"), 1);
    let error = call_with_headers(
        &device,
        "com.shop.profile.get",
        &json!({}),
        &[("authorization", "Bearer eve")],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::AuthorizerDenied));
    assert_eq!(backend.count("/api/profile"), 3);

    // Rate limit: offered at twice the limit for 5 s, the accepted count is the
    // limit's (rate × time + burst) within 5 %.
    let period = Duration::from_secs(5);
    let mut ticker = tokio::time::interval(Duration::from_millis(25));
    let started = Instant::now();
    let (mut accepted, mut throttled) = (0u32, 0u32);
    let mut retry_after_seen = false;
    let device = Arc::new(device);
    let mut calls = tokio::task::JoinSet::new();
    while started.elapsed() < period {
        ticker.tick().await;
        let device = device.clone();
        calls.spawn(async move { device.call("com.shop.limited.call", &json!({})).await });
    }
    while let Some(outcome) = calls.join_next().await {
        match outcome.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert_eq!(code(&error), Some(ErrorCode::RateLimited));
                if let atoll_sdk::Error::Api {
                    retry_after_secs: Some(_),
                    ..
                } = error
                {
                    retry_after_seen = true;
                }
                throttled += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 20.0 * elapsed + 20.0;
    let ratio = f64::from(accepted) / expected;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "accepted {accepted}, expected {expected:.0} ({ratio:.3}), throttled {throttled}"
    );
    assert!(retry_after_seen);
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_recovers_and_the_ssrf_guard_holds() {
    let (server, admin, backend, address) = setup().await;
    let app = server.demo.app_key.clone();
    let mut shop = group("shop", &address);
    shop.breaker = BreakerSpec {
        failure_threshold: 3,
        open_secs: 1,
    };
    make_group(&admin, &app, shop, &backend).await;
    admin
        .create_gateway_api(
            WS,
            &app,
            &api("com.shop.flaky.call", HttpMethod::Get, "/flaky"),
        )
        .await
        .unwrap();
    let (device, _dir) = registered_device(&server).await;

    backend.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let error = device
            .call("com.shop.flaky.call", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(code(&error), Some(ErrorCode::BackendError));
    }
    let error = device
        .call("com.shop.flaky.call", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::CircuitOpen));
    assert!(matches!(
        error,
        atoll_sdk::Error::Api {
            retry_after_secs: Some(_),
            ..
        }
    ));
    assert_eq!(
        backend.count("/api/flaky"),
        3,
        "an open breaker does not call the backend"
    );
    backend.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        device
            .call("com.shop.flaky.call", &json!({}))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        device
            .call("com.shop.flaky.call", &json!({}))
            .await
            .unwrap()
            .status,
        200
    );

    // SSRF guard: metadata and other private addresses are refused when saved;
    // a host name that resolves to one is refused when called.
    let other_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for base in [
        "http://169.254.169.254/latest",
        &format!("http://127.0.0.1:{other_port}"),
        "http://10.1.2.3/",
        "http://[::1]:8080/",
        "file:///etc/passwd",
    ] {
        let error = admin
            .create_gateway_group(
                WS,
                &app,
                &ApiGroupSpec {
                    base_url: base.into(),
                    ..group("internal", &address)
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                code(&error),
                Some(ErrorCode::BackendNotAllowed) | Some(ErrorCode::ValidationFailed)
            ),
            "{base}: {error}"
        );
    }
    admin
        .create_gateway_group(
            WS,
            &app,
            &ApiGroupSpec {
                base_url: format!("http://localhost:{other_port}"),
                ..group("named", &address)
            },
        )
        .await
        .unwrap();
    admin
        .create_gateway_api(
            WS,
            &app,
            &ApiSpec {
                group: "named".into(),
                ..api("com.shop.named.call", HttpMethod::Get, "/x")
            },
        )
        .await
        .unwrap();
    let error = device
        .call("com.shop.named.call", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::BackendNotAllowed), "{error}");
}
