//! Turning errors into RFC 9457 problem responses.

use atoll_protocol::{ErrorCode, Problem};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

tokio::task_local! {
    /// The id of the request being handled, for problem bodies and logs.
    pub static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Calls `f` with the current request's id, if inside a request (for log lines:
/// no copy of the id).
pub fn with_request_id<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    REQUEST_ID.try_with(|id| f(id)).ok()
}

/// An error answer of the HTTP API: a catalogue code, a human detail, and for
/// overload a `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    /// The catalogue code; it decides the status.
    pub code: ErrorCode,
    /// What went wrong, for a human.
    pub detail: String,
    /// Seconds to wait before retrying.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs.max(1));
        self
    }
}

impl From<atoll_platform::Error> for ApiError {
    fn from(error: atoll_platform::Error) -> Self {
        let code = error.code();
        let detail = if error.is_internal() && code != ErrorCode::Conflict {
            // Storage and bug details stay in the log, tied to the request id.
            tracing::error!(%error, "request failed");
            match code {
                ErrorCode::Unavailable => "storage is unavailable; retry shortly".to_owned(),
                _ => "internal error; the request id identifies it in the server log".to_owned(),
            }
        } else if code == ErrorCode::Conflict && error.is_internal() {
            "the object already exists".to_owned()
        } else {
            error.to_string()
        };
        ApiError {
            code,
            detail,
            retry_after_secs: error.retry_after_secs(),
        }
    }
}

/// A module's error as a problem: the catalogue code, the detail unless it is
/// for the log only, and the retry hint.
fn module_error(
    error: &dyn std::fmt::Display,
    code: ErrorCode,
    internal: bool,
    retry_after_secs: Option<u64>,
) -> ApiError {
    let detail = if internal {
        tracing::error!(%error, "request failed");
        "internal error; the request id identifies it in the server log".to_owned()
    } else {
        error.to_string()
    };
    ApiError {
        code,
        detail,
        retry_after_secs,
    }
}

/// `From<module::Error> for ApiError` for each module crate: platform errors
/// keep their own mapping, the rest become problems by their catalogue code.
macro_rules! module_errors {
    ($($module:ident),+) => {$(
        impl From<$module::Error> for ApiError {
            fn from(error: $module::Error) -> Self {
                if let $module::Error::Platform(platform) = error {
                    return platform.into();
                }
                module_error(
                    &error,
                    error.code(),
                    error.is_internal(),
                    error.retry_after_secs(),
                )
            }
        }
    )+};
}

module_errors!(
    atoll_analytics,
    atoll_switches,
    atoll_delivery,
    atoll_lists,
    atoll_gateway,
    atoll_sync,
    atoll_push
);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(self.code, self.detail);
        problem.request_id = current_request_id();
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED && matches!(self.code, ErrorCode::Unauthenticated) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
