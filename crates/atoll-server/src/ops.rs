//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// `/healthz`, `/readyz`, `/metrics` and `/api/v1/openapi.json`.
pub fn router(openapi: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
}

/// Ready when the metadata store and the blob store answer.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let meta = state.platform.store().ping().await;
    let blobs = state.blobs.ping().await;
    match (meta, blobs) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready".to_owned()),
        (meta, blobs) => {
            tracing::warn!(?meta, ?blobs, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unreachable".to_owned(),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
