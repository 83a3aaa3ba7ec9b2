//! The gateway's device side: `POST /gw/v1` (an RPC by operation type) and
//! `GET /device/v1/gateway/keys` (the workspace's payload-encryption keys).
//!
//! A call is read (bounded), its signature checked over the bytes as received
//! with the signed path `/gw/v1/<operation type>` (so the operation type header
//! is covered), decompressed, and handed to the gateway runtime. A request
//! without signature headers is resolved by its app key only, and only reaches
//! APIs that do not require a signature. The per-app device rate limit does not
//! apply here: the gateway has its own limits per app, API and device.

use crate::http::body::{decode_body, header_text, read_bounded, signature_headers, Signed};
use crate::http::error::current_request_id;
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_gateway::{CallFailure, CallRequest, Caller};
use atoll_protocol::gateway::{self as wire, GatewayKey, HEADER_OPERATION_TYPE};
use atoll_protocol::{signing, ErrorCode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The gateway's device routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(wire::CALL_PATH, post(call))
        .route("/device/v1/gateway/keys", get(keys))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn keys(
    State(state): State<AppState>,
    signed: Signed<Empty>,
) -> ApiResult<Json<Vec<GatewayKey>>> {
    Ok(Json(state.gateway.device_keys(&signed.caller).await?))
}

/// The operation type header, checked against the naming rule before anything
/// else is read, so it is safe in logs and metrics labels.
pub(crate) fn operation_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(HEADER_OPERATION_TYPE)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the {HEADER_OPERATION_TYPE} header names the API to call"),
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the {HEADER_OPERATION_TYPE} header is not text"),
            )
        })?;
    atoll_gateway::validate::operation_type(value)
        .map_err(|error| ApiError::new(ErrorCode::InvalidRequest, error.to_string()))?;
    Ok(value.to_owned())
}

async fn call(State(state): State<AppState>, request: Request<Body>) -> Response {
    run(&state, request).await.unwrap_or_else(|refusal| refusal)
}

fn failure_response(failure: CallFailure) -> Response {
    let headers = failure.headers;
    let mut response = ApiError::from(failure.error).into_response();
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn run(state: &AppState, request: Request<Body>) -> Result<Response, Response> {
    let (parts, body) = request.into_parts();
    let operation_type = operation_type(&parts.headers).map_err(IntoResponse::into_response)?;
    let limits = &state.config.device;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let raw = read_bounded(body, limits.max_body_bytes, declared)
        .await
        .map_err(IntoResponse::into_response)?;
    let signature_headers = signature_headers(&parts.headers);
    let verifier = state.platform.verifier();
    let caller = if signature_headers.signature.is_some() {
        let device = verifier
            .verify(
                &signature_headers,
                parts.method.as_str(),
                &wire::signed_path(&operation_type),
                parts.uri.query().unwrap_or(""),
                &raw,
            )
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        Caller {
            app_id: device.app_id,
            app_key: device.app_key,
            workspace_id: device.workspace_id,
            device_id: Some(device.device_id),
            signed: true,
            timestamp: signature_headers.timestamp,
            trusted: false,
        }
    } else {
        let app_key = signature_headers.app_key.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingSignature,
                format!("header {} is required", signing::HEADER_APP_KEY),
            )
            .into_response()
        })?;
        let app = verifier
            .app_by_key(app_key)
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        Caller {
            app_id: app.app_id,
            app_key: app.app_key,
            workspace_id: app.workspace_id,
            // Unverified: passed on so backends can log it, never trusted for
            // the bound user.
            device_id: signature_headers
                .device_id
                .filter(|id| atoll_core::validate::device_text_id("device_id", id).is_ok()),
            signed: false,
            timestamp: signature_headers.timestamp,
            trusted: false,
        }
    };
    let encoding = header_text(&parts.headers, header::CONTENT_ENCODING.as_str());
    let body = decode_body(encoding.as_deref(), raw, limits.max_decompressed_bytes)
        .map_err(IntoResponse::into_response)?;
    let request_id = current_request_id().unwrap_or_default();
    let answer = state
        .gateway
        .call(CallRequest {
            caller,
            operation_type: &operation_type,
            headers: &parts.headers,
            body,
            request_id: &request_id,
        })
        .await
        .map_err(failure_response)?;
    // The answer's own headers only: a default content type added here would
    // sit beside the backend's (or the envelope's).
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = answer.headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn headers(operation_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(operation_type) {
            headers.insert(HEADER_OPERATION_TYPE, value);
        }
        headers
    }

    #[test]
    fn the_operation_type_header_is_required_and_checked() {
        assert_eq!(
            operation_type(&headers("com.shop.order.get")).unwrap(),
            "com.shop.order.get"
        );
        for bad in ["", "com.shop", "COM.SHOP.ORDER", "com.shop.order get"] {
            assert_eq!(
                operation_type(&headers(bad)).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
        assert!(operation_type(&HeaderMap::new()).is_err());
    }

    proptest! {
        // What the `gateway_call` fuzz target checks, on every test run.
        #[test]
        fn any_call_reads_to_a_path_inside_its_template_or_a_code(
            operation in "\\PC{0,40}|[a-z]{1,5}\\.[a-z]{1,5}\\.[a-z]{1,5}",
            body in prop_oneof![
                "\\PC{0,80}",
                prop::collection::vec((prop_oneof![Just("id".to_owned()), Just("x".to_owned()), "[a-z.]{1,6}"], "\\PC{0,12}"), 0..4).prop_map(|pairs| {
                    serde_json::Value::Object(
                        pairs.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
                    )
                    .to_string()
                }),
            ],
        ) {
            for template in ["/orders/${id}", "/a/${x.y}/b", "/static"] {
                if let Ok(path) = crate::fuzzing::gateway_call(&headers(&operation), body.as_bytes(), template) {
                    let prefix = template.split("${").next().unwrap_or("");
                    prop_assert!(path.starts_with(prefix), "{path} escaped {template}");
                    prop_assert!(!path.contains("/../") && !path.contains("/./"), "{path}");
                }
            }
        }
    }
}
