//! Device request signatures: each failure has its own code.

use crate::support::{align_to_second, now_secs, TestServer};
use atoll_protocol::device::RegisterRequest;
use atoll_protocol::ErrorCode;
use atoll_sdk::RequestOptions;

async fn register_with(
    server: &TestServer,
    options: RequestOptions,
) -> Result<serde_json::Value, atoll_sdk::Error> {
    let (device, _dir) = server.device();
    device
        .post("/device/v1/register", &RegisterRequest::default(), &options)
        .await
}

#[tokio::test]
async fn signature_failures_have_distinct_codes() {
    let server = TestServer::start().await;

    let error = register_with(
        &server,
        RequestOptions {
            secret: Some("as_not-the-secret".into()),
            ..RequestOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidSignature));
    assert_eq!(error.status(), Some(401));

    // ±301 s is outside the ±300 s window; ±299 s is inside.
    for (offset, accepted) in [(301, false), (-301, false), (299, true), (-299, true)] {
        align_to_second().await;
        let outcome = register_with(
            &server,
            RequestOptions {
                timestamp: Some(now_secs() + offset),
                retry: false,
                ..RequestOptions::default()
            },
        )
        .await;
        match (accepted, outcome) {
            (true, Ok(_)) => {}
            (false, Err(error)) => assert_eq!(
                error.code(),
                Some(ErrorCode::TimestampSkew),
                "offset {offset}"
            ),
            (expected, outcome) => {
                panic!("offset {offset}: expected accepted={expected}, got {outcome:?}")
            }
        }
    }

    let (device, _dir) = server.device();
    let fixed = RequestOptions {
        nonce: Some("nonce-used-only-once-1".into()),
        timestamp: Some(now_secs()),
        retry: false,
        ..RequestOptions::default()
    };
    device
        .post::<_, serde_json::Value>("/device/v1/register", &RegisterRequest::default(), &fixed)
        .await
        .unwrap();
    let replay = device
        .post::<_, serde_json::Value>("/device/v1/register", &RegisterRequest::default(), &fixed)
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Some(ErrorCode::ReplayedNonce));

    let (stranger, _dir) = server.device_of("ak_unknown", "as_whatever");
    let error = stranger
        .register(&RegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownApp));

    let unsigned = reqwest::Client::new()
        .post(format!("{}/device/v1/register", server.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let problem: atoll_protocol::Problem = unsigned.json().await.unwrap();
    assert_eq!(problem.code, "missing_signature");
    assert!(problem.request_id.is_some());
}

#[tokio::test]
async fn a_rotated_secret_keeps_working_only_during_its_grace_period() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let old_secret = server.demo.app_secret.clone();
    let rotated = admin
        .rotate_secret("demo", &server.demo.app_key, Some(3600))
        .await
        .unwrap();
    let new_secret = rotated.sdk_config.app_secret.unwrap();
    assert_ne!(new_secret, old_secret);
    assert!(rotated.previous_secret_valid_until.is_some());
    for secret in [&old_secret, &new_secret] {
        let (device, _dir) = server.device_of(&server.demo.app_key, secret);
        device.register(&RegisterRequest::default()).await.unwrap();
    }
    admin
        .rotate_secret("demo", &server.demo.app_key, None)
        .await
        .unwrap();
    let (device, _dir) = server.device_of(&server.demo.app_key, &new_secret);
    let error = device
        .register(&RegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidSignature));
}

#[tokio::test]
async fn replays_stay_refused_across_restarts() {
    let mut server = TestServer::start().await;
    let (device, dir) = server.device();
    let (app_key, secret) = (server.demo.app_key.clone(), server.demo.app_secret.clone());
    let fixed = |nonce: &str| RequestOptions {
        nonce: Some(nonce.into()),
        timestamp: Some(now_secs()),
        retry: false,
        ..RequestOptions::default()
    };
    let graceful = fixed("nonce-before-graceful-1");
    device
        .post::<_, serde_json::Value>(
            "/device/v1/register",
            &RegisterRequest::default(),
            &graceful,
        )
        .await
        .unwrap();
    let crash = fixed("nonce-before-the-crash-1");
    device
        .post::<_, serde_json::Value>("/device/v1/register", &RegisterRequest::default(), &crash)
        .await
        .unwrap();

    // A graceful restart keeps the nonce memory.
    assert!(server.terminate().success());
    server.restart().await;
    let device = server.device_in(&app_key, &secret, dir.path());
    let error = device
        .post::<_, serde_json::Value>(
            "/device/v1/register",
            &RegisterRequest::default(),
            &graceful,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ReplayedNonce), "{error:?}");

    // After a crash the memory is gone, so requests older than the restart are fenced off.
    align_to_second().await;
    server.kill9();
    server.restart().await;
    let device = server.device_in(&app_key, &secret, dir.path());
    let error = device
        .post::<_, serde_json::Value>("/device/v1/register", &RegisterRequest::default(), &crash)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TimestampSkew), "{error:?}");
    // An honest device just signs again.
    device.register(&RegisterRequest::default()).await.unwrap();
}
