//! `relay-server run` configuration: built-in defaults, then a TOML file, then `RELAY_*`
//! environment variables (nested keys with `__`, e.g. `RELAY_STORAGE__PROVIDER=selfhosted`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Which adapter holds the server's trails. Every provider parses in every build; one whose
/// cargo feature was not compiled in is refused at start-up ([`check_compiled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageProvider {
    /// SQLite + filesystem under `data_dir` (a single box). Always compiled in.
    #[default]
    Local,
    /// Postgres + S3-compatible Object Lock storage (`relay-selfhosted`, feature `selfhosted`).
    Selfhosted,
    /// RDS Postgres, S3 Object Lock, Secrets Manager (`relay-aws`, feature `aws`).
    Aws,
    /// Cloud SQL Postgres, Cloud Storage with a locked retention policy, Secret Manager
    /// (`relay-gcp`, feature `gcp`; bucket and options from `RELAY_GCP_*`).
    Gcp,
    /// Azure Database for PostgreSQL, Blob Storage with locked version-level immutability, Key
    /// Vault (`relay-azure`, feature `azure`; containers and options from `RELAY_AZURE_*`).
    Azure,
}

impl StorageProvider {
    /// Every provider, in the order `--version` lists them.
    pub const ALL: &'static [StorageProvider] = &[
        StorageProvider::Local,
        StorageProvider::Selfhosted,
        StorageProvider::Aws,
        StorageProvider::Gcp,
        StorageProvider::Azure,
    ];

    /// The name used in `[storage] provider = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            StorageProvider::Local => "local",
            StorageProvider::Selfhosted => "selfhosted",
            StorageProvider::Aws => "aws",
            StorageProvider::Gcp => "gcp",
            StorageProvider::Azure => "azure",
        }
    }

    /// The cargo feature of relay-server that compiles the provider in (`None`: always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            StorageProvider::Local => None,
            StorageProvider::Selfhosted => Some("selfhosted"),
            StorageProvider::Aws => Some("aws"),
            StorageProvider::Gcp => Some("gcp"),
            StorageProvider::Azure => Some("azure"),
        }
    }

    /// Whether this binary was built with the provider.
    pub fn is_compiled(self) -> bool {
        match self {
            StorageProvider::Local => true,
            StorageProvider::Selfhosted => cfg!(feature = "selfhosted"),
            StorageProvider::Aws => cfg!(feature = "aws"),
            StorageProvider::Gcp => cfg!(feature = "gcp"),
            StorageProvider::Azure => cfg!(feature = "azure"),
        }
    }
}

/// The names of the providers compiled into this binary, `local` first.
pub fn compiled_providers() -> Vec<&'static str> {
    StorageProvider::ALL
        .iter()
        .filter(|p| p.is_compiled())
        .map(|p| p.name())
        .collect()
}

/// Refuses a provider that `compiled` (the names of the compiled providers) lacks, naming the
/// feature to build with.
pub fn check_compiled(provider: StorageProvider, compiled: &[&str]) -> Result<(), ConfigError> {
    if compiled.contains(&provider.name()) {
        return Ok(());
    }
    let feature = provider.feature().unwrap_or(provider.name());
    Err(ConfigError::NotCompiled {
        provider: provider.name(),
        feature,
    })
}

/// `[storage]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local`, `selfhosted` or `aws`.
    pub provider: StorageProvider,
    /// Runtime DSN of Postgres (selfhosted, aws: RDS); `RELAY_STORAGE__PG_DSN` keeps it out of
    /// files.
    pub pg_dsn: Option<String>,
    /// Object Lock bucket of the S3 notary (selfhosted, aws). For selfhosted, endpoint, region
    /// and credentials come from `RELAY_S3_ENDPOINT`, `RELAY_S3_REGION`, `RELAY_S3_ACCESS_KEY`,
    /// `RELAY_S3_SECRET_KEY`; for aws, from the AWS default chains (or `RELAY_AWS_*`, see
    /// docs/operations.md).
    pub s3_bucket: Option<String>,
    /// AWS region (aws); default: the AWS default chain (`AWS_REGION`, task metadata).
    pub aws_region: Option<String>,
    /// Prefix of the server's Secrets Manager secrets (aws); default `gims-relay/`.
    pub aws_secrets_prefix: Option<String>,
    /// KMS key (id, ARN or alias) for SSE-KMS on S3 puts and for new secrets (aws).
    pub aws_kms_key_id: Option<String>,
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
    /// Where the file secret provider keeps its secrets (default `<data_dir>/secrets`).
    /// Replicas behind one load balancer share it (a shared volume, mode 0700), so an edge
    /// enrolled through one replica is verified by all of them.
    pub secrets_dir: Option<PathBuf>,
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
    /// The trails each edge may forward, by edge id (`[ingest_trails] ws-1 = ["line-a"]`); an
    /// edge without an entry may forward only the trail named like itself.
    pub ingest_trails: std::collections::BTreeMap<String, Vec<String>>,
    /// Largest ingest body (one batch) accepted from an authenticated edge, in bytes; larger
    /// is 413. Unauthenticated bodies are never read at all.
    pub ingest_max_batch_bytes: usize,
    /// Sealed export packages made through the API are removed this many hours after they
    /// were made (each removal is a `SYSTEM` event).
    pub export_max_age_hours: u64,
    /// Most sealed export packages one account may hold at once (429 beyond).
    pub export_quota_per_user: usize,
    /// Edge clock skew (ms) beyond which a `CLOCK_SKEW` event is recorded.
    pub clock_skew_threshold_ms: u64,
    /// A forwarded record received more than this many seconds after it was recorded is shown
    /// as late (API, UI, exports); judged at read time from the stored time of receipt.
    pub late_after_secs: u64,
    /// Interval (s) at which every moved trail head is notarized (default 30; one round object
    /// for all moved trails, see `NotaryScheduler::notarize_all`).
    pub notary_interval_secs: u64,
    /// `system` or `ntp`.
    pub time_source: TimeSourceKind,
    /// NTP servers for `time_source = "ntp"`.
    pub ntp_servers: Vec<String>,
    /// Refuse every account registration, even by an administrator.
    pub registration_closed: bool,
    /// Enrollment codes only through an approved four-eyes `enrollment_code` change; the UI's
    /// direct issue and `relay-server enroll-code` are refused.
    pub enrollment_four_eyes: bool,
    /// Account names refused as generic (21 CFR 11.300(a)); the list replaces the default one.
    pub generic_account_names: Vec<String>,
    /// Words marking a shared account among a name's parts; the list replaces the default one.
    pub shared_account_markers: Vec<String>,
    /// Shortest password accepted (8 to 128).
    pub min_password_chars: usize,
    /// Lowest zxcvbn strength score of a new password (0: no strength check, to 4).
    pub min_password_score: u8,
    /// How many of an account's last passwords a new one must differ from (0 to 24).
    pub password_history: usize,
    /// Whether a password an administrator sets must be changed by its owner at first login.
    pub admin_passwords_temporary: bool,
    /// Failed logins from one client address per window before its logins are refused with
    /// 429 `too_many_attempts`; 0 turns the per-client limit off (behind a load balancer every
    /// client has the balancer's address).
    pub client_failure_limit: u32,
    /// The window (s) of `client_failure_limit`.
    pub client_failure_window_secs: u64,
    /// The most records the review index reads at a start, the smallest trails first (default
    /// 2,000,000); the trails beyond it are indexed at their first read. 0: none at start.
    pub review_warm_budget_records: u64,
    /// Storage.
    pub storage: StorageConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./relay-server-data"),
            secrets_dir: None,
            device: "relay-server".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8471)),
            tls_cert: None,
            tls_key: None,
            ingest_edges: Vec::new(),
            ingest_trails: std::collections::BTreeMap::new(),
            ingest_max_batch_bytes: 64 * 1024 * 1024,
            export_max_age_hours: 7 * 24,
            export_quota_per_user: 20,
            clock_skew_threshold_ms: 2000,
            late_after_secs: 900,
            notary_interval_secs: 30,
            time_source: TimeSourceKind::System,
            ntp_servers: Vec::new(),
            registration_closed: false,
            enrollment_four_eyes: false,
            generic_account_names: words(relay_api::GENERIC_ACCOUNT_NAMES),
            shared_account_markers: words(relay_api::SHARED_ACCOUNT_MARKERS),
            min_password_chars: 12,
            min_password_score: 3,
            password_history: 5,
            admin_passwords_temporary: true,
            client_failure_limit: 30,
            client_failure_window_secs: 300,
            review_warm_budget_records: relay_api::DEFAULT_REVIEW_WARM_BUDGET_RECORDS,
            storage: StorageConfig::default(),
        }
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| (*w).to_owned()).collect()
}

impl ServerConfig {
    /// The file secret provider's directory: `secrets_dir`, else `<data_dir>/secrets` (used by
    /// the providers that keep secrets in files: selfhosted, and gcp/azure without a vault).
    #[cfg_attr(
        not(any(feature = "selfhosted", feature = "gcp", feature = "azure")),
        allow(dead_code)
    )]
    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets"))
    }

    /// Sets the identity and login settings of `api` (account names, password policy,
    /// per-client failure limit) from this configuration.
    pub fn identity_into(&self, api: &mut relay_api::ApiConfig) {
        api.generic_account_names = self.generic_account_names.clone();
        api.shared_account_markers = self.shared_account_markers.clone();
        api.min_password_chars = self.min_password_chars;
        api.min_password_score = self.min_password_score;
        api.password_history = self.password_history;
        api.admin_passwords_temporary = self.admin_passwords_temporary;
        api.client_failure_limit = self.client_failure_limit;
        api.client_failure_window = std::time::Duration::from_secs(self.client_failure_window_secs);
    }
}

/// The configuration keys, which are also the `RELAY_*` environment variables read.
pub const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "secrets_dir",
    "device",
    "listen",
    "tls_cert",
    "tls_key",
    "ingest_edges",
    "ingest_trails",
    "ingest_max_batch_bytes",
    "export_max_age_hours",
    "export_quota_per_user",
    "clock_skew_threshold_ms",
    "late_after_secs",
    "notary_interval_secs",
    "time_source",
    "ntp_servers",
    "registration_closed",
    "enrollment_four_eyes",
    "generic_account_names",
    "shared_account_markers",
    "min_password_chars",
    "min_password_score",
    "password_history",
    "admin_passwords_temporary",
    "client_failure_limit",
    "client_failure_window_secs",
    "review_warm_budget_records",
    "storage",
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configured storage provider's feature was not compiled into this binary.
    #[error(
        "storage.provider = \"{provider}\" is not compiled into this binary; rebuild with \
         `cargo build -p relay-server --features {feature}`"
    )]
    NotCompiled {
        /// The provider named in the configuration.
        provider: &'static str,
        /// The cargo feature that compiles it in.
        feature: &'static str,
    },
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
    if config.secrets_dir.is_some() && config.storage.provider == StorageProvider::Local {
        return Err(ConfigError::Invalid(
            "secrets_dir is for replicated servers (selfhosted, gcp/azure without a vault); the \
             local provider keeps its secrets in <data_dir>/secrets"
                .into(),
        ));
    }
    if config.late_after_secs == 0 {
        return Err(ConfigError::Invalid(
            "late_after_secs must be at least 1".into(),
        ));
    }
    if config.notary_interval_secs == 0 {
        return Err(ConfigError::Invalid(
            "notary_interval_secs must be at least 1".into(),
        ));
    }
    if config.ingest_max_batch_bytes < 1024 {
        return Err(ConfigError::Invalid(
            "ingest_max_batch_bytes must be at least 1024".into(),
        ));
    }
    if config.export_quota_per_user == 0 {
        return Err(ConfigError::Invalid(
            "export_quota_per_user must be at least 1".into(),
        ));
    }
    for (edge, trails) in &config.ingest_trails {
        if !config.ingest_edges.contains(edge) {
            return Err(ConfigError::Invalid(format!(
                "ingest_trails names edge {edge:?}, which is not in ingest_edges"
            )));
        }
        for trail in trails {
            relay_domain::TrailId::new(trail.as_str())
                .ok()
                .filter(|t| !t.is_relay())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "ingest_trails.{edge}: {trail:?} is not a trail an edge can forward"
                    ))
                })?;
        }
    }
    if config.time_source == TimeSourceKind::Ntp && config.ntp_servers.is_empty() {
        return Err(ConfigError::Invalid(
            "time_source = \"ntp\" needs at least one entry in ntp_servers".into(),
        ));
    }
    let mut api = relay_api::ApiConfig::new(
        relay_domain::Device::new("config-check")
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
    );
    config.identity_into(&mut api);
    api.check_identity_settings()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    check_compiled(config.storage.provider, &compiled_providers())?;
    if matches!(
        config.storage.provider,
        StorageProvider::Selfhosted | StorageProvider::Aws
    ) && (config.storage.pg_dsn.is_none() || config.storage.s3_bucket.is_none())
    {
        return Err(ConfigError::Invalid(format!(
            "storage.provider = \"{}\" needs storage.pg_dsn and storage.s3_bucket",
            config.storage.provider.name()
        )));
    }
    if matches!(
        config.storage.provider,
        StorageProvider::Gcp | StorageProvider::Azure
    ) && config.storage.pg_dsn.is_none()
    {
        return Err(ConfigError::Invalid(format!(
            "storage.provider = \"{}\" needs storage.pg_dsn (the managed Postgres); buckets and \
             containers come from RELAY_GCP_* / RELAY_AZURE_*",
            config.storage.provider.name()
        )));
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
            if cfg!(feature = "selfhosted") {
                assert!(err.to_string().contains("pg_dsn"), "{err}");
            } else {
                assert!(err.to_string().contains("--features selfhosted"), "{err}");
            }
            jail.create_file("bad2.toml", "ingest_edge = []\n")?;
            let err = load(Some(Path::new("bad2.toml"))).unwrap_err();
            assert!(err.to_string().contains("ingest_edge"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn late_after_secs_defaults_to_15_minutes_is_read_from_file_and_env_and_is_at_least_1() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("server.toml", "[storage]\nprovider = \"local\"\n")?;
            assert_eq!(
                load(Some(Path::new("server.toml")))
                    .unwrap()
                    .late_after_secs,
                900
            );
            jail.create_file(
                "late.toml",
                "late_after_secs = 60\n[storage]\nprovider = \"local\"\n",
            )?;
            assert_eq!(
                load(Some(Path::new("late.toml"))).unwrap().late_after_secs,
                60
            );
            jail.set_env("RELAY_LATE_AFTER_SECS", "5");
            assert_eq!(
                load(Some(Path::new("late.toml"))).unwrap().late_after_secs,
                5
            );
            jail.set_env("RELAY_LATE_AFTER_SECS", "0");
            let err = load(Some(Path::new("late.toml"))).unwrap_err();
            assert!(err.to_string().contains("late_after_secs"), "{err}");
            Ok(())
        });
    }

    // REQ: R11.1
    #[test]
    fn review_warm_budget_defaults_to_2_000_000_is_read_from_file_and_env_and_bad_values_are_named()
    {
        figment::Jail::expect_with(|jail| {
            jail.create_file("server.toml", "[storage]\nprovider = \"local\"\n")?;
            assert_eq!(
                load(Some(Path::new("server.toml")))
                    .unwrap()
                    .review_warm_budget_records,
                relay_api::DEFAULT_REVIEW_WARM_BUDGET_RECORDS
            );
            jail.create_file("warm.toml", "review_warm_budget_records = 0\n")?;
            assert_eq!(
                load(Some(Path::new("warm.toml")))
                    .unwrap()
                    .review_warm_budget_records,
                0
            );
            jail.set_env("RELAY_REVIEW_WARM_BUDGET_RECORDS", "1500");
            assert_eq!(
                load(Some(Path::new("warm.toml")))
                    .unwrap()
                    .review_warm_budget_records,
                1500
            );
            jail.clear_env();
            for (name, text) in [
                ("a.toml", "review_warm_budget_records = -1\n"),
                ("b.toml", "review_warm_budget_records = \"lots\"\n"),
                ("c.toml", "review_warm_budget_records = 1.5\n"),
            ] {
                jail.create_file(name, text)?;
                let err = load(Some(Path::new(name))).unwrap_err();
                assert!(
                    err.to_string().contains("review_warm_budget_records"),
                    "{name}: {err}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn ingest_trails_and_export_retention_parse_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "server.toml",
                "ingest_edges = [\"ws-1\"]\ningest_max_batch_bytes = 2048\n\
                 export_max_age_hours = 2\nexport_quota_per_user = 3\n\
                 [ingest_trails]\nws-1 = [\"line-a\", \"line-b\"]\n",
            )?;
            let c = load(Some(Path::new("server.toml"))).unwrap();
            assert_eq!(c.ingest_trails["ws-1"], vec!["line-a", "line-b"]);
            assert_eq!(
                (
                    c.ingest_max_batch_bytes,
                    c.export_max_age_hours,
                    c.export_quota_per_user
                ),
                (2048, 2, 3)
            );
            for (name, text, says) in [
                (
                    "a.toml",
                    "[ingest_trails]\nws-9 = [\"x\"]\n",
                    "not in ingest_edges",
                ),
                (
                    "b.toml",
                    "ingest_edges = [\"ws-1\"]\n[ingest_trails]\nws-1 = [\"_relay\"]\n",
                    "not a trail",
                ),
                (
                    "c.toml",
                    "export_quota_per_user = 0\n",
                    "export_quota_per_user",
                ),
                (
                    "d.toml",
                    "ingest_max_batch_bytes = 10\n",
                    "ingest_max_batch_bytes",
                ),
            ] {
                jail.create_file(name, text)?;
                let err = load(Some(Path::new(name))).unwrap_err();
                assert!(err.to_string().contains(says), "{name}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn a_provider_not_compiled_in_is_refused_naming_its_feature() {
        let err = check_compiled(StorageProvider::Aws, &["local", "selfhosted"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "storage.provider = \"aws\" is not compiled into this binary; rebuild with \
             `cargo build -p relay-server --features aws`"
        );
        let err = check_compiled(StorageProvider::Selfhosted, &["local"]).unwrap_err();
        assert!(err.to_string().contains("--features selfhosted"), "{err}");
        check_compiled(StorageProvider::Aws, &["local", "aws"]).unwrap();
        check_compiled(StorageProvider::Local, &["local"]).unwrap();
    }

    #[test]
    fn compiled_providers_follow_the_features() {
        let compiled = compiled_providers();
        assert_eq!(compiled[0], "local");
        assert_eq!(
            compiled.contains(&"selfhosted"),
            cfg!(feature = "selfhosted")
        );
        assert_eq!(compiled.contains(&"aws"), cfg!(feature = "aws"));
        for p in StorageProvider::ALL {
            assert_eq!(check_compiled(*p, &compiled).is_ok(), p.is_compiled());
        }
    }

    #[test]
    fn aws_storage_keys_parse_and_need_a_dsn_and_bucket() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "aws.toml",
                "[storage]\nprovider = \"aws\"\npg_dsn = \"postgres://relay_app@rds/relay\"\n\
                 s3_bucket = \"anchors\"\naws_region = \"eu-central-1\"\n\
                 aws_secrets_prefix = \"relay/prod/\"\naws_kms_key_id = \"alias/relay\"\n",
            )?;
            match (load(Some(Path::new("aws.toml"))), cfg!(feature = "aws")) {
                (Ok(c), true) => {
                    assert_eq!(c.storage.provider, StorageProvider::Aws);
                    assert_eq!(c.storage.aws_region.as_deref(), Some("eu-central-1"));
                    assert_eq!(c.storage.aws_secrets_prefix.as_deref(), Some("relay/prod/"));
                    assert_eq!(c.storage.aws_kms_key_id.as_deref(), Some("alias/relay"));
                }
                (Err(e), false) => {
                    assert!(e.to_string().contains("--features aws"), "{e}");
                }
                (other, compiled) => panic!("aws compiled in: {compiled}, load: {other:?}"),
            }
            jail.create_file("aws-bad.toml", "[storage]\nprovider = \"aws\"\n")?;
            let err = load(Some(Path::new("aws-bad.toml"))).unwrap_err();
            let expected = if cfg!(feature = "aws") {
                "needs storage.pg_dsn and storage.s3_bucket"
            } else {
                "--features aws"
            };
            assert!(err.to_string().contains(expected), "{err}");
            Ok(())
        });
    }

    // REQ: R3.2, R3.3
    #[test]
    fn identity_settings_default_to_the_apis_are_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            let strict = relay_api::ApiConfig::new(relay_domain::Device::new("s").unwrap());
            let mut api = strict.clone();
            ServerConfig::default().identity_into(&mut api);
            assert_eq!(api.generic_account_names, strict.generic_account_names);
            assert_eq!(api.shared_account_markers, strict.shared_account_markers);
            assert_eq!(
                (
                    api.min_password_chars,
                    api.min_password_score,
                    api.password_history
                ),
                (12, 3, 5)
            );
            assert!(api.admin_passwords_temporary);
            assert_eq!(
                (api.client_failure_limit, api.client_failure_window),
                (strict.client_failure_limit, strict.client_failure_window)
            );
            assert!(api.weakened_identity_settings().is_empty());

            jail.create_file(
                "server.toml",
                "generic_account_names = [\"nmrbox\", \"admin\"]\nmin_password_score = 2\n\
                 client_failure_limit = 0\n[storage]\nprovider = \"local\"\n",
            )?;
            jail.set_env("RELAY_MIN_PASSWORD_CHARS", "14");
            let c = load(Some(Path::new("server.toml"))).unwrap();
            let mut api = strict.clone();
            c.identity_into(&mut api);
            assert_eq!(api.generic_account_names, vec!["nmrbox", "admin"]);
            assert_eq!((api.min_password_chars, api.min_password_score), (14, 2));
            assert_eq!(api.client_failure_limit, 0);
            assert_eq!(api.weakened_identity_settings().len(), 3);
            // The environment overrides the files below otherwise.
            jail.clear_env();

            for (name, text, says) in [
                (
                    "a.toml",
                    "min_password_chars = 7\n",
                    "min_password_chars: 7 is not accepted",
                ),
                (
                    "b.toml",
                    "min_password_score = 9\n",
                    "min_password_score: 9",
                ),
                (
                    "c.toml",
                    "shared_account_markers = [\"a b\"]\n",
                    "shared_account_markers",
                ),
                (
                    "d.toml",
                    "client_failure_window_secs = 100000\n",
                    "client_failure_window_secs",
                ),
            ] {
                jail.create_file(name, text)?;
                let err = load(Some(Path::new(name))).unwrap_err();
                assert!(err.to_string().contains(says), "{name}: {err}");
            }
            Ok(())
        });
    }
}
