//! Atoll's Rust client SDK.
//!
//! - [`DeviceClient`] is what an app embeds: it generates and keeps the device id
//!   in a local folder, signs every request with the app secret (DESIGN.md §3),
//!   compresses large bodies, and retries with backoff and jitter, honouring
//!   `Retry-After` and correcting its clock when the server reports skew.
//! - [`Tracker`] records analytics events (custom ones, sessions, pages) in an
//!   on-disk queue and sends them in batches through the [`DeviceClient`].
//! - [`Switches`] holds the app's remote config on the device: local defaults,
//!   the last fetched values cached on disk, conditional fetches, listeners.
//! - [`Updater`] checks for updates (app installers, H5 offline packages, mini
//!   programs, hotpatches), downloads them resumably or as delta patches, and
//!   verifies them against the workspace's pinned Ed25519 key.
//! - [`OfflinePackages`] unpacks verified H5 packages and mini programs and
//!   maps the web container's URLs to their local files.
//! - [`DeviceClient::call`] and [`DeviceClient::call_encrypted`] call an app's
//!   backends through the mobile gateway ([`gateway`]).
//! - [`SyncClient`] keeps the device connection: real-time data per biz type,
//!   in order, deduplicated, resumed from persisted cursors ([`sync`]).
//! - [`AdminClient`] speaks the admin API with a bearer token; the CLI and app
//!   backends use it.
//! - [`backend::verify_forwarded`] lets a Rust backend check that a request
//!   was forwarded by the gateway, and read who made it.
//!
//! The SDK depends on `atoll-protocol` (and the pure format libraries
//! `atoll-delta` and `atoll-envelope`), never on server crates, so the wire
//! types are shared but the server's code is not.
#![warn(missing_docs)]

mod admin;
mod admin_analytics;
mod admin_delivery;
mod admin_gateway;
mod admin_push;
mod admin_switches;
mod admin_sync;
pub mod backend;
mod device;
mod error;
pub mod gateway;
pub mod offline;
mod retry;
pub mod switches;
pub mod sync;
pub mod tracker;
pub mod updates;

pub use admin::AdminClient;
pub use admin_delivery::ListWithIds;
pub use atoll_envelope as envelope;
pub use atoll_protocol as protocol;
pub use device::{Compression, DeviceClient, DeviceConfig, RequestOptions};
pub use error::{Error, Refusal, Result};
pub use gateway::GatewayResponse;
pub use offline::{OfflineLimits, OfflinePackages};
pub use retry::RetryPolicy;
pub use switches::Switches;
pub use sync::{SyncClient, SyncDatum, SyncEvent, SyncOptions, SyncStatus};
pub use tracker::{Tracker, TrackerConfig};
pub use updates::{Progress, Updater, UpdaterConfig, VerifiedFile};
