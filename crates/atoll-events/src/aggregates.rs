//! Pre-aggregates maintained at ingest: per app, dense numbers for devices and
//! users, and per day compressed bitmaps (roaring) of the active and the new ones,
//! also split by platform, app version and channel.
//!
//! They answer DAU/WAU/MAU, unique visitors over any range and cohort retention
//! with set operations on a few kilobytes instead of scans over every event. Sets
//! are idempotent, so replaying the log over a newer snapshot cannot over-count.

use crate::row::{Day, EventRow, Ordinals};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A day on which a unit was never seen.
const NEVER: Day = Day::MAX;

/// Distinct values kept per dimension and day; the rest count under [`OTHER`].
pub const MAX_DIMENSION_VALUES: usize = 500;
/// The value under which values past [`MAX_DIMENSION_VALUES`] are counted.
pub const OTHER: &str = "(other)";
/// The value of an event without the dimension.
pub const UNKNOWN: &str = "(unknown)";

/// A dimension the bitmaps are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dimension {
    /// Device platform.
    Platform,
    /// App version.
    AppVersion,
    /// Install channel.
    Channel,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 3] = [
        Dimension::Platform,
        Dimension::AppVersion,
        Dimension::Channel,
    ];

    fn of(self, row: &EventRow) -> &str {
        let value = match self {
            Dimension::Platform => &row.platform,
            Dimension::AppVersion => &row.app_version,
            Dimension::Channel => &row.channel,
        };
        value.as_deref().unwrap_or(UNKNOWN)
    }
}

/// Dense numbers for the ids of one kind (devices or users) of one app.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    ids: HashMap<Arc<str>, u32>,
    by_ordinal: Vec<Arc<str>>,
    first_day: Vec<Day>,
    /// How many entries are already in persisted chunks.
    persisted: usize,
}

impl Dictionary {
    /// The number of `id`, assigning the next one when it is new.
    pub fn ordinal(&mut self, id: &str) -> u32 {
        if let Some(&ordinal) = self.ids.get(id) {
            return ordinal;
        }
        let ordinal = self.by_ordinal.len() as u32;
        let id: Arc<str> = Arc::from(id);
        self.ids.insert(id.clone(), ordinal);
        self.by_ordinal.push(id);
        self.first_day.push(NEVER);
        ordinal
    }

    /// The number of `id`, if it was ever seen.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.ids.get(id).copied()
    }

    /// The id of a number.
    pub fn id(&self, ordinal: u32) -> Option<&str> {
        self.by_ordinal.get(ordinal as usize).map(|id| &**id)
    }

    /// How many ids are known.
    pub fn len(&self) -> usize {
        self.by_ordinal.len()
    }

    /// Whether no id is known.
    pub fn is_empty(&self) -> bool {
        self.by_ordinal.is_empty()
    }

    /// The entries not yet persisted, with the number of the first; marks them persisted.
    pub fn take_unpersisted(&mut self) -> Option<(usize, Vec<String>)> {
        if self.persisted == self.by_ordinal.len() {
            return None;
        }
        let start = self.persisted;
        let ids = self.by_ordinal[start..]
            .iter()
            .map(|id| id.to_string())
            .collect();
        self.persisted = self.by_ordinal.len();
        Some((start, ids))
    }

    /// Makes the entries from `start` on count as unpersisted again (their
    /// checkpoint failed).
    pub fn unpersist_from(&mut self, start: usize) {
        self.persisted = self.persisted.min(start);
    }

    /// Loads a persisted chunk; chunks must come in order.
    pub fn load_chunk(&mut self, start: usize, ids: Vec<String>) -> Result<(), String> {
        if start != self.by_ordinal.len() {
            return Err(format!(
                "dictionary chunk starts at {start}, expected {}",
                self.by_ordinal.len()
            ));
        }
        for id in ids {
            self.ordinal(&id);
        }
        self.persisted = self.by_ordinal.len();
        Ok(())
    }
}

/// The bitmaps of one app and day.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DayAggregate {
    /// Devices with at least one event that day.
    #[serde(with = "bitmap")]
    pub active_devices: RoaringBitmap,
    /// Devices whose first event is on that day.
    #[serde(with = "bitmap")]
    pub new_devices: RoaringBitmap,
    /// Users with at least one event that day.
    #[serde(with = "bitmap")]
    pub active_users: RoaringBitmap,
    /// Users whose first event is on that day.
    #[serde(with = "bitmap")]
    pub new_users: RoaringBitmap,
    /// Active devices per dimension value.
    #[serde(with = "bitmap_map")]
    pub by_dimension: BTreeMap<(Dimension, String), RoaringBitmap>,
    /// Active users per dimension value.
    #[serde(with = "bitmap_map")]
    pub users_by_dimension: BTreeMap<(Dimension, String), RoaringBitmap>,
}

impl DayAggregate {
    fn dimension_values(&self, dimension: Dimension) -> usize {
        self.by_dimension
            .range((dimension, String::new())..)
            .take_while(|((d, _), _)| *d == dimension)
            .count()
    }

    /// The active devices of a dimension value that day.
    pub fn devices_with(&self, dimension: Dimension, value: &str) -> Option<&RoaringBitmap> {
        self.by_dimension.get(&(dimension, value.to_owned()))
    }

    /// The active users of a dimension value that day.
    pub fn users_with(&self, dimension: Dimension, value: &str) -> Option<&RoaringBitmap> {
        self.users_by_dimension.get(&(dimension, value.to_owned()))
    }
}

/// All pre-aggregates of one app.
#[derive(Debug, Default, Clone)]
pub struct AppAggregates {
    /// Device numbers.
    pub devices: Dictionary,
    /// User numbers.
    pub users: Dictionary,
    /// Bitmaps by day.
    pub days: BTreeMap<Day, DayAggregate>,
    /// Days changed since the last snapshot.
    pub dirty: BTreeSet<Day>,
}

/// Marks `ordinal` first seen on `day` in `dictionary`, moving it between the
/// days' new-sets when an earlier event arrives late.
fn note_first_day(
    dictionary: &mut Dictionary,
    days: &mut BTreeMap<Day, DayAggregate>,
    dirty: &mut BTreeSet<Day>,
    ordinal: u32,
    day: Day,
    pick: fn(&mut DayAggregate) -> &mut RoaringBitmap,
) {
    let first = &mut dictionary.first_day[ordinal as usize];
    if day >= *first {
        return;
    }
    if *first != NEVER {
        if let Some(previous) = days.get_mut(first) {
            pick(previous).remove(ordinal);
            dirty.insert(*first);
        }
    }
    *first = day;
    pick(days.entry(day).or_default()).insert(ordinal);
    dirty.insert(day);
}

impl AppAggregates {
    /// Numbers a row's device and user and adds them to the day's sets.
    pub fn add(&mut self, row: &EventRow, day: Day) -> Ordinals {
        let device = self.devices.ordinal(&row.device_id);
        let user = row.user_id.as_deref().map(|id| self.users.ordinal(id));
        let aggregate = self.days.entry(day).or_default();
        let fresh_device = aggregate.active_devices.insert(device);
        let fresh_user = user.is_some_and(|user| aggregate.active_users.insert(user));
        if fresh_device || fresh_user {
            for dimension in Dimension::ALL {
                let mut value = dimension.of(row);
                let key = (dimension, value.to_owned());
                if !aggregate.by_dimension.contains_key(&key)
                    && aggregate.dimension_values(dimension) >= MAX_DIMENSION_VALUES
                {
                    value = OTHER;
                }
                let key = (dimension, value.to_owned());
                if fresh_device {
                    aggregate
                        .by_dimension
                        .entry(key.clone())
                        .or_default()
                        .insert(device);
                }
                if let Some(user) = user.filter(|_| fresh_user) {
                    aggregate
                        .users_by_dimension
                        .entry(key)
                        .or_default()
                        .insert(user);
                }
            }
            self.dirty.insert(day);
        }
        note_first_day(
            &mut self.devices,
            &mut self.days,
            &mut self.dirty,
            device,
            day,
            |a| &mut a.new_devices,
        );
        if let Some(user) = user {
            note_first_day(
                &mut self.users,
                &mut self.days,
                &mut self.dirty,
                user,
                day,
                |a| &mut a.new_users,
            );
        }
        Ordinals { device, user }
    }

    /// Rebuilds the first-seen days from the new-sets after loading a snapshot.
    pub fn rebuild_first_days(&mut self) {
        self.devices.first_day = vec![NEVER; self.devices.len()];
        self.users.first_day = vec![NEVER; self.users.len()];
        for (&day, aggregate) in &self.days {
            for ordinal in &aggregate.new_devices {
                if let Some(first) = self.devices.first_day.get_mut(ordinal as usize) {
                    *first = (*first).min(day);
                }
            }
            for ordinal in &aggregate.new_users {
                if let Some(first) = self.users.first_day.get_mut(ordinal as usize) {
                    *first = (*first).min(day);
                }
            }
        }
    }

    /// Removes a device (and the user numbers given) from every set (privacy deletion).
    pub fn forget(&mut self, device: Option<u32>, user: Option<u32>) {
        for (&day, aggregate) in self.days.iter_mut() {
            if let Some(device) = device {
                aggregate.active_devices.remove(device);
                aggregate.new_devices.remove(device);
                for set in aggregate.by_dimension.values_mut() {
                    set.remove(device);
                }
            }
            if let Some(user) = user {
                aggregate.active_users.remove(user);
                aggregate.new_users.remove(user);
                for set in aggregate.users_by_dimension.values_mut() {
                    set.remove(user);
                }
            }
            self.dirty.insert(day);
        }
        if let Some(device) = device {
            self.devices.first_day[device as usize] = NEVER;
        }
        if let Some(user) = user {
            self.users.first_day[user as usize] = NEVER;
        }
    }
}

/// Serialises a bitmap in roaring's portable format.
mod bitmap {
    use roaring::RoaringBitmap;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &RoaringBitmap, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(set.serialized_size());
        set.serialize_into(&mut bytes)
            .map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RoaringBitmap, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        RoaringBitmap::deserialize_from(&bytes[..]).map_err(D::Error::custom)
    }
}

mod bitmap_map {
    use super::Dimension;
    use roaring::RoaringBitmap;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Map = BTreeMap<(Dimension, String), RoaringBitmap>;

    pub fn serialize<S: Serializer>(map: &Map, s: S) -> Result<S::Ok, S::Error> {
        let mut entries = Vec::with_capacity(map.len());
        for ((dimension, value), set) in map {
            let mut bytes = Vec::with_capacity(set.serialized_size());
            set.serialize_into(&mut bytes)
                .map_err(serde::ser::Error::custom)?;
            entries.push((*dimension, value.as_str(), bytes));
        }
        entries.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        let entries = Vec::<(Dimension, String, Vec<u8>)>::deserialize(d)?;
        entries
            .into_iter()
            .map(|(dimension, value, bytes)| {
                RoaringBitmap::deserialize_from(&bytes[..])
                    .map(|set| ((dimension, value), set))
                    .map_err(D::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, user: Option<&str>, version: &str) -> EventRow {
        EventRow {
            device_id: device.into(),
            user_id: user.map(Into::into),
            app_version: Some(version.into()),
            platform: Some("ios".into()),
            ..EventRow::default()
        }
    }

    #[test]
    fn a_late_earlier_event_moves_the_device_to_its_true_first_day() {
        let mut aggregates = AppAggregates::default();
        aggregates.add(&row("d1", None, "1.0"), 10);
        assert!(aggregates.days[&10].new_devices.contains(0));
        aggregates.add(&row("d1", None, "1.0"), 8);
        assert!(!aggregates.days[&10].new_devices.contains(0));
        assert!(aggregates.days[&8].new_devices.contains(0));
        assert!(aggregates.days[&10].active_devices.contains(0));
        aggregates.add(&row("d1", None, "1.0"), 12);
        assert!(aggregates.days[&12].new_devices.is_empty());
    }

    #[test]
    fn dimensions_are_capped_with_an_other_bucket() {
        let mut aggregates = AppAggregates::default();
        for i in 0..MAX_DIMENSION_VALUES + 10 {
            aggregates.add(&row(&format!("d{i}"), Some("u"), &format!("v{i}")), 1);
        }
        let day = &aggregates.days[&1];
        assert_eq!(
            day.dimension_values(Dimension::AppVersion),
            MAX_DIMENSION_VALUES + 1
        );
        assert_eq!(
            day.devices_with(Dimension::AppVersion, OTHER)
                .unwrap()
                .len(),
            10
        );
        assert_eq!(day.active_users.len(), 1);
    }

    #[test]
    fn snapshots_round_trip_and_first_days_rebuild() {
        let mut aggregates = AppAggregates::default();
        aggregates.add(&row("d1", Some("u1"), "1.0"), 3);
        aggregates.add(&row("d2", None, "2.0"), 4);
        let bytes = postcard::to_stdvec(&aggregates.days[&3]).unwrap();
        let back: DayAggregate = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.active_devices, aggregates.days[&3].active_devices);
        assert_eq!(back.by_dimension, aggregates.days[&3].by_dimension);
        let mut copy = aggregates.clone();
        copy.devices.first_day.clear();
        copy.rebuild_first_days();
        assert_eq!(copy.devices.first_day, vec![3, 4]);
        assert_eq!(copy.users.first_day, vec![3]);
    }
}
