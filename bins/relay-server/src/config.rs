//! `relay-server run` configuration: built-in defaults, then a TOML file, then `RELAY_*`
//! environment variables (nested keys with `__`, e.g. `RELAY_STORAGE__PROVIDER=selfhosted`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Which adapter holds the server's trails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageProvider {
    /// SQLite + filesystem under `data_dir` (a single box).
    #[default]
    Local,
    /// Postgres + S3-compatible Object Lock storage (`relay-selfhosted`).
    Selfhosted,
}

/// `[storage]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` or `selfhosted`.
    pub provider: StorageProvider,
    /// Runtime DSN of Postgres (selfhosted); `RELAY_STORAGE__PG_DSN` keeps it out of files.
    pub pg_dsn: Option<String>,
    /// Object Lock bucket of the S3 notary (selfhosted); endpoint, region and credentials come
    /// from `RELAY_S3_ENDPOINT`, `RELAY_S3_REGION`, `RELAY_S3_ACCESS_KEY`, `RELAY_S3_SECRET_KEY`.
    pub s3_bucket: Option<String>,
}

/// Which clock stamps the server's own records and judges edge clock skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeSourceKind {
    /// The host clock.
    #[default]
    System,
    /// The host clock validated against `ntp_servers` (SNTP).
    Ntp,
}

/// Everything `relay-server run` can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the local provider keeps its database, and where secrets and anchors live.
    pub data_dir: PathBuf,
    /// The server's id (its own events' device).
    pub device: String,
    /// Listener address.
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Edge ids allowed to ingest (each with the secret `ingest-token.<edge>`); empty: ingest
    /// disabled (503), with a start-up warning.
    pub ingest_edges: Vec<String>,
    /// Edge clock skew (ms) beyond which a `CLOCK_SKEW` event is recorded.
    pub clock_skew_threshold_ms: u64,
    /// Interval (s) at which every trail head is notarized.
    pub notary_interval_secs: u64,
    /// `system` or `ntp`.
    pub time_source: TimeSourceKind,
    /// NTP servers for `time_source = "ntp"`.
    pub ntp_servers: Vec<String>,
    /// Refuse every account registration, even by an administrator.
    pub registration_closed: bool,
    /// Storage.
    pub storage: StorageConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./relay-server-data"),
            device: "relay-server".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8471)),
            tls_cert: None,
            tls_key: None,
            ingest_edges: Vec::new(),
            clock_skew_threshold_ms: 2000,
            notary_interval_secs: 900,
            time_source: TimeSourceKind::System,
            ntp_servers: Vec::new(),
            registration_closed: false,
            storage: StorageConfig::default(),
        }
    }
}

/// The configuration keys, which are also the `RELAY_*` environment variables read.
pub const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "device",
    "listen",
    "tls_cert",
    "tls_key",
    "ingest_edges",
    "clock_skew_threshold_ms",
    "notary_interval_secs",
    "time_source",
    "ntp_servers",
    "registration_closed",
    "storage",
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// A value is malformed or a key unknown.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads the configuration from defaults, `file` and the environment.
pub fn load(file: Option<&Path>) -> Result<ServerConfig, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(ServerConfig::default()));
    if let Some(file) = file {
        if !file.is_file() {
            return Err(ConfigError::Missing(file.to_path_buf()));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Env::prefixed("RELAY_").split("__").filter(|k| {
        let k = k.as_str().to_ascii_lowercase();
        CONFIG_KEYS
            .iter()
            .any(|c| k == *c || k.starts_with(&format!("{c}__")))
    }));
    let config: ServerConfig = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ConfigError::Invalid(
            "tls_cert and tls_key go together".into(),
        ));
    }
    if config.notary_interval_secs == 0 {
        return Err(ConfigError::Invalid(
            "notary_interval_secs must be at least 1".into(),
        ));
    }
    if config.time_source == TimeSourceKind::Ntp && config.ntp_servers.is_empty() {
        return Err(ConfigError::Invalid(
            "time_source = \"ntp\" needs at least one entry in ntp_servers".into(),
        ));
    }
    if config.storage.provider == StorageProvider::Selfhosted
        && (config.storage.pg_dsn.is_none() || config.storage.s3_bucket.is_none())
    {
        return Err(ConfigError::Invalid(
            "storage.provider = \"selfhosted\" needs storage.pg_dsn and storage.s3_bucket".into(),
        ));
    }
    Ok(config)
}

#[cfg(test)]
// figment::Jail's closures return figment's large error type.
#[allow(clippy::result_large_err, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_with_nested_storage_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "server.toml",
                "ingest_edges = [\"ws-1\"]\n[storage]\nprovider = \"local\"\n",
            )?;
            jail.set_env("RELAY_CLOCK_SKEW_THRESHOLD_MS", "500");
            jail.set_env("RELAY_LOG", "debug");
            let c = load(Some(Path::new("server.toml"))).unwrap();
            assert_eq!(c.ingest_edges, vec!["ws-1".to_owned()]);
            assert_eq!(c.clock_skew_threshold_ms, 500);
            assert_eq!(c.storage.provider, StorageProvider::Local);
            jail.create_file("bad.toml", "[storage]\nprovider = \"selfhosted\"\n")?;
            let err = load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.to_string().contains("pg_dsn"), "{err}");
            jail.create_file("bad2.toml", "ingest_edge = []\n")?;
            let err = load(Some(Path::new("bad2.toml"))).unwrap_err();
            assert!(err.to_string().contains("ingest_edge"), "{err}");
            Ok(())
        });
    }
}
