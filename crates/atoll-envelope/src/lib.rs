//! The payload-encryption envelope of the mobile gateway.
//!
//! When an API requires encryption, a device seals its request body to the server's
//! static public key, and the server seals its response under the same session. Only
//! the server can open a request; only the device that sealed it can open the
//! response. This crate is the cryptography and the wire format; the HTTP gateway
//! (`POST /gw/v1`) is built on it elsewhere.
//!
//! # Construction
//!
//! Per request the device makes an ephemeral key pair and agrees a shared secret with
//! the server's static key (ephemeral-static ECDH, as in ECIES and HPKE's base mode).
//! From it, a request key and a response key are derived with different labels, over
//! a transcript of the envelope header and the server's full public key:
//!
//! | suite byte | name               | agreement          | KDF                     | AEAD        |
//! |-----------:|--------------------|--------------------|-------------------------|-------------|
//! | `0x01`     | `x25519-aes256gcm` | X25519             | HKDF-SHA256             | AES-256-GCM |
//! | `0x02`     | `p256-aes256gcm`   | ECDH on P-256 (x)  | HKDF-SHA256             | AES-256-GCM |
//! | `0x03`     | `sm2-sm4gcm`       | ECDH on SM2 (x‖y)  | SM3 KDF (GM/T 0003.4)   | SM4-GCM     |
//!
//! HKDF: salt `atoll-envelope/v1`, info `label ‖ transcript`, 32-byte keys. SM3 KDF:
//! `Z = shared ‖ label ‖ transcript`, 16-byte keys. Labels: `atoll-envelope/v1
//! request` and `atoll-envelope/v1 response`. The transcript is the request header
//! (bytes `0..11+L` below) followed by the server's public key.
//!
//! SM2 note: the `sm2` crate offers signatures but no key agreement, and the GM/T
//! 0003.3 key exchange needs static keys on both sides plus a confirmation round
//! trip, which a one-shot envelope cannot have. The `sm2-sm4gcm` suite therefore does
//! what SM2 public key encryption (GM/T 0003.4) does: an ephemeral `k`, the point
//! `k·P_B = (x2, y2)` computed with the curve arithmetic of the `sm2` crate, and
//! `x2 ‖ y2` into the SM3 KDF; it replaces the XOR stream and SM3 MAC of SM2
//! encryption with SM4-GCM (GB/T 36624, as in RFC 8998).
//!
//! # Request envelope (version 1)
//!
//! | offset     | length | field                                                        |
//! |-----------:|-------:|--------------------------------------------------------------|
//! | 0          | 1      | magic and version: `0xA1`                                    |
//! | 1          | 1      | suite byte                                                   |
//! | 2          | 8      | key id: first 8 bytes of `SHA-256(suite ‖ server public key)` |
//! | 10         | 1      | `L`, length of the ephemeral public key (32, or 65)          |
//! | 11         | L      | ephemeral public key: X25519 bytes, or uncompressed SEC1 point |
//! | 11+L       | 12     | nonce                                                        |
//! | 23+L       | n+16   | ciphertext of the n-byte payload, then the 16-byte tag       |
//!
//! The associated data is bytes `0..23+L` (everything before the ciphertext) followed
//! by the application's context ([`encode_context`]: app key, operation type, request
//! timestamp), so an envelope opens only for the API and moment it was sealed for.
//!
//! # Response envelope (version 1)
//!
//! | offset | length | field                                  |
//! |-------:|-------:|----------------------------------------|
//! | 0      | 1      | magic and version: `0xB1`              |
//! | 1      | 1      | suite byte (the request's)             |
//! | 2      | 12     | nonce, fresh and random                |
//! | 14     | n+16   | ciphertext, then the tag               |
//!
//! Sealed with the response key; the associated data is bytes `0..14`. The response
//! key exists only for this one exchange, so it needs no further binding.
//!
//! Both envelopes are at most [`MAX_ENVELOPE_LEN`] (16 MiB). Golden vectors for every
//! suite are in `contracts/envelope.json`; the SDKs check themselves against them.

mod envelope;
mod error;
mod keys;
mod primitives;
mod ring;
mod suite;

#[cfg(test)]
mod tests;

pub use envelope::{
    encode_context, open_request, seal_request, ResponseKey, MAX_ENVELOPE_LEN, REQUEST_MAGIC,
    RESPONSE_MAGIC,
};
pub use error::EnvelopeError;
pub use keys::{KeyId, ServerKeyPair, ServerPublicKey, KEY_ID_LEN};
pub use ring::ServerKeyRing;
pub use suite::Suite;
