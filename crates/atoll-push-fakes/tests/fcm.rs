//! The FCM HTTP v1 provider against the fake FCM.

mod common;

use atoll_protocol::device::PushChannel;
use atoll_push_fakes::FakeFcm;
use atoll_push_vendors::{build_provider, HttpOptions, PushProvider, SendOutcome};
use common::{notification, now_ms, oversized};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (FakeFcm, Arc<dyn PushProvider>) {
    let fake = FakeFcm::start().await;
    let provider = build_provider(
        PushChannel::Fcm,
        &fake.credentials(),
        &HttpOptions::default(),
    )
    .unwrap();
    (fake, provider)
}

fn accepted(o: &SendOutcome) -> bool {
    matches!(o, SendOutcome::Accepted { .. })
}

#[tokio::test]
async fn sends_the_documented_message() {
    let (fake, provider) = setup().await;
    let n = notification();
    let outcome = provider.send(&n, "fcm-token-1", now_ms()).await;
    let SendOutcome::Accepted {
        vendor_msg_id: Some(name),
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(name.starts_with(&format!("projects/{}/messages/", fake.project_id())));
    let r = &fake.received()[0];
    assert_eq!(r.token, "fcm-token-1");
    assert_eq!(r.msg_id.as_deref(), Some(n.msg_id.as_str()));
    assert_eq!(r.title.as_deref(), Some("Order shipped"));
    assert_eq!(r.collapse_key.as_deref(), Some("order-42"));
    assert!(!r.silent);
    let m = &r.raw_json["message"];
    assert_eq!(m["data"]["order"], "42");
    assert_eq!(m["android"]["priority"], "HIGH");
    assert_eq!(m["android"]["notification"]["tag"], "order-42");
    let ttl = m["android"]["ttl"].as_str().unwrap();
    let secs: u64 = ttl.trim_end_matches('s').parse().unwrap();
    assert!((3590..=3600).contains(&secs), "{ttl}");
    assert!(r.headers["authorization"].starts_with("Bearer ya29."));
}

#[tokio::test]
async fn one_access_token_for_fifty_sends() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    for i in 0..50 {
        let o = provider
            .send(&notification(), &format!("t{i}"), now + i)
            .await;
        assert!(accepted(&o), "{o:?}");
    }
    assert_eq!(fake.stats().token_requests, 1);
}

#[tokio::test]
async fn concurrent_first_sends_share_one_token_fetch() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    let sends = (0..200).map(|i| {
        let provider = provider.clone();
        async move { provider.send(&notification(), &format!("t{i}"), now).await }
    });
    let outcomes = futures::future::join_all(sends).await;
    assert!(outcomes.iter().all(accepted));
    assert!(fake.wait_for(200, Duration::from_secs(5)).await);
    assert_eq!(fake.stats().token_requests, 1);
    assert_eq!(fake.stats().accepted, 200);
}

#[tokio::test]
async fn the_token_is_refreshed_a_minute_before_it_expires() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    assert!(accepted(&provider.send(&notification(), "t", now).await));
    // expires_in is 3599 s: at +3538 s it is still used, at +3540 s not.
    let mut n = notification();
    n.expires_at_ms = now + 10_000_000;
    assert!(accepted(&provider.send(&n, "t", now + 3_538_000).await));
    assert_eq!(fake.stats().token_requests, 1);
    fake.advance_clock(Duration::from_secs(3540));
    assert!(accepted(&provider.send(&n, "t", now + 3_540_000).await));
    assert_eq!(fake.stats().token_requests, 2);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_and_retried() {
    let (fake, provider) = setup().await;
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
    fake.expire_access_tokens();
    assert_eq!(
        provider.send(&notification(), "t", now_ms()).await,
        SendOutcome::Retry {
            after: None,
            reason: "UNAUTHENTICATED".into(),
            throttled: false
        }
    );
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
    assert_eq!(fake.stats().token_requests, 2);
}

#[tokio::test]
async fn dead_and_malformed_tokens_are_token_invalid() {
    let (fake, provider) = setup().await;
    fake.dead_token("gone");
    assert_eq!(
        provider.send(&notification(), "gone", now_ms()).await,
        SendOutcome::TokenInvalid {
            reason: "UNREGISTERED".into()
        }
    );
    assert!(matches!(
        provider.send(&notification(), "has space", now_ms()).await,
        SendOutcome::TokenInvalid { .. }
    ));
}

#[tokio::test]
async fn quota_and_unavailability_are_retries() {
    let (fake, provider) = setup().await;
    fake.throttle(1, 5);
    assert_eq!(
        provider.send(&notification(), "t", now_ms()).await,
        SendOutcome::Retry {
            after: Some(Duration::from_secs(5)),
            reason: "QUOTA_EXCEEDED".into(),
            throttled: true
        }
    );
    fake.fail_unavailable(1);
    assert_eq!(
        provider.send(&notification(), "t", now_ms()).await,
        SendOutcome::Retry {
            after: None,
            reason: "UNAVAILABLE".into(),
            throttled: false
        }
    );
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
}

#[tokio::test]
async fn too_large_never_leaves_the_client() {
    let (fake, provider) = setup().await;
    assert_eq!(
        provider.send(&oversized(), "t", now_ms()).await,
        SendOutcome::Rejected {
            reason: "payload_too_large".into()
        }
    );
    let stats = fake.stats();
    assert_eq!((stats.requests, stats.token_requests), (0, 0));
}

#[tokio::test]
async fn silent_push_is_data_only() {
    let (fake, provider) = setup().await;
    let mut n = notification();
    n.silent = true;
    n.title.clear();
    n.body.clear();
    assert!(accepted(&provider.send(&n, "t", now_ms()).await));
    let r = &fake.received()[0];
    assert!(r.silent);
    assert!(r.raw_json["message"].get("notification").is_none());
    assert!(r.raw_json["message"]["android"]
        .get("notification")
        .is_none());
    assert_eq!(r.raw_json["message"]["data"]["atoll_msg_id"], n.msg_id);
}

#[tokio::test]
async fn vendor_options_the_api_does_not_know_are_rejected_by_it() {
    let (_fake, provider) = setup().await;
    let mut n = notification();
    n.vendor_options.insert(
        "fcm".into(),
        serde_json::json!({"android": {"notification": {"channel_id": "orders"}}}),
    );
    assert!(accepted(&provider.send(&n, "t", now_ms()).await));
    n.vendor_options
        .insert("fcm".into(), serde_json::json!({"android": {"bogus": 1}}));
    let o = provider.send(&n, "t", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::Rejected { reason } if reason.starts_with("INVALID_ARGUMENT")),
        "{o:?}"
    );
}

#[tokio::test]
async fn revoke_is_unsupported() {
    let (fake, provider) = setup().await;
    assert_eq!(
        provider.revoke(&notification(), "t", now_ms()).await,
        SendOutcome::Rejected {
            reason: "revoke_unsupported".into()
        }
    );
    assert_eq!(fake.stats().requests, 0);
}

#[tokio::test]
async fn an_unknown_service_account_key_is_rejected() {
    let fake = FakeFcm::start().await;
    let provider = build_provider(
        PushChannel::Fcm,
        &fake.credentials_with_unknown_key(),
        &HttpOptions::default(),
    )
    .unwrap();
    let o = provider.send(&notification(), "t", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::Rejected { reason } if reason.contains("invalid_grant")),
        "{o:?}"
    );
    assert_eq!(fake.stats().token_rejections, 1);
    assert_eq!(fake.stats().requests, 0);
}

#[tokio::test]
async fn a_slow_vendor_is_a_timeout_retry() {
    let fake = FakeFcm::start().await;
    let options = HttpOptions {
        timeout: Duration::from_millis(200),
        ..HttpOptions::default()
    };
    let provider = build_provider(PushChannel::Fcm, &fake.credentials(), &options).unwrap();
    // The token endpoint is not delayed; the send is.
    fake.set_latency(Duration::from_millis(1000));
    let o = provider.send(&notification(), "t", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::Retry { reason, throttled: false, .. } if reason.starts_with("timeout")),
        "{o:?}"
    );
    assert!(!fake.wait_for(1, Duration::from_millis(50)).await);
    fake.set_latency(Duration::ZERO);
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
    assert!(fake.wait_for(1, Duration::from_secs(1)).await);
}
