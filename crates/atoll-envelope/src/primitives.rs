//! The primitives behind each suite: key agreement, key derivation and the AEAD.
//!
//! Everything here works on bytes already checked for length by the wire parser; the
//! envelope module decides what goes into the transcript and the associated data.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, AesGcm, KeyInit};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::RngCore;
use sha2::Sha256;
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

use crate::{EnvelopeError, Suite};

/// Length of every secret scalar of every suite.
pub(crate) const SECRET_LEN: usize = 32;
/// Length of the AEAD tag of both AEADs.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the AEAD nonce of both AEADs.
pub(crate) const NONCE_LEN: usize = 12;

/// The HKDF salt: a fixed label, so keys from this protocol never equal keys that
/// another protocol derives from the same shared secret.
const HKDF_SALT: &[u8] = b"atoll-envelope/v1";
/// Derivation label of the key that seals the request.
const LABEL_REQUEST: &[u8] = b"atoll-envelope/v1 request";
/// Derivation label of the key that seals the response.
const LABEL_RESPONSE: &[u8] = b"atoll-envelope/v1 response";

/// SM4 in GCM mode with the standard 96-bit nonce (GB/T 36624 / RFC 8998).
/// `AesGcm` is generic over any block cipher with 128-bit blocks.
type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

/// A secret scalar of one suite. Each variant zeroizes itself on drop.
pub(crate) enum Secret {
    X25519(x25519_dalek::StaticSecret),
    P256(p256::SecretKey),
    Sm2(sm2::SecretKey),
}

impl Secret {
    /// The secret from its 32 bytes. For P-256 and SM2 the bytes must be a scalar in
    /// `1..n`; for X25519 any 32 bytes are a key (they are clamped on use).
    pub(crate) fn from_bytes(suite: Suite, bytes: &[u8; SECRET_LEN]) -> Option<Self> {
        match suite {
            Suite::X25519Aes256Gcm => Some(Self::X25519(x25519_dalek::StaticSecret::from(*bytes))),
            Suite::P256Aes256Gcm => p256::SecretKey::from_slice(bytes).ok().map(Self::P256),
            Suite::Sm2Sm4Gcm => sm2::SecretKey::from_slice(bytes).ok().map(Self::Sm2),
        }
    }

    /// A fresh random secret. The thread RNG is a CSPRNG seeded from the OS; for the
    /// curves with a prime order just under 2^256 a draw outside `1..n` (chance about
    /// 2^-32) is simply drawn again.
    pub(crate) fn random(suite: Suite) -> Self {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        loop {
            rand::rng().fill_bytes(&mut bytes[..]);
            if let Some(secret) = Self::from_bytes(suite, &bytes) {
                return secret;
            }
        }
    }

    /// The 32 secret bytes.
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        match self {
            Self::X25519(secret) => out.copy_from_slice(&secret.to_bytes()),
            Self::P256(secret) => out.copy_from_slice(&secret.to_bytes()),
            Self::Sm2(secret) => out.copy_from_slice(&secret.to_bytes()),
        }
        out
    }

    /// The public key in its wire encoding (see [`Suite::public_key_len`]).
    pub(crate) fn public_bytes(&self) -> Vec<u8> {
        match self {
            Self::X25519(secret) => x25519_dalek::PublicKey::from(secret).as_bytes().to_vec(),
            Self::P256(secret) => secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Self::Sm2(secret) => secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }

    /// The raw shared secret with a peer's public key, or `None` when the peer's bytes
    /// are not a usable public key of this suite.
    ///
    /// - X25519: the 32-byte X25519 output; an all-zero output (a low-order peer
    ///   point) is refused, since it would let an attacker fix the shared secret.
    /// - P-256: the x coordinate of the shared point (SEC1 ECDH).
    /// - SM2: `x2 || y2` of `d * P`, exactly the input that SM2 public key encryption
    ///   (GM/T 0003.4) hands to its KDF.
    pub(crate) fn agree(&self, peer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        match self {
            Self::X25519(secret) => {
                let peer: [u8; 32] = peer.try_into().ok()?;
                let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
                shared
                    .was_contributory()
                    .then(|| Zeroizing::new(shared.as_bytes().to_vec()))
            }
            Self::P256(secret) => {
                let peer = parse_p256(peer)?;
                let shared =
                    p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
                Some(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            Self::Sm2(secret) => {
                let peer = parse_sm2(peer)?;
                // The sm2 crate has no key agreement API (its GM/T 0003.3 exchange
                // needs static keys on both sides and a confirmation round trip, which
                // a one-shot envelope cannot have), so the point multiplication is
                // done with the curve arithmetic directly. Cofactor 1, and the parser
                // refused the identity, so the product is never the identity.
                let scalar = secret.to_nonzero_scalar();
                let point = (peer.to_projective() * *scalar).to_affine();
                let encoded = point.to_encoded_point(false);
                // Uncompressed SEC1: 0x04 || x2 || y2.
                let coordinates = encoded.as_bytes().get(1..)?;
                (coordinates.len() == 64).then(|| Zeroizing::new(coordinates.to_vec()))
            }
        }
    }
}

/// Whether bytes are a valid public key of the suite in its wire encoding.
pub(crate) fn public_key_is_valid(suite: Suite, bytes: &[u8]) -> bool {
    match suite {
        Suite::X25519Aes256Gcm => bytes.len() == 32,
        Suite::P256Aes256Gcm => parse_p256(bytes).is_some(),
        Suite::Sm2Sm4Gcm => parse_sm2(bytes).is_some(),
    }
}

/// An uncompressed SEC1 P-256 point; the parser refuses the identity and points off
/// the curve.
fn parse_p256(bytes: &[u8]) -> Option<p256::PublicKey> {
    (bytes.len() == 65 && bytes[0] == 0x04)
        .then(|| p256::PublicKey::from_sec1_bytes(bytes).ok())
        .flatten()
}

/// An uncompressed SEC1 SM2 point, checked like [`parse_p256`].
fn parse_sm2(bytes: &[u8]) -> Option<sm2::PublicKey> {
    (bytes.len() == 65 && bytes[0] == 0x04)
        .then(|| sm2::PublicKey::from_sec1_bytes(bytes).ok())
        .flatten()
}

/// The request and response keys of one exchange.
pub(crate) struct SessionKeys {
    pub(crate) request: AeadKey,
    pub(crate) response: AeadKey,
}

/// Derives the request and response keys from the shared secret and the transcript
/// (the envelope header and the server's public key), so the keys are bound to the
/// exact ephemeral key bytes and the exact server key.
///
/// - AES suites: HKDF-SHA256, salt `atoll-envelope/v1`, info `label || transcript`,
///   32 bytes per key.
/// - SM2 suite: the GM/T 0003.4 KDF with SM3, `Z = shared || label || transcript`,
///   16 bytes per key.
pub(crate) fn derive_keys(suite: Suite, shared: &[u8], transcript: &[u8]) -> SessionKeys {
    match suite {
        Suite::X25519Aes256Gcm | Suite::P256Aes256Gcm => {
            let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), shared);
            let expand = |label: &[u8]| {
                let mut key = Zeroizing::new([0u8; 32]);
                hkdf.expand_multi_info(&[label, transcript], &mut key[..])
                    .expect("32 bytes is far below HKDF-SHA256's 8160-byte limit");
                AeadKey::Aes256Gcm(key)
            };
            SessionKeys {
                request: expand(LABEL_REQUEST),
                response: expand(LABEL_RESPONSE),
            }
        }
        Suite::Sm2Sm4Gcm => {
            let expand = |label: &[u8]| {
                let mut key = Zeroizing::new([0u8; 16]);
                sm3_kdf(&[shared, label, transcript], &mut key[..]);
                AeadKey::Sm4Gcm(key)
            };
            SessionKeys {
                request: expand(LABEL_REQUEST),
                response: expand(LABEL_RESPONSE),
            }
        }
    }
}

/// The KDF of GM/T 0003.4 §5.4.3: `SM3(Z || ct)` for a 32-bit big-endian counter
/// `ct` from 1, concatenated and cut to the output length. `Z` is given in parts.
pub(crate) fn sm3_kdf(z: &[&[u8]], out: &mut [u8]) {
    for (index, chunk) in out.chunks_mut(32).enumerate() {
        let mut hash = Sm3::new();
        for part in z {
            hash.update(part);
        }
        // Outputs here are at most a few blocks, so the counter cannot wrap.
        let counter = u32::try_from(index + 1).unwrap_or(u32::MAX);
        hash.update(counter.to_be_bytes());
        let block = hash.finalize();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// A key of one of the two AEADs. The key bytes are zeroized on drop; the cipher
/// objects are built per call (cheap next to the public key operation) and zeroize
/// their own key schedules.
pub(crate) enum AeadKey {
    Aes256Gcm(Zeroizing<[u8; 32]>),
    Sm4Gcm(Zeroizing<[u8; 16]>),
}

impl AeadKey {
    /// Encrypts `buffer` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], EnvelopeError> {
        let tag = match self {
            Self::Aes256Gcm(key) => {
                Aes256Gcm::new((&**key).into()).encrypt_in_place_detached(nonce.into(), aad, buffer)
            }
            Self::Sm4Gcm(key) => {
                Sm4Gcm::new((&**key).into()).encrypt_in_place_detached(nonce.into(), aad, buffer)
            }
        }
        // GCM refuses only messages beyond 64 GiB, far above the envelope cap.
        .map_err(|_| EnvelopeError::TooLarge)?;
        Ok(tag.into())
    }

    /// Checks the tag and decrypts `buffer` in place. Nothing is decrypted unless
    /// the tag verifies.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), EnvelopeError> {
        match self {
            Self::Aes256Gcm(key) => Aes256Gcm::new((&**key).into()).decrypt_in_place_detached(
                nonce.into(),
                aad,
                buffer,
                tag.into(),
            ),
            Self::Sm4Gcm(key) => Sm4Gcm::new((&**key).into()).decrypt_in_place_detached(
                nonce.into(),
                aad,
                buffer,
                tag.into(),
            ),
        }
        .map_err(|_| EnvelopeError::DecryptFailed)
    }
}

/// A fresh random nonce.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SM4-GCM through `AesGcm<Sm4, U12>` against the test vector of RFC 8998
    /// appendix A.1, so the generic GCM is known to be the standard SM4-GCM.
    #[test]
    fn sm4_gcm_matches_rfc_8998() {
        let key: [u8; 16] = hex::decode("0123456789ABCDEFFEDCBA9876543210")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex::decode("00001234567800000000ABCD")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let mut buffer = hex::decode(concat!(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
            "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
        ))
        .unwrap();
        let key = AeadKey::Sm4Gcm(Zeroizing::new(key));
        let tag = key.seal_in_place(&nonce, &aad, &mut buffer).unwrap();
        assert_eq!(
            hex::encode_upper(&buffer),
            concat!(
                "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735",
                "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
            )
        );
        assert_eq!(hex::encode_upper(tag), "83DE3541E4C2B58177E065A9BF7B62EC");
    }

    /// The SM3 KDF on the shared point of the SM2 encryption example of GM/T 0003.5
    /// (KDF(x2 || y2, 152 bits)).
    #[test]
    fn sm3_kdf_matches_gmt_0003_example() {
        let x2 = hex::decode("64D20D27D0632957F8028C1E024F6B02EDF23102A566C932AE8BD613A8E865FE")
            .unwrap();
        let y2 = hex::decode("58D225ECA784AE300A81A2D48281A828E1CEDF11C4219099840265375077BF78")
            .unwrap();
        let mut out = [0u8; 19];
        sm3_kdf(&[&x2, &y2], &mut out);
        assert_eq!(
            hex::encode_upper(out),
            "006E30DAE231B071DFAD8AA379E90264491603"
        );
        // Two blocks: the counter goes on to 2 (checked against Python's hashlib SM3).
        let mut out = [0u8; 40];
        sm3_kdf(&[&x2, &y2], &mut out);
        assert_eq!(
            hex::encode(out),
            "006e30dae231b071dfad8aa379e90264491603b93fc2d0b2f64c3021e23c6cc83065830fea992082"
        );
    }
}
