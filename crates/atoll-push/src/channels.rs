//! Vendor channels of an app (credentials stored sealed, never returned) and
//! per-app push settings, plus the **lanes** the dispatcher sends through: one
//! per app and vendor, each with the vendor client, a concurrency cap, a rate
//! limit and a pause set when the vendor answers 429, so that one throttled
//! vendor slows only itself.

use crate::{Error, PushService, Result};
use atoll_core::access::Requirement;
use atoll_platform::Principal;
use atoll_protocol::device::PushChannel;
use atoll_protocol::push::{ChannelCredentials, ChannelInfo, PushSettings};
use atoll_push_vendors::PushProvider;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use serde_json::json;
use sqlx::Row;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a lane or settings read from the store is used before it is
/// checked again (another node's change is seen within this).
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Cached lanes and settings at most.
const MAX_CACHED: usize = 10_000;

/// One app's vendor: the client and its limits.
pub struct Lane {
    /// The vendor client.
    pub provider: Arc<dyn PushProvider>,
    /// Requests in flight.
    pub permits: Arc<Semaphore>,
    limiter: Option<DefaultDirectRateLimiter>,
    paused_until: AtomicI64,
    stamp: i64,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// Waits for the rate limit.
    pub async fn rate(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
    }

    /// Until when (ms) the vendor asked to pause; 0 when it did not.
    pub fn paused_until(&self) -> i64 {
        self.paused_until.load(Ordering::Relaxed)
    }

    /// The vendor asked to slow down: no sends before `until` (ms).
    pub fn pause(&self, until: i64) {
        self.paused_until.fetch_max(until, Ordering::Relaxed);
    }
}

/// Per-app settings as the dispatcher uses them.
#[derive(Debug, Clone, Default)]
pub struct AppSettings {
    /// The settings.
    pub settings: PushSettings,
    /// The receipt signing secret, opened.
    pub receipt_secret: Option<String>,
}

impl AppSettings {
    /// Whether any fatigue cap is set.
    pub fn has_caps(&self) -> bool {
        let s = &self.settings;
        s.cap_per_hour > 0 || s.cap_per_day > 0 || s.cap_per_week > 0
    }
}

type LaneKey = (String, PushChannel);
/// A cached lane (or the knowledge that there is none) and when it was read.
type CachedLane = (Instant, Option<Arc<Lane>>);

/// The caches of lanes and settings.
#[derive(Default)]
pub struct Channels {
    lanes: Mutex<HashMap<LaneKey, CachedLane>>,
    settings: Mutex<HashMap<String, (Instant, Arc<AppSettings>)>>,
}

fn sealed_context(app_id: &str, channel: PushChannel) -> String {
    format!("push-channel:{app_id}:{}", channel.as_str())
}

fn receipt_context(app_id: &str) -> String {
    format!("push-receipt:{app_id}")
}

/// The non-secret identifiers of a vendor's credentials, for the console.
fn summary_of(credentials: &serde_json::Value) -> String {
    const VISIBLE: &[&str] = &[
        "team_id",
        "key_id",
        "topic",
        "sandbox",
        "project_id",
        "client_email",
        "app_id",
    ];
    let source = credentials
        .get("service_account")
        .filter(|v| v.is_object())
        .unwrap_or(credentials);
    let mut parts = Vec::new();
    for key in VISIBLE {
        if let Some(value) = source.get(*key).or_else(|| credentials.get(*key)) {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{key}={text}"));
        }
    }
    parts.join(" ")
}

/// Parses a channel name from a path.
pub fn parse_channel(name: &str) -> Result<PushChannel> {
    PushChannel::parse(name).ok_or_else(|| Error::NotFound(format!("push channel '{name}'")))
}

impl PushService {
    /// The app's configured vendor channels, without secrets.
    pub async fn list_channels(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<ChannelInfo>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT channel, summary, rate_per_sec, concurrency, updated_at FROM push_channels \
             WHERE app_id = $1 ORDER BY channel",
        )
        .bind(&access.app_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let channel: String = row.try_get("channel")?;
                Ok(ChannelInfo {
                    channel: PushChannel::parse(&channel)
                        .ok_or_else(|| Error::Internal(format!("stored channel {channel}")))?,
                    summary: row.try_get("summary")?,
                    rate_per_sec: row.try_get::<i64, _>("rate_per_sec")? as u32,
                    concurrency: row.try_get::<i64, _>("concurrency")? as u32,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Stores a vendor's credentials (checked by building the client first).
    pub async fn put_channel(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        channel: PushChannel,
        body: ChannelCredentials,
    ) -> Result<ChannelInfo> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        atoll_push_vendors::validate_credentials(channel, &body.credentials)
            .map_err(|error| Error::Invalid(error.to_string()))?;
        let plaintext = serde_json::to_vec(&body.credentials)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let sealed = self
            .secrets
            .seal(&sealed_context(&access.app_id, channel), &plaintext);
        let summary = summary_of(&body.credentials);
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO push_channels (app_id, channel, sealed, summary, rate_per_sec, concurrency, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, channel) DO UPDATE SET \
             sealed = excluded.sealed, summary = excluded.summary, rate_per_sec = excluded.rate_per_sec, \
             concurrency = excluded.concurrency, updated_at = excluded.updated_at",
        )
        .bind(&access.app_id)
        .bind(channel.as_str())
        .bind(&sealed)
        .bind(&summary)
        .bind(body.rate_per_sec as i64)
        .bind(body.concurrency as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.channel.put",
                "push_channel",
                &format!("{app_key}/{}", channel.as_str()),
                json!({ "summary": summary }),
            )
            .await?;
        self.channels
            .lanes
            .lock()
            .remove(&(access.app_id.clone(), channel));
        Ok(ChannelInfo {
            channel,
            summary,
            rate_per_sec: body.rate_per_sec,
            concurrency: body.concurrency,
            updated_at: now,
        })
    }

    /// Removes a vendor's credentials.
    pub async fn delete_channel(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        channel: PushChannel,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        let mut tx = self.store().begin_write().await?;
        let deleted = sqlx::query("DELETE FROM push_channels WHERE app_id = $1 AND channel = $2")
            .bind(&access.app_id)
            .bind(channel.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound(format!(
                "push channel '{}'",
                channel.as_str()
            )));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.channel.delete",
                "push_channel",
                &format!("{app_key}/{}", channel.as_str()),
                json!({}),
            )
            .await?;
        self.channels.lanes.lock().remove(&(access.app_id, channel));
        Ok(())
    }

    /// The app's lane for a vendor, or `None` when the app has no credentials
    /// for it.
    pub(crate) async fn lane(&self, app_id: &str, channel: PushChannel) -> Option<Arc<Lane>> {
        let key = (app_id.to_owned(), channel);
        let cached = self.channels.lanes.lock().get(&key).cloned();
        if let Some((at, lane)) = &cached {
            if at.elapsed() < CACHE_TTL {
                return lane.clone();
            }
        }
        let loaded = match self
            .load_lane(app_id, channel, cached.and_then(|c| c.1))
            .await
        {
            Ok(lane) => lane,
            Err(error) => {
                tracing::warn!(%error, app_id, channel = channel.as_str(), "push channel unusable");
                None
            }
        };
        let mut lanes = self.channels.lanes.lock();
        if lanes.len() >= MAX_CACHED {
            lanes.clear();
        }
        lanes.insert(key, (Instant::now(), loaded.clone()));
        loaded
    }

    async fn load_lane(
        &self,
        app_id: &str,
        channel: PushChannel,
        previous: Option<Arc<Lane>>,
    ) -> Result<Option<Arc<Lane>>> {
        let Some(row) = sqlx::query(
            "SELECT sealed, rate_per_sec, concurrency, updated_at FROM push_channels \
             WHERE app_id = $1 AND channel = $2",
        )
        .bind(app_id)
        .bind(channel.as_str())
        .fetch_optional(self.store().pool())
        .await?
        else {
            return Ok(None);
        };
        let stamp: i64 = row.try_get("updated_at")?;
        if let Some(previous) = previous.filter(|p| p.stamp == stamp) {
            return Ok(Some(previous));
        }
        let sealed: String = row.try_get("sealed")?;
        let plaintext = self
            .secrets
            .open(&sealed_context(app_id, channel), &sealed)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let credentials: serde_json::Value = serde_json::from_slice(&plaintext)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let provider = atoll_push_vendors::build_provider(channel, &credentials, &self.config.http)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let concurrency = match row.try_get::<i64, _>("concurrency")? {
            0 => self.config.default_concurrency,
            n => n as u32,
        };
        let rate = match row.try_get::<i64, _>("rate_per_sec")? {
            0 => self.config.default_rate_per_sec,
            n => n as u32,
        };
        Ok(Some(Arc::new(Lane {
            provider,
            permits: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
            limiter: NonZeroU32::new(rate).map(|rate| RateLimiter::direct(Quota::per_second(rate))),
            paused_until: AtomicI64::new(0),
            stamp,
        })))
    }

    /// The app's push settings (receipt secret hidden as `"set"`).
    pub async fn get_settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<PushSettings> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let settings = self.load_settings(&access.app_id).await?;
        let mut shown = settings.settings.clone();
        shown.receipt_secret = settings.receipt_secret.as_ref().map(|_| "set".to_owned());
        Ok(shown)
    }

    /// Replaces the app's push settings. A `receipt_secret` of `"set"` keeps
    /// the stored one.
    pub async fn put_settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        mut settings: PushSettings,
    ) -> Result<PushSettings> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        use atoll_protocol::push::limits::MAX_FATIGUE_CAP;
        if [
            settings.cap_per_hour,
            settings.cap_per_day,
            settings.cap_per_week,
        ]
        .iter()
        .any(|cap| *cap > MAX_FATIGUE_CAP)
        {
            return Err(Error::Invalid(format!(
                "fatigue caps are at most {MAX_FATIGUE_CAP}"
            )));
        }
        if let Some(url) = &settings.receipt_url {
            let parsed = url::Url::parse(url)
                .map_err(|_| Error::Invalid(format!("receipt_url '{url}' is not a URL")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::Invalid("receipt_url must be http or https".into()));
            }
        }
        let secret = settings.receipt_secret.take();
        let sealed_secret = match secret.as_deref() {
            Some("set") => {
                sqlx::query("SELECT receipt_secret FROM push_settings WHERE app_id = $1")
                    .bind(&access.app_id)
                    .fetch_optional(self.store().pool())
                    .await?
                    .and_then(|row| row.try_get::<Option<String>, _>(0).ok().flatten())
            }
            Some(secret) if secret.len() < 16 => {
                return Err(Error::Invalid(
                    "receipt_secret must be at least 16 characters".into(),
                ))
            }
            Some(secret) => Some(
                self.secrets
                    .seal(&receipt_context(&access.app_id), secret.as_bytes()),
            ),
            None => None,
        };
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO push_settings (app_id, settings, receipt_secret, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id) DO UPDATE SET settings = excluded.settings, \
             receipt_secret = excluded.receipt_secret, updated_at = excluded.updated_at",
        )
        .bind(&access.app_id)
        .bind(serde_json::to_string(&settings).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(&sealed_secret)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.settings.put",
                "push_settings",
                app_key,
                json!({ "caps": [settings.cap_per_hour, settings.cap_per_day, settings.cap_per_week],
                        "receipts": settings.receipt_url.is_some() }),
            )
            .await?;
        self.channels.settings.lock().remove(&access.app_id);
        settings.receipt_secret = sealed_secret.map(|_| "set".to_owned());
        Ok(settings)
    }

    /// The app's settings, cached briefly.
    pub(crate) async fn settings_of(&self, app_id: &str) -> Arc<AppSettings> {
        if let Some((at, settings)) = self.channels.settings.lock().get(app_id) {
            if at.elapsed() < CACHE_TTL {
                return settings.clone();
            }
        }
        let settings = Arc::new(self.load_settings(app_id).await.unwrap_or_else(|error| {
            tracing::warn!(%error, app_id, "could not read push settings");
            AppSettings::default()
        }));
        let mut cache = self.channels.settings.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(app_id.to_owned(), (Instant::now(), settings.clone()));
        settings
    }

    async fn load_settings(&self, app_id: &str) -> Result<AppSettings> {
        let Some(row) =
            sqlx::query("SELECT settings, receipt_secret FROM push_settings WHERE app_id = $1")
                .bind(app_id)
                .fetch_optional(self.store().pool())
                .await?
        else {
            return Ok(AppSettings::default());
        };
        let settings: PushSettings = serde_json::from_str(&row.try_get::<String, _>(0)?)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let receipt_secret = match row.try_get::<Option<String>, _>(1)? {
            Some(sealed) => Some(
                String::from_utf8(
                    self.secrets
                        .open(&receipt_context(app_id), &sealed)
                        .map_err(|error| Error::Internal(error.to_string()))?,
                )
                .map_err(|error| Error::Internal(error.to_string()))?,
            ),
            None => None,
        };
        Ok(AppSettings {
            settings,
            receipt_secret,
        })
    }
}
