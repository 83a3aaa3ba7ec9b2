//! Atoll's mobile gateway, like mPaaS's Mobile Gateway Service: one front door
//! for every call an app makes to its business backends.
//!
//! - **Registry** ([`registry`]): API groups (a backend each: base URL behind
//!   the server's allow-list, timeout, headers, breaker, a signing secret) and
//!   APIs keyed by operation type, app-wide limits, OpenAPI import and export
//!   ([`openapi`]). Every change is validated ([`validate`]), audited, and bumps
//!   the app's revision.
//! - **Keys** ([`keys`]): each workspace's payload-encryption key pairs, one
//!   current per suite, rotated with an overlap.
//! - **Runtime** ([`runtime`]): `POST /gw/v1` after the HTTP layer verified the
//!   device signature: the app's compiled [`snapshot`] (rebuilt when its
//!   revision moves), rate limits, envelope decryption, mock, response cache,
//!   authorizer, then [`forward`]ing to the backend over pooled connections with
//!   a signed request, a timeout, retries, a pending cap and a circuit breaker.
//!   Per-API counters and latency live in [`stats`].
//!
//! The per-request building blocks (token buckets, cache, breaker, templates,
//! mock generation, the backend allow-list) are the `atoll-gateway-policy` crate.
#![warn(missing_docs)]

mod backend_pool;
pub mod forward;
pub mod keys;
pub mod openapi;
pub mod registry;
pub mod runtime;
pub mod snapshot;
pub mod stats;
pub mod validate;

use atoll_core::cache::StampedCache;
use atoll_core::clock::Clock;
use atoll_gateway_policy::backends::BackendPolicy;
use atoll_platform::PlatformService;
use std::sync::Arc;
use std::time::Duration;

pub use openapi::ImportReport;
pub use runtime::{CallAnswer, CallFailure, CallRequest, Caller};

/// What can go wrong in the gateway.
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
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with existing objects.
    #[error("{0}")]
    Conflict(String),
    /// A backend URL or address is not allowed.
    #[error("{0}")]
    BackendNotAllowed(String),
    /// No API has the operation type.
    #[error("no API has operation type '{0}'")]
    UnknownOperation(String),
    /// The API is disabled.
    #[error("the API '{0}' is disabled")]
    ApiDisabled(String),
    /// The API requires a signature and the request had none.
    #[error("{0}")]
    MissingSignature(String),
    /// The API requires an encrypted body.
    #[error("the API '{0}' requires an encrypted body ({ct})", ct = atoll_protocol::gateway::ENVELOPE_CONTENT_TYPE)]
    EncryptionRequired(String),
    /// The envelope did not open.
    #[error("{0}")]
    Envelope(#[from] atoll_envelope::EnvelopeError),
    /// The body is over the API's limit.
    #[error("{0}")]
    TooLarge(String),
    /// A rate limit refused the call.
    #[error("{detail}")]
    Throttled {
        /// Which limit.
        detail: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The authorizer refused the caller.
    #[error("{0}")]
    AuthorizerDenied(String),
    /// The authorizer could not be asked.
    #[error("{0}")]
    AuthorizerFailed(String),
    /// The backend timed out.
    #[error("{0}")]
    BackendTimeout(String),
    /// The backend could not be reached.
    #[error("{0}")]
    BackendUnavailable(String),
    /// The backend failed.
    #[error("{0}")]
    BackendError(String),
    /// The group's breaker is open, or too many requests are pending.
    #[error("{detail}")]
    CircuitOpen {
        /// Why.
        detail: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// Too many requests to the backend are pending.
    #[error("{0}")]
    Saturated(String),
    /// The mock cannot answer.
    #[error("{0}")]
    MockInvalid(String),
    /// A bug or corrupt stored data.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// How long the caller should wait before retrying, for the errors that say.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } | Error::CircuitOpen { retry_after, .. } => {
                Some(*retry_after)
            }
            Error::Saturated(_) => Some(Duration::from_secs(1)),
            Error::Platform(error) => error.retry_after_secs().map(Duration::from_secs),
            _ => None,
        }
    }

    /// The mPaaS-compatible result status (`Result-Status` header) of the error.
    pub fn result_status(&self) -> u32 {
        match self {
            Error::UnknownOperation(_) | Error::ApiDisabled(_) => 3000,
            Error::Invalid(_) | Error::TooLarge(_) => 3002,
            Error::EncryptionRequired(_) | Error::Envelope(_) => 3003,
            Error::Throttled { .. } => 1002,
            Error::AuthorizerDenied(_) => 1005,
            Error::BackendTimeout(_) => 4001,
            Error::MissingSignature(_) => 7001,
            Error::Platform(_) => 7000,
            Error::MockInvalid(_) => 1001,
            _ => 5000,
        }
    }
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
            Error::NotFound(_) => C::NotFound,
            Error::Conflict(_) => C::Conflict,
            Error::BackendNotAllowed(_) => C::BackendNotAllowed,
            Error::UnknownOperation(_) => C::UnknownOperation,
            Error::ApiDisabled(_) => C::ApiDisabled,
            Error::MissingSignature(_) => C::MissingSignature,
            Error::EncryptionRequired(_) => C::EncryptionRequired,
            Error::Envelope(error) => envelope_code(error),
            Error::TooLarge(_) => C::PayloadTooLarge,
            Error::Throttled { .. } => C::RateLimited,
            Error::AuthorizerDenied(_) => C::AuthorizerDenied,
            Error::AuthorizerFailed(_) => C::AuthorizerFailed,
            Error::BackendTimeout(_) => C::BackendTimeout,
            Error::BackendUnavailable(_) => C::BackendUnavailable,
            Error::BackendError(_) => C::BackendError,
            Error::CircuitOpen { .. } => C::CircuitOpen,
            Error::Saturated(_) => C::Unavailable,
            Error::MockInvalid(_) => C::MockInvalid,
        }
    }

    /// Seconds a client should wait before retrying (rounded up), for the
    /// errors that say.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after()
            .map(|wait| wait.as_millis().div_ceil(1000).max(1) as u64)
    }

    /// Whether the detail is for the log only (storage and bugs).
    pub fn is_internal(&self) -> bool {
        match self {
            Error::Platform(error) => error.is_internal(),
            Error::Store(_) | Error::Internal(_) => true,
            _ => false,
        }
    }
}

fn envelope_code(error: &atoll_envelope::EnvelopeError) -> atoll_protocol::ErrorCode {
    use atoll_envelope::EnvelopeError as E;
    use atoll_protocol::ErrorCode as C;
    match error {
        E::UnknownKey => C::EnvelopeUnknownKey,
        E::KeyExpired => C::EnvelopeKeyExpired,
        E::UnsupportedSuite => C::EnvelopeUnsupportedSuite,
        E::DecryptFailed => C::EnvelopeDecryptFailed,
        E::TooLarge => C::PayloadTooLarge,
        E::Malformed(_) | E::InvalidKey(_) => C::EnvelopeMalformed,
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Backends allowed besides public addresses (hosts, `host:port`, `*.domain`,
    /// IPs, CIDRs): the SSRF guard.
    pub allowed_backends: Vec<String>,
    /// Bytes of cached responses, all APIs together.
    pub cache_max_bytes: usize,
    /// Keys (devices, APIs) the rate limiter remembers at most.
    pub limiter_max_keys: usize,
    /// Whether every call is written to the access log (`atoll::gateway::access`).
    pub access_log: bool,
    /// Idle keep-alive connections kept per backend host.
    pub pool_max_idle_per_host: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            allowed_backends: Vec::new(),
            cache_max_bytes: 64 << 20,
            limiter_max_keys: 200_000,
            access_log: true,
            pool_max_idle_per_host: 256,
        }
    }
}

/// How long a snapshot is used before the app's revision is checked again.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(2);
/// Apps whose snapshot is kept at most.
const MAX_SNAPSHOTS: usize = 10_000;

/// The gateway: registry operations for admins and the runtime for devices.
pub struct Gateway {
    platform: PlatformService,
    clock: Arc<dyn Clock>,
    backends: Arc<BackendPolicy>,
    snapshots: StampedCache<i64, snapshot::Snapshot>,
    keys: keys::KeyCache,
    runtime: runtime::Runtime,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over the platform; fails when the backend allow-list does not parse.
    pub fn new(
        platform: PlatformService,
        clock: Arc<dyn Clock>,
        config: GatewayConfig,
    ) -> Result<Gateway> {
        let backends = Arc::new(
            BackendPolicy::new(&config.allowed_backends)
                .map_err(|error| Error::Invalid(format!("gateway.allowed_backends: {error}")))?,
        );
        let runtime = runtime::Runtime::new(&config, backends.clone(), clock.clone())?;
        Ok(Gateway {
            platform,
            clock,
            backends,
            snapshots: StampedCache::new(SNAPSHOT_TTL, MAX_SNAPSHOTS),
            keys: keys::KeyCache::new(),
            runtime,
        })
    }

    /// The platform this gateway runs on.
    pub fn platform(&self) -> &PlatformService {
        &self.platform
    }
}
