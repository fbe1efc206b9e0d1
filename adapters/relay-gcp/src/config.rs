//! Settings of the GCP adapters: how to reach Google Cloud, and what each port uses.
//!
//! The crate never reads the environment itself (only binaries do, see docs/ARCHITECTURE.md):
//! [`GcpConfig::from_vars`] takes a lookup function, to which binaries and tests pass
//! `|name| std::env::var(name).ok()`. Application Default Credentials are the one exception the
//! platform defines: with [`GcpAuth::ApplicationDefault`] the auth library looks for
//! `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud user credentials, or the metadata server.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// How the adapters authenticate to Google Cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcpAuth {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud user
    /// credentials, or the metadata server of the VM / Cloud Run service / GKE workload.
    ApplicationDefault,
    /// A service-account (or authorized-user) JSON key file at this path.
    CredentialsFile(PathBuf),
    /// No credentials: only for the storage emulator and the test protocol fakes.
    Anonymous,
}

/// Why settings could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GcpConfigError {
    /// A required variable is missing or empty.
    #[error("{name} is required")]
    Missing {
        /// The variable.
        name: String,
    },
    /// A variable holds a value that cannot be used.
    #[error("{name}={value:?} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is expected.
        why: &'static str,
    },
}

/// How to reach Google Cloud: project, credentials, endpoints, and the limits every provider
/// call runs under (an explicit per-attempt timeout, a bounded number of attempts with
/// backoff, and an overall deadline per operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConnection {
    /// The project that owns the Secret Manager secrets; when `None`, the project of the
    /// credentials (key file or metadata server) is used.
    pub project: Option<String>,
    /// How to authenticate.
    pub auth: GcpAuth,
    /// The Cloud Storage endpoint (an emulator's URL in tests).
    pub storage_endpoint: String,
    /// The Secret Manager endpoint (a protocol fake's URL in tests).
    pub secret_manager_endpoint: String,
    /// Connection establishment limit.
    pub connect_timeout: Duration,
    /// Limit of one HTTP attempt, body included (an 8 MiB upload on a slow link fits).
    pub attempt_timeout: Duration,
    /// Limit of one operation including every retry and backoff.
    pub operation_timeout: Duration,
    /// Attempts per operation (first try included); only temporary failures are retried.
    pub max_attempts: u32,
}

impl GcpConnection {
    /// The public Cloud Storage endpoint.
    pub const STORAGE_ENDPOINT: &'static str = "https://storage.googleapis.com";
    /// The public Secret Manager endpoint.
    pub const SECRET_MANAGER_ENDPOINT: &'static str = "https://secretmanager.googleapis.com";
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default per-attempt timeout.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default per-operation timeout.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default attempts per operation.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// The public endpoints with Application Default Credentials and default limits.
    pub fn new() -> Self {
        Self {
            project: None,
            auth: GcpAuth::ApplicationDefault,
            storage_endpoint: Self::STORAGE_ENDPOINT.to_owned(),
            secret_manager_endpoint: Self::SECRET_MANAGER_ENDPOINT.to_owned(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Sets the connect, per-attempt and per-operation timeouts.
    pub fn timeouts(mut self, connect: Duration, attempt: Duration, operation: Duration) -> Self {
        self.connect_timeout = connect;
        self.attempt_timeout = attempt;
        self.operation_timeout = operation;
        self
    }

    /// Sets the attempts per operation (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

impl Default for GcpConnection {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings of the [`GcsObjectStore`](crate::GcsObjectStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsObjectStoreOptions {
    /// The bucket.
    pub bucket: String,
    /// Prepended to every key (`objects/`), so one bucket can hold objects and anchors.
    pub prefix: String,
}

impl GcsObjectStoreOptions {
    /// Objects under `objects/` in `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: "objects/".to_owned(),
        }
    }
}

/// Settings of the [`GcsNotary`](crate::GcsNotary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsNotaryOptions {
    /// The bucket; it must carry a *locked* retention policy of at least `min_retention`
    /// unless `allow_non_worm`.
    pub bucket: String,
    /// Prepended to every anchor name (`anchors/`).
    pub prefix: String,
    /// The shortest bucket retention period accepted as WORM (Part 11 records: years).
    pub min_retention: Duration,
    /// Runs against a bucket without a locked retention policy (or with a shorter one), with a
    /// loud warning and posture `Unenforced`. Never in production.
    pub allow_non_worm: bool,
}

impl GcsNotaryOptions {
    /// Default shortest accepted retention: ten years (365-day years), as the S3 notary locks
    /// its anchors.
    pub const DEFAULT_MIN_RETENTION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Anchors under `anchors/` in `bucket`, which must be locked for at least
    /// [`Self::DEFAULT_MIN_RETENTION`].
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: "anchors/".to_owned(),
            min_retention: Self::DEFAULT_MIN_RETENTION,
            allow_non_worm: false,
        }
    }
}

/// Settings of the [`SecretManagerProvider`](crate::SecretManagerProvider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretManagerOptions {
    /// Prepended to every secret id (`relay-`), so the relay's secrets are easy to grant and
    /// never collide with others in the project.
    pub prefix: String,
}

impl Default for SecretManagerOptions {
    fn default() -> Self {
        Self {
            prefix: "relay-".to_owned(),
        }
    }
}

/// Everything [`open`](crate::open) needs: the connection and the settings of each port.
///
/// ```
/// # use relay_gcp::GcpConfig;
/// let vars = |name: &str| match name {
///     "RELAY_GCP_BUCKET" => Some("lab-relay-objects".to_owned()),
///     "RELAY_GCP_NOTARY_BUCKET" => Some("lab-relay-anchors".to_owned()),
///     "RELAY_GCP_PROJECT" => Some("lab-prod".to_owned()),
///     _ => None,
/// };
/// let config = GcpConfig::from_vars("RELAY_GCP_", vars).unwrap();
/// assert_eq!(config.notary.bucket, "lab-relay-anchors");
/// assert!(!config.notary.allow_non_worm);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConfig {
    /// How to reach Google Cloud.
    pub connection: GcpConnection,
    /// The object store's bucket and prefix.
    pub objects: GcsObjectStoreOptions,
    /// The notary's bucket, prefix and WORM requirement.
    pub notary: GcsNotaryOptions,
    /// The secret provider's naming.
    pub secrets: SecretManagerOptions,
}

impl GcpConfig {
    /// Objects and anchors in one `bucket` (whose retention policy must then be locked), the
    /// public endpoints and Application Default Credentials.
    pub fn new(bucket: impl Into<String>) -> Self {
        let bucket = bucket.into();
        Self {
            connection: GcpConnection::new(),
            objects: GcsObjectStoreOptions::new(bucket.clone()),
            notary: GcsNotaryOptions::new(bucket),
            secrets: SecretManagerOptions::default(),
        }
    }

    /// Settings from variables, looked up through `var` (binaries pass `std::env::var`):
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `<prefix>BUCKET` | bucket of the object store | required |
    /// | `<prefix>NOTARY_BUCKET` | bucket of the notary (locked retention) | `<prefix>BUCKET` |
    /// | `<prefix>NOTARY_MIN_RETENTION_DAYS` | shortest accepted locked retention | 3650 |
    /// | `<prefix>ALLOW_NON_WORM` | `true` runs the notary unlocked, posture `Unenforced` | `false` |
    /// | `<prefix>PROJECT` | project of the secrets | the credentials' project |
    /// | `<prefix>SECRET_PREFIX` | prefix of secret ids | `relay-` |
    /// | `<prefix>CREDENTIALS_FILE` | service-account key file | Application Default Credentials |
    /// | `<prefix>ANONYMOUS` | `true`: no credentials (emulators only) | `false` |
    /// | `<prefix>STORAGE_ENDPOINT` | Cloud Storage endpoint | the public one |
    /// | `<prefix>SECRET_MANAGER_ENDPOINT` | Secret Manager endpoint | the public one |
    /// | `<prefix>ATTEMPT_TIMEOUT_SECS` | limit of one HTTP attempt | 60 |
    /// | `<prefix>MAX_ATTEMPTS` | attempts per call | 3 |
    pub fn from_vars(
        prefix: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GcpConfigError> {
        let name = |n: &str| format!("{prefix}{n}");
        let get = |n: &str| var(&name(n)).filter(|v| !v.trim().is_empty());
        let bucket = get("BUCKET").ok_or_else(|| GcpConfigError::Missing {
            name: name("BUCKET"),
        })?;
        let mut config = Self::new(bucket);
        if let Some(b) = get("NOTARY_BUCKET") {
            config.notary.bucket = b;
        }
        if let Some(days) = get("NOTARY_MIN_RETENTION_DAYS") {
            let days: u64 = parse(&name("NOTARY_MIN_RETENTION_DAYS"), &days, "whole days")?;
            config.notary.min_retention = Duration::from_secs(days.saturating_mul(24 * 3600));
        }
        if let Some(v) = get("ALLOW_NON_WORM") {
            config.notary.allow_non_worm = flag(&name("ALLOW_NON_WORM"), &v)?;
        }
        config.connection.project = get("PROJECT");
        if let Some(p) = get("SECRET_PREFIX") {
            config.secrets.prefix = p;
        }
        if let Some(path) = get("CREDENTIALS_FILE") {
            config.connection.auth = GcpAuth::CredentialsFile(PathBuf::from(path));
        }
        if let Some(v) = get("ANONYMOUS")
            && flag(&name("ANONYMOUS"), &v)?
        {
            config.connection.auth = GcpAuth::Anonymous;
        }
        if let Some(e) = get("STORAGE_ENDPOINT") {
            config.connection.storage_endpoint = e.trim_end_matches('/').to_owned();
        }
        if let Some(e) = get("SECRET_MANAGER_ENDPOINT") {
            config.connection.secret_manager_endpoint = e.trim_end_matches('/').to_owned();
        }
        if let Some(secs) = get("ATTEMPT_TIMEOUT_SECS") {
            let secs: u64 = parse(&name("ATTEMPT_TIMEOUT_SECS"), &secs, "whole seconds")?;
            let attempt = Duration::from_secs(secs.max(1));
            config.connection.attempt_timeout = attempt;
            config.connection.operation_timeout = config.connection.operation_timeout.max(attempt);
        }
        if let Some(n) = get("MAX_ATTEMPTS") {
            let n: u32 = parse(&name("MAX_ATTEMPTS"), &n, "a count of attempts")?;
            config.connection = config.connection.max_attempts(n);
        }
        Ok(config)
    }
}

fn parse<T: std::str::FromStr>(
    name: &str,
    value: &str,
    why: &'static str,
) -> Result<T, GcpConfigError> {
    value.trim().parse().map_err(|_| GcpConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        why,
    })
}

fn flag(name: &str, value: &str) -> Result<bool, GcpConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(GcpConfigError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            why: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vars_needs_a_bucket_and_defaults_to_worm_and_adc() {
        let missing = GcpConfig::from_vars("T_", |_| None).unwrap_err();
        assert!(matches!(missing, GcpConfigError::Missing { ref name } if name == "T_BUCKET"));
        let config =
            GcpConfig::from_vars("T_", |n| (n == "T_BUCKET").then(|| "b".to_owned())).unwrap();
        assert_eq!(config.objects.bucket, "b");
        assert_eq!(
            config.notary.bucket, "b",
            "anchors default to the same bucket"
        );
        assert_eq!(
            config.notary.min_retention,
            GcsNotaryOptions::DEFAULT_MIN_RETENTION
        );
        assert!(!config.notary.allow_non_worm);
        assert_eq!(config.connection.auth, GcpAuth::ApplicationDefault);
        assert_eq!(
            config.connection.storage_endpoint,
            GcpConnection::STORAGE_ENDPOINT
        );
    }

    #[test]
    fn from_vars_reads_every_setting() {
        let vars = |n: &str| {
            Some(
                match n {
                    "G_BUCKET" => "objs",
                    "G_NOTARY_BUCKET" => "anchors",
                    "G_NOTARY_MIN_RETENTION_DAYS" => "30",
                    "G_ALLOW_NON_WORM" => "true",
                    "G_PROJECT" => "p1",
                    "G_SECRET_PREFIX" => "lab-",
                    "G_ANONYMOUS" => "1",
                    "G_STORAGE_ENDPOINT" => "http://127.0.0.1:9023/",
                    "G_SECRET_MANAGER_ENDPOINT" => "http://127.0.0.1:1",
                    "G_ATTEMPT_TIMEOUT_SECS" => "7",
                    "G_MAX_ATTEMPTS" => "0",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = GcpConfig::from_vars("G_", vars).unwrap();
        assert_eq!(c.notary.bucket, "anchors");
        assert_eq!(c.notary.min_retention, Duration::from_secs(30 * 86_400));
        assert!(c.notary.allow_non_worm);
        assert_eq!(c.connection.project.as_deref(), Some("p1"));
        assert_eq!(c.secrets.prefix, "lab-");
        assert_eq!(c.connection.auth, GcpAuth::Anonymous);
        assert_eq!(c.connection.storage_endpoint, "http://127.0.0.1:9023");
        assert_eq!(c.connection.attempt_timeout, Duration::from_secs(7));
        assert_eq!(c.connection.max_attempts, 1, "at least one attempt");
    }

    #[test]
    fn from_vars_refuses_values_it_cannot_use() {
        let vars = |n: &str| match n {
            "G_BUCKET" => Some("b".to_owned()),
            "G_ALLOW_NON_WORM" => Some("maybe".to_owned()),
            _ => None,
        };
        let e = GcpConfig::from_vars("G_", vars).unwrap_err();
        assert!(
            matches!(e, GcpConfigError::Invalid { ref name, .. } if name == "G_ALLOW_NON_WORM")
        );
    }
}
