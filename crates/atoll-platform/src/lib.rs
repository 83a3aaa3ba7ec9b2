//! The platform every module stands on: tenancy, access control, console users and
//! sessions, device identity, and the verification of signed device requests.
//!
//! [`PlatformService`] is the only way in. Every admin operation takes the
//! authenticated [`Principal`] and the workspace slug, and authorises itself with
//! the access rule of `atoll_core::access` before touching storage, so no caller
//! can forget the check or take the tenant from a request body. Every mutation
//! writes its audit entry in the same transaction as the change.
//!
//! Device requests are verified by [`DeviceVerifier`]: app lookup (cached), the
//! timestamp window, the HMAC signature (current secret, or the previous one during
//! a rotation's grace period) and the single-use nonce, in that order, so only
//! correctly signed requests can occupy nonce memory.

mod audit;
mod device_auth;
mod devices;
mod error;
mod nonces;
mod passwords;
mod principal;
mod profiles;
pub mod secrets;
mod sessions;
mod store;
mod tenancy;

pub use device_auth::{AppIdentity, DeviceCaller, DeviceVerifier, SignatureHeaders};
pub use devices::AppDeviceCount;
pub use error::{Error, Result};
pub use nonces::NonceStore;
pub use principal::{AppAccess, Principal, WorkspaceContext};
pub use sessions::{ConsoleSession, LoginThrottle};

use atoll_core::clock::Clock;
use atoll_store::MetaStore;
use std::sync::Arc;

/// Settings of the platform service.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// The public URL devices and the console reach this server at.
    pub public_url: String,
    /// Accepted distance between a device's timestamp and the server's clock, in seconds.
    pub signature_window_secs: i64,
    /// Most nonces remembered at once.
    pub nonce_capacity: usize,
    /// Lifetime of a console or CLI session, in seconds.
    pub session_ttl_secs: i64,
    /// Live sessions kept per user; a new login ends the oldest beyond this.
    pub max_sessions_per_user: u32,
    /// Audit entries older than this many days are deleted.
    pub audit_retention_days: u32,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        PlatformSettings {
            public_url: "http://127.0.0.1:7420".into(),
            signature_window_secs: 300,
            nonce_capacity: 1_000_000,
            session_ttl_secs: 7 * 24 * 3600,
            max_sessions_per_user: 20,
            audit_retention_days: 365,
        }
    }
}

/// Devices whose profile is cached at most.
const PROFILE_CACHE_DEVICES: usize = 200_000;

/// How often stale device profiles are dropped: their time to live.
pub const PROFILE_SWEEP_PERIOD: std::time::Duration = profiles::PROFILE_TTL;

/// Tenancy, users, sessions and devices.
#[derive(Debug, Clone)]
pub struct PlatformService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: MetaStore,
    clock: Arc<dyn Clock>,
    settings: PlatformSettings,
    verifier: DeviceVerifier,
    login_throttle: LoginThrottle,
    /// Devices' profiles, as `device_profile` reads them.
    profiles: profiles::ProfileCache,
}

impl PlatformService {
    /// A service over `store`, with `nonces` as the replay memory of device requests.
    pub fn new(
        store: MetaStore,
        clock: Arc<dyn Clock>,
        settings: PlatformSettings,
        nonces: NonceStore,
    ) -> PlatformService {
        let verifier = DeviceVerifier::new(
            store.clone(),
            clock.clone(),
            settings.signature_window_secs,
            nonces,
        );
        PlatformService {
            inner: Arc::new(Inner {
                login_throttle: LoginThrottle::new(clock.clone()),
                store,
                clock,
                settings,
                verifier,
                profiles: profiles::ProfileCache::new(PROFILE_CACHE_DEVICES),
            }),
        }
    }

    pub(crate) fn profiles(&self) -> &profiles::ProfileCache {
        &self.inner.profiles
    }

    /// Drops remembered device profiles past their time to live (housekeeping
    /// calls it every [`PROFILE_SWEEP_PERIOD`]). Returns how many.
    pub fn forget_stale_profiles(&self) -> usize {
        self.inner.profiles.forget_stale()
    }

    /// The metadata store.
    pub fn store(&self) -> &MetaStore {
        &self.inner.store
    }

    /// The settings in force.
    pub fn settings(&self) -> &PlatformSettings {
        &self.inner.settings
    }

    /// The verifier of signed device requests.
    pub fn verifier(&self) -> &DeviceVerifier {
        &self.inner.verifier
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }
}
