//! Per-request context: the request id (task-local, added to log lines), HTTP metrics, and the
//! panic guard.

use super::error::{ApiError, REQUEST_ID};
use atoll_protocol::ErrorCode;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The header carrying the request id, taken from the client when it sends a
/// sane one, generated otherwise.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Requests slower than this are logged at info even when they succeed.
const SLOW_REQUEST: Duration = Duration::from_secs(1);

fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            (1..=64).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Global limits of the HTTP server, shared by every route.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Permits for requests in flight; when none is left the request is shed.
    pub in_flight: Arc<Semaphore>,
    /// Longest a handler may run.
    pub timeout: Duration,
}

/// Wraps every request: assigns its id (echoed in `x-request-id`, problem bodies
/// and every log line of the request), sheds load beyond the in-flight cap with
/// 503 + `Retry-After`, bounds handler time, and records count and latency by route.
pub async fn request_context(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = request_id_of(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let handle = async {
        let Ok(_permit) = limits.in_flight.try_acquire() else {
            metrics::counter!("atoll_http_shed_total").increment(1);
            return ApiError::new(ErrorCode::Unavailable, "the server is at its request limit")
                .retry_after(1)
                .into_response();
        };
        match tokio::time::timeout(limits.timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(ErrorCode::Unavailable, "the request took too long")
                .retry_after(1)
                .into_response(),
        }
    };
    // No tracing span per request: with the text or JSON log layer a span cost
    // ~25 µs a request (its fields formatted up front, entered on every poll).
    // The request id is task-local instead, and the log formatter adds it to
    // every line written while the request runs (`atoll::log_line`).
    let mut response = REQUEST_ID.scope(request_id.clone(), handle).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    // One line per request at debug; errors and slow requests at info or warn.
    // An info line for every success cost ~20% of the device API's CPU.
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%request_id, %method, %route, status, elapsed_ms, "handled");
    } else if status >= 400 || elapsed >= SLOW_REQUEST {
        tracing::info!(%request_id, %method, %route, status, elapsed_ms, "handled");
    } else {
        tracing::debug!(%request_id, %method, %route, status, elapsed_ms, "handled");
    }
    metrics::counter!("atoll_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("atoll_http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Turns a panic in a handler into a 500 problem carrying the request id; the
/// server keeps running.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    metrics::counter!("atoll_http_panics_total").increment(1);
    ApiError::new(
        ErrorCode::Internal,
        "internal error; the request id identifies it in the server log",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    fn app(permits: usize) -> Router {
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(permits)),
            timeout: Duration::from_secs(5),
        };
        Router::new()
            .route("/boom", get(|| async { panic!("boom") as &str }))
            .route("/fine", get(|| async { "fine" }))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn_with_state(
                limits,
                request_context,
            ))
    }

    async fn problem(response: Response) -> atoll_protocol::Problem {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_request_id() {
        let request = axum::http::Request::get("/boom")
            .header(REQUEST_ID_HEADER, "panic-1")
            .body(Body::empty())
            .unwrap();
        let response = app(4).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "panic-1");
        let problem = problem(response).await;
        assert_eq!(problem.code, "internal");
        assert_eq!(problem.request_id.as_deref(), Some("panic-1"));
        // The router keeps serving.
        let fine = app(4)
            .oneshot(
                axum::http::Request::get("/fine")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(fine.status(), 200);
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_cap_are_shed_with_retry_after() {
        let response = app(0)
            .oneshot(
                axum::http::Request::get("/fine")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(problem(response).await.code, "unavailable");
    }
}
