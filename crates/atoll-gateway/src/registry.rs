//! The registry admins edit: API groups, APIs and app-wide settings. Every write
//! is validated, audited in its own transaction and bumps the app's revision, so
//! every node's snapshot is rebuilt within [`crate::SNAPSHOT_TTL`].

use crate::{validate, Error, Gateway, Result};
use atoll_core::access::Requirement;
use atoll_platform::{AppAccess, Principal};
use atoll_protocol::gateway::{
    limits, Api, ApiGroup, ApiGroupSecret, ApiGroupSpec, ApiSpec, GatewaySettings,
};
use atoll_store::WriteTx;
use rand::RngCore;
use serde_json::json;
use sqlx::Row;

/// A new group secret: 32 random bytes as hex (the backend keys HMAC with the text).
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn corrupt(what: &str, error: serde_json::Error) -> Error {
    Error::Internal(format!("stored {what} does not parse: {error}"))
}

pub(crate) fn group_from_row(row: &sqlx::any::AnyRow) -> Result<ApiGroup> {
    let spec: String = row.try_get("spec")?;
    Ok(ApiGroup {
        id: row.try_get("id")?,
        spec: serde_json::from_str(&spec).map_err(|error| corrupt("group", error))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn api_from_row(row: &sqlx::any::AnyRow) -> Result<Api> {
    let spec: String = row.try_get("spec")?;
    Ok(Api {
        id: row.try_get("id")?,
        spec: serde_json::from_str(&spec).map_err(|error| corrupt("API", error))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Moves the app's revision on, inside the change's transaction.
async fn bump_revision(tx: &mut WriteTx, app_id: &str) -> Result<()> {
    let updated =
        sqlx::query("UPDATE gateway_revisions SET revision = revision + 1 WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut ***tx)
            .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO gateway_revisions (app_id, revision) VALUES ($1, 1)")
            .bind(app_id)
            .execute(&mut ***tx)
            .await?;
    }
    Ok(())
}

/// The app's revision (0 before its first gateway change).
pub(crate) async fn revision(store: &atoll_store::MetaStore, app_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT revision FROM gateway_revisions WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(store.pool())
            .await?
            .unwrap_or(0),
    )
}

/// One group of an app, or `not_found`.
async fn find_group<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    app_id: &str,
    name: &str,
) -> Result<ApiGroup> {
    let row = sqlx::query(
        "SELECT id, spec, created_at, updated_at FROM gateway_groups WHERE app_id = $1 AND name = $2",
    )
    .bind(app_id)
    .bind(name)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| Error::NotFound(format!("group '{name}'")))?;
    group_from_row(&row)
}

/// One API of an app, or `not_found`.
async fn find_api<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    app_id: &str,
    operation_type: &str,
) -> Result<Api> {
    let row = sqlx::query(
        "SELECT id, spec, created_at, updated_at FROM gateway_apis WHERE app_id = $1 AND operation_type = $2",
    )
    .bind(app_id)
    .bind(operation_type)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| Error::NotFound(format!("API '{operation_type}'")))?;
    api_from_row(&row)
}

async fn group_id_in(tx: &mut WriteTx, app_id: &str, name: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM gateway_groups WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .fetch_optional(&mut ***tx)
            .await?,
    )
}

async fn api_exists_in(tx: &mut WriteTx, app_id: &str, operation_type: &str) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM gateway_apis WHERE app_id = $1 AND operation_type = $2")
            .bind(app_id)
            .bind(operation_type)
            .fetch_optional(&mut ***tx)
            .await?;
    Ok(found.is_some())
}

impl Gateway {
    async fn access(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        requirement: Requirement,
    ) -> Result<AppAccess> {
        Ok(self
            .platform
            .authorize_app(principal, slug, app_key, requirement)
            .await?)
    }

    /// Forgets what this node compiled for the app, after a local change.
    fn changed(&self, app_id: &str) {
        self.snapshots.remove(app_id);
    }

    /// The app's groups, by name.
    pub async fn list_groups(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<ApiGroup>> {
        let access = self
            .access(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT id, spec, created_at, updated_at FROM gateway_groups WHERE app_id = $1 ORDER BY name",
        )
        .bind(&access.app_id)
        .fetch_all(self.platform.store().pool())
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    /// One group.
    pub async fn get_group(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<ApiGroup> {
        let access = self
            .access(principal, slug, app_key, Requirement::READ)
            .await?;
        find_group(self.platform.store().pool(), &access.app_id, name).await
    }

    /// Creates a group; the answer carries its secret, shown only here.
    pub async fn create_group(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        spec: ApiGroupSpec,
    ) -> Result<ApiGroupSecret> {
        validate::group(&spec, &self.backends)?;
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        if group_id_in(&mut tx, &access.app_id, &spec.name)
            .await?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "a group named '{}' exists",
                spec.name
            )));
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM gateway_groups WHERE app_id = $1")
                .bind(&access.app_id)
                .fetch_one(&mut **tx)
                .await?;
        if count >= limits::MAX_GROUPS as i64 {
            return Err(Error::Invalid(format!(
                "an app has at most {} groups",
                limits::MAX_GROUPS
            )));
        }
        let now = self.clock.now_ms();
        let group = ApiGroup {
            id: new_id(),
            spec,
            created_at: now,
            updated_at: now,
        };
        let secret = new_secret();
        sqlx::query(
            "INSERT INTO gateway_groups (id, app_id, name, spec, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&group.id)
        .bind(&access.app_id)
        .bind(&group.spec.name)
        .bind(serde_json::to_string(&group.spec).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(&secret)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.group.create",
                "gateway_group",
                &format!("{app_key}/{}", group.spec.name),
                json!({ "base_url": group.spec.base_url }),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(ApiGroupSecret { group, secret })
    }

    /// Replaces a group's settings (the name in `spec` must be `name`).
    pub async fn put_group(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
        spec: ApiGroupSpec,
    ) -> Result<ApiGroup> {
        if spec.name != name {
            return Err(Error::Invalid(format!(
                "name: groups are not renamed; the body names '{}' and the path '{name}'",
                spec.name
            )));
        }
        validate::group(&spec, &self.backends)?;
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let mut group = find_group(&mut **tx, &access.app_id, name).await?;
        group.spec = spec;
        group.updated_at = self.clock.now_ms();
        sqlx::query("UPDATE gateway_groups SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(&group.spec).map_err(|e| Error::Internal(e.to_string()))?)
            .bind(group.updated_at)
            .bind(&group.id)
            .execute(&mut **tx)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.group.update",
                "gateway_group",
                &format!("{app_key}/{name}"),
                json!({ "base_url": group.spec.base_url }),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(group)
    }

    /// Gives a group a new secret; the old one stops working at once.
    pub async fn rotate_group_secret(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<ApiGroupSecret> {
        let access = self
            .access(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let mut group = find_group(&mut **tx, &access.app_id, name).await?;
        group.updated_at = self.clock.now_ms();
        let secret = new_secret();
        sqlx::query("UPDATE gateway_groups SET secret = $1, updated_at = $2 WHERE id = $3")
            .bind(&secret)
            .bind(group.updated_at)
            .bind(&group.id)
            .execute(&mut **tx)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.group.rotate_secret",
                "gateway_group",
                &format!("{app_key}/{name}"),
                json!({}),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(ApiGroupSecret { group, secret })
    }

    /// Deletes a group that no API uses.
    pub async fn delete_group(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<()> {
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let id = group_id_in(&mut tx, &access.app_id, name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("group '{name}'")))?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT operation_type FROM gateway_apis WHERE group_id = $1 ORDER BY operation_type LIMIT 5",
        )
        .bind(&id)
        .fetch_all(&mut **tx)
        .await?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "the group is used by APIs ({}); move or delete them first",
                users.join(", ")
            )));
        }
        sqlx::query("DELETE FROM gateway_groups WHERE id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.group.delete",
                "gateway_group",
                &format!("{app_key}/{name}"),
                json!({}),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(())
    }

    /// The app's APIs, by operation type (optionally only one group's).
    pub async fn list_apis(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        group: Option<&str>,
    ) -> Result<Vec<Api>> {
        let access = self
            .access(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT a.id, a.spec, a.created_at, a.updated_at FROM gateway_apis a \
             JOIN gateway_groups g ON g.id = a.group_id \
             WHERE a.app_id = $1 AND ($2 = '' OR g.name = $2) ORDER BY a.operation_type",
        )
        .bind(&access.app_id)
        .bind(group.unwrap_or(""))
        .fetch_all(self.platform.store().pool())
        .await?;
        rows.iter().map(api_from_row).collect()
    }

    /// One API.
    pub async fn get_api(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<Api> {
        let access = self
            .access(principal, slug, app_key, Requirement::READ)
            .await?;
        find_api(self.platform.store().pool(), &access.app_id, operation_type).await
    }

    /// Checks what an API refers to inside the app: its group and authorizer.
    async fn api_references(
        &self,
        tx: &mut WriteTx,
        app_id: &str,
        spec: &ApiSpec,
    ) -> Result<String> {
        let group_id = group_id_in(tx, app_id, &spec.group)
            .await?
            .ok_or_else(|| Error::Invalid(format!("group: no group named '{}'", spec.group)))?;
        if let Some(authorizer) = &spec.authorizer {
            if !api_exists_in(tx, app_id, &authorizer.operation_type).await? {
                return Err(Error::Invalid(format!(
                    "authorizer.operation_type: no API '{}' in this app; create it first",
                    authorizer.operation_type
                )));
            }
        }
        Ok(group_id)
    }

    /// Creates an API. New APIs start disabled unless the spec says otherwise.
    pub async fn create_api(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        spec: ApiSpec,
    ) -> Result<Api> {
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let api = self.insert_api(&mut tx, &access.app_id, spec).await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.api.create",
                "gateway_api",
                &format!("{app_key}/{}", api.spec.operation_type),
                json!({ "group": api.spec.group, "path": api.spec.path, "enabled": api.spec.enabled }),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(api)
    }

    pub(crate) async fn insert_api(
        &self,
        tx: &mut WriteTx,
        app_id: &str,
        spec: ApiSpec,
    ) -> Result<Api> {
        validate::api(&spec)?;
        let group_id = self.api_references(tx, app_id, &spec).await?;
        if api_exists_in(tx, app_id, &spec.operation_type).await? {
            return Err(Error::Conflict(format!(
                "an API with operation type '{}' exists",
                spec.operation_type
            )));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gateway_apis WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&mut ***tx)
            .await?;
        if count >= limits::MAX_APIS as i64 {
            return Err(Error::Invalid(format!(
                "an app has at most {} APIs",
                limits::MAX_APIS
            )));
        }
        let now = self.clock.now_ms();
        let api = Api {
            id: new_id(),
            spec,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO gateway_apis (id, app_id, operation_type, group_id, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&api.id)
        .bind(app_id)
        .bind(&api.spec.operation_type)
        .bind(&group_id)
        .bind(serde_json::to_string(&api.spec).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(now)
        .execute(&mut ***tx)
        .await?;
        Ok(api)
    }

    pub(crate) async fn update_api(
        &self,
        tx: &mut WriteTx,
        app_id: &str,
        operation_type: &str,
        spec: ApiSpec,
    ) -> Result<Api> {
        if spec.operation_type != operation_type {
            return Err(Error::Invalid(format!(
                "operation_type: APIs are not renamed; the body names '{}' and the path '{operation_type}'",
                spec.operation_type
            )));
        }
        validate::api(&spec)?;
        let group_id = self.api_references(tx, app_id, &spec).await?;
        let mut api = find_api(&mut ***tx, app_id, operation_type).await?;
        api.spec = spec;
        api.updated_at = self.clock.now_ms();
        sqlx::query(
            "UPDATE gateway_apis SET spec = $1, group_id = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(serde_json::to_string(&api.spec).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(&group_id)
        .bind(api.updated_at)
        .bind(&api.id)
        .execute(&mut ***tx)
        .await?;
        Ok(api)
    }

    /// Replaces an API's settings.
    pub async fn put_api(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        operation_type: &str,
        spec: ApiSpec,
    ) -> Result<Api> {
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let api = self
            .update_api(&mut tx, &access.app_id, operation_type, spec)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.api.update",
                "gateway_api",
                &format!("{app_key}/{operation_type}"),
                json!({ "group": api.spec.group, "path": api.spec.path, "enabled": api.spec.enabled }),
            )
            .await?;
        self.changed(&access.app_id);
        self.runtime.forget_api(&access.app_id, operation_type);
        Ok(api)
    }

    /// Enables or disables an API.
    pub async fn set_api_enabled(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        operation_type: &str,
        enabled: bool,
    ) -> Result<Api> {
        // Write access first, so a reader learns nothing from "not found".
        self.access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut api = self
            .get_api(principal, slug, app_key, operation_type)
            .await?;
        api.spec.enabled = enabled;
        self.put_api(principal, slug, app_key, operation_type, api.spec)
            .await
    }

    /// Deletes an API that no other API uses as its authorizer.
    pub async fn delete_api(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<()> {
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let rows = sqlx::query(
            "SELECT id, spec, created_at, updated_at FROM gateway_apis WHERE app_id = $1",
        )
        .bind(&access.app_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut found = false;
        for row in &rows {
            let api = api_from_row(row)?;
            if api.spec.operation_type == operation_type {
                found = true;
            } else if api
                .spec
                .authorizer
                .as_ref()
                .is_some_and(|authorizer| authorizer.operation_type == operation_type)
            {
                return Err(Error::Conflict(format!(
                    "'{}' uses this API as its authorizer",
                    api.spec.operation_type
                )));
            }
        }
        if !found {
            return Err(Error::NotFound(format!("API '{operation_type}'")));
        }
        sqlx::query("DELETE FROM gateway_apis WHERE app_id = $1 AND operation_type = $2")
            .bind(&access.app_id)
            .bind(operation_type)
            .execute(&mut **tx)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.api.delete",
                "gateway_api",
                &format!("{app_key}/{operation_type}"),
                json!({}),
            )
            .await?;
        self.changed(&access.app_id);
        self.runtime.forget_api(&access.app_id, operation_type);
        Ok(())
    }

    /// The app-wide settings (all limits off until set).
    pub async fn get_settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<GatewaySettings> {
        let access = self
            .access(principal, slug, app_key, Requirement::READ)
            .await?;
        settings_of(self.platform.store(), &access.app_id).await
    }

    /// Replaces the app-wide settings.
    pub async fn put_settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        settings: GatewaySettings,
    ) -> Result<GatewaySettings> {
        validate::settings(&settings)?;
        let access = self
            .access(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        sqlx::query("DELETE FROM gateway_settings WHERE app_id = $1")
            .bind(&access.app_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO gateway_settings (app_id, spec, updated_at) VALUES ($1, $2, $3)")
            .bind(&access.app_id)
            .bind(serde_json::to_string(&settings).map_err(|e| Error::Internal(e.to_string()))?)
            .bind(self.clock.now_ms())
            .execute(&mut **tx)
            .await?;
        bump_revision(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.settings.update",
                "gateway_settings",
                app_key,
                serde_json::to_value(settings).unwrap_or_default(),
            )
            .await?;
        self.changed(&access.app_id);
        Ok(settings)
    }

    pub(crate) async fn write_access(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<AppAccess> {
        self.access(principal, slug, app_key, Requirement::WRITE)
            .await
    }

    pub(crate) async fn bump(&self, tx: &mut WriteTx, app_id: &str) -> Result<()> {
        bump_revision(tx, app_id).await
    }
}

/// The app's settings as stored (defaults when never saved).
pub(crate) async fn settings_of(
    store: &atoll_store::MetaStore,
    app_id: &str,
) -> Result<GatewaySettings> {
    let spec: Option<String> =
        sqlx::query_scalar("SELECT spec FROM gateway_settings WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(store.pool())
            .await?;
    spec.map(|spec| serde_json::from_str(&spec).map_err(|error| corrupt("settings", error)))
        .transpose()
        .map(Option::unwrap_or_default)
}
