//! Counting: daily counters (the core indexes) kept in the same transaction
//! as the state changes they count, and the reads of the console and API —
//! tasks with their funnel, per-channel and per-reason breakdowns, one
//! device's deliveries, and the core indexes over a date range.

use crate::send::TaskSpec;
use crate::{Error, PushService, Result};
use atoll_core::access::Requirement;
use atoll_platform::Principal;
use atoll_protocol::push::{
    limits, DeliveryStatus, PushCounts, PushStats, PushStatsDay, PushTask, PushTaskDetail, SendKind,
};
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, HashMap};

/// A counter of the daily table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Deliveries planned.
    Targeted = 0,
    /// Handed to a channel.
    Sent,
    /// Reached the app.
    Arrived,
    /// Opened.
    Opened,
    /// Dismissed.
    Ignored,
    /// Failed for good.
    Failed,
    /// Over the fatigue cap.
    Capped,
    /// Expired undelivered.
    Expired,
    /// Revoked.
    Revoked,
}

const COUNTERS: [&str; 9] = [
    "targeted", "sent", "arrived", "opened", "ignored", "failed", "capped", "expired", "revoked",
];

/// Increments waiting to be written with the transaction that caused them.
#[derive(Debug, Default)]
pub struct Tally {
    counts: HashMap<(String, i64, String, String, String), [i64; 9]>,
}

/// The UTC day number of an instant.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

impl Tally {
    /// Adds `n` to a counter.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        app_id: &str,
        now: i64,
        platform: &str,
        channel: &str,
        kind: &str,
        counter: Counter,
        n: i64,
    ) {
        if n == 0 {
            return;
        }
        let key = (
            app_id.to_owned(),
            day_of(now),
            platform.to_owned(),
            channel.to_owned(),
            kind.to_owned(),
        );
        self.counts.entry(key).or_default()[counter as usize] += n;
    }

    /// Writes the increments (upserts) on `conn`.
    pub async fn write(self, conn: &mut AnyConnection) -> Result<()> {
        for ((app_id, day, platform, channel, kind), counts) in self.counts {
            let updates: Vec<String> = COUNTERS
                .iter()
                .map(|c| format!("{c} = push_stats.{c} + excluded.{c}"))
                .collect();
            let sql = format!(
                "INSERT INTO push_stats (app_id, day, platform, channel, kind, {}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (app_id, day, platform, channel, kind) DO UPDATE SET {}",
                COUNTERS.join(", "),
                updates.join(", ")
            );
            let mut query = sqlx::query(&sql)
                .bind(&app_id)
                .bind(day)
                .bind(&platform)
                .bind(&channel)
                .bind(&kind);
            for count in counts {
                query = query.bind(count);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Adds deliveries counted in a state to the counters they imply: a delivery
/// that arrived was also sent, and one opened also arrived.
pub fn add_state(counts: &mut PushCounts, state: &str, n: u64) {
    counts.targeted += n;
    match state {
        "sent" => counts.sent += n,
        "arrived" => {
            counts.sent += n;
            counts.arrived += n;
        }
        "opened" => {
            counts.sent += n;
            counts.arrived += n;
            counts.opened += n;
        }
        "ignored" => {
            counts.sent += n;
            counts.arrived += n;
            counts.ignored += n;
        }
        "failed" => counts.failed += n,
        "capped" => counts.capped += n,
        "expired" => counts.expired += n,
        "revoked" => counts.revoked += n,
        "collapsed" => counts.collapsed += n,
        _ => counts.waiting += n,
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

fn day_label(day: i64) -> String {
    let (y, m, d) = atoll_protocol::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

impl PushService {
    /// The app's tasks, newest first.
    pub async fn list_tasks(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PushTask>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT id, kind, name, state, spec, parent_id, created_at, send_at, expires_at FROM push_tasks \
             WHERE app_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(&access.app_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 200) as i64)
        .fetch_all(self.store().pool())
        .await?;
        let mut tasks = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut task = self.task_from_row(row)?;
            let (counts, _, _) = self.task_counts(&task.id, false).await?;
            task.state = shown_state(&task.state, &counts, task.send_at, self.clock.now_ms());
            task.counts = counts;
            tasks.push(task);
        }
        Ok(tasks)
    }

    /// One task with its breakdowns.
    pub async fn task_detail(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        task_id: &str,
    ) -> Result<PushTaskDetail> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let row = sqlx::query(
            "SELECT id, kind, name, state, spec, parent_id, created_at, send_at, expires_at FROM push_tasks \
             WHERE app_id = $1 AND id = $2",
        )
        .bind(&access.app_id)
        .bind(task_id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("push task '{task_id}'")))?;
        let mut task = self.task_from_row(&row)?;
        let (counts, by_channel, failures) = self.task_counts(task_id, true).await?;
        task.state = shown_state(&task.state, &counts, task.send_at, self.clock.now_ms());
        task.counts = counts;
        Ok(PushTaskDetail {
            task,
            by_channel,
            failures,
        })
    }

    fn task_from_row(&self, row: &sqlx::any::AnyRow) -> Result<PushTask> {
        let spec: TaskSpec = serde_json::from_str(&row.try_get::<String, _>("spec")?)
            .map_err(|error| Error::Internal(format!("stored task: {error}")))?;
        let kind: String = row.try_get("kind")?;
        Ok(PushTask {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: SendKind::parse(&kind)
                .ok_or_else(|| Error::Internal(format!("stored kind {kind}")))?,
            state: row.try_get("state")?,
            title: spec.title,
            body: spec.body,
            created_at: row.try_get("created_at")?,
            send_at: row.try_get("send_at")?,
            expires_at: row.try_get("expires_at")?,
            recurrence: spec.recurrence,
            parent_id: row.try_get("parent_id")?,
            counts: PushCounts::default(),
        })
    }

    /// A task's counters, and with `detail` its per-channel and per-reason
    /// breakdowns (counted from the deliveries: exact, whatever the day).
    async fn task_counts(
        &self,
        task_id: &str,
        detail: bool,
    ) -> Result<(
        PushCounts,
        BTreeMap<String, PushCounts>,
        BTreeMap<String, u64>,
    )> {
        let rows = sqlx::query(
            "SELECT state, channel, COUNT(*) FROM push_deliveries WHERE task_id = $1 GROUP BY state, channel",
        )
        .bind(task_id)
        .fetch_all(self.store().pool())
        .await?;
        let mut total = PushCounts::default();
        let mut by_channel: BTreeMap<String, PushCounts> = BTreeMap::new();
        for row in &rows {
            let state: String = row.try_get(0)?;
            let channel: String = row.try_get(1)?;
            let n = row.try_get::<i64, _>(2)? as u64;
            add_state(&mut total, &state, n);
            add_state(by_channel.entry(channel).or_default(), &state, n);
        }
        let mut failures = BTreeMap::new();
        if detail && total.failed > 0 {
            let rows = sqlx::query(
                "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM push_deliveries \
                 WHERE task_id = $1 AND state = 'failed' GROUP BY reason",
            )
            .bind(task_id)
            .fetch_all(self.store().pool())
            .await?;
            for row in &rows {
                failures.insert(row.try_get(0)?, row.try_get::<i64, _>(1)? as u64);
            }
        }
        Ok((total, by_channel, failures))
    }

    /// The deliveries to one device, newest first (mPaaS per-message status).
    pub async fn device_messages(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryStatus>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT d.msg_id, d.task_id, d.device_id, m.content, d.state, d.channel, d.reason, d.attempts, \
             d.created_at, d.updated_at FROM push_deliveries d JOIN push_messages m ON m.id = d.msg_id \
             WHERE d.app_id = $1 AND d.device_id = $2 ORDER BY d.created_at DESC LIMIT $3",
        )
        .bind(&access.app_id)
        .bind(device_id)
        .bind(limit.clamp(1, 500) as i64)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let content = Self::parse_content(&row.try_get::<String, _>("content")?)?;
                Ok(DeliveryStatus {
                    msg_id: row.try_get("msg_id")?,
                    task_id: row.try_get("task_id")?,
                    device_id: row.try_get("device_id")?,
                    title: content.title,
                    state: row.try_get("state")?,
                    channel: row.try_get("channel")?,
                    reason: row.try_get("reason")?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The core indexes from `from_day` to `to_day` (UTC day numbers,
    /// inclusive, ≤ 90 days), optionally for one platform, channel, kind.
    #[allow(clippy::too_many_arguments)]
    pub async fn stats(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        from_day: i64,
        to_day: i64,
        platform: Option<&str>,
        channel: Option<&str>,
        kind: Option<SendKind>,
    ) -> Result<PushStats> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        if to_day < from_day || to_day - from_day >= limits::MAX_STATS_DAYS as i64 {
            return Err(Error::Invalid(format!(
                "the range must be 1 to {} days with from ≤ to",
                limits::MAX_STATS_DAYS
            )));
        }
        let sums: Vec<String> = COUNTERS.iter().map(|c| format!("SUM({c})")).collect();
        let sql = format!(
            "SELECT day, {} FROM push_stats WHERE app_id = $1 AND day >= $2 AND day <= $3 \
             AND ($4 = '' OR platform = $4) AND ($5 = '' OR channel = $5) AND ($6 = '' OR kind = $6) \
             GROUP BY day ORDER BY day",
            sums.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(&access.app_id)
            .bind(from_day)
            .bind(to_day)
            .bind(platform.unwrap_or(""))
            .bind(channel.unwrap_or(""))
            .bind(kind.map(SendKind::as_str).unwrap_or(""))
            .fetch_all(self.store().pool())
            .await?;
        let mut by_day: HashMap<i64, PushCounts> = HashMap::new();
        for row in &rows {
            let day: i64 = row.try_get(0)?;
            let mut values = [0u64; 9];
            for (i, value) in values.iter_mut().enumerate() {
                *value = row.try_get::<Option<i64>, _>(i + 1)?.unwrap_or(0).max(0) as u64;
            }
            by_day.insert(
                day,
                PushCounts {
                    targeted: values[0],
                    sent: values[1],
                    arrived: values[2],
                    opened: values[3],
                    ignored: values[4],
                    failed: values[5],
                    capped: values[6],
                    expired: values[7],
                    revoked: values[8],
                    ..PushCounts::default()
                },
            );
        }
        let mut total = PushCounts::default();
        let mut days = Vec::new();
        for day in from_day..=to_day {
            let counts = by_day.remove(&day).unwrap_or_default();
            total.targeted += counts.targeted;
            total.sent += counts.sent;
            total.arrived += counts.arrived;
            total.opened += counts.opened;
            total.ignored += counts.ignored;
            total.failed += counts.failed;
            total.capped += counts.capped;
            total.expired += counts.expired;
            total.revoked += counts.revoked;
            days.push(PushStatsDay {
                day: day_label(day),
                counts,
            });
        }
        Ok(PushStats {
            days,
            arrival_rate: rate(total.arrived, total.sent),
            open_rate: rate(total.opened, total.arrived),
            ignore_rate: rate(total.ignored, total.arrived),
            total,
        })
    }
}

/// The state a task shows: stored states plus `scheduled` (not yet due) and
/// `done` (nothing left to send).
fn shown_state(stored: &str, counts: &PushCounts, send_at: i64, now: i64) -> String {
    match stored {
        "expanding" if send_at > now => "scheduled".into(),
        "sending" if counts.waiting == 0 => "done".into(),
        other => other.into(),
    }
}
