//! API tokens.

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::extract::Path;
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::admin::{ApiToken, CreateToken, TokenWithSecret};
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;

/// Live API tokens of a workspace (admins).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/tokens", tag = "tokens", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = Vec<ApiToken>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(
        state.platform.list_tokens(&principal, &workspace).await?,
    ))
}

/// Creates an API token; the answer shows its secret, once.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/tokens", tag = "tokens", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")), request_body = CreateToken,
    responses((status = 201, body = TokenWithSecret), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
    Json(request): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenWithSecret>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .platform
                .create_token(&principal, &workspace, request)
                .await?,
        ),
    ))
}

/// Revokes an API token at once.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/tokens/{token}", tag = "tokens", security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("token" = String, Path, description = "Token id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, token)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .revoke_token(&principal, &workspace, &token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
