//! Clients for the push vendors Atoll hands notifications to when a device is
//! not online on Atoll's own connection: **APNs** (HTTP/2, token-based auth
//! with a `.p8` key), **FCM HTTP v1** (OAuth2 service-account JWT exchange) and
//! **HMS Push Kit** (OAuth2 client credentials), each behind [`PushProvider`].
//!
//! A provider turns one rendered [`Notification`] and one device token into
//! the vendor's request, checks the vendor's payload limit *before* sending,
//! and classifies the answer as a [`SendOutcome`]: delivered, the token is
//! dead (deactivate it), rejected for good (never retry), or retry later
//! (honouring the vendor's `Retry-After`). Retrying, rate limits and
//! concurrency are the caller's (the push pipeline's) job; a provider only
//! caches its auth token so that concurrent sends share it.
//!
//! Vendor endpoints are part of the credentials so that tests and benchmarks
//! can point a provider at the local fakes in `atoll-push-fakes`.
//!
//! Build a provider with [`build_provider`] from the channel's credentials
//! JSON ([`ApnsCredentials`], [`FcmCredentials`], [`HmsCredentials`]); it
//! parses the keys up front, so bad credentials fail when they are saved,
//! not at the first send.
#![warn(missing_docs)]

pub mod apns;
pub mod fcm;
pub mod hms;
mod http;
pub mod jwt;

pub use apns::{ApnsCredentials, ApnsProvider};
pub use fcm::{FcmCredentials, FcmProvider, ServiceAccount};
pub use hms::{HmsCredentials, HmsProvider};

use atoll_protocol::device::PushChannel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One notification, rendered (no placeholders left), as every vendor needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Atoll's message id: the same on every retry of this message to this
    /// device (APNs `apns-id` is derived from it when it is a UUID).
    pub msg_id: String,
    /// Title (empty for silent pushes).
    pub title: String,
    /// Body (empty for silent pushes).
    pub body: String,
    /// Data-only: no alert, the app wakes and reads `extras`.
    pub silent: bool,
    /// How the notification is drawn.
    pub style: Style,
    /// What a tap does.
    pub click: Option<ClickAction>,
    /// App-defined key/values (≤ 20), delivered with the notification.
    pub extras: BTreeMap<String, String>,
    /// Notifications with the same key replace each other on the device
    /// (APNs `apns-collapse-id`, FCM `collapse_key`/`tag`, HMS `tag`).
    pub collapse_key: Option<String>,
    /// After this instant (ms since the epoch) the vendor must not deliver.
    pub expires_at_ms: i64,
    /// Deliver at once and wake the device (`true`), or when convenient.
    pub high_priority: bool,
    /// Vendor pass-through options keyed by channel name (`apns`, `fcm`,
    /// `hms`): a JSON object merged into that vendor's message (e.g. APNs
    /// `{"sound": "default", "badge": 3}`, FCM `{"android": {...}}`).
    pub vendor_options: BTreeMap<String, serde_json::Value>,
}

/// How a notification is drawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Style {
    /// The platform's default.
    Default,
    /// Expanded long text.
    BigText,
    /// With a picture.
    Image {
        /// The picture's https URL.
        url: String,
    },
}

/// What tapping the notification does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ClickAction {
    /// Open a web URL.
    Url(String),
    /// Open an app deep link (`myapp://orders/42`).
    DeepLink(String),
    /// Start an Android intent (URI form).
    Intent(String),
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The vendor accepted it.
    Accepted {
        /// The vendor's id for the message, when it gives one.
        vendor_msg_id: Option<String>,
    },
    /// The token is dead (APNs 410 `Unregistered`, FCM `UNREGISTERED`, HMS
    /// `80300007`/invalid token): deactivate it, do not retry.
    TokenInvalid {
        /// The vendor's reason.
        reason: String,
    },
    /// Refused for good (payload too large, bad request, bad credentials that
    /// a retry cannot fix): do not retry.
    Rejected {
        /// A stable reason, e.g. `payload_too_large`, `BadDeviceToken`.
        reason: String,
    },
    /// A transient failure (429, 5xx, network, token refresh): try again, not
    /// before `after` when the vendor said so.
    Retry {
        /// The vendor's `Retry-After`, if any.
        after: Option<Duration>,
        /// Why.
        reason: String,
        /// The vendor asked to slow down (429/quota), as opposed to a fault.
        throttled: bool,
    },
}

/// Sends notifications over one vendor channel.
#[async_trait::async_trait]
pub trait PushProvider: Send + Sync + std::fmt::Debug {
    /// The channel this provider serves.
    fn channel(&self) -> PushChannel;

    /// The vendor's payload limit in bytes (the body of one message).
    fn max_payload_bytes(&self) -> usize;

    /// Sends one notification to one device token. Never panics and never
    /// retries by itself; `now_ms` is the caller's clock (JWT `iat`, TTLs).
    async fn send(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome;

    /// Withdraws an already sent notification where the vendor can (APNs and
    /// HMS: a replacement with the same collapse key; FCM cannot). Answers
    /// `Rejected { reason: "revoke_unsupported" }` when the vendor has no way.
    async fn revoke(&self, notification: &Notification, token: &str, now_ms: i64) -> SendOutcome;
}

/// What can go wrong building a provider from its credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The credentials are malformed (a bad PEM key, missing fields).
    #[error("{0}")]
    Invalid(String),
}

/// How providers reach their vendor.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// PEM certificates trusted in addition to the public roots (the local
    /// fakes' self-signed CA in tests and benchmarks).
    pub extra_root_certs_pem: Vec<String>,
    /// Per-request timeout (connect included).
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            extra_root_certs_pem: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }
}

fn parse_credentials<T: serde::de::DeserializeOwned>(
    channel: PushChannel,
    credentials: &serde_json::Value,
) -> Result<T, CredentialsError> {
    T::deserialize(credentials)
        .map_err(|e| CredentialsError::Invalid(format!("{channel} credentials: {e}")))
}

fn unsupported(channel: PushChannel) -> CredentialsError {
    CredentialsError::Invalid(format!("channel {channel} is not supported"))
}

/// Checks a channel's credentials JSON (fields, key parsing) without
/// building an HTTP client.
pub fn validate_credentials(
    channel: PushChannel,
    credentials: &serde_json::Value,
) -> Result<(), CredentialsError> {
    match channel {
        PushChannel::Apns => parse_credentials::<ApnsCredentials>(channel, credentials)?.validate(),
        PushChannel::Fcm => parse_credentials::<FcmCredentials>(channel, credentials)?.validate(),
        PushChannel::Hms => parse_credentials::<HmsCredentials>(channel, credentials)?.validate(),
        other => Err(unsupported(other)),
    }
}

/// Builds the provider for `channel` from its credentials JSON.
pub fn build_provider(
    channel: PushChannel,
    credentials: &serde_json::Value,
    options: &HttpOptions,
) -> Result<Arc<dyn PushProvider>, CredentialsError> {
    Ok(match channel {
        PushChannel::Apns => Arc::new(ApnsProvider::new(
            parse_credentials(channel, credentials)?,
            options,
        )?),
        PushChannel::Fcm => Arc::new(FcmProvider::new(
            parse_credentials(channel, credentials)?,
            options,
        )?),
        PushChannel::Hms => Arc::new(HmsProvider::new(
            parse_credentials(channel, credentials)?,
            options,
        )?),
        other => return Err(unsupported(other)),
    })
}

/// The body a revocation shows in place of the original.
pub const REVOKED_BODY: &str = "Message revoked";

/// The replacement that withdraws `original` where the vendor replaces
/// notifications by collapse key (APNs, HMS), or `None` without a key. The
/// title stays (the user has seen it already, and HMS refuses a notification
/// without one); the body becomes [`REVOKED_BODY`], the extras go.
fn revocation_of(original: &Notification) -> Option<Notification> {
    let collapse_key = original.collapse_key.clone()?;
    let mut extras = BTreeMap::new();
    extras.insert("atoll_revoked".to_string(), "1".to_string());
    Some(Notification {
        msg_id: original.msg_id.clone(),
        title: original.title.clone(),
        body: REVOKED_BODY.to_string(),
        silent: false,
        style: Style::Default,
        click: None,
        extras,
        collapse_key: Some(collapse_key),
        expires_at_ms: original.expires_at_ms,
        high_priority: original.high_priority,
        vendor_options: BTreeMap::new(),
    })
}

fn revoke_unsupported() -> SendOutcome {
    SendOutcome::Rejected {
        reason: "revoke_unsupported".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A notification the module tests vary: expires an hour after
    /// 1_700_000_000_000.
    pub fn sample() -> Notification {
        Notification {
            msg_id: "0190f3a4-5b6c-7d8e-9f00-112233445566".into(),
            title: "Hello".into(),
            body: "World".into(),
            silent: false,
            style: Style::Default,
            click: None,
            extras: BTreeMap::new(),
            collapse_key: Some("orders".into()),
            expires_at_ms: 1_700_003_600_000,
            high_priority: false,
            vendor_options: BTreeMap::new(),
        }
    }

    #[test]
    fn unsupported_channels_and_bad_credentials() {
        let err = build_provider(
            PushChannel::Xiaomi,
            &serde_json::json!({}),
            &HttpOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "channel xiaomi is not supported");
        let err = validate_credentials(
            PushChannel::Apns,
            &serde_json::json!({"team_id": "T", "key_id": "K", "topic": "a.b",
                "private_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("private_key_pem"), "{err}");
        let err = validate_credentials(PushChannel::Fcm, &serde_json::json!({"project_id": "p"}))
            .unwrap_err();
        assert!(err.to_string().starts_with("fcm credentials:"), "{err}");
        assert!(validate_credentials(
            PushChannel::Hms,
            &serde_json::json!({"app_id": "123", "client_secret": "s"})
        )
        .is_ok());
        assert!(validate_credentials(
            PushChannel::Hms,
            &serde_json::json!({"app_id": "1/2", "client_secret": "s"})
        )
        .is_err());
    }

    #[test]
    fn revocation_needs_a_collapse_key() {
        let mut n = sample();
        let r = revocation_of(&n).unwrap();
        assert_eq!(r.body, REVOKED_BODY);
        assert_eq!(r.collapse_key.as_deref(), Some("orders"));
        n.collapse_key = None;
        assert!(revocation_of(&n).is_none());
    }
}
