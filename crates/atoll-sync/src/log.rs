//! The sync log: data per stream in the metadata store, with idempotent
//! appends, monotonic sequence numbers, backlog trimming, expiry, and the
//! devices' cursors.
//!
//! Ordering invariant: a stream's sequence numbers are handed out by an upsert
//! on its `sync_streams` row inside the append's transaction. The row lock
//! (PostgreSQL) or the single writer (SQLite) means appends to one stream
//! commit in sequence order, so a reader that saw `n` committed has also seen
//! everything below `n`: a device acknowledging `n` can never skip an
//! earlier datum that was still in flight.

use crate::{Error, Result};
use atoll_protocol::sync::DeliveryFilter;
use atoll_store::MetaStore;
use sqlx::Row;
use std::sync::Arc;

/// A datum to append.
#[derive(Debug, Clone)]
pub struct NewDatum<'a> {
    /// Internal app id.
    pub app_id: &'a str,
    /// Biz type id.
    pub biz_type: &'a str,
    /// Target stream.
    pub stream: &'a str,
    /// The order's target (`""` for a global order): part of the idempotence key.
    pub link_token: &'a str,
    /// The sender's id.
    pub third_msg_id: &'a str,
    /// Atoll's id for it, used if it is new.
    pub msg_id: &'a str,
    /// The data.
    pub payload: &'a str,
    /// Which devices may receive it.
    pub filter: Option<&'a DeliveryFilter>,
    /// Accepted at (ms).
    pub created_at: i64,
    /// Deliverable until (ms).
    pub expires_at: i64,
    /// Keep only the newest N of the stream.
    pub keep_newest: Option<u32>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored as `seq`; `trimmed` older data was cut by the backlog threshold.
    New {
        /// Its sequence number.
        seq: u64,
        /// How many data the threshold removed.
        trimmed: u64,
    },
    /// The same `(biz type, link token, third msg id)` was accepted before.
    Duplicate {
        /// The first datum's id.
        msg_id: String,
        /// Its stream.
        stream: String,
        /// Its sequence number.
        seq: u64,
    },
}

/// A stored datum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDatum {
    /// Sequence number.
    pub seq: u64,
    /// Atoll's id.
    pub msg_id: String,
    /// The sender's id.
    pub third_msg_id: String,
    /// The data.
    pub payload: String,
    /// Which devices may receive it.
    pub filter: Option<DeliveryFilter>,
    /// Accepted at (ms).
    pub created_at: i64,
    /// Deliverable until (ms).
    pub expires_at: i64,
}

/// A stream's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamBounds {
    /// Newest sequence number (0: nothing ever appended).
    pub head: u64,
    /// Data below this was trimmed while valid.
    pub floor: u64,
}

/// A device's sync point on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRow {
    /// Biz type id.
    pub biz_type: String,
    /// Stream.
    pub stream: String,
    /// Highest acknowledged sequence number.
    pub acked: u64,
    /// Unacknowledged deliveries of the next datum.
    pub attempts: u32,
}

/// One cursor to save.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CursorKey {
    /// Internal app id.
    pub app_id: Arc<str>,
    /// Device id.
    pub device_id: Arc<str>,
    /// Biz type id.
    pub biz_type: Arc<str>,
    /// Stream.
    pub stream: Arc<str>,
}

/// Cursor rows per `INSERT` (7 parameters each, well under every backend's limit).
const CURSORS_PER_STATEMENT: usize = 200;

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The sync log over the metadata store.
#[derive(Debug, Clone)]
pub struct SyncLog {
    store: MetaStore,
}

impl SyncLog {
    /// The log in `store` (migrated).
    pub fn new(store: MetaStore) -> SyncLog {
        SyncLog { store }
    }

    /// Appends a datum unless its idempotence key exists; durable on return.
    pub async fn append(&self, datum: &NewDatum<'_>) -> Result<Appended> {
        let mut tx = self.store.begin_write().await?;
        // The stream row first: its lock orders concurrent appends to the stream
        // (and duplicates of one key, which always share a stream).
        let head: i64 = sqlx::query_scalar(
            "INSERT INTO sync_streams (app_id, biz_type, stream, head, floor) VALUES ($1, $2, $3, 1, 1) \
             ON CONFLICT (app_id, biz_type, stream) DO UPDATE SET head = sync_streams.head + 1 \
             RETURNING head",
        )
        .bind(datum.app_id)
        .bind(datum.biz_type)
        .bind(datum.stream)
        .fetch_one(&mut **tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO sync_keys (app_id, biz_type, link_token, third_msg_id, msg_id, stream, seq, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(datum.app_id)
        .bind(datum.biz_type)
        .bind(datum.link_token)
        .bind(datum.third_msg_id)
        .bind(datum.msg_id)
        .bind(datum.stream)
        .bind(head)
        .bind(datum.created_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Rolling back returns the sequence number taken above.
            drop(tx);
            let row = sqlx::query(
                "SELECT msg_id, stream, seq FROM sync_keys \
                 WHERE app_id = $1 AND biz_type = $2 AND link_token = $3 AND third_msg_id = $4",
            )
            .bind(datum.app_id)
            .bind(datum.biz_type)
            .bind(datum.link_token)
            .bind(datum.third_msg_id)
            .fetch_one(self.store.pool())
            .await?;
            return Ok(Appended::Duplicate {
                msg_id: row.try_get("msg_id")?,
                stream: row.try_get("stream")?,
                seq: to_u64(row.try_get("seq")?),
            });
        }
        let filter = datum
            .filter
            .filter(|filter| !filter.is_empty())
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| Error::Internal(error.to_string()))?;
        sqlx::query(
            "INSERT INTO sync_data (app_id, biz_type, stream, seq, msg_id, third_msg_id, payload, filter, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(datum.app_id)
        .bind(datum.biz_type)
        .bind(datum.stream)
        .bind(head)
        .bind(datum.msg_id)
        .bind(datum.third_msg_id)
        .bind(datum.payload)
        .bind(filter)
        .bind(datum.created_at)
        .bind(datum.expires_at)
        .execute(&mut **tx)
        .await?;
        let mut trimmed = 0;
        if let Some(keep) = datum.keep_newest {
            let new_floor = head - i64::from(keep) + 1;
            if new_floor > 1 {
                trimmed = sqlx::query(
                    "DELETE FROM sync_data WHERE app_id = $1 AND biz_type = $2 AND stream = $3 AND seq < $4",
                )
                .bind(datum.app_id)
                .bind(datum.biz_type)
                .bind(datum.stream)
                .bind(new_floor)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE sync_streams SET floor = $4 \
                     WHERE app_id = $1 AND biz_type = $2 AND stream = $3 AND floor < $4",
                )
                .bind(datum.app_id)
                .bind(datum.biz_type)
                .bind(datum.stream)
                .bind(new_floor)
                .execute(&mut **tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Appended::New {
            seq: to_u64(head),
            trimmed,
        })
    }

    /// A stream's head and floor (zeros when it never had data).
    pub async fn bounds(&self, app_id: &str, biz_type: &str, stream: &str) -> Result<StreamBounds> {
        let row = sqlx::query(
            "SELECT head, floor FROM sync_streams WHERE app_id = $1 AND biz_type = $2 AND stream = $3",
        )
        .bind(app_id)
        .bind(biz_type)
        .bind(stream)
        .fetch_optional(self.store.pool())
        .await?;
        Ok(match row {
            Some(row) => StreamBounds {
                head: to_u64(row.try_get("head")?),
                floor: to_u64(row.try_get("floor")?),
            },
            None => StreamBounds::default(),
        })
    }

    /// Up to `limit` data after `after`, in order, that are still valid at `now`.
    pub async fn read(
        &self,
        app_id: &str,
        biz_type: &str,
        stream: &str,
        after: u64,
        limit: usize,
        now: i64,
    ) -> Result<Vec<StoredDatum>> {
        let rows = sqlx::query(
            "SELECT seq, msg_id, third_msg_id, payload, filter, created_at, expires_at FROM sync_data \
             WHERE app_id = $1 AND biz_type = $2 AND stream = $3 AND seq > $4 AND expires_at > $5 \
             ORDER BY seq LIMIT $6",
        )
        .bind(app_id)
        .bind(biz_type)
        .bind(stream)
        .bind(to_i64(after))
        .bind(now)
        .bind(limit as i64)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let filter: Option<String> = row.try_get("filter")?;
                Ok(StoredDatum {
                    seq: to_u64(row.try_get("seq")?),
                    msg_id: row.try_get("msg_id")?,
                    third_msg_id: row.try_get("third_msg_id")?,
                    payload: row.try_get("payload")?,
                    filter: filter
                        .map(|text| serde_json::from_str(&text))
                        .transpose()
                        .map_err(|error| Error::Internal(format!("stored filter: {error}")))?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// A device's cursor on a stream, if it has one.
    pub async fn cursor(
        &self,
        app_id: &str,
        device_id: &str,
        biz_type: &str,
        stream: &str,
    ) -> Result<Option<(u64, u32)>> {
        let row = sqlx::query(
            "SELECT acked, attempts FROM sync_cursors \
             WHERE app_id = $1 AND device_id = $2 AND biz_type = $3 AND stream = $4",
        )
        .bind(app_id)
        .bind(device_id)
        .bind(biz_type)
        .bind(stream)
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|row| {
            let attempts: i32 = row.try_get("attempts")?;
            Ok((to_u64(row.try_get("acked")?), attempts.max(0) as u32))
        })
        .transpose()
    }

    /// Every cursor of a device.
    pub async fn device_cursors(&self, app_id: &str, device_id: &str) -> Result<Vec<CursorRow>> {
        let rows = sqlx::query(
            "SELECT biz_type, stream, acked, attempts FROM sync_cursors \
             WHERE app_id = $1 AND device_id = $2 ORDER BY biz_type, stream",
        )
        .bind(app_id)
        .bind(device_id)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let attempts: i32 = row.try_get("attempts")?;
                Ok(CursorRow {
                    biz_type: row.try_get("biz_type")?,
                    stream: row.try_get("stream")?,
                    acked: to_u64(row.try_get("acked")?),
                    attempts: attempts.max(0) as u32,
                })
            })
            .collect()
    }

    /// Saves cursors in one transaction. A cursor never moves back: a stale
    /// write (an older connection of the device finishing late) keeps the
    /// higher sync point.
    pub async fn save_cursors(&self, cursors: &[(CursorKey, u64, u32)], now: i64) -> Result<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin_write().await?;
        // Many rows per statement: a fan-out brings one acknowledgement per
        // device, and a statement per row would cost more than the delivery.
        for chunk in cursors.chunks(CURSORS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO sync_cursors (app_id, device_id, biz_type, stream, acked, attempts, updated_at) VALUES ",
            );
            for index in 0..chunk.len() {
                let base = index * 7;
                if index > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4,
                    base + 5,
                    base + 6,
                    base + 7
                ));
            }
            sql.push_str(
                " ON CONFLICT (app_id, device_id, biz_type, stream) DO UPDATE SET \
                 attempts = CASE WHEN excluded.acked >= sync_cursors.acked THEN excluded.attempts ELSE sync_cursors.attempts END, \
                 acked = CASE WHEN excluded.acked >= sync_cursors.acked THEN excluded.acked ELSE sync_cursors.acked END, \
                 updated_at = excluded.updated_at",
            );
            let mut query = sqlx::query(&sql);
            for (key, acked, attempts) in chunk {
                query = query
                    .bind(&*key.app_id)
                    .bind(&*key.device_id)
                    .bind(&*key.biz_type)
                    .bind(&*key.stream)
                    .bind(to_i64(*acked))
                    .bind(i32::try_from(*attempts).unwrap_or(i32::MAX))
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes data whose validity ended and idempotence keys older than the
    /// retention of their biz type (`cutoffs`: biz type → oldest `created_at`
    /// kept). Returns the number of data removed.
    pub async fn expire(&self, app_id: &str, now: i64, cutoffs: &[(String, i64)]) -> Result<u64> {
        let mut tx = self.store.begin_write().await?;
        let removed = sqlx::query("DELETE FROM sync_data WHERE app_id = $1 AND expires_at <= $2")
            .bind(app_id)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        for (biz_type, cutoff) in cutoffs {
            sqlx::query(
                "DELETE FROM sync_keys WHERE app_id = $1 AND biz_type = $2 AND created_at < $3",
            )
            .bind(app_id)
            .bind(biz_type)
            .bind(cutoff)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Stored data per biz type that the stream's own devices have not
    /// acknowledged (global streams excluded): `head - max(acked)` summed over
    /// the app's streams, counting only data still stored.
    pub async fn backlog(&self, app_id: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT d.biz_type AS biz_type, COUNT(*) AS pending FROM sync_data d \
             WHERE d.app_id = $1 AND d.stream <> 'g' AND d.seq > COALESCE(( \
                 SELECT MAX(c.acked) FROM sync_cursors c \
                 WHERE c.app_id = d.app_id AND c.biz_type = d.biz_type AND c.stream = d.stream), 0) \
             GROUP BY d.biz_type",
        )
        .bind(app_id)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let pending: i64 = row.try_get("pending")?;
                Ok((row.try_get("biz_type")?, to_u64(pending)))
            })
            .collect()
    }

    /// Apps with stored data, for the expiry loop.
    pub async fn apps_with_data(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT app_id FROM sync_streams")
                .fetch_all(self.store.pool())
                .await?,
        )
    }
}
