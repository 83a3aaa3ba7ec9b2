//! The reports. Counts of distinct devices and users come from the store's day
//! bitmaps (set operations, no scan); everything else is SQL over the app's
//! events for the range (DataFusion over Parquet segments and buffered rows).

use crate::dates::{format_day, next_period, period_start};
use crate::funnel;
use crate::sql::{attribute, Conditions, Table};
use crate::{Error, Result};
use atoll_events::aggregates::{AppAggregates, DayAggregate, Dimension};
use atoll_events::{Day, EventStore, DAY_MS};
use atoll_protocol::analytics::*;
use atoll_protocol::events::{BACKGROUND, LAUNCH, PAGE_VIEW};
use roaring::{MultiOps, RoaringBitmap};
use std::collections::BTreeMap;

/// What every report is asked about.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The app's internal id.
    pub app: String,
    /// First day.
    pub from: Day,
    /// Last day.
    pub to: Day,
    /// Platform filter.
    pub platform: Option<String>,
    /// App version filter.
    pub app_version: Option<String>,
    /// Today (UTC), from the service's clock.
    pub today: Day,
}

impl Scope {
    /// The filter conditions on event rows.
    fn conditions(&self) -> Conditions {
        let mut conditions = Conditions::default();
        if let Some(platform) = &self.platform {
            conditions.eq("platform", platform);
        }
        if let Some(version) = &self.app_version {
            conditions.eq("app_version", version);
        }
        conditions
    }

    async fn context(&self, store: &EventStore) -> Result<datafusion::prelude::SessionContext> {
        store
            .session(&self.app, self.from..=self.to)
            .await
            .map_err(Error::from)
    }

    /// The devices (or users) of one day that pass the filters.
    fn filtered<'a>(
        &self,
        day: &'a DayAggregate,
        set: &'a RoaringBitmap,
        users: bool,
    ) -> RoaringBitmap {
        let mut result = set.clone();
        let lookup = |dimension: Dimension, value: &str| {
            if users {
                day.users_with(dimension, value)
            } else {
                day.devices_with(dimension, value)
            }
        };
        if let Some(platform) = &self.platform {
            match lookup(Dimension::Platform, platform) {
                Some(with) => result &= with,
                None => result.clear(),
            }
        }
        if let Some(version) = &self.app_version {
            match lookup(Dimension::AppVersion, version) {
                Some(with) => result &= with,
                None => result.clear(),
            }
        }
        result
    }

    fn has_filters(&self) -> bool {
        self.platform.is_some() || self.app_version.is_some()
    }
}

/// The devices (or users) of one day, active or new, that pass the filters.
fn units(
    scope: &Scope,
    aggregates: &AppAggregates,
    day: Day,
    users: bool,
    new: bool,
) -> RoaringBitmap {
    let Some(aggregate) = aggregates.days.get(&day) else {
        return RoaringBitmap::new();
    };
    let set = match (users, new) {
        (false, false) => &aggregate.active_devices,
        (false, true) => &aggregate.new_devices,
        (true, false) => &aggregate.active_users,
        (true, true) => &aggregate.new_users,
    };
    if scope.has_filters() {
        scope.filtered(aggregate, set, users)
    } else {
        set.clone()
    }
}

fn active(scope: &Scope, aggregates: &AppAggregates, day: Day, users: bool) -> RoaringBitmap {
    units(scope, aggregates, day, users, false)
}

fn new_units(scope: &Scope, aggregates: &AppAggregates, day: Day, users: bool) -> RoaringBitmap {
    units(scope, aggregates, day, users, true)
}

fn union_of(
    scope: &Scope,
    aggregates: &AppAggregates,
    days: std::ops::RangeInclusive<Day>,
    users: bool,
) -> RoaringBitmap {
    let mut set = RoaringBitmap::new();
    for day in days {
        set |= active(scope, aggregates, day, users);
    }
    set
}

/// Distinct active devices (or users) over a range, from the bitmaps.
pub fn unique_active(store: &EventStore, scope: &Scope, users: bool) -> u64 {
    store
        .with_aggregates(&scope.app, |a| {
            union_of(scope, a, scope.from..=scope.to, users).len()
        })
        .unwrap_or(0)
}

/// One row per session: its day (of its first event) and its length: the
/// foreground time its `$background` events report, or else first to last event.
fn session_lengths_sql(conditions: &Conditions) -> String {
    format!(
        "SELECT CAST(start / {DAY_MS} AS BIGINT) AS day, \
         CASE WHEN fg IS NOT NULL THEN fg ELSE last - start END AS len \
         FROM (SELECT session_id, MIN(time) AS start, MAX(time) AS last, \
         SUM(CASE WHEN event_id = '{BACKGROUND}' THEN duration_ms END) AS fg \
         FROM events WHERE session_id IS NOT NULL AND {} GROUP BY session_id) s",
        conditions.sql()
    )
}

/// The overview report.
pub async fn overview(store: &EventStore, scope: &Scope) -> Result<OverviewReport> {
    let context = scope.context(store).await?;
    let conditions = scope.conditions();
    let per_day = conditions
        .run(
            &context,
            &format!(
                "SELECT CAST(time / {DAY_MS} AS BIGINT) AS day, \
                 SUM(CASE WHEN event_id = '{LAUNCH}' THEN 1 ELSE 0 END) AS launches, COUNT(*) AS events \
                 FROM events WHERE {} GROUP BY 1",
                conditions.sql()
            ),
        )
        .await?;
    let launches = per_day.keyed_counts()?;
    let sessions_table = conditions
        .run(&context, &session_lengths_sql(&conditions))
        .await?;
    let mut sessions: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (day, length) in sessions_table
        .ints(0)?
        .into_iter()
        .zip(sessions_table.ints(1)?)
    {
        let entry = sessions.entry(day).or_default();
        entry.0 += 1;
        entry.1 += length.max(0) as u64;
    }
    let report = store
        .with_aggregates(&scope.app, |aggregates| {
            let (active, new_in_range) = activity(scope, aggregates);
            let days: Vec<OverviewDay> = active
                .days
                .into_iter()
                .zip(scope.from..=scope.to)
                .map(|(active, day)| {
                    let (launches, _) = launches.get(&i64::from(day)).copied().unwrap_or_default();
                    let (sessions, session_ms) =
                        sessions.get(&i64::from(day)).copied().unwrap_or_default();
                    OverviewDay {
                        date: active.date,
                        new_devices: active.new_devices,
                        active_devices: active.active_devices,
                        new_users: active.new_users,
                        active_users: active.active_users,
                        wau: active.wau,
                        mau: active.mau,
                        cumulative_devices: active.cumulative_devices,
                        launches,
                        sessions,
                        avg_session_ms: session_ms.checked_div(sessions).unwrap_or(0),
                    }
                })
                .collect();
            let range = scope.from..=scope.to;
            let mut splits = Vec::new();
            for (dimension, name) in [
                (Dimension::Platform, "platform"),
                (Dimension::AppVersion, "app_version"),
                (Dimension::Channel, "channel"),
            ] {
                let mut by_value: BTreeMap<String, RoaringBitmap> = BTreeMap::new();
                for day in range.clone() {
                    let Some(aggregate) = aggregates.days.get(&day) else {
                        continue;
                    };
                    for ((d, value), set) in &aggregate.by_dimension {
                        if *d == dimension {
                            let set = if scope.has_filters() {
                                scope.filtered(aggregate, set, false)
                            } else {
                                set.clone()
                            };
                            *by_value.entry(value.clone()).or_default() |= set;
                        }
                    }
                }
                let mut values: Vec<SplitValue> = by_value
                    .into_iter()
                    .filter(|(_, set)| !set.is_empty())
                    .map(|(value, set)| SplitValue {
                        value,
                        new_devices: (&set & &new_in_range).len(),
                        active_devices: set.len(),
                    })
                    .collect();
                values.sort_by(|a, b| {
                    b.active_devices
                        .cmp(&a.active_devices)
                        .then(a.value.cmp(&b.value))
                });
                splits.push(Split {
                    dimension: name.to_owned(),
                    values,
                });
            }
            let total_sessions: u64 = days.iter().map(|d| d.sessions).sum();
            let total_session_ms: u64 = sessions
                .range(i64::from(scope.from)..=i64::from(scope.to))
                .map(|(_, (_, ms))| ms)
                .sum();
            let totals = active.totals;
            OverviewReport {
                totals: OverviewTotals {
                    active_devices: totals.active_devices,
                    active_users: totals.active_users,
                    new_devices: totals.new_devices,
                    new_users: totals.new_users,
                    launches: days.iter().map(|d| d.launches).sum(),
                    sessions: total_sessions,
                    avg_session_ms: total_session_ms.checked_div(total_sessions).unwrap_or(0),
                    events: launches.values().map(|(_, events)| events).sum(),
                },
                days,
                splits,
            }
        })
        .unwrap_or_else(|| empty_overview(scope));
    Ok(report)
}

/// Active and new devices and users by day and over the range, from the day
/// sets alone; also the devices new in the range (the overview's splits use them).
fn activity(scope: &Scope, aggregates: &AppAggregates) -> (ActiveReport, RoaringBitmap) {
    let mut cumulative: u64 = aggregates
        .days
        .range(..scope.from)
        .map(|(day, _)| new_units(scope, aggregates, *day, false).len())
        .sum();
    // Each day's active sets are read once: WAU and MAU are unions over windows
    // of them (a day's set took part in 37 unions when it was read per window).
    let first = scope.from - 29;
    let devices: Vec<RoaringBitmap> = (first..=scope.to)
        .map(|day| active(scope, aggregates, day, false))
        .collect();
    let users: Vec<RoaringBitmap> = (scope.from..=scope.to)
        .map(|day| active(scope, aggregates, day, true))
        .collect();
    let distinct_over = |sets: &[RoaringBitmap]| sets.iter().union().len();
    let mut days = Vec::new();
    let mut new_in_range = RoaringBitmap::new();
    let mut new_users = RoaringBitmap::new();
    for (offset, day) in (scope.from..=scope.to).enumerate() {
        let new_devices = new_units(scope, aggregates, day, false);
        let new_accounts = new_units(scope, aggregates, day, true);
        cumulative += new_devices.len();
        // `devices` starts 29 days before the range.
        let at = offset + 29;
        days.push(ActiveDay {
            date: format_day(day),
            new_devices: new_devices.len(),
            active_devices: devices[at].len(),
            new_users: new_accounts.len(),
            active_users: users[offset].len(),
            wau: distinct_over(&devices[at - 6..=at]),
            mau: distinct_over(&devices[at - 29..=at]),
            cumulative_devices: cumulative,
        });
        new_in_range |= new_devices;
        new_users |= new_accounts;
    }
    let totals = ActiveTotals {
        active_devices: distinct_over(&devices[29..]),
        active_users: distinct_over(&users),
        new_devices: new_in_range.len(),
        new_users: new_users.len(),
    };
    (ActiveReport { days, totals }, new_in_range)
}

/// The active-users report: DAU, WAU, MAU, new and cumulative devices, UV,
/// answered from the day sets without reading any event.
pub fn active_users(store: &EventStore, scope: &Scope) -> ActiveReport {
    store
        .with_aggregates(&scope.app, |aggregates| activity(scope, aggregates).0)
        .unwrap_or_else(|| ActiveReport {
            days: (scope.from..=scope.to)
                .map(|day| ActiveDay {
                    date: format_day(day),
                    ..ActiveDay::default()
                })
                .collect(),
            ..ActiveReport::default()
        })
}

fn empty_overview(scope: &Scope) -> OverviewReport {
    OverviewReport {
        days: (scope.from..=scope.to)
            .map(|day| OverviewDay {
                date: format_day(day),
                ..OverviewDay::default()
            })
            .collect(),
        ..OverviewReport::default()
    }
}

/// The last 30 minutes by minute of receive time.
pub async fn realtime(store: &EventStore, scope: &Scope, now_ms: i64) -> Result<RealtimeReport> {
    let start = (now_ms - 30 * 60_000).div_euclid(60_000) * 60_000 + 60_000;
    let scope = Scope {
        from: atoll_events::day_of(start) - 1,
        to: atoll_events::day_of(now_ms) + 1,
        ..scope.clone()
    };
    let context = scope.context(store).await?;
    let mut conditions = scope.conditions();
    conditions.raw(format!("received >= {start}"));
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT CAST(received / 60000 AS BIGINT) * 60000 AS minute, COUNT(*), COUNT(DISTINCT device_id) \
                 FROM events WHERE {} GROUP BY 1",
                conditions.sql()
            ),
        )
        .await?;
    let by_minute = table.keyed_counts()?;
    let totals = conditions
        .run(
            &context,
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT device_id) FROM events WHERE {}",
                conditions.sql()
            ),
        )
        .await?;
    let minutes = (0..30)
        .map(|i| {
            let minute = start + i * 60_000;
            let (events, devices) = by_minute.get(&minute).copied().unwrap_or_default();
            RealtimeMinute {
                minute,
                events,
                devices,
            }
        })
        .collect();
    Ok(RealtimeReport {
        minutes,
        events: totals.counts(0)?.first().copied().unwrap_or(0),
        active_devices: totals.counts(1)?.first().copied().unwrap_or(0),
    })
}

/// Cohort retention from the bitmaps.
pub fn retention(
    store: &EventStore,
    scope: &Scope,
    query: &RetentionQuery,
) -> Result<RetentionReport> {
    let granularity = match query.granularity {
        Granularity::Hour => {
            return Err(Error::Invalid("retention is by day, week or month".into()))
        }
        g => g,
    };
    let periods = query
        .periods
        .unwrap_or(match granularity {
            Granularity::Week => 8,
            Granularity::Month => 6,
            _ => 7,
        })
        .clamp(1, 90) as usize;
    let users = query.by == CountBy::User;
    let cohorts = store
        .with_aggregates(&scope.app, |aggregates| {
            let units = |start: Day, end: Day, new: bool| {
                let mut set = RoaringBitmap::new();
                for day in start..end {
                    set |= if new {
                        new_units(scope, aggregates, day, users)
                    } else {
                        active(scope, aggregates, day, users)
                    };
                }
                set
            };
            let mut cohorts = Vec::new();
            let mut start = period_start(scope.from, granularity);
            while start <= scope.to {
                let end = next_period(start, granularity);
                let cohort = units(start.max(scope.from), end.min(scope.to + 1), true);
                let mut retained = Vec::with_capacity(periods);
                let mut period = end;
                for _ in 0..periods {
                    let period_end = next_period(period, granularity);
                    if period > scope.today {
                        retained.push(None);
                    } else {
                        let active_then = units(period, period_end.min(scope.today + 1), false);
                        retained.push(Some(cohort.intersection_len(&active_then)));
                    }
                    period = period_end;
                }
                cohorts.push(Cohort {
                    start: format_day(start),
                    size: cohort.len(),
                    retained,
                });
                start = end;
            }
            cohorts
        })
        .unwrap_or_default();
    Ok(RetentionReport {
        by: query.by,
        granularity,
        cohorts,
    })
}

fn bucket_index(bounds: &[i64], value: i64) -> usize {
    bounds.iter().take_while(|bound| value >= **bound).count()
}

/// Session lengths, launches per device-day, and activity by hour.
pub async fn behaviour(store: &EventStore, scope: &Scope) -> Result<BehaviourReport> {
    let context = scope.context(store).await?;
    let conditions = scope.conditions();
    let lengths = conditions
        .run(&context, &session_lengths_sql(&conditions))
        .await?;
    let length_labels = [
        "0-3 s",
        "3-10 s",
        "10-30 s",
        "30-60 s",
        "1-3 min",
        "3-10 min",
        "10-30 min",
        "30+ min",
    ];
    let length_bounds = [3_000, 10_000, 30_000, 60_000, 180_000, 600_000, 1_800_000];
    let mut length_counts = [0u64; 8];
    for length in lengths.ints(1)? {
        length_counts[bucket_index(&length_bounds, length)] += 1;
    }
    let launches = conditions
        .run(
            &context,
            &format!(
                "SELECT COUNT(*) FROM events WHERE event_id = '{LAUNCH}' AND {} \
                 GROUP BY device_id, CAST(time / {DAY_MS} AS BIGINT)",
                conditions.sql()
            ),
        )
        .await?;
    let launch_labels = ["1", "2", "3-5", "6-9", "10-19", "20+"];
    let launch_bounds = [2, 3, 6, 10, 20];
    let mut launch_counts = [0u64; 6];
    for count in launches.ints(0)? {
        launch_counts[bucket_index(&launch_bounds, count)] += 1;
    }
    let hours = conditions
        .run(
            &context,
            &format!(
                "SELECT CAST((time % {DAY_MS}) / 3600000 AS BIGINT), COUNT(*), COUNT(DISTINCT device_id) \
                 FROM events WHERE {} GROUP BY 1",
                conditions.sql()
            ),
        )
        .await?;
    let mut active_hours: Vec<HourActivity> = (0..24)
        .map(|hour| HourActivity {
            hour,
            ..HourActivity::default()
        })
        .collect();
    for ((hour, events), devices) in hours
        .ints(0)?
        .into_iter()
        .zip(hours.counts(1)?)
        .zip(hours.counts(2)?)
    {
        if let Some(slot) = active_hours.get_mut(hour.rem_euclid(24) as usize) {
            slot.events = events;
            slot.devices = devices;
        }
    }
    let buckets = |labels: &[&str], counts: &[u64]| {
        labels
            .iter()
            .zip(counts)
            .map(|(label, count)| Bucket {
                label: (*label).to_owned(),
                count: *count,
            })
            .collect()
    };
    Ok(BehaviourReport {
        session_length: buckets(&length_labels, &length_counts),
        launches_per_day: buckets(&launch_labels, &launch_counts),
        active_hours,
    })
}

/// Page views, visitors, stay, entries and exits per page.
pub async fn pages(store: &EventStore, scope: &Scope) -> Result<PagesReport> {
    let context = scope.context(store).await?;
    let conditions = scope.conditions();
    let views = format!(
        "SELECT page, session_id, device_id, duration_ms, \
         ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY time, uuid) AS first_rank, \
         ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY time DESC, uuid DESC) AS last_rank \
         FROM events WHERE event_id = '{PAGE_VIEW}' AND page IS NOT NULL AND {}",
        conditions.sql()
    );
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT page, COUNT(*), COUNT(DISTINCT device_id), AVG(duration_ms), \
                 SUM(CASE WHEN session_id IS NOT NULL AND first_rank = 1 THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN session_id IS NOT NULL AND last_rank = 1 THEN 1 ELSE 0 END), \
                 COUNT(DISTINCT session_id) \
                 FROM ({views}) v GROUP BY page ORDER BY 2 DESC, 1 LIMIT 200"
            ),
        )
        .await?;
    let pages = table.texts(0)?;
    let views = table.counts(1)?;
    let visitors = table.counts(2)?;
    let stays = table.counts(3)?;
    let entries = table.counts(4)?;
    let exits = table.counts(5)?;
    let sessions = table.counts(6)?;
    let rate = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    Ok(PagesReport {
        pages: (0..pages.len())
            .map(|i| PageStats {
                page: pages[i].clone().unwrap_or_default(),
                views: views[i],
                visitors: visitors[i],
                avg_stay_ms: stays[i],
                entries: entries[i],
                exits: exits[i],
                entry_rate: rate(entries[i], sessions[i]),
                exit_rate: rate(exits[i], sessions[i]),
            })
            .collect(),
    })
}

/// Where sessions go after a page: up to `depth` steps, the top next pages at
/// each step, following actual paths (not global transitions).
pub async fn paths(store: &EventStore, scope: &Scope, query: &PathQuery) -> Result<PathReport> {
    if query.page.is_empty() {
        return Err(Error::Invalid(
            "give the page paths start from (page=…)".into(),
        ));
    }
    let depth = query.depth.unwrap_or(3).clamp(1, 4) as usize;
    let top = query.top.unwrap_or(5).clamp(1, 20) as usize;
    let context = scope.context(store).await?;
    let mut conditions = scope.conditions();
    let leads: Vec<String> = (1..=depth)
        .map(|n| {
            format!("LEAD(page, {n}) OVER (PARTITION BY session_id ORDER BY time, uuid) AS next{n}")
        })
        .collect();
    let inner = format!(
        "SELECT page, {} FROM events WHERE event_id = '{PAGE_VIEW}' AND page IS NOT NULL \
         AND session_id IS NOT NULL AND {}",
        leads.join(", "),
        conditions.sql()
    );
    let start = conditions.bind(&query.page);
    let nexts: Vec<String> = (1..=depth).map(|n| format!("next{n}")).collect();
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT {}, COUNT(*) FROM ({inner}) p WHERE page = {start} GROUP BY {}",
                nexts.join(", "),
                nexts.join(", ")
            ),
        )
        .await?;
    let columns: Vec<Vec<Option<String>>> =
        (0..depth).map(|i| table.texts(i)).collect::<Result<_>>()?;
    let counts = table.counts(depth)?;
    let views: u64 = counts.iter().sum();
    // Links per step: (from, to) -> count, following each path until it exits.
    let mut steps: Vec<BTreeMap<(String, String), u64>> = vec![BTreeMap::new(); depth];
    for (row, count) in counts.iter().enumerate() {
        let mut from = query.page.clone();
        for (step, column) in columns.iter().enumerate() {
            let to = column[row].clone().unwrap_or_else(|| "(exit)".to_owned());
            *steps[step].entry((from.clone(), to.clone())).or_default() += count;
            if to == "(exit)" {
                break;
            }
            from = to;
        }
    }
    let mut links = Vec::new();
    let mut kept_pages: Vec<String> = vec![query.page.clone()];
    for (step, edges) in steps.into_iter().enumerate() {
        let mut by_from: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        for ((from, to), count) in edges {
            if kept_pages.contains(&from) {
                by_from.entry(from).or_default().push((to, count));
            }
        }
        let mut next_pages = Vec::new();
        for (from, mut targets) in by_from {
            targets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (to, count) in targets.into_iter().take(top) {
                if to != "(exit)" && !next_pages.contains(&to) {
                    next_pages.push(to.clone());
                }
                links.push(PathLink {
                    step: step as u32,
                    from: from.clone(),
                    to,
                    count,
                });
            }
        }
        kept_pages = next_pages;
    }
    Ok(PathReport {
        page: query.page.clone(),
        views,
        links,
    })
}

/// One attribute condition as SQL, its value bound in `conditions`.
fn attribute_condition(conditions: &mut Conditions, filter: &AttributeFilter) -> Result<String> {
    let lookup = attribute(&filter.name)?;
    let value = conditions.bind(&filter.value);
    match filter.op.as_deref().unwrap_or("eq") {
        "eq" => Ok(format!("{lookup} = {value}")),
        "ne" => Ok(format!("({lookup} IS NULL OR {lookup} <> {value})")),
        other => Err(Error::Invalid(format!(
            "unknown attribute operator '{other}' (use eq or ne)"
        ))),
    }
}

fn attribute_conditions(conditions: &mut Conditions, filters: &[AttributeFilter]) -> Result<()> {
    for filter in filters {
        let clause = attribute_condition(conditions, filter)?;
        conditions.raw(clause);
    }
    Ok(())
}

/// Parses `a=1,b!=2` into attribute filters.
pub fn parse_where(text: Option<&str>) -> Result<Vec<AttributeFilter>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|part| {
            let (name, op, value) = if let Some((name, value)) = part.split_once("!=") {
                (name, "ne", value)
            } else if let Some((name, value)) = part.split_once('=') {
                (name, "eq", value)
            } else {
                return Err(Error::Invalid(format!(
                    "'{part}' is not a condition (name=value or name!=value)"
                )));
            };
            Ok(AttributeFilter {
                name: name.trim().to_owned(),
                op: Some(op.to_owned()),
                value: value.trim().to_owned(),
            })
        })
        .collect()
}

/// Counts of every event name in the range.
pub async fn events(store: &EventStore, scope: &Scope) -> Result<Vec<(String, u64, u64, u64)>> {
    let context = scope.context(store).await?;
    let conditions = scope.conditions();
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT event_id, COUNT(*), COUNT(DISTINCT device_id), COUNT(DISTINCT user_id) \
                 FROM events WHERE {} GROUP BY event_id ORDER BY 2 DESC, 1 LIMIT 1000",
                conditions.sql()
            ),
        )
        .await?;
    let names = table.texts(0)?;
    let counts = table.counts(1)?;
    let devices = table.counts(2)?;
    let users = table.counts(3)?;
    Ok((0..names.len())
        .map(|i| {
            (
                names[i].clone().unwrap_or_default(),
                counts[i],
                devices[i],
                users[i],
            )
        })
        .collect())
}

/// One event: totals, trend and top attribute values.
pub async fn event_detail(
    store: &EventStore,
    scope: &Scope,
    event_id: &str,
    query: &EventQuery,
) -> Result<(u64, u64, u64, Vec<TrendPoint>, Vec<GroupValue>)> {
    let context = scope.context(store).await?;
    let mut conditions = scope.conditions();
    conditions.eq("event_id", event_id);
    attribute_conditions(&mut conditions, &parse_where(query.where_.as_deref())?)?;
    let totals = conditions
        .run(
            &context,
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT device_id), COUNT(DISTINCT user_id) FROM events WHERE {}",
                conditions.sql()
            ),
        )
        .await?;
    let (hourly, bucket_ms) = match query.interval.unwrap_or(Granularity::Day) {
        Granularity::Hour => (true, 3_600_000),
        Granularity::Day => (false, DAY_MS),
        _ => return Err(Error::Invalid("the trend interval is hour or day".into())),
    };
    let trend_table = conditions
        .run(
            &context,
            &format!(
                "SELECT CAST(time / {bucket_ms} AS BIGINT), COUNT(*), COUNT(DISTINCT device_id) \
                 FROM events WHERE {} GROUP BY 1",
                conditions.sql()
            ),
        )
        .await?;
    let by_bucket = trend_table.keyed_counts()?;
    let first = i64::from(scope.from) * DAY_MS / bucket_ms;
    let last = (i64::from(scope.to) + 1) * DAY_MS / bucket_ms;
    let trend = (first..last)
        .map(|bucket| {
            let (count, devices) = by_bucket.get(&bucket).copied().unwrap_or_default();
            let at = if hourly {
                let day = (bucket * bucket_ms).div_euclid(DAY_MS) as Day;
                format!(
                    "{}T{:02}:00",
                    format_day(day),
                    (bucket * bucket_ms).rem_euclid(DAY_MS) / 3_600_000
                )
            } else {
                format_day(bucket as Day)
            };
            TrendPoint { at, count, devices }
        })
        .collect();
    let mut groups = Vec::new();
    if let Some(name) = &query.group_by {
        let lookup = attribute(name)?;
        let top = query.top.unwrap_or(10).clamp(1, 100);
        let table = conditions
            .run(
                &context,
                &format!(
                    "SELECT COALESCE({lookup}, '(none)'), COUNT(*), COUNT(DISTINCT device_id) FROM events \
                     WHERE {} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {top}",
                    conditions.sql()
                ),
            )
            .await?;
        let values = table.texts(0)?;
        let counts = table.counts(1)?;
        let devices = table.counts(2)?;
        groups = (0..values.len())
            .map(|i| GroupValue {
                value: values[i].clone().unwrap_or_default(),
                count: counts[i],
                devices: devices[i],
            })
            .collect();
    }
    let count = totals.counts(0)?.first().copied().unwrap_or(0);
    let devices = totals.counts(1)?.first().copied().unwrap_or(0);
    let users = totals.counts(2)?.first().copied().unwrap_or(0);
    Ok((count, devices, users, trend, groups))
}

/// Checks a funnel definition.
pub fn validate_funnel(funnel: &FunnelDefinition) -> Result<()> {
    if !(2..=10).contains(&funnel.steps.len()) {
        return Err(Error::Invalid(format!(
            "a funnel has 2 to 10 steps, not {}",
            funnel.steps.len()
        )));
    }
    if !(60..=30 * 86_400).contains(&funnel.window_secs) {
        return Err(Error::Invalid(
            "the funnel window is 60 seconds to 30 days".into(),
        ));
    }
    for step in &funnel.steps {
        if step.event_id.is_empty() || step.event_id.chars().count() > 40 {
            return Err(Error::Invalid(format!(
                "'{}' is not an event name",
                step.event_id
            )));
        }
        for filter in &step.filters {
            attribute(&filter.name)?;
        }
    }
    Ok(())
}

/// Computes a funnel over the range (units first seen at step 1 inside the range;
/// later steps may fall up to the window after the range's end).
pub async fn funnel(
    store: &EventStore,
    scope: &Scope,
    definition: &FunnelDefinition,
) -> Result<FunnelReport> {
    validate_funnel(definition)?;
    let window_ms = definition.window_secs as i64 * 1000;
    let extended = Scope {
        to: scope.to + (window_ms / DAY_MS) as Day + 1,
        ..scope.clone()
    };
    let context = extended.context(store).await?;
    let mut conditions = scope.conditions();
    let unit = match definition.by {
        CountBy::Device => "device_ord",
        CountBy::User => "user_ord",
    };
    let mut names = Vec::new();
    let mut step_columns = Vec::new();
    for (index, step) in definition.steps.iter().enumerate() {
        let name = conditions.bind(&step.event_id);
        names.push(name.clone());
        let mut step_conditions = vec![format!("event_id = {name}")];
        for filter in &step.filters {
            step_conditions.push(attribute_condition(&mut conditions, filter)?);
        }
        step_columns.push(format!(
            "CASE WHEN {} THEN {} ELSE 0 END",
            step_conditions.join(" AND "),
            1u32 << index
        ));
    }
    conditions.raw(format!("{unit} IS NOT NULL"));
    conditions.raw(format!("event_id IN ({})", names.join(", ")));
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT {unit}, time, {} FROM events WHERE {}",
                step_columns.join(" + "),
                conditions.sql()
            ),
        )
        .await?;
    let units = table.ints(0)?;
    let times = table.ints(1)?;
    let masks = table.ints(2)?;
    let range_start = i64::from(scope.from) * DAY_MS;
    let range_end = (i64::from(scope.to) + 1) * DAY_MS;
    let rows: Vec<(u32, i64, u16)> = units
        .into_iter()
        .zip(times)
        .zip(masks)
        .filter_map(|((unit, time), mask)| {
            let mut mask = mask as u16;
            // A chain must start inside the range.
            if !(range_start..range_end).contains(&time) {
                mask &= !1;
            }
            (mask != 0).then_some((unit as u32, time, mask))
        })
        .collect();
    let steps = definition.steps.len();
    let counts = tokio::task::spawn_blocking(move || funnel::count_units(&rows, steps, window_ms))
        .await
        .map_err(|e| Error::Internal(format!("funnel task: {e}")))?;
    let first = counts.first().copied().unwrap_or(0);
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let steps: Vec<FunnelStepResult> = definition
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| FunnelStepResult {
            event_id: step.event_id.clone(),
            count: counts[i],
            conversion_from_previous: if i == 0 {
                1.0
            } else {
                ratio(counts[i], counts[i - 1])
            },
            conversion_overall: ratio(counts[i], first),
        })
        .collect();
    Ok(FunnelReport {
        overall_conversion: ratio(counts.last().copied().unwrap_or(0), first),
        steps,
    })
}

/// The columns a distribution may be asked for.
pub const DISTRIBUTION_DIMENSIONS: &[&str] = &[
    "app_version",
    "platform",
    "os_version",
    "model",
    "channel",
    "region",
    "network",
];

/// Active devices by the values of one device dimension.
pub async fn distribution(
    store: &EventStore,
    scope: &Scope,
    dimension: &str,
) -> Result<DistributionReport> {
    if !DISTRIBUTION_DIMENSIONS.contains(&dimension) {
        return Err(Error::Invalid(format!(
            "'{dimension}' is not a dimension; use one of {}",
            DISTRIBUTION_DIMENSIONS.join(", ")
        )));
    }
    let context = scope.context(store).await?;
    let conditions = scope.conditions();
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT COALESCE({dimension}, '(unknown)'), COUNT(DISTINCT device_id) FROM events \
                 WHERE {} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100",
                conditions.sql()
            ),
        )
        .await?;
    let total = conditions
        .run(
            &context,
            &format!(
                "SELECT COUNT(DISTINCT device_id) FROM events WHERE {}",
                conditions.sql()
            ),
        )
        .await?
        .counts(0)?
        .first()
        .copied()
        .unwrap_or(0);
    let values = table.texts(0)?;
    let devices = table.counts(1)?;
    Ok(DistributionReport {
        dimension: dimension.to_owned(),
        values: (0..values.len())
            .map(|i| DistributionValue {
                value: values[i].clone().unwrap_or_default(),
                devices: devices[i],
                share: if total == 0 {
                    0.0
                } else {
                    devices[i] as f64 / total as f64
                },
            })
            .collect(),
    })
}

/// The newest events of a device or user.
pub async fn timeline(
    store: &EventStore,
    scope: &Scope,
    query: &TimelineQuery,
) -> Result<TimelineReport> {
    let mut conditions = Conditions::default();
    match (&query.device, &query.user) {
        (Some(device), None) => conditions.eq("device_id", device),
        (None, Some(user)) => conditions.eq("user_id", user),
        _ => return Err(Error::Invalid("give exactly one of device or user".into())),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let context = scope.context(store).await?;
    let table = conditions
        .run(
            &context,
            &format!(
                "SELECT uuid, event_id, time, device_id, user_id, session_id, page, duration_ms, app_version, attributes \
                 FROM events WHERE {} ORDER BY time DESC, uuid DESC LIMIT {limit}",
                conditions.sql()
            ),
        )
        .await?;
    timeline_rows(&table)
}

fn timeline_rows(table: &Table) -> Result<TimelineReport> {
    let mut events = Vec::new();
    for batch in table.batches() {
        events.extend(timeline_from_batch(batch)?);
    }
    Ok(TimelineReport { events })
}

/// Rows with the columns uuid, event_id, time, device_id, user_id, session_id,
/// page, duration_ms, app_version, attributes, as timeline events.
pub(crate) fn timeline_from_batch(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<Vec<TimelineEvent>> {
    use datafusion::arrow::array::{Array, AsArray, FixedSizeBinaryArray};
    let mut events = Vec::with_capacity(batch.num_rows());
    {
        let uuids = batch
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| Error::Internal("uuid column".into()))?;
        let single = Table::single(batch.clone());
        let names = single.texts(1)?;
        let times = single.ints(2)?;
        let devices = single.texts(3)?;
        let users = single.texts(4)?;
        let sessions = single.texts(5)?;
        let pages = single.texts(6)?;
        let durations = batch.column(7).clone();
        let versions = single.texts(8)?;
        let attributes = batch.column(9).as_map();
        for row in 0..batch.num_rows() {
            let bytes: [u8; 16] = uuids
                .value(row)
                .try_into()
                .map_err(|_| Error::Internal("uuid width".into()))?;
            let mut map = BTreeMap::new();
            if !attributes.is_null(row) {
                let entries = attributes.value(row);
                let keys = entries.column(0).as_string::<i32>();
                let values = entries.column(1).as_string::<i32>();
                for i in 0..entries.len() {
                    map.insert(keys.value(i).to_owned(), values.value(i).to_owned());
                }
            }
            let duration = durations
                .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
                .and_then(|d| (!d.is_null(row)).then(|| d.value(row)));
            events.push(TimelineEvent {
                uuid: uuid::Uuid::from_bytes(bytes).to_string(),
                event_id: names[row].clone().unwrap_or_default(),
                time: times[row],
                device_id: devices[row].clone().unwrap_or_default(),
                user_id: users[row].clone(),
                session_id: sessions[row].clone(),
                page: pages[row].clone(),
                duration_ms: duration,
                app_version: versions[row].clone(),
                attributes: map,
            });
        }
    }
    Ok(events)
}
