//! The device API (`/device/v1`): handlers only. Every route takes a
//! [`Signed`] body, so no handler can run on an unsigned request.

use crate::http::body::Signed;
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::device::{
    Ack, BindRequest, BindingResponse, PushTokenRequest, RegisterRequest, RegisterResponse,
};
use atoll_protocol::events::{EventBatch, EventBatchResponse};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

/// The device API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/v1/register", post(register))
        .route("/device/v1/bind", post(bind))
        .route("/device/v1/unbind", post(unbind))
        .route("/device/v1/push-token", post(push_token))
        .route("/device/v1/events", post(events))
}

async fn register(
    State(state): State<AppState>,
    signed: Signed<RegisterRequest>,
) -> ApiResult<Json<RegisterResponse>> {
    Ok(Json(
        state
            .platform
            .register_device(&signed.caller, signed.body)
            .await?,
    ))
}

async fn bind(
    State(state): State<AppState>,
    signed: Signed<BindRequest>,
) -> ApiResult<Json<BindingResponse>> {
    Ok(Json(
        state
            .platform
            .bind_user(&signed.caller, &signed.body.user_id)
            .await?,
    ))
}

/// `unbind` takes no fields; an empty body or `{}` both work.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn unbind(
    State(state): State<AppState>,
    signed: Signed<Empty>,
) -> ApiResult<Json<BindingResponse>> {
    Ok(Json(state.platform.unbind_user(&signed.caller).await?))
}

async fn push_token(
    State(state): State<AppState>,
    signed: Signed<PushTokenRequest>,
) -> ApiResult<Json<Ack>> {
    state
        .platform
        .set_push_token(&signed.caller, signed.body)
        .await?;
    Ok(Json(Ack { ok: true }))
}

async fn events(
    State(state): State<AppState>,
    signed: Signed<EventBatch>,
) -> ApiResult<Json<EventBatchResponse>> {
    let outcome = state.analytics.ingest(&signed.caller, signed.body).await;
    match &outcome {
        Ok(answer) => {
            metrics::counter!("atoll_events_ingested_total", "result" => "accepted")
                .increment(u64::from(answer.accepted));
            metrics::counter!("atoll_events_ingested_total", "result" => "duplicate")
                .increment(u64::from(answer.duplicates));
        }
        Err(error) => {
            metrics::counter!("atoll_event_batches_refused_total", "code" => error.code().as_str())
                .increment(1);
        }
    }
    Ok(Json(outcome?))
}
