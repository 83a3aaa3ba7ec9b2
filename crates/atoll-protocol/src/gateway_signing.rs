//! The signature the gateway puts on every request it forwards to a backend, so the
//! backend can check that the request came from Atoll and that the identity headers
//! were set by Atoll, not by the device.
//!
//! The key is the API group's secret exactly as shown when the group was created
//! (its ASCII text, not the decoded bytes). The signature is the lowercase hex
//! HMAC-SHA256 of the canonical string
//!
//! ```text
//! ATOLL-GW-HMAC-SHA256\n
//! <METHOD>\n<path>\n<canonical query>\n<timestamp>\n<request id>\n<operation type>\n
//! <app id>\n<device id>\n<user id>\n<principal>\n<hex sha256 of the body>
//! ```
//!
//! `path` is the path as the backend receives it (percent-encoding as sent), the
//! canonical query is the raw query sorted by pair ([`crate::signing::canonical_query`]),
//! absent identity values are empty strings, and the body is the bytes the backend
//! receives (empty for GET). The values travel in the `x-atoll-*` headers named
//! below; the gateway removes any such header a device sent. A backend should refuse
//! a timestamp more than 300 s from its clock. Golden vectors:
//! `contracts/gateway-signing.json`.

use crate::signing::canonical_query;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm tag, first line of the canonical string.
pub const ALGORITHM: &str = "ATOLL-GW-HMAC-SHA256";
/// Unix seconds when the gateway forwarded the request.
pub const HEADER_TIMESTAMP: &str = "x-atoll-gw-timestamp";
/// The hex signature.
pub const HEADER_SIGNATURE: &str = "x-atoll-gw-signature";
/// The request id (also in the gateway's access log).
pub const HEADER_REQUEST_ID: &str = "x-atoll-request-id";
/// The operation type that was called.
pub const HEADER_OPERATION_TYPE: &str = "x-atoll-operation-type";
/// The internal id of the calling app.
pub const HEADER_APP_ID: &str = "x-atoll-app-id";
/// The calling device (verified by its signature, unless the API does not require one).
pub const HEADER_DEVICE_ID: &str = "x-atoll-device-id";
/// The user bound to the device, if any.
pub const HEADER_USER_ID: &str = "x-atoll-user-id";
/// The principal returned by the API's authorizer, if it has one.
pub const HEADER_PRINCIPAL: &str = "x-atoll-principal";
/// The window a backend should accept the timestamp in, in seconds either side.
pub const DEFAULT_WINDOW_SECS: i64 = 300;

/// The parts of a forwarded request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedParts<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path as the backend receives it.
    pub path: &'a str,
    /// Raw query string without `?`, or empty.
    pub query: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// The request id.
    pub request_id: &'a str,
    /// The operation type.
    pub operation_type: &'a str,
    /// The app id.
    pub app_id: &'a str,
    /// The device id, or empty.
    pub device_id: &'a str,
    /// The user id, or empty.
    pub user_id: &'a str,
    /// The authorizer's principal, or empty.
    pub principal: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
}

/// The exact string that is signed.
pub fn canonical_string(parts: &ForwardedParts<'_>) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.to_ascii_uppercase(),
        parts.path,
        canonical_query(parts.query),
        parts.timestamp,
        parts.request_id,
        parts.operation_type,
        parts.app_id,
        parts.device_id,
        parts.user_id,
        parts.principal,
        hex::encode(Sha256::digest(parts.body)),
    )
}

fn mac(secret: &str, parts: &ForwardedParts<'_>) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(canonical_string(parts).as_bytes());
    mac
}

/// The lowercase hex signature of a forwarded request.
pub fn sign(secret: &str, parts: &ForwardedParts<'_>) -> String {
    hex::encode(mac(secret, parts).finalize().into_bytes())
}

/// Why a backend should refuse a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedSignatureError {
    /// The timestamp is further than the window from `now`.
    TimestampSkew,
    /// The signature is not hex or does not match.
    InvalidSignature,
}

/// What a backend does: checks the timestamp window, then the signature, in
/// constant time.
pub fn verify(
    secret: &str,
    parts: &ForwardedParts<'_>,
    signature_hex: &str,
    now: i64,
    window_secs: i64,
) -> Result<(), ForwardedSignatureError> {
    if (now - parts.timestamp).abs() > window_secs {
        return Err(ForwardedSignatureError::TimestampSkew);
    }
    let signature =
        hex::decode(signature_hex).map_err(|_| ForwardedSignatureError::InvalidSignature)?;
    mac(secret, parts)
        .verify_slice(&signature)
        .map_err(|_| ForwardedSignatureError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &[u8]) -> ForwardedParts<'_> {
        ForwardedParts {
            method: "post",
            path: "/orders/42",
            query: "b=2&a=1",
            timestamp: 1_700_000_000,
            request_id: "req-1",
            operation_type: "com.shop.order.create",
            app_id: "app-1",
            device_id: "dev-1",
            user_id: "",
            principal: "",
            body,
        }
    }

    #[test]
    fn canonical_string_sorts_the_query_and_upper_cases_the_method() {
        let text = canonical_string(&parts(b""));
        assert!(text.starts_with("ATOLL-GW-HMAC-SHA256\nPOST\n/orders/42\na=1&b=2\n1700000000\n"));
        assert!(text.ends_with(
            "\napp-1\ndev-1\n\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
    }

    #[test]
    fn golden_vectors_match() {
        let text = include_str!("../../../contracts/gateway-signing.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 8);
        for vector in vectors {
            let field = |name: &str| vector[name].as_str().unwrap();
            let parts = ForwardedParts {
                method: field("method"),
                path: field("path"),
                query: field("query"),
                timestamp: vector["timestamp"].as_i64().unwrap(),
                request_id: field("request_id"),
                operation_type: field("operation_type"),
                app_id: field("app_id"),
                device_id: field("device_id"),
                user_id: field("user_id"),
                principal: field("principal"),
                body: field("body").as_bytes(),
            };
            let name = field("name");
            assert_eq!(canonical_string(&parts), field("canonical"), "{name}");
            assert_eq!(sign(field("secret"), &parts), field("signature"), "{name}");
            assert_eq!(
                verify(
                    field("secret"),
                    &parts,
                    field("signature"),
                    parts.timestamp + DEFAULT_WINDOW_SECS,
                    DEFAULT_WINDOW_SECS
                ),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn verify_checks_window_and_every_part() {
        let signature = sign("s3cret", &parts(b"{}"));
        assert_eq!(
            verify("s3cret", &parts(b"{}"), &signature, 1_700_000_300, 300),
            Ok(())
        );
        assert_eq!(
            verify("s3cret", &parts(b"{}"), &signature, 1_700_000_301, 300),
            Err(ForwardedSignatureError::TimestampSkew)
        );
        assert_eq!(
            verify("s3cret", &parts(b"{ }"), &signature, 1_700_000_000, 300),
            Err(ForwardedSignatureError::InvalidSignature)
        );
        assert_eq!(
            verify("other", &parts(b"{}"), &signature, 1_700_000_000, 300),
            Err(ForwardedSignatureError::InvalidSignature)
        );
        assert_eq!(
            verify("s3cret", &parts(b"{}"), "zz", 1_700_000_000, 300),
            Err(ForwardedSignatureError::InvalidSignature)
        );
    }
}
