//! Per-app values kept in memory and refreshed when the store says they
//! changed: compiled switch sets, release snapshots, uploaded lists.
//!
//! Hot device paths must not read the store for them on every request, yet a
//! change made on another node must be seen soon. So each entry remembers the
//! *stamp* it was built from (a version number, a count and newest change…);
//! within [`StampedCache::new`]'s `ttl` it is used as is, after that the stamp
//! is read again (one cheap query) and the value rebuilt only if it moved. The
//! map holds at most `capacity` apps; when full, stale entries go first, then
//! all (the next requests rebuild what they use).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Entry<S, V> {
    checked_at: Instant,
    stamp: S,
    value: Arc<V>,
}

/// Values by key, each with the stamp it was built from.
pub struct StampedCache<S, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry<S, V>>>,
}

impl<S, V> std::fmt::Debug for StampedCache<S, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampedCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + PartialEq, V> StampedCache<S, V> {
    /// A cache whose entries are trusted for `ttl`, holding at most `capacity` keys.
    pub fn new(ttl: Duration, capacity: usize) -> StampedCache<S, V> {
        StampedCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<S, V>>> {
        // A panic while holding the lock cannot leave an entry half-written
        // (inserts are single calls), so a poisoned map is still sound.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value for `key`: the cached one while fresh, or while `stamp()`
    /// still matches; otherwise `load(stamp)`, which is then cached.
    pub async fn get<E, FS, FL>(
        &self,
        key: &str,
        stamp: impl FnOnce() -> FS,
        load: impl FnOnce(S) -> FL,
    ) -> Result<Arc<V>, E>
    where
        FS: Future<Output = Result<S, E>>,
        FL: Future<Output = Result<V, E>>,
    {
        let cached = self.lock().get(key).map(|entry| {
            (
                entry.checked_at.elapsed() < self.ttl,
                entry.stamp.clone(),
                entry.value.clone(),
            )
        });
        if let Some((true, _, value)) = cached {
            return Ok(value);
        }
        let current = stamp().await?;
        let value = match cached {
            Some((_, old, value)) if old == current => value,
            _ => Arc::new(load(current.clone()).await?),
        };
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.checked_at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key.to_owned(),
            Entry {
                checked_at: Instant::now(),
                stamp: current,
                value: value.clone(),
            },
        );
        Ok(value)
    }

    /// Forgets `key` (after a local change, so the next read rebuilds at once).
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: Future>(future: F) -> F::Output {
        // The futures here never wait on anything, so one poll finishes them.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the test future waited"),
        }
    }

    #[test]
    fn values_are_rebuilt_only_when_their_stamp_moves() {
        let cache: StampedCache<u64, String> = StampedCache::new(Duration::ZERO, 10);
        let loads = Cell::new(0);
        let get = |stamp: u64| {
            block_on(cache.get::<(), _, _>(
                "app",
                || async move { Ok(stamp) },
                |stamp| {
                    loads.set(loads.get() + 1);
                    async move { Ok(format!("v{stamp}")) }
                },
            ))
            .unwrap()
        };
        assert_eq!(*get(1), "v1");
        assert_eq!(*get(1), "v1");
        assert_eq!(loads.get(), 1, "same stamp: no rebuild");
        assert_eq!(*get(2), "v2");
        assert_eq!(loads.get(), 2);
        cache.remove("app");
        get(2);
        assert_eq!(loads.get(), 3, "removed: rebuilt");
    }

    #[test]
    fn fresh_entries_skip_the_stamp_and_the_map_is_capped() {
        let cache: StampedCache<u64, u64> = StampedCache::new(Duration::from_secs(60), 2);
        let stamps = Cell::new(0);
        let get = |key: &str| {
            block_on(cache.get::<(), _, _>(
                key,
                || {
                    stamps.set(stamps.get() + 1);
                    async { Ok(1) }
                },
                |_| async { Ok(7) },
            ))
            .unwrap()
        };
        get("a");
        get("a");
        assert_eq!(stamps.get(), 1, "fresh: the stamp is not read");
        get("b");
        get("c");
        assert!(cache.lock().len() <= 2);
    }
}
