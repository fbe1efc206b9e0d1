//! Where the local adapter keeps its files, and how it talks to SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of the local adapters, built with chained setters:
///
/// ```
/// # use relay_local::LocalConfig;
/// # use std::time::Duration;
/// let config = LocalConfig::new("/var/lib/relay").busy_timeout(Duration::from_secs(10));
/// assert!(config.db_path().ends_with("relay.db"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    data_dir: PathBuf,
    busy_timeout: Duration,
    max_connections: u32,
}

impl LocalConfig {
    /// How long a writer waits for another process's write transaction before `Unavailable`.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// SQLite connections per store; writers are serialized anyway, readers run alongside.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

    /// Settings with defaults, keeping everything under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// Sets how long SQLite waits on a lock held by another connection or process.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the size of the SQLite connection pool (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The SQLite database: `<data-dir>/relay.db`.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("relay.db")
    }

    /// The object store's root: `<data-dir>/objects`.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// The notary's anchor files: `<data-dir>/anchors`.
    pub fn anchors_dir(&self) -> PathBuf {
        self.data_dir.join("anchors")
    }

    /// The secret files: `<data-dir>/secrets`.
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir.join("secrets")
    }

    /// The configured busy timeout.
    pub fn busy_timeout_value(&self) -> Duration {
        self.busy_timeout
    }

    /// The configured pool size.
    pub fn max_connections_value(&self) -> u32 {
        self.max_connections
    }
}
