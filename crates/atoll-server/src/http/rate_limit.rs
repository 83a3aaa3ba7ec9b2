//! Per-app token buckets for device requests.

use super::error::ApiError;
use atoll_protocol::ErrorCode;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// One token bucket per app, refilled at the configured rate. Keys are app ids of
/// verified requests only, so the table is bounded by the number of apps.
#[derive(Debug, Clone)]
pub struct AppRateLimiter {
    limiter: Arc<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
}

impl AppRateLimiter {
    /// A limiter of `per_sec` sustained requests with `burst` extra.
    pub fn new(per_sec: u32, burst: u32) -> AppRateLimiter {
        let rate = NonZeroU32::new(per_sec.max(1)).expect("nonzero");
        let burst = NonZeroU32::new(burst.max(per_sec).max(1)).expect("nonzero");
        AppRateLimiter {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
        }
    }

    /// Takes one token for `app_id`, or answers 429 with the wait.
    pub fn check(&self, app_id: &str) -> Result<(), ApiError> {
        match self.limiter.check_key(&app_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                metrics::counter!("atoll_device_rate_limited_total").increment(1);
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "this app is over its device request rate",
                )
                .retry_after(wait.as_secs_f64().ceil() as u64))
            }
        }
    }
}
