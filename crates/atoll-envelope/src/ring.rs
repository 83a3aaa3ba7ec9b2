//! The server's key ring: the current key of each suite, and previous keys that still
//! open envelopes until their overlap period ends.

use crate::envelope::RequestHeader;
use crate::{EnvelopeError, KeyId, ResponseKey, ServerKeyPair, ServerPublicKey, Suite};

/// One key in the ring. `expires_at` is `None` for a current key.
#[derive(Debug)]
struct Entry {
    key: ServerKeyPair,
    expires_at: Option<i64>,
}

/// The keys a server opens envelopes with.
///
/// Rotation: a new key becomes current for its suite and devices are told about it;
/// the key it replaces stays as a previous key until `expires_at`, so devices that
/// still hold the old public key keep working during the overlap. After that they get
/// `envelope_key_expired`, which tells them to fetch the current key, where an
/// unknown key id would only say "not ours". Times are Unix seconds, from the caller's
/// clock, so tests can move time.
#[derive(Debug, Default)]
pub struct ServerKeyRing {
    entries: Vec<Entry>,
}

impl ServerKeyRing {
    /// A ring with one current key.
    pub fn new(current: ServerKeyPair) -> Self {
        let mut ring = Self::default();
        ring.rotate(current, 0);
        ring
    }

    /// Makes `next` the current key of its suite. The key it replaces, if any, stays
    /// as a previous key that opens envelopes until `previous_expires_at` (exclusive).
    /// Adding the current key of another suite is a rotation with nothing to replace.
    pub fn rotate(&mut self, next: ServerKeyPair, previous_expires_at: i64) {
        let suite = next.suite();
        for entry in &mut self.entries {
            if entry.key.suite() == suite && entry.expires_at.is_none() {
                entry.expires_at = Some(previous_expires_at);
            }
        }
        self.insert(next, None);
    }

    /// Adds a previous key that opens envelopes until `expires_at` (exclusive): for a
    /// server that loads its ring from configuration after a rotation.
    pub fn add_previous(&mut self, key: ServerKeyPair, expires_at: i64) {
        self.insert(key, Some(expires_at));
    }

    /// Inserts a key, replacing an entry with the same key id so that the ring never
    /// holds two answers for one id.
    fn insert(&mut self, key: ServerKeyPair, expires_at: Option<i64>) {
        self.entries
            .retain(|entry| entry.key.key_id() != key.key_id());
        self.entries.push(Entry { key, expires_at });
    }

    /// Drops previous keys that expired at or before `now`. After that, envelopes
    /// sealed to them fail with `envelope_unknown_key` instead of
    /// `envelope_key_expired`, so a server prunes only well after the overlap.
    pub fn prune(&mut self, now: i64) {
        self.entries
            .retain(|entry| entry.expires_at.is_none_or(|expires_at| now < expires_at));
    }

    /// The current key of a suite.
    pub fn current(&self, suite: Suite) -> Option<&ServerKeyPair> {
        self.entries
            .iter()
            .find(|entry| entry.key.suite() == suite && entry.expires_at.is_none())
            .map(|entry| &entry.key)
    }

    /// The public keys of the current keys: what the gateway publishes to devices.
    pub fn public_keys(&self) -> impl Iterator<Item = &ServerPublicKey> {
        self.entries
            .iter()
            .filter(|entry| entry.expires_at.is_none())
            .map(|entry| entry.key.public_key())
    }

    /// The key with a key id, current or previous, and when it expires.
    pub fn get(&self, key_id: KeyId) -> Option<(&ServerKeyPair, Option<i64>)> {
        self.entries
            .iter()
            .find(|entry| entry.key.key_id() == key_id)
            .map(|entry| (&entry.key, entry.expires_at))
    }

    /// Opens a request envelope with the key its key id names.
    ///
    /// Errors, in the order they are checked: `envelope_malformed` for bad layout,
    /// `envelope_unsupported_suite`, `envelope_unknown_key` when no key has the id (or
    /// the key is of another suite), `envelope_key_expired` when the key is a previous
    /// key and `now` is at or past its expiry, and `envelope_decrypt_failed`.
    pub fn open(
        &self,
        envelope: &[u8],
        context: &[u8],
        now: i64,
    ) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
        let header = RequestHeader::parse(envelope)?;
        let (key, expires_at) = self.get(header.key_id).ok_or(EnvelopeError::UnknownKey)?;
        if key.suite() != header.suite {
            return Err(EnvelopeError::UnknownKey);
        }
        if expires_at.is_some_and(|expires_at| now >= expires_at) {
            return Err(EnvelopeError::KeyExpired);
        }
        header.open(key, envelope, context)
    }
}
