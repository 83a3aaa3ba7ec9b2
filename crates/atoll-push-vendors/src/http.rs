//! What the three clients share: the HTTP client, `Retry-After`, the cached
//! OAuth access token, JSON merging and the payload-size check.

use crate::{CredentialsError, HttpOptions, SendOutcome};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Builds the reqwest client for one provider. `http2_only` also restricts
/// ALPN to `h2` (reqwest does so for prior-knowledge HTTP/2 over TLS), which
/// APNs requires.
pub fn build_client(
    options: &HttpOptions,
    http2_only: bool,
) -> Result<reqwest::Client, CredentialsError> {
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(600))
        .user_agent(concat!("atoll-push/", env!("CARGO_PKG_VERSION")));
    if http2_only {
        builder = builder
            .http2_prior_knowledge()
            // Keep the long-lived connection Apple wants alive through NATs.
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true);
    }
    for pem in &options.extra_root_certs_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| CredentialsError::Invalid(format!("extra root certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| CredentialsError::Invalid(format!("http client: {e}")))
}

/// Parses `Retry-After`: delta-seconds or an HTTP date (relative to `now_ms`).
pub fn retry_after(headers: &reqwest::header::HeaderMap, now_ms: i64) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(Duration::from_millis(
        at_ms.saturating_sub(now_ms).max(0) as u64
    ))
}

/// A transport failure (connect, TLS, timeout, reset): always worth a retry.
pub fn network_outcome(err: &reqwest::Error) -> SendOutcome {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "network"
    };
    // `{:#}`-style chains are long; the source chain's last element is the
    // informative one (e.g. "invalid peer certificate: UnknownIssuer").
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    SendOutcome::Retry {
        after: None,
        reason: format!("{kind}: {detail}"),
        throttled: false,
    }
}

/// The answer of a vendor send: status, `Retry-After`, body.
pub struct VendorAnswer {
    /// HTTP status.
    pub status: u16,
    /// The vendor's `Retry-After`, if any.
    pub after: Option<Duration>,
    /// The body.
    pub body: bytes::Bytes,
}

/// POSTs `body` as JSON with a bearer token and reads the whole answer; a
/// network failure is already a [`SendOutcome`] (retry).
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: &serde_json::Value,
    now_ms: i64,
) -> Result<VendorAnswer, SendOutcome> {
    let response = client
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .map_err(|e| network_outcome(&e))?;
    let status = response.status().as_u16();
    let after = retry_after(response.headers(), now_ms);
    let body = response.bytes().await.map_err(|e| network_outcome(&e))?;
    Ok(VendorAnswer {
        status,
        after,
        body,
    })
}

/// Exchanges a form at an OAuth2 token endpoint (FCM's JWT bearer grant,
/// HMS's client credentials) for an access token.
pub async fn fetch_access_token(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    now_ms: i64,
) -> Result<AccessToken, SendOutcome> {
    let response = client
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| network_outcome(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| network_outcome(&e))?;
    if !status.is_success() {
        return Err(token_endpoint_failure(status, &headers, &body, now_ms));
    }
    parse_token_response(&body, now_ms)
}

/// Merges `patch` into `target`: objects recursively, `null` removes a key,
/// anything else replaces. How vendor pass-through options are applied.
pub fn deep_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    deep_merge(existing, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The seconds a message may live from `now_ms` until `expires_at_ms`,
/// rounded up, or `None` when it has already expired.
pub fn ttl_secs(expires_at_ms: i64, now_ms: i64) -> Option<u64> {
    let left = expires_at_ms.checked_sub(now_ms)?;
    if left <= 0 {
        return None;
    }
    Some((left as u64).div_ceil(1000))
}

/// The outcome for a message that expired before it could be sent.
pub fn expired() -> SendOutcome {
    SendOutcome::Rejected {
        reason: "expired".into(),
    }
}

/// The outcome for a message over the vendor's limit.
pub fn too_large() -> SendOutcome {
    SendOutcome::Rejected {
        reason: "payload_too_large".into(),
    }
}

/// An OAuth access token and when to stop using it (caller clock, ms).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub value: Arc<str>,
    /// Refresh from this instant on (already includes the safety margin).
    pub refresh_at_ms: i64,
}

/// Caches one OAuth access token, shared by concurrent sends, with a
/// single-flight refresh: when it is stale, one send fetches a new one and the
/// others wait for it instead of stampeding the token endpoint.
#[derive(Debug, Default)]
pub struct TokenCache {
    current: parking_lot::Mutex<Option<AccessToken>>,
    /// A failed fetch, remembered briefly so that the sends queued behind it
    /// do not each hit a failing token endpoint in turn: (until_ms, outcome).
    failure: parking_lot::Mutex<Option<(i64, SendOutcome)>>,
    refresh: tokio::sync::Mutex<()>,
}

/// How long a failed token fetch is answered from memory.
const FAILURE_MEMORY_MS: i64 = 1_000;

impl TokenCache {
    fn fresh(&self, now_ms: i64) -> Option<Arc<str>> {
        self.current
            .lock()
            .as_ref()
            .filter(|t| now_ms < t.refresh_at_ms)
            .map(|t| t.value.clone())
    }

    /// The cached token, or a new one from `fetch` (one fetch at a time).
    pub async fn get<F, Fut>(&self, now_ms: i64, fetch: F) -> Result<Arc<str>, SendOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, SendOutcome>>,
    {
        if let Some(token) = self.fresh(now_ms) {
            return Ok(token);
        }
        let _flight = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed it already.
        if let Some(token) = self.fresh(now_ms) {
            return Ok(token);
        }
        if let Some((until, outcome)) = self.failure.lock().as_ref() {
            if now_ms < *until {
                return Err(outcome.clone());
            }
        }
        match fetch().await {
            Ok(token) => {
                tracing::debug!(
                    refresh_at_ms = token.refresh_at_ms,
                    "push: new access token"
                );
                let value = token.value.clone();
                *self.current.lock() = Some(token);
                *self.failure.lock() = None;
                Ok(value)
            }
            Err(outcome) => {
                tracing::warn!(?outcome, "push: access token fetch failed");
                *self.failure.lock() = Some((now_ms + FAILURE_MEMORY_MS, outcome.clone()));
                Err(outcome)
            }
        }
    }

    /// Drops the cached token if it is still `used` (the vendor said it is
    /// no longer valid); a token another send refreshed meanwhile stays.
    pub fn invalidate(&self, used: &str) {
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|t| &*t.value == used) {
            *current = None;
        }
    }
}

/// Parses an OAuth2 token response (`access_token`, `expires_in`) into a
/// cached token that is refreshed 60 s before the vendor's expiry.
pub fn parse_token_response(body: &[u8], now_ms: i64) -> Result<AccessToken, SendOutcome> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| SendOutcome::Retry {
        after: None,
        reason: format!("auth: unreadable token response: {e}"),
        throttled: false,
    })?;
    // Some endpoints send `expires_in` as a string; default to an hour.
    let expires_in = match parsed.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(3600),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
        _ => 3600,
    };
    let usable_secs = (expires_in - 60).max(0);
    Ok(AccessToken {
        value: parsed.access_token.into(),
        refresh_at_ms: now_ms + usable_secs * 1000,
    })
}

/// Classifies a non-2xx answer of an OAuth token endpoint: server trouble is
/// worth a retry, a refusal of the credentials is not.
pub fn token_endpoint_failure(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> SendOutcome {
    let text = String::from_utf8_lossy(body);
    let detail: String = text.chars().take(200).collect();
    if status.as_u16() == 429 || status.is_server_error() {
        SendOutcome::Retry {
            after: retry_after(headers, now_ms),
            reason: format!("auth: token endpoint answered {status}"),
            throttled: status.as_u16() == 429,
        }
    } else {
        SendOutcome::Rejected {
            reason: format!("auth_failed: {status}: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_and_null_removes() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": 3});
        deep_merge(
            &mut v,
            &json!({"a": {"b": 10, "e": 5}, "d": null, "f": [1]}),
        );
        assert_eq!(v, json!({"a": {"b": 10, "c": 2, "e": 5}, "f": [1]}));
    }

    #[test]
    fn ttl_rounds_up_and_expires() {
        assert_eq!(ttl_secs(10_001, 0), Some(11));
        assert_eq!(ttl_secs(10_000, 0), Some(10));
        assert_eq!(ttl_secs(0, 0), None);
        assert_eq!(ttl_secs(-5, 0), None);
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, 0), Some(Duration::from_secs(7)));
        let now = 1_700_000_000_000i64;
        let at = UNIX_EPOCH + Duration::from_millis(now as u64 + 30_000);
        h.insert("retry-after", httpdate::fmt_http_date(at).parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn token_response_margin() {
        let t = parse_token_response(br#"{"access_token":"x","expires_in":3600}"#, 1000).unwrap();
        assert_eq!(&*t.value, "x");
        assert_eq!(t.refresh_at_ms, 1000 + 3540 * 1000);
        let t = parse_token_response(br#"{"access_token":"x","expires_in":"100"}"#, 0).unwrap();
        assert_eq!(t.refresh_at_ms, 40_000);
        assert!(parse_token_response(b"{}", 0).is_err());
    }

    #[tokio::test]
    async fn token_cache_single_flight() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(0, || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(AccessToken {
                            value: "tok".into(),
                            refresh_at_ms: 1000,
                        })
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(&*t.await.unwrap().unwrap(), "tok");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Stale at 1000: fetched again.
        let t = cache
            .get(1000, || async {
                Ok(AccessToken {
                    value: "tok2".into(),
                    refresh_at_ms: 5000,
                })
            })
            .await
            .unwrap();
        assert_eq!(&*t, "tok2");
        // Invalidating an older token keeps the current one.
        cache.invalidate("tok");
        assert!(cache.fresh(1001).is_some());
        cache.invalidate("tok2");
        assert!(cache.fresh(1001).is_none());
    }
}
