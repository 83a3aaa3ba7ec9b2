//! Per-API counters and latency since the server started: for the console's
//! per-API dashboard (percentiles from a lock-free histogram) and, through the
//! `metrics` facade, for Prometheus. Handles are made once per API, so a call
//! costs a few atomic increments, not a label lookup.

use atoll_gateway_policy::latency::LatencyHistogram;
use atoll_protocol::gateway::ApiStats;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// APIs tracked at most (all apps); beyond that new APIs share no counters
/// and are only in Prometheus.
const MAX_TRACKED_APIS: usize = 50_000;

/// How a call ended, for the counters.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The status the device got.
    pub status: u16,
    /// Refused by a rate limit.
    pub throttled: bool,
    /// Served from the cache.
    pub cache_hit: bool,
}

/// One API's counters.
#[derive(Debug)]
pub struct ApiCounters {
    requests: AtomicU64,
    status_2xx: AtomicU64,
    status_4xx: AtomicU64,
    status_5xx: AtomicU64,
    throttled: AtomicU64,
    cache_hits: AtomicU64,
    latency: LatencyHistogram,
    prometheus: [metrics::Counter; 3],
    duration: metrics::Histogram,
}

impl ApiCounters {
    fn new(app_key: &str, operation_type: &str) -> ApiCounters {
        let labels = |class: &'static str| {
            metrics::counter!(
                "atoll_gateway_requests_total",
                "app" => app_key.to_owned(),
                "operation" => operation_type.to_owned(),
                "class" => class
            )
        };
        ApiCounters {
            requests: AtomicU64::new(0),
            status_2xx: AtomicU64::new(0),
            status_4xx: AtomicU64::new(0),
            status_5xx: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            latency: LatencyHistogram::new(),
            prometheus: [labels("2xx"), labels("4xx"), labels("5xx")],
            duration: metrics::histogram!(
                "atoll_gateway_request_duration_seconds",
                "app" => app_key.to_owned(),
                "operation" => operation_type.to_owned()
            ),
        }
    }

    /// Counts one call.
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = match outcome.status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        [&self.status_2xx, &self.status_4xx, &self.status_5xx][class]
            .fetch_add(1, Ordering::Relaxed);
        self.prometheus[class].increment(1);
        if outcome.throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.cache_hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(elapsed);
        self.duration.record(elapsed.as_secs_f64());
    }

    /// The counters as the API shows them.
    pub fn snapshot(&self, operation_type: &str) -> ApiStats {
        let ms = |q: f64| self.latency.quantile(q).as_secs_f64() * 1000.0;
        ApiStats {
            operation_type: operation_type.to_owned(),
            requests: self.requests.load(Ordering::Relaxed),
            status_2xx: self.status_2xx.load(Ordering::Relaxed),
            status_4xx: self.status_4xx.load(Ordering::Relaxed),
            status_5xx: self.status_5xx.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// Counters of every API seen, by app id and operation type.
#[derive(Debug, Default)]
pub struct Stats {
    apis: Mutex<HashMap<(String, String), Arc<ApiCounters>>>,
}

impl Stats {
    /// The counters of an API, made on first use.
    pub fn api(&self, app_id: &str, app_key: &str, operation_type: &str) -> Arc<ApiCounters> {
        let mut apis = self.apis.lock();
        // Called when a snapshot is compiled, not per call: compiled APIs hold
        // their counters, so the allocation of the key does not matter.
        if let Some(found) = apis.get(&(app_id.to_owned(), operation_type.to_owned())) {
            return found.clone();
        }
        let counters = Arc::new(ApiCounters::new(app_key, operation_type));
        if apis.len() < MAX_TRACKED_APIS {
            apis.insert(
                (app_id.to_owned(), operation_type.to_owned()),
                counters.clone(),
            );
        }
        counters
    }
}
