//! Settings of the self-hosted adapters: the Postgres DSNs and the S3-compatible endpoint.
//!
//! The crate never reads the environment itself (only binaries do, see docs/ARCHITECTURE.md):
//! [`S3Config::from_vars`] takes a lookup function, to which binaries and tests pass
//! `|name| std::env::var(name).ok()`.

use std::fmt;
use std::time::Duration;

/// Settings of the runtime [`PgRecordStore`](crate::PgRecordStore), built with chained setters:
///
/// ```
/// # use relay_selfhosted::PgConfig;
/// # use std::time::Duration;
/// let config = PgConfig::new("postgres://relay_app@db.lab/relay?sslmode=require")
///     .max_connections(8)
///     .lock_timeout(Duration::from_secs(10));
/// assert_eq!(config.max_connections_value(), 8);
/// assert!(!format!("{config:?}").contains("relay_app@"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    dsn: String,
    max_connections: u32,
    acquire_timeout: Duration,
    lock_timeout: Duration,
    allow_privileged_role: bool,
}

impl PgConfig {
    /// Connections per store.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
    /// How long to wait for a pooled connection (or a new one) before `Unavailable`.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long an append waits for another writer of the same trail before `Unavailable`.
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

    /// Settings for the runtime role's DSN (`postgres://relay_app@host/db?sslmode=require`).
    /// TLS is used as the DSN's `sslmode` says (`require`, `verify-ca`, `verify-full`), with
    /// `sslrootcert=` for a private CA.
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: dsn.into(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            lock_timeout: Self::DEFAULT_LOCK_TIMEOUT,
            allow_privileged_role: false,
        }
    }

    /// Sets the pool size (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long to wait for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets Postgres' `lock_timeout` for the runtime's sessions (the per-trail append lock).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Lets the store run with a role that can UPDATE, DELETE or TRUNCATE `event_log` (or owns
    /// it), with a loud warning. Two-role custody (R1.4) is then broken; use only for tooling.
    pub fn allow_privileged_role(mut self, allow: bool) -> Self {
        self.allow_privileged_role = allow;
        self
    }

    /// The DSN. It may hold a password: never log it.
    pub fn dsn(&self) -> &str {
        &self.dsn
    }

    /// The configured pool size.
    pub fn max_connections_value(&self) -> u32 {
        self.max_connections
    }

    /// The configured acquire timeout.
    pub fn acquire_timeout_value(&self) -> Duration {
        self.acquire_timeout
    }

    /// The configured lock timeout.
    pub fn lock_timeout_value(&self) -> Duration {
        self.lock_timeout
    }

    /// Whether a privileged runtime role is tolerated.
    pub fn allow_privileged_role_value(&self) -> bool {
        self.allow_privileged_role
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("dsn", &redact_dsn(&self.dsn))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("allow_privileged_role", &self.allow_privileged_role)
            .finish()
    }
}

/// Settings of [`migrate`](crate::migrate): the admin DSN that owns the schema and the runtime
/// role it creates and grants.
#[derive(Clone, PartialEq, Eq)]
pub struct MigrateConfig {
    admin_dsn: String,
    app_role: String,
}

impl MigrateConfig {
    /// The runtime role's default name.
    pub const DEFAULT_APP_ROLE: &'static str = "relay_app";

    /// Settings for `admin_dsn`, granting [`Self::DEFAULT_APP_ROLE`].
    pub fn new(admin_dsn: impl Into<String>) -> Self {
        Self {
            admin_dsn: admin_dsn.into(),
            app_role: Self::DEFAULT_APP_ROLE.to_owned(),
        }
    }

    /// Sets the runtime role's name (created with LOGIN if missing).
    pub fn app_role(mut self, role: impl Into<String>) -> Self {
        self.app_role = role.into();
        self
    }

    /// The admin DSN. It may hold a password: never log it.
    pub fn admin_dsn(&self) -> &str {
        &self.admin_dsn
    }

    /// The runtime role's name.
    pub fn app_role_value(&self) -> &str {
        &self.app_role
    }
}

impl fmt::Debug for MigrateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateConfig")
            .field("admin_dsn", &redact_dsn(&self.admin_dsn))
            .field("app_role", &self.app_role)
            .finish()
    }
}

/// A DSN with user and password removed, for logs and `Debug`: `postgres://…@host:5432/db`.
pub fn redact_dsn(dsn: &str) -> String {
    let (scheme, rest) = dsn.split_once("://").unwrap_or(("", dsn));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
    if scheme.is_empty() {
        format!("…@{rest}")
    } else {
        format!("{scheme}://…@{rest}")
    }
}

/// How the S3 client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum S3Credentials {
    /// A fixed access key (MinIO service account, test emulator).
    Static {
        /// The access key id.
        access_key_id: String,
        /// The secret key. Never logged.
        secret_access_key: String,
    },
    /// The AWS default chain: environment, profile files, web identity, ECS, instance metadata.
    DefaultChain,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Credentials::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .finish(),
            S3Credentials::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// How to reach an S3-compatible endpoint (MinIO, AWS S3, an emulator). Every call gets an
/// explicit timeout and a bounded number of attempts.
///
/// ```
/// # use relay_selfhosted::{S3Config, S3Credentials};
/// let config = S3Config::new("us-east-1")
///     .endpoint("http://minio.lab:9000")
///     .force_path_style(true)
///     .credentials(S3Credentials::Static {
///         access_key_id: "relay".into(),
///         secret_access_key: "s3cret".into(),
///     });
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    endpoint: Option<String>,
    region: String,
    region_from_chain: bool,
    force_path_style: bool,
    credentials: S3Credentials,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    max_attempts: u32,
}

impl S3Config {
    /// Connection establishment limit.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Limit of one HTTP attempt (an 8 MiB upload on a slow link fits).
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
    /// Limit of one operation including retries.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
    /// Attempts per operation (first try included), with the SDK's standard backoff.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// Settings for AWS S3 in `region` with the default credential chain.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            region: region.into(),
            region_from_chain: false,
            force_path_style: false,
            credentials: S3Credentials::DefaultChain,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Settings from variables, looked up through `var` (binaries pass `std::env::var`):
    /// `<prefix>ENDPOINT` (optional; a custom endpoint turns on path-style addressing unless
    /// `<prefix>PATH_STYLE=false`), `<prefix>REGION` (default `us-east-1`),
    /// `<prefix>ACCESS_KEY` and `<prefix>SECRET_KEY` (both or neither; neither means the
    /// default chain).
    pub fn from_vars(prefix: &str, var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(&format!("{prefix}{name}")).filter(|v| !v.is_empty());
        let mut config = Self::new(get("REGION").unwrap_or_else(|| "us-east-1".to_owned()));
        if let Some(endpoint) = get("ENDPOINT") {
            config = config.endpoint(endpoint).force_path_style(true);
        }
        if let Some(path_style) = get("PATH_STYLE") {
            config = config.force_path_style(!matches!(path_style.as_str(), "0" | "false"));
        }
        if let (Some(access_key_id), Some(secret_access_key)) =
            (get("ACCESS_KEY"), get("SECRET_KEY"))
        {
            config = config.credentials(S3Credentials::Static {
                access_key_id,
                secret_access_key,
            });
        }
        config
    }

    /// Takes the region from the AWS default chain (`AWS_REGION`, the profile, instance or task
    /// metadata) when `on`, falling back to [`Self::region_value`] when the chain has none.
    pub fn region_from_default_chain(mut self, on: bool) -> Self {
        self.region_from_chain = on;
        self
    }

    /// Sets a custom endpoint (`http://minio:9000`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Uses `endpoint/bucket/key` URLs instead of `bucket.endpoint/key` (MinIO, emulators).
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = on;
        self
    }

    /// Sets how to authenticate.
    pub fn credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = credentials;
        self
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

    /// The custom endpoint, if any.
    pub fn endpoint_value(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region.
    pub fn region_value(&self) -> &str {
        &self.region
    }

    /// Whether the region comes from the AWS default chain (the configured one is the fallback).
    pub fn region_from_default_chain_value(&self) -> bool {
        self.region_from_chain
    }

    /// Whether path-style addressing is used.
    pub fn force_path_style_value(&self) -> bool {
        self.force_path_style
    }

    /// How the client authenticates.
    pub fn credentials_value(&self) -> &S3Credentials {
        &self.credentials
    }

    /// The connect, per-attempt and per-operation timeouts.
    pub fn timeouts_value(&self) -> (Duration, Duration, Duration) {
        (
            self.connect_timeout,
            self.attempt_timeout,
            self.operation_timeout,
        )
    }

    /// The attempts per operation.
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }
}

/// Settings of the [`S3ObjectStore`](crate::S3ObjectStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ObjectStoreOptions {
    /// The bucket.
    pub bucket: String,
    /// Prepended to every key (`objects/`), so one bucket can hold objects and anchors.
    pub prefix: String,
    /// When set, every object is written with Object Lock retention in COMPLIANCE mode for this
    /// long and the store is WORM: overwrite and delete are refused. Requires a bucket with
    /// Object Lock enabled.
    pub retention: Option<Duration>,
    /// When set, every object is written with SSE-KMS under this KMS key (id, ARN or alias).
    pub sse_kms_key_id: Option<String>,
}

impl S3ObjectStoreOptions {
    /// Objects under `objects/` in `bucket`, without retention.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: "objects/".to_owned(),
            retention: None,
            sse_kms_key_id: None,
        }
    }
}

/// Settings of the [`S3Notary`](crate::S3Notary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3NotaryOptions {
    /// The bucket; must have Object Lock enabled unless `allow_unlocked_bucket`.
    pub bucket: String,
    /// Prepended to every anchor key (`anchors/`).
    pub prefix: String,
    /// How long each anchor is locked in COMPLIANCE mode (Part 11 records: years).
    pub retention: Duration,
    /// Runs against a bucket without Object Lock, with a loud warning and posture
    /// `Unenforced`. Never in production.
    pub allow_unlocked_bucket: bool,
    /// When set, every anchor is written with SSE-KMS under this KMS key (id, ARN or alias).
    pub sse_kms_key_id: Option<String>,
}

impl S3NotaryOptions {
    /// Default anchor retention: ten years (365-day years).
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Anchors under `anchors/` in `bucket`, locked for [`Self::DEFAULT_RETENTION`].
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: "anchors/".to_owned(),
            retention: Self::DEFAULT_RETENTION,
            allow_unlocked_bucket: false,
            sse_kms_key_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_and_password_from_dsns() {
        assert_eq!(
            redact_dsn("postgres://admin:hunter2@db:5432/relay?sslmode=require"),
            "postgres://…@db:5432/relay"
        );
        assert_eq!(redact_dsn("postgres://db/relay"), "postgres://…@db/relay");
        let debug = format!("{:?}", MigrateConfig::new("postgres://a:hunter2@db/x"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn s3_config_from_vars_reads_endpoint_and_static_credentials() {
        let vars = |name: &str| match name {
            "T_ENDPOINT" => Some("http://127.0.0.1:5000".to_owned()),
            "T_ACCESS_KEY" => Some("ak".to_owned()),
            "T_SECRET_KEY" => Some("sk".to_owned()),
            _ => None,
        };
        let config = S3Config::from_vars("T_", vars);
        assert_eq!(config.endpoint_value(), Some("http://127.0.0.1:5000"));
        assert!(config.force_path_style_value());
        assert_eq!(config.region_value(), "us-east-1");
        assert!(matches!(
            config.credentials_value(),
            S3Credentials::Static { access_key_id, .. } if access_key_id == "ak"
        ));
        let aws = S3Config::from_vars("T_", |_| None);
        assert_eq!(aws.credentials_value(), &S3Credentials::DefaultChain);
        assert!(!aws.force_path_style_value());
    }
}
