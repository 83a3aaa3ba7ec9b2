//! Gateway admin routes: API groups, APIs, app settings, stats, test calls,
//! OpenAPI import/export and the workspace's payload-encryption keys.
//! Handlers only; the gateway service authorises every operation.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_gateway::ImportReport;
use atoll_protocol::gateway::*;
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<ApiGroup>), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// The app's API groups.
pub(crate) async fn list_groups(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ApiGroup>>> {
    Ok(Json(
        state
            .gateway
            .list_groups(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = ApiGroupSpec,
    responses((status = 201, body = ApiGroupSecret), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Creates a group; the answer shows its secret once.
pub(crate) async fn create_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(request): Json<ApiGroupSpec>,
) -> ApiResult<(StatusCode, Json<ApiGroupSecret>)> {
    let created = state
        .gateway
        .create_group(&principal, &workspace, &app, request)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")),
    responses((status = 200, body = ApiGroup), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// One group.
pub(crate) async fn get_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<ApiGroup>> {
    Ok(Json(
        state
            .gateway
            .get_group(&principal, &workspace, &app, &name)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")), request_body = ApiGroupSpec,
    responses((status = 200, body = ApiGroup), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Replaces a group's settings.
pub(crate) async fn put_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
    Json(request): Json<ApiGroupSpec>,
) -> ApiResult<Json<ApiGroup>> {
    Ok(Json(
        state
            .gateway
            .put_group(&principal, &workspace, &app, &name, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Deletes a group no API uses.
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .gateway
        .delete_group(&principal, &workspace, &app, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}/rotate-secret", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")),
    responses((status = 200, body = ApiGroupSecret), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Gives the group a new secret (shown once).
pub(crate) async fn rotate_group_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<ApiGroupSecret>> {
    Ok(Json(
        state
            .gateway
            .rotate_group_secret(&principal, &workspace, &app, &name)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}/openapi", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// The OpenAPI 3 document of the group's APIs.
pub(crate) async fn export_openapi(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        state
            .gateway
            .export_openapi(&principal, &workspace, &app, &name)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}/openapi", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Group name")), request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Imports APIs from an OpenAPI 3 document into the group.
pub(crate) async fn import_openapi(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
    Json(request): Json<serde_json::Value>,
) -> ApiResult<Json<ImportReport>> {
    Ok(Json(
        state
            .gateway
            .import_openapi(&principal, &workspace, &app, &name, &request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<Api>), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// The app's APIs.
pub(crate) async fn list_apis(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Api>>> {
    Ok(Json(
        state
            .gateway
            .list_apis(&principal, &workspace, &app, None)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = ApiSpec,
    responses((status = 201, body = Api), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Creates an API (disabled unless `enabled` is set).
pub(crate) async fn create_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(request): Json<ApiSpec>,
) -> ApiResult<(StatusCode, Json<Api>)> {
    let api = state
        .gateway
        .create_api(&principal, &workspace, &app, request)
        .await?;
    Ok((StatusCode::CREATED, Json(api)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("operation_type" = String, Path, description = "Operation type")),
    responses((status = 200, body = Api), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// One API.
pub(crate) async fn get_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, operation_type)): Path<(String, String, String)>,
) -> ApiResult<Json<Api>> {
    Ok(Json(
        state
            .gateway
            .get_api(&principal, &workspace, &app, &operation_type)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("operation_type" = String, Path, description = "Operation type")), request_body = ApiSpec,
    responses((status = 200, body = Api), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Replaces an API's settings.
pub(crate) async fn put_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, operation_type)): Path<(String, String, String)>,
    Json(request): Json<ApiSpec>,
) -> ApiResult<Json<Api>> {
    Ok(Json(
        state
            .gateway
            .put_api(&principal, &workspace, &app, &operation_type, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("operation_type" = String, Path, description = "Operation type")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Deletes an API.
pub(crate) async fn delete_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, operation_type)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .gateway
        .delete_api(&principal, &workspace, &app, &operation_type)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}/enable", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("operation_type" = String, Path, description = "Operation type")),
    responses((status = 200, body = Api), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Enables an API.
pub(crate) async fn enable_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, operation_type)): Path<(String, String, String)>,
) -> ApiResult<Json<Api>> {
    Ok(Json(
        state
            .gateway
            .set_api_enabled(&principal, &workspace, &app, &operation_type, true)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}/disable", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("operation_type" = String, Path, description = "Operation type")),
    responses((status = 200, body = Api), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Disables an API: calls answer `api_disabled`.
pub(crate) async fn disable_api(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, operation_type)): Path<(String, String, String)>,
) -> ApiResult<Json<Api>> {
    Ok(Json(
        state
            .gateway
            .set_api_enabled(&principal, &workspace, &app, &operation_type, false)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/settings", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = GatewaySettings), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// App-wide limits.
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<GatewaySettings>> {
    Ok(Json(
        state
            .gateway
            .get_settings(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/settings", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = GatewaySettings,
    responses((status = 200, body = GatewaySettings), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Replaces the app-wide limits.
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(request): Json<GatewaySettings>,
) -> ApiResult<Json<GatewaySettings>> {
    Ok(Json(
        state
            .gateway
            .put_settings(&principal, &workspace, &app, request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/stats", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<ApiStats>), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Per-API counters and latency since the server started.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ApiStats>>> {
    Ok(Json(
        state.gateway.stats(&principal, &workspace, &app).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/gateway/test", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")), request_body = TestCall,
    responses((status = 200, body = TestCallResult), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Sends a real call through the gateway as a trusted caller.
pub(crate) async fn test_call(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
    Json(request): Json<TestCall>,
) -> ApiResult<Json<TestCallResult>> {
    Ok(Json(
        state
            .gateway
            .test_call(&principal, &workspace, &app, request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/gateway/keys", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = Vec<GatewayKey>), (status = 404, body = Problem)))]
/// The workspace's payload-encryption public keys (made on first use).
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<Vec<GatewayKey>>> {
    Ok(Json(state.gateway.list_keys(&principal, &workspace).await?))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/gateway/keys/rotate", tag = "gateway",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    request_body = RotateGatewayKeys,
    responses((status = 200, body = Vec<GatewayKey>), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Rotates the current key of one suite or all; previous keys open envelopes for the overlap.
pub(crate) async fn rotate_keys(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Json(request): Json<RotateGatewayKeys>,
) -> ApiResult<Json<Vec<GatewayKey>>> {
    Ok(Json(
        state
            .gateway
            .rotate_keys(&principal, &workspace, request)
            .await?,
    ))
}
