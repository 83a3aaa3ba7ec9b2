//! Device and user lookup.

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::extract::{Path, Query};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::admin::{AppUser, Device};
use atoll_protocol::Problem;
use axum::extract::State;
use serde::Deserialize;

/// Paging of device lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct DeviceListQuery {
    /// At most this many (1-200, default 50).
    limit: Option<u32>,
}

/// The most recently seen devices of an app.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/devices", tag = "devices", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), DeviceListQuery),
    responses((status = 200, body = Vec<Device>), (status = 404, body = Problem)))]
pub(crate) async fn recent_devices(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Query(query): Query<DeviceListQuery>,
) -> ApiResult<Json<Vec<Device>>> {
    Ok(Json(
        state
            .platform
            .recent_devices(&principal, &workspace, &app, query.limit.unwrap_or(50))
            .await?,
    ))
}

/// One device with its binding and push tokens.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/devices/{device}", tag = "devices", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("device" = String, Path, description = "Device id")),
    responses((status = 200, body = Device), (status = 404, body = Problem)))]
pub(crate) async fn get_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, device)): Path<(String, String, String)>,
) -> ApiResult<Json<Device>> {
    Ok(Json(
        state
            .platform
            .get_device(&principal, &workspace, &app, &device)
            .await?,
    ))
}

/// One of the app's users with their bound devices.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/users/{user}", tag = "devices", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("user" = String, Path, description = "The app's user id")),
    responses((status = 200, body = AppUser), (status = 404, body = Problem)))]
pub(crate) async fn get_app_user(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, user)): Path<(String, String, String)>,
) -> ApiResult<Json<AppUser>> {
    Ok(Json(
        state
            .platform
            .get_app_user(&principal, &workspace, &app, &user)
            .await?,
    ))
}
