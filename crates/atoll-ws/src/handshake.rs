//! The HTTP/1.1 upgrade handshake (RFC 6455 §4).
//!
//! Only the checks and the key arithmetic live here; the server answers
//! through its own HTTP stack and the client writes its request itself.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Method};
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (RFC 6455 §1.3).
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this crate (and RFC 6455) speaks.
pub const WS_VERSION: &str = "13";

/// Why an upgrade request or response is not an acceptable WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request method is not GET.
    #[error("a WebSocket upgrade must use GET, not {0}")]
    MethodNotGet(String),
    /// No `Upgrade: websocket` header.
    #[error("missing `Upgrade: websocket` header")]
    MissingUpgrade,
    /// No `upgrade` token in the `Connection` header.
    #[error("missing `Connection: Upgrade` header")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    /// No (single) `Sec-WebSocket-Key` header.
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes.
    #[error("Sec-WebSocket-Key must be base64 of 16 bytes")]
    InvalidKey,
    /// The server answered with something other than 101 Switching Protocols.
    #[error("expected status 101 Switching Protocols, got {0}")]
    UnexpectedStatus(u16),
    /// The server's `Sec-WebSocket-Accept` does not match the key we sent.
    #[error("Sec-WebSocket-Accept is missing or does not match the key sent")]
    InvalidAccept,
}

impl HandshakeError {
    /// The HTTP status a server should answer a bad upgrade request with:
    /// 426 Upgrade Required for a wrong version (send
    /// `Sec-WebSocket-Version: 13` with it, RFC 6455 §4.4), else 400.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Checks a server-side upgrade request and returns the client's key (to be
/// passed to [`accept_key`]).
///
/// Header values are matched as the RFC says: `Upgrade` and `Connection` are
/// case-insensitive comma-separated token lists (browsers send
/// `Connection: keep-alive, Upgrade`), and they may be split over several
/// header lines.
pub fn check_upgrade_request(
    method: &Method,
    headers: &HeaderMap,
) -> Result<String, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet(method.to_string()));
    }
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == WS_VERSION.as_bytes() => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k,
        _ => return Err(HandshakeError::MissingKey),
    };
    let key =
        std::str::from_utf8(key.as_bytes().trim_ascii()).map_err(|_| HandshakeError::InvalidKey)?;
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => Ok(key.to_owned()),
        _ => Err(HandshakeError::InvalidKey),
    }
}

/// A fresh `Sec-WebSocket-Key` for a client request: 16 random bytes, base64.
pub fn client_request_key() -> String {
    let raw: [u8; 16] = rand::random();
    STANDARD.encode(raw)
}

/// Checks a server's answer to the upgrade request that carried `sent_key`.
pub fn check_upgrade_response(
    status: u16,
    headers: &HeaderMap,
    sent_key: &str,
) -> Result<(), HandshakeError> {
    if status != 101 {
        return Err(HandshakeError::UnexpectedStatus(status));
    }
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    match headers.get(SEC_WEBSOCKET_ACCEPT) {
        Some(v) if v.as_bytes().trim_ascii() == accept_key(sent_key).as_bytes() => Ok(()),
        _ => Err(HandshakeError::InvalidAccept),
    }
}

/// Whether any of the `name` header lines lists `token` (ASCII case-insensitive).
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
        h
    }

    #[test]
    fn rfc_accept_key_example() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_a_valid_request_with_token_lists() {
        assert_eq!(
            check_upgrade_request(&Method::GET, &request()).unwrap(),
            KEY
        );
        let mut h = request();
        h.insert(UPGRADE, HeaderValue::from_static("foo/1, WebSocket"));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(CONNECTION, HeaderValue::from_static("x, UPGRADE "));
        assert_eq!(check_upgrade_request(&Method::GET, &h).unwrap(), KEY);
    }

    #[test]
    fn rejects_each_bad_request_with_its_own_error() {
        use HandshakeError::*;
        fn check<R>(edit: impl FnOnce(&mut HeaderMap) -> R) -> HandshakeError {
            let mut h = request();
            edit(&mut h);
            check_upgrade_request(&Method::GET, &h).unwrap_err()
        }
        assert_eq!(
            check_upgrade_request(&Method::POST, &request()).unwrap_err(),
            MethodNotGet("POST".into())
        );
        assert_eq!(check(|h| h.remove(UPGRADE)), MissingUpgrade);
        assert_eq!(
            check(|h| h.insert(UPGRADE, HeaderValue::from_static("websockets"))),
            MissingUpgrade
        );
        assert_eq!(
            check(|h| h.insert(CONNECTION, HeaderValue::from_static("keep-alive"))),
            MissingConnectionUpgrade
        );
        assert_eq!(
            check(|h| h.remove(SEC_WEBSOCKET_VERSION)),
            UnsupportedVersion
        );
        assert_eq!(
            check(|h| h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"))),
            UnsupportedVersion
        );
        assert_eq!(check(|h| h.remove(SEC_WEBSOCKET_KEY)), MissingKey);
        assert_eq!(
            check(|h| h.append(SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY))),
            MissingKey
        );
        assert_eq!(
            check(|h| h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("c2hvcnQ="))),
            InvalidKey
        );
        assert_eq!(
            check(|h| h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("not base64!"))),
            InvalidKey
        );
        assert_eq!(UnsupportedVersion.status(), 426);
        assert_eq!(MissingKey.status(), 400);
    }

    #[test]
    fn client_side_checks() {
        let key = client_request_key();
        assert_eq!(STANDARD.decode(&key).unwrap().len(), 16);
        assert_ne!(key, client_request_key());
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept_key(&key)).unwrap(),
        );
        check_upgrade_response(101, &h, &key).unwrap();
        assert_eq!(
            check_upgrade_response(200, &h, &key),
            Err(HandshakeError::UnexpectedStatus(200))
        );
        assert_eq!(
            check_upgrade_response(101, &h, KEY),
            Err(HandshakeError::InvalidAccept)
        );
        h.remove(UPGRADE);
        assert_eq!(
            check_upgrade_response(101, &h, &key),
            Err(HandshakeError::MissingUpgrade)
        );
    }
}
