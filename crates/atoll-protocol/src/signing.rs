//! The device request signature (DESIGN.md §3).
//!
//! Every device request carries five headers: the app key, the device id (empty on
//! `register` before the device has one is not allowed: the SDK generates the id
//! first), a Unix timestamp in seconds, a single-use nonce, and the signature: the
//! lowercase hex HMAC-SHA256, keyed with the app secret, of the canonical string
//!
//! ```text
//! ATOLL-HMAC-SHA256\n
//! <app key>\n<device id>\n<METHOD>\n<path>\n<canonical query>\n<timestamp>\n<nonce>\n<hex sha256 of the body bytes as sent>
//! ```
//!
//! The canonical query is the raw query string split on `&`, each pair kept exactly
//! as sent (no re-encoding), sorted, and joined with `&`. The body hash covers the
//! bytes on the wire, so the server checks the signature before it decompresses.
//! Golden vectors live in `contracts/signing.json` and are checked by server and SDK.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header carrying the app key.
pub const HEADER_APP_KEY: &str = "x-atoll-app-key";
/// Header carrying the device id.
pub const HEADER_DEVICE_ID: &str = "x-atoll-device-id";
/// Header carrying the Unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "x-atoll-timestamp";
/// Header carrying the single-use nonce.
pub const HEADER_NONCE: &str = "x-atoll-nonce";
/// Header carrying the hex signature.
pub const HEADER_SIGNATURE: &str = "x-atoll-signature";
/// The algorithm tag, first line of the canonical string.
pub const ALGORITHM: &str = "ATOLL-HMAC-SHA256";
/// Shortest accepted nonce.
pub const NONCE_MIN_LEN: usize = 16;
/// Longest accepted nonce.
pub const NONCE_MAX_LEN: usize = 64;

/// The parts of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// The app's public key.
    pub app_key: &'a str,
    /// The device id the SDK generated.
    pub device_id: &'a str,
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Request path, without the query.
    pub path: &'a str,
    /// The raw query string without `?`, or empty.
    pub query: &'a str,
    /// Unix timestamp in seconds.
    pub timestamp: i64,
    /// The single-use nonce.
    pub nonce: &'a str,
    /// The body bytes as sent on the wire (possibly compressed).
    pub body: &'a [u8],
}

/// Sorts the raw `&`-separated pairs of a query string.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// The exact string that is signed.
pub fn canonical_string(parts: &SignedParts<'_>) -> String {
    let body_hash = hex::encode(Sha256::digest(parts.body));
    format!(
        "{ALGORITHM}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        parts.app_key,
        parts.device_id,
        parts.method.to_ascii_uppercase(),
        parts.path,
        canonical_query(parts.query),
        parts.timestamp,
        parts.nonce,
        body_hash
    )
}

/// Computes the lowercase hex signature of a request.
pub fn sign(secret: &str, parts: &SignedParts<'_>) -> String {
    hex::encode(mac(secret, parts).finalize().into_bytes())
}

/// Checks a hex signature in constant time. A signature that is not valid hex, or
/// has the wrong length, is simply wrong: the caller learns nothing more.
pub fn verify(secret: &str, parts: &SignedParts<'_>, signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    mac(secret, parts).verify_slice(&given).is_ok()
}

fn mac(secret: &str, parts: &SignedParts<'_>) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(canonical_string(parts).as_bytes());
    mac
}

/// Whether a nonce has an acceptable length and alphabet (`[A-Za-z0-9_-]`).
pub fn nonce_is_well_formed(nonce: &str) -> bool {
    (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts<'a>(body: &'a [u8], query: &'a str) -> SignedParts<'a> {
        SignedParts {
            app_key: "ak_test",
            device_id: "dev-1",
            method: "POST",
            path: "/device/v1/register",
            query,
            timestamp: 1_700_000_000,
            nonce: "0123456789abcdef",
            body,
        }
    }

    #[test]
    fn query_order_does_not_matter() {
        let body = b"{}";
        assert_eq!(
            sign("s", &parts(body, "b=2&a=1")),
            sign("s", &parts(body, "a=1&b=2"))
        );
    }

    #[test]
    fn golden_vectors_match() {
        let text = include_str!("../../../contracts/signing.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        for vector in doc["vectors"].as_array().unwrap() {
            let body = vector["body"].as_str().unwrap().as_bytes();
            let parts = SignedParts {
                app_key: vector["app_key"].as_str().unwrap(),
                device_id: vector["device_id"].as_str().unwrap(),
                method: vector["method"].as_str().unwrap(),
                path: vector["path"].as_str().unwrap(),
                query: vector["query"].as_str().unwrap(),
                timestamp: vector["timestamp"].as_i64().unwrap(),
                nonce: vector["nonce"].as_str().unwrap(),
                body,
            };
            let secret = vector["secret"].as_str().unwrap();
            assert_eq!(
                canonical_string(&parts),
                vector["canonical"].as_str().unwrap()
            );
            assert_eq!(sign(secret, &parts), vector["signature"].as_str().unwrap());
            assert!(verify(
                secret,
                &parts,
                vector["signature"].as_str().unwrap()
            ));
        }
    }

    proptest! {
        /// Flipping any byte of the body, path, method or nonce breaks the signature.
        #[test]
        fn any_mutation_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            flip_at in any::<prop::sample::Index>(),
            field in 0usize..4,
        ) {
            let original = SignedParts {
                app_key: "ak_test",
                device_id: "dev-1",
                method: "POST",
                path: "/device/v1/bind",
                query: "x=1",
                timestamp: 1_700_000_000,
                nonce: "nonce-nonce-nonce-1",
                body: &body,
            };
            let signature = sign("secret", &original);
            let mut mutated_body = body.clone();
            let mut path = original.path.as_bytes().to_vec();
            let mut nonce = original.nonce.as_bytes().to_vec();
            let mut method = original.method.as_bytes().to_vec();
            let target = match field {
                0 => &mut mutated_body,
                1 => &mut path,
                2 => &mut nonce,
                _ => &mut method,
            };
            if target.is_empty() {
                target.push(b'x');
            } else {
                let index = flip_at.index(target.len());
                // Keep ASCII letters ASCII (and change the case-insensitive method
                // in a way upper-casing does not undo).
                target[index] = if target[index] == b'Z' { b'Y' } else { b'Z' };
            }
            let path = String::from_utf8(path).unwrap();
            let nonce = String::from_utf8(nonce).unwrap();
            let method = String::from_utf8(method).unwrap();
            let mutated = SignedParts {
                body: &mutated_body,
                path: &path,
                nonce: &nonce,
                method: &method,
                ..original
            };
            prop_assert!(!verify("secret", &mutated, &signature));
        }
    }
}
