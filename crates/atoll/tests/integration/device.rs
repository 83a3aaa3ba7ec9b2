//! Device identity: register, bind and unbind users, push tokens, admin lookup.

use crate::support::TestServer;
use atoll_protocol::device::{Platform, PushChannel, RegisterRequest};
use atoll_protocol::ErrorCode;

fn android() -> RegisterRequest {
    RegisterRequest {
        platform: Some(Platform::Android),
        os: Some("Android".into()),
        os_version: Some("14".into()),
        model: Some("Pixel 8".into()),
        app_version: Some("1.2.0".into()),
        channel: Some("play".into()),
        locale: Some("en-GB".into()),
        region: Some("GB-LND".into()),
        network: Some("wifi".into()),
    }
}

#[tokio::test]
async fn register_bind_and_look_up_through_the_sdk() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let (phone, _phone_dir) = server.device();
    let (tablet, _tablet_dir) = server.device();

    let first = phone.register(&android()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.device_id, phone.device_id());
    let again = phone
        .register(&RegisterRequest {
            app_version: Some("1.3.0".into()),
            ..android()
        })
        .await
        .unwrap();
    assert!(!again.created, "registering again updates the device");
    assert_eq!(again.first_seen_at, first.first_seen_at);

    // Binding before registering is refused with its own code.
    let error = tablet.bind_user("alice").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownDevice));
    tablet.register(&android()).await.unwrap();

    phone.bind_user("alice").await.unwrap();
    phone
        .register_push_token(PushChannel::Fcm, "fcm-token-1")
        .await
        .unwrap();
    phone
        .register_push_token(PushChannel::Fcm, "fcm-token-2")
        .await
        .unwrap();
    phone
        .register_push_token(PushChannel::Hms, "hms-token")
        .await
        .unwrap();

    let device = admin
        .get_device("demo", &app, phone.device_id())
        .await
        .unwrap();
    assert_eq!(device.user_id.as_deref(), Some("alice"));
    assert_eq!(device.app_version.as_deref(), Some("1.3.0"));
    assert_eq!(device.model.as_deref(), Some("Pixel 8"));
    let tokens: Vec<_> = device
        .push_tokens
        .iter()
        .map(|token| (token.channel, token.token.as_str()))
        .collect();
    assert_eq!(
        tokens,
        vec![
            (PushChannel::Fcm, "fcm-token-2"),
            (PushChannel::Hms, "hms-token")
        ]
    );

    // A user may have many devices; the latest bound is the most recent.
    tablet.bind_user("alice").await.unwrap();
    let alice = admin.get_app_user("demo", &app, "alice").await.unwrap();
    assert_eq!(
        alice.most_recent_device.as_deref(),
        Some(tablet.device_id())
    );
    assert_eq!(alice.devices.len(), 2);

    tablet.unbind_user().await.unwrap();
    let alice = admin.get_app_user("demo", &app, "alice").await.unwrap();
    assert_eq!(alice.most_recent_device.as_deref(), Some(phone.device_id()));
    assert_eq!(alice.devices.len(), 1);
    let tablet_view = admin
        .get_device("demo", &app, tablet.device_id())
        .await
        .unwrap();
    assert_eq!(tablet_view.user_id, None);

    // Another user signs in on the phone: alice keeps no device.
    phone.bind_user("bob").await.unwrap();
    let alice = admin.get_app_user("demo", &app, "alice").await.unwrap();
    assert_eq!(alice.most_recent_device, None);
    assert!(alice.devices.is_empty());

    let missing = admin
        .get_device("demo", &app, "no-such-device")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn invalid_device_input_gets_clear_errors() {
    let server = TestServer::start().await;
    let (phone, _dir) = server.device();
    let too_long = RegisterRequest {
        model: Some("x".repeat(101)),
        ..android()
    };
    let error = phone.register(&too_long).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    assert!(error.to_string().contains("model"), "{error}");

    let unknown_field = serde_json::json!({"platform": "android", "colour": "blue"});
    let error = phone
        .post::<_, serde_json::Value>("/device/v1/register", &unknown_field, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidRequest));
    assert!(error.to_string().contains("colour"), "{error}");

    phone.register(&android()).await.unwrap();
    let error = phone.bind_user("has space").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
}
