//! Which user a device is bound to, remembered for a few seconds: the backend
//! gets the user id on every call, and a store read per call would cost more
//! than the rest of the gateway. A bind or unbind is seen within [`USER_TTL`].

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a device's user is trusted.
pub(crate) const USER_TTL: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    fetched: Instant,
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
    pub(crate) fn get(&self, app_id: &str, device_id: &str) -> Option<Option<Arc<str>>> {
        self.entries
            .lock()
            .get(&key(app_id, device_id))
            .filter(|entry| entry.fetched.elapsed() < USER_TTL)
            .map(|entry| entry.user.clone())
    }

    pub(crate) fn put(&self, app_id: &str, device_id: &str, user: Option<&str>) {
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
        assert_eq!(cache.get("a", "d1"), None);
        cache.put("a", "d1", Some("u1"));
        cache.put("a", "d2", None);
        assert_eq!(cache.get("a", "d1"), Some(Some(Arc::from("u1"))));
        assert_eq!(cache.get("a", "d2"), Some(None));
        cache.put("a", "d3", Some("u3"));
        assert!(cache.entries.lock().len() <= 2);
        assert_eq!(cache.get("a", "d3"), Some(Some(Arc::from("u3"))));
    }
}
