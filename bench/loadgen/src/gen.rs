//! Deterministic synthetic mobile events, written once as NDJSON so that Atoll
//! and the peer engines (DuckDB, chdb) load exactly the same rows.
//!
//! The model, per device (each device has its own random stream derived from the
//! seed and its number, so the output depends only on `--seed`, `--events`,
//! `--days` and `--end-date`):
//!
//! - it installs on a uniformly chosen day of the window and is active that day;
//! - on day `k` after install it comes back with probability `0.5 / sqrt(k)`
//!   (15% of devices are "loyal": 0.6 every day);
//! - an active day has 1-5 sessions (geometric), each starting with `$launch`,
//!   then 2-10 `$page_view`s (page, referrer, stay), a few custom events
//!   (`search`, `share`) and, in some sessions, steps of the shop funnel
//!   `view_item → add_to_cart → checkout → purchase` with drop-off at every
//!   step; a funnel left half way may resume in a later session (hours or days
//!   later, so the 24 h window matters), and ends with `$background`;
//! - 40% of devices have an account (`user_id`), bound by a `$login` event in
//!   their first session.
//!
//! Every device's event times strictly increase (no ties), so order-dependent
//! reports (funnels) have one answer. Events are grouped by device in the file,
//! oldest first. One line:
//!
//! ```text
//! {"uuid":"…","device_id":"d00000001","user_id":null,"event_id":"$page_view","time":1764000000000,
//!  "session_id":"…","page":"home","referrer":"search","duration_ms":5300,"platform":"android",
//!  "app_version":"3.2.1","channel":"play","attributes":{"ab":"B","screen_class":"HomeActivity"}}
//! ```

use std::fmt::Write as _;

/// splitmix64: small, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A stream for item `index` of a run seeded with `seed`.
    pub fn derive(seed: u64, index: u64) -> Rng {
        let mut mixer = Rng(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        mixer.next();
        Rng(mixer.next() ^ index)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A version 4 UUID, hyphenated.
    pub fn uuid(&mut self) -> String {
        let high = (self.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let low = (self.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }
}

pub const DAY_MS: i64 = 86_400_000;

const PAGES: &[&str] = &[
    "home",
    "search",
    "category",
    "item",
    "cart",
    "checkout",
    "profile",
    "settings",
    "orders",
    "help",
    "deals",
    "wishlist",
    "notifications",
    "reviews",
    "store_locator",
];
const SCREEN_CLASSES: &[&str] = &[
    "MainActivity",
    "SearchActivity",
    "CategoryFragment",
    "ItemDetailFragment",
    "CartFragment",
    "CheckoutActivity",
    "ProfileFragment",
    "SettingsActivity",
    "OrdersFragment",
    "HelpActivity",
];
const CATEGORIES: &[&str] = &[
    "shoes", "shirts", "bags", "watches", "phones", "toys", "books", "garden",
];
const APP_VERSIONS: &[&str] = &["3.2.1", "3.2.0", "3.1.4", "3.0.9"];
const CHANNELS: &[&str] = &["play", "appstore", "huawei", "xiaomi", "web"];
const SHARE_TARGETS: &[&str] = &["wechat", "whatsapp", "sms", "email", "copy_link"];
const PAYMENT: &[&str] = &["card", "wallet", "paypal", "cod"];

/// The four funnel steps, in order.
pub const FUNNEL: [&str; 4] = ["view_item", "add_to_cart", "checkout", "purchase"];

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// One generated event.
#[derive(Debug, Clone)]
pub struct Event {
    pub uuid: String,
    pub event_id: &'static str,
    pub time: i64,
    pub session_id: String,
    pub page: Option<&'static str>,
    pub referrer: Option<&'static str>,
    pub duration_ms: Option<i64>,
    /// Set on `$login` only (the account signed in).
    pub login: bool,
    pub attributes: Vec<(&'static str, Attr)>,
}

/// A device and its context.
#[derive(Debug, Clone)]
pub struct Device {
    pub device_id: String,
    pub user_id: Option<String>,
    pub platform: &'static str,
    pub app_version: &'static str,
    pub channel: &'static str,
}

impl Device {
    pub fn new(index: u64, rng: &mut Rng) -> Device {
        let platform = if rng.chance(0.7) { "android" } else { "ios" };
        let channel = if platform == "ios" {
            "appstore"
        } else {
            rng.pick(CHANNELS)
        };
        Device {
            device_id: format!("d{index:08}"),
            user_id: rng.chance(0.4).then(|| format!("u{index:08}")),
            platform,
            app_version: rng.pick(APP_VERSIONS),
            channel,
        }
    }
}

fn json_opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(text) => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

fn write_attributes(out: &mut String, attributes: &[(&'static str, Attr)]) {
    out.push('{');
    for (index, (name, value)) in attributes.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        match value {
            Attr::Text(text) => {
                out.push('"');
                out.push_str(text);
                out.push('"');
            }
            Attr::Int(number) => {
                let _ = write!(out, "{number}");
            }
            Attr::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        }
    }
    out.push('}');
}

/// Appends the event as the device API's `TrackedEvent` JSON (no device fields).
pub fn write_tracked(out: &mut String, event: &Event, user_id: Option<&str>) {
    let _ = write!(
        out,
        r#"{{"uuid":"{}","event_id":"{}","time":{},"session_id":"{}""#,
        event.uuid, event.event_id, event.time, event.session_id
    );
    if let Some(page) = event.page {
        let _ = write!(out, r#","page":"{page}""#);
    }
    if let Some(referrer) = event.referrer {
        let _ = write!(out, r#","referrer":"{referrer}""#);
    }
    if let Some(duration) = event.duration_ms {
        let _ = write!(out, r#","duration_ms":{duration}"#);
    }
    if event.login {
        if let Some(user) = user_id {
            let _ = write!(out, r#","user_id":"{user}""#);
        }
    }
    if !event.attributes.is_empty() {
        out.push_str(r#","attributes":"#);
        write_attributes(out, &event.attributes);
    }
    out.push('}');
}

/// Appends the event as one NDJSON line (all columns, nulls explicit).
pub fn write_row(out: &mut String, event: &Event, device: &Device) {
    let _ = write!(
        out,
        r#"{{"uuid":"{}","device_id":"{}","user_id":"#,
        event.uuid, device.device_id
    );
    json_opt_str(out, device.user_id.as_deref());
    let _ = write!(
        out,
        r#","event_id":"{}","time":{},"session_id":"{}","page":"#,
        event.event_id, event.time, event.session_id
    );
    json_opt_str(out, event.page);
    out.push_str(r#","referrer":"#);
    json_opt_str(out, event.referrer);
    match event.duration_ms {
        Some(duration) => {
            let _ = write!(out, r#","duration_ms":{duration}"#);
        }
        None => out.push_str(r#","duration_ms":null"#),
    }
    let _ = write!(
        out,
        r#","platform":"{}","app_version":"{}","channel":"{}","attributes":"#,
        device.platform, device.app_version, device.channel
    );
    write_attributes(out, &event.attributes);
    out.push_str("}\n");
}

/// Generates one device's events over `days` days starting at `first_day_ms`.
pub struct DeviceGen<'a> {
    rng: &'a mut Rng,
    device_index: u64,
    sessions: u32,
    /// Funnel level the device reached in its current shopping intent (0: none).
    funnel_level: usize,
    has_user: bool,
    logged_in: bool,
    time: i64,
    events: Vec<Event>,
}

impl<'a> DeviceGen<'a> {
    fn push(
        &mut self,
        session: &str,
        event_id: &'static str,
        page: Option<&'static str>,
        attributes: Vec<(&'static str, Attr)>,
    ) -> usize {
        let uuid = self.rng.uuid();
        self.events.push(Event {
            uuid,
            event_id,
            time: self.time,
            session_id: session.to_owned(),
            page,
            referrer: None,
            duration_ms: None,
            login: false,
            attributes,
        });
        // 2-40 s to the next event, never the same millisecond.
        self.time += 2_000 + self.rng.below(38_000) as i64;
        self.events.len() - 1
    }

    fn item_attributes(&mut self) -> Vec<(&'static str, Attr)> {
        vec![
            ("category", Attr::Text(self.rng.pick(CATEGORIES).to_owned())),
            (
                "item_id",
                Attr::Text(format!("sku-{:06}", self.rng.below(50_000))),
            ),
            (
                "price_cents",
                Attr::Int(199 + self.rng.below(30_000) as i64),
            ),
            ("currency", Attr::Text("EUR".to_owned())),
        ]
    }

    /// Funnel steps from `self.funnel_level` on, with drop-off; some stop half
    /// way and may resume in a later session.
    fn funnel(&mut self, session: &str) {
        const CONTINUE: [f64; 4] = [1.0, 0.5, 0.6, 0.75];
        loop {
            let next = self.funnel_level;
            if next >= FUNNEL.len() {
                self.funnel_level = 0;
                return;
            }
            if next > 0 && !self.rng.chance(CONTINUE[next]) {
                // Abandoned now; a later session may pick it up (or start over).
                return;
            }
            let (page, mut attributes) = match next {
                0 | 1 => ("item", self.item_attributes()),
                2 => (
                    "checkout",
                    vec![("items", Attr::Int(1 + self.rng.below(4) as i64))],
                ),
                _ => (
                    "checkout",
                    vec![
                        ("payment", Attr::Text(self.rng.pick(PAYMENT).to_owned())),
                        (
                            "revenue_cents",
                            Attr::Int(500 + self.rng.below(90_000) as i64),
                        ),
                    ],
                ),
            };
            attributes.push(("ab", Attr::Text(self.ab())));
            // A second look at another item before deciding, sometimes.
            if next == 0 && self.rng.chance(0.3) {
                let extra = self.item_attributes();
                self.push(session, FUNNEL[0], Some("item"), extra);
            }
            self.push(session, FUNNEL[next], Some(page), attributes);
            self.funnel_level = next + 1;
            if self.rng.chance(0.15) {
                // Leaves the funnel for now, to come back later.
                return;
            }
        }
    }

    fn ab(&mut self) -> String {
        if self.device_index.is_multiple_of(2) {
            "A"
        } else {
            "B"
        }
        .to_owned()
    }

    fn session(&mut self, start: i64) {
        self.time = self.time.max(start);
        let session = format!("s{:08}-{:04}", self.device_index, self.sessions);
        self.sessions += 1;
        let session_start = self.time;
        let launch_ms = 300 + self.rng.below(2_500) as i64;
        let cold = self.rng.chance(0.6);
        self.push(
            &session,
            "$launch",
            None,
            vec![
                ("cold_start", Attr::Bool(cold)),
                ("launch_ms", Attr::Int(launch_ms)),
            ],
        );
        if self.has_user && !self.logged_in {
            self.logged_in = true;
            let at = self.push(
                &session,
                "$login",
                Some("profile"),
                vec![("method", Attr::Text("password".to_owned()))],
            );
            self.events[at].login = true;
        }
        let views = 2 + self.rng.below(9);
        let funnel_at = if self.funnel_level > 0 && self.rng.chance(0.35) {
            Some(self.rng.below(views))
        } else if self.rng.chance(0.4) {
            self.funnel_level = 0;
            Some(self.rng.below(views))
        } else {
            None
        };
        let mut previous: Option<&'static str> = None;
        for view in 0..views {
            let page = if view == 0 {
                "home"
            } else {
                self.rng.pick(PAGES)
            };
            let stay = 1_000 + self.rng.below(60_000) as i64;
            let screen = SCREEN_CLASSES
                [PAGES.iter().position(|p| *p == page).unwrap_or(0) % SCREEN_CLASSES.len()];
            let ab = self.ab();
            let load_ms = 20 + self.rng.below(900) as i64;
            let at = self.push(
                &session,
                "$page_view",
                Some(page),
                vec![
                    ("ab", Attr::Text(ab)),
                    ("screen_class", Attr::Text(screen.to_owned())),
                    ("load_ms", Attr::Int(load_ms)),
                ],
            );
            self.events[at].referrer = previous;
            self.events[at].duration_ms = Some(stay);
            previous = Some(page);
            if page == "search" || self.rng.chance(0.08) {
                let results = self.rng.below(200) as i64;
                let length = 2 + self.rng.below(20) as i64;
                self.push(
                    &session,
                    "search",
                    Some("search"),
                    vec![
                        ("query_len", Attr::Int(length)),
                        ("results", Attr::Int(results)),
                    ],
                );
            }
            if self.rng.chance(0.04) {
                let target = self.rng.pick(SHARE_TARGETS).to_owned();
                self.push(
                    &session,
                    "share",
                    page.into(),
                    vec![("target", Attr::Text(target))],
                );
            }
            if funnel_at == Some(view) {
                self.funnel(&session);
            }
        }
        let length = self.time - session_start;
        let at = self.push(&session, "$background", None, vec![]);
        self.events[at].duration_ms = Some(length);
        // At least 30 minutes in the background before the next session.
        self.time += 30 * 60_000;
    }
}

/// All events of device `index`: its install day, returns, sessions. Times are
/// strictly increasing and inside `[first_day_ms, first_day_ms + days * DAY_MS)`.
pub fn device_events(seed: u64, index: u64, first_day_ms: i64, days: u32) -> (Device, Vec<Event>) {
    let mut rng = Rng::derive(seed, index);
    let device = Device::new(index, &mut rng);
    let install = rng.below(u64::from(days)) as i64;
    let loyal = rng.chance(0.15);
    let has_user = device.user_id.is_some();
    let mut generator = DeviceGen {
        rng: &mut rng,
        device_index: index,
        sessions: 0,
        funnel_level: 0,
        has_user,
        logged_in: false,
        time: 0,
        events: Vec::with_capacity(128),
    };
    let end = first_day_ms + i64::from(days) * DAY_MS;
    for day in install..i64::from(days) {
        let since = day - install;
        let active = since == 0
            || if loyal {
                generator.rng.chance(0.6)
            } else {
                generator.rng.chance(0.5 / (since as f64).sqrt())
            };
        if !active {
            continue;
        }
        let day_start = first_day_ms + day * DAY_MS;
        let mut sessions = 1;
        while sessions < 5 && generator.rng.chance(0.45) {
            sessions += 1;
        }
        // Sessions spread over the waking part of the day (06:00-23:00 UTC-ish),
        // sorted; a session may run past midnight into the next day.
        let mut starts: Vec<i64> = (0..sessions)
            .map(|_| 6 * 3_600_000 + generator.rng.below(17 * 3_600_000) as i64)
            .collect();
        starts.sort_unstable();
        for start in starts {
            if day_start + start >= end {
                break;
            }
            generator.session(day_start + start);
        }
    }
    let mut events = generator.events;
    events.retain(|event| event.time < end);
    (device, events)
}

/// Events of a live batch for the device API: `count` events of one session
/// ending now (times `now - count*200ms` … `now`), the same mix as above.
pub fn live_batch(rng: &mut Rng, device_index: u64, now_ms: i64, count: usize) -> String {
    let mut generator = DeviceGen {
        rng,
        device_index,
        sessions: 0,
        funnel_level: 0,
        has_user: false,
        logged_in: true,
        time: 0,
        events: Vec::with_capacity(count + 32),
    };
    while generator.events.len() < count {
        generator.session(0);
    }
    let mut events = generator.events;
    events.truncate(count);
    let mut body = String::with_capacity(count * 260 + 32);
    body.push_str(r#"{"events":["#);
    for (index, event) in events.iter_mut().enumerate() {
        event.time = now_ms - (count - index) as i64 * 200;
        if index > 0 {
            body.push(',');
        }
        write_tracked(&mut body, event, None);
    }
    body.push_str(r#"],"network":"wifi"}"#);
    body
}

/// Days since the epoch of `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-11-27"), Some(20_784));
    }

    #[test]
    fn devices_are_deterministic_and_strictly_ordered() {
        let first = parse_day("2026-10-29").unwrap() * DAY_MS;
        for index in 0..200 {
            let (_, a) = device_events(7, index, first, 30);
            let (_, b) = device_events(7, index, first, 30);
            assert_eq!(a.len(), b.len());
            assert!(a.windows(2).all(|w| w[0].time < w[1].time));
            assert!(a
                .iter()
                .all(|e| e.time >= first && e.time < first + 30 * DAY_MS));
        }
    }
}
