//! Each workspace's payload-encryption keys: one current key pair per suite
//! (made on first use), and rotated-out keys that still open envelopes until
//! their overlap ends. The ring is cached per workspace and reloaded when the
//! stored keys change (count or newest creation), checked at most every
//! [`KEY_CACHE_TTL`].
//!
//! The secrets are stored like app secrets: in the metadata store, which the
//! operator protects (file permissions, database access); they never leave the
//! server and `Debug` never prints them.

use crate::{Error, Gateway, Result};
use atoll_core::access::Requirement;
use atoll_core::cache::StampedCache;
use atoll_envelope::{ServerKeyPair, ServerKeyRing, Suite};
use atoll_platform::{DeviceCaller, Principal};
use atoll_protocol::gateway::{limits, GatewayKey, RotateGatewayKeys};
use base64::Engine;
use serde_json::json;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// How long a cached ring is used before the stored keys are checked again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Workspaces whose ring is cached at most.
const MAX_RINGS: usize = 10_000;

/// Count and newest creation time of a workspace's keys.
type KeyStamp = (i64, i64);

/// A workspace's keys as loaded: the ring that opens envelopes and what is published.
pub struct LoadedKeys {
    /// Opens envelopes.
    pub ring: ServerKeyRing,
    /// Every unexpired key, current first per suite.
    pub published: Vec<GatewayKey>,
}

/// The per-workspace cache of key rings.
pub(crate) struct KeyCache {
    rings: StampedCache<KeyStamp, LoadedKeys>,
}

impl KeyCache {
    pub(crate) fn new() -> KeyCache {
        KeyCache {
            rings: StampedCache::new(KEY_CACHE_TTL, MAX_RINGS),
        }
    }
}

fn suite_by_name(name: &str) -> Option<Suite> {
    Suite::ALL.into_iter().find(|suite| suite.name() == name)
}

fn published(key: &ServerKeyPair, created_at: i64, expires_at: Option<i64>) -> GatewayKey {
    GatewayKey {
        key_id: key.key_id().to_string(),
        suite: key.suite().name().to_owned(),
        public_key: base64::engine::general_purpose::STANDARD.encode(key.public_key().as_bytes()),
        created_at,
        expires_at,
    }
}

async fn stamp(store: &atoll_store::MetaStore, workspace_id: &str) -> Result<KeyStamp> {
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(MAX(created_at), 0) FROM gateway_keys WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_one(store.pool())
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Loads a workspace's keys; `now_ms` decides which previous keys have expired.
/// (The ring counts in seconds, the store in milliseconds like every time.)
async fn load(
    store: &atoll_store::MetaStore,
    workspace_id: &str,
    now_ms: i64,
) -> Result<LoadedKeys> {
    let rows = sqlx::query(
        "SELECT key_pair, created_at, expires_at FROM gateway_keys WHERE workspace_id = $1 ORDER BY created_at DESC",
    )
    .bind(workspace_id)
    .fetch_all(store.pool())
    .await?;
    let mut ring = ServerKeyRing::default();
    let mut keys = Vec::new();
    for row in rows {
        let encoded: String = row.try_get(0)?;
        let bytes = zeroize_hex(&encoded)?;
        let key = ServerKeyPair::from_bytes(&bytes)
            .map_err(|error| Error::Internal(format!("stored gateway key: {error}")))?;
        let created_at: i64 = row.try_get(1)?;
        let expires_at: Option<i64> = row.try_get(2)?;
        if expires_at.is_some_and(|expires_at| expires_at <= now_ms) {
            continue;
        }
        keys.push((key, created_at, expires_at));
    }
    let mut published_keys = Vec::new();
    for (key, created_at, expires_at) in keys {
        published_keys.push(published(&key, created_at, expires_at));
        match expires_at {
            None => ring.rotate(key, now_ms / 1000),
            Some(expires_at) => ring.add_previous(key, expires_at / 1000),
        }
    }
    published_keys.sort_by(|a, b| {
        (a.suite.as_str(), a.expires_at.is_some(), -a.created_at).cmp(&(
            b.suite.as_str(),
            b.expires_at.is_some(),
            -b.created_at,
        ))
    });
    Ok(LoadedKeys {
        ring,
        published: published_keys,
    })
}

/// Decodes a stored key pair; the decoded secret is wiped when dropped.
fn zeroize_hex(encoded: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    hex::decode(encoded)
        .map(zeroize::Zeroizing::new)
        .map_err(|error| Error::Internal(format!("stored gateway key is not hex: {error}")))
}

impl Gateway {
    /// The workspace's keys, making the current key of every suite on first use.
    pub async fn workspace_keys(&self, workspace_id: &str) -> Result<Arc<LoadedKeys>> {
        let store = self.platform.store();
        let now = self.clock.now_ms();
        let keys = self
            .keys
            .rings
            .get(
                workspace_id,
                || stamp(store, workspace_id),
                |_| load(store, workspace_id, now),
            )
            .await?;
        if Suite::ALL
            .iter()
            .all(|suite| keys.ring.current(*suite).is_some())
        {
            return Ok(keys);
        }
        self.add_missing_keys(workspace_id).await?;
        self.keys.rings.remove(workspace_id);
        self.keys
            .rings
            .get(
                workspace_id,
                || stamp(store, workspace_id),
                |_| load(store, workspace_id, now),
            )
            .await
    }

    /// Makes a current key for each suite that has none (inside one write
    /// transaction, so two nodes cannot both make one).
    async fn add_missing_keys(&self, workspace_id: &str) -> Result<()> {
        let mut tx = self.platform.store().begin_write().await?;
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT suite FROM gateway_keys WHERE workspace_id = $1 AND expires_at IS NULL",
        )
        .bind(workspace_id)
        .fetch_all(&mut **tx)
        .await?;
        let now = self.clock.now_ms();
        for suite in Suite::ALL {
            if present.iter().any(|name| name == suite.name()) {
                continue;
            }
            insert_key(&mut tx, workspace_id, &ServerKeyPair::generate(suite), now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The workspace's published keys (admins configure apps with them).
    pub async fn list_keys(&self, principal: &Principal, slug: &str) -> Result<Vec<GatewayKey>> {
        let ctx = self
            .platform
            .authorize(principal, slug, Requirement::READ)
            .await?;
        Ok(self
            .workspace_keys(&ctx.workspace_id)
            .await?
            .published
            .clone())
    }

    /// The keys a device may seal to (its app's workspace).
    pub async fn device_keys(&self, caller: &DeviceCaller) -> Result<Vec<GatewayKey>> {
        Ok(self
            .workspace_keys(&caller.workspace_id)
            .await?
            .published
            .clone())
    }

    /// Rotates the current key of one suite or all: the previous key keeps
    /// opening envelopes for the overlap; keys expired before now are deleted.
    pub async fn rotate_keys(
        &self,
        principal: &Principal,
        slug: &str,
        request: RotateGatewayKeys,
    ) -> Result<Vec<GatewayKey>> {
        let suites: Vec<Suite> = match &request.suite {
            None => Suite::ALL.to_vec(),
            Some(name) => vec![suite_by_name(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "suite: one of {}",
                    Suite::ALL.map(Suite::name).join(", ")
                ))
            })?],
        };
        let overlap = i64::from(
            request
                .overlap_secs
                .unwrap_or(limits::DEFAULT_KEY_OVERLAP_SECS),
        );
        if overlap > 365 * 86_400 {
            return Err(Error::Invalid("overlap_secs: at most a year".into()));
        }
        let ctx = self
            .platform
            .authorize(principal, slug, Requirement::ADMIN)
            .await?;
        let now = self.clock.now_ms();
        let mut tx = self.platform.store().begin_write().await?;
        sqlx::query("DELETE FROM gateway_keys WHERE workspace_id = $1 AND expires_at <= $2")
            .bind(&ctx.workspace_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let mut rotated = Vec::new();
        for suite in suites {
            sqlx::query(
                "UPDATE gateway_keys SET expires_at = $1 WHERE workspace_id = $2 AND suite = $3 AND expires_at IS NULL",
            )
            .bind(now + overlap * 1000)
            .bind(&ctx.workspace_id)
            .bind(suite.name())
            .execute(&mut **tx)
            .await?;
            let key = ServerKeyPair::generate(suite);
            insert_key(&mut tx, &ctx.workspace_id, &key, now).await?;
            rotated.push(key.key_id().to_string());
        }
        self.platform
            .commit_audited(
                tx,
                &ctx,
                "gateway.keys.rotate",
                "gateway_keys",
                &ctx.workspace_slug,
                json!({ "new_keys": rotated, "overlap_secs": overlap }),
            )
            .await?;
        self.keys.rings.remove(&ctx.workspace_id);
        Ok(self
            .workspace_keys(&ctx.workspace_id)
            .await?
            .published
            .clone())
    }
}

async fn insert_key(
    tx: &mut atoll_store::WriteTx,
    workspace_id: &str,
    key: &ServerKeyPair,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO gateway_keys (workspace_id, key_id, suite, key_pair, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(workspace_id)
    .bind(key.key_id().to_string())
    .bind(key.suite().name())
    .bind(hex::encode(&key.to_bytes()[..]))
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}
