//! Retry policy: exponential backoff with full jitter, and `Retry-After` obeyed.

use crate::Error;
use rand::Rng;
use std::time::Duration;

/// How the SDK retries failed requests.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// First backoff before jitter.
    pub base_delay: Duration,
    /// Longest wait between attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait before attempt `attempt + 1` after `error`, or `None` when
    /// the error is final (bad input, bad credentials) or attempts are used up.
    pub fn delay_after(&self, attempt: u32, error: &Error) -> Option<Duration> {
        if attempt + 1 >= self.max_attempts {
            return None;
        }
        let retryable = match error {
            Error::Transport(error) => !error.is_builder(),
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        };
        if !retryable {
            return None;
        }
        if let Error::Api {
            retry_after_secs: Some(secs),
            ..
        } = error
        {
            return Some(Duration::from_secs(*secs).min(self.max_delay));
        }
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        let jittered = rand::rng().random_range(0..=ceiling.as_millis() as u64);
        Some(Duration::from_millis(jittered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_protocol::{ErrorCode, Problem};

    fn api(status: u16, retry_after_secs: Option<u64>) -> Error {
        Error::Api {
            status,
            problem: Box::new(Problem::new(ErrorCode::RateLimited, "x")),
            retry_after_secs,
        }
    }

    #[test]
    fn honours_retry_after_and_stops_on_final_errors() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_after(0, &api(429, Some(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            policy.delay_after(0, &api(429, Some(3600))),
            Some(policy.max_delay)
        );
        assert!(policy.delay_after(0, &api(400, None)).is_none());
        assert!(policy.delay_after(0, &api(401, None)).is_none());
        assert!(policy.delay_after(3, &api(503, None)).is_none());
        let backoff = policy.delay_after(2, &api(503, None)).unwrap();
        assert!(backoff <= Duration::from_millis(800));
    }
}
