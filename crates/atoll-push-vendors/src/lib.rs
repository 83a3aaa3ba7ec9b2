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
#![warn(missing_docs)]

use atoll_protocol::device::PushChannel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
