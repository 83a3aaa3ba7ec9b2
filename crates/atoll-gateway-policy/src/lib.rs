//! The per-request policies of Atoll's mobile gateway (`POST /gw/v1`), as pure
//! building blocks: no IO, no async, no web framework. Time is always passed in
//! (`now: Instant`) so every policy can be tested with a fixed clock, and the
//! gateway in `atoll-server` decides how to wire them together.
//!
//! - [`template`]: API path templates (`/orders/${id}`) filled from the request
//!   body, and the query string of GET/DELETE/HEAD calls. Values are encoded so a
//!   device can never leave its path segment.
//! - [`limiter`]: keyed token buckets (per API, per device, per app) with a bound on
//!   memory, so a flood of new keys cannot grow the server without limit.
//! - [`breaker`]: a circuit breaker per backend (API group), so a failing backend is
//!   given time to recover instead of being hit by every device.
//! - [`response_cache`]: cache keys from request fields and headers, and a
//!   byte-bounded LRU of backend answers with per-API invalidation.
//! - [`mock`]: a deterministic JSON value from a JSON schema, for APIs whose backend
//!   does not exist yet.
//! - [`backends`]: the SSRF guard: backends must be public addresses unless the
//!   server's allow-list names them, checked on the URL and again on every
//!   resolved address.
//! - [`latency`]: a lock-free log-linear latency histogram for the per-API p50,
//!   p95 and p99 shown in the console.

pub mod backends;
pub mod breaker;
pub mod latency;
pub mod limiter;
pub mod mock;
pub mod response_cache;
pub mod template;
