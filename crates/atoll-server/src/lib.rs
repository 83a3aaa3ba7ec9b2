//! The composition root of Atoll: it builds the stores from the configuration,
//! mounts every module's router behind the shared HTTP layer, and runs the server
//! until a shutdown signal, then drains and flushes.
//!
//! Only this crate knows every module. Module crates know the platform and the
//! storage traits, never each other, and never this crate.

mod api;
pub mod config;
pub mod demo;
mod device_api;
mod device_connection;
mod downloads;
mod gateway_call;
mod http;
mod listener;
mod ops;
mod state;

pub use atoll_analytics::simulate;
pub use config::Config;
pub use http::error::with_request_id;

/// Entry points for the fuzz targets in `fuzz/`: the parsers of untrusted input.
#[doc(hidden)]
pub mod fuzzing {
    /// Inflates a device request body as the device API does, within `limit`.
    pub fn decode_device_body(
        encoding: Option<&str>,
        body: bytes::Bytes,
        limit: usize,
    ) -> Result<bytes::Bytes, atoll_protocol::ErrorCode> {
        crate::http::body::decode_body(encoding, body, limit).map_err(|error| error.code)
    }

    /// Decodes and validates an event batch as `POST /device/v1/events` does
    /// (inflate within `limit`, JSON, then every ingest rule), returning the rows
    /// it would store or the code it would answer.
    pub fn decode_event_batch(
        encoding: Option<&str>,
        body: bytes::Bytes,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<atoll_events::EventRow>, atoll_protocol::ErrorCode> {
        use atoll_analytics::ingest::{build_rows, IngestLimits, Profile, Source};
        let inflated = decode_device_body(encoding, body, limit)?;
        let batch: atoll_protocol::events::EventBatch = serde_json::from_slice(&inflated)
            .map_err(|_| atoll_protocol::ErrorCode::InvalidRequest)?;
        let profile = Profile {
            device_id: "fuzz-device".into(),
            ..Profile::default()
        };
        build_rows(
            batch,
            &profile,
            &atoll_analytics::registry::Registry::default(),
            &IngestLimits::default(),
            now_ms,
            Source::Device,
        )
        .map_err(|refusal| refusal.code)
    }

    /// Reads a gateway call as `POST /gw/v1` does, up to the forwarding: the
    /// operation type header, the body as a JSON object, and the API's path
    /// template filled from it (with the query string of the other fields).
    pub fn gateway_call(
        headers: &axum::http::HeaderMap,
        body: &[u8],
        template: &str,
    ) -> Result<String, atoll_protocol::ErrorCode> {
        crate::gateway_call::operation_type(headers).map_err(|error| error.code)?;
        atoll_gateway::runtime::read_call(body, template).map_err(|error| error.code())
    }
}

use crate::http::context::{panic_response, request_context, Limits};
use crate::http::rate_limit::AppRateLimiter;
use crate::http::ApiError;
use anyhow::Context;
use atoll_analytics::ingest::IngestLimits;
use atoll_analytics::AnalyticsService;
use atoll_core::clock::{Clock, SystemClock};
use atoll_delivery::{DeliveryConfig, DeliveryService};
use atoll_events::{EventStore, EventStoreConfig};
use atoll_gateway::{Gateway, GatewayConfig};
use atoll_lists::ListService;
use atoll_platform::{NonceStore, PlatformService, PlatformSettings};
use atoll_protocol::ErrorCode;
use atoll_store::{BlobStore, MetaStore, MetaStoreOptions};
use atoll_switches::SwitchService;
use axum::response::IntoResponse;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

const NONCE_SNAPSHOT: &str = "nonces.snapshot";

/// A node that has opened its stores and bound its port, ready to serve.
#[derive(Debug)]
pub struct Node {
    state: AppState,
    listener: TcpListener,
    public_url: String,
    data_dir: PathBuf,
}

fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )?
        .build_recorder();
    let handle = recorder.handle();
    // A second node in the same process (tests) shares the first one's recorder.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle.clone());
    }
    Ok(HANDLE.get().cloned().unwrap_or(handle))
}

impl Node {
    /// Opens the stores named by `config` and binds its listen address.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
        let first_start =
            !config.data_dir.join("meta.db").exists() && config.database_url.is_empty();
        let store = MetaStore::open(
            &config.effective_database_url(),
            &MetaStoreOptions::default(),
        )
        .await
        .context("cannot open the metadata store")?;
        let blobs = BlobStore::local(&config.data_dir.join("blobs"))
            .context("cannot open the blob store")?;
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let public_url = config.effective_public_url(listener.local_addr()?);
        let nonces = NonceStore::restore(
            config.device.nonce_capacity,
            &config.data_dir.join(NONCE_SNAPSHOT),
            clock.now_secs(),
            first_start,
        );
        let platform = PlatformService::new(
            store,
            clock.clone(),
            PlatformSettings {
                public_url: public_url.clone(),
                signature_window_secs: config.device.signature_window_secs,
                nonce_capacity: config.device.nonce_capacity,
                session_ttl_secs: config.admin.session_ttl_hours * 3600,
                max_sessions_per_user: config.admin.max_sessions_per_user,
                audit_retention_days: config.admin.audit_retention_days,
            },
            nonces,
        );
        let events = open_event_store(&config).await?;
        let lists = Arc::new(ListService::new(platform.clone(), clock.clone()));
        let switches = Arc::new(SwitchService::new(
            platform.clone(),
            lists.clone(),
            clock.clone(),
        ));
        let delivery = Arc::new(DeliveryService::new(
            platform.clone(),
            blobs.clone(),
            lists.clone(),
            clock.clone(),
            DeliveryConfig {
                check_interval_secs: config.delivery.check_interval_secs,
                delta_max_file_bytes: config.delivery.delta_max_file_bytes,
                max_package_bytes: config.delivery.max_package_bytes,
                upload_dir: config.data_dir.join("tmp"),
            },
        ));
        let gateway = Arc::new(
            Gateway::new(
                platform.clone(),
                clock.clone(),
                GatewayConfig {
                    allowed_backends: config.gateway.allowed_backends.clone(),
                    cache_max_bytes: config.gateway.cache_max_bytes,
                    limiter_max_keys: config.gateway.limiter_max_keys,
                    access_log: config.gateway.access_log,
                    pool_max_idle_per_host: config.gateway.pool_max_idle_per_host,
                },
            )
            .map_err(|error| anyhow::anyhow!("{error}"))?,
        );
        let analytics = Arc::new(AnalyticsService::new(
            platform.clone(),
            events,
            clock.clone(),
            IngestLimits {
                max_events: config.analytics.max_events_per_batch,
                max_attributes: config.analytics.max_attributes,
                max_future_ms: config.analytics.max_future_secs * 1000,
                max_age_ms: config.analytics.max_age_days * 86_400_000,
                ..IngestLimits::default()
            },
        ));
        let sync_options = &config.sync;
        let node_name = if sync_options.node_name.is_empty() {
            std::env::var("HOSTNAME").unwrap_or_else(|_| "node-1".to_owned())
        } else {
            sync_options.node_name.clone()
        };
        let bus: Arc<dyn atoll_store::Bus> = Arc::new(atoll_store::MemoryBus::new());
        let sync = atoll_sync::SyncService::start(
            platform.clone(),
            clock.clone(),
            bus,
            atoll_sync::SyncSettings {
                hub: atoll_sync::HubSettings {
                    node: node_name,
                    heartbeat: Duration::from_secs(sync_options.heartbeat_secs.max(1)),
                    idle_timeout: Duration::from_secs(sync_options.idle_timeout_secs.max(2)),
                    ack_timeout: Duration::from_secs(sync_options.ack_timeout_secs.max(1)),
                    write_timeout: Duration::from_secs(sync_options.write_timeout_secs.max(1)),
                    outbox_max_bytes: sync_options.outbox_max_bytes.max(16 * 1024),
                    window: sync_options.window.max(1),
                    max_connections: sync_options.max_connections,
                },
            },
        )
        .await
        .map_err(|error| anyhow::anyhow!("cannot start sync: {error}"))?;
        let secrets = atoll_platform::secrets::SecretBox::from_config(
            Some(&config.secrets_key),
            &config.data_dir.join("secrets.key"),
        )
        .map_err(|error| anyhow::anyhow!("cannot load the secrets key: {error}"))?;
        let push = atoll_push::PushService::start(
            platform.clone(),
            clock.clone(),
            sync.clone(),
            secrets,
            push_config(&config.push)?,
        );
        let state = AppState {
            push,
            sync,
            analytics,
            switches,
            lists,
            delivery,
            gateway,
            limiter: AppRateLimiter::new(
                config.device.rate_per_app_per_sec,
                config.device.rate_burst_per_app,
            ),
            metrics: metrics_handle()?,
            blobs,
            platform,
            config: Arc::new(config.clone()),
        };
        Ok(Node {
            state,
            listener,
            public_url,
            data_dir: config.data_dir,
        })
    }

    /// The address the node is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL devices and browsers reach this node at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The platform service (for seeding demo data).
    pub fn platform(&self) -> &PlatformService {
        &self.state.platform
    }

    /// The analytics service (for seeding demo data).
    pub fn analytics(&self) -> &AnalyticsService {
        &self.state.analytics
    }

    /// The switches service (for seeding demo data).
    pub fn switches(&self) -> &SwitchService {
        &self.state.switches
    }

    /// The push service (for seeding demo data).
    pub fn push(&self) -> &Arc<atoll_push::PushService> {
        &self.state.push
    }

    /// The list service (for seeding demo data).
    pub fn lists(&self) -> &atoll_lists::ListService {
        &self.state.lists
    }

    /// The delivery service (for seeding demo data).
    pub fn delivery(&self) -> &DeliveryService {
        &self.state.delivery
    }

    /// The gateway (for seeding demo data).
    pub fn gateway(&self) -> &atoll_gateway::Gateway {
        &self.state.gateway
    }

    /// The sync service (for seeding demo data).
    pub fn sync(&self) -> &Arc<atoll_sync::SyncService> {
        &self.state.sync
    }

    /// The data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    fn router(&self) -> Router {
        let config = &self.state.config;
        let (api, openapi) = api::router();
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(config.http.max_concurrent_requests.max(1))),
            timeout: Duration::from_secs(config.http.request_timeout_secs.max(1)),
        };
        let console = atoll_console::router(atoll_console::ConsoleState::new(
            self.state.platform.clone(),
            self.state.analytics.clone(),
            self.state.switches.clone(),
            self.state.delivery.clone(),
            self.state.lists.clone(),
            self.state.gateway.clone(),
            self.state.sync.clone(),
            self.state.push.clone(),
        ));
        Router::new()
            .merge(api.layer(axum::extract::DefaultBodyLimit::max(
                config.admin.max_body_bytes,
            )))
            .merge(device_api::router())
            .merge(gateway_call::router())
            .merge(device_connection::router())
            .merge(downloads::router())
            .merge(ops::router(Arc::new(openapi)))
            .with_state(self.state.clone())
            .merge(console)
            .fallback(|| async {
                ApiError::new(ErrorCode::NotFound, "no such route").into_response()
            })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "this route does not take this method",
                )
                .into_response()
            })
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn_with_state(
                limits,
                request_context,
            ))
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish (up to the drain timeout), saves the nonce memory and
    /// closes the stores.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let stop = CancellationToken::new();
        let background = spawn_housekeeping(self.state.clone(), stop.clone());
        let delivery_tasks = self.state.delivery.start_background();
        let limits = listener::ConnectionLimits {
            header_read_timeout: Duration::from_secs(
                self.state.config.http.header_read_timeout_secs.max(1),
            ),
            max_connections: self.state.config.http.max_connections,
        };
        let server = listener::serve(self.listener, router, limits, stop.clone());
        let mut server = tokio::spawn(server);
        tokio::select! {
            outcome = &mut server => {
                outcome.context("server task failed")?;
            }
            () = shutdown => {
                tracing::info!("shutdown requested: draining in-flight requests");
                stop.cancel();
                // Device connections are not HTTP requests: tell them to
                // reconnect elsewhere, and save their cursors.
                self.state.sync.shutdown(Duration::from_secs(5)).await;
                let drain = Duration::from_secs(self.state.config.http.drain_timeout_secs);
                match tokio::time::timeout(drain, &mut server).await {
                    Ok(outcome) => outcome.context("server task failed")?,
                    Err(_) => {
                        tracing::warn!(?drain, "drain timed out; closing remaining connections");
                        server.abort();
                    }
                }
            }
        }
        stop.cancel();
        let _ = background.await;
        for task in delivery_tasks {
            task.abort();
        }
        if let Err(error) = self.state.delivery.flush_stats().await {
            tracing::warn!(%error, "could not write the last release counters");
        }
        let snapshot = self.data_dir.join(NONCE_SNAPSHOT);
        if let Err(error) = self.state.platform.verifier().nonces().save(&snapshot) {
            tracing::warn!(%error, "could not save the nonce snapshot; the next start fences old timestamps");
        }
        if let Err(error) = self.state.analytics.events().close().await {
            tracing::warn!(%error, "could not flush the event store; its log is replayed at the next start");
        }
        self.state.platform.store().close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Opens the event store: its log in `<data_dir>/events/wal`, its segments in
/// `<data_dir>/events/objects` (a local `object_store`; S3 in cluster mode).
async fn open_event_store(config: &Config) -> anyhow::Result<EventStore> {
    let root = config.data_dir.join("events");
    let objects_dir = root.join("objects");
    std::fs::create_dir_all(&objects_dir)
        .with_context(|| format!("cannot create {}", objects_dir.display()))?;
    let objects = object_store::local::LocalFileSystem::new_with_prefix(&objects_dir)
        .context("cannot open the event object store")?;
    let analytics = &config.analytics;
    let mut settings = EventStoreConfig::new(root.join("wal"), Arc::new(objects));
    settings.flush_interval = Duration::from_secs(analytics.flush_interval_secs.max(1));
    settings.flush_rows = analytics.flush_rows.max(1);
    settings.max_unflushed_rows = analytics.max_unflushed_rows.max(1);
    settings.dedup_capacity = analytics.dedup_capacity.max(2);
    settings.queue_capacity = analytics.queue_capacity.max(1);
    settings.query_threads = analytics.query_threads.max(1);
    EventStore::open(settings)
        .await
        .context("cannot open the event store")
}

fn spawn_housekeeping(state: AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let platform = state.platform.clone();
    let analytics = state.analytics.clone();
    let retention_every =
        Duration::from_secs(state.config.analytics.retention_check_interval_secs.max(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        let mut profiles = tokio::time::interval(atoll_platform::PROFILE_SWEEP_PERIOD);
        // The first retention pass waits a minute: it checkpoints the event
        // buffer, which a server just started (or a test) does not need at once.
        let mut retention = tokio::time::interval_at(
            tokio::time::Instant::now() + retention_every.min(Duration::from_secs(60)),
            retention_every,
        );
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = retention.tick() => {
                    match analytics.apply_retention().await {
                        Ok(0) => {}
                        Ok(rows) => tracing::info!(rows, "events past their app's retention deleted"),
                        Err(error) => tracing::warn!(%error, "event retention failed"),
                    }
                }
                _ = profiles.tick() => {
                    platform.forget_stale_profiles();
                }
                _ = tick.tick() => {
                    match platform.purge_expired().await {
                        Ok((sessions, audit)) if sessions + audit > 0 => {
                            tracing::info!(sessions, audit, "expired sessions and audit entries purged");
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "purge failed"),
                    }
                }
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The push service's settings from the configuration (reads the extra CA files).
fn push_config(options: &config::PushOptions) -> anyhow::Result<atoll_push::PushConfig> {
    let mut extra_root_certs_pem = Vec::new();
    for path in &options.vendor_extra_ca_files {
        extra_root_certs_pem.push(
            std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("push.vendor_extra_ca_files: {path}: {error}"))?,
        );
    }
    Ok(atoll_push::PushConfig {
        batch: options.batch.clamp(1, 5_000),
        max_in_flight: options.max_in_flight.max(1),
        default_concurrency: options.vendor_concurrency.max(1),
        default_rate_per_sec: options.vendor_rate_per_sec,
        max_attempts: options.max_attempts.max(1),
        lease: Duration::from_secs(options.lease_secs.max(1)),
        retry_base: Duration::from_millis(options.retry_base_ms.max(1)),
        retention_days: options.retention_days.max(1),
        http: atoll_push_vendors::HttpOptions {
            extra_root_certs_pem,
            timeout: Duration::from_secs(options.vendor_timeout_secs.max(1)),
        },
    })
}
