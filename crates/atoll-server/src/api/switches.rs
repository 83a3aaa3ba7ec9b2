//! Switch (remote config) admin routes: the set in force, publishing (whole set
//! or one key), preview of a change, history, rollback and evaluation for a
//! sample device. Handlers only; the switches service authorises every call.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path, Query};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::switches::*;
use atoll_protocol::Problem;
use axum::extract::State;
use serde::Deserialize;

type AppPath = Path<(String, String)>;

/// Paging of the history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Only versions before this one.
    before: Option<u64>,
    /// Entries per page (default 50, at most 100).
    limit: Option<u32>,
}

/// Optimistic concurrency for a delete.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteParams {
    /// Refuse with `conflict` unless this is the version in force.
    expected_version: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = SwitchSet), (status = 404, body = Problem)))]
pub(crate) async fn current(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state.switches.current(&principal, &workspace, &app).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = PublishSwitches,
    responses((status = 200, body = SwitchSet), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<PublishSwitches>,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state
            .switches
            .publish(&principal, &workspace, &app, request)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/keys/{key}", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("key" = String, Path, description = "Switch key")),
    request_body = PutSwitch,
    responses((status = 200, body = SwitchSet), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn put_switch(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, key)): Path<(String, String, String)>,
    Json(request): Json<PutSwitch>,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state
            .switches
            .put(&principal, &workspace, &app, &key, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/keys/{key}", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("key" = String, Path, description = "Switch key"), DeleteParams),
    responses((status = 200, body = SwitchSet), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn delete_switch(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, key)): Path<(String, String, String)>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state
            .switches
            .delete(&principal, &workspace, &app, &key, params.expected_version)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/preview", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = PublishSwitches,
    responses((status = 200, body = SwitchDiff), (status = 422, body = Problem)))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<PublishSwitches>,
) -> ApiResult<Json<SwitchDiff>> {
    Ok(Json(
        state
            .switches
            .preview(&principal, &workspace, &app, request.switches)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/versions", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), HistoryParams),
    responses((status = 200, body = Vec<SwitchVersion>), (status = 404, body = Problem)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<HistoryParams>,
) -> ApiResult<Json<Vec<SwitchVersion>>> {
    Ok(Json(
        state
            .switches
            .history(&principal, &workspace, &app, params.before, params.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/versions/{version}", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("version" = u64, Path, description = "Version number")),
    responses((status = 200, body = SwitchSet), (status = 404, body = Problem)))]
pub(crate) async fn version(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, version)): Path<(String, String, u64)>,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state
            .switches
            .version(&principal, &workspace, &app, version)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/rollback", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = RollbackSwitches,
    responses((status = 200, body = SwitchSet), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<RollbackSwitches>,
) -> ApiResult<Json<SwitchSet>> {
    Ok(Json(
        state
            .switches
            .rollback(&principal, &workspace, &app, request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/switches/evaluate", tag = "switches",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = SampleDevice,
    responses((status = 200, body = SwitchValues), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(device): Json<SampleDevice>,
) -> ApiResult<Json<SwitchValues>> {
    Ok(Json(
        state
            .switches
            .evaluate_sample(&principal, &workspace, &app, &device)
            .await?,
    ))
}
