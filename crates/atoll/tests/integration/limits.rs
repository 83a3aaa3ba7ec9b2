//! Body limits, decompression bombs, encodings, rate limits, login throttling.

use crate::support::TestServer;
use atoll_protocol::device::RegisterRequest;
use atoll_protocol::ErrorCode;
use atoll_sdk::{Compression, RequestOptions};
use std::io::Write;

#[tokio::test]
async fn oversized_bodies_and_bombs_get_413_and_unknown_encodings_415() {
    let server = TestServer::start().await;
    let (device, _dir) = server.device();
    let none = RequestOptions {
        compression: Compression::None,
        retry: false,
        ..RequestOptions::default()
    };

    let big = format!("{{\"model\":\"{}\"}}", "x".repeat(1024 * 1024));
    let error = device
        .send_raw("POST", "/device/v1/register", "", big.as_bytes(), &none)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::PayloadTooLarge));
    assert_eq!(error.status(), Some(413));

    // 64 MiB of zeros gzip to ~64 KiB: within the wire limit, far over the inflated one.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![b' '; 64 * 1024 * 1024]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024);
    let raw =
        crate::support::signed_raw(&server, &device, "/device/v1/register", &bomb, "gzip").await;
    assert_eq!(raw.status(), 413);

    let raw =
        crate::support::signed_raw(&server, &device, "/device/v1/register", b"{}", "br").await;
    assert_eq!(raw.status(), 415);

    // Compressed bodies work end to end.
    for compression in [Compression::Gzip, Compression::Zstd] {
        let options = RequestOptions {
            compression,
            ..RequestOptions::default()
        };
        device
            .post::<_, serde_json::Value>(
                "/device/v1/register",
                &RegisterRequest::default(),
                &options,
            )
            .await
            .unwrap();
    }
    // The server is still healthy after all that.
    assert_eq!(
        reqwest::get(format!("{}/healthz", server.url))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Sends pre-encoded bytes with a matching signature and a chosen encoding header.

#[tokio::test]
async fn an_app_over_its_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with_env(&[
        ("ATOLL_DEVICE_RATE_PER_APP_PER_SEC", "2"),
        ("ATOLL_DEVICE_RATE_BURST_PER_APP", "5"),
    ])
    .await;
    let (device, _dir) = server.device();
    let mut limited = None;
    for _ in 0..20 {
        match device.register(&RegisterRequest::default()).await {
            Ok(_) => {}
            Err(error) => {
                limited = Some(error);
                break;
            }
        }
    }
    let error = limited.expect("20 requests at a 5-request burst must hit the limit");
    assert_eq!(error.code(), Some(ErrorCode::RateLimited));
    match error {
        atoll_sdk::Error::Api {
            status: 429,
            retry_after_secs: Some(secs),
            ..
        } => assert!((1..=5).contains(&secs)),
        other => panic!("expected 429 with Retry-After, got {other:?}"),
    }
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let server = TestServer::start().await;
    let client = atoll_sdk::AdminClient::new(&server.url, None).unwrap();
    let attempt = serde_json::json!({"email": "admin@demo.atoll", "password": "not-the-password"});
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (status, body) = client
            .raw("POST", "/api/v1/auth/login", Some(&attempt))
            .await
            .unwrap();
        codes.push((status, body["code"].as_str().unwrap_or_default().to_owned()));
    }
    assert_eq!(codes[0], (401, "invalid_credentials".to_owned()));
    assert_eq!(codes[5], (429, "login_throttled".to_owned()), "{codes:?}");
    // The right password is also refused while throttled.
    let mut admin = atoll_sdk::AdminClient::new(&server.url, None).unwrap();
    let error = admin
        .login("admin@demo.atoll", &server.demo.password)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::LoginThrottled));
}

#[tokio::test]
async fn a_client_dribbling_its_request_head_is_cut_off() {
    use std::io::Read;
    let server = TestServer::start_with_env(&[("ATOLL_HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    // The server gives up on the unfinished head and closes the connection.
    let _ = slow.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(5),
        "held for {waited:?}"
    );
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"));
    // Others are served meanwhile and afterwards.
    assert_eq!(
        reqwest::get(format!("{}/healthz", server.url))
            .await
            .unwrap()
            .status(),
        200
    );
}
