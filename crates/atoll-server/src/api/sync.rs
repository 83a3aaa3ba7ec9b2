//! Sync admin routes: biz types, sync orders (single and global, which app
//! backends send with a `sync:write` token), counters, online devices and a
//! device's cursors. Handlers only; the sync service authorises every operation.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path, Query};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::sync::*;
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

/// `?days=` of the counters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsParams {
    /// Days counted back from today (default 30, at most 90).
    days: Option<u32>,
}

/// `?limit=` of the online list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnlineParams {
    /// Devices listed at most (default 100, at most 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<BizType>), (status = 404, body = Problem)))]
/// The app's biz types.
pub(crate) async fn list_biz_types(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<Vec<BizType>>> {
    Ok(Json(
        state
            .sync
            .list_biz_types(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = BizTypeSpec,
    responses((status = 201, body = BizType), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Creates a biz type.
pub(crate) async fn create_biz_type(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(spec): Json<BizTypeSpec>,
) -> ApiResult<(StatusCode, Json<BizType>)> {
    let created = state
        .sync
        .create_biz_type(&principal, &workspace, &app, spec)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types/{id}", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Biz type id")),
    responses((status = 200, body = BizType), (status = 404, body = Problem)))]
/// One biz type.
pub(crate) async fn get_biz_type(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): Path<(String, String, String)>,
) -> ApiResult<Json<BizType>> {
    Ok(Json(
        state
            .sync
            .get_biz_type(&principal, &workspace, &app, &id)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types/{id}", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Biz type id")), request_body = BizTypeSpec,
    responses((status = 200, body = BizType), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Replaces a biz type's settings (the id and dimension stay).
pub(crate) async fn put_biz_type(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): Path<(String, String, String)>,
    Json(spec): Json<BizTypeSpec>,
) -> ApiResult<Json<BizType>> {
    Ok(Json(
        state
            .sync
            .update_biz_type(&principal, &workspace, &app, &id, spec)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types/{id}", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Biz type id")),
    responses((status = 204), (status = 404, body = Problem)))]
/// Deletes a biz type with its data and cursors.
pub(crate) async fn delete_biz_type(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .sync
        .delete_biz_type(&principal, &workspace, &app, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/orders", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = SyncOrder,
    responses((status = 200, description = "`OK`, or `DUPLICATED_BIZ_ID` with the first datum's id", body = SyncOrderAnswer),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
/// Sends a datum to one user or device (token scope `sync:write`). Durable
/// when answered; a repeat of the same `third_msg_id` answers `DUPLICATED_BIZ_ID`.
pub(crate) async fn send_order(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(order): Json<SyncOrder>,
) -> ApiResult<Json<SyncOrderAnswer>> {
    Ok(Json(
        state
            .sync
            .send(&principal, &workspace, &app, &order)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/orders/global", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = GlobalSyncOrder,
    responses((status = 200, body = SyncOrderAnswer), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Sends a datum to every device of a global biz type, stored once
/// (token scope `sync:write`).
pub(crate) async fn send_global_order(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(order): Json<GlobalSyncOrder>,
) -> ApiResult<Json<SyncOrderAnswer>> {
    Ok(Json(
        state
            .sync
            .send_global(&principal, &workspace, &app, &order)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/stats", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), StatsParams),
    responses((status = 200, body = Vec<BizTypeStats>), (status = 404, body = Problem)))]
/// Sent, delivered, acknowledged, dropped and backlog per biz type.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Query(params): Query<StatsParams>,
) -> ApiResult<Json<Vec<BizTypeStats>>> {
    let days = params.days.unwrap_or(30).clamp(1, 90);
    Ok(Json(
        state
            .sync
            .biz_type_stats(&principal, &workspace, &app, days)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/online", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), OnlineParams),
    responses((status = 200, body = OnlineDevices), (status = 404, body = Problem)))]
/// The app's devices connected to this node.
pub(crate) async fn online(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Query(params): Query<OnlineParams>,
) -> ApiResult<Json<OnlineDevices>> {
    let limit = params.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let (total, devices) = state
        .sync
        .online_devices(&principal, &workspace, &app, limit)
        .await?;
    Ok(Json(OnlineDevices {
        total: total as u64,
        devices,
    }))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sync/devices/{device}", tag = "sync",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("device" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceSyncState), (status = 404, body = Problem)))]
/// A device's sync points and pending data.
pub(crate) async fn device_state(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, device_id)): Path<(String, String, String)>,
) -> ApiResult<Json<DeviceSyncState>> {
    Ok(Json(
        state
            .sync
            .device_state(&principal, &workspace, &app, &device_id)
            .await?,
    ))
}
