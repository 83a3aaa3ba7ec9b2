//! The replay memory of device requests.
//!
//! Each nonce is remembered until its request's timestamp leaves the signature
//! window, so memory is bounded by (requests per window) and by a hard capacity:
//! when full, new requests are refused with `unavailable` rather than forgetting a
//! nonce early (which would re-open a replay). Entries are 128-bit digests of
//! (app, nonce), about 40 bytes each, so a million fit in ~50 MB.
//!
//! Across restarts: a graceful shutdown saves the live entries to a snapshot file
//! that the next start loads. After a crash (no snapshot), the store instead
//! refuses timestamps older than its own start, which any replay of a pre-crash
//! request has; honest clients just sign again with a fresh timestamp.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

/// What happened to a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceOutcome {
    /// First use: accepted and remembered.
    Fresh,
    /// Seen before inside the window.
    Replayed,
    /// The memory is full.
    Full,
}

/// Remembered nonces, each until its expiry (Unix seconds).
#[derive(Debug)]
pub struct NonceStore {
    capacity: usize,
    state: Mutex<State>,
    /// Timestamps (Unix seconds) before this are refused after an unclean start.
    fence_secs: i64,
}

#[derive(Debug, Default)]
struct State {
    expiry_by_key: HashMap<u128, i64>,
    by_expiry: VecDeque<(i64, u128)>,
}

fn key_of(app_id: &str, nonce: &str) -> u128 {
    let digest = Sha256::new()
        .chain_update(app_id.as_bytes())
        .chain_update([0u8])
        .chain_update(nonce.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(bytes)
}

impl NonceStore {
    /// An empty store with no start fence (tests, or a first start).
    pub fn new(capacity: usize) -> NonceStore {
        NonceStore {
            capacity,
            state: Mutex::new(State::default()),
            fence_secs: i64::MIN,
        }
    }

    /// Restores the store from `snapshot` if a graceful shutdown left one (and
    /// removes it, so a later crash cannot reuse a stale one). Without a snapshot,
    /// timestamps before `now_secs` are refused. A data folder that was never
    /// used before (`first_start`) needs no fence.
    pub fn restore(
        capacity: usize,
        snapshot: &Path,
        now_secs: i64,
        first_start: bool,
    ) -> NonceStore {
        let mut store = NonceStore::new(capacity);
        match std::fs::File::open(snapshot) {
            Ok(file) => {
                let mut state = store.state.lock().expect("nonce lock");
                for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
                    let Some((key, expiry)) = line.split_once(' ') else {
                        continue;
                    };
                    let (Ok(key), Ok(expiry)) =
                        (u128::from_str_radix(key, 16), expiry.parse::<i64>())
                    else {
                        continue;
                    };
                    if expiry > now_secs && state.expiry_by_key.len() < capacity {
                        state.expiry_by_key.insert(key, expiry);
                        state.by_expiry.push_back((expiry, key));
                    }
                }
                state.by_expiry.make_contiguous().sort_unstable();
                drop(state);
                let _ = std::fs::remove_file(snapshot);
            }
            Err(_) if !first_start => store.fence_secs = now_secs,
            Err(_) => {}
        }
        store
    }

    /// Timestamps before this were possibly seen by a previous run whose nonces are lost.
    pub fn fence_secs(&self) -> i64 {
        self.fence_secs
    }

    /// Checks and remembers a nonce until `expires_at_secs`.
    pub fn check_and_insert(
        &self,
        app_id: &str,
        nonce: &str,
        now_secs: i64,
        expires_at_secs: i64,
    ) -> NonceOutcome {
        let key = key_of(app_id, nonce);
        let mut state = self.state.lock().expect("nonce lock");
        while let Some(&(expiry, old)) = state.by_expiry.front() {
            if expiry > now_secs {
                break;
            }
            state.by_expiry.pop_front();
            if state.expiry_by_key.get(&old) == Some(&expiry) {
                state.expiry_by_key.remove(&old);
            }
        }
        if state.expiry_by_key.contains_key(&key) {
            return NonceOutcome::Replayed;
        }
        if state.expiry_by_key.len() >= self.capacity {
            return NonceOutcome::Full;
        }
        state.expiry_by_key.insert(key, expires_at_secs);
        // Expiries arrive nearly in order (timestamp + window); keep the queue
        // sorted with a short walk from the back.
        let position = state
            .by_expiry
            .iter()
            .rposition(|&(expiry, _)| expiry <= expires_at_secs)
            .map_or(0, |index| index + 1);
        state.by_expiry.insert(position, (expires_at_secs, key));
        NonceOutcome::Fresh
    }

    /// How many nonces are remembered now.
    pub fn len(&self) -> usize {
        self.state.lock().expect("nonce lock").expiry_by_key.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the live entries to `path` (on graceful shutdown).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let state = self.state.lock().expect("nonce lock");
        let temporary = path.with_extension("tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
        for (key, expiry) in &state.expiry_by_key {
            writeln!(out, "{key:x} {expiry}")?;
        }
        out.into_inner()
            .map_err(|error| error.into_error())?
            .sync_all()?;
        std::fs::rename(temporary, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_until_they_expire() {
        let store = NonceStore::new(10);
        assert_eq!(
            store.check_and_insert("a", "n1", 100, 400),
            NonceOutcome::Fresh
        );
        assert_eq!(
            store.check_and_insert("a", "n1", 101, 401),
            NonceOutcome::Replayed
        );
        assert_eq!(
            store.check_and_insert("b", "n1", 101, 401),
            NonceOutcome::Fresh
        );
        assert_eq!(
            store.check_and_insert("a", "n1", 400, 700),
            NonceOutcome::Fresh
        );
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let store = NonceStore::new(3);
        for index in 0..3 {
            assert_eq!(
                store.check_and_insert("a", &format!("n{index}"), 0, 300),
                NonceOutcome::Fresh
            );
        }
        assert_eq!(
            store.check_and_insert("a", "n9", 0, 300),
            NonceOutcome::Full
        );
        assert_eq!(
            store.check_and_insert("a", "n9", 300, 600),
            NonceOutcome::Fresh
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn out_of_order_expiries_still_expire() {
        let store = NonceStore::new(10);
        store.check_and_insert("a", "late", 0, 500);
        store.check_and_insert("a", "early", 0, 200);
        assert_eq!(
            store.check_and_insert("a", "x", 250, 550),
            NonceOutcome::Fresh
        );
        assert_eq!(
            store.check_and_insert("a", "early", 251, 551),
            NonceOutcome::Fresh
        );
        assert_eq!(
            store.check_and_insert("a", "late", 251, 551),
            NonceOutcome::Replayed
        );
    }

    #[test]
    fn snapshot_survives_a_graceful_restart_and_a_crash_sets_a_fence() {
        let dir = std::env::temp_dir().join(format!("atoll-nonce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nonces.snapshot");
        let store = NonceStore::new(10);
        store.check_and_insert("a", "n1", 100, 400);
        store.save(&path).unwrap();
        let restored = NonceStore::restore(10, &path, 150, false);
        assert_eq!(restored.fence_secs(), i64::MIN);
        assert_eq!(
            restored.check_and_insert("a", "n1", 150, 450),
            NonceOutcome::Replayed
        );
        assert!(!path.exists(), "the snapshot is consumed");
        let after_crash = NonceStore::restore(10, &path, 200, false);
        assert_eq!(after_crash.fence_secs(), 200);
        let first = NonceStore::restore(10, &path, 200, true);
        assert_eq!(first.fence_secs(), i64::MIN);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
