//! Switches (remote config) on the device: local defaults, the last fetched
//! values cached on disk, conditional fetches, change listeners and polling.
//!
//! A value is read from, in order: the last values fetched from the server (kept
//! across restarts in `atoll-switches.json` in the SDK's folder), then the app's
//! local defaults. Reads never touch the network, so an app starts with what it
//! had last time even offline. [`Switches::fetch`] asks the server with the
//! `ETag` of what it has; an unchanged answer is a bodiless `304`.

use crate::device::{DeviceClient, RequestOptions};
use crate::error::{Error, Result};
use atoll_protocol::switches::SwitchValues;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

const CACHE_FILE: &str = "atoll-switches.json";

/// What is kept on disk between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Cached {
    etag: Option<String>,
    version: u64,
    values: BTreeMap<String, Value>,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The server's values are the ones already held.
    Unchanged,
    /// New values arrived; these keys changed (added, removed or new value).
    Updated(Vec<String>),
}

/// A change notification: the set version and the keys that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchChange {
    /// The version of the server's set now held.
    pub version: u64,
    /// Keys whose value changed.
    pub keys: Vec<String>,
}

/// The device's view of its app's switches.
#[derive(Debug)]
pub struct Switches {
    client: Arc<DeviceClient>,
    defaults: BTreeMap<String, Value>,
    cache_path: PathBuf,
    current: RwLock<Cached>,
    changes: watch::Sender<SwitchChange>,
}

impl Switches {
    /// Switches with the app's local `defaults`, starting from the values cached
    /// by a previous run (a missing or unreadable cache starts empty).
    pub fn new(client: Arc<DeviceClient>, defaults: BTreeMap<String, Value>) -> Switches {
        let cache_path = client.storage_dir().join(CACHE_FILE);
        let cached: Cached = std::fs::read(&cache_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let (changes, _) = watch::channel(SwitchChange {
            version: cached.version,
            keys: Vec::new(),
        });
        Switches {
            client,
            defaults,
            cache_path,
            current: RwLock::new(cached),
            changes,
        }
    }

    /// The value of `key`: fetched, else the local default.
    pub fn value(&self, key: &str) -> Option<Value> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .values
            .get(key)
            .or_else(|| self.defaults.get(key))
            .cloned()
    }

    /// A bool switch, or `fallback` when it is unset or not a bool.
    pub fn bool(&self, key: &str, fallback: bool) -> bool {
        self.value(key)
            .and_then(|v| v.as_bool())
            .unwrap_or(fallback)
    }

    /// A number switch, or `fallback`.
    pub fn number(&self, key: &str, fallback: f64) -> f64 {
        self.value(key).and_then(|v| v.as_f64()).unwrap_or(fallback)
    }

    /// A string switch, or `fallback`.
    pub fn string(&self, key: &str, fallback: &str) -> String {
        self.value(key)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// The version of the server's set the held values come from (0: none yet).
    pub fn version(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .version
    }

    /// A receiver that wakes on every change of values (a change listener).
    pub fn subscribe(&self) -> watch::Receiver<SwitchChange> {
        self.changes.subscribe()
    }

    /// Asks the server for this device's values, conditionally on the held
    /// `ETag`; new values are saved to disk before listeners are told.
    pub async fn fetch(&self) -> Result<FetchOutcome> {
        let etag = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .etag
            .clone();
        let mut options = RequestOptions::default();
        if let Some(etag) = etag {
            options.headers.push(("if-none-match", etag));
        }
        let response = self
            .client
            .send_raw("GET", "/device/v1/config", "", b"", &options)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::Unchanged);
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let answer: SwitchValues = response
            .json()
            .await
            .map_err(|error| Error::Decode(error.to_string()))?;
        let fetched = Cached {
            etag,
            version: answer.version,
            values: answer.values,
        };
        let previous = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values
            .clone();
        self.save(&fetched)?;
        let keys: BTreeSet<&String> = previous.keys().chain(fetched.values.keys()).collect();
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|key| previous.get(*key) != fetched.values.get(*key))
            .cloned()
            .collect();
        let version = fetched.version;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fetched;
        if changed.is_empty() {
            return Ok(FetchOutcome::Unchanged);
        }
        self.changes.send_replace(SwitchChange {
            version,
            keys: changed.clone(),
        });
        Ok(FetchOutcome::Updated(changed))
    }

    /// Writes the cache atomically (temporary file, fsync, rename), so a crash
    /// leaves the old or the new values, never half of them.
    fn save(&self, cached: &Cached) -> Result<()> {
        use std::io::Write;
        let bytes = serde_json::to_vec(cached).map_err(|error| Error::Decode(error.to_string()))?;
        let temporary = self.cache_path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.cache_path)?;
        Ok(())
    }

    /// Fetches now and then every `interval` until the returned task is
    /// aborted. Failures are skipped (the next round retries); values stay.
    pub fn poll(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let switches = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let _ = switches.fetch().await;
            }
        })
    }
}
