//! Atoll's push notifications, like mPaaS's Mobile Push Service.
//!
//! - **Sends** ([`send`]): simple, template, multiple and broadcast pushes with
//!   business message ids (idempotent), expiry, styles, click actions, extras,
//!   collapse keys, vendor options, a send time and recurring schedules. A send
//!   is one transaction: the task, its messages (rendered, one per target) and,
//!   for an immediate targeted send, its deliveries (one per device) are
//!   durable before the answer.
//! - **Templates** ([`templates`], [`content`]): `#name#` placeholders in title,
//!   body and URL; a missing value is an error naming every missing name.
//! - **Delivery** ([`dispatch`]): deliveries are a work queue in the store.
//!   The dispatcher claims due ones with a lease, sends each over Atoll's own
//!   connection when the device is online there (and waits for its `push_ack`),
//!   else over the device's vendor channel (APNs, FCM, HMS through
//!   `atoll-push-vendors`) with per-app, per-vendor concurrency, rate limits and
//!   a pause when the vendor says 429; transient failures retry with jittered
//!   backoff, then fail with a reason (the dead letters). Devices with no
//!   usable vendor token wait for their next connection until expiry. A crash
//!   repeats only the sends whose lease was running, with the same message and
//!   collapse ids.
//! - **Broadcasts** ([`expand`]) page through an app's devices (1 000 at a
//!   time, the position saved with each page), never all in memory.
//! - **Fatigue caps**, **expiry**, **revoke** ([`revoke`]), **schedules**
//!   ([`schedule`], [`scheduler`]) and **stats** ([`stats`]): per task, per
//!   channel, per failure reason, per device, and daily core indexes;
//!   delivery **receipts** POSTed to the app's backend ([`receipts`]).
#![warn(missing_docs)]

pub mod channels;
pub mod content;
pub mod dispatch;
pub mod expand;
pub mod receipts;
pub mod revoke;
pub mod schedule;
pub mod scheduler;
pub mod send;
pub mod stats;
pub mod templates;

use atoll_core::clock::Clock;
use atoll_platform::secrets::SecretBox;
use atoll_platform::PlatformService;
use atoll_push_vendors::HttpOptions;
use atoll_sync::{Conn, ConnectionObserver, SyncService};
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong in push.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform operation failed (authorisation, lookup).
    #[error(transparent)]
    Platform(#[from] atoll_platform::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Too many targets for the send type.
    #[error("{0}")]
    TooManyTargets(String),
    /// Template values are missing.
    #[error("{0}")]
    TemplateValues(String),
    /// The expiry is missing or out of range.
    #[error("{0}")]
    Expiry(String),
    /// More than 20 extras.
    #[error("{0}")]
    TooManyExtras(String),
    /// The message is too large for the vendors.
    #[error("{0}")]
    TooLarge(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with existing objects.
    #[error("{0}")]
    Conflict(String),
    /// Older than the revoke window.
    #[error("{0}")]
    RevokeWindow(String),
    /// A bug or corrupt stored data.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Store(atoll_store::Error::Database(error))
    }
}

impl Error {
    /// The catalogue code.
    pub fn code(&self) -> atoll_protocol::ErrorCode {
        use atoll_protocol::ErrorCode as C;
        match self {
            Error::Platform(error) => error.code(),
            Error::Store(_) | Error::Internal(_) => C::Internal,
            Error::Invalid(_) => C::ValidationFailed,
            Error::TooManyTargets(_) => C::TooManyTargets,
            Error::TemplateValues(_) => C::TemplateValuesMissing,
            Error::Expiry(_) => C::ExpiryOutOfRange,
            Error::TooManyExtras(_) => C::TooManyExtras,
            Error::TooLarge(_) => C::PayloadTooLarge,
            Error::NotFound(_) => C::NotFound,
            Error::Conflict(_) => C::Conflict,
            Error::RevokeWindow(_) => C::RevokeWindowPassed,
        }
    }

    /// Seconds a client should wait before retrying, for the errors that say.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Platform(error) => error.retry_after_secs(),
            _ => None,
        }
    }

    /// Whether the detail is for the log only.
    pub fn is_internal(&self) -> bool {
        match self {
            Error::Platform(error) => error.is_internal(),
            Error::Store(_) | Error::Internal(_) => true,
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The token scope that sends pushes.
pub const SEND_SCOPE: &str = "push:send";

/// Server-wide settings of push.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Deliveries claimed per round.
    pub batch: usize,
    /// Deliveries in flight on this node at most.
    pub max_in_flight: usize,
    /// Vendor requests in flight per app and vendor, unless the app says.
    pub default_concurrency: u32,
    /// Vendor sends per second per app and vendor, unless the app says (0: no limit).
    pub default_rate_per_sec: u32,
    /// Send attempts before a delivery fails for good.
    pub max_attempts: u32,
    /// A claimed delivery not finished within this is claimed again (after a crash).
    pub lease: Duration,
    /// First retry delay (doubled per attempt, with jitter).
    pub retry_base: Duration,
    /// Days tasks, messages and deliveries are kept (daily counters are kept longer).
    pub retention_days: u32,
    /// HTTP settings of the vendor clients.
    pub http: HttpOptions,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            batch: 512,
            max_in_flight: 4096,
            default_concurrency: 64,
            default_rate_per_sec: 0,
            max_attempts: 5,
            lease: Duration::from_secs(60),
            retry_base: Duration::from_secs(2),
            retention_days: 30,
            http: HttpOptions {
                extra_root_certs_pem: Vec::new(),
                timeout: Duration::from_secs(10),
            },
        }
    }
}

/// The push service.
pub struct PushService {
    platform: PlatformService,
    clock: Arc<dyn Clock>,
    sync: Arc<SyncService>,
    secrets: SecretBox,
    config: PushConfig,
    channels: channels::Channels,
    dispatcher: dispatch::Dispatcher,
    receipts: receipts::Receipts,
}

impl std::fmt::Debug for PushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushService").finish_non_exhaustive()
    }
}

impl PushService {
    /// The service with its background loops (dispatcher, outcome writer,
    /// expander and scheduler, sweeper). It registers itself with sync to hear
    /// about connections and acknowledgements.
    pub fn start(
        platform: PlatformService,
        clock: Arc<dyn Clock>,
        sync: Arc<SyncService>,
        secrets: SecretBox,
        config: PushConfig,
    ) -> Arc<PushService> {
        let service = Arc::new(PushService {
            channels: channels::Channels::default(),
            dispatcher: dispatch::Dispatcher::new(config.max_in_flight),
            receipts: receipts::Receipts::default(),
            platform,
            clock,
            sync,
            secrets,
            config,
        });
        let observer: Arc<dyn ConnectionObserver> = service.clone();
        service.sync.set_observer(Arc::downgrade(&observer));
        dispatch::spawn(&service);
        scheduler::spawn(&service);
        receipts::spawn(&service);
        service
    }

    /// The metadata store.
    pub(crate) fn store(&self) -> &atoll_store::MetaStore {
        self.platform.store()
    }

    /// Waits until no delivery is claimed or being written on this node (tests,
    /// shutdown).
    pub async fn quiesce(&self, timeout: Duration) {
        self.dispatcher.quiesce(timeout).await;
    }
}

impl ConnectionObserver for PushService {
    fn connected(&self, conn: &Arc<Conn>) {
        self.dispatcher
            .device_online(conn.app_id.clone(), conn.device_id.clone());
    }

    fn push_acked(&self, conn: &Arc<Conn>, msg_ids: Vec<String>) {
        self.dispatcher.acked(
            conn.app_id.clone(),
            conn.device_id.clone(),
            msg_ids,
            atoll_protocol::push::PushEvent::Arrived,
        );
    }
}
