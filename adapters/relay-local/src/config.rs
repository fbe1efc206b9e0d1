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
    secret_backend: Option<SecretBackend>,
}

/// Where [`crate::LocalAdapters`] keep secrets (trail keys, token and seal keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecretBackend {
    /// Owner-only files under `<data-dir>/secrets` ([`crate::FileSecretProvider`]).
    #[default]
    File,
    /// The OS keyring's Secret Service (cargo feature `keyring`), items filed under
    /// `namespace`. When it cannot be used, the file provider stands in and
    /// [`crate::LocalAdapters::secrets_fallback`] says why.
    Keyring {
        /// Names this installation's items, e.g. the data directory's absolute path.
        namespace: String,
    },
}

impl SecretBackend {
    /// The configuration word: `file` or `keyring`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretBackend::File => "file",
            SecretBackend::Keyring { .. } => "keyring",
        }
    }
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
            secret_backend: None,
        }
    }

    /// Sets where secrets are kept, and records the choice in the data directory
    /// ([`Self::secret_provider_path`]) when the adapters are opened. Without it, the adapters
    /// use what the data directory recorded (files when nothing is recorded), so every command
    /// run on an installation (verify, export, keys, qualify) finds its keys where `run` keeps
    /// them.
    pub fn secret_backend(mut self, backend: SecretBackend) -> Self {
        self.secret_backend = Some(backend);
        self
    }

    /// Where secrets are kept, when set explicitly.
    pub fn secret_backend_value(&self) -> Option<&SecretBackend> {
        self.secret_backend.as_ref()
    }

    /// The record of which secret provider holds this installation's keys:
    /// `<data-dir>/secret-provider.json` (absent: files).
    pub fn secret_provider_path(&self) -> PathBuf {
        self.data_dir.join("secret-provider.json")
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
