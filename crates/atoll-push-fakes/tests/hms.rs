//! The HMS Push Kit provider against the fake HMS.

mod common;

use atoll_protocol::device::PushChannel;
use atoll_push_fakes::FakeHms;
use atoll_push_vendors::{
    build_provider, ClickAction, HttpOptions, PushProvider, SendOutcome, Style, REVOKED_BODY,
};
use common::{notification, now_ms, oversized};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (FakeHms, Arc<dyn PushProvider>) {
    let fake = FakeHms::start().await;
    let provider = build_provider(
        PushChannel::Hms,
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
    let mut n = notification();
    n.style = Style::BigText;
    n.click = Some(ClickAction::DeepLink("app://orders/42".into()));
    let outcome = provider.send(&n, "hms-token-1", now_ms()).await;
    assert!(
        matches!(&outcome, SendOutcome::Accepted { vendor_msg_id: Some(id) } if !id.is_empty()),
        "{outcome:?}"
    );
    let r = &fake.received()[0];
    assert_eq!(r.token, "hms-token-1");
    assert_eq!(r.msg_id.as_deref(), Some(n.msg_id.as_str()));
    assert_eq!(r.title.as_deref(), Some("Order shipped"));
    assert_eq!(r.collapse_key.as_deref(), Some("order-42"));
    assert!(!r.silent);
    let m = &r.raw_json["message"];
    assert_eq!(m["token"], serde_json::json!(["hms-token-1"]));
    assert_eq!(m["android"]["urgency"], "HIGH");
    assert_eq!(m["android"]["notification"]["style"], 1);
    assert_eq!(
        m["android"]["notification"]["click_action"],
        serde_json::json!({"type": 1, "intent": "app://orders/42"})
    );
    assert_eq!(r.raw_json["validate_only"], false);
}

#[tokio::test]
async fn one_access_token_for_fifty_sends_and_refresh_near_expiry() {
    let (fake, provider) = setup().await;
    let now = now_ms();
    for i in 0..50 {
        let o = provider
            .send(&notification(), &format!("t{i}"), now + i)
            .await;
        assert!(accepted(&o), "{o:?}");
    }
    assert_eq!(fake.stats().token_requests, 1);
    // expires_in 3600 s: refreshed from 3540 s on.
    let mut n = notification();
    n.expires_at_ms = now + 10_000_000;
    assert!(accepted(&provider.send(&n, "t", now + 3_540_000).await));
    assert_eq!(fake.stats().token_requests, 2);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_retried() {
    let (fake, provider) = setup().await;
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
    fake.expire_access_tokens();
    let o = provider.send(&notification(), "t", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::Retry { reason, throttled: false, .. } if reason.starts_with("80200003")),
        "{o:?}"
    );
    assert!(accepted(
        &provider.send(&notification(), "t", now_ms()).await
    ));
    assert_eq!(fake.stats().token_requests, 2);
}

#[tokio::test]
async fn dead_token_is_token_invalid() {
    let (fake, provider) = setup().await;
    fake.dead_token("gone");
    let o = provider.send(&notification(), "gone", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::TokenInvalid { reason } if reason.starts_with("80300007")),
        "{o:?}"
    );
    assert_eq!(fake.stats().rejected["80300007"], 1);
}

#[tokio::test]
async fn throttling_and_flow_control_are_retries() {
    let (fake, provider) = setup().await;
    fake.throttle(1, 4);
    assert_eq!(
        provider.send(&notification(), "t", now_ms()).await,
        SendOutcome::Retry {
            after: Some(Duration::from_secs(4)),
            reason: "http_429".into(),
            throttled: true
        }
    );
    fake.fail_unavailable(1);
    assert!(matches!(
        provider.send(&notification(), "t", now_ms()).await,
        SendOutcome::Retry { .. }
    ));
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
async fn silent_push_is_a_data_message() {
    let (fake, provider) = setup().await;
    let mut n = notification();
    n.silent = true;
    n.title.clear();
    n.body.clear();
    assert!(accepted(&provider.send(&n, "t", now_ms()).await));
    let r = &fake.received()[0];
    assert!(r.silent);
    let data: serde_json::Value =
        serde_json::from_str(r.raw_json["message"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["order"], "42");
    assert_eq!(data["atoll_msg_id"], n.msg_id);
}

#[tokio::test]
async fn revoke_replaces_by_tag() {
    let (fake, provider) = setup().await;
    let n = notification();
    assert!(accepted(&provider.send(&n, "t", now_ms()).await));
    assert!(accepted(&provider.revoke(&n, "t", now_ms()).await));
    let got = fake.received();
    assert_eq!(got[1].collapse_key.as_deref(), Some("order-42"));
    assert_eq!(got[1].body.as_deref(), Some(REVOKED_BODY));
    let mut no_key = notification();
    no_key.collapse_key = None;
    assert_eq!(
        provider.revoke(&no_key, "t", now_ms()).await,
        SendOutcome::Rejected {
            reason: "revoke_unsupported".into()
        }
    );
}

#[tokio::test]
async fn a_wrong_secret_is_rejected() {
    let fake = FakeHms::start().await;
    let mut creds = fake.credentials();
    creds["client_secret"] = "wrong".into();
    let provider = build_provider(PushChannel::Hms, &creds, &HttpOptions::default()).unwrap();
    let o = provider.send(&notification(), "t", now_ms()).await;
    assert!(
        matches!(&o, SendOutcome::Rejected { reason } if reason.starts_with("auth_failed")),
        "{o:?}"
    );
    assert_eq!(fake.stats().requests, 0);
}

#[tokio::test]
async fn two_hundred_concurrent_sends() {
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
}
