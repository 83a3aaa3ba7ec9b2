//! Local fakes of the push vendors that `atoll-push-vendors` talks to, for
//! tests and benchmarks: no internet, no real credentials.
//!
//! * [`FakeApns`]: the APNs provider API over **HTTP/2 with TLS** (ALPN `h2`
//!   only, a CA and server certificate made at start-up), verifying the ES256
//!   provider token against a P-256 key it generated itself.
//! * [`FakeFcm`]: FCM HTTP v1 (`projects.messages.send`) plus a Google-style
//!   OAuth token endpoint that verifies the RS256 service-account assertion.
//! * [`FakeHms`]: HMS Push Kit (`/v1/{appId}/messages:send`) plus the
//!   client-credentials token endpoint, answering with HMS result codes.
//!
//! Each fake checks requests the way the vendor documents them (headers,
//! message shape, the 4096-byte limit, auth) so that client bugs surface as
//! the vendor's own errors. Each hands out credentials JSON pointing at
//! itself, ready for `atoll_push_vendors::build_provider`.
//!
//! The behaviour controls are shared ([`Controls`], reachable on every fake
//! through `Deref`): dead tokens, throttling with `Retry-After`, 503s,
//! latency, a clock offset, and a record of every accepted message with
//! counters. The faults apply to message sends only, never to the token
//! endpoints, so that a test knows which request they hit.
#![warn(missing_docs)]

mod apns;
mod fcm;
mod hms;
mod jwt;
mod server;

pub use apns::FakeApns;
pub use fcm::FakeFcm;
pub use hms::FakeHms;

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One message a fake accepted (one per token for multi-token vendors).
#[derive(Debug, Clone)]
pub struct Received {
    /// The device token it was sent to.
    pub token: String,
    /// Atoll's message id as the client put it into the message.
    pub msg_id: Option<String>,
    /// APNs `apns-collapse-id`, FCM `android.collapse_key`, HMS `tag`.
    pub collapse_key: Option<String>,
    /// The visible title, if any.
    pub title: Option<String>,
    /// The visible body, if any.
    pub body: Option<String>,
    /// A data-only / background push.
    pub silent: bool,
    /// The request body as sent.
    pub raw_json: serde_json::Value,
    /// The request headers (lower-case names; repeated ones joined by `, `).
    pub headers: BTreeMap<String, String>,
    /// The HTTP version the request came over (`HTTP/2.0`, `HTTP/1.1`).
    pub http_version: String,
}

/// Counters of one fake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Message-send requests that reached the fake.
    pub requests: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Refused sends by the vendor's reason (`Unregistered`, `UNREGISTERED`,
    /// `80300007`, `TooManyRequests`...).
    pub rejected: BTreeMap<String, u64>,
    /// Requests to the OAuth token endpoint (FCM, HMS).
    pub token_requests: u64,
    /// Token-endpoint requests that were refused.
    pub token_rejections: u64,
}

/// A fault the next send requests get.
pub(crate) enum Fault {
    /// 429 with this `Retry-After` (seconds).
    Throttle(u64),
    /// 503.
    Unavailable,
}

#[derive(Default)]
struct State {
    dead: HashSet<String>,
    throttle_left: u32,
    throttle_secs: u64,
    unavailable_left: u32,
    latency: Duration,
    received: Vec<Received>,
    stats: Stats,
}

#[derive(Default)]
pub(crate) struct Core {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    clock_offset_ms: AtomicI64,
}

impl Core {
    /// The fake's clock (wall clock plus [`Controls::advance_clock`]), ms.
    pub(crate) fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Counts a send request and waits the configured latency.
    pub(crate) async fn begin_send(&self) {
        let latency = {
            let mut s = self.state.lock();
            s.stats.requests += 1;
            s.latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Counts a token-endpoint request.
    pub(crate) fn token_request(&self, ok: bool) {
        let mut s = self.state.lock();
        s.stats.token_requests += 1;
        if !ok {
            s.stats.token_rejections += 1;
        }
    }

    /// The fault this send gets, if any (consumes one).
    pub(crate) fn take_fault(&self) -> Option<Fault> {
        let mut s = self.state.lock();
        if s.unavailable_left > 0 {
            s.unavailable_left -= 1;
            return Some(Fault::Unavailable);
        }
        if s.throttle_left > 0 {
            s.throttle_left -= 1;
            return Some(Fault::Throttle(s.throttle_secs));
        }
        None
    }

    pub(crate) fn is_dead(&self, token: &str) -> bool {
        self.state.lock().dead.contains(token)
    }

    pub(crate) fn accept(&self, received: Received) {
        let mut s = self.state.lock();
        s.stats.accepted += 1;
        s.received.push(received);
        drop(s);
        self.changed.notify_waiters();
    }

    pub(crate) fn reject(&self, reason: &str) {
        *self
            .state
            .lock()
            .stats
            .rejected
            .entry(reason.to_string())
            .or_default() += 1;
    }
}

/// The behaviour controls and records every fake has (reach them on the fake
/// itself: `fake.dead_token("...")`).
#[derive(Clone, Default)]
pub struct Controls {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Controls {
    /// From now on `token` is unregistered (APNs 410 `Unregistered`, FCM 404
    /// `UNREGISTERED`, HMS `80300007`).
    pub fn dead_token(&self, token: &str) {
        self.core.state.lock().dead.insert(token.to_string());
    }

    /// The next `n` sends get 429 with `Retry-After: retry_after_secs`.
    pub fn throttle(&self, n: u32, retry_after_secs: u64) {
        let mut s = self.core.state.lock();
        s.throttle_left = n;
        s.throttle_secs = retry_after_secs;
    }

    /// The next `n` sends get 503 (checked before throttling).
    pub fn fail_unavailable(&self, n: u32) {
        self.core.state.lock().unavailable_left = n;
    }

    /// Every send waits this long before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.core.state.lock().latency = latency;
    }

    /// Moves the fake's clock forward (token expiry checks use it).
    pub fn advance_clock(&self, by: Duration) {
        self.core
            .clock_offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Every accepted message so far, in order of acceptance.
    pub fn received(&self) -> Vec<Received> {
        self.core.state.lock().received.clone()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.core.state.lock().stats.clone()
    }

    /// Forgets the received messages and counters (controls stay).
    pub fn clear(&self) {
        let mut s = self.core.state.lock();
        s.received.clear();
        s.stats = Stats::default();
    }

    /// Waits until at least `count` messages were accepted; `false` on
    /// timeout.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.core.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so an acceptance in between
            // still wakes us.
            notified.as_mut().enable();
            if self.core.state.lock().received.len() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.core.state.lock().received.len() >= count;
            }
        }
    }
}
