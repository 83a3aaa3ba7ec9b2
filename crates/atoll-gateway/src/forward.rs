//! Sending a call to its backend: the URL from the group and the path template,
//! the headers (client headers minus the gateway's own and the group's removals,
//! plus the group's additions, the identity headers and the signature), pooled
//! keep-alive connections (plain HTTP: the gateway's own pool in
//! `backend_pool.rs`; HTTPS: reqwest), the timeout, retries of idempotent
//! methods, the group's pending cap and circuit breaker, and a bounded read of
//! the answer.
//!
//! The SSRF guard runs twice: [`BackendPolicy::check_url`] on the URL (a literal
//! address is checked there), and on every address a host name resolves to,
//! right before connecting (the pool's `resolve_allowed`, also reqwest's DNS
//! resolver), so a name cannot be pointed at an internal address later.
//! Redirects are never followed, and environment proxies are ignored.

use crate::backend_pool::{error_chain, resolve_allowed, BackendPool, PoolError};
use crate::snapshot::CompiledApi;
use crate::{Error, Result};
use atoll_gateway_policy::backends::BackendPolicy;
use atoll_protocol::gateway_signing::{self as signing, ForwardedParts};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who is calling, as the backend is told (and as the signature covers).
#[derive(Debug, Clone, Default)]
pub struct Identity<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The operation type.
    pub operation_type: &'a str,
    /// The app id.
    pub app_id: &'a str,
    /// The device, if known.
    pub device_id: Option<&'a str>,
    /// The bound user, if any.
    pub user_id: Option<&'a str>,
    /// The authorizer's principal, if any.
    pub principal: Option<&'a str>,
}

/// What the backend answered.
#[derive(Debug)]
pub struct BackendResponse {
    /// Status.
    pub status: u16,
    /// Headers (hop-by-hop ones removed).
    pub headers: HeaderMap,
    /// Body, at most the API's response limit.
    pub body: Bytes,
    /// Time spent on the backend, all attempts.
    pub elapsed: Duration,
    /// Method and URL of the last attempt.
    pub request_line: String,
    /// Headers of the last attempt.
    pub sent_headers: HeaderMap,
}

/// Headers that describe one connection, never forwarded either way (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Client headers the gateway never forwards: framing it rewrites, and the
/// device-signature headers that mean nothing to the backend.
fn forwardable(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(HOP_BY_HOP.contains(&name)
        || name.starts_with("x-atoll-")
        || matches!(
            name,
            "host"
                | "content-length"
                | "content-encoding"
                | "content-type"
                | "accept-encoding"
                | "operation-type"
                | "expect"
        ))
}

/// A DNS resolver that refuses addresses the backend policy does not allow.
struct GuardedResolver {
    policy: Arc<BackendPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            match resolve_allowed(&policy, name.as_str(), 0).await? {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                Err(refusal) => {
                    Err(Box::new(Refused(refusal)) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend address not allowed: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The HTTP clients to backends: the keep-alive pool for plain-HTTP backends,
/// and for HTTPS ones a client that verifies TLS certificates and one for groups
/// that turned verification off.
pub struct Forwarder {
    pool: BackendPool,
    verifying: reqwest::Client,
    unverified: reqwest::Client,
    policy: Arc<BackendPolicy>,
    clock: Arc<dyn atoll_core::clock::Clock>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

fn client(
    policy: &Arc<BackendPolicy>,
    pool_max_idle_per_host: usize,
    verify_tls: bool,
) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(!verify_tls)
        .build()
        .map_err(|error| Error::Internal(format!("backend HTTP client: {error}")))
}

/// What one attempt gave.
enum Attempt {
    Answered(BackendResponse),
    /// Worth another attempt for an idempotent method.
    Retryable(Error),
    Final(Error),
}

impl Forwarder {
    /// Clients that obey the backend policy.
    pub fn new(
        policy: Arc<BackendPolicy>,
        pool_max_idle_per_host: usize,
        clock: Arc<dyn atoll_core::clock::Clock>,
    ) -> Result<Forwarder> {
        Ok(Forwarder {
            pool: BackendPool::new(policy.clone(), pool_max_idle_per_host),
            verifying: client(&policy, pool_max_idle_per_host, true)?,
            unverified: client(&policy, pool_max_idle_per_host, false)?,
            policy,
            clock,
        })
    }

    /// Sends the call: `request` is the call's JSON object (`raw`, when given,
    /// its bytes as received, forwarded as they are), `client_headers` the
    /// headers to pass on (already chosen by the caller: all forwardable client
    /// headers, or only an authorizer's).
    pub async fn send(
        &self,
        api: &CompiledApi,
        request: &serde_json::Map<String, serde_json::Value>,
        raw: Option<Bytes>,
        client_headers: &HeaderMap,
        identity: &Identity<'_>,
    ) -> Result<BackendResponse> {
        let path = api
            .template
            .render(request)
            .map_err(|error| Error::Invalid(format!("request: {error}")))?;
        let method = api.spec.method;
        let (query, body) = if method.has_body() {
            let body = match raw {
                Some(raw) => raw,
                None => Bytes::from(
                    serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?,
                ),
            };
            (String::new(), body)
        } else {
            let fields = api.template.fields();
            (
                atoll_gateway_policy::template::query_string(request, &fields),
                Bytes::new(),
            )
        };
        let group = &api.group;
        // The group's base URL was parsed once; only the path and query are
        // set here (encoded as the URL standard says, as the backend receives them).
        let mut url = group.base.clone();
        url.set_path(&format!(
            "{}{path}",
            group.base.path().trim_end_matches('/')
        ));
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        self.policy
            .check_url(&url)
            .map_err(|refusal| Error::BackendNotAllowed(refusal.to_string()))?;
        // The path as the backend receives it: what the signature covers.
        let signed_path = url.path();
        let signed_query = url.query().unwrap_or("");

        let mut headers = HeaderMap::with_capacity(client_headers.len() + 12);
        for (name, value) in client_headers {
            if forwardable(name) && !group.headers_remove.contains(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &group.headers_add {
            headers.insert(name.clone(), value.clone());
        }
        if method.has_body() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let attempts = 1 + if method.is_idempotent() {
            u32::from(api.spec.retries)
        } else {
            0
        };
        let started = Instant::now();
        let mut last_error = None;
        for _ in 0..attempts {
            let timestamp = self.clock.now_secs();
            let mut attempt_headers = headers.clone();
            add_identity(&mut attempt_headers, identity, timestamp);
            let signature = signing::sign(
                &group.secret,
                &ForwardedParts {
                    method: method.as_str(),
                    path: signed_path,
                    query: signed_query,
                    timestamp,
                    request_id: identity.request_id,
                    operation_type: identity.operation_type,
                    app_id: identity.app_id,
                    device_id: identity.device_id.unwrap_or(""),
                    user_id: identity.user_id.unwrap_or(""),
                    principal: identity.principal.unwrap_or(""),
                    body: &body,
                },
            );
            attempt_headers.insert(
                HeaderName::from_static(signing::HEADER_SIGNATURE),
                HeaderValue::from_str(&signature).expect("hex is a header value"),
            );
            match self
                .attempt(api, &url, attempt_headers, body.clone(), started)
                .await
            {
                Attempt::Answered(response) => return Ok(response),
                Attempt::Final(error) => return Err(error),
                Attempt::Retryable(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Internal("no attempt was made".into())))
    }

    async fn attempt(
        &self,
        api: &CompiledApi,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
        started: Instant,
    ) -> Attempt {
        let group = &api.group;
        let now = Instant::now();
        let admission = match group.state.breaker.acquire(now) {
            Ok(admission) => admission,
            Err(open) => {
                return Attempt::Final(Error::CircuitOpen {
                    detail: format!(
                        "the backend of group '{}' failed repeatedly; calls are refused for now",
                        group.spec.name
                    ),
                    retry_after: open.retry_after,
                })
            }
        };
        let Ok(_pending) = group.state.pending.try_acquire() else {
            return Attempt::Final(Error::Saturated(format!(
                "{} requests to group '{}' are already pending",
                group.state.max_pending, group.spec.name
            )));
        };
        let sent_headers = headers.clone();
        let exchange = async {
            let (status, mut headers, body) = if url.scheme() == "http" {
                self.exchange_pooled(api, url, headers, body).await?
            } else {
                self.exchange_tls(api, url, headers, body).await?
            };
            for name in HOP_BY_HOP {
                headers.remove(*name);
            }
            headers.remove(http::header::CONTENT_LENGTH);
            Ok::<_, ExchangeError>((status, headers, body))
        };
        let outcome = tokio::time::timeout(api.timeout, exchange).await;
        let request_line = format!("{} {url}", api.spec.method);
        match outcome {
            Err(_) => {
                admission.record(false, Instant::now());
                Attempt::Retryable(Error::BackendTimeout(format!(
                    "the backend did not answer within {} ms",
                    api.timeout.as_millis()
                )))
            }
            Ok(Err(ExchangeError::TooLarge)) => {
                admission.record(true, Instant::now());
                Attempt::Final(Error::BackendError(format!(
                    "the backend's answer is over {} bytes",
                    api.max_response_bytes
                )))
            }
            Ok(Err(ExchangeError::Refused(detail))) => {
                admission.record(false, Instant::now());
                Attempt::Final(Error::BackendNotAllowed(format!(
                    "{}: {detail}",
                    group.spec.name
                )))
            }
            Ok(Err(ExchangeError::Unreachable(detail))) => {
                admission.record(false, Instant::now());
                Attempt::Retryable(Error::BackendUnavailable(format!(
                    "the backend of group '{}' could not be reached: {detail}",
                    group.spec.name
                )))
            }
            Ok(Err(ExchangeError::Invalid(detail))) => {
                admission.record(true, Instant::now());
                Attempt::Final(Error::Invalid(format!("request: {detail}")))
            }
            Ok(Ok((status, headers, body))) => {
                admission.record(status < 500, Instant::now());
                Attempt::Answered(BackendResponse {
                    status,
                    headers,
                    body,
                    elapsed: started.elapsed(),
                    request_line,
                    sent_headers,
                })
            }
        }
    }
}

fn add_identity(headers: &mut HeaderMap, identity: &Identity<'_>, timestamp: i64) {
    // Raw bytes (UTF-8 ids are legal header bytes): the backend verifies the
    // signature over exactly these bytes.
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put(signing::HEADER_TIMESTAMP, &timestamp.to_string());
    put(signing::HEADER_REQUEST_ID, identity.request_id);
    put(signing::HEADER_OPERATION_TYPE, identity.operation_type);
    put(signing::HEADER_APP_ID, identity.app_id);
    if let Some(device) = identity.device_id {
        put(signing::HEADER_DEVICE_ID, device);
    }
    if let Some(user) = identity.user_id {
        put(signing::HEADER_USER_ID, user);
    }
    if let Some(principal) = identity.principal {
        put(signing::HEADER_PRINCIPAL, principal);
    }
}

/// Why an exchange gave no answer.
enum ExchangeError {
    /// The SSRF guard refused the backend's addresses.
    Refused(String),
    /// Resolving, connecting, sending or reading failed.
    Unreachable(String),
    /// The request could not be built.
    Invalid(String),
    /// The answer is over the API's limit.
    TooLarge,
}

impl From<PoolError> for ExchangeError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Refused(detail) => ExchangeError::Refused(detail),
            PoolError::Io(detail) => ExchangeError::Unreachable(detail),
        }
    }
}

impl From<reqwest::Error> for ExchangeError {
    fn from(error: reqwest::Error) -> Self {
        if is_refused_address(&error) {
            ExchangeError::Refused(error_chain(&error))
        } else {
            ExchangeError::Unreachable(error_chain(&error))
        }
    }
}

type Exchanged = std::result::Result<(u16, HeaderMap, Bytes), ExchangeError>;

impl Forwarder {
    /// A plain-HTTP backend: a pooled keep-alive connection.
    async fn exchange_pooled(
        &self,
        api: &CompiledApi,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Exchanged {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut request = http::Request::new(http_body_util::Full::new(body));
        *request.method_mut() =
            api.spec.method.as_str().parse().map_err(|_| {
                ExchangeError::Invalid(format!("method {}", api.spec.method.as_str()))
            })?;
        *request.uri_mut() = target
            .parse()
            .map_err(|error| ExchangeError::Invalid(format!("path {target}: {error}")))?;
        *request.headers_mut() = headers;
        request.headers_mut().insert(
            http::header::HOST,
            HeaderValue::from_str(&authority)
                .map_err(|_| ExchangeError::Invalid(format!("host {authority}")))?,
        );
        let (response, lease) = self.pool.send(host, port, request).await?;
        let (head, mut incoming) = response.into_parts();
        let limit = api.max_response_bytes;
        if declared_length(&head.headers).is_some_and(|length| length > limit) {
            return Err(ExchangeError::TooLarge);
        }
        let mut body = BytesMut::new();
        while let Some(frame) = http_body_util::BodyExt::frame(&mut incoming).await {
            let frame = frame.map_err(|error| ExchangeError::Unreachable(error_chain(&error)))?;
            if let Ok(chunk) = frame.into_data() {
                if body.len() + chunk.len() > limit {
                    return Err(ExchangeError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
        }
        lease.release();
        Ok((head.status.as_u16(), head.headers, body.freeze()))
    }

    /// An HTTPS backend: reqwest with rustls and the group's certificate setting.
    async fn exchange_tls(
        &self,
        api: &CompiledApi,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Exchanged {
        let client = if api.group.spec.tls_verify {
            &self.verifying
        } else {
            &self.unverified
        };
        let method = reqwest::Method::from_bytes(api.spec.method.as_str().as_bytes())
            .map_err(|error| ExchangeError::Invalid(error.to_string()))?;
        let request = client
            .request(method, url.clone())
            .headers(headers)
            .body(body)
            .build()
            .map_err(|error| ExchangeError::Invalid(error.to_string()))?;
        let response = client.execute(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_limited(response, api.max_response_bytes).await?;
        Ok((status, headers, body))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Bytes, ExchangeError> {
    if response
        .content_length()
        .is_some_and(|length| length as usize > limit)
    {
        return Err(ExchangeError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(ExchangeError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn is_refused_address(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<Refused>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}
