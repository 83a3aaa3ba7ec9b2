//! `GET /device/v1/connect`: the device connection's WebSocket handshake.
//! The upgrade request is signed like every device request (over an empty
//! body); once verified, the connection is admitted by the sync hub and the
//! upgraded socket is served by `atoll_sync::connection`.

use crate::http::body::signature_headers;
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::sync::CONNECT_PATH;
use atoll_protocol::ErrorCode;
use atoll_sync::{CloseReason, Refused};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use rand::Rng;

/// The device connection route.
pub fn router() -> Router<AppState> {
    Router::new().route(CONNECT_PATH, get(connect))
}

async fn connect(State(state): State<AppState>, request: Request) -> Response {
    match accept(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn accept(state: AppState, mut request: Request) -> ApiResult<Response> {
    let key = atoll_ws::handshake::check_upgrade_request(request.method(), request.headers())
        .map_err(|error| ApiError::new(ErrorCode::UpgradeRequired, error.to_string()))?;
    let caller = state
        .platform
        .verifier()
        .verify(
            &signature_headers(request.headers()),
            request.method().as_str(),
            request.uri().path(),
            request.uri().query().unwrap_or(""),
            b"",
        )
        .await?;
    state.limiter.check(&caller.app_id)?;
    let conn = match state.sync.open_connection(&caller).await? {
        Ok(conn) => conn,
        Err(refused) => {
            // Spread the reconnects of a refused crowd over a few seconds.
            let wait = rand::rng().random_range(2..=10);
            let detail = match refused {
                Refused::ShuttingDown => "this node is shutting down; reconnect elsewhere",
                Refused::Full => "this node holds its maximum of device connections",
            };
            return Err(ApiError::new(ErrorCode::Unavailable, detail).retry_after(wait));
        }
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let sync = state.sync.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => atoll_sync::connection::serve(sync, conn, TokioIo::new(upgraded)).await,
            Err(error) => {
                tracing::debug!(%error, "device connection upgrade failed");
                sync.hub.unregister(&conn, CloseReason::ClientClosed);
            }
        }
    });
    let accept = HeaderValue::from_str(&atoll_ws::handshake::accept_key(&key))
        .expect("a base64 key is a valid header");
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response())
}
