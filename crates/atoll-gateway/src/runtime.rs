//! One gateway call, after the HTTP layer has read the body and checked the
//! device signature: the API from the app's snapshot, then in order the enabled
//! and signature requirements, rate limits (app total, API, device), the body
//! limit, envelope decryption, JSON parsing, mock, response cache, authorizer,
//! forwarding, and sealing the answer for an encrypted request. Every call is
//! counted in its API's stats and, when configured, written to the access log.

use crate::forward::{BackendResponse, Forwarder, Identity};
use crate::snapshot::{self, CompiledApi, Snapshot};
use crate::stats::{Outcome, Stats};
use crate::{Error, Gateway, GatewayConfig, Result};
use atoll_core::access::Requirement;
use atoll_envelope::{encode_context, ResponseKey};
use atoll_gateway_policy::backends::BackendPolicy;
use atoll_gateway_policy::breaker::CircuitBreaker;
use atoll_gateway_policy::limiter::{Decision, RateLimiter};
use atoll_gateway_policy::mock;
use atoll_gateway_policy::response_cache::{may_store, CachedResponse, ResponseCache};
use atoll_platform::Principal;
use atoll_protocol::gateway::{
    limits, ApiGroupSpec, ApiStats, TestCall, TestCallResult, ENVELOPE_CONTENT_TYPE, HEADER_CACHE,
    HEADER_MOCK, HEADER_RESULT_STATUS,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of authorizer principals cached, all APIs together.
const PRINCIPAL_CACHE_BYTES: usize = 8 << 20;
/// Longest principal accepted from an authorizer.
const MAX_PRINCIPAL_BYTES: usize = 1024;

/// The state of a group that outlives snapshot rebuilds.
#[derive(Debug)]
pub struct GroupState {
    settings: (u32, u32, u32),
    /// Opens after consecutive failures.
    pub breaker: CircuitBreaker,
    /// Pending backend requests.
    pub pending: tokio::sync::Semaphore,
    /// The cap of `pending`.
    pub max_pending: u32,
}

/// Long-lived runtime state shared by all apps.
pub(crate) struct Runtime {
    groups: Mutex<HashMap<String, Arc<GroupState>>>,
    limiter: RateLimiter<String>,
    cache: ResponseCache,
    principals: ResponseCache,
    pub(crate) stats: Stats,
    forwarder: Forwarder,
    access_log: bool,
}

impl Runtime {
    pub(crate) fn new(
        config: &GatewayConfig,
        backends: Arc<BackendPolicy>,
        clock: Arc<dyn atoll_core::clock::Clock>,
    ) -> Result<Runtime> {
        Ok(Runtime {
            groups: Mutex::new(HashMap::new()),
            limiter: RateLimiter::new(config.limiter_max_keys),
            cache: ResponseCache::new(config.cache_max_bytes),
            principals: ResponseCache::new(PRINCIPAL_CACHE_BYTES),
            stats: Stats::default(),
            forwarder: Forwarder::new(backends, config.pool_max_idle_per_host, clock)?,
            access_log: config.access_log,
        })
    }

    /// The group's long-lived state; made again only when its breaker or pending
    /// settings change.
    pub(crate) fn group_state(&self, id: &str, spec: &ApiGroupSpec) -> Arc<GroupState> {
        let max_pending = spec.max_pending.unwrap_or(limits::DEFAULT_MAX_PENDING);
        let settings = (
            spec.breaker.failure_threshold,
            spec.breaker.open_secs,
            max_pending,
        );
        let mut groups = self.groups.lock();
        if let Some(state) = groups.get(id).filter(|state| state.settings == settings) {
            return state.clone();
        }
        let state = Arc::new(GroupState {
            settings,
            breaker: CircuitBreaker::new(
                spec.breaker.failure_threshold,
                Duration::from_secs(u64::from(spec.breaker.open_secs)),
            ),
            pending: tokio::sync::Semaphore::new(max_pending as usize),
            max_pending,
        });
        groups.insert(id.to_owned(), state.clone());
        state
    }

    /// Drops an API's cached answers after its settings changed.
    pub(crate) fn forget_api(&self, app_id: &str, operation_type: &str) {
        self.cache.invalidate(app_id, operation_type);
    }
}

/// The app and device behind a call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Internal app id.
    pub app_id: String,
    /// Public app key.
    pub app_key: String,
    /// The app's workspace.
    pub workspace_id: String,
    /// The device (verified when `signed`).
    pub device_id: Option<String>,
    /// Whether the device signature was verified.
    pub signed: bool,
    /// The request's timestamp header as sent (the envelope context includes it).
    pub timestamp: Option<String>,
    /// A console test call: may call disabled APIs, needs no signature or
    /// encryption.
    pub trusted: bool,
}

/// A call as the HTTP layer hands it over.
#[derive(Debug)]
pub struct CallRequest<'a> {
    /// Who calls.
    pub caller: Caller,
    /// The operation type header.
    pub operation_type: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body, decompressed.
    pub body: Bytes,
    /// The request id.
    pub request_id: &'a str,
}

/// The answer to a call.
#[derive(Debug)]
pub struct CallAnswer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// What was sent to the backend, for test calls.
    pub backend: Option<BackendTrace>,
}

/// What a test call sent to the backend.
#[derive(Debug, Clone)]
pub struct BackendTrace {
    /// Method and URL.
    pub request_line: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Time on the backend.
    pub elapsed: Duration,
}

/// A refused or failed call, with the headers its answer carries (rate-limit
/// headers, `Result-Status`).
#[derive(Debug)]
pub struct CallFailure {
    /// Why.
    pub error: Error,
    /// Headers for the problem answer.
    pub headers: HeaderMap,
}

/// A header's value as text, if it is text.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn set(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Everything one call accumulates on its way through.
struct Flow<'a> {
    request: &'a CallRequest<'a>,
    headers: HeaderMap,
    throttled: bool,
    cache_hit: bool,
    backend: Option<BackendTrace>,
}

impl Gateway {
    async fn snapshot(&self, app_id: &str, app_key: &str) -> Result<Arc<Snapshot>> {
        let store = self.platform.store();
        self.snapshots
            .get(
                app_id,
                || crate::registry::revision(store, app_id),
                |_| snapshot::load(store, app_id, app_key, &self.runtime),
            )
            .await
    }

    /// Runs one call.
    pub async fn call(&self, request: CallRequest<'_>) -> Result<CallAnswer, CallFailure> {
        let started = Instant::now();
        let snapshot = match self
            .snapshot(&request.caller.app_id, &request.caller.app_key)
            .await
        {
            Ok(snapshot) => snapshot,
            Err(error) => return Err(self.failure(error, HeaderMap::new())),
        };
        let Some(api) = snapshot.apis.get(request.operation_type).cloned() else {
            return Err(self.failure(
                Error::UnknownOperation(request.operation_type.to_owned()),
                HeaderMap::new(),
            ));
        };
        let mut flow = Flow {
            request: &request,
            headers: HeaderMap::new(),
            throttled: false,
            cache_hit: false,
            backend: None,
        };
        let result = self.call_api(&snapshot, &api, &mut flow).await;
        let elapsed = started.elapsed();
        let status = match &result {
            Ok(answer) => answer.status,
            Err(error) => error.code().status(),
        };
        api.counters.record(
            Outcome {
                status,
                throttled: flow.throttled,
                cache_hit: flow.cache_hit,
            },
            elapsed,
        );
        if self.runtime.access_log {
            let caller = &request.caller;
            tracing::info!(
                target: "atoll::gateway::access",
                request_id = request.request_id,
                app = %caller.app_key,
                operation = request.operation_type,
                device = caller.device_id.as_deref().unwrap_or(""),
                status,
                code = result.as_ref().err().map(|error| error.code().as_str()).unwrap_or(""),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                backend_ms = flow.backend.as_ref().map(|trace| trace.elapsed.as_secs_f64() * 1000.0).unwrap_or(0.0),
                cache = flow.cache_hit,
            );
        }
        match result {
            Ok(mut answer) => {
                for (name, value) in flow.headers.iter() {
                    answer.headers.insert(name.clone(), value.clone());
                }
                set(&mut answer.headers, HEADER_RESULT_STATUS, 1000);
                answer.backend = flow.backend;
                Ok(answer)
            }
            Err(error) => Err(self.failure(error, flow.headers)),
        }
    }

    fn failure(&self, error: Error, mut headers: HeaderMap) -> CallFailure {
        set(&mut headers, HEADER_RESULT_STATUS, error.result_status());
        CallFailure { error, headers }
    }

    async fn call_api(
        &self,
        snapshot: &Snapshot,
        api: &Arc<CompiledApi>,
        flow: &mut Flow<'_>,
    ) -> Result<CallAnswer> {
        let request = flow.request;
        let caller = &request.caller;
        let operation_type = request.operation_type;
        if !api.spec.enabled && !caller.trusted {
            return Err(Error::ApiDisabled(operation_type.to_owned()));
        }
        if api.spec.require_signature && !caller.signed && !caller.trusted {
            return Err(Error::MissingSignature(format!(
                "the API '{operation_type}' requires a signed request"
            )));
        }
        self.rate_limit(snapshot, api, flow)?;
        if request.body.len() > api.max_request_bytes {
            return Err(Error::TooLarge(format!(
                "the body is over the API's limit of {} bytes",
                api.max_request_bytes
            )));
        }
        let (plaintext, response_key) = self.open_body(api, request).await?;
        let body = CallBody::read(plaintext)?;

        let answer = if let Some(mock_spec) = api.spec.mock.as_ref().filter(|mock| mock.enabled) {
            if mock_spec.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(mock_spec.delay_ms))).await;
            }
            let value = match &mock_spec.body {
                Some(value) => value.clone(),
                None => {
                    let schema = api.spec.response_schema.as_ref().ok_or_else(|| {
                        Error::MockInvalid(
                            "the mock has no body and the API no response schema".into(),
                        )
                    })?;
                    mock::generate(schema, rand::random())
                        .map_err(|error| Error::MockInvalid(error.to_string()))?
                }
            };
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            set(&mut headers, HEADER_MOCK, "1");
            CallAnswer {
                status: mock_spec.status,
                headers,
                body: Bytes::from(value.to_string()),
                backend: None,
            }
        } else {
            self.answer_from_cache_or_backend(snapshot, api, &body, flow)
                .await?
        };
        seal_answer(answer, response_key.as_ref())
    }

    /// Checks the app total, the API's and the device's buckets; the tightest
    /// decision's numbers go in the `RateLimit-*` headers.
    fn rate_limit(
        &self,
        snapshot: &Snapshot,
        api: &CompiledApi,
        flow: &mut Flow<'_>,
    ) -> Result<()> {
        let caller = &flow.request.caller;
        let operation_type = flow.request.operation_type;
        let settings = &snapshot.settings;
        let now = Instant::now();
        let mut tightest: Option<(Decision, &'static str)> = None;
        // Keys are built only for limits that are set (most APIs have none).
        let mut check =
            |key: &dyn Fn() -> String, rate: Option<u32>, what: &'static str| -> Result<()> {
                let Some(rate) = rate else { return Ok(()) };
                let decision = self.runtime.limiter.check(&key(), rate, rate, now);
                let refused = !decision.allowed;
                if tightest
                    .as_ref()
                    .is_none_or(|(best, _)| refused || decision.remaining < best.remaining)
                {
                    tightest = Some((decision, what));
                }
                if refused {
                    return Err(Error::Throttled {
                        detail: format!("the {what} limit of {rate} calls per second is reached"),
                        retry_after: tightest
                            .as_ref()
                            .map(|(d, _)| d.retry_after)
                            .unwrap_or_default(),
                    });
                }
                Ok(())
            };
        let app_id = &caller.app_id;
        let outcome = check(&|| format!("a\u{0}{app_id}"), settings.app_total_qps, "app")
            .and_then(|_| {
                check(
                    &|| format!("o\u{0}{app_id}\u{0}{operation_type}"),
                    api.spec.rate_limit.qps.or(settings.default_api_qps),
                    "API",
                )
            })
            .and_then(|_| match &caller.device_id {
                Some(device) => check(
                    &|| format!("d\u{0}{app_id}\u{0}{operation_type}\u{0}{device}"),
                    api.spec
                        .rate_limit
                        .per_device_qps
                        .or(settings.default_per_device_qps),
                    "device",
                ),
                None => Ok(()),
            });
        if let Some((decision, _)) = tightest {
            set(&mut flow.headers, "ratelimit-limit", decision.limit);
            set(&mut flow.headers, "ratelimit-remaining", decision.remaining);
            set(
                &mut flow.headers,
                "ratelimit-reset",
                decision.reset.as_secs_f64().ceil() as u64,
            );
        }
        if outcome.is_err() {
            flow.throttled = true;
        }
        outcome
    }

    /// The body in plain text, and the key that seals the answer when the request
    /// was an envelope.
    async fn open_body(
        &self,
        api: &CompiledApi,
        request: &CallRequest<'_>,
    ) -> Result<(Bytes, Option<ResponseKey>)> {
        let caller = &request.caller;
        let is_envelope = request
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(ENVELOPE_CONTENT_TYPE))
            });
        if !is_envelope {
            if api.spec.require_encryption && !caller.trusted {
                return Err(Error::EncryptionRequired(request.operation_type.to_owned()));
            }
            return Ok((request.body.clone(), None));
        }
        let timestamp = caller.timestamp.as_deref().unwrap_or("");
        let context = encode_context(&[
            caller.app_key.as_bytes(),
            request.operation_type.as_bytes(),
            timestamp.as_bytes(),
        ]);
        let keys = self.workspace_keys(&caller.workspace_id).await?;
        let (plaintext, key) = keys
            .ring
            .open(&request.body, &context, self.clock.now_secs())?;
        Ok((Bytes::from(plaintext), Some(key)))
    }

    async fn answer_from_cache_or_backend(
        &self,
        snapshot: &Snapshot,
        api: &Arc<CompiledApi>,
        body: &CallBody,
        flow: &mut Flow<'_>,
    ) -> Result<CallAnswer> {
        let request = flow.request;
        let caller = &request.caller;
        let header = |name: &str| header_text(request.headers, name);
        let cache_key = api
            .cache_key
            .as_ref()
            .map(|spec| spec.key(&caller.app_id, request.operation_type, &body.value, header));
        if let Some(key) = &cache_key {
            if let Some(cached) = self.runtime.cache.get(key, Instant::now()) {
                flow.cache_hit = true;
                let mut answer = answer_from_cached(&cached);
                set(&mut answer.headers, HEADER_CACHE, "hit");
                return Ok(answer);
            }
        }
        let principal = self.principal(snapshot, api, flow).await?;
        let user = self.bound_user(caller).await?;
        let identity = Identity {
            request_id: request.request_id,
            operation_type: request.operation_type,
            app_id: &caller.app_id,
            device_id: caller.device_id.as_deref(),
            user_id: user.as_deref(),
            principal: principal.as_deref(),
        };
        let response = self
            .runtime
            .forwarder
            .send(
                api,
                body.object(),
                body.raw.clone(),
                request.headers,
                &identity,
            )
            .await?;
        flow.backend = Some(BackendTrace {
            request_line: response.request_line.clone(),
            headers: response.sent_headers.clone(),
            elapsed: response.elapsed,
        });
        let mut answer = answer_from_backend(response)?;
        if let (Some(key), Some(cache)) = (cache_key, &api.spec.cache) {
            let storable = (200..300).contains(&answer.status)
                && may_store(|name| header_text(&answer.headers, name));
            if storable {
                self.runtime.cache.insert(
                    key,
                    CachedResponse {
                        status: answer.status,
                        content_type: answer
                            .headers
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned),
                        headers: Vec::new(),
                        body: answer.body.clone(),
                    },
                    Duration::from_secs(u64::from(cache.ttl_secs)),
                    Instant::now(),
                );
            }
            set(
                &mut answer.headers,
                HEADER_CACHE,
                if storable { "miss" } else { "bypass" },
            );
        }
        Ok(answer)
    }

    /// Asks the API's authorizer for the caller's principal, or reuses a cached one.
    async fn principal(
        &self,
        snapshot: &Snapshot,
        api: &CompiledApi,
        flow: &mut Flow<'_>,
    ) -> Result<Option<String>> {
        let (Some(authorizer), Some(key_spec)) = (&api.spec.authorizer, &api.authorizer_key) else {
            return Ok(None);
        };
        let request = flow.request;
        let caller = &request.caller;
        let header = |name: &str| header_text(request.headers, name);
        let key = key_spec.key(
            &caller.app_id,
            &authorizer.operation_type,
            &Value::Null,
            header,
        );
        if authorizer.cache_ttl_secs > 0 {
            if let Some(cached) = self.runtime.principals.get(&key, Instant::now()) {
                return Ok(Some(String::from_utf8_lossy(&cached.body).into_owned()));
            }
        }
        let auth_api = snapshot
            .apis
            .get(&authorizer.operation_type)
            .ok_or_else(|| {
                Error::AuthorizerFailed(format!(
                    "the authorizer '{}' is not an API of this app",
                    authorizer.operation_type
                ))
            })?;
        let mut headers = HeaderMap::new();
        for name in &authorizer.headers {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                for value in request.headers.get_all(&name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        let identity = Identity {
            request_id: request.request_id,
            operation_type: &authorizer.operation_type,
            app_id: &caller.app_id,
            device_id: caller.device_id.as_deref(),
            user_id: None,
            principal: None,
        };
        let response = match self
            .runtime
            .forwarder
            .send(auth_api, &Map::new(), None, &headers, &identity)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return Err(Error::AuthorizerFailed(format!(
                    "the authorizer '{}' failed: {error}",
                    authorizer.operation_type
                )))
            }
        };
        match response.status {
            200..=299 => {}
            401 | 403 => {
                return Err(Error::AuthorizerDenied(format!(
                    "the authorizer '{}' refused the caller",
                    authorizer.operation_type
                )))
            }
            status => {
                return Err(Error::AuthorizerFailed(format!(
                    "the authorizer '{}' answered {status}",
                    authorizer.operation_type
                )))
            }
        }
        let principal = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|value| value.get("principal").cloned())
            .and_then(|principal| match principal {
                Value::String(text) => Some(text),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .filter(|text| {
                !text.is_empty()
                    && text.len() <= MAX_PRINCIPAL_BYTES
                    && HeaderValue::from_str(text).is_ok()
            })
            .ok_or_else(|| {
                Error::AuthorizerFailed(format!(
                    "the authorizer '{}' answered without a principal (expected {{\"principal\": \"...\"}})",
                    authorizer.operation_type
                ))
            })?;
        if authorizer.cache_ttl_secs > 0 {
            self.runtime.principals.insert(
                key,
                CachedResponse {
                    status: 200,
                    content_type: None,
                    headers: Vec::new(),
                    body: Bytes::from(principal.clone()),
                },
                Duration::from_secs(u64::from(authorizer.cache_ttl_secs)),
                Instant::now(),
            );
        }
        Ok(Some(principal))
    }

    /// The user the calling device is bound to (the platform caches profiles).
    async fn bound_user(&self, caller: &Caller) -> Result<Option<String>> {
        let Some(device_id) = caller.device_id.as_deref().filter(|_| caller.signed) else {
            return Ok(None);
        };
        let device = atoll_platform::DeviceCaller {
            app_id: caller.app_id.clone(),
            app_key: caller.app_key.clone(),
            workspace_id: caller.workspace_id.clone(),
            device_id: device_id.to_owned(),
        };
        Ok(self
            .platform
            .device_profile(&device)
            .await?
            .and_then(|profile| profile.user_id.clone()))
    }

    /// Per-API counters of the app's APIs (zeros for APIs not called yet).
    pub async fn stats(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<ApiStats>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let snapshot = self.snapshot(&access.app_id, app_key).await?;
        let mut stats: Vec<ApiStats> = snapshot
            .apis
            .iter()
            .map(|(operation_type, api)| api.counters.snapshot(operation_type))
            .collect();
        stats.sort_by(|a, b| a.operation_type.cmp(&b.operation_type));
        Ok(stats)
    }

    /// A console test call: through the whole runtime as a trusted caller.
    pub async fn test_call(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        test: TestCall,
    ) -> Result<TestCallResult> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut headers = HeaderMap::new();
        for (name, value) in &test.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Invalid(format!("headers: '{name}' is not a header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                Error::Invalid(format!("headers: the value of '{name}' is not valid"))
            })?;
            headers.insert(name, value);
        }
        let body = match &test.body {
            Value::Null => Bytes::new(),
            value => Bytes::from(value.to_string()),
        };
        let request_id = format!("test-{}", uuid::Uuid::now_v7());
        let started = Instant::now();
        let outcome = self
            .call(CallRequest {
                caller: Caller {
                    app_id: access.app_id.clone(),
                    app_key: app_key.to_owned(),
                    workspace_id: access.ctx.workspace_id.clone(),
                    device_id: test.device_id.clone(),
                    signed: false,
                    timestamp: None,
                    trusted: true,
                },
                operation_type: &test.operation_type,
                headers: &headers,
                body,
                request_id: &request_id,
            })
            .await;
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        let text_headers = |headers: &HeaderMap| -> BTreeMap<String, String> {
            headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect()
        };
        Ok(match outcome {
            Ok(answer) => TestCallResult {
                backend_request: answer
                    .backend
                    .as_ref()
                    .map(|trace| trace.request_line.clone()),
                backend_headers: answer
                    .backend
                    .as_ref()
                    .map(|trace| text_headers(&trace.headers))
                    .unwrap_or_default(),
                backend_ms: answer
                    .backend
                    .as_ref()
                    .map(|trace| trace.elapsed.as_secs_f64() * 1000.0)
                    .unwrap_or(0.0),
                status: answer.status,
                headers: text_headers(&answer.headers),
                body: String::from_utf8_lossy(&answer.body).into_owned(),
                total_ms,
            },
            Err(failure) => {
                let problem = atoll_protocol::Problem::new(
                    failure.error.code(),
                    if failure.error.is_internal() {
                        "internal error; see the server log".to_owned()
                    } else {
                        failure.error.to_string()
                    },
                );
                TestCallResult {
                    backend_request: None,
                    backend_headers: BTreeMap::new(),
                    backend_ms: 0.0,
                    status: problem.status,
                    headers: text_headers(&failure.headers),
                    body: serde_json::to_string_pretty(&problem).unwrap_or_default(),
                    total_ms,
                }
            }
        })
    }
}

/// What the runtime makes of an untrusted body for an API with path `template`:
/// the backend path and query (for the fuzz target).
#[doc(hidden)]
pub fn read_call(body: &[u8], template: &str) -> Result<String> {
    let request = parse_object(body)?;
    let template = atoll_gateway_policy::template::PathTemplate::parse(template)
        .map_err(|error| Error::Invalid(error.to_string()))?;
    let path = template
        .render(&request)
        .map_err(|error| Error::Invalid(error.to_string()))?;
    let query = atoll_gateway_policy::template::query_string(&request, &template.fields());
    Ok(format!("{path}?{query}"))
}

/// A call's body: the parsed object, and the bytes as received when they are
/// that object as is, so a POST forwards them without serializing them again.
struct CallBody {
    /// Always a `Value::Object`.
    value: Value,
    /// The body as received, when it is a plain JSON object.
    raw: Option<Bytes>,
}

impl CallBody {
    fn read(plaintext: Bytes) -> Result<CallBody> {
        let object = parse_object(&plaintext)?;
        let plain = plaintext
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
            .is_some_and(|first| *first == b'{');
        Ok(CallBody {
            value: Value::Object(object),
            raw: plain.then_some(plaintext),
        })
    }

    fn object(&self) -> &Map<String, Value> {
        self.value
            .as_object()
            .expect("a call body is always an object")
    }
}

/// The request body as a JSON object: `{}` when empty, and the one object of an
/// mPaaS-style `[{...}]`.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| Error::Invalid(format!("the body is not JSON: {error}")))?;
    match value {
        Value::Object(object) => Ok(object),
        Value::Array(mut items) if items.len() == 1 && items[0].is_object() => match items.pop() {
            Some(Value::Object(object)) => Ok(object),
            _ => unreachable!("checked to be one object"),
        },
        _ => Err(Error::Invalid(
            "the body must be a JSON object (or an array of one object)".into(),
        )),
    }
}

/// The device's answer from a backend's: 5xx becomes `backend_error` (a
/// backend's internals are not the device's business); anything else passes
/// through with its status, type and headers.
fn answer_from_backend(response: BackendResponse) -> Result<CallAnswer> {
    if response.status >= 500 {
        return Err(Error::BackendError(format!(
            "the backend answered {}",
            response.status
        )));
    }
    let mut headers = response.headers;
    // Set by the gateway itself, never by a backend.
    for name in [HEADER_RESULT_STATUS, HEADER_CACHE, HEADER_MOCK] {
        headers.remove(name);
    }
    headers.remove(http::header::SET_COOKIE);
    Ok(CallAnswer {
        status: response.status,
        headers,
        body: response.body,
        backend: None,
    })
}

fn answer_from_cached(cached: &CachedResponse) -> CallAnswer {
    let mut headers = HeaderMap::new();
    if let Some(value) = cached
        .content_type
        .as_deref()
        .and_then(|value| HeaderValue::from_str(value).ok())
    {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    CallAnswer {
        status: cached.status,
        headers,
        body: cached.body.clone(),
        backend: None,
    }
}

/// Seals the answer under the request's response key (when it was an envelope).
fn seal_answer(mut answer: CallAnswer, key: Option<&ResponseKey>) -> Result<CallAnswer> {
    let Some(key) = key else { return Ok(answer) };
    answer.body = Bytes::from(key.seal_response(&answer.body)?);
    answer.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(ENVELOPE_CONTENT_TYPE),
    );
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_objects_or_one_object_arrays() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b"  \n").unwrap().is_empty());
        assert_eq!(parse_object(br#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(parse_object(br#"[{"a":2}]"#).unwrap()["a"], 2);
        for bad in [&b"[]"[..], b"[{},{}]", b"3", b"\"x\"", b"{", b"[1]"] {
            assert!(parse_object(bad).is_err());
        }
    }
}
