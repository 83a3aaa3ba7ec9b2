//! Atoll's switches (remote config), like Firebase Remote Config or mPaaS switch
//! configuration: typed keys (bool, number, string, JSON) with a default and
//! ordered targeted values, per app, optionally limited to some platforms.
//!
//! - **Versions**: every publish stores the app's whole set as a new numbered
//!   version with its author, message and key-by-key diff ([`document::diff`]).
//!   Rollback publishes an earlier version's set again, so history only grows
//!   forward (up to [`limits::MAX_VERSIONS`]). Editors can pass the version they
//!   started from; a publish on top of a newer one is refused (`conflict`).
//! - **Evaluation**: devices ask `GET /device/v1/config`; the answer is computed
//!   from an in-memory compiled snapshot of the app's set ([`evaluate`]) and the
//!   device's registered context. Snapshots are checked against the stored
//!   version number at most every [`SNAPSHOT_TTL`], so another node's publish is
//!   seen within that time and nothing assumes a single node.
//! - Rules are the platform's target rules (`atoll_core::rules`), in text form;
//!   a percentage buckets by the switch key as the salt.
//!
//! Every admin operation authorises itself through the platform service, and every
//! publish is audited in its own transaction.
#![warn(missing_docs)]

pub mod document;
pub mod evaluate;
mod storage;
pub mod targeting;

use atoll_core::access::Requirement;
use atoll_core::cache::StampedCache;
use atoll_core::clock::Clock;
use atoll_core::rules::{Env, NoSegments};
use atoll_lists::ListService;
use atoll_platform::{DeviceCaller, PlatformService, Principal};
use atoll_protocol::switches::*;
use evaluate::CompiledSet;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong with switches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform operation failed (authorisation, lookup).
    #[error(transparent)]
    Platform(#[from] atoll_platform::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// Reading the app's lists failed.
    #[error(transparent)]
    Lists(#[from] atoll_lists::Error),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A targeted value's rule does not parse or validate.
    #[error("switch '{key}', targeted value {position}: {detail}")]
    InvalidRule {
        /// The switch.
        key: String,
        /// The 1-based position of the targeted value.
        position: usize,
        /// The rule engine's explanation.
        detail: String,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Someone else published first.
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
        Conflict => Conflict,
    },
});

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a compiled snapshot is used before its version is checked again.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(2);
/// Apps whose snapshot is kept at most.
const MAX_SNAPSHOTS: usize = 10_000;
/// History entries per page at most.
const MAX_HISTORY_PAGE: u32 = 100;

/// The switches service.
pub struct SwitchService {
    platform: PlatformService,
    lists: Arc<ListService>,
    clock: Arc<dyn Clock>,
    snapshots: StampedCache<u64, CompiledSet>,
}

impl std::fmt::Debug for SwitchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchService").finish_non_exhaustive()
    }
}

impl SwitchService {
    /// A service over the platform.
    pub fn new(
        platform: PlatformService,
        lists: Arc<ListService>,
        clock: Arc<dyn Clock>,
    ) -> SwitchService {
        SwitchService {
            platform,
            lists,
            clock,
            snapshots: StampedCache::new(SNAPSHOT_TTL, MAX_SNAPSHOTS),
        }
    }

    /// The set in force.
    pub async fn current(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<SwitchSet> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::current(self.platform.store(), &access.app_id).await
    }

    /// The history, newest first.
    pub async fn history(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<SwitchVersion>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let limit = limit.unwrap_or(50).clamp(1, MAX_HISTORY_PAGE);
        storage::history(self.platform.store(), &access.app_id, before, limit).await
    }

    /// One version's set.
    pub async fn version(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        version: u64,
    ) -> Result<SwitchSet> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        storage::set_at(self.platform.store(), &access.app_id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("switch version {version}")))
    }

    /// What publishing `switches` would change, without publishing.
    pub async fn preview(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        switches: Vec<Switch>,
    ) -> Result<SwitchDiff> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let switches = document::validate_set(switches)?;
        let current = storage::current(self.platform.store(), &access.app_id).await?;
        Ok(document::diff(
            current.version,
            &current.switches,
            &switches,
        ))
    }

    /// Publishes a whole new set.
    pub async fn publish(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: PublishSwitches,
    ) -> Result<SwitchSet> {
        let switches = document::validate_set(request.switches)?;
        self.publish_with(
            principal,
            slug,
            app_key,
            request.expected_version,
            &request.message,
            |_| Ok(switches),
        )
        .await
    }

    /// Adds or replaces one key.
    pub async fn put(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        key: &str,
        request: PutSwitch,
    ) -> Result<SwitchSet> {
        if request.switch.key != key {
            return Err(Error::Invalid(format!(
                "the body defines '{}' but the path names '{key}'",
                request.switch.key
            )));
        }
        document::validate_switch(&request.switch)?;
        self.publish_with(
            principal,
            slug,
            app_key,
            request.expected_version,
            &request.message,
            |current| {
                let mut switches: Vec<Switch> =
                    current.iter().filter(|s| s.key != key).cloned().collect();
                switches.push(request.switch.clone());
                document::validate_set(switches)
            },
        )
        .await
    }

    /// Deletes one key.
    pub async fn delete(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<SwitchSet> {
        let message = format!("delete {key}");
        self.publish_with(
            principal,
            slug,
            app_key,
            expected_version,
            &message,
            |current| {
                if !current.iter().any(|s| s.key == key) {
                    return Err(Error::NotFound(format!("switch '{key}'")));
                }
                Ok(current.iter().filter(|s| s.key != key).cloned().collect())
            },
        )
        .await
    }

    /// Publishes an earlier version's set again.
    pub async fn rollback(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: RollbackSwitches,
    ) -> Result<SwitchSet> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let target = storage::set_at(self.platform.store(), &access.app_id, request.version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("switch version {}", request.version)))?;
        let message = format!("rollback to version {}", request.version);
        self.publish_with(
            principal,
            slug,
            app_key,
            request.expected_version,
            &message,
            |_| Ok(target.switches.clone()),
        )
        .await
    }

    /// The one way a new version is made: in one write, read the set in force,
    /// check the expected version, derive the new set, store it with its diff
    /// and an audit entry.
    async fn publish_with(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        expected_version: Option<u64>,
        message: &str,
        derive: impl FnOnce(&[Switch]) -> Result<Vec<Switch>>,
    ) -> Result<SwitchSet> {
        if message.len() > limits::MAX_TEXT_BYTES {
            return Err(Error::Invalid(format!(
                "the message is over {} bytes",
                limits::MAX_TEXT_BYTES
            )));
        }
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.platform.store().begin_write().await?;
        let current = storage::current_in(&mut tx, &access.app_id).await?;
        if let Some(expected) = expected_version.filter(|expected| *expected != current.version) {
            return Err(Error::Conflict(format!(
                "the switches are at version {}, not {expected}: someone published meanwhile; reload and review again",
                current.version
            )));
        }
        let switches = derive(&current.switches)?;
        let diff = document::diff(current.version, &current.switches, &switches);
        if diff.is_empty() {
            return Err(Error::Invalid(
                "nothing to publish: the switches would not change".into(),
            ));
        }
        let set = SwitchSet {
            version: current.version + 1,
            published_at: self.clock.now_ms(),
            author: principal.actor(),
            message: message.to_owned(),
            switches,
        };
        storage::insert(
            &mut tx,
            &access.app_id,
            storage::NewVersion {
                version: set.version,
                published_at: set.published_at,
                author: &set.author,
                message: &set.message,
                switches: &set.switches,
                diff: &diff,
            },
        )
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "switches.publish",
                "switches",
                &format!("{app_key}@{}", set.version),
                json!({
                    "message": set.message,
                    "added": diff.added.iter().map(|s| &s.key).collect::<Vec<_>>(),
                    "removed": diff.removed.iter().map(|s| &s.key).collect::<Vec<_>>(),
                    "changed": diff.changed.iter().map(|c| &c.key).collect::<Vec<_>>(),
                }),
            )
            .await?;
        self.snapshots.remove(&access.app_id);
        Ok(set)
    }

    /// What `device` would get from the set in force (a console preview).
    pub async fn evaluate_sample(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        device: &SampleDevice,
    ) -> Result<SwitchValues> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let lists = self.lists.lists_of(&access.app_id).await?;
        Ok(self
            .snapshot(&access.app_id)
            .await?
            .evaluate(device, &Env::new(&*lists, &NoSegments)))
    }

    /// The values for a calling device, from its registered context.
    pub async fn device_values(&self, caller: &DeviceCaller) -> Result<SwitchValues> {
        let device = self
            .platform
            .device_profile(caller)
            .await?
            .ok_or(atoll_platform::Error::UnknownDevice)?;
        let lists = self.lists.lists_of(&caller.app_id).await?;
        Ok(self.snapshot(&caller.app_id).await?.evaluate(
            &SampleDevice::from(&*device),
            &Env::new(&*lists, &NoSegments),
        ))
    }

    /// The app's compiled set: the cached one while fresh or still current,
    /// else compiled from the store.
    async fn snapshot(&self, app_id: &str) -> Result<Arc<CompiledSet>> {
        let store = self.platform.store();
        self.snapshots
            .get(
                app_id,
                || storage::current_version(store, app_id),
                |_| async move {
                    let current = storage::current(store, app_id).await?;
                    CompiledSet::compile(current.version, &current.switches)
                },
            )
            .await
    }
}
