//! The one error type of the crate, with stable codes for the gateway's problem bodies.

/// Why an envelope could not be sealed or opened.
///
/// The gateway maps [`EnvelopeError::code`] to its error catalogue, so codes are never
/// renamed. The messages are for logs: none of them says which byte was wrong or
/// whether the key agreement or the tag failed, because a device (or an attacker) has
/// no use for more than "this did not open".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not an envelope of a known version: too short, too long, a bad
    /// length prefix, an ephemeral key that is not a point of the suite's curve.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// The key id names no key that this server holds for the envelope's suite.
    #[error("the envelope is sealed to a key this server does not hold")]
    UnknownKey,
    /// The key id names a previous key whose overlap period has ended: the device
    /// still has an old public key and must fetch the current one.
    #[error("the envelope is sealed to a key that has expired")]
    KeyExpired,
    /// The suite byte names no suite this build knows.
    #[error("the envelope uses an unsupported suite")]
    UnsupportedSuite,
    /// The tag did not verify: wrong key, wrong context, or altered bytes.
    #[error("the envelope could not be decrypted")]
    DecryptFailed,
    /// The payload would make an envelope larger than [`crate::MAX_ENVELOPE_LEN`].
    #[error("the payload is too large for an envelope")]
    TooLarge,
    /// Key bytes given to [`crate::ServerKeyPair::from_bytes`] or
    /// [`crate::ServerPublicKey::from_bytes`] are not a key of the suite.
    #[error("invalid key bytes: {0}")]
    InvalidKey(&'static str),
}

impl EnvelopeError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "envelope_malformed",
            Self::UnknownKey => "envelope_unknown_key",
            Self::KeyExpired => "envelope_key_expired",
            Self::UnsupportedSuite => "envelope_unsupported_suite",
            Self::DecryptFailed => "envelope_decrypt_failed",
            Self::TooLarge => "envelope_too_large",
            Self::InvalidKey(_) => "envelope_invalid_key",
        }
    }
}
