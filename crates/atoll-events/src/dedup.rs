//! The recent-uuid filter that stores a retried event once.
//!
//! Two generations of hash sets: lookups check both, inserts go to the current
//! one, and when it holds half the capacity the older generation is dropped. Memory
//! stays under `capacity` uuids while the most recent `capacity / 2` are always
//! remembered; that covers client retries, which come within minutes. A duplicate
//! older than the window is removed when its partition is compacted.

use std::collections::HashSet;

/// Remembers recent uuids.
#[derive(Debug)]
pub struct RecentUuids {
    current: HashSet<u128>,
    previous: HashSet<u128>,
    half: usize,
}

impl RecentUuids {
    /// A filter remembering at most `capacity` uuids.
    pub fn new(capacity: usize) -> RecentUuids {
        RecentUuids {
            current: HashSet::new(),
            previous: HashSet::new(),
            half: (capacity / 2).max(1),
        }
    }

    /// Records `uuid`; false when it was already seen.
    pub fn insert(&mut self, uuid: u128) -> bool {
        if self.previous.contains(&uuid) || !self.current.insert(uuid) {
            return false;
        }
        if self.current.len() >= self.half {
            self.previous = std::mem::take(&mut self.current);
        }
        true
    }

    /// Forgets `uuid` (its write failed, so a retry must be accepted).
    pub fn remove(&mut self, uuid: u128) {
        self.current.remove(&uuid);
        self.previous.remove(&uuid);
    }

    /// How many uuids are remembered.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_refused_and_memory_is_capped() {
        let mut seen = RecentUuids::new(100);
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        for uuid in 2..1000 {
            assert!(seen.insert(uuid));
            assert!(seen.len() <= 100);
        }
        // The most recent half of the capacity is always remembered.
        for uuid in 950..1000 {
            assert!(!seen.insert(uuid));
        }
        seen.remove(999);
        assert!(seen.insert(999));
    }
}
