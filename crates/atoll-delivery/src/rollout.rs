//! The rollout engine: an app's live releases compiled into an in-memory
//! snapshot, and the answer to one device's update check computed from it
//! without touching the store.
//!
//! Per resource the device has (or, for installers and hotpatches, always):
//!
//! 1. If the installed version belongs to a **rolled-back** release, the device
//!    is sent back: to the newest earlier version it may have (an eligible
//!    release, or an official or ended one that was not rolled back), or told
//!    to remove the resource when there is none (never for the app itself).
//! 2. Otherwise it is offered the newest **eligible** release above its
//!    version. Eligible: active, not a draft, compatible with the installed
//!    app version, matching the release's rule, and in its stage's audience:
//!    the whitelist rule; or the whitelist plus `percent` of devices, bucketed
//!    by device id with the release id as the salt (DESIGN.md §1: sticky, and
//!    monotonic as the percentage rises); or everyone at `official`.
//! 3. The mode is `forced` when the device's app version is below the
//!    release's `force_below`, whatever the release's mode.

use crate::storage::PatchRow;
use crate::{Error, Result};
use atoll_core::bucketing::{BucketSalt, Percentage};
use atoll_core::rules::{CompiledRule, DeviceContext, Env, Rule, Version, VersionRange};
use atoll_protocol::delivery::*;
use atoll_protocol::device::Platform;
use std::cmp::Ordering;
use std::collections::HashMap;

/// A version that sorts as the rule engine compares versions; text that does
/// not parse sorts below every version.
#[derive(Debug, Clone)]
pub struct OrdVersion(Option<Version>);

impl PartialEq for OrdVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for OrdVersion {}
impl PartialOrd for OrdVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => a.compare(b),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        }
    }
}

/// Parses a version for ordering.
pub fn version_of(text: &str) -> OrdVersion {
    OrdVersion(Version::parse(text).ok())
}

/// Compiles an optional rule text; `what` names it in errors.
pub fn compile_rule(text: Option<&str>, salt: &str, what: &str) -> Result<Option<CompiledRule>> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let rule = Rule::parse(text).map_err(|error| Error::InvalidRule {
        field: what.to_owned(),
        detail: error.render(text),
    })?;
    rule.compile(salt)
        .map(Some)
        .map_err(|error| Error::InvalidRule {
            field: what.to_owned(),
            detail: error.render(text),
        })
}

/// Parses an optional version range.
pub fn parse_range(text: Option<&str>) -> Result<Option<VersionRange>> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => VersionRange::parse(text)
            .map(Some)
            .map_err(|error| Error::Invalid(format!("app_versions '{text}': {}", error.0))),
    }
}

/// Parses an optional version.
pub fn parse_version(text: Option<&str>, what: &str) -> Result<Option<Version>> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => Version::parse(text)
            .map(Some)
            .map_err(|error| Error::Invalid(format!("{what} '{text}': {}", error.0))),
    }
}

/// A release ready to evaluate.
#[derive(Debug)]
pub struct CompiledRelease {
    /// The release as stored.
    pub release: Release,
    version: OrdVersion,
    for_app_version: Option<OrdVersion>,
    salt: BucketSalt,
    percent: Percentage,
    whitelist: Option<CompiledRule>,
    rule: Option<CompiledRule>,
    app_versions: Option<VersionRange>,
    force_below: Option<Version>,
    /// Patches to this release's package, by the SHA-256 of their base file.
    deltas: HashMap<String, DeltaPatch>,
}

impl CompiledRelease {
    /// Compiles a stored release (its texts were validated when saved).
    pub fn compile(release: Release) -> Result<CompiledRelease> {
        let salt = &release.id;
        Ok(CompiledRelease {
            version: version_of(&release.package.version),
            for_app_version: release.package.for_app_version.as_deref().map(version_of),
            salt: BucketSalt::new(salt),
            percent: Percentage::from_thousandths(
                crate::storage::percent_millis(release.percent) as u32
            )
            .unwrap_or(Percentage::NONE),
            whitelist: compile_rule(release.whitelist.as_deref(), salt, "whitelist")?,
            rule: compile_rule(release.rule.as_deref(), salt, "rule")?,
            app_versions: parse_range(release.app_versions.as_deref())?,
            force_below: parse_version(release.force_below.as_deref(), "force_below")?,
            deltas: HashMap::new(),
            release,
        })
    }

    /// Whether the release's audience includes the device (ignoring versions).
    fn in_audience(&self, device: &DeviceContext, env: &Env<'_>) -> bool {
        let whitelisted = || {
            self.whitelist
                .as_ref()
                .is_some_and(|rule| rule.matches(device, env))
        };
        match self.release.stage {
            ReleaseStage::Draft => false,
            ReleaseStage::Whitelist => whitelisted(),
            ReleaseStage::Percentage => {
                whitelisted() || self.salt.contains(device.device_id(), self.percent)
            }
            ReleaseStage::Official => true,
        }
    }

    /// Whether the release applies to a device with this app version at all
    /// (compatibility, the rule); counted as a "check" of the release.
    fn applies(&self, device: &DeviceContext, env: &Env<'_>) -> bool {
        let compatible = match (&self.app_versions, device.app_version()) {
            (None, _) => true,
            (Some(range), Some(version)) => range.matches(version),
            (Some(_), None) => false,
        };
        compatible
            && self
                .rule
                .as_ref()
                .is_none_or(|rule| rule.matches(device, env))
    }

    /// Whether the release, at its stage, selects the device (whatever its
    /// status): the audience preview.
    pub fn selects(&self, device: &DeviceContext, env: &Env<'_>) -> bool {
        self.applies(device, env) && self.in_audience(device, env)
    }

    fn eligible(&self, device: &DeviceContext, env: &Env<'_>) -> bool {
        self.release.status == ReleaseStatus::Active
            && self.applies(device, env)
            && self.in_audience(device, env)
    }

    fn mode_for(&self, device: &DeviceContext) -> UpgradeMode {
        let below = match (&self.force_below, device.app_version()) {
            (Some(threshold), Some(version)) => version.compare(threshold) == Ordering::Less,
            _ => false,
        };
        if below {
            UpgradeMode::Forced
        } else {
            self.release.mode
        }
    }
}

/// An app's live releases, grouped by resource.
#[derive(Debug, Default)]
pub struct Snapshot {
    resources: HashMap<(ResourceKind, String), Vec<CompiledRelease>>,
}

/// What one device check produced, for the answer and the counters.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    /// What the device should do.
    pub updates: Vec<Update>,
    /// (release id, device version) of every release the device could take:
    /// counted as checks.
    pub checked: Vec<(String, String)>,
}

fn download_url(app_key: &str, sha256: &str) -> String {
    format!("/device/v1/downloads/{app_key}/{sha256}")
}

impl Snapshot {
    /// Compiles releases and attaches their ready patches.
    pub fn compile(
        releases: Vec<Release>,
        patches: &[PatchRow],
        app_key: &str,
    ) -> Result<Snapshot> {
        let mut by_target: HashMap<&str, Vec<&PatchRow>> = HashMap::new();
        for patch in patches.iter().filter(|p| p.state == "ready") {
            by_target
                .entry(patch.to_package.as_str())
                .or_default()
                .push(patch);
        }
        let mut compiled: Vec<CompiledRelease> = Vec::with_capacity(releases.len());
        for release in releases {
            let mut compiled_release = CompiledRelease::compile(release)?;
            if let Some(found) = by_target.get(compiled_release.release.package.id.as_str()) {
                for patch in found {
                    let (Some(sha256), Some(size), Some(base)) =
                        (&patch.sha256, patch.size, &patch.base)
                    else {
                        continue;
                    };
                    compiled_release.deltas.insert(
                        base.sha256.clone(),
                        DeltaPatch {
                            from_version: base.version.clone(),
                            from_sha256: base.sha256.clone(),
                            download: Download {
                                url: download_url(app_key, sha256),
                                size,
                                sha256: sha256.clone(),
                            },
                        },
                    );
                }
            }
            compiled.push(compiled_release);
        }
        let mut resources: HashMap<(ResourceKind, String), Vec<CompiledRelease>> = HashMap::new();
        for release in compiled {
            let key = (
                release.release.package.kind,
                release.release.package.resource_id.clone(),
            );
            resources.entry(key).or_default().push(release);
        }
        for list in resources.values_mut() {
            // Newest version first; among equal versions the latest change first.
            list.sort_by(|a, b| {
                b.version
                    .cmp(&a.version)
                    .then(b.release.updated_at.cmp(&a.release.updated_at))
            });
        }
        Ok(Snapshot { resources })
    }

    /// Releases in the snapshot.
    pub fn len(&self) -> usize {
        self.resources.values().map(Vec::len).sum()
    }

    /// Whether the snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for one device.
    pub fn check(
        &self,
        app_key: &str,
        platform: Option<Platform>,
        device: &DeviceContext,
        env: &Env<'_>,
        request: &UpdateCheck,
    ) -> CheckOutcome {
        let mut outcome = CheckOutcome::default();
        let app_version = device.app_version().map(|v| OrdVersion(Some(v.clone())));
        let installed: HashMap<(ResourceKind, &str), &str> = request
            .installed
            .iter()
            .map(|item| {
                (
                    (item.kind, item.resource_id.as_str()),
                    item.version.as_str(),
                )
            })
            .collect();
        let mut keys: Vec<&(ResourceKind, String)> = self.resources.keys().collect();
        keys.sort();
        for key in keys {
            let (kind, resource_id) = (key.0, key.1.as_str());
            let current: Option<String> = match kind {
                ResourceKind::App => device.attributes().app_version.clone(),
                _ => installed.get(&(kind, resource_id)).map(|v| v.to_string()),
            };
            let offer_new =
                matches!(kind, ResourceKind::App | ResourceKind::Hotpatch) || request.include_new;
            if current.is_none() && !offer_new {
                continue;
            }
            let candidates: Vec<&CompiledRelease> = self.resources[key]
                .iter()
                .filter(|r| platform.is_none_or(|p| r.release.package.platform == p))
                .filter(|r| match (&r.for_app_version, &app_version) {
                    (None, _) => true,
                    (Some(target), Some(have)) => target == have,
                    (Some(_), None) => false,
                })
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let current_version = current.as_deref().map(version_of);
            let from = current.clone().unwrap_or_default();
            for release in candidates
                .iter()
                .filter(|r| r.release.status == ReleaseStatus::Active)
            {
                if release.applies(device, env) {
                    outcome
                        .checked
                        .push((release.release.id.clone(), from.clone()));
                }
            }
            let update = match &current_version {
                Some(have)
                    if candidates.iter().any(|r| {
                        r.release.status == ReleaseStatus::RolledBack && &r.version == have
                    }) =>
                {
                    self.rollback(kind, resource_id, have, &candidates, device, env, app_key)
                }
                _ => candidates
                    .iter()
                    .find(|r| {
                        current_version
                            .as_ref()
                            .is_none_or(|have| &r.version > have)
                            && r.eligible(device, env)
                    })
                    .map(|r| {
                        let mut update =
                            offer(r, UpdateAction::Install, r.mode_for(device), app_key);
                        update.delta = pick_delta(r, current.as_deref());
                        update
                    }),
            };
            outcome.updates.extend(update);
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn rollback(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        have: &OrdVersion,
        candidates: &[&CompiledRelease],
        device: &DeviceContext,
        env: &Env<'_>,
        app_key: &str,
    ) -> Option<Update> {
        let rolled_back = candidates
            .iter()
            .find(|r| r.release.status == ReleaseStatus::RolledBack && &r.version == have)?;
        let target = candidates.iter().find(|r| {
            &r.version < have
                && r.release.status != ReleaseStatus::RolledBack
                && (r.eligible(device, env)
                    || (r.applies(device, env)
                        && (r.release.status == ReleaseStatus::Ended
                            || r.release.stage == ReleaseStage::Official)))
        });
        match target {
            Some(target) => Some(offer(
                target,
                UpdateAction::Rollback,
                UpgradeMode::Forced,
                app_key,
            )),
            None if kind == ResourceKind::App => None,
            None => Some(Update {
                action: UpdateAction::Remove,
                kind,
                resource_id: resource_id.to_owned(),
                version: rolled_back.release.package.version.clone(),
                release_id: rolled_back.release.id.clone(),
                mode: UpgradeMode::Forced,
                notes: rolled_back.release.notes.clone(),
                download: None,
                delta: None,
                store_url: None,
                signed: None,
            }),
        }
    }
}

/// The patch from the device's version, if one is ready. Patches are keyed by
/// base hash; the device names its version, so the base with that version is
/// taken (the SDK checks the hash before applying).
fn pick_delta(release: &CompiledRelease, from_version: Option<&str>) -> Option<DeltaPatch> {
    let from = version_of(from_version?);
    release
        .deltas
        .values()
        .find(|patch| version_of(&patch.from_version) == from)
        .cloned()
}

fn offer(
    release: &CompiledRelease,
    action: UpdateAction,
    mode: UpgradeMode,
    app_key: &str,
) -> Update {
    let package = &release.release.package;
    Update {
        action,
        kind: package.kind,
        resource_id: package.resource_id.clone(),
        version: package.version.clone(),
        release_id: release.release.id.clone(),
        mode,
        notes: release.release.notes.clone(),
        download: package.sha256.as_ref().map(|sha256| Download {
            url: download_url(app_key, sha256),
            size: package.size,
            sha256: sha256.clone(),
        }),
        delta: None,
        store_url: package.store_url.clone(),
        signed: Some(package.signed.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_core::rules::DeviceAttributes;
    use proptest::prelude::*;

    fn release(
        id: &str,
        version: &str,
        stage: ReleaseStage,
        status: ReleaseStatus,
        percent: f64,
    ) -> Release {
        let manifest = PackageManifest {
            app_key: "ak".into(),
            kind: ResourceKind::App,
            resource_id: "app".into(),
            platform: Platform::Android,
            version: version.into(),
            for_app_version: None,
            sha256: Some("a".repeat(64)),
            size: 1,
            store_url: None,
            web: None,
        };
        Release {
            id: id.into(),
            package: Package {
                id: format!("pkg-{id}"),
                kind: ResourceKind::App,
                resource_id: "app".into(),
                platform: Platform::Android,
                version: version.into(),
                for_app_version: None,
                file_name: None,
                size: 1,
                sha256: manifest.sha256.clone(),
                store_url: None,
                signed: SignedManifest {
                    manifest: serde_json::to_string(&manifest).unwrap(),
                    signature: String::new(),
                    key_id: String::new(),
                },
                created_at: 0,
                created_by: "test".into(),
            },
            stage,
            status,
            percent,
            whitelist: None,
            rule: None,
            app_versions: None,
            mode: UpgradeMode::PromptOnce,
            force_below: None,
            notes: String::new(),
            created_at: 0,
            updated_at: 0,
            created_by: "test".into(),
        }
    }

    fn device(id: &str, app_version: &str) -> DeviceContext {
        DeviceContext::new(DeviceAttributes {
            device_id: id.into(),
            app_version: Some(app_version.into()),
            platform: Some("android".into()),
            ..DeviceAttributes::default()
        })
    }

    fn offered(snapshot: &Snapshot, device: &DeviceContext) -> Option<String> {
        snapshot
            .check(
                "ak",
                Some(Platform::Android),
                device,
                &Env::empty(),
                &UpdateCheck::default(),
            )
            .updates
            .into_iter()
            .find(|u| u.action == UpdateAction::Install)
            .map(|u| u.version)
    }

    proptest! {
        /// The offer is the newest active, non-draft release above the
        /// installed version, whatever the order releases come in.
        #[test]
        fn the_offer_is_the_newest_eligible_release_above_the_installed_one(
            releases in proptest::collection::vec((1u32..40, 0usize..4, 0usize..3), 1..12),
            installed in 0u32..40,
        ) {
            let stages = [ReleaseStage::Draft, ReleaseStage::Official, ReleaseStage::Official, ReleaseStage::Percentage];
            let statuses = [ReleaseStatus::Active, ReleaseStatus::Paused, ReleaseStatus::Ended];
            let list: Vec<Release> = releases
                .iter()
                .enumerate()
                .map(|(i, (minor, stage, status))| {
                    release(&format!("r{i}"), &format!("1.{minor}.0"), stages[*stage], statuses[*status], 100.0)
                })
                .collect();
            let expected = releases
                .iter()
                .filter(|(minor, stage, status)| *minor > installed && *stage != 0 && *status == 0)
                .map(|(minor, _, _)| *minor)
                .max();
            let snapshot = Snapshot::compile(list, &[], "ak").unwrap();
            let got = offered(&snapshot, &device("d", &format!("1.{installed}.0")));
            prop_assert_eq!(got, expected.map(|minor| format!("1.{minor}.0")));
        }

        /// Raising a release's percentage never removes a device from it.
        #[test]
        fn raising_the_percentage_only_adds_devices(low in 0u32..100_000, extra in 0u32..100_000, id in "[a-z0-9-]{1,24}") {
            let high = (low + extra).min(100_000);
            let at = |thousandths: u32| {
                let r = CompiledRelease::compile(release("rel-x", "2.0", ReleaseStage::Percentage, ReleaseStatus::Active, f64::from(thousandths) / 1000.0)).unwrap();
                r.selects(&device(&id, "1.0"), &Env::empty())
            };
            prop_assert!(!at(low) || at(high));
        }
    }

    #[test]
    fn rollback_sends_devices_to_the_newest_earlier_version_or_removes_it() {
        let mut v1 = release(
            "r1",
            "1.0",
            ReleaseStage::Official,
            ReleaseStatus::Active,
            0.0,
        );
        v1.package.kind = ResourceKind::H5;
        v1.package.resource_id = "h".into();
        let mut v2 = release(
            "r2",
            "2.0",
            ReleaseStage::Official,
            ReleaseStatus::RolledBack,
            0.0,
        );
        v2.package.kind = ResourceKind::H5;
        v2.package.resource_id = "h".into();
        let on = |version: &str| UpdateCheck {
            installed: vec![Installed {
                kind: ResourceKind::H5,
                resource_id: "h".into(),
                version: version.into(),
            }],
            ..UpdateCheck::default()
        };
        let snapshot = Snapshot::compile(vec![v1.clone(), v2.clone()], &[], "ak").unwrap();
        let answer = snapshot.check("ak", None, &device("d", "1.0"), &Env::empty(), &on("2.0"));
        assert_eq!(answer.updates.len(), 1);
        assert_eq!(
            (answer.updates[0].action, answer.updates[0].version.as_str()),
            (UpdateAction::Rollback, "1.0")
        );
        assert!(snapshot
            .check("ak", None, &device("d", "1.0"), &Env::empty(), &on("1.0"))
            .updates
            .is_empty());
        let alone = Snapshot::compile(vec![v2], &[], "ak").unwrap();
        let answer = alone.check("ak", None, &device("d", "1.0"), &Env::empty(), &on("2.0"));
        assert_eq!(answer.updates[0].action, UpdateAction::Remove);
    }
}
