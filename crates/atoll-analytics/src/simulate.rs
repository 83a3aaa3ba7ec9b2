//! A behaviour model of a shop app's users, for `atoll sim` (live, through the
//! device API) and for the demo's week of history (through the backfill path).
//!
//! Each device gets a stable persona from its number (platform, version, channel,
//! region, whether it signs in), an install day, and a chance of coming back that
//! decays with days since install, so retention curves look like real ones. An
//! active day has one to three sessions; a session walks pages
//! (home → list → item → cart → checkout) with drop-off at each step and tracks
//! the matching events, so funnels and page paths have shape. Everything is
//! drawn from a seeded generator: the same inputs give the same events.

use atoll_protocol::analytics::BackfillDevice;
use atoll_protocol::events::{
    AttributeValue, TrackedEvent, BACKGROUND, FOREGROUND, LAUNCH, LOGIN, PAGE_VIEW,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const PLATFORMS: &[(&str, u32)] = &[("android", 55), ("ios", 40), ("harmony", 5)];
const VERSIONS: &[(&str, u32)] = &[("3.2.0", 15), ("3.3.0", 35), ("3.4.1", 50)];
const CHANNELS: &[(&str, u32)] = &[
    ("appstore", 40),
    ("huawei", 20),
    ("xiaomi", 15),
    ("official", 25),
];
const REGIONS: &[(&str, u32)] = &[
    ("CN-31", 30),
    ("CN-11", 25),
    ("CN-44", 25),
    ("SG", 10),
    ("DE", 10),
];
const NETWORKS: &[(&str, u32)] = &[("wifi", 60), ("5g", 25), ("4g", 15)];
const CATEGORIES: &[&str] = &["shoes", "bags", "phones", "books", "toys"];

fn pick<'a>(rng: &mut StdRng, weighted: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = weighted.iter().map(|w| w.1).sum();
    let mut roll = rng.random_range(0..total);
    for (value, weight) in weighted {
        if roll < *weight {
            return value;
        }
        roll -= weight;
    }
    weighted[0].0
}

/// A simulated device.
#[derive(Debug, Clone)]
pub struct Persona {
    /// Device number (stable across runs).
    pub index: u64,
    /// The device id.
    pub device_id: String,
    /// The account it signs in with, if it does.
    pub user_id: Option<String>,
    /// Platform.
    pub platform: &'static str,
    /// App version.
    pub app_version: &'static str,
    /// Channel.
    pub channel: &'static str,
    /// Region.
    pub region: &'static str,
    /// Network.
    pub network: &'static str,
    /// Model.
    pub model: String,
    /// OS version.
    pub os_version: String,
}

impl Persona {
    /// The persona of device `index` of a run seeded with `seed`.
    pub fn new(seed: u64, index: u64) -> Persona {
        let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let platform = pick(&mut rng, PLATFORMS);
        let (model, os_version) = match platform {
            "ios" => (
                format!("iPhone{}", rng.random_range(12..17)),
                format!("{}.{}", rng.random_range(16..19), rng.random_range(0..5)),
            ),
            "harmony" => ("Mate60".to_owned(), "4.2".to_owned()),
            _ => (
                ["Pixel 8", "Galaxy S24", "Redmi K70", "OPPO Reno11"][rng.random_range(0..4)]
                    .to_owned(),
                format!("{}", rng.random_range(11..15)),
            ),
        };
        Persona {
            index,
            device_id: format!("sim-{seed}-{index:06}"),
            user_id: rng
                .random_bool(0.6)
                .then(|| format!("user-{seed}-{index:06}")),
            platform,
            app_version: pick(&mut rng, VERSIONS),
            channel: pick(&mut rng, CHANNELS),
            region: pick(&mut rng, REGIONS),
            network: pick(&mut rng, NETWORKS),
            model,
            os_version,
        }
    }

    /// The device as the backfill path describes it.
    pub fn backfill_device(&self) -> BackfillDevice {
        BackfillDevice {
            device_id: self.device_id.clone(),
            user_id: self.user_id.clone(),
            platform: Some(self.platform.to_owned()),
            os_version: Some(self.os_version.clone()),
            model: Some(self.model.clone()),
            app_version: Some(self.app_version.to_owned()),
            channel: Some(self.channel.to_owned()),
            region: Some(self.region.to_owned()),
            network: Some(self.network.to_owned()),
        }
    }

    /// Whether the device is active `days_since_install` days after installing:
    /// a decaying chance, with a floor of loyal users.
    pub fn active_on(&self, seed: u64, days_since_install: i64) -> bool {
        if days_since_install < 0 {
            return false;
        }
        if days_since_install == 0 {
            return true;
        }
        let mut rng = day_rng(seed, self.index, days_since_install);
        let chance = 0.12 + 0.5 * (-(days_since_install as f64) / 4.0).exp();
        rng.random_bool(chance.min(1.0))
    }

    /// The events of one active day starting at `day_start_ms` (UTC midnight).
    pub fn day_events(
        &self,
        seed: u64,
        day_number: i64,
        day_start_ms: i64,
        first_day: bool,
    ) -> Vec<TrackedEvent> {
        let mut rng = day_rng(seed, self.index, day_number.wrapping_add(1_000_000));
        let sessions = rng.random_range(1..=3);
        let mut events = Vec::new();
        for session in 0..sessions {
            // Hours cluster around lunch and the evening.
            let hour = [8, 12, 12, 13, 19, 20, 20, 21, 22, 10, 16][rng.random_range(0..11)];
            let start =
                day_start_ms + hour * 3_600_000 + rng.random_range(0..3_600_000) + session * 1_000;
            self.session(
                &mut rng,
                start,
                session == 0,
                first_day && session == 0,
                &mut events,
            );
        }
        events.sort_by_key(|e| e.time);
        events
    }

    fn session(
        &self,
        rng: &mut StdRng,
        start: i64,
        launch: bool,
        first: bool,
        out: &mut Vec<TrackedEvent>,
    ) {
        let session_id = uuid_from(rng).to_string();
        let mut time = start;
        let push = |rng: &mut StdRng, out: &mut Vec<TrackedEvent>, event_id: &str, time: i64| {
            out.push(TrackedEvent {
                uuid: uuid_from(rng).to_string(),
                event_id: event_id.to_owned(),
                time,
                session_id: Some(session_id.clone()),
                ..TrackedEvent::default()
            });
            out.len() - 1
        };
        if launch {
            push(rng, out, LAUNCH, time);
        }
        push(rng, out, FOREGROUND, time);
        if first {
            if let Some(user) = &self.user_id {
                let at = push(rng, out, LOGIN, time + 500);
                out[at].user_id = Some(user.clone());
            }
        }
        let pages = ["home", "list", "item", "cart", "checkout"];
        let carry_on = [0.85, 0.7, 0.45, 0.6];
        let mut previous: Option<&str> = None;
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        for (depth, page) in pages.iter().enumerate() {
            let stay = rng.random_range(3_000..60_000);
            let at = push(rng, out, PAGE_VIEW, time);
            out[at].page = Some((*page).to_owned());
            out[at].referrer = previous.map(str::to_owned);
            out[at].duration_ms = Some(stay);
            let custom = match *page {
                "list" => Some(("search", vec![("keyword", AttributeValue::from(category))])),
                "item" => Some((
                    "view_item",
                    vec![
                        ("category", AttributeValue::from(category)),
                        (
                            "price",
                            AttributeValue::from(rng.random_range(5..500) as i64),
                        ),
                    ],
                )),
                "cart" => Some((
                    "add_to_cart",
                    vec![("category", AttributeValue::from(category))],
                )),
                "checkout" => Some((
                    "purchase",
                    vec![
                        ("category", AttributeValue::from(category)),
                        (
                            "amount",
                            AttributeValue::from(rng.random_range(5..900) as i64),
                        ),
                    ],
                )),
                _ => None,
            };
            if let Some((event_id, attributes)) = custom {
                let at = push(rng, out, event_id, time + stay / 2);
                out[at].page = Some((*page).to_owned());
                out[at].attributes = attributes
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<BTreeMap<_, _>>();
            }
            time += stay;
            previous = Some(page);
            if depth < carry_on.len() && !rng.random_bool(carry_on[depth]) {
                break;
            }
        }
        let at = push(rng, out, BACKGROUND, time);
        out[at].duration_ms = Some(time - start);
    }
}

fn day_rng(seed: u64, index: u64, day: i64) -> StdRng {
    StdRng::seed_from_u64(
        seed ^ index.rotate_left(17) ^ (day as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

fn uuid_from(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// A week-style history: `devices` devices installing over `days` days ending
/// `today` (a day number), each active per its persona. Yields, per device, its
/// description and events (oldest first), ready for the backfill path.
pub fn history(
    seed: u64,
    devices: u64,
    days: i64,
    today: i64,
) -> impl Iterator<Item = (Persona, Vec<TrackedEvent>)> {
    (0..devices).map(move |index| {
        let persona = Persona::new(seed, index);
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(index));
        // More installs early in the window so later days show returning users.
        let install =
            today - days + 1 + (rng.random_range(0.0f64..1.0).powf(1.6) * days as f64) as i64;
        let mut events = Vec::new();
        for day in install..=today {
            if persona.active_on(seed, day - install) {
                events.extend(persona.day_events(seed, day, day * 86_400_000, day == install));
            }
        }
        (persona, events)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_deterministic_and_shaped() {
        let a: Vec<_> = history(7, 50, 7, 20_000).collect();
        let b: Vec<_> = history(7, 50, 7, 20_000).collect();
        assert_eq!(a.len(), 50);
        for ((pa, ea), (pb, eb)) in a.iter().zip(&b) {
            assert_eq!(pa.device_id, pb.device_id);
            assert_eq!(ea, eb);
        }
        let events: Vec<&TrackedEvent> = a.iter().flat_map(|(_, e)| e).collect();
        let count = |name: &str| events.iter().filter(|e| e.event_id == name).count();
        assert!(
            count(LAUNCH) >= 50,
            "every device launches on its install day"
        );
        assert!(count("view_item") > count("add_to_cart"));
        assert!(count("add_to_cart") >= count("purchase"));
        assert!(events
            .iter()
            .all(|e| e.time >= 20_000 * 86_400_000 - 6 * 86_400_000));
        // Retention decays: fewer devices active long after install than on day 1.
        let persona = Persona::new(7, 1);
        let early = (0..200)
            .filter(|i| {
                Persona {
                    index: *i,
                    ..persona.clone()
                }
                .active_on(7, 1)
            })
            .count();
        let late = (0..200)
            .filter(|i| {
                Persona {
                    index: *i,
                    ..persona.clone()
                }
                .active_on(7, 20)
            })
            .count();
        assert!(early > late * 2, "day 1: {early}, day 20: {late}");
    }
}
