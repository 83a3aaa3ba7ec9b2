//! The SDK signs exactly as the golden vectors in `contracts/signing.json` say:
//! checked on the headers it actually sends, captured by a local listener.

use atoll_sdk::{Compression, DeviceClient, DeviceConfig, RequestOptions, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Accepts one connection, returns the request head, answers `{}`.
async fn capture_one(listener: tokio::net::TcpListener) -> String {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "connection closed early");
        received.extend_from_slice(&buffer[..read]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await
        .unwrap();
    String::from_utf8_lossy(&received).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

#[tokio::test]
async fn signatures_on_the_wire_match_the_golden_vectors() {
    let text = include_str!("../../../contracts/signing.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    for vector in doc["vectors"].as_array().unwrap() {
        let field = |name: &str| vector[name].as_str().unwrap().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let capture = tokio::spawn(capture_one(listener));

        // The SDK keeps its device id in its folder; plant the vector's.
        let storage = tempfile::tempdir().unwrap();
        std::fs::write(storage.path().join("atoll-device-id"), field("device_id")).unwrap();
        let mut config =
            DeviceConfig::new(&url, &field("app_key"), &field("secret"), storage.path());
        config.retry = RetryPolicy::none();
        let client = DeviceClient::new(config).unwrap();
        assert_eq!(client.device_id(), field("device_id"));
        let options = RequestOptions {
            compression: Compression::None,
            timestamp: Some(vector["timestamp"].as_i64().unwrap()),
            nonce: Some(field("nonce")),
            secret: None,
            retry: false,
            headers: Vec::new(),
        };
        client
            .send_raw(
                &field("method").to_uppercase(),
                &field("path"),
                &field("query"),
                field("body").as_bytes(),
                &options,
            )
            .await
            .unwrap();
        let head = capture.await.unwrap();
        assert_eq!(
            header(&head, "x-atoll-signature"),
            Some(field("signature").as_str()),
            "{}",
            field("name")
        );
        assert_eq!(
            header(&head, "x-atoll-app-key"),
            Some(field("app_key").as_str())
        );
        assert_eq!(
            header(&head, "x-atoll-nonce"),
            Some(field("nonce").as_str())
        );
    }
}
