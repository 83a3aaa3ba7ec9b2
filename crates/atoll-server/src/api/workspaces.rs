//! Workspaces and their audit log.

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::extract::{Path, Query};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::admin::{AuditEntry, CreateWorkspace, UpdateWorkspace, Workspace};
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

/// Workspaces the caller can see.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])),
    responses((status = 200, body = Vec<Workspace>), (status = 401, body = Problem)))]
pub(crate) async fn list_workspaces(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Vec<Workspace>>> {
    Ok(Json(state.platform.list_workspaces(&principal).await?))
}

/// Creates a workspace; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])), request_body = CreateWorkspace,
    responses((status = 201, body = Workspace), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_workspace(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(request): Json<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<Workspace>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.platform.create_workspace(&principal, request).await?),
    ))
}

/// One workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = Workspace), (status = 404, body = Problem)))]
pub(crate) async fn get_workspace(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<Workspace>> {
    Ok(Json(
        state.platform.get_workspace(&principal, &workspace).await?,
    ))
}

/// Renames a workspace (admins).
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")), request_body = UpdateWorkspace,
    responses((status = 200, body = Workspace), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn update_workspace(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Json(request): Json<UpdateWorkspace>,
) -> ApiResult<Json<Workspace>> {
    Ok(Json(
        state
            .platform
            .update_workspace(&principal, &workspace, request)
            .await?,
    ))
}

/// Deletes a workspace and everything in it (owners).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn delete_workspace(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .delete_workspace(&principal, &workspace)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct AuditQuery {
    /// Return entries older than this id.
    before: Option<i64>,
    /// At most this many (1-500, default 100).
    limit: Option<u32>,
}

/// The workspace's audit log, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/audit", tag = "workspaces", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 404, body = Problem)))]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(
        state
            .platform
            .audit_log(
                &principal,
                &workspace,
                query.before,
                query.limit.unwrap_or(100),
            )
            .await?,
    ))
}
