//! Release counters: checks and offers are counted in memory on the hot path
//! and added to `release_stats` every [`FLUSH_INTERVAL`]; device reports
//! (downloaded, installed, failed) are written before they are acknowledged.
//! Counters are per release, UTC day and the version the device came from.
//!
//! A crash loses at most one interval of check and offer counts, never a
//! report. The pending map is capped ([`MAX_PENDING`]): past it, a flush is
//! due and further increments of new keys are dropped and counted.

use crate::Result;
use atoll_protocol::delivery::{ReleaseStats, ReleaseStatsRow, ReportEvent};
use atoll_protocol::time::civil_from_days;
use atoll_store::MetaStore;
use parking_lot::Mutex;
use sqlx::Row;
use std::collections::HashMap;
use std::time::Duration;

/// How often pending counts are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Distinct pending keys at most.
pub const MAX_PENDING: usize = 100_000;

/// The UTC day of a time, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A check by a device the release applies to.
    Check,
    /// A check that offered the release.
    Offered,
    /// A device report.
    Report(ReportEvent),
}

impl Counter {
    fn index(self) -> usize {
        match self {
            Counter::Check => 0,
            Counter::Offered => 1,
            Counter::Report(ReportEvent::Downloaded) => 2,
            Counter::Report(ReportEvent::Installed) => 3,
            Counter::Report(ReportEvent::Failed) => 4,
        }
    }
}

type Key = (String, String, String);

/// Pending in-memory counts.
#[derive(Debug, Default)]
pub struct Counters {
    pending: Mutex<HashMap<Key, [i64; 5]>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(&self, release_id: &str, day: &str, from_version: &str, counter: Counter) {
        let mut pending = self.pending.lock();
        let key = (
            release_id.to_owned(),
            day.to_owned(),
            from_version.to_owned(),
        );
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("atoll_delivery_stats_dropped_total").increment(1);
            return;
        }
        pending.entry(key).or_default()[counter.index()] += 1;
    }

    /// Writes pending counts; on failure they are put back.
    pub async fn flush(&self, store: &MetaStore) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending.lock());
        if batch.is_empty() {
            return Ok(());
        }
        match write(store, &batch).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let mut pending = self.pending.lock();
                for (key, counts) in batch {
                    let slot = pending.entry(key).or_default();
                    for (total, add) in slot.iter_mut().zip(counts) {
                        *total += add;
                    }
                }
                Err(error)
            }
        }
    }
}

/// Adds counts to the table in one write.
pub async fn write(store: &MetaStore, batch: &HashMap<Key, [i64; 5]>) -> Result<()> {
    let mut tx = store.begin_write().await?;
    for ((release_id, day, from_version), counts) in batch {
        // Portable upsert: update, and insert when nothing was there. Writes
        // are serialised by the store, so the two cannot race on one node;
        // across nodes the primary key turns a race into a retried flush.
        let updated = sqlx::query(
            "UPDATE release_stats SET checks = checks + $4, offered = offered + $5, \
             downloaded = downloaded + $6, installed = installed + $7, failed = failed + $8 \
             WHERE release_id = $1 AND day = $2 AND from_version = $3",
        )
        .bind(release_id)
        .bind(day)
        .bind(from_version)
        .bind(counts[0])
        .bind(counts[1])
        .bind(counts[2])
        .bind(counts[3])
        .bind(counts[4])
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO release_stats (release_id, day, from_version, checks, offered, downloaded, installed, failed) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM releases WHERE id = $1)",
            )
            .bind(release_id)
            .bind(day)
            .bind(from_version)
            .bind(counts[0])
            .bind(counts[1])
            .bind(counts[2])
            .bind(counts[3])
            .bind(counts[4])
            .execute(&mut **tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A release's stats, by day and version.
pub async fn read(store: &MetaStore, release_id: &str) -> Result<ReleaseStats> {
    let rows = sqlx::query(
        "SELECT day, from_version, checks, offered, downloaded, installed, failed FROM release_stats \
         WHERE release_id = $1 ORDER BY day, from_version LIMIT 5000",
    )
    .bind(release_id)
    .fetch_all(store.pool())
    .await?;
    let mut stats = ReleaseStats::default();
    for row in rows {
        let count = |at: usize| -> Result<u64> { Ok(row.try_get::<i64, _>(at)?.max(0) as u64) };
        let item = ReleaseStatsRow {
            day: row.try_get(0)?,
            from_version: row.try_get(1)?,
            checks: count(2)?,
            offered: count(3)?,
            downloaded: count(4)?,
            installed: count(5)?,
            failed: count(6)?,
        };
        stats.total.checks += item.checks;
        stats.total.offered += item.offered;
        stats.total.downloaded += item.downloaded;
        stats.total.installed += item.installed;
        stats.total.failed += item.failed;
        stats.rows.push(item);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_764_460_800_000), "2025-11-30");
        assert_eq!(day_of(-1), "1969-12-31");
    }
}
