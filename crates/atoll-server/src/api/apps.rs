//! Apps and their secrets.

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::extract::Path;
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::admin::{App, AppWithSecret, CreateApp, RotateSecret, SdkConfig, UpdateApp};
use atoll_protocol::ErrorCode;
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;

/// Apps of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = Vec<App>), (status = 404, body = Problem)))]
pub(crate) async fn list_apps(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(
        state.platform.list_apps(&principal, &workspace).await?,
    ))
}

/// Creates an app; the answer shows its secret, once.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")), request_body = CreateApp,
    responses((status = 201, body = AppWithSecret), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_app(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Json(request): Json<CreateApp>,
) -> ApiResult<(StatusCode, Json<AppWithSecret>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .platform
                .create_app(&principal, &workspace, request)
                .await?,
        ),
    ))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = App), (status = 404, body = Problem)))]
pub(crate) async fn get_app(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<App>> {
    Ok(Json(
        state.platform.get_app(&principal, &workspace, &app).await?,
    ))
}

/// Renames an app or changes its platforms.
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace}/apps/{app}", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = UpdateApp,
    responses((status = 200, body = App), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn update_app(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(request): Json<UpdateApp>,
) -> ApiResult<Json<App>> {
    Ok(Json(
        state
            .platform
            .update_app(&principal, &workspace, &app, request)
            .await?,
    ))
}

/// Deletes an app and its devices (admins).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn delete_app(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .delete_app(&principal, &workspace, &app)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new app secret; the old one works for `grace_seconds` more.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/rotate-secret", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = RotateSecret,
    responses((status = 200, body = AppWithSecret), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<AppWithSecret>> {
    // The body is optional: an empty one means "no grace period".
    let request: RotateSecret = if body.is_empty() {
        RotateSecret::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("invalid JSON body: {error}"),
            )
        })?
    };
    Ok(Json(
        state
            .platform
            .rotate_app_secret(&principal, &workspace, &app, request)
            .await?,
    ))
}

/// The app's SDK configuration including its secret (admins).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/sdk-config", tag = "apps", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = SdkConfig), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn sdk_config(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<SdkConfig>> {
    Ok(Json(
        state
            .platform
            .reveal_sdk_config(&principal, &workspace, &app)
            .await?,
    ))
}
