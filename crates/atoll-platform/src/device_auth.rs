//! Verification of signed device requests (DESIGN.md §3).

use crate::nonces::{NonceOutcome, NonceStore};
use crate::store::{self, AppRow, APP_COLUMNS};
use crate::{Error, Result};
use atoll_core::clock::Clock;
use atoll_protocol::signing::{self, SignedParts};
use atoll_store::MetaStore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How long an app's secrets are cached: a rotation made on another node takes
/// effect here within this time (on this node, at once).
const APP_CACHE_TTL_MS: i64 = 5_000;
/// Most apps (known or unknown keys) cached at once.
const APP_CACHE_CAPACITY: usize = 10_000;

/// The signature headers of a device request, as received.
#[derive(Debug, Clone, Default)]
pub struct SignatureHeaders {
    /// `x-atoll-app-key`.
    pub app_key: Option<String>,
    /// `x-atoll-device-id`.
    pub device_id: Option<String>,
    /// `x-atoll-timestamp`.
    pub timestamp: Option<String>,
    /// `x-atoll-nonce`.
    pub nonce: Option<String>,
    /// `x-atoll-signature`.
    pub signature: Option<String>,
}

/// A verified device: which app and which device sent the request.
#[derive(Debug, Clone)]
pub struct DeviceCaller {
    /// Internal app id.
    pub app_id: String,
    /// Public app key.
    pub app_key: String,
    /// Workspace of the app.
    pub workspace_id: String,
    /// The device id from the signed header.
    pub device_id: String,
}

/// An app found by its key, without a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    /// Internal app id.
    pub app_id: String,
    /// Public app key.
    pub app_key: String,
    /// Workspace of the app.
    pub workspace_id: String,
}

#[derive(Debug, Clone)]
struct CachedApp {
    fetched_at: i64,
    app: Option<Arc<AppRow>>,
}

/// Checks device request signatures.
#[derive(Debug)]
pub struct DeviceVerifier {
    store: MetaStore,
    clock: Arc<dyn Clock>,
    window_secs: i64,
    nonces: NonceStore,
    apps: RwLock<HashMap<String, CachedApp>>,
}

impl DeviceVerifier {
    pub(crate) fn new(
        store: MetaStore,
        clock: Arc<dyn Clock>,
        window_secs: i64,
        nonces: NonceStore,
    ) -> DeviceVerifier {
        DeviceVerifier {
            store,
            clock,
            window_secs,
            nonces,
            apps: RwLock::new(HashMap::new()),
        }
    }

    /// The replay memory (saved on shutdown).
    pub fn nonces(&self) -> &NonceStore {
        &self.nonces
    }

    /// Drops an app from the cache after its secret changed or it was deleted.
    pub(crate) fn forget_app(&self, app_key: &str) {
        self.apps.write().expect("app cache lock").remove(app_key);
    }

    async fn app(&self, app_key: &str) -> Result<Option<Arc<AppRow>>> {
        let now = self.clock.now_ms();
        if let Some(cached) = self.apps.read().expect("app cache lock").get(app_key) {
            if now - cached.fetched_at < APP_CACHE_TTL_MS {
                return Ok(cached.app.clone());
            }
        }
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps a JOIN workspaces w ON w.id = a.workspace_id WHERE a.app_key = $1"
        ))
        .bind(app_key)
        .fetch_optional(self.store.pool())
        .await?;
        let app = row
            .map(|row| store::app_row(&row))
            .transpose()?
            .map(Arc::new);
        let mut apps = self.apps.write().expect("app cache lock");
        if apps.len() >= APP_CACHE_CAPACITY {
            apps.retain(|_, cached| now - cached.fetched_at < APP_CACHE_TTL_MS);
            if apps.len() >= APP_CACHE_CAPACITY {
                apps.clear();
            }
        }
        apps.insert(
            app_key.to_owned(),
            CachedApp {
                fetched_at: now,
                app: app.clone(),
            },
        );
        Ok(app)
    }

    /// Resolves an app by its public key alone, for gateway APIs that do not
    /// require a signature: `unknown_app` when no app has the key.
    pub async fn app_by_key(&self, app_key: &str) -> Result<AppIdentity> {
        let app = self.app(app_key).await?.ok_or(Error::UnknownApp)?;
        Ok(AppIdentity {
            app_id: app.id.clone(),
            app_key: app.app.app_key.clone(),
            workspace_id: app.workspace_id.clone(),
        })
    }

    /// Verifies a request: app, timestamp window, signature, then nonce. The body
    /// is the bytes as received (before decompression).
    pub async fn verify(
        &self,
        headers: &SignatureHeaders,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Result<DeviceCaller> {
        let missing = |name: &str| Error::MissingSignature(format!("header {name} is required"));
        let app_key = headers
            .app_key
            .as_deref()
            .ok_or_else(|| missing(signing::HEADER_APP_KEY))?;
        let device_id = headers
            .device_id
            .as_deref()
            .ok_or_else(|| missing(signing::HEADER_DEVICE_ID))?;
        let timestamp = headers
            .timestamp
            .as_deref()
            .ok_or_else(|| missing(signing::HEADER_TIMESTAMP))?;
        let nonce = headers
            .nonce
            .as_deref()
            .ok_or_else(|| missing(signing::HEADER_NONCE))?;
        let signature = headers
            .signature
            .as_deref()
            .ok_or_else(|| missing(signing::HEADER_SIGNATURE))?;
        atoll_core::validate::device_text_id("device_id", device_id).map_err(Error::Validation)?;
        if !signing::nonce_is_well_formed(nonce) {
            return Err(Error::MissingSignature(format!(
                "{}: {}-{} characters of [A-Za-z0-9_-]",
                signing::HEADER_NONCE,
                signing::NONCE_MIN_LEN,
                signing::NONCE_MAX_LEN
            )));
        }
        let timestamp: i64 = timestamp.parse().map_err(|_| {
            Error::MissingSignature(format!(
                "{}: Unix seconds expected",
                signing::HEADER_TIMESTAMP
            ))
        })?;

        let app = self.app(app_key).await?.ok_or(Error::UnknownApp)?;

        let now_secs = self.clock.now_secs();
        if (timestamp - now_secs).abs() > self.window_secs {
            return Err(Error::TimestampSkew(format!(
                "timestamp {timestamp} is {} s from the server's {now_secs}; the window is ±{} s",
                timestamp - now_secs,
                self.window_secs
            )));
        }
        if timestamp < self.nonces.fence_secs() {
            return Err(Error::TimestampSkew(format!(
                "timestamp {timestamp} predates the server's restart at {}; sign again",
                self.nonces.fence_secs()
            )));
        }

        let parts = SignedParts {
            app_key,
            device_id,
            method,
            path,
            query,
            timestamp,
            nonce,
            body,
        };
        let now_ms = self.clock.now_ms();
        let previous_valid = app
            .previous_secret_until
            .is_some_and(|until| until > now_ms);
        let matches = signing::verify(&app.secret, &parts, signature)
            || (previous_valid
                && app
                    .previous_secret
                    .as_deref()
                    .is_some_and(|previous| signing::verify(previous, &parts, signature)));
        if !matches {
            metrics::counter!("atoll_device_auth_failures_total", "reason" => "invalid_signature")
                .increment(1);
            return Err(Error::InvalidSignature);
        }

        match self
            .nonces
            .check_and_insert(&app.id, nonce, now_secs, timestamp + self.window_secs)
        {
            NonceOutcome::Fresh => {}
            NonceOutcome::Replayed => {
                metrics::counter!("atoll_device_auth_failures_total", "reason" => "replayed_nonce")
                    .increment(1);
                return Err(Error::ReplayedNonce);
            }
            NonceOutcome::Full => {
                metrics::counter!("atoll_device_auth_failures_total", "reason" => "nonce_store_full").increment(1);
                return Err(Error::Unavailable(
                    "replay memory is full; retry shortly".into(),
                ));
            }
        }
        Ok(DeviceCaller {
            app_id: app.id.clone(),
            app_key: app.app.app_key.clone(),
            workspace_id: app.workspace_id.clone(),
            device_id: device_id.to_owned(),
        })
    }
}
