//! What every handler can reach.

use crate::config::Config;
use crate::http::rate_limit::AppRateLimiter;
use atoll_analytics::AnalyticsService;
use atoll_delivery::DeliveryService;
use atoll_gateway::Gateway;
use atoll_lists::ListService;
use atoll_platform::PlatformService;
use atoll_store::BlobStore;
use atoll_switches::SwitchService;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Tenancy, users, devices.
    pub platform: PlatformService,
    /// Per-app device request limits.
    pub limiter: AppRateLimiter,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Content-addressed blobs.
    pub blobs: BlobStore,
    /// Event ingestion and reports.
    pub analytics: Arc<AnalyticsService>,
    /// Remote config.
    pub switches: Arc<SwitchService>,
    /// Uploaded id lists.
    pub lists: Arc<ListService>,
    /// Packages, releases, update checks.
    pub delivery: Arc<DeliveryService>,
    /// The mobile gateway.
    pub gateway: Arc<Gateway>,
    /// Real-time data sync and the device connections.
    pub sync: Arc<atoll_sync::SyncService>,
    /// Push notifications.
    pub push: Arc<atoll_push::PushService>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
