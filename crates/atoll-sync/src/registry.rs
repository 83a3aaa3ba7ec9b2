//! Biz types: create, change, list, delete (audited), and a short-lived cache
//! of each app's biz types for the hot paths (orders and subscriptions).

use crate::{validate, Error, Result, SyncService};
use atoll_core::access::Requirement;
use atoll_platform::Principal;
use atoll_protocol::sync::{BizType, BizTypeSpec};
use parking_lot::Mutex;
use serde_json::json;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most biz types per app.
pub const MAX_BIZ_TYPES: usize = 200;
/// How long an app's biz types are trusted before they are read again. A
/// change on this node replaces them at once; one on another node is seen
/// within this time.
pub const BIZ_TYPES_TTL: Duration = Duration::from_secs(2);

/// An app's biz types by id.
pub type BizTypes = Arc<HashMap<String, BizType>>;

/// The cache of biz types per app, bounded by the number of apps.
#[derive(Debug, Default)]
pub(crate) struct BizTypeCache {
    entries: Mutex<HashMap<String, (Instant, BizTypes)>>,
}

/// Apps whose biz types are cached at most.
const MAX_CACHED_APPS: usize = 10_000;

impl BizTypeCache {
    fn get(&self, app_id: &str) -> Option<BizTypes> {
        self.entries
            .lock()
            .get(app_id)
            .filter(|(at, _)| at.elapsed() < BIZ_TYPES_TTL)
            .map(|(_, types)| types.clone())
    }

    fn put(&self, app_id: &str, types: BizTypes) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_CACHED_APPS {
            entries.retain(|_, (at, _)| at.elapsed() < BIZ_TYPES_TTL);
        }
        if entries.len() < MAX_CACHED_APPS {
            entries.insert(app_id.to_owned(), (Instant::now(), types));
        }
    }

    pub(crate) fn forget(&self, app_id: &str) {
        self.entries.lock().remove(app_id);
    }
}

fn row_to_biz_type(row: &sqlx::any::AnyRow) -> Result<BizType> {
    let spec: String = row.try_get("spec")?;
    Ok(BizType {
        spec: serde_json::from_str(&spec)
            .map_err(|error| Error::Internal(format!("stored biz type: {error}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SyncService {
    /// An app's biz types, from the cache when fresh.
    pub async fn biz_types_of(&self, app_id: &str) -> Result<BizTypes> {
        if let Some(types) = self.biz_types.get(app_id) {
            return Ok(types);
        }
        let rows = sqlx::query(
            "SELECT spec, created_at, updated_at FROM sync_biz_types WHERE app_id = $1",
        )
        .bind(app_id)
        .fetch_all(self.platform.store().pool())
        .await?;
        let mut types = HashMap::with_capacity(rows.len());
        for row in &rows {
            let biz_type = row_to_biz_type(row)?;
            types.insert(biz_type.spec.id.clone(), biz_type);
        }
        let types = Arc::new(types);
        self.biz_types.put(app_id, types.clone());
        Ok(types)
    }

    /// The biz types of an app, by id.
    pub async fn list_biz_types(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<BizType>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let mut types: Vec<BizType> = self
            .biz_types_of(&access.app_id)
            .await?
            .values()
            .cloned()
            .collect();
        types.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        Ok(types)
    }

    /// One biz type.
    pub async fn get_biz_type(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
    ) -> Result<BizType> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        self.biz_types_of(&access.app_id)
            .await?
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("biz type '{id}'")))
    }

    /// Creates a biz type (its id must be new in the app).
    pub async fn create_biz_type(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        spec: BizTypeSpec,
    ) -> Result<BizType> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        validate::spec(&spec)?;
        let mut tx = self.platform.store().begin_write().await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_biz_types WHERE app_id = $1")
                .bind(&access.app_id)
                .fetch_one(&mut **tx)
                .await?;
        if count >= MAX_BIZ_TYPES as i64 {
            return Err(Error::Invalid(format!(
                "an app has at most {MAX_BIZ_TYPES} biz types"
            )));
        }
        let now = self.clock.now_ms();
        let inserted = sqlx::query(
            "INSERT INTO sync_biz_types (app_id, id, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&access.app_id)
        .bind(&spec.id)
        .bind(serde_json::to_string(&spec).map_err(|error| Error::Internal(error.to_string()))?)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::Conflict(format!("a biz type '{}' exists", spec.id)));
        }
        let summary =
            json!({ "dimension": spec.dimension.as_str(), "persistent": spec.persistent });
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "sync.biz_type.create",
                "sync_biz_type",
                &format!("{app_key}/{}", spec.id),
                summary,
            )
            .await?;
        self.biz_types.forget(&access.app_id);
        Ok(BizType {
            spec,
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces a biz type's settings. The id and the dimension cannot change
    /// (stored data is keyed by them).
    pub async fn update_biz_type(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        spec: BizTypeSpec,
    ) -> Result<BizType> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        validate::spec(&spec)?;
        if spec.id != id {
            return Err(Error::Invalid(format!(
                "the id of biz type '{id}' cannot change"
            )));
        }
        let mut tx = self.platform.store().begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT spec, created_at, updated_at FROM sync_biz_types WHERE app_id = $1 AND id = $2{}",
            self.platform.store().lock_rows_clause()
        ))
        .bind(&access.app_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("biz type '{id}'")))?;
        let old = row_to_biz_type(&row)?;
        if old.spec.dimension != spec.dimension {
            return Err(Error::Invalid(format!(
                "the dimension of biz type '{id}' cannot change (create a new biz type)"
            )));
        }
        let now = self.clock.now_ms();
        sqlx::query(
            "UPDATE sync_biz_types SET spec = $3, updated_at = $4 WHERE app_id = $1 AND id = $2",
        )
        .bind(&access.app_id)
        .bind(id)
        .bind(serde_json::to_string(&spec).map_err(|error| Error::Internal(error.to_string()))?)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "sync.biz_type.update",
                "sync_biz_type",
                &format!("{app_key}/{id}"),
                json!({ "enabled": spec.enabled }),
            )
            .await?;
        self.biz_types.forget(&access.app_id);
        Ok(BizType {
            spec,
            created_at: old.created_at,
            updated_at: now,
        })
    }

    /// Deletes a biz type with all its data and cursors.
    pub async fn delete_biz_type(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let deleted = sqlx::query("DELETE FROM sync_biz_types WHERE app_id = $1 AND id = $2")
            .bind(&access.app_id)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound(format!("biz type '{id}'")));
        }
        for table in [
            "sync_data",
            "sync_streams",
            "sync_keys",
            "sync_cursors",
            "sync_stats",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE app_id = $1 AND biz_type = $2"
            ))
            .bind(&access.app_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "sync.biz_type.delete",
                "sync_biz_type",
                &format!("{app_key}/{id}"),
                json!({}),
            )
            .await?;
        self.biz_types.forget(&access.app_id);
        Ok(())
    }
}
