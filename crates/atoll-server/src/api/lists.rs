//! Uploaded id list routes: list, read, replace and delete the allow-lists
//! target rules name (`user in list:beta`). Handlers only.

use crate::http::auth::Caller;
use crate::http::body::read_bounded;
use crate::http::extract::{Json, Path};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::delivery::{PutList, TargetList};
use atoll_protocol::{ErrorCode, Problem};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

/// Largest list body: 100 000 ids of up to ~64 bytes each as JSON.
const MAX_LIST_BODY: usize = 16 << 20;

/// A list with its ids.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListWithIds {
    /// The list.
    #[serde(flatten)]
    list: TargetList,
    /// The ids, sorted.
    ids: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/lists", tag = "lists",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<TargetList>), (status = 404, body = Problem)))]
pub(crate) async fn list_lists(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): Path<(String, String)>,
) -> ApiResult<Json<Vec<TargetList>>> {
    Ok(Json(state.lists.list(&principal, &workspace, &app).await?))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/lists/{name}", tag = "lists",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "List name")),
    responses((status = 200, body = ListWithIds), (status = 404, body = Problem)))]
pub(crate) async fn get_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<ListWithIds>> {
    let (list, ids) = state.lists.get(&principal, &workspace, &app, &name).await?;
    Ok(Json(ListWithIds { list, ids }))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/lists/{name}", tag = "lists",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "List name")),
    request_body = PutList,
    responses((status = 200, body = TargetList), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn put_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
    body: Body,
) -> ApiResult<Json<TargetList>> {
    // Lists are larger than other admin bodies: read with their own cap.
    let bytes = read_bounded(body, MAX_LIST_BODY, None).await?;
    let request: PutList = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is not a list: {error}"),
        )
    })?;
    Ok(Json(
        state
            .lists
            .put(&principal, &workspace, &app, &name, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/lists/{name}", tag = "lists",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "List name")),
    responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn delete_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .lists
        .delete(&principal, &workspace, &app, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
