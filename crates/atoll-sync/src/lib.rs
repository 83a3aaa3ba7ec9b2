//! Atoll's real-time data sync, like mPaaS's Mobile Sync Service: app
//! backends send **sync orders** on **biz types**, and each datum reaches its
//! devices within a second when they are online, in order, and without loss
//! when they come back.
//!
//! - **Biz types** ([`registry`]): per app, user or device dimension,
//!   persistent or live-only, backlog threshold, multi-device history, global
//!   orders, retention, user consistency, online/offline.
//! - **The sync log** ([`log`]): every persistent datum is appended to its
//!   stream (`d:<device>`, `u:<user>` or the global `g`) with the stream's next
//!   sequence number, idempotently on `(biz type, link token, third msg id)`,
//!   and is durable before the order is answered. Device cursors (sync points)
//!   live beside it.
//! - **Delivery** ([`hub`], [`connection`]): each node keeps the device
//!   connections it holds and follows their streams; a new datum is delivered
//!   live on this node and announced on the [`Bus`] for the others. Catch-up
//!   from the log covers reconnects, gaps and redeliveries; trimmed history is
//!   announced as an explicit resync, never skipped silently.
//! - **Counters** ([`stats`]): sent, delivered, acknowledged, dropped per biz
//!   type and day.
#![warn(missing_docs)]

pub mod connection;
pub mod filter;
pub mod hub;
pub mod log;
pub mod orders;
pub mod registry;
pub mod stats;
pub mod validate;

use atoll_core::clock::Clock;
use atoll_platform::PlatformService;
use atoll_store::Bus;
use std::sync::Arc;
use std::time::Duration;

pub use hub::{CloseReason, Conn, Hub, HubSettings, Refused};

/// Another module that uses the device connection (push): told when a device
/// connects, and given the frames meant for it. Calls must not block.
pub trait ConnectionObserver: Send + Sync {
    /// A device connected on this node.
    fn connected(&self, conn: &Arc<Conn>);
    /// The device acknowledged push messages.
    fn push_acked(&self, conn: &Arc<Conn>, msg_ids: Vec<String>);
}

/// What can go wrong in sync.
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
    /// Too large (payload).
    #[error("{0}")]
    TooLarge(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with existing objects.
    #[error("{0}")]
    Conflict(String),
    /// The biz type is offline.
    #[error("biz type '{0}' is offline")]
    Offline(String),
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
            Error::TooLarge(_) => C::PayloadTooLarge,
            Error::NotFound(_) => C::NotFound,
            Error::Conflict(_) => C::Conflict,
            Error::Offline(_) => C::BizTypeOffline,
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

/// Settings of sync.
#[derive(Debug, Clone, Default)]
pub struct SyncSettings {
    /// The device connections.
    pub hub: HubSettings,
}

/// The sync service: biz types, orders, subscriptions and delivery.
pub struct SyncService {
    platform: PlatformService,
    clock: Arc<dyn Clock>,
    bus: Arc<dyn Bus>,
    log: log::SyncLog,
    biz_types: registry::BizTypeCache,
    /// The device connections of this node.
    pub hub: Arc<Hub>,
    /// Delivery counters.
    pub stats: stats::Stats,
    volatile_keys: orders::VolatileKeys,
    observer: std::sync::OnceLock<std::sync::Weak<dyn ConnectionObserver>>,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("node", &self.hub.settings().node)
            .finish_non_exhaustive()
    }
}

/// Bus subjects: live data for other nodes, and binding changes.
pub(crate) const LIVE_SUBJECT: &str = "sync.live";
pub(crate) const KICK_SUBJECT: &str = "sync.kick";

/// How often pending cursors and counters are written.
const FLUSH_PERIOD: Duration = Duration::from_millis(250);
const STATS_PERIOD: Duration = Duration::from_secs(5);
const SWEEP_PERIOD: Duration = Duration::from_secs(2);
const EXPIRY_PERIOD: Duration = Duration::from_secs(60);

impl SyncService {
    /// The service over the platform's store, with its background loops
    /// (cursor and counter flushes, the sweeper, expiry, the bus listener).
    pub async fn start(
        platform: PlatformService,
        clock: Arc<dyn Clock>,
        bus: Arc<dyn Bus>,
        settings: SyncSettings,
    ) -> Result<Arc<SyncService>> {
        let service = Arc::new(SyncService {
            log: log::SyncLog::new(platform.store().clone()),
            platform,
            clock,
            bus: bus.clone(),
            biz_types: registry::BizTypeCache::default(),
            hub: Arc::new(Hub::new(settings.hub)),
            stats: stats::Stats::default(),
            volatile_keys: orders::VolatileKeys::default(),
            observer: std::sync::OnceLock::new(),
        });
        let live = bus.subscribe(&format!("{LIVE_SUBJECT}.>"), 65_536).await?;
        let kicks = bus.subscribe(&format!("{KICK_SUBJECT}.>"), 4_096).await?;
        orders::spawn_bus_listeners(&service, live, kicks);
        spawn_loops(&service);
        Ok(service)
    }

    /// Sets the module told about connections and push frames (once; held
    /// weakly so that the two services do not keep each other alive).
    pub fn set_observer(&self, observer: std::sync::Weak<dyn ConnectionObserver>) {
        let _ = self.observer.set(observer);
    }

    /// The observer, while it lives.
    pub(crate) fn observer(&self) -> Option<Arc<dyn ConnectionObserver>> {
        self.observer.get().and_then(std::sync::Weak::upgrade)
    }

    /// The sync log.
    pub fn log(&self) -> &log::SyncLog {
        &self.log
    }

    /// Writes the cursors and counters waiting in memory.
    pub async fn flush(&self) -> Result<()> {
        let cursors = self.hub.take_cursors();
        self.log.save_cursors(&cursors, self.clock.now_ms()).await?;
        self.stats
            .flush(self.platform.store(), self.clock.now_ms())
            .await
    }

    /// Tells clients to reconnect elsewhere, waits for them to go, and saves
    /// what is pending.
    pub async fn shutdown(&self, grace: Duration) {
        self.hub.shutdown(grace).await;
        if let Err(error) = self.flush().await {
            tracing::warn!(%error, "could not save sync cursors at shutdown");
        }
    }
}

/// The background loops; each holds the service weakly and ends with it.
fn spawn_loops(service: &Arc<SyncService>) {
    let weak = Arc::downgrade(service);
    let hub = service.hub.clone();
    tokio::spawn(async move {
        loop {
            hub.cursors_pending(FLUSH_PERIOD).await;
            let Some(service) = weak.upgrade() else { break };
            let cursors = service.hub.take_cursors();
            if let Err(error) = service
                .log
                .save_cursors(&cursors, service.clock.now_ms())
                .await
            {
                // Cursors are only sync points: losing them means redelivery, not loss.
                tracing::warn!(%error, count = cursors.len(), "could not save sync cursors");
            }
        }
    });
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_PERIOD);
        let mut last_stats = std::time::Instant::now();
        let mut last_expiry = std::time::Instant::now();
        loop {
            tick.tick().await;
            let Some(service) = weak.upgrade() else { break };
            service.hub.sweep(&service);
            if last_stats.elapsed() >= STATS_PERIOD {
                last_stats = std::time::Instant::now();
                if let Err(error) = service
                    .stats
                    .flush(service.platform.store(), service.clock.now_ms())
                    .await
                {
                    tracing::warn!(%error, "could not save sync counters");
                }
            }
            if last_expiry.elapsed() >= EXPIRY_PERIOD {
                last_expiry = std::time::Instant::now();
                if let Err(error) = service.expire().await {
                    tracing::warn!(%error, "sync expiry failed");
                }
            }
        }
    });
}
