//! The request and response envelopes: sealing on the device, opening on the server,
//! and the response in the other direction. The byte layout is in the crate docs.

use std::fmt;

use crate::keys::{KeyId, ServerKeyPair, ServerPublicKey, KEY_ID_LEN};
#[cfg(test)]
use crate::primitives::SECRET_LEN;
use crate::primitives::{self, AeadKey, Secret, NONCE_LEN, TAG_LEN};
use crate::{EnvelopeError, Suite};

/// The largest envelope, request or response, that is sealed or opened: 16 MiB.
/// Longer input is refused before anything is allocated.
pub const MAX_ENVELOPE_LEN: usize = 16 * 1024 * 1024;
/// First byte of a request envelope: direction (`A` = request) and version 1.
pub const REQUEST_MAGIC: u8 = 0xA1;
/// First byte of a response envelope: direction (`B` = response) and version 1.
pub const RESPONSE_MAGIC: u8 = 0xB1;

/// Bytes before the ephemeral key: magic, suite, key id, key length.
const FIXED_HEADER_LEN: usize = 2 + KEY_ID_LEN + 1;
/// Bytes before the ciphertext of a response: magic, suite, nonce.
const RESPONSE_HEADER_LEN: usize = 2 + NONCE_LEN;

/// The key that seals and opens the response to one request.
///
/// The device gets it from [`seal_request`], the server from [`open_request`] or
/// [`crate::ServerKeyRing::open`]; both derive it from the same shared secret. It is
/// separate from the request key, so a response can never be passed off as a request.
/// Each response gets a fresh random nonce. The key bytes are zeroized on drop.
pub struct ResponseKey {
    suite: Suite,
    key: AeadKey,
}

impl ResponseKey {
    /// The suite of the exchange.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts a response (server side) with a fresh random nonce.
    pub fn seal_response(&self, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.seal_response_with(plaintext, primitives::random_nonce())
    }

    /// [`ResponseKey::seal_response`] with a chosen nonce: for golden vectors only,
    /// since a repeated nonce under one key breaks GCM.
    pub(crate) fn seal_response_with(
        &self,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let total = RESPONSE_HEADER_LEN
            .checked_add(plaintext.len())
            .and_then(|len| len.checked_add(TAG_LEN))
            .filter(|len| *len <= MAX_ENVELOPE_LEN)
            .ok_or(EnvelopeError::TooLarge)?;
        let mut out = Vec::with_capacity(total);
        out.push(RESPONSE_MAGIC);
        out.push(self.suite.to_byte());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (header, body) = out.split_at_mut(RESPONSE_HEADER_LEN);
        let tag = self.key.seal_in_place(&nonce, header, body)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a response (device side).
    pub fn open_response(&self, envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::Malformed("longer than the envelope cap"));
        }
        if envelope.len() < RESPONSE_HEADER_LEN + TAG_LEN {
            return Err(EnvelopeError::Malformed("truncated"));
        }
        if envelope[0] != RESPONSE_MAGIC {
            return Err(EnvelopeError::Malformed(
                "not a version 1 response envelope",
            ));
        }
        if Suite::from_byte(envelope[1])? != self.suite {
            return Err(EnvelopeError::Malformed(
                "response suite differs from the request's",
            ));
        }
        let (header, rest) = envelope.split_at(RESPONSE_HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = array(&header[2..])?;
        let mut plaintext = ciphertext.to_vec();
        self.key
            .open_in_place(&nonce, header, &mut plaintext, &array(tag)?)?;
        Ok(plaintext)
    }
}

impl fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Seals a request to a server's public key (device side): a fresh ephemeral key and
/// nonce per call. `context` must be the bytes the server will pass to
/// [`open_request`]; see [`encode_context`].
///
/// Returns the envelope and the key that opens the server's response.
pub fn seal_request(
    server: &ServerPublicKey,
    plaintext: &[u8],
    context: &[u8],
) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
    let ephemeral = Secret::random(server.suite());
    seal_inner(
        server,
        &ephemeral,
        primitives::random_nonce(),
        plaintext,
        context,
    )
}

/// [`seal_request`] with a chosen ephemeral secret and nonce: the deterministic path
/// for golden vectors. Never for real traffic: a reused ephemeral secret and nonce
/// under one server key breaks both confidentiality and integrity.
#[cfg(test)]
pub(crate) fn seal_with(
    server: &ServerPublicKey,
    ephemeral_secret: &[u8; SECRET_LEN],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &[u8],
) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
    let ephemeral = Secret::from_bytes(server.suite(), ephemeral_secret).ok_or(
        EnvelopeError::InvalidKey("ephemeral secret is not a scalar"),
    )?;
    seal_inner(server, &ephemeral, nonce, plaintext, context)
}

fn seal_inner(
    server: &ServerPublicKey,
    ephemeral: &Secret,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &[u8],
) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
    let suite = server.suite();
    let ephemeral_public = ephemeral.public_bytes();
    let key_len = u8::try_from(ephemeral_public.len())
        .map_err(|_| EnvelopeError::InvalidKey("ephemeral key longer than 255 bytes"))?;
    let header_len = FIXED_HEADER_LEN + ephemeral_public.len();
    let total = (header_len + NONCE_LEN + TAG_LEN)
        .checked_add(plaintext.len())
        .filter(|len| *len <= MAX_ENVELOPE_LEN)
        .ok_or(EnvelopeError::TooLarge)?;
    let shared = ephemeral
        .agree(server.as_bytes())
        .ok_or(EnvelopeError::InvalidKey("server public key of low order"))?;

    let mut out = Vec::with_capacity(total);
    out.push(REQUEST_MAGIC);
    out.push(suite.to_byte());
    out.extend_from_slice(server.key_id().as_bytes());
    out.push(key_len);
    out.extend_from_slice(&ephemeral_public);
    let keys = primitives::derive_keys(suite, &shared, &transcript(&out, server.as_bytes()));
    out.extend_from_slice(&nonce);
    let aad = associated_data(&out, context);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let tag = keys
        .request
        .seal_in_place(&nonce, &aad, &mut out[body_start..])?;
    out.extend_from_slice(&tag);
    Ok((
        out,
        ResponseKey {
            suite,
            key: keys.response,
        },
    ))
}

/// Opens a request envelope sealed to one key pair (server side).
///
/// Fails with `envelope_unknown_key` when the envelope names another key; a server
/// that rotates keys uses [`crate::ServerKeyRing::open`] instead.
pub fn open_request(
    key: &ServerKeyPair,
    envelope: &[u8],
    context: &[u8],
) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
    let parsed = RequestHeader::parse(envelope)?;
    if parsed.key_id != key.key_id() || parsed.suite != key.suite() {
        return Err(EnvelopeError::UnknownKey);
    }
    parsed.open(key, envelope, context)
}

/// The parsed fixed part of a request envelope; the parser checks every length
/// against the input before anything is allocated.
#[derive(Debug)]
pub(crate) struct RequestHeader {
    pub(crate) suite: Suite,
    pub(crate) key_id: KeyId,
    /// Length of magic, suite, key id, key length and ephemeral key.
    header_len: usize,
}

impl RequestHeader {
    /// Parses and checks the layout; refuses an unknown version, an unknown suite and
    /// an ephemeral key length that is not the suite's.
    pub(crate) fn parse(envelope: &[u8]) -> Result<Self, EnvelopeError> {
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::Malformed("longer than the envelope cap"));
        }
        let Some(&[magic, suite]) = envelope.get(..2) else {
            return Err(EnvelopeError::Malformed("truncated"));
        };
        if magic != REQUEST_MAGIC {
            return Err(EnvelopeError::Malformed("not a version 1 request envelope"));
        }
        let suite = Suite::from_byte(suite)?;
        let Some(fixed) = envelope.get(..FIXED_HEADER_LEN) else {
            return Err(EnvelopeError::Malformed("truncated"));
        };
        let key_id = KeyId::from_bytes(array(&fixed[2..2 + KEY_ID_LEN])?);
        let key_len = usize::from(fixed[FIXED_HEADER_LEN - 1]);
        if key_len != suite.public_key_len() {
            return Err(EnvelopeError::Malformed(
                "ephemeral key length is not the suite's",
            ));
        }
        let header_len = FIXED_HEADER_LEN + key_len;
        if envelope.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(EnvelopeError::Malformed("truncated"));
        }
        Ok(Self {
            suite,
            key_id,
            header_len,
        })
    }

    /// Opens the envelope with the key its key id named.
    pub(crate) fn open(
        &self,
        key: &ServerKeyPair,
        envelope: &[u8],
        context: &[u8],
    ) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
        let header = &envelope[..self.header_len];
        let ephemeral_public = &header[FIXED_HEADER_LEN..];
        let shared = key
            .secret()
            .agree(ephemeral_public)
            .ok_or(EnvelopeError::Malformed(
                "ephemeral key is not a usable point",
            ))?;
        let keys = primitives::derive_keys(
            self.suite,
            &shared,
            &transcript(header, key.public_key().as_bytes()),
        );
        let body_start = self.header_len + NONCE_LEN;
        let nonce = array(&envelope[self.header_len..body_start])?;
        let aad = associated_data(&envelope[..body_start], context);
        let (ciphertext, tag) =
            envelope[body_start..].split_at(envelope.len() - body_start - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        keys.request
            .open_in_place(&nonce, &aad, &mut plaintext, &array(tag)?)?;
        Ok((
            plaintext,
            ResponseKey {
                suite: self.suite,
                key: keys.response,
            },
        ))
    }
}

/// The key-derivation transcript: the request header through the ephemeral key, then
/// the server's full public key (the key id is only a truncated hash of it).
fn transcript(header: &[u8], server_public: &[u8]) -> Vec<u8> {
    let mut transcript = Vec::with_capacity(header.len() + server_public.len());
    transcript.extend_from_slice(header);
    transcript.extend_from_slice(server_public);
    transcript
}

/// The AEAD associated data of a request: every byte before the ciphertext, then the
/// application's context. The header has a fixed layout, so the split is unambiguous.
fn associated_data(header_and_nonce: &[u8], context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header_and_nonce.len() + context.len());
    aad.extend_from_slice(header_and_nonce);
    aad.extend_from_slice(context);
    aad
}

/// Encodes context parts unambiguously: each part as a 4-byte big-endian length and
/// its bytes. The gateway and the SDK both build the context this way (app key,
/// operation type, request timestamp), so `("ab", "c")` and `("a", "bc")` differ.
/// A part longer than 4 GiB is cut at `u32::MAX` bytes (contexts are a few dozen).
pub fn encode_context(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|part| 4 + part.len()).sum());
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&part[..len as usize]);
    }
    out
}

/// A fixed-size array from a slice whose length the caller has already checked.
fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], EnvelopeError> {
    bytes
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("truncated"))
}
