//! The `switch_versions` table: one row per publish, holding the whole set and
//! its diff from the version before. The newest row is the set in force.

use crate::{Error, Result};
use atoll_protocol::switches::{limits, Switch, SwitchDiff, SwitchSet, SwitchVersion};
use atoll_store::{MetaStore, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

const COLUMNS: &str = "version, published_at, author, message, document, diff";

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| Error::Internal(format!("stored {what}: {error}")))
}

fn set_from_row(row: &AnyRow) -> Result<SwitchSet> {
    let document: String = row.try_get(4)?;
    Ok(SwitchSet {
        version: row.try_get::<i64, _>(0)? as u64,
        published_at: row.try_get(1)?,
        author: row.try_get(2)?,
        message: row.try_get(3)?,
        switches: decode(&document, "switches")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<SwitchVersion> {
    let set = set_from_row(row)?;
    let diff: String = row.try_get(5)?;
    Ok(SwitchVersion {
        version: set.version,
        published_at: set.published_at,
        author: set.author,
        message: set.message,
        switches: set.switches.len(),
        diff: decode(&diff, "diff")?,
    })
}

/// The set in force (version 0 and empty before the first publish).
pub async fn current(store: &MetaStore, app_id: &str) -> Result<SwitchSet> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM switch_versions WHERE app_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(app_id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map_or(Ok(SwitchSet::default()), set_from_row)
}

/// The version in force, read inside a write so a publish builds on it.
pub async fn current_in(tx: &mut WriteTx, app_id: &str) -> Result<SwitchSet> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM switch_versions WHERE app_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(app_id)
    .fetch_optional(&mut ***tx)
    .await?;
    row.as_ref().map_or(Ok(SwitchSet::default()), set_from_row)
}

/// Only the number of the version in force (cheap; for snapshot freshness).
pub async fn current_version(store: &MetaStore, app_id: &str) -> Result<u64> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM switch_versions WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(store.pool())
            .await?;
    Ok(version.unwrap_or(0) as u64)
}

/// One stored version's set.
pub async fn set_at(store: &MetaStore, app_id: &str, version: u64) -> Result<Option<SwitchSet>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM switch_versions WHERE app_id = $1 AND version = $2"
    ))
    .bind(app_id)
    .bind(version as i64)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(set_from_row).transpose()
}

/// The history, newest first, before version `before` when paging.
pub async fn history(
    store: &MetaStore,
    app_id: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<SwitchVersion>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM switch_versions WHERE app_id = $1 AND version < $2 \
         ORDER BY version DESC LIMIT $3"
    ))
    .bind(app_id)
    .bind(before.map_or(i64::MAX, |version| version as i64))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(version_from_row).collect()
}

/// What one publish stores.
pub struct NewVersion<'a> {
    pub version: u64,
    pub published_at: i64,
    pub author: &'a str,
    pub message: &'a str,
    pub switches: &'a [Switch],
    pub diff: &'a SwitchDiff,
}

/// Stores a new version and drops the ones beyond the history cap. Two
/// concurrent publishes of the same number collide on the primary key; the loser
/// gets `conflict`.
pub async fn insert(tx: &mut WriteTx, app_id: &str, new: NewVersion<'_>) -> Result<()> {
    let document =
        serde_json::to_string(new.switches).map_err(|e| Error::Internal(e.to_string()))?;
    let diff = serde_json::to_string(new.diff).map_err(|e| Error::Internal(e.to_string()))?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO switch_versions (app_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(app_id)
    .bind(new.version as i64)
    .bind(new.published_at)
    .bind(new.author)
    .bind(new.message)
    .bind(document)
    .bind(diff)
    .execute(&mut ***tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(Error::Conflict(format!(
                "version {} was published by someone else meanwhile; reload and try again",
                new.version
            )))
        }
        Err(error) => return Err(error.into()),
    }
    let oldest_kept = new.version.saturating_sub(limits::MAX_VERSIONS as u64 - 1);
    sqlx::query("DELETE FROM switch_versions WHERE app_id = $1 AND version < $2")
        .bind(app_id)
        .bind(oldest_kept as i64)
        .execute(&mut ***tx)
        .await?;
    Ok(())
}
