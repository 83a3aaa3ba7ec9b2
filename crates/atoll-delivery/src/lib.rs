//! Atoll's delivery service, like mPaaS's Mobile Delivery Service or a
//! self-hosted CodePush: packages, releases with canary rollouts, the device
//! update check, delta patches and release stats.
//!
//! - **Packages** ([`DeliveryService::upload_package`]): an app installer (or
//!   a store link), an H5 offline package or mini program (a zip whose
//!   `manifest.json` is checked, [`manifest`]), or the hotpatch of one app
//!   version. Files are content-addressed blobs; every package's manifest is
//!   signed with the workspace's Ed25519 key ([`signing`]).
//! - **Releases** go draft → whitelist → percentage → official and can be
//!   paused, resumed, ended or rolled back; every change is audited. Rules,
//!   whitelists and version ranges are validated when saved.
//! - **Update checks** ([`DeliveryService::check`]) are answered from an
//!   in-memory snapshot of the app's live releases ([`rollout`]), checked
//!   against the store's release stamp at most every [`SNAPSHOT_TTL`], so a
//!   change on another node is seen within that time.
//! - **Delta patches** are made in the background ([`deltas`]) from the few
//!   versions below each new package.
//! - **Stats** ([`stats`]): checks and offers counted in memory and flushed;
//!   device reports written before they are acknowledged.
#![warn(missing_docs)]

pub mod deltas;
pub mod manifest;
pub mod rollout;
pub mod signing;
pub mod stats;
mod storage;
mod upload;

pub use upload::SpooledUpload;

use atoll_core::access::Requirement;
use atoll_core::cache::StampedCache;
use atoll_core::clock::Clock;
use atoll_core::rules::{DeviceAttributes, DeviceContext, Env, NoSegments};
use atoll_lists::ListService;
use atoll_platform::{DeviceCaller, PlatformService, Principal};
use atoll_protocol::delivery::*;
use atoll_protocol::switches::SampleDevice;
use atoll_store::BlobStore;
use parking_lot::Mutex;
use rollout::Snapshot;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What can go wrong in delivery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform operation failed (authorisation, lookup).
    #[error(transparent)]
    Platform(#[from] atoll_platform::Error),
    /// The metadata or blob store failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// Reading the app's lists failed.
    #[error(transparent)]
    Lists(#[from] atoll_lists::Error),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A rule of a release does not parse or validate.
    #[error("{field}: {detail}")]
    InvalidRule {
        /// Which rule (`rule`, `whitelist`).
        field: String,
        /// The rule engine's explanation.
        detail: String,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An upload is over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// The change conflicts with the object's state.
    #[error("{0}")]
    Conflict(String),
    /// A bug or corrupt stored data.
    #[error("internal error: {0}")]
    Internal(String),
}

atoll_platform::module_error!(Error {
    delegate: [Platform, Lists],
    internal: [Store, Internal],
    codes: {
        Invalid => ValidationFailed,
        InvalidRule => InvalidRule,
        NotFound => NotFound,
        TooLarge => PayloadTooLarge,
        Conflict => Conflict,
    },
});

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a snapshot is used before the release stamp is checked again.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(2);
/// Apps whose snapshot is kept at most.
const MAX_SNAPSHOTS: usize = 10_000;
/// Live releases per app in a snapshot at most.
const MAX_LIVE_RELEASES: u32 = 2000;
/// Rows per listing page at most.
const MAX_PAGE: u32 = 500;
/// Download permissions remembered at most.
const MAX_DOWNLOAD_CACHE: usize = 10_000;

/// Settings of delivery.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Seconds devices wait between checks.
    pub check_interval_secs: u32,
    /// Largest file delta patches are made for.
    pub delta_max_file_bytes: u64,
    /// Largest package upload.
    pub max_package_bytes: u64,
    /// Where uploads are spooled before they are stored.
    pub upload_dir: std::path::PathBuf,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            check_interval_secs: 600,
            delta_max_file_bytes: 512 << 20,
            max_package_bytes: 2 << 30,
            upload_dir: std::env::temp_dir(),
        }
    }
}

/// A file received for a package upload, already hashed.
#[derive(Debug, Clone)]
pub struct UploadedFile<'a> {
    /// Where it is.
    pub path: &'a std::path::Path,
    /// Its SHA-256 (lowercase hex).
    pub sha256: &'a str,
    /// Its size.
    pub size: u64,
}

/// Count and newest change of an app's releases, and its ready patches.
type Stamp = (i64, i64, i64);

/// The delivery service.
pub struct DeliveryService {
    platform: PlatformService,
    blobs: BlobStore,
    lists: Arc<ListService>,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    snapshots: StampedCache<Stamp, Snapshot>,
    downloads: Mutex<HashMap<(String, String), Instant>>,
    counters: Arc<stats::Counters>,
    worker: deltas::DeltaWorker,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService").finish_non_exhaustive()
    }
}

fn check_text(what: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::Invalid(format!("{what} is over {max} bytes")));
    }
    Ok(())
}

fn check_version(what: &str, value: &str) -> Result<()> {
    check_text(what, value, limits::MAX_VERSION_BYTES)?;
    rollout::parse_version(Some(value), what)?
        .map(|_| ())
        .ok_or_else(|| Error::Invalid(format!("{what} is required")))
}

impl DeliveryService {
    /// A service; call [`DeliveryService::start_background`] to make patches
    /// and flush counters.
    pub fn new(
        platform: PlatformService,
        blobs: BlobStore,
        lists: Arc<ListService>,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> DeliveryService {
        let worker = deltas::DeltaWorker::new(
            platform.store().clone(),
            blobs.clone(),
            config.delta_max_file_bytes,
        );
        DeliveryService {
            platform,
            blobs,
            lists,
            clock,
            config,
            snapshots: StampedCache::new(SNAPSHOT_TTL, MAX_SNAPSHOTS),
            downloads: Mutex::new(HashMap::new()),
            counters: Arc::new(stats::Counters::default()),
            worker,
        }
    }

    /// Starts the delta worker and the counter flusher on the runtime.
    pub fn start_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let worker = self.worker.clone();
        let counters = self.counters.clone();
        let store = self.platform.store().clone();
        vec![
            tokio::spawn(worker.run()),
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(stats::FLUSH_INTERVAL);
                loop {
                    ticker.tick().await;
                    if let Err(error) = counters.flush(&store).await {
                        tracing::warn!(%error, "release stats flush failed");
                    }
                }
            }),
        ]
    }

    /// Writes pending counters now (shutdown, tests).
    pub async fn flush_stats(&self) -> Result<()> {
        self.counters.flush(self.platform.store()).await
    }

    /// Makes queued delta patches now (tests, tools); how many were handled.
    pub async fn make_patches(&self) -> Result<usize> {
        self.worker.run_once().await
    }

    /// The workspace's signing key (made on first use).
    pub async fn signing_key(&self, principal: &Principal, slug: &str) -> Result<SigningKey> {
        let ctx = self
            .platform
            .authorize(principal, slug, Requirement::READ)
            .await?;
        if let Some(key) = signing::find(self.platform.store(), &ctx.workspace_id).await? {
            return Ok(key.public().clone());
        }
        let mut tx = self.platform.store().begin_write().await?;
        let key = signing::get_or_create(&mut tx, &ctx.workspace_id, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(key.public().clone())
    }

    /// Checks that the caller may upload packages to the app (before the
    /// body is read).
    pub async fn authorize_upload(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<()> {
        self.platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        Ok(())
    }

    /// Stores an uploaded package: validates it, stores the file, signs the
    /// manifest and queues delta patches from the versions below it.
    pub async fn upload_package(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: UploadPackage,
        file: Option<UploadedFile<'_>>,
    ) -> Result<Package> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        check_version("version", &request.version)?;
        let resource_id = match (request.kind, request.resource_id.as_deref()) {
            (ResourceKind::App, None | Some("app")) => "app".to_owned(),
            (ResourceKind::Hotpatch, None | Some("hotpatch")) => "hotpatch".to_owned(),
            (ResourceKind::App | ResourceKind::Hotpatch, Some(other)) => {
                return Err(Error::Invalid(format!(
                    "a {} package has no resource id of its own (got '{other}')",
                    request.kind
                )))
            }
            (_, Some(id)) => {
                let ok = !id.is_empty()
                    && id.len() <= limits::MAX_RESOURCE_ID_BYTES
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !ok {
                    return Err(Error::Invalid(format!(
                        "resource id '{id}' must be 1-{} letters, digits, '_', '-' or '.'",
                        limits::MAX_RESOURCE_ID_BYTES
                    )));
                }
                id.to_owned()
            }
            (kind, None) => {
                return Err(Error::Invalid(format!(
                    "a {kind} package needs a resource_id"
                )))
            }
        };
        let for_app_version = match (request.kind, request.for_app_version.as_deref()) {
            (ResourceKind::Hotpatch, Some(version)) => {
                check_version("for_app_version", version)?;
                Some(version.to_owned())
            }
            (ResourceKind::Hotpatch, None) => {
                return Err(Error::Invalid(
                    "a hotpatch needs for_app_version: the app version it patches".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(Error::Invalid(
                    "only a hotpatch has a for_app_version".into(),
                ))
            }
            (_, None) => None,
        };
        if !access.app.platforms.contains(&request.platform) {
            return Err(Error::Invalid(format!(
                "the app does not ship on {}",
                request.platform
            )));
        }
        if let Some(name) = &request.file_name {
            check_text("file_name", name, 255)?;
        }
        let web = match (&request.store_url, &file) {
            (Some(url), None) => {
                if request.kind != ResourceKind::App {
                    return Err(Error::Invalid(
                        "only an app installer can be a store link".into(),
                    ));
                }
                let ok = (url.starts_with("https://")
                    || url.starts_with("market://")
                    || url.starts_with("itms-apps://"))
                    && url.len() <= 2000
                    && !url.chars().any(char::is_whitespace);
                if !ok {
                    return Err(Error::Invalid(format!(
                        "store_url '{url}' must be an https://, market:// or itms-apps:// URL"
                    )));
                }
                None
            }
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "send either a file or a store_url, not both".into(),
                ))
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "the body (the package file) is empty".into(),
                ))
            }
            (None, Some(file)) => match request.kind {
                ResourceKind::H5 | ResourceKind::Miniprogram => {
                    let web = self.read_web_manifest(file.path).await?;
                    if web.id != resource_id
                        || rollout::version_of(&web.version)
                            != rollout::version_of(&request.version)
                    {
                        return Err(Error::Invalid(format!(
                            "the package's manifest.json says id '{}' version '{}', but it is uploaded as '{resource_id}' version '{}'",
                            web.id, web.version, request.version
                        )));
                    }
                    Some(web)
                }
                _ => None,
            },
        };
        if let Some(file) = &file {
            self.blobs
                .put_file(file.path, file.sha256, file.size)
                .await?;
        }
        let now = self.clock.now_ms();
        let mut tx = self.platform.store().begin_write().await?;
        let key = signing::get_or_create(&mut tx, &access.ctx.workspace_id, now).await?;
        let manifest = PackageManifest {
            app_key: app_key.to_owned(),
            kind: request.kind,
            resource_id: resource_id.clone(),
            platform: request.platform,
            version: request.version.clone(),
            for_app_version: for_app_version.clone(),
            sha256: file.as_ref().map(|file| file.sha256.to_owned()),
            size: file.as_ref().map_or(0, |file| file.size),
            store_url: request.store_url.clone(),
            web,
        };
        let package = Package {
            id: atoll_core::ids::new_id("pkg"),
            kind: request.kind,
            resource_id,
            platform: request.platform,
            version: request.version,
            for_app_version,
            file_name: request.file_name,
            size: manifest.size,
            sha256: manifest.sha256.clone(),
            store_url: request.store_url,
            signed: key.sign(&manifest),
            created_at: now,
            created_by: principal.actor(),
        };
        storage::insert_package(&mut tx, &access.app_id, &package).await?;
        let queued = deltas::queue_for(
            self.platform.store(),
            &mut tx,
            &access.app_id,
            &package,
            now,
        )
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "package.upload",
                "package",
                &package.id,
                json!({
                    "kind": package.kind.as_str(), "resource_id": package.resource_id,
                    "platform": package.platform.as_str(), "version": package.version,
                    "sha256": package.sha256, "size": package.size,
                }),
            )
            .await?;
        if queued > 0 {
            self.worker.wake();
        }
        Ok(package)
    }

    async fn read_web_manifest(&self, path: &std::path::Path) -> Result<WebManifest> {
        // Offline packages are small; the zip is read whole to find its
        // manifest (the delta crate's reader works on bytes).
        const MAX_WEB_PACKAGE: u64 = 256 << 20;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|error| Error::Internal(format!("reading the upload: {error}")))?
            .len();
        if size > MAX_WEB_PACKAGE {
            return Err(Error::Invalid(format!(
                "an H5 or mini program package is at most {MAX_WEB_PACKAGE} bytes"
            )));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|error| Error::Internal(format!("reading the upload: {error}")))?;
        manifest::read_web_manifest(&bytes).map_err(|error| Error::Invalid(error.0))
    }

    /// An app's packages, newest first.
    pub async fn packages(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        kind: Option<ResourceKind>,
        limit: Option<u32>,
    ) -> Result<Vec<Package>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::packages(
            self.platform.store(),
            &access.app_id,
            kind,
            limit.unwrap_or(100).clamp(1, MAX_PAGE),
        )
        .await
    }

    /// One package.
    pub async fn package(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
    ) -> Result<Package> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::package(self.platform.store(), &access.app_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("package '{id}'")))
    }

    /// An app's releases, most recently changed first.
    pub async fn releases(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        limit: Option<u32>,
    ) -> Result<Vec<Release>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::releases(
            self.platform.store(),
            &access.app_id,
            limit.unwrap_or(100).clamp(1, MAX_PAGE),
        )
        .await
    }

    /// One release.
    pub async fn release(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
    ) -> Result<Release> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::release(self.platform.store(), &access.app_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("release '{id}'")))
    }

    /// A release's counters.
    pub async fn release_stats(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
    ) -> Result<ReleaseStats> {
        let release = self.release(principal, slug, app_key, id).await?;
        stats::read(self.platform.store(), &release.id).await
    }

    /// Which of the given devices the release selects at its stage.
    pub async fn audience(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        request: AudienceRequest,
    ) -> Result<AudienceAnswer> {
        if request.device_ids.len() > limits::MAX_LIST_IDS {
            return Err(Error::Invalid(format!(
                "an audience preview takes at most {} devices",
                limits::MAX_LIST_IDS
            )));
        }
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let release = storage::release(self.platform.store(), &access.app_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("release '{id}'")))?;
        let compiled = rollout::CompiledRelease::compile(release)?;
        let lists = self.lists.lists_of(&access.app_id).await?;
        let env = Env::new(&*lists, &NoSegments);
        let checked = request.device_ids.len() as u64;
        let selected = request
            .device_ids
            .into_iter()
            .filter(|device_id| {
                let device = DeviceContext::new(DeviceAttributes {
                    device_id: device_id.clone(),
                    app_version: request.app_version.clone(),
                    platform: request.platform.map(|p| p.as_str().to_owned()),
                    ..DeviceAttributes::default()
                });
                compiled.selects(&device, &env)
            })
            .collect();
        Ok(AudienceAnswer { checked, selected })
    }

    /// Creates a draft release of a package.
    pub async fn create_release(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: CreateRelease,
    ) -> Result<Release> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let package = storage::package(self.platform.store(), &access.app_id, &request.package_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("package '{}'", request.package_id)))?;
        let now = self.clock.now_ms();
        let release = Release {
            id: atoll_core::ids::new_id("rel"),
            package,
            stage: ReleaseStage::Draft,
            status: ReleaseStatus::Active,
            percent: 0.0,
            whitelist: clean(request.whitelist),
            rule: clean(request.rule),
            app_versions: clean(request.app_versions),
            mode: request.mode.unwrap_or(UpgradeMode::PromptOnce),
            force_below: clean(request.force_below),
            notes: request.notes,
            created_at: now,
            updated_at: now,
            created_by: principal.actor(),
        };
        validate_release(&release)?;
        let mut tx = self.platform.store().begin_write().await?;
        let newest = storage::newest_change_in(&mut tx, &access.app_id).await?;
        let release = Release {
            updated_at: now.max(newest + 1),
            ..release
        };
        storage::insert_release(&mut tx, &access.app_id, &release).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "release.create",
                "release",
                &release.id,
                json!({ "package": release.package.id, "version": release.package.version }),
            )
            .await?;
        self.snapshots.remove(&access.app_id);
        Ok(release)
    }

    /// Changes a release's targeting or notes.
    pub async fn update_release(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        request: UpdateRelease,
    ) -> Result<Release> {
        self.change(principal, slug, app_key, id, "release.update", |release| {
            if let Some(mode) = request.mode {
                release.mode = mode;
            }
            if let Some(whitelist) = request.whitelist {
                release.whitelist = clean(Some(whitelist));
            }
            if let Some(rule) = request.rule {
                release.rule = clean(Some(rule));
            }
            if let Some(range) = request.app_versions {
                release.app_versions = clean(Some(range));
            }
            if let Some(below) = request.force_below {
                release.force_below = clean(Some(below));
            }
            if let Some(notes) = request.notes {
                release.notes = notes;
            }
            Ok(())
        })
        .await
    }

    /// Moves a release to a stage (forward or back) and sets its percentage.
    pub async fn promote(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        request: PromoteRelease,
    ) -> Result<Release> {
        self.change(principal, slug, app_key, id, "release.promote", |release| {
            if matches!(
                release.status,
                ReleaseStatus::Ended | ReleaseStatus::RolledBack
            ) {
                return Err(Error::Conflict(format!(
                    "the release is {}; create a new release instead",
                    release.status
                )));
            }
            match (request.stage, request.percent) {
                (ReleaseStage::Percentage, Some(percent)) => release.percent = percent,
                (ReleaseStage::Percentage, None) => {
                    return Err(Error::Invalid("stage percentage needs a percent".into()))
                }
                (_, Some(_)) => {
                    return Err(Error::Invalid(
                        "only stage percentage takes a percent".into(),
                    ))
                }
                (_, None) => {}
            }
            if request.stage == ReleaseStage::Whitelist && release.whitelist.is_none() {
                return Err(Error::Invalid(
                    "set a whitelist rule (e.g. `user in list:testers`) before the whitelist stage"
                        .into(),
                ));
            }
            release.stage = request.stage;
            Ok(())
        })
        .await
    }

    /// Pauses, resumes, ends or rolls back a release.
    pub async fn act(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        action: ReleaseAction,
    ) -> Result<Release> {
        use ReleaseStatus::*;
        let (from, to): (&[ReleaseStatus], ReleaseStatus) = match action {
            ReleaseAction::Pause => (&[Active], Paused),
            ReleaseAction::Resume => (&[Paused], Active),
            ReleaseAction::End => (&[Active, Paused], Ended),
            ReleaseAction::Rollback => (&[Active, Paused, Ended], RolledBack),
        };
        let audit = format!("release.{action}");
        self.change(principal, slug, app_key, id, &audit, |release| {
            if !from.contains(&release.status) {
                return Err(Error::Conflict(format!(
                    "the release is {}; it cannot become {to}",
                    release.status
                )));
            }
            if release.stage == ReleaseStage::Draft && to != Ended {
                return Err(Error::Conflict(
                    "the release is a draft: promote it first, or end it".into(),
                ));
            }
            release.status = to;
            Ok(())
        })
        .await
    }

    /// The one way a release changes: in one write, read it, apply `edit`,
    /// validate, store, audit, and drop the app's snapshot.
    async fn change(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        id: &str,
        action: &str,
        edit: impl FnOnce(&mut Release) -> Result<()>,
    ) -> Result<Release> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let mut release = storage::release_in(&mut tx, &access.app_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("release '{id}'")))?;
        let before = (release.stage, release.status, release.percent);
        edit(&mut release)?;
        validate_release(&release)?;
        let newest = storage::newest_change_in(&mut tx, &access.app_id).await?;
        // Strictly after every earlier change, so the snapshot stamp moves.
        release.updated_at = self.clock.now_ms().max(newest + 1);
        storage::update_release(&mut tx, &access.app_id, &release).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                action,
                "release",
                &release.id,
                json!({
                    "from": { "stage": before.0.as_str(), "status": before.1.as_str(), "percent": before.2 },
                    "to": { "stage": release.stage.as_str(), "status": release.status.as_str(), "percent": release.percent },
                }),
            )
            .await?;
        self.snapshots.remove(&access.app_id);
        Ok(release)
    }

    /// Answers a device's update check.
    pub async fn check(
        &self,
        caller: &DeviceCaller,
        request: &UpdateCheck,
    ) -> Result<UpdateAnswer> {
        if request.installed.len() > limits::MAX_INSTALLED {
            return Err(Error::Invalid(format!(
                "a check lists at most {} installed resources",
                limits::MAX_INSTALLED
            )));
        }
        if let Some(version) = &request.app_version {
            check_version("app_version", version)?;
        }
        let device = self
            .platform
            .device_profile(caller)
            .await?
            .ok_or(atoll_platform::Error::UnknownDevice)?;
        let mut attributes = DeviceAttributes::from(&SampleDevice::from(&*device));
        if let Some(version) = &request.app_version {
            attributes.app_version = Some(version.clone());
        }
        if let Some(network) = &request.network {
            attributes.network = Some(network.clone());
        }
        let context = DeviceContext::new(attributes);
        let snapshot = self.snapshot(&caller.app_id, &caller.app_key).await?;
        let lists = self.lists.lists_of(&caller.app_id).await?;
        let outcome = snapshot.check(
            &caller.app_key,
            device.platform,
            &context,
            &Env::new(&*lists, &NoSegments),
            request,
        );
        let day = stats::day_of(self.clock.now_ms());
        for (release_id, from) in &outcome.checked {
            self.counters
                .bump(release_id, &day, from, stats::Counter::Check);
        }
        let installed_version = |update: &Update| match update.kind {
            ResourceKind::App => context.attributes().app_version.clone().unwrap_or_default(),
            kind => request
                .installed
                .iter()
                .find(|item| item.kind == kind && item.resource_id == update.resource_id)
                .map(|item| item.version.clone())
                .unwrap_or_default(),
        };
        for update in &outcome.updates {
            self.counters.bump(
                &update.release_id,
                &day,
                &installed_version(update),
                stats::Counter::Offered,
            );
        }
        Ok(UpdateAnswer {
            updates: outcome.updates,
            check_interval_secs: self.config.check_interval_secs,
        })
    }

    /// Records a device's report; written before the device is answered.
    pub async fn report(&self, caller: &DeviceCaller, report: &UpdateReport) -> Result<()> {
        if let Some(error) = &report.error {
            check_text("error", error, limits::MAX_REPORT_DETAIL_BYTES)?;
        }
        let from = report.from_version.clone().unwrap_or_default();
        check_text("from_version", &from, limits::MAX_VERSION_BYTES)?;
        let known = storage::release(self.platform.store(), &caller.app_id, &report.release_id)
            .await?
            .is_some();
        if !known {
            return Err(Error::NotFound(format!("release '{}'", report.release_id)));
        }
        let mut batch = HashMap::new();
        let mut counts = [0i64; 5];
        counts[match report.event {
            ReportEvent::Downloaded => 2,
            ReportEvent::Installed => 3,
            ReportEvent::Failed => 4,
        }] = 1;
        batch.insert(
            (
                report.release_id.clone(),
                stats::day_of(self.clock.now_ms()),
                from,
            ),
            counts,
        );
        stats::write(self.platform.store(), &batch).await?;
        metrics::counter!("atoll_delivery_reports_total", "event" => report.event.as_str())
            .increment(1);
        Ok(())
    }

    /// Whether a blob may be downloaded under this app key: it must be one of
    /// the app's packages or ready patches. Answers are remembered briefly.
    pub async fn downloadable(&self, app_key: &str, sha256: &str) -> Result<bool> {
        let key = (app_key.to_owned(), sha256.to_owned());
        if let Some(at) = self.downloads.lock().get(&key) {
            if at.elapsed() < Duration::from_secs(60) {
                return Ok(true);
            }
        }
        let allowed = storage::is_downloadable(self.platform.store(), app_key, sha256).await?;
        if allowed {
            let mut downloads = self.downloads.lock();
            if downloads.len() >= MAX_DOWNLOAD_CACHE {
                downloads.clear();
            }
            downloads.insert(key, Instant::now());
        }
        Ok(allowed)
    }

    /// The blob store, for downloads.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    async fn snapshot(&self, app_id: &str, app_key: &str) -> Result<Arc<Snapshot>> {
        let store = self.platform.store();
        self.snapshots
            .get(
                app_id,
                || storage::stamp(store, app_id),
                |_| async move {
                    let releases = storage::live_releases(store, app_id, MAX_LIVE_RELEASES).await?;
                    let patches = storage::patches(store, app_id).await?;
                    Snapshot::compile(releases, &patches, app_key)
                },
            )
            .await
    }
}

fn clean(text: Option<String>) -> Option<String> {
    text.map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// Checks everything a release says before it is stored.
fn validate_release(release: &Release) -> Result<()> {
    check_text("notes", &release.notes, limits::MAX_NOTES_BYTES)?;
    if !(0.0..=100.0).contains(&release.percent)
        || (release.percent * 1000.0 - (release.percent * 1000.0).round()).abs() > 1e-6
    {
        return Err(Error::Invalid(format!(
            "percent {} must be between 0 and 100 with at most three decimals",
            release.percent
        )));
    }
    rollout::CompiledRelease::compile(release.clone())?;
    Ok(())
}
