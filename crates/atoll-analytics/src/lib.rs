//! Atoll's analytics module: what devices track, and the reports app teams read.
//!
//! - **Ingest** ([`AnalyticsService::ingest`]): a signed batch from a device is
//!   validated as a unit ([`ingest`]: limits, names, the time rule, the app's
//!   registry), given the device's context from the device registry (platform,
//!   versions, channel, region, network, bound user), and appended to the event
//!   store, which answers once the rows are in its write-ahead log on disk.
//! - **Registry** ([`registry`]): declared events with typed attributes, and per-app
//!   settings (refuse undeclared events, retention days).
//! - **Reports** ([`reports`]): overview, real time, retention, behaviour, pages and
//!   paths, events, funnels, distributions, timelines. Distinct counts come from the
//!   store's day bitmaps; the rest is SQL over the app's events for the range.
//!   Answers are cached per app and range, keyed by the store's data version of
//!   those days, so new data invalidates exactly the reports it changes.
//! - **Privacy**: export or delete everything of one device or user; retention
//!   drops days older than the app's setting.
//!
//! Every admin operation authorises itself through the platform service
//! (`authorize_app`), and every mutation is audited in its transaction.
#![warn(missing_docs)]

pub mod dates;
pub mod funnel;
pub mod ingest;
pub mod registry;
pub mod reports;
pub mod simulate;
pub mod sql;

use atoll_core::access::Requirement;
use atoll_core::clock::Clock;
use atoll_events::{Day, EventStore, Subject};
use atoll_platform::{AppAccess, DeviceCaller, PlatformService, Principal};
use atoll_protocol::analytics::*;
use atoll_protocol::events::{EventBatch, EventBatchResponse, BUILT_IN_EVENTS, LOGIN, LOGOUT};
use atoll_protocol::ErrorCode;
use ingest::{IngestLimits, Profile, Refusal, Source};
use parking_lot::Mutex;
use registry::RegistryCache;
use reports::Scope;
use serde_json::json;
use sqlx::Row;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What can go wrong in analytics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform operation failed (authorisation, lookup).
    #[error(transparent)]
    Platform(#[from] atoll_platform::Error),
    /// The event store failed or is overloaded.
    #[error(transparent)]
    Events(#[from] atoll_events::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// A batch broke an ingest rule.
    #[error("{}", .0.detail)]
    Refused(Refusal),
    /// A request parameter is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists already.
    #[error("{0}")]
    Conflict(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Store(atoll_store::Error::Database(error))
    }
}

impl Error {
    pub(crate) fn query(error: datafusion::error::DataFusionError) -> Error {
        Error::Events(atoll_events::Error::Query(error))
    }

    pub(crate) fn arrow(error: datafusion::arrow::error::ArrowError) -> Error {
        Error::Events(atoll_events::Error::Arrow(error))
    }

    /// The catalogue code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Platform(error) => error.code(),
            Error::Events(atoll_events::Error::Overloaded(_)) => ErrorCode::Unavailable,
            Error::Events(_) | Error::Store(_) | Error::Internal(_) => ErrorCode::Internal,
            Error::Refused(refusal) => refusal.code,
            Error::Invalid(_) => ErrorCode::ValidationFailed,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
        }
    }

    /// Seconds a client should wait before retrying, for overload.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Platform(error) => error.retry_after_secs(),
            Error::Events(atoll_events::Error::Overloaded(_)) => Some(1),
            _ => None,
        }
    }

    /// Whether the detail is for the log only (storage and bugs).
    pub fn is_internal(&self) -> bool {
        match self {
            Error::Platform(error) => error.is_internal(),
            Error::Events(atoll_events::Error::Overloaded(_)) => false,
            Error::Events(_) | Error::Store(_) | Error::Internal(_) => true,
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a device's context is reused before it is read again.
const PROFILE_TTL: Duration = Duration::from_secs(5);
/// Devices whose context is cached at most.
const MAX_PROFILES: usize = 100_000;
/// Report answers cached at most.
const MAX_CACHED_REPORTS: usize = 512;
/// The longest a cached report is reused even if its days did not change
/// (the registry or settings may have).
const REPORT_TTL: Duration = Duration::from_secs(300);

/// A cached answer: the data version it was computed at, when, and the value.
type CachedReport = (u64, Instant, Arc<dyn Any + Send + Sync>);

/// A device's context and when it was read, by (app id, device id).
type ProfileCache = HashMap<(String, String), (Instant, Arc<Profile>)>;

/// Cached answers, keyed by app, report and parameters, valid while the data
/// version of their days is unchanged.
#[derive(Default)]
struct ReportCache {
    entries: Mutex<HashMap<String, CachedReport>>,
}

impl ReportCache {
    fn get<T: Clone + Send + Sync + 'static>(&self, key: &str, version: u64) -> Option<T> {
        let entries = self.entries.lock();
        let (v, at, value) = entries.get(key)?;
        if *v != version || at.elapsed() > REPORT_TTL {
            return None;
        }
        value.downcast_ref::<T>().cloned()
    }

    fn put<T: Send + Sync + 'static>(&self, key: String, version: u64, value: T) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_CACHED_REPORTS {
            // Drop the oldest half: simple, and the cache refills from the reports asked again.
            let mut ages: Vec<(Instant, String)> = entries
                .iter()
                .map(|(k, (_, at, _))| (*at, k.clone()))
                .collect();
            ages.sort();
            for (_, key) in ages.into_iter().take(MAX_CACHED_REPORTS / 2) {
                entries.remove(&key);
            }
        }
        entries.insert(key, (version, Instant::now(), Arc::new(value)));
    }
}

/// The analytics service.
pub struct AnalyticsService {
    platform: PlatformService,
    events: EventStore,
    clock: Arc<dyn Clock>,
    limits: IngestLimits,
    registries: RegistryCache,
    profiles: Mutex<ProfileCache>,
    cache: ReportCache,
}

impl std::fmt::Debug for AnalyticsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsService").finish_non_exhaustive()
    }
}

impl AnalyticsService {
    /// A service over the platform and an open event store.
    pub fn new(
        platform: PlatformService,
        events: EventStore,
        clock: Arc<dyn Clock>,
        limits: IngestLimits,
    ) -> AnalyticsService {
        AnalyticsService {
            platform,
            events,
            clock,
            limits,
            registries: RegistryCache::default(),
            profiles: Mutex::new(HashMap::new()),
            cache: ReportCache::default(),
        }
    }

    /// The event store.
    pub fn events(&self) -> &EventStore {
        &self.events
    }

    fn today(&self) -> Day {
        atoll_events::day_of(self.clock.now_ms())
    }

    async fn profile(&self, caller: &DeviceCaller) -> Result<Arc<Profile>> {
        let key = (caller.app_id.clone(), caller.device_id.clone());
        if let Some((at, profile)) = self.profiles.lock().get(&key) {
            if at.elapsed() < PROFILE_TTL {
                return Ok(profile.clone());
            }
        }
        let profile = self
            .platform
            .device_profile(caller)
            .await?
            .ok_or(atoll_platform::Error::UnknownDevice)?;
        let mut profiles = self.profiles.lock();
        if profiles.len() >= MAX_PROFILES {
            profiles.retain(|_, (at, _)| at.elapsed() < PROFILE_TTL);
            if profiles.len() >= MAX_PROFILES {
                profiles.clear();
            }
        }
        profiles.insert(key, (Instant::now(), profile.clone()));
        Ok(profile)
    }

    /// Stores a device's batch: all of it, durably, or none of it.
    pub async fn ingest(
        &self,
        caller: &DeviceCaller,
        batch: EventBatch,
    ) -> Result<EventBatchResponse> {
        let now = self.clock.now_ms();
        let registry = self
            .registries
            .get(self.platform.store(), &caller.app_id)
            .await?;
        let profile = self.profile(caller).await?;
        let rows = ingest::build_rows(
            batch,
            &profile,
            &registry,
            &self.limits,
            now,
            Source::Device,
        )
        .map_err(Error::Refused)?;
        // A sign-in or sign-out in the batch changes the device's account for the
        // batches that follow, before the registry is read again.
        if let Some(last) = rows
            .iter()
            .rev()
            .find(|r| r.event_id == LOGIN || r.event_id == LOGOUT)
        {
            let user = if last.event_id == LOGIN {
                last.user_id.as_deref().map(str::to_owned)
            } else {
                None
            };
            if user != profile.user_id {
                let mut updated = (*profile).clone();
                updated.user_id = user;
                self.profiles.lock().insert(
                    (caller.app_id.clone(), caller.device_id.clone()),
                    (Instant::now(), Arc::new(updated)),
                );
            }
        }
        let appended = self.events.append(&caller.app_id, rows).await?;
        Ok(EventBatchResponse {
            accepted: appended.accepted,
            duplicates: appended.duplicates,
            server_time: now,
        })
    }

    /// Stores past events of one device with their own times (admin only; demo
    /// data and imports). The device need not be registered.
    pub async fn backfill(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        batch: BackfillBatch,
    ) -> Result<EventBatchResponse> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        let device = &batch.device;
        if device.device_id.is_empty() || device.device_id.chars().count() > 128 {
            return Err(Error::Invalid(
                "device.device_id must be 1-128 characters".into(),
            ));
        }
        let profile = Profile {
            device_id: device.device_id.clone(),
            app_key: app_key.to_owned(),
            user_id: device.user_id.clone(),
            platform: device
                .platform
                .as_deref()
                .and_then(atoll_protocol::device::Platform::parse),
            os_version: device.os_version.clone(),
            model: device.model.clone(),
            app_version: device.app_version.clone(),
            channel: device.channel.clone(),
            region: device.region.clone(),
            network: device.network.clone(),
            ..Profile::default()
        };
        let registry = self
            .registries
            .get(self.platform.store(), &access.app_id)
            .await?;
        let now = self.clock.now_ms();
        let events = EventBatch {
            events: batch.events,
            network: None,
        };
        let rows = ingest::build_rows(
            events,
            &profile,
            &registry,
            &self.limits,
            now,
            Source::Backfill,
        )
        .map_err(Error::Refused)?;
        let appended = self.events.append(&access.app_id, rows).await?;
        Ok(EventBatchResponse {
            accepted: appended.accepted,
            duplicates: appended.duplicates,
            server_time: now,
        })
    }

    /// Whether the app has any event (the demo seeds only an empty app).
    pub async fn has_events(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<bool> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        Ok(self
            .events
            .with_aggregates(&access.app_id, |a| !a.devices.is_empty())
            .unwrap_or(false))
    }

    async fn scope(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<(AppAccess, Scope)> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let today = self.today();
        let (from, to) = dates::range(filter.from.as_deref(), filter.to.as_deref(), today)?;
        let scope = Scope {
            app: access.app_id.clone(),
            from,
            to,
            platform: filter.platform.clone().filter(|p| !p.is_empty()),
            app_version: filter.app_version.clone().filter(|v| !v.is_empty()),
            today,
        };
        Ok((access, scope))
    }

    fn cache_key(
        &self,
        report: &str,
        scope: &Scope,
        extra: &impl serde::Serialize,
    ) -> (String, u64) {
        let key = format!(
            "{}|{report}|{}|{}|{:?}|{:?}|{}|{}",
            scope.app,
            scope.from,
            scope.to,
            scope.platform,
            scope.app_version,
            scope.today,
            serde_json::to_string(extra).unwrap_or_default()
        );
        let version = self
            .events
            .version(&scope.app, scope.from - 30..=scope.to + 31);
        (key, version)
    }

    async fn cached<T, F>(
        &self,
        report: &str,
        scope: &Scope,
        extra: &impl serde::Serialize,
        compute: F,
    ) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<T>>,
    {
        let (key, version) = self.cache_key(report, scope, extra);
        if let Some(hit) = self.cache.get::<T>(&key, version) {
            metrics::counter!("atoll_analytics_report_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("atoll_analytics_report_cache_total", "result" => "miss").increment(1);
        let value = compute.await?;
        self.cache.put(key, version, value.clone());
        Ok(value)
    }

    /// The overview report.
    pub async fn overview(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<OverviewReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        self.cached(
            "overview",
            &scope,
            &(),
            reports::overview(&self.events, &scope),
        )
        .await
    }

    /// Active and new devices and accounts by day (DAU, WAU, MAU, UV), from the
    /// day sets alone: no event is read, so it is not cached either.
    pub async fn active_users(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<ActiveReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        Ok(reports::active_users(&self.events, &scope))
    }

    /// The last 30 minutes (not cached: it moves every minute).
    pub async fn realtime(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<RealtimeReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        reports::realtime(&self.events, &scope, self.clock.now_ms()).await
    }

    /// Cohort retention.
    pub async fn retention(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
        query: &RetentionQuery,
    ) -> Result<RetentionReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        reports::retention(&self.events, &scope, query)
    }

    /// Sessions, launches, hours.
    pub async fn behaviour(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<BehaviourReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        self.cached(
            "behaviour",
            &scope,
            &(),
            reports::behaviour(&self.events, &scope),
        )
        .await
    }

    /// Pages.
    pub async fn pages(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<PagesReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        self.cached("pages", &scope, &(), reports::pages(&self.events, &scope))
            .await
    }

    /// Access paths from a page.
    pub async fn paths(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
        query: &PathQuery,
    ) -> Result<PathReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        self.cached(
            "paths",
            &scope,
            query,
            reports::paths(&self.events, &scope, query),
        )
        .await
    }

    /// Every event name with counts, flagged registered or not.
    pub async fn events_report(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<EventsReport> {
        let (access, scope) = self.scope(principal, slug, app_key, filter).await?;
        let registry = self
            .registries
            .get(self.platform.store(), &access.app_id)
            .await?;
        let rows = self
            .cached("events", &scope, &(), reports::events(&self.events, &scope))
            .await?;
        Ok(EventsReport {
            events: rows
                .into_iter()
                .map(|(event_id, count, devices, users)| EventStats {
                    registered: BUILT_IN_EVENTS.contains(&event_id.as_str())
                        || registry.event(&event_id).is_some(),
                    event_id,
                    count,
                    devices,
                    users,
                })
                .collect(),
        })
    }

    /// One event in detail.
    pub async fn event_detail(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        event_id: &str,
        filter: &ReportFilter,
        query: &EventQuery,
    ) -> Result<EventDetail> {
        let (access, scope) = self.scope(principal, slug, app_key, filter).await?;
        let registry = self
            .registries
            .get(self.platform.store(), &access.app_id)
            .await?;
        let (count, devices, users, trend, groups) = self
            .cached(
                "event",
                &scope,
                &(event_id, query),
                reports::event_detail(&self.events, &scope, event_id, query),
            )
            .await?;
        Ok(EventDetail {
            stats: EventStats {
                event_id: event_id.to_owned(),
                count,
                devices,
                users,
                registered: BUILT_IN_EVENTS.contains(&event_id)
                    || registry.event(event_id).is_some(),
            },
            trend,
            groups,
        })
    }

    /// A funnel computed now.
    pub async fn funnel(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: &FunnelRequest,
    ) -> Result<FunnelReport> {
        let (_, scope) = self
            .scope(principal, slug, app_key, &request.filter)
            .await?;
        self.cached(
            "funnel",
            &scope,
            &request.funnel,
            reports::funnel(&self.events, &scope, &request.funnel),
        )
        .await
    }

    /// A funnel whose definition arrives as JSON text (the GET form of the API):
    /// authorised first, so a stranger learns nothing from a parse error.
    pub async fn funnel_json(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        definition: Option<&str>,
        filter: ReportFilter,
    ) -> Result<FunnelReport> {
        self.platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let definition = definition
            .ok_or_else(|| Error::Invalid("the definition parameter is missing".into()))?;
        let funnel: FunnelDefinition = serde_json::from_str(definition)
            .map_err(|error| Error::Invalid(format!("definition is not a funnel: {error}")))?;
        self.funnel(principal, slug, app_key, &FunnelRequest { funnel, filter })
            .await
    }

    /// Active devices by a dimension.
    pub async fn distribution(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        dimension: &str,
        filter: &ReportFilter,
    ) -> Result<DistributionReport> {
        let (_, scope) = self.scope(principal, slug, app_key, filter).await?;
        self.cached(
            "distribution",
            &scope,
            &dimension,
            reports::distribution(&self.events, &scope, dimension),
        )
        .await
    }

    /// A device's or user's newest events (over the last 90 days).
    pub async fn timeline(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        query: &TimelineQuery,
    ) -> Result<TimelineReport> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let today = self.today();
        let scope = Scope {
            app: access.app_id,
            from: today - 90,
            to: today + 1,
            platform: None,
            app_version: None,
            today,
        };
        reports::timeline(&self.events, &scope, query).await
    }

    /// The declared events of an app.
    pub async fn list_definitions(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<EventDefinition>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        Ok(registry::load(self.platform.store(), &access.app_id)
            .await?
            .events())
    }

    /// Declares (or redeclares) an event.
    pub async fn define_event(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        definition: EventDefinition,
    ) -> Result<EventDefinition> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        validate_definition(&definition, &self.limits)?;
        let mut tx = self.platform.store().begin_write().await?;
        registry::save_event(&mut tx, &access.app_id, &definition, self.clock.now_ms()).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.event.define",
                "event",
                &format!("{app_key}/{}", definition.event_id),
                json!({"attributes": definition.attributes.len()}),
            )
            .await?;
        self.registries.invalidate(&access.app_id);
        Ok(definition)
    }

    /// Removes an event's declaration (its data stays).
    pub async fn undefine_event(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        event_id: &str,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        if !registry::delete_event(&mut tx, &access.app_id, event_id).await? {
            return Err(Error::NotFound(format!("event definition '{event_id}'")));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.event.undefine",
                "event",
                &format!("{app_key}/{event_id}"),
                json!({}),
            )
            .await?;
        self.registries.invalidate(&access.app_id);
        Ok(())
    }

    /// An app's analytics settings.
    pub async fn settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<AnalyticsSettings> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        registry::load_settings(self.platform.store(), &access.app_id).await
    }

    /// Changes an app's analytics settings.
    pub async fn update_settings(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        settings: AnalyticsSettings,
    ) -> Result<AnalyticsSettings> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        if !(1..=3650).contains(&settings.retention_days) {
            return Err(Error::Invalid("retention_days is 1 to 3650".into()));
        }
        let before = registry::load_settings(self.platform.store(), &access.app_id).await?;
        let mut tx = self.platform.store().begin_write().await?;
        registry::save_settings(&mut tx, &access.app_id, &settings, self.clock.now_ms()).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.settings.update",
                "app",
                app_key,
                json!({"before": before, "after": settings}),
            )
            .await?;
        self.registries.invalidate(&access.app_id);
        Ok(settings)
    }

    /// Saved funnels of an app.
    pub async fn list_funnels(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<SavedFunnel>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(
            "SELECT id, name, definition, created_at FROM analytics_funnels WHERE app_id = $1 ORDER BY name",
        )
        .bind(&access.app_id)
        .fetch_all(self.platform.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let definition: String = row.try_get(2)?;
                Ok(SavedFunnel {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    funnel: serde_json::from_str(&definition)
                        .map_err(|e| Error::Internal(format!("stored funnel: {e}")))?,
                    created_at: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Saves a funnel under a unique name.
    pub async fn save_funnel(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: CreateFunnel,
    ) -> Result<SavedFunnel> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(Error::Invalid(
                "the funnel name is 1 to 80 characters".into(),
            ));
        }
        reports::validate_funnel(&request.funnel)?;
        let saved = SavedFunnel {
            id: atoll_core::ids::new_id("fnl"),
            name,
            funnel: request.funnel,
            created_at: self.clock.now_ms(),
        };
        let definition =
            serde_json::to_string(&saved.funnel).map_err(|e| Error::Internal(e.to_string()))?;
        let mut tx = self.platform.store().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO analytics_funnels (id, app_id, name, definition, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, name) DO NOTHING",
        )
        .bind(&saved.id)
        .bind(&access.app_id)
        .bind(&saved.name)
        .bind(definition)
        .bind(saved.created_at)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "a funnel named '{}' exists",
                saved.name
            )));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.funnel.create",
                "funnel",
                &saved.id,
                json!({"name": saved.name}),
            )
            .await?;
        Ok(saved)
    }

    /// Deletes a saved funnel.
    pub async fn delete_funnel(
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
        let deleted = sqlx::query("DELETE FROM analytics_funnels WHERE app_id = $1 AND id = $2")
            .bind(&access.app_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::NotFound(format!("funnel '{id}'")));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.funnel.delete",
                "funnel",
                id,
                json!({}),
            )
            .await?;
        Ok(())
    }

    fn subject(request: &PrivacyRequest) -> Result<Subject> {
        match (&request.device_id, &request.user_id) {
            (Some(device), None) if !device.is_empty() => Ok(Subject::Device(device.clone())),
            (None, Some(user)) if !user.is_empty() => Ok(Subject::User(user.clone())),
            _ => Err(Error::Invalid(
                "give exactly one of device_id or user_id".into(),
            )),
        }
    }

    /// Every event of one device or user, oldest first (a privacy export).
    pub async fn export_subject(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: &PrivacyRequest,
    ) -> Result<Vec<TimelineEvent>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        let subject = Self::subject(request)?;
        let batches = self.events.export_subject(&access.app_id, &subject).await?;
        let mut events = Vec::new();
        for batch in batches {
            let projected = batch
                .project(&[0, 3, 1, 4, 6, 8, 9, 11, 15, 20])
                .map_err(Error::arrow)?;
            events.extend(reports::timeline_from_batch(&projected)?);
        }
        Ok(events)
    }

    /// Deletes every event of one device or user (a privacy request).
    pub async fn delete_subject(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: &PrivacyRequest,
    ) -> Result<DeletionReport> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::ADMIN)
            .await?;
        let subject = Self::subject(request)?;
        let deleted = self.events.delete_subject(&access.app_id, &subject).await?;
        let tx = self.platform.store().begin_write().await?;
        let (kind, id) = match &subject {
            Subject::Device(id) => ("device", id),
            Subject::User(id) => ("user", id),
        };
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "analytics.privacy.delete",
                kind,
                id,
                json!({"deleted": deleted}),
            )
            .await?;
        Ok(DeletionReport { deleted })
    }

    /// Drops days older than each app's retention (called daily by the server).
    pub async fn apply_retention(&self) -> Result<u64> {
        let rows = sqlx::query("SELECT app_id, retention_days FROM analytics_settings")
            .fetch_all(self.platform.store().pool())
            .await?;
        let mut settings: HashMap<String, i64> = HashMap::new();
        for row in rows {
            settings.insert(row.try_get(0)?, row.try_get(1)?);
        }
        let apps = sqlx::query("SELECT id FROM apps")
            .fetch_all(self.platform.store().pool())
            .await?;
        let today = self.today();
        let mut dropped = 0;
        for row in apps {
            let app: String = row.try_get(0)?;
            let days = settings
                .get(&app)
                .copied()
                .unwrap_or(i64::from(AnalyticsSettings::default().retention_days));
            dropped += self
                .events
                .drop_days_before(&app, today - days as Day + 1)
                .await?;
        }
        Ok(dropped)
    }
}

fn validate_definition(definition: &EventDefinition, limits: &IngestLimits) -> Result<()> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.chars().count() <= limits.max_name_chars
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if !name_ok(&definition.event_id) {
        return Err(Error::Invalid(format!(
            "'{}' is not an event name (letters, digits, '_', '.', '-'; at most {} characters; '$' names are built in)",
            definition.event_id, limits.max_name_chars
        )));
    }
    if definition.attributes.len() > limits.max_attributes {
        return Err(Error::Invalid(format!(
            "at most {} attributes may be declared",
            limits.max_attributes
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for attribute in &definition.attributes {
        if !name_ok(&attribute.name) {
            return Err(Error::Invalid(format!(
                "'{}' is not an attribute name",
                attribute.name
            )));
        }
        if !seen.insert(&attribute.name) {
            return Err(Error::Invalid(format!(
                "attribute '{}' is declared twice",
                attribute.name
            )));
        }
    }
    if definition.display_name.chars().count() > 100
        || definition.description.chars().count() > 1000
    {
        return Err(Error::Invalid(
            "display_name ≤ 100 and description ≤ 1000 characters".into(),
        ));
    }
    Ok(())
}
