//! Verifying compact JWTs (the fakes' side of the vendors' auth).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, VerificationAlgorithm};
use serde_json::Value;

/// A parsed, not yet verified, JWT.
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    /// Splits and decodes `header.claims.signature`.
    pub fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
        Some(Jwt {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature: URL_SAFE_NO_PAD.decode(s).ok()?,
        })
    }

    /// Checks the signature with `public_key` (ring's encoding for `alg`).
    pub fn verify(&self, alg: &'static dyn VerificationAlgorithm, public_key: &[u8]) -> bool {
        UnparsedPublicKey::new(alg, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .is_ok()
    }

    pub fn header_str(&self, key: &str) -> Option<&str> {
        self.header.get(key).and_then(Value::as_str)
    }

    pub fn claim_str(&self, key: &str) -> Option<&str> {
        self.claims.get(key).and_then(Value::as_str)
    }

    pub fn claim_i64(&self, key: &str) -> Option<i64> {
        self.claims.get(key).and_then(Value::as_i64)
    }
}
