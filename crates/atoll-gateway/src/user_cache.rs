//! Which user a device is bound to, remembered: the backend gets the user id on
//! every call, and a store read per call costs about as much as the rest of the
//! gateway (measured: 30 µs of 115 µs per call). A bind or unbind on this node
//! drops every entry at once (the platform's binding generation moves); one on
//! another node is seen within [`USER_TTL`].

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a device's user is trusted.
pub(crate) const USER_TTL: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry {
    fetched: Instant,
    /// The platform's binding generation when it was read.
    generation: u64,
    user: Option<Arc<str>>,
}

/// Devices' users by `app id \0 device id`.
#[derive(Debug)]
pub(crate) struct UserCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

fn key(app_id: &str, device_id: &str) -> String {
    format!("{app_id}\u{0}{device_id}")
}

impl UserCache {
    pub(crate) fn new(capacity: usize) -> UserCache {
        UserCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(user)` when known and fresh (the user itself may be `None`: unbound).
    pub(crate) fn get(
        &self,
        app_id: &str,
        device_id: &str,
        generation: u64,
    ) -> Option<Option<Arc<str>>> {
        self.entries
            .lock()
            .get(&key(app_id, device_id))
            .filter(|entry| entry.generation == generation && entry.fetched.elapsed() < USER_TTL)
            .map(|entry| entry.user.clone())
    }

    pub(crate) fn put(&self, app_id: &str, device_id: &str, generation: u64, user: Option<&str>) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.fetched.elapsed() < USER_TTL);
            if entries.len() >= self.capacity {
                // Everything is fresh: start over rather than grow. The cost is
                // one store read per device, once.
                entries.clear();
            }
        }
        entries.insert(
            key(app_id, device_id),
            Entry {
                fetched: Instant::now(),
                generation,
                user: user.map(Arc::from),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_bound_and_unbound_devices_and_stays_bounded() {
        let cache = UserCache::new(2);
        assert_eq!(cache.get("a", "d1", 0), None);
        cache.put("a", "d1", 0, Some("u1"));
        cache.put("a", "d2", 0, None);
        assert_eq!(cache.get("a", "d1", 0), Some(Some(Arc::from("u1"))));
        assert_eq!(cache.get("a", "d2", 0), Some(None));
        assert_eq!(cache.get("a", "d1", 1), None, "a bind elsewhere drops it");
        cache.put("a", "d3", 0, Some("u3"));
        assert!(cache.entries.lock().len() <= 2);
        assert_eq!(cache.get("a", "d3", 0), Some(Some(Arc::from("u3"))));
    }
}
