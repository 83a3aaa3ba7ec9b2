//! Authentication of admin API callers: a bearer token (API token or CLI session),
//! or the console's session cookie with its CSRF header for changes.

use super::error::ApiError;
use crate::state::AppState;
use atoll_platform::Principal;
use atoll_protocol::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};

/// Header a cookie-authenticated change must carry, equal to the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller of an admin route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let bearer = value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::Unauthenticated,
                        "Authorization must be 'Bearer <token>'",
                    )
                })?;
            return Ok(Caller(
                state.platform.authenticate_bearer(bearer.trim()).await?,
            ));
        }
        if let Some(token) = atoll_console::cookie(&parts.headers, atoll_console::SESSION_COOKIE) {
            let session = state.platform.session(token).await?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok());
                let matches =
                    sent.is_some_and(|sent| atoll_console::tokens_match(sent, &session.csrf_token));
                if !matches {
                    return Err(ApiError::new(
                        ErrorCode::CsrfFailed,
                        format!(
                            "a change made with the session cookie needs the {CSRF_HEADER} header"
                        ),
                    ));
                }
            }
            return Ok(Caller(Principal::User(session.user)));
        }
        Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "send 'Authorization: Bearer <token>' (an API token or a login session)",
        ))
    }
}
