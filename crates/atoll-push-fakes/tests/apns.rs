//! The APNs provider against the fake APNs.

mod common;

use atoll_protocol::device::PushChannel;
use atoll_push_fakes::FakeApns;
use atoll_push_vendors::{build_provider, HttpOptions, PushProvider, SendOutcome, REVOKED_BODY};
use common::{hex_token, notification, now_ms, oversized};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "com.example.atoll";

async fn setup() -> (FakeApns, Arc<dyn PushProvider>) {
    let fake = FakeApns::start().await;
    let provider = build_provider(
        PushChannel::Apns,
        &fake.credentials(TOPIC),
        &fake.http_options(),
    )
    .unwrap();
    (fake, provider)
}

#[tokio::test]
async fn sends_over_http2_with_the_documented_headers() {
    let (fake, provider) = setup().await;
    let n = notification();
    let outcome = provider.send(&n, &hex_token(1), now_ms()).await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            vendor_msg_id: Some(n.msg_id.clone())
        }
    );
    let got = fake.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.http_version, "HTTP/2.0");
    assert_eq!(r.token, hex_token(1));
    assert_eq!(r.msg_id.as_deref(), Some(n.msg_id.as_str()));
    assert_eq!(r.title.as_deref(), Some("Order shipped"));
    assert_eq!(r.body.as_deref(), Some("Your order 42 is on its way"));
    assert!(!r.silent);
    assert_eq!(r.collapse_key.as_deref(), Some("order-42"));
    assert_eq!(r.headers["apns-collapse-id"], "order-42");
    assert_eq!(r.headers["apns-topic"], TOPIC);
    assert_eq!(r.headers["apns-push-type"], "alert");
    assert_eq!(r.headers["apns-priority"], "10");
    assert_eq!(
        r.headers["apns-expiration"],
        (n.expires_at_ms / 1000).to_string()
    );
    assert_eq!(r.headers["apns-id"], n.msg_id);
    assert!(r.headers["authorization"].starts_with("bearer "));
    assert_eq!(r.raw_json["order"], "42");
    assert_eq!(r.raw_json["aps"]["alert"]["title"], "Order shipped");
}

#[tokio::test]
async fn one_provider_token_for_fifty_sends_and_a_new_one_after_fifty_minutes() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    for i in 0..50 {
        let outcome = provider
            .send(&notification(), &hex_token(i), now + i as i64)
            .await;
        assert!(
            matches!(outcome, SendOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    let tokens: HashSet<String> = fake
        .received()
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_eq!(tokens.len(), 1);

    let later = now + 51 * 60 * 1000;
    let mut n = notification();
    n.expires_at_ms = later + 3_600_000;
    let outcome = provider.send(&n, &hex_token(1), later).await;
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let tokens: HashSet<String> = fake
        .received()
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(fake.stats().rejected.is_empty(), "{:?}", fake.stats());
}

#[tokio::test]
async fn expired_provider_token_is_retried_with_a_new_one() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    assert!(matches!(
        provider.send(&notification(), &hex_token(1), now).await,
        SendOutcome::Accepted { .. }
    ));
    // Apple's clock moves past the token's hour while ours has not yet.
    fake.advance_clock(Duration::from_secs(3700));
    let outcome = provider.send(&notification(), &hex_token(1), now).await;
    assert_eq!(
        outcome,
        SendOutcome::Retry {
            after: None,
            reason: "ExpiredProviderToken".into(),
            throttled: false
        }
    );
    let later = now + 3_700_000;
    let mut n = notification();
    n.expires_at_ms = later + 3_600_000;
    assert!(matches!(
        provider.send(&n, &hex_token(1), later).await,
        SendOutcome::Accepted { .. }
    ));
    assert_eq!(fake.stats().rejected["ExpiredProviderToken"], 1);
}

#[tokio::test]
async fn dead_token_is_token_invalid() {
    let (fake, provider) = setup().await;
    fake.dead_token(&hex_token(7));
    assert_eq!(
        provider
            .send(&notification(), &hex_token(7), now_ms())
            .await,
        SendOutcome::TokenInvalid {
            reason: "Unregistered".into()
        }
    );
    // A token that is not hex never leaves the client.
    assert_eq!(
        provider
            .send(&notification(), "not-a-token", now_ms())
            .await,
        SendOutcome::TokenInvalid {
            reason: "BadDeviceToken".into()
        }
    );
    assert_eq!(fake.stats().requests, 1);
}

#[tokio::test]
async fn throttling_and_unavailability_are_retries() {
    let (fake, provider) = setup().await;
    fake.throttle(1, 7);
    assert_eq!(
        provider
            .send(&notification(), &hex_token(1), now_ms())
            .await,
        SendOutcome::Retry {
            after: Some(Duration::from_secs(7)),
            reason: "TooManyRequests".into(),
            throttled: true
        }
    );
    fake.fail_unavailable(1);
    assert_eq!(
        provider
            .send(&notification(), &hex_token(1), now_ms())
            .await,
        SendOutcome::Retry {
            after: None,
            reason: "ServiceUnavailable".into(),
            throttled: false
        }
    );
    assert!(matches!(
        provider
            .send(&notification(), &hex_token(1), now_ms())
            .await,
        SendOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn too_large_and_bad_collapse_ids_never_leave_the_client() {
    let (fake, provider) = setup().await;
    assert_eq!(
        provider.send(&oversized(), &hex_token(1), now_ms()).await,
        SendOutcome::Rejected {
            reason: "payload_too_large".into()
        }
    );
    let mut n = notification();
    n.collapse_key = Some("c".repeat(65));
    assert_eq!(
        provider.send(&n, &hex_token(1), now_ms()).await,
        SendOutcome::Rejected {
            reason: "BadCollapseId".into()
        }
    );
    let mut n = notification();
    n.expires_at_ms = now_ms() - 1;
    assert_eq!(
        provider.send(&n, &hex_token(1), now_ms()).await,
        SendOutcome::Rejected {
            reason: "expired".into()
        }
    );
    assert_eq!(fake.stats().requests, 0);
}

#[tokio::test]
async fn silent_push_is_a_background_push_at_priority_five() {
    let (fake, provider) = setup().await;
    let mut n = notification();
    n.silent = true;
    n.title.clear();
    n.body.clear();
    assert!(matches!(
        provider.send(&n, &hex_token(3), now_ms()).await,
        SendOutcome::Accepted { .. }
    ));
    let r = &fake.received()[0];
    assert!(r.silent);
    assert_eq!(r.headers["apns-push-type"], "background");
    assert_eq!(r.headers["apns-priority"], "5");
    assert_eq!(
        r.raw_json["aps"],
        serde_json::json!({"content-available": 1})
    );
    assert_eq!(r.raw_json["order"], "42");
}

#[tokio::test]
async fn revoke_replaces_by_collapse_id() {
    let (fake, provider) = setup().await;
    let n = notification();
    assert!(matches!(
        provider.send(&n, &hex_token(1), now_ms()).await,
        SendOutcome::Accepted { .. }
    ));
    assert!(matches!(
        provider.revoke(&n, &hex_token(1), now_ms()).await,
        SendOutcome::Accepted { .. }
    ));
    let got = fake.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].collapse_key.as_deref(), Some("order-42"));
    assert_eq!(got[1].body.as_deref(), Some(REVOKED_BODY));
    // The replacement does not reuse the original's apns-id.
    assert_ne!(got[1].headers.get("apns-id"), Some(&n.msg_id));

    let mut no_key = notification();
    no_key.collapse_key = None;
    assert_eq!(
        provider.revoke(&no_key, &hex_token(1), now_ms()).await,
        SendOutcome::Rejected {
            reason: "revoke_unsupported".into()
        }
    );
}

#[tokio::test]
async fn two_hundred_concurrent_sends() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    let sends = (0..200).map(|i| {
        let provider = provider.clone();
        async move { provider.send(&notification(), &hex_token(i), now).await }
    });
    let outcomes = futures::future::join_all(sends).await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, SendOutcome::Accepted { .. })));
    assert!(fake.wait_for(200, Duration::from_secs(5)).await);
    assert_eq!(fake.stats().accepted, 200);
}

#[tokio::test]
async fn a_key_the_fake_does_not_know_is_refused() {
    let (fake, _) = setup().await;
    let other = FakeApns::start().await;
    let mut creds = fake.credentials(TOPIC);
    creds["private_key_pem"] = other.credentials(TOPIC)["private_key_pem"].clone();
    let provider = build_provider(PushChannel::Apns, &creds, &fake.http_options()).unwrap();
    assert_eq!(
        provider
            .send(&notification(), &hex_token(1), now_ms())
            .await,
        SendOutcome::Rejected {
            reason: "InvalidProviderToken".into()
        }
    );
}

#[tokio::test]
async fn a_topic_not_allowed_is_refused() {
    let (fake, _) = setup().await;
    let mut creds = fake.credentials(TOPIC);
    creds["topic"] = "com.other.app".into();
    let provider = build_provider(PushChannel::Apns, &creds, &fake.http_options()).unwrap();
    assert_eq!(
        provider
            .send(&notification(), &hex_token(1), now_ms())
            .await,
        SendOutcome::Rejected {
            reason: "TopicDisallowed".into()
        }
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_network_retry() {
    let (fake, _) = setup().await;
    let provider = build_provider(
        PushChannel::Apns,
        &fake.credentials(TOPIC),
        &HttpOptions::default(),
    )
    .unwrap();
    let outcome = provider
        .send(&notification(), &hex_token(1), now_ms())
        .await;
    assert!(
        matches!(&outcome, SendOutcome::Retry { reason, throttled: false, .. } if reason.contains("certificate") || reason.contains("UnknownIssuer")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_fake_refuses_http1() {
    let (fake, _) = setup().await;
    let client = reqwest::Client::builder()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let result = client
        .post(format!("{}/3/device/{}", fake.url(), hex_token(1)))
        .body("{}")
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(fake.stats().requests, 0);
}

#[tokio::test]
async fn bad_private_key_is_a_clear_credentials_error() {
    let fake = FakeApns::start().await;
    let mut creds = fake.credentials(TOPIC);
    creds["private_key_pem"] =
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----".into();
    let err = build_provider(PushChannel::Apns, &creds, &fake.http_options()).unwrap_err();
    assert!(err.to_string().contains("RSA PRIVATE KEY"), "{err}");
}
