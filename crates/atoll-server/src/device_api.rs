//! The device API (`/device/v1`): handlers only. Every route takes a
//! [`Signed`] body, so no handler can run on an unsigned request.

use crate::http::body::Signed;
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::delivery::{UpdateAnswer, UpdateCheck, UpdateReport};
use atoll_protocol::device::{
    Ack, BindRequest, BindingResponse, PushTokenRequest, RegisterRequest, RegisterResponse,
};
use atoll_protocol::events::{EventBatch, EventBatchResponse};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The device API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/v1/register", post(register))
        .route("/device/v1/bind", post(bind))
        .route("/device/v1/unbind", post(unbind))
        .route("/device/v1/push-token", post(push_token))
        .route("/device/v1/push/report", post(push_report))
        .route("/device/v1/events", post(events))
        .route("/device/v1/config", get(config))
        .route("/device/v1/updates/check", post(update_check))
        .route("/device/v1/updates/report", post(update_report))
}

async fn update_check(
    State(state): State<AppState>,
    signed: Signed<UpdateCheck>,
) -> ApiResult<Json<UpdateAnswer>> {
    Ok(Json(
        state.delivery.check(&signed.caller, &signed.body).await?,
    ))
}

/// Written before it is answered (`204`).
async fn update_report(
    State(state): State<AppState>,
    signed: Signed<UpdateReport>,
) -> ApiResult<StatusCode> {
    state.delivery.report(&signed.caller, &signed.body).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let bound = state
        .platform
        .bind_user(&signed.caller, &signed.body.user_id)
        .await?;
    state
        .sync
        .binding_changed(
            &signed.caller.app_id,
            &signed.caller.device_id,
            bound.user_id.as_deref(),
        )
        .await;
    Ok(Json(bound))
}

/// `unbind` takes no fields; an empty body or `{}` both work.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn unbind(
    State(state): State<AppState>,
    signed: Signed<Empty>,
) -> ApiResult<Json<BindingResponse>> {
    let unbound = state.platform.unbind_user(&signed.caller).await?;
    state
        .sync
        .binding_changed(&signed.caller.app_id, &signed.caller.device_id, None)
        .await;
    Ok(Json(unbound))
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

/// Arrival (through a vendor), open or dismissal of the device's messages;
/// written before it is answered (`204`).
async fn push_report(
    State(state): State<AppState>,
    signed: Signed<atoll_protocol::push::PushReport>,
) -> ApiResult<StatusCode> {
    state
        .push
        .report(&signed.caller.app_id, &signed.caller.device_id, signed.body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
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

/// Whether an `If-None-Match` header names `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The switch values for the calling device, with an `ETag`; `304` when the
/// device already has them.
async fn config(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Signed<Empty>,
) -> ApiResult<Response> {
    let values = state.switches.device_values(&signed.caller).await?;
    let (body, etag) = atoll_switches::evaluate::answer(&values);
    let etag_header = HeaderValue::from_str(&etag).expect("a hex tag is a valid header");
    // Devices may keep the answer but must revalidate it: values change on publish.
    let cache = (
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if matches_etag(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_header), cache],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag_header),
            cache,
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response())
}
