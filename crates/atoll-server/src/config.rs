//! Configuration: one serde tree, layered defaults < file < `ATOLL_*` env < flags.
//!
//! The layers are merged as TOML tables before the tree is deserialised, so every
//! layer is checked by the same `deny_unknown_fields` rules. Environment variables
//! are derived from the tree itself (`ATOLL_<SECTION>_<KEY>`, e.g.
//! `ATOLL_DEVICE_SIGNATURE_WINDOW_SECS`), and the environment is passed in as a map
//! rather than read from the process, so tests stay hermetic.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The whole configuration of a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Folder for the SQLite database, blobs and local state.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; empty for an SQLite file in the data folder.
    pub database_url: String,
    /// URL devices and browsers reach this node at; empty for `http://<listen>`.
    pub public_url: String,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter, e.g. `info` or `atoll_server=debug,info`.
    pub log_level: String,
    /// Device API settings.
    pub device: DeviceConfig,
    /// Admin API and console settings.
    pub admin: AdminConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Event ingestion and the event store.
    pub analytics: AnalyticsConfig,
    /// Packages, releases and update checks.
    pub delivery: DeliverySettings,
    /// The mobile gateway (`/gw/v1`).
    pub gateway: GatewayOptions,
    /// Real-time sync and the device connection (`/device/v1/connect`).
    pub sync: SyncOptions,
    /// Push notifications.
    pub push: PushOptions,
    /// The key that seals stored secrets (vendor credentials), base64 of 32
    /// bytes; every node of a cluster needs the same one. Empty: a key file
    /// `secrets.key` in the data folder, created on first start.
    pub secrets_key: String,
}

/// Push settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushOptions {
    /// Deliveries claimed per round.
    pub batch: usize,
    /// Deliveries in flight on this node at most.
    pub max_in_flight: usize,
    /// Vendor requests in flight per app and vendor, unless the channel says.
    pub vendor_concurrency: u32,
    /// Vendor sends per second per app and vendor, unless the channel says (0: no limit).
    pub vendor_rate_per_sec: u32,
    /// Send attempts before a delivery fails for good.
    pub max_attempts: u32,
    /// A claimed delivery not finished within this is sent again (seconds): what
    /// a crash costs in delay.
    pub lease_secs: u64,
    /// First retry delay (milliseconds; doubled per attempt, with jitter).
    pub retry_base_ms: u64,
    /// Days tasks and deliveries are kept (daily counters are kept).
    pub retention_days: u32,
    /// Vendor request timeout (seconds).
    pub vendor_timeout_secs: u64,
    /// PEM files of extra CA certificates trusted for vendor endpoints (local
    /// fakes in tests and benchmarks).
    pub vendor_extra_ca_files: Vec<String>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            batch: 512,
            max_in_flight: 4096,
            vendor_concurrency: 64,
            vendor_rate_per_sec: 0,
            max_attempts: 5,
            lease_secs: 60,
            retry_base_ms: 2000,
            retention_days: 30,
            vendor_timeout_secs: 10,
            vendor_extra_ca_files: Vec::new(),
        }
    }
}

/// Sync and device connection settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncOptions {
    /// This node's name in the console; empty for the host name.
    pub node_name: String,
    /// How often clients ping (seconds).
    pub heartbeat_secs: u64,
    /// A connection silent this long is closed (seconds).
    pub idle_timeout_secs: u64,
    /// Unacknowledged data is delivered again after this long (seconds).
    pub ack_timeout_secs: u64,
    /// A connection whose writes stall this long is cut off (seconds).
    pub write_timeout_secs: u64,
    /// Bytes queued for one connection before it is cut off as too slow.
    pub outbox_max_bytes: usize,
    /// Data in flight per stream before waiting for acknowledgements.
    pub window: u64,
    /// Device connections per node.
    pub max_connections: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            node_name: String::new(),
            heartbeat_secs: 30,
            idle_timeout_secs: 90,
            ack_timeout_secs: 30,
            write_timeout_secs: 10,
            outbox_max_bytes: 1 << 20,
            window: 64,
            max_connections: 200_000,
        }
    }
}

/// Gateway settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayOptions {
    /// Backends that may be private addresses (the SSRF guard refuses loopback,
    /// private, link-local and metadata addresses otherwise): host names,
    /// `host:port`, `*.domain`, IPs and CIDRs. In the environment: comma-separated.
    pub allowed_backends: Vec<String>,
    /// Bytes of cached backend responses, all APIs together.
    pub cache_max_bytes: usize,
    /// Rate-limit buckets (apps, APIs, devices) kept at most.
    pub limiter_max_keys: usize,
    /// Whether every call is logged (target `atoll::gateway::access`).
    pub access_log: bool,
    /// Idle keep-alive connections kept per backend host.
    pub pool_max_idle_per_host: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            allowed_backends: Vec::new(),
            cache_max_bytes: 64 << 20,
            limiter_max_keys: 200_000,
            access_log: true,
            pool_max_idle_per_host: 256,
        }
    }
}

/// Delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Largest package upload, in bytes.
    pub max_package_bytes: u64,
    /// Seconds devices wait between update checks.
    pub check_interval_secs: u32,
    /// Largest package delta patches are made for, in bytes (the diff holds
    /// both versions in memory).
    pub delta_max_file_bytes: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_package_bytes: 2 << 30,
            check_interval_secs: 600,
            delta_max_file_bytes: 512 << 20,
        }
    }
}

/// Device API settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Accepted clock distance of a signed request, in seconds.
    pub signature_window_secs: i64,
    /// Most nonces remembered at once.
    pub nonce_capacity: usize,
    /// Largest request body as received (compressed or not), in bytes.
    pub max_body_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_decompressed_bytes: usize,
    /// Sustained device requests per second per app.
    pub rate_per_app_per_sec: u32,
    /// Burst of device requests per app above the sustained rate.
    pub rate_burst_per_app: u32,
}

/// Admin API and console settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Lifetime of a console or CLI session, in hours.
    pub session_ttl_hours: i64,
    /// Largest admin request body, in bytes.
    pub max_body_bytes: usize,
    /// Live sessions kept per user; a new login ends the oldest beyond this.
    pub max_sessions_per_user: u32,
    /// Audit entries older than this many days are deleted.
    pub audit_retention_days: u32,
}

/// Event ingestion and the event store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Most events in one batch.
    pub max_events_per_batch: usize,
    /// Most custom attributes per event.
    pub max_attributes: usize,
    /// Events dated further ahead of the server's clock are clamped to the receive time, in seconds.
    pub max_future_secs: i64,
    /// Events older than this many days refuse their batch (`event_time_out_of_range`).
    pub max_age_days: i64,
    /// Buffered events are written to Parquet segments at least this often, in seconds.
    pub flush_interval_secs: u64,
    /// ... or as soon as this many events are buffered.
    pub flush_rows: usize,
    /// Above this many unflushed events, ingestion answers 503 with `Retry-After`.
    pub max_unflushed_rows: usize,
    /// Recent event uuids remembered to store retried batches once (about 40 bytes each).
    pub dedup_capacity: usize,
    /// Batches waiting for the log writer; beyond this, 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// Threads one report query may use.
    pub query_threads: usize,
    /// How often days past each app's retention are deleted, in seconds.
    pub retention_check_interval_secs: u64,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            max_events_per_batch: 500,
            max_attributes: 25,
            max_future_secs: 600,
            max_age_days: 7,
            flush_interval_secs: 10,
            flush_rows: 250_000,
            max_unflushed_rows: 4_000_000,
            dedup_capacity: 2_000_000,
            queue_capacity: 4096,
            query_threads: 2,
            retention_check_interval_secs: 3600,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// After SIGTERM, how long in-flight requests may take to finish, in seconds.
    pub drain_timeout_secs: u64,
    /// Longest a request may take before it is answered 503, in seconds.
    pub request_timeout_secs: u64,
    /// Requests handled at once; more are answered 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Longest wait for a complete request head, in seconds (slowloris guard;
    /// also closes keep-alive connections idle that long).
    pub header_read_timeout_secs: u64,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7420".into(),
            data_dir: PathBuf::from("./atoll-data"),
            database_url: String::new(),
            public_url: String::new(),
            log_format: "text".into(),
            log_level: "info".into(),
            device: DeviceConfig::default(),
            admin: AdminConfig::default(),
            http: HttpConfig::default(),
            analytics: AnalyticsConfig::default(),
            delivery: DeliverySettings::default(),
            gateway: GatewayOptions::default(),
            sync: SyncOptions::default(),
            push: PushOptions::default(),
            secrets_key: String::new(),
        }
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            signature_window_secs: 300,
            nonce_capacity: 1_000_000,
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 1024 * 1024,
            rate_per_app_per_sec: 5000,
            rate_burst_per_app: 10_000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            session_ttl_hours: 24 * 7,
            max_body_bytes: 1024 * 1024,
            max_sessions_per_user: 20,
            audit_retention_days: 365,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            drain_timeout_secs: 10,
            request_timeout_secs: 30,
            max_concurrent_requests: 2048,
            header_read_timeout_secs: 30,
            max_connections: 25_000,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer is not valid TOML or does not fit the tree (unknown key, wrong type).
    #[error("invalid configuration ({layer}): {message}")]
    Invalid {
        /// Which layer: the file, the environment or the flags.
        layer: String,
        /// The parser's message.
        message: String,
    },
}

impl Config {
    /// Loads the configuration: defaults < `file` < `env` (`ATOLL_*`) < `flags`.
    /// `flags` is a table in the same shape as the file (e.g. `{listen = "…"}`).
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        flags: toml::Table,
    ) -> Result<Config, ConfigError> {
        let invalid = |layer: &str, message: String| ConfigError::Invalid {
            layer: layer.to_owned(),
            message,
        };
        let mut merged = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|error| invalid(&path.display().to_string(), error.to_string()))?;
            // Check the file alone first, so its errors name the file.
            toml::Value::Table(table.clone())
                .try_into::<Config>()
                .map_err(|error| invalid(&path.display().to_string(), error.to_string()))?;
            merge(&mut merged, table);
        }
        merge(
            &mut merged,
            env_layer(env).map_err(|message| invalid("environment", message))?,
        );
        merge(&mut merged, flags);
        toml::Value::Table(merged)
            .try_into::<Config>()
            .map_err(|error| invalid("flags", error.to_string()))
    }

    /// The database URL in force: the configured one, or the SQLite file.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            atoll_store::MetaStore::sqlite_url_for(&self.data_dir.join("meta.db"))
        } else {
            self.database_url.clone()
        }
    }

    /// The public URL in force.
    pub fn effective_public_url(&self, bound: std::net::SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }
}

/// Deep-merges `layer` into `base`: tables merge, other values replace.
fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The environment layer: for every leaf of the default tree, `ATOLL_<PATH>` in
/// upper case with `_` between the parts, parsed to the leaf's type.
fn env_layer(env: &HashMap<String, String>) -> Result<toml::Table, String> {
    let defaults = toml::Table::try_from(Config::default()).map_err(|error| error.to_string())?;
    let mut layer = toml::Table::new();
    collect_env(&defaults, &mut Vec::new(), env, &mut layer)?;
    Ok(layer)
}

fn collect_env(
    defaults: &toml::Table,
    path: &mut Vec<String>,
    env: &HashMap<String, String>,
    out: &mut toml::Table,
) -> Result<(), String> {
    for (key, default) in defaults {
        path.push(key.clone());
        if let toml::Value::Table(section) = default {
            let mut nested = toml::Table::new();
            collect_env(section, path, env, &mut nested)?;
            if !nested.is_empty() {
                out.insert(key.clone(), toml::Value::Table(nested));
            }
        } else {
            let name = format!("ATOLL_{}", path.join("_").to_ascii_uppercase());
            if let Some(raw) = env.get(&name) {
                let value = match default {
                    toml::Value::Integer(_) => raw
                        .parse::<i64>()
                        .map(toml::Value::Integer)
                        .map_err(|_| format!("{name}: an integer is expected, got '{raw}'"))?,
                    toml::Value::Boolean(_) => raw
                        .parse::<bool>()
                        .map(toml::Value::Boolean)
                        .map_err(|_| format!("{name}: true or false is expected, got '{raw}'"))?,
                    toml::Value::Array(_) => toml::Value::Array(
                        raw.split(',')
                            .map(str::trim)
                            .filter(|item| !item.is_empty())
                            .map(|item| toml::Value::String(item.to_owned()))
                            .collect(),
                    ),
                    _ => toml::Value::String(raw.clone()),
                };
                out.insert(key.clone(), value);
            }
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_reference_config_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/atoll.toml");
        let loaded = Config::load(Some(&path), &HashMap::new(), toml::Table::new()).unwrap();
        assert_eq!(
            loaded,
            Config::default(),
            "config/atoll.toml documents the defaults"
        );
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atoll.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:1\"\n[device]\nsignature_window_secs = 60\nrate_burst_per_app = 5\n").unwrap();
        let mut flags = toml::Table::new();
        flags.insert("listen".into(), toml::Value::String("127.0.0.1:3".into()));
        let loaded = Config::load(
            Some(&path),
            &env(&[
                ("ATOLL_LISTEN", "127.0.0.1:2"),
                ("ATOLL_DEVICE_SIGNATURE_WINDOW_SECS", "30"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(loaded.listen, "127.0.0.1:3");
        assert_eq!(loaded.device.signature_window_secs, 30);
        assert_eq!(loaded.device.rate_burst_per_app, 5);
        assert_eq!(
            loaded.device.max_body_bytes,
            DeviceConfig::default().max_body_bytes
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atoll.toml");
        std::fs::write(&path, "[device]\nsignature_windw_secs = 60\n").unwrap();
        let error = Config::load(Some(&path), &HashMap::new(), toml::Table::new()).unwrap_err();
        assert!(
            error.to_string().contains("signature_windw_secs"),
            "{error}"
        );
        let error = Config::load(
            None,
            &env(&[("ATOLL_HTTP_DRAIN_TIMEOUT_SECS", "soon")]),
            toml::Table::new(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("ATOLL_HTTP_DRAIN_TIMEOUT_SECS"),
            "{error}"
        );
    }
}
