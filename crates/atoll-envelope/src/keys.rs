//! Server keys: the static key pair a server opens envelopes with, its public half
//! that devices seal to, and the key id that names it on the wire.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::primitives::{self, Secret, SECRET_LEN};
use crate::{EnvelopeError, Suite};

/// Length of a key id on the wire.
pub const KEY_ID_LEN: usize = 8;

/// Names a server key: the first 8 bytes of `SHA-256(suite byte || public key)`.
///
/// Eight bytes are enough to tell the handful of keys a server holds apart; the key id
/// is only a lookup hint, since the full public key goes into the key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of a public key of a suite.
    pub fn of(suite: Suite, public_key: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update([suite.to_byte()])
            .chain_update(public_key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }

    /// A key id from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The bytes on the wire.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    /// Lowercase hex, as the key id appears in logs and configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// The public half of a server key: what a device seals requests to.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerPublicKey {
    suite: Suite,
    bytes: Vec<u8>,
    key_id: KeyId,
}

impl ServerPublicKey {
    /// A public key from its wire encoding: 32 bytes for X25519, the 65-byte
    /// uncompressed SEC1 point for P-256 and SM2 (checked to be on the curve).
    pub fn from_bytes(suite: Suite, bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() != suite.public_key_len() {
            return Err(EnvelopeError::InvalidKey("public key has the wrong length"));
        }
        if !primitives::public_key_is_valid(suite, bytes) {
            return Err(EnvelopeError::InvalidKey(
                "public key is not a point of the curve",
            ));
        }
        Ok(Self::new_unchecked(suite, bytes.to_vec()))
    }

    fn new_unchecked(suite: Suite, bytes: Vec<u8>) -> Self {
        let key_id = KeyId::of(suite, &bytes);
        Self {
            suite,
            bytes,
            key_id,
        }
    }

    /// The suite this key belongs to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The wire encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key id envelopes sealed to this key carry.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

impl fmt::Debug for ServerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPublicKey")
            .field("suite", &self.suite)
            .field("key_id", &format_args!("{}", self.key_id))
            .finish()
    }
}

/// A server's static key pair of one suite. The secret is zeroized on drop and never
/// printed by `Debug`.
pub struct ServerKeyPair {
    secret: Secret,
    public: ServerPublicKey,
}

impl ServerKeyPair {
    /// Length of [`ServerKeyPair::to_bytes`]: the suite byte and the 32-byte secret.
    pub const ENCODED_LEN: usize = 1 + SECRET_LEN;

    /// A fresh random key pair.
    pub fn generate(suite: Suite) -> Self {
        Self::from_secret(suite, Secret::random(suite))
    }

    /// A key pair from [`ServerKeyPair::to_bytes`]: the suite byte, then the 32-byte
    /// secret (an X25519 scalar, or a P-256 or SM2 scalar in `1..n`, big-endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let [suite, secret @ ..] = bytes else {
            return Err(EnvelopeError::InvalidKey("empty key pair"));
        };
        let suite = Suite::from_byte(*suite)?;
        let secret: &[u8; SECRET_LEN] = secret
            .try_into()
            .map_err(|_| EnvelopeError::InvalidKey("secret is not 32 bytes"))?;
        let secret = Secret::from_bytes(suite, secret).ok_or(EnvelopeError::InvalidKey(
            "secret is not a scalar of the curve",
        ))?;
        Ok(Self::from_secret(suite, secret))
    }

    fn from_secret(suite: Suite, secret: Secret) -> Self {
        let public = ServerPublicKey::new_unchecked(suite, secret.public_bytes());
        Self { secret, public }
    }

    /// The suite byte followed by the 32 secret bytes, for the server's key store.
    /// The buffer is zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::ENCODED_LEN));
        out.push(self.public.suite.to_byte());
        out.extend_from_slice(&self.secret.to_bytes()[..]);
        out
    }

    /// The suite of the key.
    pub fn suite(&self) -> Suite {
        self.public.suite
    }

    /// The public half, to publish to devices.
    pub fn public_key(&self) -> &ServerPublicKey {
        &self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }
}

impl fmt::Debug for ServerKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKeyPair")
            .field("suite", &self.public.suite)
            .field("key_id", &format_args!("{}", self.public.key_id))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_round_trip_through_bytes() {
        for suite in Suite::ALL {
            let key = ServerKeyPair::generate(suite);
            let bytes = key.to_bytes();
            assert_eq!(bytes.len(), ServerKeyPair::ENCODED_LEN);
            let again = ServerKeyPair::from_bytes(&bytes).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(key.public_key().as_bytes().len(), suite.public_key_len());
            let public = ServerPublicKey::from_bytes(suite, key.public_key().as_bytes()).unwrap();
            assert_eq!(public.key_id(), key.key_id());
        }
    }

    #[test]
    fn bad_key_bytes_are_refused() {
        assert!(ServerKeyPair::from_bytes(&[]).is_err());
        assert!(ServerKeyPair::from_bytes(&[1; 32]).is_err());
        assert_eq!(
            ServerKeyPair::from_bytes(&[9; 33]).unwrap_err(),
            EnvelopeError::UnsupportedSuite
        );
        // Zero is not a scalar in 1..n, and neither is 2^256 - 1.
        for suite in [Suite::P256Aes256Gcm, Suite::Sm2Sm4Gcm] {
            let mut zero = vec![suite.to_byte()];
            zero.extend([0u8; 32]);
            assert!(ServerKeyPair::from_bytes(&zero).is_err());
            let mut max = vec![suite.to_byte()];
            max.extend([0xffu8; 32]);
            assert!(ServerKeyPair::from_bytes(&max).is_err());
        }
        let mut off_curve = vec![0x04];
        off_curve.extend([1u8; 64]);
        assert!(ServerPublicKey::from_bytes(Suite::P256Aes256Gcm, &off_curve).is_err());
        assert!(ServerPublicKey::from_bytes(Suite::Sm2Sm4Gcm, &off_curve).is_err());
        assert!(ServerPublicKey::from_bytes(Suite::X25519Aes256Gcm, &[1; 31]).is_err());
    }

    #[test]
    fn key_ids_depend_on_the_suite() {
        assert_ne!(
            KeyId::of(Suite::P256Aes256Gcm, &[4; 65]),
            KeyId::of(Suite::Sm2Sm4Gcm, &[4; 65])
        );
        assert_eq!(KeyId::from_bytes([0xab; 8]).to_string(), "abababababababab");
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let key = ServerKeyPair::from_bytes(&[1; 33]).unwrap();
        let text = format!("{key:?}");
        assert!(!text.contains("[1, 1"), "{text}");
        assert!(text.contains(&key.key_id().to_string()));
    }
}
