//! For app backends behind the mobile gateway: checking that a request was
//! forwarded by Atoll, and reading who made it.
//!
//! The gateway signs every request it forwards with the API group's secret
//! ([`atoll_protocol::gateway_signing`]) and removes any `x-atoll-*` header a
//! device sent, so once [`verify_forwarded`] accepts a request, its identity
//! headers (app, device, user, authorizer principal) were set by Atoll.
//!
//! ```
//! use atoll_sdk::backend::{verify_forwarded, ForwardedCaller};
//! use atoll_sdk::protocol::gateway_signing::ForwardedSignatureError;
//! use reqwest::header::HeaderMap;
//!
//! /// In an HTTP handler: method, path and raw query as received, the headers
//! /// and the body bytes exactly as they arrived.
//! fn caller(
//!     secret: &str,
//!     path: &str,
//!     query: &str,
//!     headers: &HeaderMap,
//!     body: &[u8],
//! ) -> Result<ForwardedCaller, ForwardedSignatureError> {
//!     let now = std::time::SystemTime::now()
//!         .duration_since(std::time::UNIX_EPOCH)
//!         .map(|elapsed| elapsed.as_secs() as i64)
//!         .unwrap_or(0);
//!     verify_forwarded(secret, "POST", path, query, headers, body, now)
//! }
//! // Answer `401` on `Err`; on `Ok(caller)`, `caller.user_id` is the signed-in
//! // user bound to the device, if any.
//! ```
//!
//! `reqwest::header::HeaderMap` is `http::HeaderMap`, the type axum, hyper,
//! tonic and actix (through `http`) hand to handlers. With another framework,
//! use [`verify_forwarded_with`] and a header getter.

use atoll_protocol::gateway_signing::{
    self as gw, ForwardedParts, ForwardedSignatureError, DEFAULT_WINDOW_SECS,
};
use reqwest::header::HeaderMap;

/// Who made a forwarded request, as the gateway signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCaller {
    /// The internal id of the calling app.
    pub app_id: String,
    /// The calling device; `None` when the gateway sent none. Verified by the
    /// device's signature unless the API does not require one.
    pub device_id: Option<String>,
    /// The user bound to the device, if any.
    pub user_id: Option<String>,
    /// The principal returned by the API's authorizer, if it has one.
    pub principal: Option<String>,
    /// The operation type that was called.
    pub operation_type: String,
    /// The gateway's request id (also in its access log).
    pub request_id: String,
    /// Unix seconds when the gateway forwarded the request.
    pub timestamp: i64,
}

/// Checks the gateway's signature on a forwarded request and returns its caller.
///
/// `method`, `path` (percent-encoding as received) and `query` (raw, without
/// `?`, or empty) are the request line as the backend received it, `body` the
/// bytes as received (before any decompression), `now` the backend's clock in
/// Unix seconds. The timestamp may be at most
/// [`DEFAULT_WINDOW_SECS`] (300 s) from `now`.
///
/// Errors: [`ForwardedSignatureError::TimestampSkew`] when the timestamp is out
/// of the window; [`ForwardedSignatureError::InvalidSignature`] when the
/// signature does not match, or the signature or timestamp header is missing or
/// unreadable. An identity header that is absent counts as empty, as the gateway
/// signs it. Header values are read as UTF-8.
pub fn verify_forwarded(
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<ForwardedCaller, ForwardedSignatureError> {
    verify_forwarded_with(
        secret,
        method,
        path,
        query,
        |name| {
            headers
                .get(name)
                .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        },
        body,
        now,
    )
}

/// [`verify_forwarded`] with a header getter (`name` is lower case) instead of
/// an `http::HeaderMap`.
pub fn verify_forwarded_with<'h>(
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: i64,
) -> Result<ForwardedCaller, ForwardedSignatureError> {
    let signature =
        header(gw::HEADER_SIGNATURE).ok_or(ForwardedSignatureError::InvalidSignature)?;
    let timestamp = header(gw::HEADER_TIMESTAMP)
        .and_then(|value| value.trim().parse::<i64>().ok())
        .ok_or(ForwardedSignatureError::InvalidSignature)?;
    let value = |name: &str| header(name).unwrap_or_default();
    let parts = ForwardedParts {
        method,
        path,
        query,
        timestamp,
        request_id: value(gw::HEADER_REQUEST_ID),
        operation_type: value(gw::HEADER_OPERATION_TYPE),
        app_id: value(gw::HEADER_APP_ID),
        device_id: value(gw::HEADER_DEVICE_ID),
        user_id: value(gw::HEADER_USER_ID),
        principal: value(gw::HEADER_PRINCIPAL),
        body,
    };
    gw::verify(secret, &parts, signature.trim(), now, DEFAULT_WINDOW_SECS)?;
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Ok(ForwardedCaller {
        app_id: parts.app_id.to_owned(),
        device_id: optional(parts.device_id),
        user_id: optional(parts.user_id),
        principal: optional(parts.principal),
        operation_type: parts.operation_type.to_owned(),
        request_id: parts.request_id.to_owned(),
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn vectors() -> Vec<serde_json::Value> {
        let text = include_str!("../../../contracts/gateway-signing.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        doc["vectors"].as_array().unwrap().clone()
    }

    /// The headers the gateway would send for a vector; empty identities are
    /// left out (they are signed as empty).
    fn headers_of(vector: &serde_json::Value) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            if !value.is_empty() {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                );
            }
        };
        let field = |name: &str| vector[name].as_str().unwrap().to_owned();
        put(gw::HEADER_SIGNATURE, field("signature"));
        put(gw::HEADER_TIMESTAMP, vector["timestamp"].to_string());
        put(gw::HEADER_REQUEST_ID, field("request_id"));
        put(gw::HEADER_OPERATION_TYPE, field("operation_type"));
        put(gw::HEADER_APP_ID, field("app_id"));
        put(gw::HEADER_DEVICE_ID, field("device_id"));
        put(gw::HEADER_USER_ID, field("user_id"));
        put(gw::HEADER_PRINCIPAL, field("principal"));
        headers
    }

    fn check(
        vector: &serde_json::Value,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<ForwardedCaller, ForwardedSignatureError> {
        let field = |name: &str| vector[name].as_str().unwrap();
        verify_forwarded(
            field("secret"),
            field("method"),
            field("path"),
            field("query"),
            headers,
            body,
            now,
        )
    }

    #[test]
    fn every_golden_vector_verifies_and_yields_its_caller() {
        for vector in vectors() {
            let field = |name: &str| vector[name].as_str().unwrap();
            let timestamp = vector["timestamp"].as_i64().unwrap();
            let caller = check(
                &vector,
                &headers_of(&vector),
                field("body").as_bytes(),
                timestamp + 300,
            )
            .unwrap_or_else(|error| panic!("{}: {error:?}", field("name")));
            let optional = |name: &str| Some(field(name).to_owned()).filter(|v| !v.is_empty());
            assert_eq!(
                caller,
                ForwardedCaller {
                    app_id: field("app_id").to_owned(),
                    device_id: optional("device_id"),
                    user_id: optional("user_id"),
                    principal: optional("principal"),
                    operation_type: field("operation_type").to_owned(),
                    request_id: field("request_id").to_owned(),
                    timestamp,
                }
            );
        }
    }

    #[test]
    fn refuses_skew_tampering_and_missing_headers() {
        let vector = vectors()
            .into_iter()
            .find(|vector| !vector["principal"].as_str().unwrap().is_empty())
            .unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let timestamp = vector["timestamp"].as_i64().unwrap();
        let headers = headers_of(&vector);
        assert!(check(&vector, &headers, body, timestamp - 300).is_ok());
        assert_eq!(
            check(&vector, &headers, body, timestamp + 301),
            Err(ForwardedSignatureError::TimestampSkew)
        );
        assert_eq!(
            check(&vector, &headers, b"{\"nickname\":\"x\"}", timestamp),
            Err(ForwardedSignatureError::InvalidSignature)
        );
        // A device cannot claim another principal or user.
        for name in [gw::HEADER_PRINCIPAL, gw::HEADER_USER_ID, gw::HEADER_APP_ID] {
            let mut forged = headers.clone();
            forged.insert(name, HeaderValue::from_static("someone-else"));
            assert_eq!(
                check(&vector, &forged, body, timestamp),
                Err(ForwardedSignatureError::InvalidSignature),
                "{name}"
            );
        }
        for name in [gw::HEADER_SIGNATURE, gw::HEADER_TIMESTAMP] {
            let mut missing = headers.clone();
            missing.remove(name);
            assert_eq!(
                check(&vector, &missing, body, timestamp),
                Err(ForwardedSignatureError::InvalidSignature),
                "{name}"
            );
        }
        let mut removed = headers.clone();
        removed.remove(gw::HEADER_PRINCIPAL);
        assert_eq!(
            check(&vector, &removed, body, timestamp),
            Err(ForwardedSignatureError::InvalidSignature)
        );
    }
}

/// Why a push receipt POST was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signature or timestamp header is missing, or the signature does not match.
    #[error("the receipt signature does not match")]
    InvalidSignature,
    /// The timestamp is more than 300 s from the backend's clock (a replay).
    #[error("the receipt timestamp is outside the accepted window")]
    TimestampSkew,
    /// The body is not a receipt batch.
    #[error("the body is not a receipt batch: {0}")]
    Malformed(String),
}

/// Checks a push receipt POST (sent to the app's `receipt_url`) and reads it.
///
/// `secret` is the app's receipt secret, `timestamp` and `signature` the
/// values of the `x-atoll-timestamp` and `x-atoll-signature` headers, `body`
/// the bytes as received, `now` the backend's clock in Unix seconds.
pub fn verify_receipts(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<atoll_protocol::push::ReceiptBatch, ReceiptError> {
    use subtle::ConstantTimeEq;
    let timestamp: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(ReceiptError::InvalidSignature)?;
    let signature = signature.ok_or(ReceiptError::InvalidSignature)?;
    let expected = atoll_protocol::push::receipt_signature(secret, timestamp, body);
    if !bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
        return Err(ReceiptError::InvalidSignature);
    }
    if (now - timestamp).abs() > DEFAULT_WINDOW_SECS {
        return Err(ReceiptError::TimestampSkew);
    }
    serde_json::from_slice(body).map_err(|error| ReceiptError::Malformed(error.to_string()))
}
