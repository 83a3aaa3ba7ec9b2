//! Delivery counters per biz type: counted in memory on the hot paths, added
//! to the day's row in `sync_stats` by a flush every few seconds (a crash loses
//! at most that interval of counts, never data), and exported to Prometheus.

use crate::Result;
use atoll_store::MetaStore;
use parking_lot::Mutex;
use sqlx::Row;
use std::collections::HashMap;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Orders accepted.
    Sent,
    /// Data frames written to devices.
    Delivered,
    /// Data acknowledged.
    Acknowledged,
    /// Data given up (too many deliveries, backlog threshold).
    Dropped,
}

impl Counter {
    fn label(self) -> &'static str {
        match self {
            Counter::Sent => "sent",
            Counter::Delivered => "delivered",
            Counter::Acknowledged => "acknowledged",
            Counter::Dropped => "dropped",
        }
    }
}

/// Counts not yet flushed: `[sent, delivered, acknowledged, dropped]`.
type Deltas = [u64; 4];

/// Most (app, biz type) pairs with unflushed counts; beyond it counts go to
/// Prometheus only (and a warning is logged once per flush).
const MAX_KEYS: usize = 100_000;

/// The counters of every biz type on this node.
#[derive(Debug, Default)]
pub struct Stats {
    pending: Mutex<HashMap<(String, String), Deltas>>,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(&self, app_id: &str, biz_type: &str, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        metrics::counter!("atoll_sync_data_total", "event" => counter.label()).increment(n);
        let mut pending = self.pending.lock();
        let key = (app_id.to_owned(), biz_type.to_owned());
        if pending.len() >= MAX_KEYS && !pending.contains_key(&key) {
            return;
        }
        pending.entry(key).or_default()[counter as usize] += n;
    }

    /// Unflushed counts of one app's biz types.
    pub fn unflushed(&self, app_id: &str) -> HashMap<String, Deltas> {
        self.pending
            .lock()
            .iter()
            .filter(|((app, _), _)| app == app_id)
            .map(|((_, biz), deltas)| (biz.clone(), *deltas))
            .collect()
    }

    /// Adds the pending counts to today's rows.
    pub async fn flush(&self, store: &MetaStore, now_ms: i64) -> Result<()> {
        let taken = std::mem::take(&mut *self.pending.lock());
        if taken.is_empty() {
            return Ok(());
        }
        let day = now_ms.div_euclid(86_400_000);
        let mut tx = store.begin_write().await?;
        for ((app_id, biz_type), [sent, delivered, acknowledged, dropped]) in &taken {
            sqlx::query(
                "INSERT INTO sync_stats (app_id, biz_type, day, sent, delivered, acknowledged, dropped) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (app_id, biz_type, day) DO UPDATE SET \
                 sent = sync_stats.sent + excluded.sent, delivered = sync_stats.delivered + excluded.delivered, \
                 acknowledged = sync_stats.acknowledged + excluded.acknowledged, dropped = sync_stats.dropped + excluded.dropped",
            )
            .bind(app_id)
            .bind(biz_type)
            .bind(day)
            .bind(*sent as i64)
            .bind(*delivered as i64)
            .bind(*acknowledged as i64)
            .bind(*dropped as i64)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Totals per biz type of an app since `since_day` (flushed and pending).
    pub async fn totals(
        &self,
        store: &MetaStore,
        app_id: &str,
        since_day: i64,
    ) -> Result<HashMap<String, Deltas>> {
        let rows = sqlx::query(
            "SELECT biz_type, CAST(SUM(sent) AS BIGINT) AS sent, CAST(SUM(delivered) AS BIGINT) AS delivered, \
             CAST(SUM(acknowledged) AS BIGINT) AS acknowledged, CAST(SUM(dropped) AS BIGINT) AS dropped \
             FROM sync_stats WHERE app_id = $1 AND day >= $2 GROUP BY biz_type",
        )
        .bind(app_id)
        .bind(since_day)
        .fetch_all(store.pool())
        .await?;
        let mut totals: HashMap<String, Deltas> = HashMap::new();
        for row in &rows {
            // The casts: SUM of a BIGINT is NUMERIC on PostgreSQL.
            let get = |name: &str| -> Result<u64> {
                let value: i64 = row.try_get(name)?;
                Ok(value.max(0) as u64)
            };
            totals.insert(
                row.try_get("biz_type")?,
                [
                    get("sent")?,
                    get("delivered")?,
                    get("acknowledged")?,
                    get("dropped")?,
                ],
            );
        }
        for (biz, deltas) in self.unflushed(app_id) {
            let entry = totals.entry(biz).or_default();
            for (total, delta) in entry.iter_mut().zip(deltas) {
                *total += delta;
            }
        }
        Ok(totals)
    }
}
