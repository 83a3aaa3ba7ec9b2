//! The algorithm suites, named by one byte on the wire.

use std::fmt;
use std::str::FromStr;

use crate::EnvelopeError;

/// An algorithm family: key agreement, key derivation and AEAD together.
///
/// The byte values are part of the wire format and are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// Ephemeral-static X25519, HKDF-SHA256, AES-256-GCM. The default: fast
    /// everywhere and hard to misuse.
    X25519Aes256Gcm,
    /// Ephemeral-static ECDH on NIST P-256, HKDF-SHA256, AES-256-GCM: for devices
    /// whose keys live in hardware that only speaks P-256 (Secure Enclave, StrongBox).
    P256Aes256Gcm,
    /// Ephemeral-static ECDH on the SM2 curve with the SM3 KDF of GM/T 0003.4 and
    /// SM4-GCM (GB/T 36624): for deployments that must use the national algorithms.
    Sm2Sm4Gcm,
}

impl Suite {
    /// Every suite, in byte order.
    pub const ALL: [Suite; 3] = [Self::X25519Aes256Gcm, Self::P256Aes256Gcm, Self::Sm2Sm4Gcm];

    /// The byte that names the suite on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::X25519Aes256Gcm => 0x01,
            Self::P256Aes256Gcm => 0x02,
            Self::Sm2Sm4Gcm => 0x03,
        }
    }

    /// The suite a wire byte names.
    pub fn from_byte(byte: u8) -> Result<Self, EnvelopeError> {
        match byte {
            0x01 => Ok(Self::X25519Aes256Gcm),
            0x02 => Ok(Self::P256Aes256Gcm),
            0x03 => Ok(Self::Sm2Sm4Gcm),
            _ => Err(EnvelopeError::UnsupportedSuite),
        }
    }

    /// The name used in configuration and in `contracts/envelope.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::X25519Aes256Gcm => "x25519-aes256gcm",
            Self::P256Aes256Gcm => "p256-aes256gcm",
            Self::Sm2Sm4Gcm => "sm2-sm4gcm",
        }
    }

    /// Length of a public key of this suite on the wire: 32 bytes for X25519, the
    /// 65-byte uncompressed SEC1 point (`04 || x || y`) for P-256 and SM2. Compressed
    /// points are refused so that each key has exactly one encoding.
    pub fn public_key_len(self) -> usize {
        match self {
            Self::X25519Aes256Gcm => 32,
            Self::P256Aes256Gcm | Self::Sm2Sm4Gcm => 65,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = EnvelopeError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|suite| suite.name() == name)
            .ok_or(EnvelopeError::UnsupportedSuite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_names_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_byte(suite.to_byte()), Ok(suite));
            assert_eq!(suite.name().parse::<Suite>(), Ok(suite));
        }
        assert_eq!(Suite::from_byte(0), Err(EnvelopeError::UnsupportedSuite));
        assert_eq!("rsa".parse::<Suite>(), Err(EnvelopeError::UnsupportedSuite));
    }
}
