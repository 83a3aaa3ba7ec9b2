//! Uploaded id lists: the allow-lists target rules name (`user in list:beta`,
//! `device in list:qa-phones`), as mPaaS whitelists are. A list belongs to an
//! app, holds device or user ids (up to [`limits::MAX_LIST_IDS`]) and is
//! replaced as a whole.
//!
//! Rules are evaluated on hot device paths (config, update checks), so a list is
//! never read from the store per request: [`ListService::lists_of`] gives the
//! app's lists as in-memory hash sets ([`MemoryLists`]), reloaded when the
//! app's list stamp (count and newest change) differs, checked at most every
//! [`CACHE_TTL`]. Another node's upload is therefore seen within that time.
#![warn(missing_docs)]

use atoll_core::access::Requirement;
use atoll_core::cache::StampedCache;
use atoll_core::clock::Clock;
use atoll_core::rules::MemoryLists;
use atoll_platform::{PlatformService, Principal};
use atoll_protocol::delivery::{limits, ListKind, PutList, TargetList};
use serde_json::json;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// How long an app's cached lists are used before their stamp is checked again.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Apps whose lists are cached at most.
const MAX_CACHED_APPS: usize = 10_000;

/// What can go wrong with lists.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform operation failed (authorisation, lookup).
    #[error(transparent)]
    Platform(#[from] atoll_platform::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The list does not exist.
    #[error("list '{0}' not found")]
    NotFound(String),
}

atoll_platform::module_error!(Error {
    delegate: [Platform],
    internal: [Store],
    codes: { Invalid => ValidationFailed, NotFound => NotFound },
});

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Count and newest change of an app's lists: when it differs, reload.
type Stamp = (i64, i64);

/// Lists: admin operations and the per-app cache rules read.
pub struct ListService {
    platform: PlatformService,
    clock: Arc<dyn Clock>,
    cache: StampedCache<Stamp, MemoryLists>,
}

impl std::fmt::Debug for ListService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListService").finish_non_exhaustive()
    }
}

fn list_from_row(row: &sqlx::any::AnyRow) -> Result<TargetList> {
    let kind: String = row.try_get(1)?;
    Ok(TargetList {
        name: row.try_get(0)?,
        kind: ListKind::parse(&kind).unwrap_or(ListKind::Device),
        count: row.try_get::<i64, _>(2)? as u64,
        updated_at: row.try_get(3)?,
    })
}

impl ListService {
    /// A service over the platform.
    pub fn new(platform: PlatformService, clock: Arc<dyn Clock>) -> ListService {
        ListService {
            platform,
            clock,
            cache: StampedCache::new(CACHE_TTL, MAX_CACHED_APPS),
        }
    }

    /// The app's lists, without their ids, by name.
    pub async fn list(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<TargetList>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT name, kind, id_count, updated_at FROM target_lists WHERE app_id = $1 ORDER BY name",
        )
        .bind(&access.app_id)
        .fetch_all(self.platform.store().pool())
        .await?;
        rows.iter().map(list_from_row).collect()
    }

    /// One list with its ids (sorted).
    pub async fn get(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<(TargetList, Vec<String>)> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let row = sqlx::query(
            "SELECT name, kind, id_count, updated_at, ids FROM target_lists WHERE app_id = $1 AND name = $2",
        )
        .bind(&access.app_id)
        .bind(name)
        .fetch_optional(self.platform.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
        let ids: String = row.try_get(4)?;
        Ok((
            list_from_row(&row)?,
            ids.lines().map(str::to_owned).collect(),
        ))
    }

    /// Creates or replaces a list.
    pub async fn put(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
        request: PutList,
    ) -> Result<TargetList> {
        let ids = validate(name, request.ids)?;
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let (count, newest) = stamp_in(&mut tx, &access.app_id).await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id_count FROM target_lists WHERE app_id = $1 AND name = $2")
                .bind(&access.app_id)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() && count >= limits::MAX_LISTS as i64 {
            return Err(Error::Invalid(format!(
                "an app has at most {} lists; delete one first",
                limits::MAX_LISTS
            )));
        }
        // Strictly after the newest change, so the stamp moves even when two
        // replacements fall in the same millisecond.
        let updated_at = self.clock.now_ms().max(newest + 1);
        sqlx::query("DELETE FROM target_lists WHERE app_id = $1 AND name = $2")
            .bind(&access.app_id)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO target_lists (app_id, name, kind, id_count, ids, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&access.app_id)
        .bind(name)
        .bind(request.kind.as_str())
        .bind(ids.len() as i64)
        .bind(ids.join("\n"))
        .bind(updated_at)
        .execute(&mut **tx)
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "list.put",
                "list",
                &format!("{app_key}/{name}"),
                json!({ "kind": request.kind.as_str(), "count": ids.len() }),
            )
            .await?;
        self.cache.remove(&access.app_id);
        Ok(TargetList {
            name: name.to_owned(),
            kind: request.kind,
            count: ids.len() as u64,
            updated_at,
        })
    }

    /// Deletes a list. Rules naming it then match nobody.
    pub async fn delete(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let deleted = sqlx::query("DELETE FROM target_lists WHERE app_id = $1 AND name = $2")
            .bind(&access.app_id)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::NotFound(name.to_owned()));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "list.delete",
                "list",
                &format!("{app_key}/{name}"),
                json!({}),
            )
            .await?;
        self.cache.remove(&access.app_id);
        Ok(())
    }

    /// The app's lists in memory, for rule evaluation: cached, reloaded when
    /// they changed.
    pub async fn lists_of(&self, app_id: &str) -> Result<Arc<MemoryLists>> {
        let store = self.platform.store();
        self.cache
            .get(app_id, || stamp(store, app_id), |_| load(store, app_id))
            .await
    }
}

/// Checks a list's name and ids; returns the distinct ids, sorted.
fn validate(name: &str, ids: Vec<String>) -> Result<Vec<String>> {
    let mut probe = MemoryLists::new();
    probe
        .insert(name, std::iter::empty::<String>())
        .map_err(|error| Error::Invalid(error.to_string()))?;
    if ids.len() > limits::MAX_LIST_IDS * 2 {
        return Err(Error::Invalid(format!(
            "a list holds at most {} ids",
            limits::MAX_LIST_IDS
        )));
    }
    let mut ids: Vec<String> = ids
        .into_iter()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    if let Some(bad) = ids
        .iter()
        .find(|id| id.len() > limits::MAX_LIST_ID_BYTES || id.chars().any(|c| c.is_control()))
    {
        return Err(Error::Invalid(format!(
            "id '{}…' is over {} bytes or holds a control character",
            bad.chars().take(40).collect::<String>(),
            limits::MAX_LIST_ID_BYTES
        )));
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > limits::MAX_LIST_IDS {
        return Err(Error::Invalid(format!(
            "the list has {} distinct ids; at most {} are allowed (target a segment instead)",
            ids.len(),
            limits::MAX_LIST_IDS
        )));
    }
    Ok(ids)
}

const STAMP_QUERY: &str =
    "SELECT COUNT(*), COALESCE(MAX(updated_at), 0) FROM target_lists WHERE app_id = $1";

async fn stamp(store: &atoll_store::MetaStore, app_id: &str) -> Result<Stamp> {
    let row = sqlx::query(STAMP_QUERY)
        .bind(app_id)
        .fetch_one(store.pool())
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn stamp_in(tx: &mut atoll_store::WriteTx, app_id: &str) -> Result<Stamp> {
    let row = sqlx::query(STAMP_QUERY)
        .bind(app_id)
        .fetch_one(&mut ***tx)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn load(store: &atoll_store::MetaStore, app_id: &str) -> Result<MemoryLists> {
    let rows = sqlx::query("SELECT name, ids FROM target_lists WHERE app_id = $1")
        .bind(app_id)
        .fetch_all(store.pool())
        .await?;
    let mut lists = MemoryLists::new();
    for row in rows {
        let name: String = row.try_get(0)?;
        let ids: String = row.try_get(1)?;
        // Stored lists were validated on upload; a failure here means a list
        // written by something else, which is then left out rather than
        // failing every evaluation.
        let _ = lists.insert(&name, ids.lines());
    }
    Ok(lists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_deduplicated_and_capped() {
        let ids = validate(
            "beta",
            vec![" b ".into(), "a".into(), "b".into(), "".into()],
        )
        .unwrap();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(validate("bad name", vec![]).is_err());
        let too_many: Vec<String> = (0..=limits::MAX_LIST_IDS).map(|i| i.to_string()).collect();
        assert!(validate("big", too_many).is_err());
        assert!(validate("ctl", vec!["a\nb".into()]).is_err());
    }
}
