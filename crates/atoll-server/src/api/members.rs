//! Members and roles.

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::extract::Path;
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::admin::{AddMember, Member, UpdateMember};
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;

/// Members of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/members", tag = "members", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = Vec<Member>), (status = 404, body = Problem)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(
        state.platform.list_members(&principal, &workspace).await?,
    ))
}

/// Adds a member (creating the user when the email is new).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/members", tag = "members", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")), request_body = AddMember,
    responses((status = 201, body = Member), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Json(request): Json<AddMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .platform
                .add_member(&principal, &workspace, request)
                .await?,
        ),
    ))
}

/// Changes a member's role.
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace}/members/{member}", tag = "members", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("member" = String, Path, description = "User id")),
    request_body = UpdateMember,
    responses((status = 200, body = Member), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn update_member(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, member)): Path<(String, String)>,
    Json(request): Json<UpdateMember>,
) -> ApiResult<Json<Member>> {
    Ok(Json(
        state
            .platform
            .update_member(&principal, &workspace, &member, request)
            .await?,
    ))
}

/// Removes a member.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/members/{member}", tag = "members", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("member" = String, Path, description = "User id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .remove_member(&principal, &workspace, &member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
