//! Device profiles as the device's own requests see them, remembered: the
//! update check, remote config, event ingestion and the gateway all want the
//! device's registered context (and bound user) on every request, and a store
//! read per request cost about a quarter of the gateway's CPU (bench/README.md,
//! "Gateway"). A register, bind or unbind on this node replaces the entry at
//! once; one on another node is seen within [`PROFILE_TTL`].

use atoll_protocol::admin::Device;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a profile read from the store is trusted.
pub(crate) const PROFILE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry {
    fetched: Instant,
    /// `None`: the device is not registered.
    profile: Option<Arc<Device>>,
}

/// Profiles by `app id \0 device id`, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct ProfileCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

fn key(app_id: &str, device_id: &str) -> String {
    format!("{app_id}\u{0}{device_id}")
}

impl ProfileCache {
    pub(crate) fn new(capacity: usize) -> ProfileCache {
        ProfileCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(profile)` when known and fresh (the profile itself may be `None`:
    /// not registered).
    pub(crate) fn get(&self, app_id: &str, device_id: &str) -> Option<Option<Arc<Device>>> {
        self.entries
            .lock()
            .get(&key(app_id, device_id))
            .filter(|entry| entry.fetched.elapsed() < PROFILE_TTL)
            .map(|entry| entry.profile.clone())
    }

    pub(crate) fn put(&self, app_id: &str, device_id: &str, profile: Option<Arc<Device>>) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.fetched.elapsed() < PROFILE_TTL);
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
                profile,
            },
        );
    }

    /// Drops the profiles past their time to live, so that devices which
    /// connected once and then stay idle on their connection do not keep
    /// theirs until the cache fills up. Returns how many were dropped.
    pub(crate) fn forget_stale(&self) -> usize {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|_, entry| entry.fetched.elapsed() < PROFILE_TTL);
        // After a burst of connects most of the table is empty: give it back.
        if entries.capacity() > 4 * entries.len().max(1024) {
            entries.shrink_to_fit();
        }
        before - entries.len()
    }

    /// Forgets a device after this node changed it.
    pub(crate) fn forget(&self, app_id: &str, device_id: &str) {
        self.entries.lock().remove(&key(app_id, device_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, user: Option<&str>) -> Arc<Device> {
        Arc::new(Device {
            device_id: id.into(),
            user_id: user.map(str::to_owned),
            ..Device::default()
        })
    }

    #[test]
    fn remembers_registered_and_unknown_devices_forgets_and_stays_bounded() {
        let cache = ProfileCache::new(2);
        assert!(cache.get("a", "d1").is_none());
        cache.put("a", "d1", Some(device("d1", Some("u1"))));
        cache.put("a", "d2", None);
        assert_eq!(
            cache.get("a", "d1").unwrap().unwrap().user_id.as_deref(),
            Some("u1")
        );
        assert!(cache.get("a", "d2").unwrap().is_none());
        cache.forget("a", "d1");
        assert!(cache.get("a", "d1").is_none());
        cache.put("a", "d3", None);
        cache.put("a", "d4", None);
        assert!(cache.entries.lock().len() <= 2);
    }

    #[test]
    fn stale_profiles_are_dropped_and_fresh_ones_kept() {
        let cache = ProfileCache::new(100);
        cache.put("a", "fresh", Some(device("fresh", None)));
        cache.put("a", "stale", Some(device("stale", None)));
        let long_ago = Instant::now()
            .checked_sub(PROFILE_TTL + Duration::from_secs(1))
            .expect("the clock is past the TTL");
        if let Some(entry) = cache.entries.lock().get_mut(&key("a", "stale")) {
            entry.fetched = long_ago;
        }
        assert_eq!(cache.forget_stale(), 1);
        assert!(cache.get("a", "fresh").is_some());
        assert!(cache.entries.lock().get(&key("a", "stale")).is_none());
        assert_eq!(cache.forget_stale(), 0);
    }
}
