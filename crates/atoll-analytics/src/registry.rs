//! The per-app event registry (declared events and their typed attributes) and
//! analytics settings, stored in the metadata store and cached for ingest.

use crate::{Error, Result};
use atoll_protocol::analytics::{AnalyticsSettings, EventDefinition};
use atoll_store::{MetaStore, WriteTx};
use parking_lot::RwLock;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What ingest needs to know about an app.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// The app's settings.
    pub settings: AnalyticsSettings,
    events: HashMap<String, EventDefinition>,
}

impl Registry {
    /// The declaration of an event, if any.
    pub fn event(&self, event_id: &str) -> Option<&EventDefinition> {
        self.events.get(event_id)
    }

    /// Adds or replaces a declaration.
    pub fn insert(&mut self, definition: EventDefinition) {
        self.events.insert(definition.event_id.clone(), definition);
    }

    /// Every declaration, by name.
    pub fn events(&self) -> Vec<EventDefinition> {
        let mut events: Vec<_> = self.events.values().cloned().collect();
        events.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        events
    }
}

/// How long a node trusts its cached registry; changes made on this node
/// invalidate it at once, changes on another node are seen within this time.
const REGISTRY_TTL: Duration = Duration::from_secs(5);
/// Apps whose registry is cached at most (each entry is small).
const MAX_CACHED_APPS: usize = 10_000;

/// Registries by app id.
#[derive(Debug, Default)]
pub struct RegistryCache {
    entries: RwLock<HashMap<String, (Instant, Arc<Registry>)>>,
}

impl RegistryCache {
    /// The app's registry, from the cache or the store.
    pub async fn get(&self, store: &MetaStore, app_id: &str) -> Result<Arc<Registry>> {
        if let Some((at, registry)) = self.entries.read().get(app_id) {
            if at.elapsed() < REGISTRY_TTL {
                return Ok(registry.clone());
            }
        }
        let registry = Arc::new(load(store, app_id).await?);
        let mut entries = self.entries.write();
        if entries.len() >= MAX_CACHED_APPS {
            entries.retain(|_, (at, _)| at.elapsed() < REGISTRY_TTL);
            if entries.len() >= MAX_CACHED_APPS {
                entries.clear();
            }
        }
        entries.insert(app_id.to_owned(), (Instant::now(), registry.clone()));
        Ok(registry)
    }

    /// Forgets an app's cached registry after a change.
    pub fn invalidate(&self, app_id: &str) {
        self.entries.write().remove(app_id);
    }
}

/// Reads an app's settings and declarations.
pub async fn load(store: &MetaStore, app_id: &str) -> Result<Registry> {
    let mut registry = Registry {
        settings: load_settings(store, app_id).await?,
        ..Registry::default()
    };
    let rows = sqlx::query(
        "SELECT event_id, display_name, description, attributes FROM analytics_events WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_all(store.pool())
    .await?;
    for row in rows {
        let attributes: String = row.try_get(3)?;
        registry.insert(EventDefinition {
            event_id: row.try_get(0)?,
            display_name: row.try_get(1)?,
            description: row.try_get(2)?,
            attributes: serde_json::from_str(&attributes)
                .map_err(|e| Error::Internal(format!("stored attributes: {e}")))?,
        });
    }
    Ok(registry)
}

/// An app's settings (defaults when never set).
pub async fn load_settings(store: &MetaStore, app_id: &str) -> Result<AnalyticsSettings> {
    let row = sqlx::query(
        "SELECT reject_unregistered, retention_days FROM analytics_settings WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        Some(row) => AnalyticsSettings {
            reject_unregistered: row.try_get::<i64, _>(0)? != 0,
            retention_days: row.try_get::<i64, _>(1)?.clamp(1, 3650) as u32,
        },
        None => AnalyticsSettings::default(),
    })
}

/// Writes an app's settings.
pub async fn save_settings(
    tx: &mut WriteTx,
    app_id: &str,
    settings: &AnalyticsSettings,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO analytics_settings (app_id, reject_unregistered, retention_days, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (app_id) DO UPDATE SET \
         reject_unregistered = excluded.reject_unregistered, retention_days = excluded.retention_days, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(i64::from(settings.reject_unregistered))
    .bind(i64::from(settings.retention_days))
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}

/// Creates or replaces a declaration.
pub async fn save_event(
    tx: &mut WriteTx,
    app_id: &str,
    definition: &EventDefinition,
    now: i64,
) -> Result<()> {
    let attributes = serde_json::to_string(&definition.attributes)
        .map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO analytics_events (app_id, event_id, display_name, description, attributes, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_id, event_id) DO UPDATE SET \
         display_name = excluded.display_name, description = excluded.description, \
         attributes = excluded.attributes, updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(&definition.event_id)
    .bind(&definition.display_name)
    .bind(&definition.description)
    .bind(attributes)
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}

/// Removes a declaration; false when there was none.
pub async fn delete_event(tx: &mut WriteTx, app_id: &str, event_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM analytics_events WHERE app_id = $1 AND event_id = $2")
        .bind(app_id)
        .bind(event_id)
        .execute(&mut ***tx)
        .await?;
    Ok(done.rows_affected() > 0)
}
