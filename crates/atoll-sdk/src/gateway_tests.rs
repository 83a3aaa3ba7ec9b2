//! Gateway calls against a small HTTP/1.1 server written here that plays the
//! gateway: it checks the device signature over the signed path with
//! `atoll_protocol::signing`, opens envelopes with a key ring and a context it
//! builds itself, and seals its answers. A wrong signed path, context or
//! timestamp in the SDK makes these tests fail.

use super::*;
use crate::{DeviceConfig, RetryPolicy};
use atoll_envelope::{ServerKeyPair, ServerKeyRing};
use atoll_protocol::signing::{self, SignedParts};
use atoll_protocol::{ErrorCode, Problem};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const APP_KEY: &str = "ak_gateway_test";
const APP_SECRET: &str = "sk_gateway_test";

/// A request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

struct Answer {
    status: &'static str,
    content_type: &'static str,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn problem(status: &'static str, code: ErrorCode) -> Answer {
    Answer {
        status,
        content_type: "application/problem+json",
        extra: Vec::new(),
        body: serde_json::to_vec(&Problem::new(code, "from the test gateway")).unwrap(),
    }
}

/// The test gateway's state.
struct Gateway {
    ring: ServerKeyRing,
    keys: Vec<GatewayKey>,
    /// Requests seen, signature checked or not.
    seen: Vec<Seen>,
    /// Operation type → answers to give first (then the normal answer).
    scripted: HashMap<String, Vec<Answer>>,
}

fn listing(pair: &ServerKeyPair) -> GatewayKey {
    GatewayKey {
        key_id: pair.key_id().to_string(),
        suite: pair.suite().name().to_owned(),
        public_key: base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_bytes()),
        created_at: 1_700_000_000,
        expires_at: None,
    }
}

impl Gateway {
    fn new() -> Gateway {
        let mut ring = ServerKeyRing::default();
        let mut keys = Vec::new();
        for suite in Suite::ALL {
            let pair = ServerKeyPair::generate(suite);
            keys.push(listing(&pair));
            ring.rotate(pair, 0);
        }
        Gateway {
            ring,
            keys,
            seen: Vec::new(),
            scripted: HashMap::new(),
        }
    }

    fn signature_ok(request: &Seen, signed_path: &str) -> bool {
        let timestamp = request.header("x-atoll-timestamp").parse().unwrap_or(-1);
        let parts = SignedParts {
            app_key: request.header("x-atoll-app-key"),
            device_id: request.header("x-atoll-device-id"),
            method: &request.method,
            path: signed_path,
            query: "",
            timestamp,
            nonce: request.header("x-atoll-nonce"),
            body: &request.body,
        };
        signing::verify(APP_SECRET, &parts, request.header("x-atoll-signature"))
    }

    fn answer(&mut self, request: Seen) -> Answer {
        self.seen.push(request.clone());
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", KEYS_PATH) => {
                if !Self::signature_ok(&request, KEYS_PATH) {
                    return problem("401 Unauthorized", ErrorCode::InvalidSignature);
                }
                Answer {
                    status: "200 OK",
                    content_type: "application/json",
                    extra: Vec::new(),
                    body: serde_json::to_vec(&self.keys).unwrap(),
                }
            }
            ("POST", CALL_PATH) => self.call(request),
            _ => problem("404 Not Found", ErrorCode::NotFound),
        }
    }

    fn call(&mut self, request: Seen) -> Answer {
        let operation = request.header(HEADER_OPERATION_TYPE).to_owned();
        // Signed over /gw/v1/<operation type>, never over the path it was sent to.
        if !Self::signature_ok(&request, &format!("/gw/v1/{operation}")) {
            return problem("401 Unauthorized", ErrorCode::InvalidSignature);
        }
        if let Some(answers) = self.scripted.get_mut(&operation) {
            if !answers.is_empty() {
                return answers.remove(0);
            }
        }
        let encrypted = request.header("content-type") == ENVELOPE_CONTENT_TYPE;
        let (plaintext, response_key) = if encrypted {
            // The context as the gateway builds it, independently of the SDK.
            let timestamp = request.header("x-atoll-timestamp");
            let mut context = Vec::new();
            for part in [APP_KEY, &operation, timestamp] {
                context.extend_from_slice(&(part.len() as u32).to_be_bytes());
                context.extend_from_slice(part.as_bytes());
            }
            match self.ring.open(&request.body, &context, 1_700_000_000) {
                Ok((plaintext, key)) => (plaintext, Some(key)),
                Err(_) => return problem("400 Bad Request", ErrorCode::EnvelopeDecryptFailed),
            }
        } else if request.header("content-encoding") == "gzip" {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&request.body[..])
                .read_to_end(&mut plain)
                .unwrap();
            (plain, None)
        } else {
            (request.body.clone(), None)
        };
        let received: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
        let answer = serde_json::json!({ "operation": operation, "received": received });
        let answer = serde_json::to_vec(&answer).unwrap();
        let extra = vec![
            (HEADER_RESULT_STATUS, "1000".to_owned()),
            (HEADER_CACHE, "miss".to_owned()),
        ];
        if operation == "com.test.plaintext.reply" {
            // A gateway (or a man in the middle) answering an encrypted call in clear.
            return Answer {
                status: "200 OK",
                content_type: "application/json",
                extra,
                body: answer,
            };
        }
        match response_key {
            Some(key) => Answer {
                status: "200 OK",
                content_type: ENVELOPE_CONTENT_TYPE,
                extra,
                body: key.seal_response(&answer).unwrap(),
            },
            None => Answer {
                status: "200 OK",
                content_type: "application/json",
                extra,
                body: answer,
            },
        }
    }
}

struct Server {
    url: String,
    state: Arc<Mutex<Gateway>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Gateway::new()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve_one(socket, shared).await;
                });
            }
        });
        Server { url, state }
    }

    fn client(&self, storage: &std::path::Path) -> DeviceClient {
        let mut config = DeviceConfig::new(&self.url, APP_KEY, APP_SECRET, storage);
        config.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        DeviceClient::new(config).unwrap()
    }

    fn script(&self, operation: &str, answers: Vec<Answer>) {
        self.state
            .lock()
            .unwrap()
            .scripted
            .insert(operation.to_owned(), answers);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn calls_of(&self, operation: &str) -> usize {
        self.seen()
            .iter()
            .filter(|seen| seen.header(HEADER_OPERATION_TYPE) == operation)
            .count()
    }
}

/// Reads one request, answers it, closes the connection.
async fn serve_one(mut socket: TcpStream, state: Arc<Mutex<Gateway>>) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() - head_end < length {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..].to_vec();
    let answer = state.lock().unwrap().answer(Seen {
        method,
        path,
        headers,
        body,
    });
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    for (name, value) in &answer.extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&answer.body).await?;
    socket.flush().await?;
    socket.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_plain_call_is_signed_over_the_operation_path_and_sent_to_gw_v1() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let body = serde_json::json!({ "sku": "A-1", "qty": 2 });
    let response = client.call("com.shop.order.create", &body).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.is_success());
    assert_eq!(response.result_status, Some(1000));
    assert_eq!(response.cache.as_deref(), Some("miss"));
    let echoed: serde_json::Value = response.json().unwrap();
    assert_eq!(echoed["operation"], "com.shop.order.create");
    assert_eq!(echoed["received"], body);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/gw/v1")
    );
    assert_eq!(seen[0].header("content-type"), "application/json");
    assert_eq!(seen[0].header("x-atoll-device-id"), client.device_id());
}

#[tokio::test]
async fn a_large_plain_call_is_gzipped_and_still_verifies() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let body = serde_json::json!({ "note": "x".repeat(4000) });
    let response = client.call("com.shop.note.save", &body).await.unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().unwrap()["received"],
        body
    );
    assert_eq!(server.seen()[0].header("content-encoding"), "gzip");
}

#[tokio::test]
async fn an_encrypted_call_round_trips_with_every_suite() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let keys = client.gateway_keys().await.unwrap();
    assert_eq!(keys.len(), Suite::ALL.len());
    for suite in Suite::ALL {
        let listed = current_key(&keys, suite).unwrap();
        let key = server_public_key(listed).unwrap();
        assert_eq!(key.suite(), suite);
        let body = serde_json::json!({ "card": "4111 1111 1111 1111", "suite": suite.name() });
        // A big body is not compressed: envelopes are sent as they are.
        let body_big = serde_json::json!({ "pad": "y".repeat(3000), "suite": suite.name() });
        for body in [body, body_big] {
            let response = client
                .call_encrypted("com.shop.pay.submit", &body, &key)
                .await
                .unwrap();
            assert_eq!(response.status, 200, "{suite}");
            assert_eq!(response.result_status, Some(1000));
            assert_eq!(
                response.json::<serde_json::Value>().unwrap()["received"],
                body
            );
            let seen = server.seen().pop().unwrap();
            assert_eq!(seen.header("content-type"), ENVELOPE_CONTENT_TYPE);
            assert_eq!(seen.header("content-encoding"), "");
            assert!(!String::from_utf8_lossy(&seen.body).contains("pay.submit"));
        }
    }
}

#[tokio::test]
async fn a_fixed_timestamp_is_the_one_in_the_envelope_context() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let keys = client.gateway_keys().await.unwrap();
    let key = server_public_key(current_key(&keys, Suite::X25519Aes256Gcm).unwrap()).unwrap();
    let options = RequestOptions {
        timestamp: Some(1_234_567_890),
        ..RequestOptions::default()
    };
    let response = client
        .call_encrypted_with(
            "com.shop.pay.submit",
            &serde_json::json!({}),
            &key,
            &options,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        server.seen().pop().unwrap().header("x-atoll-timestamp"),
        "1234567890"
    );
    // What the SDK exposes is the same encoding the test gateway built by hand.
    let mut expected = Vec::new();
    for part in [APP_KEY, "op.x.y", "42"] {
        expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
        expected.extend_from_slice(part.as_bytes());
    }
    assert_eq!(request_context(APP_KEY, "op.x.y", 42), expected);
}

#[tokio::test]
async fn problems_are_errors_and_backend_answers_pass_through() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());

    server.script(
        "com.shop.missing.api",
        vec![problem("404 Not Found", ErrorCode::UnknownOperation)],
    );
    let error = client
        .call("com.shop.missing.api", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownOperation));
    assert_eq!(error.status(), Some(404));

    server.script(
        "com.shop.order.create",
        vec![Answer {
            status: "409 Conflict",
            content_type: "application/json",
            extra: vec![(HEADER_RESULT_STATUS, "1000".to_owned())],
            body: br#"{"error":"out_of_stock"}"#.to_vec(),
        }],
    );
    let response = client
        .call("com.shop.order.create", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(response.status, 409);
    assert!(!response.is_success());
    assert_eq!(
        response.json::<serde_json::Value>().unwrap()["error"],
        "out_of_stock"
    );
    // A backend's own error is not retried.
    assert_eq!(server.calls_of("com.shop.order.create"), 1);
}

#[tokio::test]
async fn only_calls_that_reached_no_backend_are_retried() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());

    server.script(
        "com.shop.busy.call",
        vec![problem("503 Service Unavailable", ErrorCode::CircuitOpen)],
    );
    let response = client
        .call("com.shop.busy.call", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(server.calls_of("com.shop.busy.call"), 2);

    server.script(
        "com.shop.slow.call",
        vec![problem("504 Gateway Timeout", ErrorCode::BackendTimeout)],
    );
    let error = client
        .call("com.shop.slow.call", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::BackendTimeout));
    assert_eq!(server.calls_of("com.shop.slow.call"), 1);
}

#[tokio::test]
async fn a_retried_encrypted_call_is_sealed_afresh() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let keys = client.gateway_keys().await.unwrap();
    let key = server_public_key(current_key(&keys, Suite::P256Aes256Gcm).unwrap()).unwrap();
    server.script(
        "com.shop.pay.submit",
        vec![problem("429 Too Many Requests", ErrorCode::RateLimited)],
    );
    let response = client
        .call_encrypted("com.shop.pay.submit", &serde_json::json!({"n": 1}), &key)
        .await
        .unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().unwrap()["received"]["n"],
        1
    );
    let calls: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|seen| seen.path == CALL_PATH)
        .collect();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].body, calls[1].body);
}

#[tokio::test]
async fn an_encrypted_call_refuses_a_plaintext_or_foreign_answer() {
    let server = Server::start().await;
    let storage = tempfile::tempdir().unwrap();
    let client = server.client(storage.path());
    let keys = client.gateway_keys().await.unwrap();
    let key = server_public_key(current_key(&keys, Suite::Sm2Sm4Gcm).unwrap()).unwrap();
    let error = client
        .call_encrypted("com.test.plaintext.reply", &serde_json::json!({}), &key)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Decode(_)), "{error}");

    // An envelope sealed for another exchange does not open.
    let (_, other) = seal_request(&key, b"{}", b"other").unwrap();
    server.script(
        "com.shop.pay.submit",
        vec![Answer {
            status: "200 OK",
            content_type: ENVELOPE_CONTENT_TYPE,
            extra: Vec::new(),
            body: other.seal_response(b"{}").unwrap(),
        }],
    );
    let error = client
        .call_encrypted("com.shop.pay.submit", &serde_json::json!({}), &key)
        .await
        .unwrap_err();
    assert_eq!(error.report_code(), "envelope_decrypt_failed");

    // A key the server does not hold: the gateway's problem comes back as is.
    let stranger = ServerKeyPair::generate(Suite::X25519Aes256Gcm);
    let error = client
        .call_encrypted(
            "com.shop.pay.submit",
            &serde_json::json!({}),
            stranger.public_key(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::EnvelopeDecryptFailed));
}

#[test]
fn listed_keys_convert_and_are_checked() {
    let pair = ServerKeyPair::generate(Suite::P256Aes256Gcm);
    let listed = listing(&pair);
    assert_eq!(&server_public_key(&listed).unwrap(), pair.public_key());

    let mut wrong_id = listed.clone();
    wrong_id.key_id = "0000000000000000".into();
    assert!(matches!(
        server_public_key(&wrong_id),
        Err(Error::Decode(_))
    ));
    let mut wrong_suite = listed.clone();
    wrong_suite.suite = "rot13".into();
    assert_eq!(
        server_public_key(&wrong_suite).unwrap_err().report_code(),
        "envelope_unsupported_suite"
    );
    let mut not_base64 = listed.clone();
    not_base64.public_key = "%%%".into();
    assert!(matches!(
        server_public_key(&not_base64),
        Err(Error::Decode(_))
    ));

    let older = GatewayKey {
        created_at: 1,
        ..listed.clone()
    };
    let previous = GatewayKey {
        created_at: 9_999_999_999,
        expires_at: Some(9_999_999_999),
        ..listed.clone()
    };
    let keys = vec![older, previous, listed.clone()];
    assert_eq!(current_key(&keys, Suite::P256Aes256Gcm), Some(&listed));
    assert_eq!(current_key(&keys, Suite::Sm2Sm4Gcm), None);
}
