//! The mobile gateway: API groups (backends), APIs keyed by operation type, the
//! device call `POST /gw/v1`, payload-encryption keys and per-API statistics.
//!
//! - An **API group** is one backend: a base URL (which must pass the server's
//!   backend allow-list), a default timeout, headers to add and remove, TLS
//!   verification, a cap on pending requests, a circuit breaker, and a **secret**
//!   with which the gateway signs every forwarded request
//!   ([`crate::gateway_signing`]) so the backend can check it came from Atoll.
//! - An **API** is named by its **operation type** (`com.shop.order.create`,
//!   unique per app) and says where a call goes (group, method, path with `${field}`
//!   templates), how long it may take (API > group > 3000 ms), whether the device
//!   signature and payload encryption are required, its limits, rate limits,
//!   response cache, mock and authorizer. New APIs start **disabled**.
//! - A device calls `POST /gw/v1` with the operation type in the
//!   [`HEADER_OPERATION_TYPE`] header, signed like every device request, except that
//!   the signed path is `/gw/v1/<operation type>` ([`signed_path`]) so the operation
//!   type cannot be changed in flight. The body is a JSON object (an mPaaS-style
//!   one-element array `[{...}]` is accepted too), or, when encrypted, an envelope
//!   (`atoll-envelope`) with `Content-Type:` [`ENVELOPE_CONTENT_TYPE`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The header that names the API of a gateway call.
pub const HEADER_OPERATION_TYPE: &str = "operation-type";
/// The content type of an encrypted request or response body.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/x-atoll-envelope";
/// The numeric mPaaS-compatible result status of every gateway answer (1000 = ok).
pub const HEADER_RESULT_STATUS: &str = "result-status";
/// Whether the answer came from the response cache: `hit`, `miss` or `bypass`.
pub const HEADER_CACHE: &str = "x-atoll-cache";
/// Set on answers produced by an API's mock instead of its backend.
pub const HEADER_MOCK: &str = "x-atoll-mock";
/// The path of the device call.
pub const CALL_PATH: &str = "/gw/v1";

/// The path a gateway call is signed with: `/gw/v1/<operation type>`.
pub fn signed_path(operation_type: &str) -> String {
    format!("{CALL_PATH}/{operation_type}")
}

/// Limits and defaults of the gateway.
pub mod limits {
    /// Backend timeout when neither the API nor its group sets one.
    pub const DEFAULT_TIMEOUT_MS: u32 = 3000;
    /// The longest timeout an API or group may set.
    pub const MAX_TIMEOUT_MS: u32 = 120_000;
    /// Bytes of an operation type.
    pub const MAX_OPERATION_TYPE_BYTES: usize = 128;
    /// Bytes of a group name.
    pub const MAX_GROUP_NAME_BYTES: usize = 64;
    /// Bytes of an API path (template included).
    pub const MAX_PATH_BYTES: usize = 1024;
    /// Bytes of a description.
    pub const MAX_DESCRIPTION_BYTES: usize = 2000;
    /// Bytes of a request or response JSON schema (serialized).
    pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
    /// Default and largest request body of one call.
    pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 1024 * 1024;
    /// Default largest backend response passed back.
    pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 4 * 1024 * 1024;
    /// Hard ceiling of `max_response_bytes`.
    pub const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;
    /// Retries an idempotent API may ask for.
    pub const MAX_RETRIES: u8 = 3;
    /// Headers a group may add, and names it may remove.
    pub const MAX_GROUP_HEADERS: usize = 32;
    /// Request fields or headers a cache key may select.
    pub const MAX_CACHE_KEY_PARTS: usize = 16;
    /// Longest cache TTL.
    pub const MAX_CACHE_TTL_SECS: u32 = 86_400;
    /// Headers an authorizer may be given.
    pub const MAX_AUTHORIZER_HEADERS: usize = 8;
    /// Longest mock delay.
    pub const MAX_MOCK_DELAY_MS: u32 = 60_000;
    /// Groups per app.
    pub const MAX_GROUPS: usize = 200;
    /// APIs per app.
    pub const MAX_APIS: usize = 5000;
    /// Default cap of pending backend requests per group.
    pub const DEFAULT_MAX_PENDING: u32 = 1024;
    /// Default consecutive failures that open a group's circuit breaker.
    pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
    /// Default seconds a breaker stays open before it lets one probe through.
    pub const DEFAULT_BREAKER_OPEN_SECS: u32 = 10;
    /// Default overlap of a rotated payload-encryption key (7 days).
    pub const DEFAULT_KEY_OVERLAP_SECS: u32 = 7 * 86_400;
}

/// The HTTP methods an API can forward with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET: request fields not used by the path go in the query string.
    Get,
    /// POST: the request body is forwarded as JSON.
    #[default]
    Post,
    /// PUT: the request body is forwarded as JSON.
    Put,
    /// PATCH: the request body is forwarded as JSON.
    Patch,
    /// DELETE: request fields not used by the path go in the query string.
    Delete,
    /// HEAD: like GET, without a response body.
    Head,
}

impl HttpMethod {
    /// Every method.
    pub const ALL: &'static [HttpMethod] = &[
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
        HttpMethod::Head,
    ];

    /// The method as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
        }
    }

    /// Parses a method name, in any case.
    pub fn parse(text: &str) -> Option<HttpMethod> {
        HttpMethod::ALL
            .iter()
            .copied()
            .find(|method| method.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether a repeat has the same effect (RFC 9110 §9.2.2), so a failed attempt
    /// may be retried.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, HttpMethod::Post | HttpMethod::Patch)
    }

    /// Whether the request fields travel in the body (else in the query string).
    pub fn has_body(self) -> bool {
        matches!(self, HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch)
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_true() -> bool {
    true
}

/// A circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// Consecutive failures (connection errors, timeouts, 5xx) that open it.
    pub failure_threshold: u32,
    /// Seconds it stays open before one probe request is let through.
    pub open_secs: u32,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            failure_threshold: limits::DEFAULT_BREAKER_FAILURES,
            open_secs: limits::DEFAULT_BREAKER_OPEN_SECS,
        }
    }
}

/// What an admin sends to create or replace an API group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiGroupSpec {
    /// Name, unique per app: a letter or `_`, then `[A-Za-z0-9_-]`.
    pub name: String,
    /// `http://` or `https://` base URL; API paths are appended to it.
    pub base_url: String,
    /// Backend timeout of the group's APIs that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Headers added to every forwarded request (after removal).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_add: BTreeMap<String, String>,
    /// Client headers removed before forwarding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_remove: Vec<String>,
    /// Whether the backend's TLS certificate is verified (`https` only).
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Requests to this backend that may be pending at once; more get `503`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<u32>,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: BreakerSpec,
}

/// An API group as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiGroup {
    /// Id.
    pub id: String,
    /// The settings.
    #[serde(flatten)]
    pub spec: ApiGroupSpec,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// The answer to creating a group, or rotating its secret: the secret is shown
/// only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiGroupSecret {
    /// The group.
    pub group: ApiGroup,
    /// The secret the backend verifies forwarded requests with (hex, 32 bytes).
    pub secret: String,
}

/// Per-API rate limits (token buckets). Each limit that is set must pass; the
/// app's [`GatewaySettings`] add a default per-API limit and an app-wide total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Calls per second to this API from all devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps: Option<u32>,
    /// Calls per second to this API from one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_device_qps: Option<u32>,
}

/// A response cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// How long an answer is reused.
    pub ttl_secs: u32,
    /// What the key is made of: request fields (`$.id`, `$.filter.kind`) and headers
    /// (`$.header.accept-language`); the app and operation type are always in it.
    /// Empty: one answer for every caller.
    #[serde(default)]
    pub key: Vec<String>,
}

/// A mock: the gateway answers itself, without calling the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    /// Whether the mock answers instead of the backend.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The HTTP status of the answer.
    #[serde(default = "default_mock_status")]
    pub status: u16,
    /// A fixed JSON body; when absent, a body is generated from the API's response
    /// schema (an `example` in the schema pins a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Delay before answering.
    #[serde(default)]
    pub delay_ms: u32,
}

fn default_mock_status() -> u16 {
    200
}

/// An authorizer: another API of the app that is called first with some of the
/// request's headers; its answer `{"principal": "..."}` is passed to the backend
/// in the `x-atoll-principal` header and cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthorizerSpec {
    /// Operation type of the authorizer API (same app).
    pub operation_type: String,
    /// Request headers given to it (and that key its cache).
    pub headers: Vec<String>,
    /// How long a principal is reused; 0 = ask every time.
    #[serde(default)]
    pub cache_ttl_secs: u32,
}

/// What an admin sends to create or replace an API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Unique per app; dot-separated lowercase segments (`com.shop.order.create`),
    /// at least three.
    pub operation_type: String,
    /// Name of the API group (backend).
    pub group: String,
    /// HTTP method used towards the backend.
    #[serde(default)]
    pub method: HttpMethod,
    /// Path appended to the group's base URL; `${field}` is filled from the request.
    pub path: String,
    /// Backend timeout; falls back to the group's, then 3000 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Extra attempts after a connection error or timeout (idempotent methods only).
    #[serde(default)]
    pub retries: u8,
    /// Whether the device signature is required (default yes).
    #[serde(default = "default_true")]
    pub require_signature: bool,
    /// Whether the body must be an encrypted envelope.
    #[serde(default)]
    pub require_encryption: bool,
    /// Largest request body (default and ceiling 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u32>,
    /// Largest backend response passed back (default 4 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u32>,
    /// Only enabled APIs can be called; new APIs start disabled.
    #[serde(default)]
    pub enabled: bool,
    /// What it does, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON schema of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_schema: Option<Value>,
    /// JSON schema of the response body (also drives the generated mock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// Rate limits.
    #[serde(default)]
    pub rate_limit: RateLimitSpec,
    /// Response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Mock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockSpec>,
    /// Authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<AuthorizerSpec>,
}

/// An API as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Api {
    /// Id.
    pub id: String,
    /// The settings.
    #[serde(flatten)]
    pub spec: ApiSpec,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// App-wide gateway settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Per-API calls per second for APIs that set no `qps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_api_qps: Option<u32>,
    /// Calls per second to all APIs of the app together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_total_qps: Option<u32>,
    /// Per-device calls per second for APIs that set no `per_device_qps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_per_device_qps: Option<u32>,
}

/// One payload-encryption public key of a workspace, as apps are configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayKey {
    /// Hex of the 8-byte key id.
    pub key_id: String,
    /// `x25519-aes256gcm`, `p256-aes256gcm` or `sm2-sm4gcm`.
    pub suite: String,
    /// Base64 (standard, padded) of the public key bytes.
    pub public_key: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When a previous key stops opening envelopes (Unix milliseconds); `None` for
    /// current keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Rotates a workspace's payload-encryption keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateGatewayKeys {
    /// Only this suite; all suites when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// How long the previous key still opens envelopes (default 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_secs: Option<u32>,
}

/// Counters and latency of one API since the server started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiStats {
    /// Operation type.
    pub operation_type: String,
    /// Calls that reached the API (after the signature check).
    pub requests: u64,
    /// Answers by status class.
    pub status_2xx: u64,
    /// 4xx answers (including the gateway's own refusals).
    pub status_4xx: u64,
    /// 5xx answers (including timeouts and an open breaker).
    pub status_5xx: u64,
    /// Calls refused by a rate limit.
    pub throttled: u64,
    /// Answers served from the cache.
    pub cache_hits: u64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

/// A console test call: sent through the gateway as a trusted caller (no device
/// signature, no encryption), so the team can try an API before an app exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestCall {
    /// Operation type.
    pub operation_type: String,
    /// The request body.
    #[serde(default)]
    pub body: Value,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Device id to call as (for path templates, limits and the backend headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// What a test call did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestCallResult {
    /// The request sent to the backend (method and URL), if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
    /// The headers sent to the backend.
    #[serde(default)]
    pub backend_headers: BTreeMap<String, String>,
    /// The status the device would see.
    pub status: u16,
    /// The answer's headers.
    pub headers: BTreeMap<String, String>,
    /// The answer's body, as text.
    pub body: String,
    /// Total time in milliseconds.
    pub total_ms: f64,
    /// Time waiting for the backend in milliseconds (0 when none was called).
    pub backend_ms: f64,
}
