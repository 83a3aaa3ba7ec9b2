//! Delivery: packages (app installers, H5 offline packages, mini programs,
//! hotpatches), releases with canary rollouts, the device update check, install
//! reports, signing keys and uploaded id lists.
//!
//! - A **package** is one uploaded version of a resource of an app: the app
//!   installer of a platform (or a link to its store page), an H5 offline package
//!   or mini program (by its id), or the hotpatch of one app version. Its file is
//!   stored content-addressed; its **manifest** (what it is, its size and
//!   SHA-256) is signed with the workspace's Ed25519 key, and devices check that
//!   signature and the hash before they use the file.
//! - A **release** offers a package to devices: `draft` → `whitelist` canary →
//!   `percentage` canary → `official`, with an optional target rule, a whitelist
//!   rule, an app-version compatibility range and an upgrade mode. A release can
//!   be paused and resumed, ended, or **rolled back**: devices that installed it
//!   are told to return to the previous version.
//! - `POST /device/v1/updates/check` lists, for the calling device, what to
//!   install (or roll back to), with download URLs and a delta patch from the
//!   device's version when one exists. `POST /device/v1/updates/report` counts
//!   downloads, installs and failures.

use crate::device::{wire_enum, Platform};
use serde::{Deserialize, Serialize};

/// Limits of delivery.
pub mod limits {
    /// Bytes of a resource id (H5 package id, mini program id).
    pub const MAX_RESOURCE_ID_BYTES: usize = 64;
    /// Bytes of a version.
    pub const MAX_VERSION_BYTES: usize = 64;
    /// Bytes of release notes.
    pub const MAX_NOTES_BYTES: usize = 4000;
    /// Resources one update check may list.
    pub const MAX_INSTALLED: usize = 200;
    /// Files an H5 manifest may list.
    pub const MAX_MANIFEST_FILES: usize = 20_000;
    /// Bytes of an H5 package's `manifest.json`.
    pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
    /// Bytes of an error detail in an install report.
    pub const MAX_REPORT_DETAIL_BYTES: usize = 1000;
    /// Ids in one uploaded list.
    pub const MAX_LIST_IDS: usize = 100_000;
    /// Lists per app.
    pub const MAX_LISTS: usize = 200;
    /// Bytes of one id in a list.
    pub const MAX_LIST_ID_BYTES: usize = 256;
    /// Previous versions a delta patch is made from, per new package.
    pub const DELTA_BASES: usize = 3;
}

/// The name of the manifest file inside an H5 offline package or mini program zip.
pub const PACKAGE_MANIFEST_FILE: &str = "manifest.json";

wire_enum! {
    /// What kind of resource a package is.
    ResourceKind {
        /// The app installer (APK, IPA, HAP) or a link to its store page.
        App = "app",
        /// An H5 offline package: a zip of web files served under a virtual domain.
        H5 = "h5",
        /// A mini program package.
        Miniprogram = "miniprogram",
        /// A hotpatch for one app version.
        Hotpatch = "hotpatch",
    }
}

wire_enum! {
    /// How a device is asked to take an app upgrade (mPaaS result codes in brackets).
    UpgradeMode {
        /// Download and install without asking (resources; apps where allowed).
        Silent = "silent",
        /// Offer once; the user may decline (202).
        PromptOnce = "prompt_once",
        /// Offer on every launch until taken (204).
        PromptEveryLaunch = "prompt_every_launch",
        /// The app may not be used until upgraded (206).
        Forced = "forced",
    }
}

wire_enum! {
    /// The rollout stage of a release.
    ReleaseStage {
        /// Being prepared; offered to nobody.
        Draft = "draft",
        /// Offered only to devices matching the whitelist rule.
        Whitelist = "whitelist",
        /// Offered to the whitelist and a percentage of the other devices.
        Percentage = "percentage",
        /// Offered to every matching device.
        Official = "official",
    }
}

wire_enum! {
    /// Whether a release is in force.
    ReleaseStatus {
        /// Offered according to its stage.
        Active = "active",
        /// Not offered for now; resumes at the same stage.
        Paused = "paused",
        /// Finished: no longer offered, devices keep what they installed.
        Ended = "ended",
        /// Withdrawn: devices that installed it are sent back to the previous version.
        RolledBack = "rolled_back",
    }
}

wire_enum! {
    /// A change of a release's status.
    ReleaseAction {
        /// Stop offering it for now (active → paused).
        Pause = "pause",
        /// Offer it again at its stage (paused → active).
        Resume = "resume",
        /// Finish it; devices keep what they installed (→ ended).
        End = "end",
        /// Withdraw it; devices that installed it are sent back (→ rolled_back).
        Rollback = "rollback",
    }
}

wire_enum! {
    /// What a device should do with a resource.
    UpdateAction {
        /// Install this newer version.
        Install = "install",
        /// The installed version was rolled back: install this earlier one.
        Rollback = "rollback",
        /// The installed version was rolled back and there is nothing earlier:
        /// remove it (a hotpatch, an offline package).
        Remove = "remove",
    }
}

wire_enum! {
    /// What an install report says happened.
    ReportEvent {
        /// The file (or patch) was downloaded and verified.
        Downloaded = "downloaded",
        /// The version was installed.
        Installed = "installed",
        /// Download, verification or installation failed.
        Failed = "failed",
    }
}

wire_enum! {
    /// What the ids of a list are.
    ListKind {
        /// Device ids.
        Device = "device",
        /// User ids.
        User = "user",
    }
}

/// What an H5 offline package or mini program says about itself in its
/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebManifest {
    /// The package id (must equal the resource id it is uploaded as).
    pub id: String,
    /// The package version (must equal the version it is uploaded as).
    pub version: String,
    /// The URL the container opens first, under the virtual domain
    /// (`https://shop.h5.example/index.html`).
    pub entry: String,
    /// The virtual domain whose URLs the package's files answer (`shop.h5.example`).
    pub domain: String,
    /// Paths of the files in the zip that are served, relative to the domain root.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The signed statement about a package: a device checks the signature over
/// the exact bytes of [`SignedManifest::manifest`], then checks the file it
/// downloaded (or rebuilt from a patch) against `sha256` and `size`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageManifest {
    /// The app's public key.
    pub app_key: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The resource's id: `app` for installers, the H5 or mini program id,
    /// `hotpatch` for hotpatches.
    pub resource_id: String,
    /// The platform it is for.
    pub platform: Platform,
    /// Its version.
    pub version: String,
    /// For a hotpatch: the app version it patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_app_version: Option<String>,
    /// Lowercase hex SHA-256 of the file (absent for a store link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size of the file in bytes (0 for a store link).
    pub size: u64,
    /// The store page to install from instead of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// For H5 and mini program packages: what the package's manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebManifest>,
}

/// A manifest with its signature, as stored and as sent to devices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedManifest {
    /// The [`PackageManifest`] as compact JSON: the exact signed bytes.
    pub manifest: String,
    /// Base64 (standard, padded) Ed25519 signature of `manifest`'s bytes.
    pub signature: String,
    /// Which workspace key signed it.
    pub key_id: String,
}

/// A workspace's package-signing key (public half).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKey {
    /// Key id (the first 16 hex digits of the SHA-256 of the public key).
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Base64 (standard, padded) of the 32-byte public key; apps pin it.
    pub public_key: String,
    /// When it was made.
    pub created_at: i64,
}

/// An uploaded package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    /// Stable id.
    pub id: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The resource's id.
    pub resource_id: String,
    /// The platform.
    pub platform: Platform,
    /// The version.
    pub version: String,
    /// For a hotpatch: the app version it patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_app_version: Option<String>,
    /// The original file name, if uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Size in bytes (0 for a store link).
    pub size: u64,
    /// Lowercase hex SHA-256 (absent for a store link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The store page, for an installer published through a store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// The signed manifest.
    pub signed: SignedManifest,
    /// When it was uploaded.
    pub created_at: i64,
    /// Who uploaded it.
    pub created_by: String,
}

/// Query of `POST …/packages` (the body is the file itself, or empty with a
/// `store_url`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadPackage {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The platform.
    pub platform: Platform,
    /// The version.
    pub version: String,
    /// The resource id: required for H5 and mini programs; `app` and
    /// `hotpatch` are implied for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// For a hotpatch: the app version it patches (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_app_version: Option<String>,
    /// The original file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// For an installer: a store page instead of a file (the body must be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
}

/// A release: a package offered to devices with a rollout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    /// Stable id (also the bucketing salt of its percentage).
    pub id: String,
    /// The package offered.
    pub package: Package,
    /// The rollout stage.
    pub stage: ReleaseStage,
    /// Whether it is in force.
    pub status: ReleaseStatus,
    /// At stage `percentage`: the share of devices (0–100, three decimals).
    pub percent: f64,
    /// Devices that get the release from stage `whitelist` on: a target rule,
    /// typically `user in list:testers or device in (…)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<String>,
    /// A target rule every device must match, at every stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Installed app versions that may take it (a version range: `>=2.0 <3.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_versions: Option<String>,
    /// How the upgrade is offered.
    pub mode: UpgradeMode,
    /// Devices whose app version is below this one must upgrade (`forced`),
    /// whatever the mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_below: Option<String>,
    /// Release notes shown to users.
    #[serde(default)]
    pub notes: String,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
    /// Who created it.
    pub created_by: String,
}

/// `POST …/releases`: a new draft.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRelease {
    /// The package to offer.
    pub package_id: String,
    /// How the upgrade is offered (default `prompt_once`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<UpgradeMode>,
    /// See [`Release::whitelist`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<String>,
    /// See [`Release::rule`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// See [`Release::app_versions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_versions: Option<String>,
    /// See [`Release::force_below`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_below: Option<String>,
    /// Release notes.
    #[serde(default)]
    pub notes: String,
}

/// `PATCH …/releases/{id}`: change targeting or wording. Absent fields stay;
/// an empty string clears an optional rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRelease {
    /// New mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<UpgradeMode>,
    /// New whitelist rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<String>,
    /// New target rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// New compatibility range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_versions: Option<String>,
    /// New forced-upgrade threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_below: Option<String>,
    /// New notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `POST …/releases/{id}/promote`: move to a stage (forward or back), and set
/// the percentage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromoteRelease {
    /// The new stage.
    pub stage: ReleaseStage,
    /// For stage `percentage`: the share of devices (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// One resource a device has installed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Installed {
    /// The kind.
    pub kind: ResourceKind,
    /// The resource id (`app` for the installer, `hotpatch` for the hotpatch).
    pub resource_id: String,
    /// The installed version; for `app`, the app version.
    pub version: String,
}

/// `POST /device/v1/updates/check`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateCheck {
    /// The running app version, if it changed since the device registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The current network (`wifi`, `4g`…), for network rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// What is installed. Resources not listed are offered from scratch only
    /// when `include_new` is set.
    #[serde(default)]
    pub installed: Vec<Installed>,
    /// Also offer H5 and mini program packages the device does not have yet.
    #[serde(default)]
    pub include_new: bool,
}

/// A file to download.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Download {
    /// Path of the download on this server (supports `Range`).
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// A patch from the device's version to the offered one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeltaPatch {
    /// The version the patch applies to.
    pub from_version: String,
    /// SHA-256 of the file the patch applies to.
    pub from_sha256: String,
    /// The patch.
    pub download: Download,
}

/// One thing the device should do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Update {
    /// Install, roll back, or remove.
    pub action: UpdateAction,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The resource id.
    pub resource_id: String,
    /// The version to install (for `remove`: the version to remove).
    pub version: String,
    /// The release this comes from (report against it).
    pub release_id: String,
    /// How to offer it.
    pub mode: UpgradeMode,
    /// Release notes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// The full file (absent for a store link and for `remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
    /// A patch from the installed version, when one has been made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaPatch>,
    /// A store page to install from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// The signed manifest of the version to install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedManifest>,
}

/// The answer to an update check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateAnswer {
    /// What to do, at most one entry per resource.
    pub updates: Vec<Update>,
    /// Seconds before the device should check again.
    pub check_interval_secs: u32,
}

/// `POST /device/v1/updates/report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateReport {
    /// The release from the check's answer.
    pub release_id: String,
    /// What happened.
    pub event: ReportEvent,
    /// The version the device had before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// Whether a delta patch was used.
    #[serde(default)]
    pub delta: bool,
    /// For `failed`: a stable code (`hash_mismatch`, `signature_invalid`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts of one day and device version of a release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStatsRow {
    /// The UTC day (`YYYY-MM-DD`).
    pub day: String,
    /// The version devices had (empty when unknown).
    pub from_version: String,
    /// Update checks answered while the release was in force, by devices it
    /// could apply to.
    pub checks: u64,
    /// Checks that offered the release.
    pub offered: u64,
    /// Reported downloads.
    pub downloaded: u64,
    /// Reported installs.
    pub installed: u64,
    /// Reported failures.
    pub failed: u64,
}

/// `GET …/releases/{id}/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStats {
    /// Totals over all rows.
    pub total: ReleaseStatsRow,
    /// By day, then version.
    pub rows: Vec<ReleaseStatsRow>,
}

/// An uploaded id list, without its ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetList {
    /// The name rules use (`user in list:NAME`).
    pub name: String,
    /// Device or user ids.
    pub kind: ListKind,
    /// How many ids.
    pub count: u64,
    /// When it was last replaced.
    pub updated_at: i64,
}

/// `PUT …/lists/{name}`: replace a list's ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutList {
    /// Device or user ids.
    pub kind: ListKind,
    /// The ids (duplicates are stored once).
    pub ids: Vec<String>,
}

/// `POST …/releases/{id}/audience`: which of these devices the release
/// selects at its current stage (a reach preview; also how a canary's
/// stickiness is checked). Devices are described by id and, optionally, one
/// app version and platform shared by all.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    /// Device ids (at most [`limits::MAX_LIST_IDS`]).
    pub device_ids: Vec<String>,
    /// Their app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Their platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The answer to an audience preview.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AudienceAnswer {
    /// Devices evaluated.
    pub checked: u64,
    /// The ids the release selects, in request order.
    pub selected: Vec<String>,
}
