//! Gateway pages: API groups (backends) with their secrets, APIs with a per-API
//! dashboard (requests by status class, throttled, cache hits, latency
//! percentiles), an editor for an API's full settings as JSON, a test console
//! that sends a real call through the gateway and shows what the backend got and
//! answered, and the workspace's payload-encryption keys.

use super::{non_blank, Fields};
use crate::auth::Authed;
use crate::view::{self, encode_query, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::gateway::*;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `?app=…&api=…&done=…`.
#[derive(Debug, Default, Deserialize)]
pub struct GatewayQuery {
    #[serde(default)]
    app: String,
    /// The API whose editor and dashboard are open.
    #[serde(default)]
    api: String,
    #[serde(default)]
    done: String,
}

#[derive(Clone)]
struct ApiRow {
    api: Api,
    stats: ApiStats,
    /// "p50 / p95 / p99" in milliseconds.
    latency: String,
    href: String,
}

/// What a page shows once, right after the change that produced it.
#[derive(Default)]
struct Once {
    /// A group's new secret.
    secret: Option<(String, String)>,
    /// A test call's outcome.
    test: Option<(TestCall, TestCallResult)>,
    /// The editor's text when saving failed, so nothing typed is lost.
    draft: Option<String>,
}

#[derive(Template)]
#[template(path = "gateway.html")]
struct GatewayPage {
    shell: Shell,
    app_key: String,
    groups: Vec<ApiGroup>,
    apis: Vec<ApiRow>,
    selected: Option<ApiRow>,
    editor: String,
    keys: Vec<GatewayKey>,
    settings: GatewaySettings,
    methods: Vec<&'static str>,
    secret: Option<(String, String)>,
    secret_snippet: String,
    test: Option<(TestCall, TestCallResult)>,
    test_operation: String,
    test_body: String,
    test_headers: String,
}

fn gateway_error(error: atoll_gateway::Error) -> Error {
    match error {
        atoll_gateway::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: &GatewayQuery,
    status: StatusCode,
    flash: Option<Flash>,
    once: Once,
) -> PageResult {
    let app = query.app.as_str();
    let shell = Shell::load(
        state,
        authed,
        Some(ws),
        "/gateway",
        Some(app).filter(|a| !a.is_empty()),
        "Gateway",
    )
    .await?
    .with_flash(flash);
    let (shell, app_key) = shell.app_or_first(app, "APIs")?;
    let principal = authed.principal();
    let gateway = &state.gateway;
    let groups = gateway
        .list_groups(&principal, ws, &app_key)
        .await
        .map_err(gateway_error)
        .or_error_page(&shell)?;
    let apis = gateway
        .list_apis(&principal, ws, &app_key, None)
        .await
        .map_err(gateway_error)
        .or_error_page(&shell)?;
    let stats = gateway
        .stats(&principal, ws, &app_key)
        .await
        .map_err(gateway_error)
        .or_error_page(&shell)?;
    let keys = gateway
        .list_keys(&principal, ws)
        .await
        .map_err(gateway_error)
        .or_error_page(&shell)?;
    let settings = gateway
        .get_settings(&principal, ws, &app_key)
        .await
        .map_err(gateway_error)
        .or_error_page(&shell)?;
    let base = format!("{}/gateway?app={}", shell.base(), encode_query(&app_key));
    let rows: Vec<ApiRow> = apis
        .into_iter()
        .map(|api| {
            let stats = stats
                .iter()
                .find(|stats| stats.operation_type == api.spec.operation_type)
                .cloned()
                .unwrap_or_else(|| ApiStats {
                    operation_type: api.spec.operation_type.clone(),
                    ..ApiStats::default()
                });
            ApiRow {
                latency: format!(
                    "{} / {} / {}",
                    ms(stats.p50_ms),
                    ms(stats.p95_ms),
                    ms(stats.p99_ms)
                ),
                stats,
                href: format!("{base}&api={}#api", encode_query(&api.spec.operation_type)),
                api,
            }
        })
        .collect();
    let selected = rows
        .iter()
        .find(|row| row.api.spec.operation_type == query.api)
        .cloned();
    let editor = once.draft.unwrap_or_else(|| {
        selected
            .as_ref()
            .and_then(|row| serde_json::to_string_pretty(&row.api.spec).ok())
            .unwrap_or_default()
    });
    let (test_operation, test_body, test_headers) = match &once.test {
        Some((call, _)) => (
            call.operation_type.clone(),
            serde_json::to_string_pretty(&call.body).unwrap_or_default(),
            call.headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        None => (
            selected
                .as_ref()
                .map(|row| row.api.spec.operation_type.clone())
                .unwrap_or_default(),
            "{}".to_owned(),
            String::new(),
        ),
    };
    let secret_snippet = once
        .secret
        .as_ref()
        .map(|(group, secret)| format!("# Backend of group {group}: verify x-atoll-gw-signature with\nATOLL_GATEWAY_SECRET={secret}"))
        .unwrap_or_default();
    let page = GatewayPage {
        groups,
        apis: rows,
        selected,
        editor,
        keys,
        settings,
        methods: HttpMethod::ALL.iter().map(|m| m.as_str()).collect(),
        secret: once.secret,
        secret_snippet,
        test: once.test,
        test_operation,
        test_body,
        test_headers,
        app_key,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/gateway`.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<GatewayQuery>,
) -> PageResult {
    let flash = view::done_message(&query.done);
    render(
        &state,
        &authed,
        &ws,
        &query,
        StatusCode::OK,
        flash,
        Once::default(),
    )
    .await
}

fn done_redirect(ws: &str, app: &str, api: &str, done: &str) -> axum::response::Response {
    Redirect::to(&format!(
        "/w/{}/gateway?app={}&api={}&done={done}",
        view::encode_segment(ws),
        encode_query(app),
        encode_query(api),
    ))
    .into_response()
}

/// After a change: redirect on success, or the page again with the error (and
/// whatever the form carried, so nothing typed is lost).
async fn done_or_refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: GatewayQuery,
    outcome: Result<&str, Error>,
    once: Once,
) -> PageResult {
    match outcome {
        Ok(done) => Ok(done_redirect(ws, &query.app, &query.api, done)),
        Err(error) => {
            render(
                state,
                authed,
                ws,
                &query,
                view::status_of(&error),
                Some(Flash::error(&error)),
                once,
            )
            .await
        }
    }
}

fn query_of(fields: &Fields) -> GatewayQuery {
    GatewayQuery {
        app: fields.get("app").to_owned(),
        api: fields.get("api").to_owned(),
        done: String::new(),
    }
}

/// `POST /w/{ws}/gateway/groups`: a new group; the page shows its secret once.
pub async fn create_group(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = async {
        let spec = ApiGroupSpec {
            name: fields.get("name").trim().to_owned(),
            base_url: fields.get("base_url").trim().to_owned(),
            timeout_ms: fields.number("timeout_ms")?,
            headers_add: BTreeMap::new(),
            headers_remove: Vec::new(),
            tls_verify: fields.get("tls_verify") == "on",
            max_pending: None,
            breaker: BreakerSpec::default(),
        };
        state
            .gateway
            .create_group(&authed.principal(), &ws, &query.app, spec)
            .await
            .map_err(gateway_error)
    }
    .await;
    show_secret(&state, &authed, &ws, query, outcome, "Group created.").await
}

/// `POST /w/{ws}/gateway/groups/rotate`: a new secret for a group, shown once.
pub async fn rotate_group(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = state
        .gateway
        .rotate_group_secret(&authed.principal(), &ws, &query.app, fields.get("group"))
        .await
        .map_err(gateway_error);
    show_secret(
        &state,
        &authed,
        &ws,
        query,
        outcome,
        "New secret made; the old one no longer verifies.",
    )
    .await
}

/// The page with a group's secret, shown only in this answer (no redirect
/// carries it).
async fn show_secret(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: GatewayQuery,
    outcome: Result<ApiGroupSecret, Error>,
    message: &str,
) -> PageResult {
    match outcome {
        Ok(created) => {
            render(
                state,
                authed,
                ws,
                &query,
                StatusCode::OK,
                Some(Flash::success(format!(
                    "{message} Copy the secret now: it is not shown again."
                ))),
                Once {
                    secret: Some((created.group.spec.name, created.secret)),
                    ..Once::default()
                },
            )
            .await
        }
        Err(error) => done_or_refused(state, authed, ws, query, Err(error), Once::default()).await,
    }
}

/// `POST /w/{ws}/gateway/apis`: a new API from the short form.
pub async fn create_api(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let mut query = query_of(&fields);
    let operation_type = fields.get("operation_type").trim().to_owned();
    let outcome = async {
        let spec = ApiSpec {
            operation_type: operation_type.clone(),
            group: fields.get("group").to_owned(),
            method: HttpMethod::parse(fields.get("method"))
                .ok_or_else(|| Error::Validation("method: choose one".into()))?,
            path: fields.get("path").trim().to_owned(),
            timeout_ms: fields.number("timeout_ms")?,
            retries: 0,
            require_signature: fields.get("require_signature") == "on",
            require_encryption: fields.get("require_encryption") == "on",
            max_request_bytes: None,
            max_response_bytes: None,
            enabled: fields.get("enabled") == "on",
            description: fields.get("description").trim().to_owned(),
            request_schema: None,
            response_schema: None,
            rate_limit: RateLimitSpec {
                qps: fields.number("qps")?,
                per_device_qps: fields.number("per_device_qps")?,
            },
            cache: None,
            mock: None,
            authorizer: None,
        };
        state
            .gateway
            .create_api(&authed.principal(), &ws, &query.app, spec)
            .await
            .map_err(gateway_error)
    }
    .await;
    if outcome.is_ok() {
        query.api = operation_type;
    }
    done_or_refused(
        &state,
        &authed,
        &ws,
        query,
        outcome.map(|_| "api_created"),
        Once::default(),
    )
    .await
}

/// `POST /w/{ws}/gateway/apis/save`: an API's full settings from the JSON editor.
pub async fn save_api(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let text = fields.get("spec").to_owned();
    let outcome = async {
        let spec: ApiSpec = serde_json::from_str(&text)
            .map_err(|error| Error::Validation(format!("the settings are not valid: {error}")))?;
        state
            .gateway
            .put_api(&authed.principal(), &ws, &query.app, &query.api, spec)
            .await
            .map_err(gateway_error)
    }
    .await;
    done_or_refused(
        &state,
        &authed,
        &ws,
        query,
        outcome.map(|_| "api_saved"),
        Once {
            draft: Some(text),
            ..Once::default()
        },
    )
    .await
}

/// `POST /w/{ws}/gateway/apis/action`: enable, disable or delete an API.
pub async fn api_action(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let mut query = query_of(&fields);
    let principal = authed.principal();
    let gateway = &state.gateway;
    let operation = query.api.clone();
    let outcome = match fields.get("action") {
        "enable" => gateway
            .set_api_enabled(&principal, &ws, &query.app, &operation, true)
            .await
            .map(|_| "api_saved"),
        "disable" => gateway
            .set_api_enabled(&principal, &ws, &query.app, &operation, false)
            .await
            .map(|_| "api_saved"),
        "delete" => gateway
            .delete_api(&principal, &ws, &query.app, &operation)
            .await
            .map(|_| {
                query.api.clear();
                "api_deleted"
            }),
        other => Err(atoll_gateway::Error::Invalid(format!(
            "unknown action '{other}'"
        ))),
    }
    .map_err(gateway_error);
    done_or_refused(&state, &authed, &ws, query, outcome, Once::default()).await
}

/// `POST /w/{ws}/gateway/test`: a real call through the gateway; the page shows
/// what went to the backend and what came back.
pub async fn test(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = async {
        let body: Value = match non_blank(fields.get("body")) {
            Some(text) => serde_json::from_str(&text)
                .map_err(|error| Error::Validation(format!("body: not JSON: {error}")))?,
            None => Value::Null,
        };
        let mut headers = BTreeMap::new();
        for line in fields
            .get("headers")
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                Error::Validation(format!("headers: '{line}' is not 'name: value'"))
            })?;
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let call = TestCall {
            operation_type: fields.get("operation_type").to_owned(),
            body,
            headers,
            device_id: non_blank(fields.get("device_id")),
        };
        let result = state
            .gateway
            .test_call(&authed.principal(), &ws, &query.app, call.clone())
            .await
            .map_err(gateway_error)?;
        Ok::<_, Error>((call, result))
    }
    .await;
    match outcome {
        Ok(test) => {
            render(
                &state,
                &authed,
                &ws,
                &query,
                StatusCode::OK,
                None,
                Once {
                    test: Some(test),
                    ..Once::default()
                },
            )
            .await
        }
        Err(error) => {
            done_or_refused(&state, &authed, &ws, query, Err(error), Once::default()).await
        }
    }
}

/// `POST /w/{ws}/gateway/keys/rotate`: new payload-encryption keys (7-day overlap).
pub async fn rotate_keys(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = state
        .gateway
        .rotate_keys(
            &authed.principal(),
            &ws,
            RotateGatewayKeys {
                suite: non_blank(fields.get("suite")),
                overlap_secs: None,
            },
        )
        .await
        .map_err(gateway_error)
        .map(|_| "keys_rotated");
    done_or_refused(&state, &authed, &ws, query, outcome, Once::default()).await
}
