//! Login, logout and "who am I".

use crate::http::auth::Caller;
use crate::http::extract::Json;
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_platform::Principal;
use atoll_protocol::admin::{LoginRequest, LoginResponse, Me};
use atoll_protocol::{ErrorCode, Problem};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};

/// Exchanges an email and password for a bearer session token (used by the CLI).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let (response, _) = state
        .platform
        .login(&request.email, &request.password)
        .await?;
    Ok(Json(response))
}

/// Ends the session whose bearer token is sent.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "send the session as a bearer token",
            )
        })?;
    state.platform.logout(bearer.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller and the workspaces it can see.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Me>> {
    let workspaces = state.platform.list_workspaces(&principal).await?;
    let (user, token) = match principal {
        Principal::User(user) => (Some(user), None),
        Principal::Token { token, .. } => (None, Some(token)),
    };
    Ok(Json(Me {
        user,
        token,
        workspaces,
    }))
}
