//! The delivery tables: `packages`, `releases`, `delta_patches` (see the
//! migration `0004_delivery.sql`). Rows in, DTOs out; no rules here.

use crate::{Error, Result};
use atoll_protocol::delivery::*;
use atoll_protocol::device::Platform;
use atoll_store::{MetaStore, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

fn bad(what: &str, value: &str) -> Error {
    Error::Internal(format!("stored {what} '{value}' is not known"))
}

const PACKAGE_COLUMNS: &str = "p.id, p.kind, p.resource_id, p.platform, p.version, p.for_app_version, \
     p.file_name, p.size, p.sha256, p.store_url, p.manifest, p.signature, p.key_id, p.created_at, p.created_by";

/// Number of columns of [`PACKAGE_COLUMNS`], where release columns start.
const PACKAGE_WIDTH: usize = 15;

fn package_at(row: &AnyRow, at: usize) -> Result<Package> {
    let kind: String = row.try_get(at + 1)?;
    let platform: String = row.try_get(at + 3)?;
    let for_app_version: String = row.try_get(at + 5)?;
    Ok(Package {
        id: row.try_get(at)?,
        kind: ResourceKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        resource_id: row.try_get(at + 2)?,
        platform: Platform::parse(&platform).ok_or_else(|| bad("platform", &platform))?,
        version: row.try_get(at + 4)?,
        for_app_version: Some(for_app_version).filter(|v| !v.is_empty()),
        file_name: row.try_get(at + 6)?,
        size: row.try_get::<i64, _>(at + 7)? as u64,
        sha256: row.try_get(at + 8)?,
        store_url: row.try_get(at + 9)?,
        signed: SignedManifest {
            manifest: row.try_get(at + 10)?,
            signature: row.try_get(at + 11)?,
            key_id: row.try_get(at + 12)?,
        },
        created_at: row.try_get(at + 13)?,
        created_by: row.try_get(at + 14)?,
    })
}

/// Stores a new package; a second upload of the same version of the same
/// resource is a conflict.
pub async fn insert_package(tx: &mut WriteTx, app_id: &str, package: &Package) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO packages (id, app_id, kind, resource_id, platform, version, for_app_version, \
         file_name, size, sha256, store_url, manifest, signature, key_id, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&package.id)
    .bind(app_id)
    .bind(package.kind.as_str())
    .bind(&package.resource_id)
    .bind(package.platform.as_str())
    .bind(&package.version)
    .bind(package.for_app_version.as_deref().unwrap_or(""))
    .bind(&package.file_name)
    .bind(package.size as i64)
    .bind(&package.sha256)
    .bind(&package.store_url)
    .bind(&package.signed.manifest)
    .bind(&package.signed.signature)
    .bind(&package.signed.key_id)
    .bind(package.created_at)
    .bind(&package.created_by)
    .execute(&mut ***tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            Err(Error::Conflict(format!(
                "{} {} version {} for {} was already uploaded; upload a new version",
                package.kind, package.resource_id, package.version, package.platform
            )))
        }
        Err(error) => Err(error.into()),
    }
}

/// One package of an app.
pub async fn package(store: &MetaStore, app_id: &str, id: &str) -> Result<Option<Package>> {
    let row = sqlx::query(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages p WHERE p.app_id = $1 AND p.id = $2"
    ))
    .bind(app_id)
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(|row| package_at(row, 0)).transpose()
}

/// An app's packages, newest first, optionally of one kind.
pub async fn packages(
    store: &MetaStore,
    app_id: &str,
    kind: Option<ResourceKind>,
    limit: u32,
) -> Result<Vec<Package>> {
    let rows = sqlx::query(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages p WHERE p.app_id = $1 AND ($2 = '' OR p.kind = $2) \
         ORDER BY p.created_at DESC, p.id DESC LIMIT $3"
    ))
    .bind(app_id)
    .bind(kind.map_or("", ResourceKind::as_str))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(|row| package_at(row, 0)).collect()
}

/// Earlier packages of the same resource, platform (and patched app version),
/// newest first: the bases of delta patches to `package`.
pub async fn earlier_packages(
    store: &MetaStore,
    app_id: &str,
    package: &Package,
    limit: usize,
) -> Result<Vec<Package>> {
    let rows = sqlx::query(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages p WHERE p.app_id = $1 AND p.kind = $2 \
         AND p.resource_id = $3 AND p.platform = $4 AND p.for_app_version = $5 AND p.id != $6 \
         AND p.sha256 IS NOT NULL AND p.created_at <= $7 ORDER BY p.created_at DESC LIMIT 50"
    ))
    .bind(app_id)
    .bind(package.kind.as_str())
    .bind(&package.resource_id)
    .bind(package.platform.as_str())
    .bind(package.for_app_version.as_deref().unwrap_or(""))
    .bind(&package.id)
    .bind(package.created_at)
    .fetch_all(store.pool())
    .await?;
    let mut earlier: Vec<Package> = rows
        .iter()
        .map(|row| package_at(row, 0))
        .collect::<Result<_>>()?;
    // Order by version, not upload time: the bases are the versions just below.
    let new = crate::rollout::version_of(&package.version);
    earlier.retain(|p| crate::rollout::version_of(&p.version) < new);
    earlier.sort_by(|a, b| {
        crate::rollout::version_of(&b.version).cmp(&crate::rollout::version_of(&a.version))
    });
    earlier.truncate(limit);
    Ok(earlier)
}

const RELEASE_COLUMNS: &str = "r.id, r.stage, r.status, r.percent_millis, r.whitelist, r.rule, \
     r.app_versions, r.mode, r.force_below, r.notes, r.created_at, r.updated_at, r.created_by";

fn release_from_row(row: &AnyRow) -> Result<Release> {
    let package = package_at(row, 0)?;
    let at = PACKAGE_WIDTH;
    let stage: String = row.try_get(at + 1)?;
    let status: String = row.try_get(at + 2)?;
    let mode: String = row.try_get(at + 7)?;
    Ok(Release {
        id: row.try_get(at)?,
        package,
        stage: ReleaseStage::parse(&stage).ok_or_else(|| bad("stage", &stage))?,
        status: ReleaseStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        percent: row.try_get::<i64, _>(at + 3)? as f64 / 1000.0,
        whitelist: row.try_get(at + 4)?,
        rule: row.try_get(at + 5)?,
        app_versions: row.try_get(at + 6)?,
        mode: UpgradeMode::parse(&mode).ok_or_else(|| bad("mode", &mode))?,
        force_below: row.try_get(at + 8)?,
        notes: row.try_get(at + 9)?,
        created_at: row.try_get(at + 10)?,
        updated_at: row.try_get(at + 11)?,
        created_by: row.try_get(at + 12)?,
    })
}

fn release_select(filter: &str) -> String {
    format!(
        "SELECT {PACKAGE_COLUMNS}, {RELEASE_COLUMNS} FROM releases r JOIN packages p ON p.id = r.package_id \
         WHERE r.app_id = $1 {filter}"
    )
}

/// One release of an app.
pub async fn release(store: &MetaStore, app_id: &str, id: &str) -> Result<Option<Release>> {
    let row = sqlx::query(&release_select("AND r.id = $2"))
        .bind(app_id)
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(release_from_row).transpose()
}

/// One release, read inside a write.
pub async fn release_in(tx: &mut WriteTx, app_id: &str, id: &str) -> Result<Option<Release>> {
    let row = sqlx::query(&release_select("AND r.id = $2"))
        .bind(app_id)
        .bind(id)
        .fetch_optional(&mut ***tx)
        .await?;
    row.as_ref().map(release_from_row).transpose()
}

/// An app's releases, most recently changed first.
pub async fn releases(store: &MetaStore, app_id: &str, limit: u32) -> Result<Vec<Release>> {
    let rows = sqlx::query(&release_select(
        "ORDER BY r.updated_at DESC, r.id DESC LIMIT $2",
    ))
    .bind(app_id)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(release_from_row).collect()
}

/// The releases a device check can involve: every one not a draft, newest
/// change first, capped.
pub async fn live_releases(store: &MetaStore, app_id: &str, cap: u32) -> Result<Vec<Release>> {
    let rows = sqlx::query(&release_select(
        "AND r.stage != 'draft' ORDER BY r.updated_at DESC, r.id DESC LIMIT $2",
    ))
    .bind(app_id)
    .bind(i64::from(cap))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(release_from_row).collect()
}

/// Count and newest change of an app's releases and patches: a snapshot is
/// current while this is unchanged.
pub async fn stamp(store: &MetaStore, app_id: &str) -> Result<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM releases WHERE app_id = $1), \
                (SELECT COALESCE(MAX(updated_at), 0) FROM releases WHERE app_id = $1), \
                (SELECT COUNT(*) FROM delta_patches WHERE app_id = $1 AND state = 'ready')",
    )
    .bind(app_id)
    .fetch_one(store.pool())
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Stores a new release.
pub async fn insert_release(tx: &mut WriteTx, app_id: &str, release: &Release) -> Result<()> {
    sqlx::query(
        "INSERT INTO releases (id, app_id, package_id, stage, status, percent_millis, whitelist, rule, \
         app_versions, mode, force_below, notes, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&release.id)
    .bind(app_id)
    .bind(&release.package.id)
    .bind(release.stage.as_str())
    .bind(release.status.as_str())
    .bind(percent_millis(release.percent))
    .bind(&release.whitelist)
    .bind(&release.rule)
    .bind(&release.app_versions)
    .bind(release.mode.as_str())
    .bind(&release.force_below)
    .bind(&release.notes)
    .bind(release.created_at)
    .bind(release.updated_at)
    .bind(&release.created_by)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}

/// Stores a changed release (everything but its package and creation).
pub async fn update_release(tx: &mut WriteTx, app_id: &str, release: &Release) -> Result<()> {
    sqlx::query(
        "UPDATE releases SET stage = $3, status = $4, percent_millis = $5, whitelist = $6, rule = $7, \
         app_versions = $8, mode = $9, force_below = $10, notes = $11, updated_at = $12 \
         WHERE app_id = $1 AND id = $2",
    )
    .bind(app_id)
    .bind(&release.id)
    .bind(release.stage.as_str())
    .bind(release.status.as_str())
    .bind(percent_millis(release.percent))
    .bind(&release.whitelist)
    .bind(&release.rule)
    .bind(&release.app_versions)
    .bind(release.mode.as_str())
    .bind(&release.force_below)
    .bind(&release.notes)
    .bind(release.updated_at)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}

/// The newest change time of an app's releases, read inside a write.
pub async fn newest_change_in(tx: &mut WriteTx, app_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(updated_at), 0) FROM releases WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_one(&mut ***tx)
    .await?)
}

/// A percentage stored exactly, in thousandths.
pub fn percent_millis(percent: f64) -> i64 {
    (percent * 1000.0).round() as i64
}

/// A delta patch row.
#[derive(Debug, Clone)]
pub struct PatchRow {
    /// The package the patch applies to.
    pub from_package: String,
    /// The package it produces.
    pub to_package: String,
    /// `pending`, `ready` or `failed`.
    pub state: String,
    /// The patch blob, when ready.
    pub sha256: Option<String>,
    /// Its size, when ready.
    pub size: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The base package's version and hash (when listed with them).
    pub base: Option<PatchBase>,
}

/// The package a patch applies to.
#[derive(Debug, Clone)]
pub struct PatchBase {
    /// Its version.
    pub version: String,
    /// Its file's SHA-256.
    pub sha256: String,
}

fn patch_from_row(row: &AnyRow) -> Result<PatchRow> {
    Ok(PatchRow {
        from_package: row.try_get(0)?,
        to_package: row.try_get(1)?,
        state: row.try_get(2)?,
        sha256: row.try_get(3)?,
        size: row.try_get::<Option<i64>, _>(4)?.map(|size| size as u64),
        error: row.try_get(5)?,
        base: None,
    })
}

const PATCH_COLUMNS: &str = "from_package, to_package, state, sha256, size, error";

/// Patches of an app, in any state, with their base package's version and hash.
pub async fn patches(store: &MetaStore, app_id: &str) -> Result<Vec<PatchRow>> {
    let rows = sqlx::query(
        "SELECT d.from_package, d.to_package, d.state, d.sha256, d.size, d.error, p.version, p.sha256 \
         FROM delta_patches d JOIN packages p ON p.id = d.from_package WHERE d.app_id = $1",
    )
    .bind(app_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let mut patch = patch_from_row(row)?;
            let version: String = row.try_get(6)?;
            let sha256: Option<String> = row.try_get(7)?;
            patch.base = sha256.map(|sha256| PatchBase { version, sha256 });
            Ok(patch)
        })
        .collect()
}

/// Patches waiting to be made, oldest first (all apps).
pub async fn pending_patches(store: &MetaStore, limit: u32) -> Result<Vec<(String, PatchRow)>> {
    let rows = sqlx::query(&format!(
        "SELECT {PATCH_COLUMNS}, app_id FROM delta_patches WHERE state = 'pending' \
         ORDER BY created_at LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(6)?, patch_from_row(row)?)))
        .collect()
}

/// Queues a patch unless it exists.
pub async fn queue_patch(
    tx: &mut WriteTx,
    app_id: &str,
    from_package: &str,
    to_package: &str,
    now: i64,
) -> Result<()> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT state FROM delta_patches WHERE from_package = $1 AND to_package = $2",
    )
    .bind(from_package)
    .bind(to_package)
    .fetch_optional(&mut ***tx)
    .await?;
    if exists.is_none() {
        sqlx::query(
            "INSERT INTO delta_patches (from_package, to_package, app_id, state, created_at) \
             VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(from_package)
        .bind(to_package)
        .bind(app_id)
        .bind(now)
        .execute(&mut ***tx)
        .await?;
    }
    Ok(())
}

/// Records a patch's outcome.
pub async fn finish_patch(
    store: &MetaStore,
    from_package: &str,
    to_package: &str,
    outcome: std::result::Result<(String, u64), String>,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let (state, sha256, size, error) = match outcome {
        Ok((sha256, size)) => ("ready", Some(sha256), Some(size as i64), None),
        Err(error) => ("failed", None, None, Some(error)),
    };
    sqlx::query(
        "UPDATE delta_patches SET state = $3, sha256 = $4, size = $5, error = $6 \
         WHERE from_package = $1 AND to_package = $2",
    )
    .bind(from_package)
    .bind(to_package)
    .bind(state)
    .bind(sha256)
    .bind(size)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `sha256` is a package or ready patch of the app with this key
/// (what downloads may serve).
pub async fn is_downloadable(store: &MetaStore, app_key: &str, sha256: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM packages p JOIN apps a ON a.id = p.app_id WHERE a.app_key = $1 AND p.sha256 = $2 \
         UNION ALL SELECT 1 FROM delta_patches d JOIN apps a ON a.id = d.app_id \
         WHERE a.app_key = $1 AND d.sha256 = $2 LIMIT 1",
    )
    .bind(app_key)
    .bind(sha256)
    .fetch_optional(store.pool())
    .await?;
    Ok(found.is_some())
}
