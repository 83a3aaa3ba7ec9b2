//! Ids and secrets.
//!
//! Ids are a short type prefix and a UUIDv7 (time-ordered, so indexes stay
//! append-mostly). Secrets are 32 random bytes from the OS generator, base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// A new time-ordered id such as `ws_0190b2…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A new secret with a recognisable prefix, e.g. `atk_…` for API tokens.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new public app key: short, lower-case, URL-safe.
pub fn new_app_key() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    let encoded: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("ak_{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let first = new_id("ws");
        let second = new_id("ws");
        assert!(first.starts_with("ws_"));
        assert_ne!(first, second);
        assert!(new_secret("atk").len() > 40);
        assert_eq!(new_app_key().len(), 23);
    }
}
