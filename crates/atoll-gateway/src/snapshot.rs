//! An app's gateway compiled for calls: APIs by operation type with their
//! parsed templates, cache keys and resolved timeouts, groups with their parsed
//! URLs and headers. Built from the store when the app's revision moves; the
//! per-group state that must outlive a rebuild (breaker, pending cap) is kept by
//! the runtime and shared in.

use crate::registry::{api_from_row, group_from_row, settings_of};
use crate::runtime::{GroupState, Runtime};
use crate::stats::ApiCounters;
use crate::{Error, Result};
use atoll_gateway_policy::response_cache::CacheKeySpec;
use atoll_gateway_policy::template::PathTemplate;
use atoll_protocol::gateway::{limits, ApiGroupSpec, ApiSpec, GatewaySettings};
use http::{HeaderName, HeaderValue};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A group ready for calls.
#[derive(Debug)]
pub struct CompiledGroup {
    /// Id.
    pub id: String,
    /// Settings.
    pub spec: ApiGroupSpec,
    /// The base URL, parsed once per snapshot rather than per call.
    pub base: url::Url,
    /// The secret forwarded requests are signed with.
    pub secret: String,
    /// Headers added to every forwarded request.
    pub headers_add: Vec<(HeaderName, HeaderValue)>,
    /// Client headers removed (lower case).
    pub headers_remove: Vec<HeaderName>,
    /// Breaker and pending cap, shared across rebuilds.
    pub state: Arc<GroupState>,
}

/// An API ready for calls.
#[derive(Debug)]
pub struct CompiledApi {
    /// Id.
    pub id: String,
    /// Settings.
    pub spec: ApiSpec,
    /// The parsed path.
    pub template: PathTemplate,
    /// Its group.
    pub group: Arc<CompiledGroup>,
    /// API > group > default.
    pub timeout: Duration,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Largest response body.
    pub max_response_bytes: usize,
    /// The cache key, when the API caches.
    pub cache_key: Option<CacheKeySpec>,
    /// The authorizer's headers, for its principal cache key.
    pub authorizer_key: Option<CacheKeySpec>,
    /// Its counters (kept by the runtime across rebuilds).
    pub counters: Arc<ApiCounters>,
}

/// An app's compiled gateway.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// APIs by operation type.
    pub apis: HashMap<String, Arc<CompiledApi>>,
    /// App-wide limits.
    pub settings: GatewaySettings,
}

/// Loads and compiles an app's gateway. The runtime gives the state that lives
/// longer than a snapshot: group breakers and API counters.
pub(crate) async fn load(
    store: &atoll_store::MetaStore,
    app_id: &str,
    app_key: &str,
    runtime: &Runtime,
) -> Result<Snapshot> {
    let group_state = |id: &str, spec: &ApiGroupSpec| runtime.group_state(id, spec);
    let group_rows = sqlx::query(
        "SELECT id, spec, created_at, updated_at, secret FROM gateway_groups WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_all(store.pool())
    .await?;
    let mut groups = HashMap::new();
    for row in &group_rows {
        let group = group_from_row(row)?;
        let secret: String = row.try_get("secret")?;
        let compiled = compile_group(group.id, group.spec, secret, &group_state)?;
        groups.insert(compiled.spec.name.clone(), Arc::new(compiled));
    }
    let api_rows =
        sqlx::query("SELECT id, spec, created_at, updated_at FROM gateway_apis WHERE app_id = $1")
            .bind(app_id)
            .fetch_all(store.pool())
            .await?;
    let mut apis = HashMap::new();
    for row in &api_rows {
        let api = api_from_row(row)?;
        let Some(group) = groups.get(&api.spec.group) else {
            tracing::error!(operation_type = %api.spec.operation_type, group = %api.spec.group, "API names a missing group; skipped");
            continue;
        };
        let counters = runtime.stats.api(app_id, app_key, &api.spec.operation_type);
        let compiled = compile_api(api.id, api.spec, group.clone(), counters)?;
        apis.insert(compiled.spec.operation_type.clone(), Arc::new(compiled));
    }
    Ok(Snapshot {
        apis,
        settings: settings_of(store, app_id).await?,
    })
}

fn compile_group(
    id: String,
    spec: ApiGroupSpec,
    secret: String,
    group_state: &impl Fn(&str, &ApiGroupSpec) -> Arc<GroupState>,
) -> Result<CompiledGroup> {
    let bad = |what: &str| Error::Internal(format!("stored group '{}': {what}", spec.name));
    let mut headers_add = Vec::new();
    for (name, value) in &spec.headers_add {
        headers_add.push((
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("header name"))?,
            HeaderValue::from_str(value).map_err(|_| bad("header value"))?,
        ));
    }
    let headers_remove = spec
        .headers_remove
        .iter()
        .map(|name| HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("header name")))
        .collect::<Result<Vec<_>>>()?;
    let base = url::Url::parse(&spec.base_url).map_err(|_| bad("base URL"))?;
    let state = group_state(&id, &spec);
    Ok(CompiledGroup {
        base,
        id,
        secret,
        headers_add,
        headers_remove,
        state,
        spec,
    })
}

fn compile_api(
    id: String,
    spec: ApiSpec,
    group: Arc<CompiledGroup>,
    counters: Arc<ApiCounters>,
) -> Result<CompiledApi> {
    let bad =
        |what: String| Error::Internal(format!("stored API '{}': {what}", spec.operation_type));
    let template = PathTemplate::parse(&spec.path).map_err(|error| bad(error.to_string()))?;
    let timeout_ms = spec
        .timeout_ms
        .or(group.spec.timeout_ms)
        .unwrap_or(limits::DEFAULT_TIMEOUT_MS);
    let cache_key = spec
        .cache
        .as_ref()
        .map(|cache| CacheKeySpec::parse(&cache.key))
        .transpose()
        .map_err(|error| bad(error.to_string()))?;
    let authorizer_key = spec
        .authorizer
        .as_ref()
        .map(|authorizer| {
            let parts: Vec<String> = authorizer
                .headers
                .iter()
                .map(|name| format!("$.header.{name}"))
                .collect();
            CacheKeySpec::parse(&parts)
        })
        .transpose()
        .map_err(|error| bad(error.to_string()))?;
    Ok(CompiledApi {
        id,
        template,
        timeout: Duration::from_millis(u64::from(timeout_ms)),
        max_request_bytes: spec
            .max_request_bytes
            .unwrap_or(limits::DEFAULT_MAX_REQUEST_BYTES) as usize,
        max_response_bytes: spec
            .max_response_bytes
            .unwrap_or(limits::DEFAULT_MAX_RESPONSE_BYTES) as usize,
        cache_key,
        authorizer_key,
        counters,
        group,
        spec,
    })
}
