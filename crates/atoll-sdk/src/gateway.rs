//! Calls through the mobile gateway (`POST /gw/v1`), plain or encrypted, and the
//! workspace's payload-encryption keys.
//!
//! A call is signed like every device request, except that the signature covers
//! the path `/gw/v1/<operation type>` ([`atoll_protocol::gateway::signed_path`])
//! while the request goes to `/gw/v1` with the operation type in the
//! `operation-type` header, so the operation type cannot be changed in flight.
//!
//! An encrypted call seals the JSON body to one of the workspace's public keys
//! ([`atoll_envelope::seal_request`]) with the context
//! `encode_context([app key, operation type, timestamp as decimal text])`, where
//! the timestamp is the one the request is signed with; each attempt is sealed
//! afresh. The server seals its successful answer with the same session, and the
//! SDK opens it, so the caller only ever sees plaintext.
//!
//! # What is an error
//!
//! The gateway's own refusals (unknown API, rate limit, backend timeout, a body
//! that does not open, ...) are problem documents (`application/problem+json`)
//! and come back as [`Error::Api`], like every other call of the SDK. Any other
//! answer, including a backend's own `4xx` that the gateway passes through as it
//! is, comes back as a [`GatewayResponse`]: look at its
//! [`status`](GatewayResponse::status).
//!
//! # Retries
//!
//! A backend call may not be idempotent, so a gateway call is sent again (per the
//! [`RetryPolicy`](crate::RetryPolicy)) only when it certainly reached no
//! backend: the connection could not be made, or the gateway answered `429` or
//! `503` itself (rate limit, load shedding, open circuit breaker). A timestamp
//! skew is corrected once, as for every device request.

use crate::device::Route;
use crate::{Compression, DeviceClient, Error, RequestOptions, Result};
use atoll_envelope::{encode_context, seal_request, ResponseKey, ServerPublicKey, Suite};
use atoll_protocol::gateway::{
    signed_path, GatewayKey, CALL_PATH, ENVELOPE_CONTENT_TYPE, HEADER_CACHE, HEADER_OPERATION_TYPE,
    HEADER_RESULT_STATUS,
};
use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

/// The device API path of the workspace's payload-encryption public keys.
pub const KEYS_PATH: &str = "/device/v1/gateway/keys";

/// The answer to a gateway call that is not a problem document: a success, or a
/// backend's own error answer passed through.
#[derive(Debug, Clone)]
pub struct GatewayResponse {
    /// HTTP status.
    pub status: u16,
    /// The mPaaS-compatible `result-status` header (`1000` = ok), when present.
    pub result_status: Option<u32>,
    /// The `x-atoll-cache` header: `hit`, `miss` or `bypass`, when present.
    pub cache: Option<String>,
    /// Every header of the answer, as received (an encrypted answer keeps its
    /// `application/x-atoll-envelope` content type here).
    pub headers: HeaderMap,
    /// The body; for an encrypted call, the opened plaintext.
    pub body: Bytes,
}

impl GatewayResponse {
    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::Decode(format!(
                "{error}: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ))
        })
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads a finished HTTP answer; `opener` opens an encrypted one.
    async fn read(
        response: reqwest::Response,
        opener: Option<&ResponseKey>,
    ) -> Result<GatewayResponse> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        let sealed = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with(ENVELOPE_CONTENT_TYPE)
            });
        let body = match opener {
            Some(key) if sealed => Bytes::from(key.open_response(&body)?),
            // An encrypted call's answer is sealed; a plaintext success body would
            // be unauthenticated, so it is refused rather than handed over.
            Some(_) if (200..300).contains(&status) && !body.is_empty() => {
                return Err(Error::Decode(
                    "the answer to an encrypted call is not an envelope".into(),
                ))
            }
            _ => body,
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.trim().to_owned())
        };
        Ok(GatewayResponse {
            status,
            result_status: header(HEADER_RESULT_STATUS).and_then(|value| value.parse().ok()),
            cache: header(HEADER_CACHE),
            headers,
            body,
        })
    }
}

/// The [`ServerPublicKey`] of a key the server lists: `suite` by name and
/// `public_key` in standard padded base64. The key's id is checked against the
/// key bytes, so a garbled listing is refused.
pub fn server_public_key(key: &GatewayKey) -> Result<ServerPublicKey> {
    let suite: Suite = key.suite.parse()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.public_key.trim())
        .map_err(|error| Error::Decode(format!("public key of {}: {error}", key.key_id)))?;
    let public = ServerPublicKey::from_bytes(suite, &bytes)?;
    if !public
        .key_id()
        .to_string()
        .eq_ignore_ascii_case(&key.key_id)
    {
        return Err(Error::Decode(format!(
            "key id {} does not match its public key ({})",
            key.key_id,
            public.key_id()
        )));
    }
    Ok(public)
}

/// The key to seal to for `suite`: the newest current key (one without an
/// expiry), or `None` when the workspace has none of that suite.
pub fn current_key(keys: &[GatewayKey], suite: Suite) -> Option<&GatewayKey> {
    keys.iter()
        .filter(|key| key.suite == suite.name() && key.expires_at.is_none())
        .max_by_key(|key| key.created_at)
}

impl DeviceClient {
    /// Calls the API `operation_type` through the gateway with a JSON body
    /// (gzip-compressed above 1 KiB). See the [module](crate::gateway) for what
    /// is an error and what is retried.
    pub async fn call(
        &self,
        operation_type: &str,
        body: &serde_json::Value,
    ) -> Result<GatewayResponse> {
        self.call_with(operation_type, body, &RequestOptions::default())
            .await
    }

    /// [`call`](DeviceClient::call) with explicit request options.
    pub async fn call_with(
        &self,
        operation_type: &str,
        body: &serde_json::Value,
        options: &RequestOptions,
    ) -> Result<GatewayResponse> {
        let json = serde_json::to_vec(body).map_err(|error| Error::Decode(error.to_string()))?;
        let (encoding, wire_body) = crate::device::compress(&json, options.compression)?;
        let signed = signed_path(operation_type);
        let headers = [(HEADER_OPERATION_TYPE, operation_type)];
        let route = gateway_route(&signed, "application/json", encoding, &headers);
        let (response, ()) = self
            .send_signed(&route, options, |_| Ok((wire_body.clone(), ())))
            .await?;
        GatewayResponse::read(response, None).await
    }

    /// Calls the API `operation_type` with its JSON body sealed to `key` (fetch
    /// it with [`gateway_keys`](DeviceClient::gateway_keys) and
    /// [`server_public_key`]). A successful answer is opened before it is
    /// returned; problem documents are not encrypted. Never compressed.
    pub async fn call_encrypted(
        &self,
        operation_type: &str,
        body: &serde_json::Value,
        key: &ServerPublicKey,
    ) -> Result<GatewayResponse> {
        self.call_encrypted_with(operation_type, body, key, &RequestOptions::default())
            .await
    }

    /// [`call_encrypted`](DeviceClient::call_encrypted) with explicit request
    /// options (`compression` is ignored: envelopes are sent as they are).
    pub async fn call_encrypted_with(
        &self,
        operation_type: &str,
        body: &serde_json::Value,
        key: &ServerPublicKey,
        options: &RequestOptions,
    ) -> Result<GatewayResponse> {
        let plaintext =
            serde_json::to_vec(body).map_err(|error| Error::Decode(error.to_string()))?;
        let signed = signed_path(operation_type);
        let headers = [(HEADER_OPERATION_TYPE, operation_type)];
        let route = gateway_route(&signed, ENVELOPE_CONTENT_TYPE, None, &headers);
        let app_key = self.app_key().to_owned();
        let (response, response_key) = self
            .send_signed(&route, options, |timestamp| {
                let context = request_context(&app_key, operation_type, timestamp);
                Ok(seal_request(key, &plaintext, &context)?)
            })
            .await?;
        GatewayResponse::read(response, Some(&response_key)).await
    }

    /// The workspace's payload-encryption public keys (current and, during a
    /// rotation's overlap, previous ones).
    pub async fn gateway_keys(&self) -> Result<Vec<GatewayKey>> {
        let options = RequestOptions {
            compression: Compression::None,
            ..RequestOptions::default()
        };
        let response = self.send_raw("GET", KEYS_PATH, "", b"", &options).await?;
        let body = response.bytes().await?;
        serde_json::from_slice(&body).map_err(|error| Error::Decode(error.to_string()))
    }
}

/// The envelope context of a gateway call: app key, operation type and the
/// signature's timestamp as decimal text.
pub fn request_context(app_key: &str, operation_type: &str, timestamp: i64) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    encode_context(&[
        app_key.as_bytes(),
        operation_type.as_bytes(),
        timestamp.as_bytes(),
    ])
}

fn gateway_route<'a>(
    signed: &'a str,
    content_type: &'a str,
    encoding: Option<&'static str>,
    headers: &'a [(&'static str, &'a str)],
) -> Route<'a> {
    Route {
        method: "POST",
        path: CALL_PATH,
        signed_path: signed,
        query: "",
        content_type,
        encoding,
        headers,
        gateway: true,
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
