//! Configuration: built-in defaults, then a TOML file, then `RELAY_*` environment variables, then
//! command-line flags, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Which clock stamps records (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeSourceKind {
    /// The host clock, labelled `system`.
    #[default]
    System,
    /// The host clock checked against `ntp_servers` (SNTP): instants labelled `validated` with
    /// the measured offset, or `system` (loudly) when no server answers.
    Ntp,
}

/// Where the relay keeps its keys (R10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecretProviderKind {
    /// Owner-only (0600) files under `<data_dir>/secrets`; refused when others can read them.
    #[default]
    File,
    /// The OS keyring (Secret Service: GNOME Keyring, KWallet, KeePassXC), items filed under the
    /// data directory's absolute path; when it cannot be used, the relay falls back to files
    /// with a loud warning and a `SECRET_PROVIDER_FALLBACK` SYSTEM event.
    Keyring,
}

/// Who a capture event is attributed to (R2.1; docs/operations.md, "Attribution").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttributionKind {
    /// The relay's own account when it is a person's (session mode); under a service account,
    /// the file's owner when a person's, else the console session's user, else unattributed.
    #[default]
    Auto,
    /// Always the account running the relay, whoever it is.
    ProcessUser,
    /// The file's owner when a person's account, else unattributed.
    FileOwner,
    /// The user of the active local console session, else unattributed.
    ConsoleSession,
}

/// Everything `relay-edge` can be configured with. Keys are the TOML keys; the environment
/// variable of each is `RELAY_` + the key in upper case (e.g. `RELAY_DATA_DIR`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Where the relay keeps its database, keys and anchors.
    pub data_dir: PathBuf,
    /// Folders to watch; empty means `<data_dir>/inbox`.
    pub watch: Vec<PathBuf>,
    /// Project recorded on captured files.
    pub project: Option<String>,
    /// Workstation id; defaults to the host name.
    pub device: Option<String>,
    /// Trail captured files go to; defaults to the device id.
    pub trail: Option<String>,
    /// Address of the HTTP listener (health, metrics).
    pub listen: SocketAddr,
    /// How long (ms) a file's size and mtime must stay unchanged before it is captured.
    pub settle_ms: u64,
    /// Interval (s) of the safety-net full rescan of watched folders.
    pub rescan_secs: u64,
    /// Interval (s) of the re-hash audit of every captured file; 0 (the default): off. Each pass
    /// reads every captured byte once (e.g. 1 TB at ~1 GB/s on one hash worker: ~17 min).
    pub rehash_interval_secs: u64,
    /// Interval (s) at which every trail head is notarized (also once at shutdown).
    pub notary_interval_secs: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Refuse every account registration, even by an administrator (R3.2).
    pub registration_closed: bool,
    /// Failed logins or signature passwords that lock an account (R3.3).
    pub lockout_threshold: u32,
    /// Window (s) failures are counted in, and how long a lockout lasts.
    pub lockout_window_secs: u64,
    /// A review session idle this long (s) is closed.
    pub session_idle_secs: u64,
    /// Days after which a password must be changed.
    pub password_max_age_days: u64,
    /// Base URL of the server of record to forward trails to (R8); none: no forwarding.
    pub forward_url: Option<String>,
    /// The ingest token for the server; none: the secret `forward-token` of the secret provider.
    pub forward_token: Option<String>,
    /// Records per forwarded batch.
    pub forward_batch: usize,
    /// An extra CA certificate (PEM) trusted for the server (self-signed or private CA).
    pub forward_ca_file: Option<PathBuf>,
    /// `system` or `ntp`.
    pub time_source: TimeSourceKind,
    /// NTP servers (`host:port`, port 123 when omitted) for `time_source = "ntp"`.
    pub ntp_servers: Vec<String>,
    /// Interval (s) between NTP checks of the offset.
    pub ntp_poll_secs: u64,
    /// An NTP offset change beyond this (ms) between two checks is recorded as `NTP_STEP`.
    pub ntp_step_threshold_ms: u64,
    /// `file` or `keyring`.
    pub secret_provider: SecretProviderKind,
    /// Certificate chain (PEM) for HTTPS on `listen`; with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback `listen` address (refused otherwise).
    pub allow_plain_http_on_network: bool,
    /// Who capture events are attributed to: `auto`, `process_user`, `file_owner` or
    /// `console_session`.
    pub attribution: AttributionKind,
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
    /// 429 `too_many_attempts`; 0 turns the per-client limit off.
    pub client_failure_limit: u32,
    /// The window (s) of `client_failure_limit`.
    pub client_failure_window_secs: u64,
    /// The most records the review index reads at a start, the smallest trails first (default
    /// 2,000,000); the trails beyond it are indexed at their first read. 0: none at start.
    pub review_warm_budget_records: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./relay-data"),
            watch: Vec::new(),
            project: None,
            device: None,
            trail: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            settle_ms: 2000,
            rescan_secs: 60,
            rehash_interval_secs: 0,
            notary_interval_secs: 30,
            log_format: LogFormat::Human,
            registration_closed: false,
            lockout_threshold: 5,
            lockout_window_secs: 900,
            session_idle_secs: 900,
            password_max_age_days: 90,
            forward_url: None,
            forward_token: None,
            forward_batch: 500,
            forward_ca_file: None,
            time_source: TimeSourceKind::System,
            ntp_servers: Vec::new(),
            ntp_poll_secs: 64,
            ntp_step_threshold_ms: 1000,
            secret_provider: SecretProviderKind::File,
            tls_cert: None,
            tls_key: None,
            allow_plain_http_on_network: false,
            attribution: AttributionKind::Auto,
            generic_account_names: words(relay_api::GENERIC_ACCOUNT_NAMES),
            shared_account_markers: words(relay_api::SHARED_ACCOUNT_MARKERS),
            min_password_chars: 12,
            min_password_score: 3,
            password_history: 5,
            admin_passwords_temporary: true,
            client_failure_limit: 30,
            client_failure_window_secs: 300,
            review_warm_budget_records: relay_api::DEFAULT_REVIEW_WARM_BUDGET_RECORDS,
        }
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| (*w).to_owned()).collect()
}

impl EdgeConfig {
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

/// Flags given on the command line; each overrides the file and environment when present.
#[derive(Debug, Default, Serialize)]
pub struct CliOverrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--watch` (repeatable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PathBuf>,
    /// `--project`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `--device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `--trail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail: Option<String>,
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--settle-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_ms: Option<u64>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

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

/// The configuration keys, which are also the `RELAY_*` environment variables read.
pub const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "watch",
    "project",
    "device",
    "trail",
    "listen",
    "settle_ms",
    "rescan_secs",
    "rehash_interval_secs",
    "notary_interval_secs",
    "log_format",
    "registration_closed",
    "lockout_threshold",
    "lockout_window_secs",
    "session_idle_secs",
    "password_max_age_days",
    "forward_url",
    "forward_token",
    "forward_batch",
    "forward_ca_file",
    "time_source",
    "ntp_servers",
    "ntp_poll_secs",
    "ntp_step_threshold_ms",
    "secret_provider",
    "tls_cert",
    "tls_key",
    "allow_plain_http_on_network",
    "attribution",
    "generic_account_names",
    "shared_account_markers",
    "min_password_chars",
    "min_password_score",
    "password_history",
    "admin_passwords_temporary",
    "client_failure_limit",
    "client_failure_window_secs",
    "review_warm_budget_records",
];

/// Loads the configuration from defaults, `file`, the environment and `cli`.
pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<EdgeConfig, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(EdgeConfig::default()));
    if let Some(file) = file {
        if !file.is_file() {
            return Err(ConfigError::Missing(file.to_path_buf()));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment = figment
        // Only the configuration keys: other RELAY_* variables (RELAY_LOG, RELAY_REQUIRE_SERVICES,
        // ...) belong to other parts of the system.
        .merge(Env::prefixed("RELAY_").only(CONFIG_KEYS))
        .merge(Serialized::defaults(cli));
    let config: EdgeConfig = figment.extract().map_err(|e| {
        let mut msg = e.to_string();
        for more in e {
            if !msg.contains(&more.to_string()) {
                msg = format!("{msg}; {more}");
            }
        }
        ConfigError::Invalid(msg)
    })?;
    if config.settle_ms == 0 {
        return Err(ConfigError::Invalid("settle_ms must be at least 1".into()));
    }
    if config.lockout_threshold == 0
        || config.lockout_window_secs == 0
        || config.session_idle_secs == 0
        || config.password_max_age_days == 0
    {
        return Err(ConfigError::Invalid(
            "lockout_threshold, lockout_window_secs, session_idle_secs and password_max_age_days must be at least 1".into(),
        ));
    }
    if config.notary_interval_secs == 0 {
        return Err(ConfigError::Invalid(
            "notary_interval_secs must be at least 1".into(),
        ));
    }
    if config.forward_batch == 0 || config.forward_batch > 10_000 {
        return Err(ConfigError::Invalid(
            "forward_batch must be between 1 and 10000".into(),
        ));
    }
    if config.ntp_poll_secs == 0 {
        return Err(ConfigError::Invalid(
            "ntp_poll_secs must be at least 1".into(),
        ));
    }
    if config.time_source == TimeSourceKind::Ntp && config.ntp_servers.is_empty() {
        return Err(ConfigError::Invalid(
            "time_source = \"ntp\" needs at least one entry in ntp_servers".into(),
        ));
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ConfigError::Invalid(
            "tls_cert and tls_key go together: set both for HTTPS, or neither".into(),
        ));
    }
    if config.rescan_secs == 0 {
        return Err(ConfigError::Invalid(
            "rescan_secs must be at least 1".into(),
        ));
    }
    let mut api = relay_api::ApiConfig::new(
        relay_domain::Device::new("config-check")
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
    );
    config.identity_into(&mut api);
    api.check_identity_settings()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's large error type.
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        figment::Jail::expect_with(|_| {
            let c = load(None, &CliOverrides::default()).unwrap();
            assert_eq!(c, EdgeConfig::default());
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_cli_override_each_other() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "edge.toml",
                "data_dir = \"/srv/relay\"\nproject = \"P1\"\nsettle_ms = 500\n",
            )?;
            jail.set_env("RELAY_PROJECT", "P2");
            jail.set_env("RELAY_LOG", "debug");
            jail.set_env("RELAY_REQUIRE_SERVICES", "1");
            let cli = CliOverrides {
                settle_ms: Some(700),
                ..Default::default()
            };
            let c = load(Some(Path::new("edge.toml")), &cli).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/srv/relay"));
            assert_eq!(c.project.as_deref(), Some("P2"));
            assert_eq!(c.settle_ms, 700);
            assert_eq!(c.attribution, AttributionKind::Auto);
            Ok(())
        });
    }

    // REQ: R11.1
    #[test]
    fn review_warm_budget_defaults_to_2_000_000_and_a_bad_value_is_named() {
        figment::Jail::expect_with(|jail| {
            let none = CliOverrides::default();
            assert_eq!(
                load(None, &none).unwrap().review_warm_budget_records,
                relay_api::DEFAULT_REVIEW_WARM_BUDGET_RECORDS
            );
            jail.create_file("warm.toml", "review_warm_budget_records = 250\n")?;
            let c = load(Some(Path::new("warm.toml")), &none).unwrap();
            assert_eq!(c.review_warm_budget_records, 250);
            for (name, text) in [
                ("a.toml", "review_warm_budget_records = -1\n"),
                ("b.toml", "review_warm_budget_records = \"lots\"\n"),
            ] {
                jail.create_file(name, text)?;
                let err = load(Some(Path::new(name)), &none).unwrap_err();
                assert!(
                    err.to_string().contains("review_warm_budget_records"),
                    "{name}: {err}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "data_dri = \"/x\"\n")?;
            let err = load(Some(Path::new("bad.toml")), &CliOverrides::default()).unwrap_err();
            assert!(err.to_string().contains("data_dri"), "{err}");
            jail.create_file("bad2.toml", "listen = \"not an address\"\n")?;
            let err = load(Some(Path::new("bad2.toml")), &CliOverrides::default()).unwrap_err();
            assert!(err.to_string().contains("listen"), "{err}");
            jail.create_file("bad3.toml", "attribution = \"whoever\"\n")?;
            let err = load(Some(Path::new("bad3.toml")), &CliOverrides::default()).unwrap_err();
            assert!(err.to_string().contains("attribution"), "{err}");
            jail.create_file("owner.toml", "attribution = \"file_owner\"\n")?;
            let c = load(Some(Path::new("owner.toml")), &CliOverrides::default()).unwrap();
            assert_eq!(c.attribution, AttributionKind::FileOwner);
            let err = load(Some(Path::new("missing.toml")), &CliOverrides::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Missing(_)));
            Ok(())
        });
    }

    fn api_of(c: &EdgeConfig) -> relay_api::ApiConfig {
        let mut api = relay_api::ApiConfig::new(relay_domain::Device::new("ws").unwrap());
        c.identity_into(&mut api);
        api
    }

    // REQ: R3.2, R3.3
    #[test]
    fn identity_defaults_are_the_apis_and_weaken_nothing() {
        let api = api_of(&EdgeConfig::default());
        let strict = relay_api::ApiConfig::new(relay_domain::Device::new("ws").unwrap());
        assert_eq!(api.generic_account_names, strict.generic_account_names);
        assert_eq!(api.shared_account_markers, strict.shared_account_markers);
        assert_eq!(
            (
                api.min_password_chars,
                api.min_password_score,
                api.password_history,
                api.admin_passwords_temporary,
                api.client_failure_limit,
                api.client_failure_window,
            ),
            (
                strict.min_password_chars,
                strict.min_password_score,
                strict.password_history,
                strict.admin_passwords_temporary,
                strict.client_failure_limit,
                strict.client_failure_window,
            )
        );
        assert!(api.weakened_identity_settings().is_empty());
    }

    // REQ: R3.2, R3.3
    #[test]
    fn identity_settings_are_read_checked_and_a_list_replaces_the_default() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "edge.toml",
                "generic_account_names = [\"nmrbox\"]\nmin_password_chars = 16\n\
                 min_password_score = 4\npassword_history = 10\nadmin_passwords_temporary = false\n\
                 client_failure_limit = 10\nclient_failure_window_secs = 600\n",
            )?;
            jail.set_env("RELAY_SHARED_ACCOUNT_MARKERS", "[team, crew]");
            let c = load(Some(Path::new("edge.toml")), &CliOverrides::default()).unwrap();
            let api = api_of(&c);
            assert_eq!(api.generic_account_names, vec!["nmrbox"]);
            assert_eq!(api.shared_account_markers, vec!["team", "crew"]);
            assert_eq!((api.min_password_chars, api.min_password_score), (16, 4));
            assert_eq!(api.password_history, 10);
            assert!(!api.admin_passwords_temporary);
            assert_eq!(
                (
                    api.client_failure_limit,
                    api.client_failure_window.as_secs()
                ),
                (10, 600)
            );
            let warnings = api.weakened_identity_settings();
            assert_eq!(warnings.len(), 3, "{warnings:#?}");
            assert!(
                warnings[0].starts_with("admin_passwords_temporary"),
                "{warnings:#?}"
            );
            assert!(warnings[1].contains("leaves out 30"), "{warnings:#?}");
            // The environment overrides the files below otherwise.
            jail.clear_env();

            for (name, text, says) in [
                (
                    "a.toml",
                    "min_password_chars = 6\n",
                    "min_password_chars: 6 is not accepted",
                ),
                (
                    "b.toml",
                    "min_password_score = 5\n",
                    "min_password_score: 5 is not a zxcvbn score",
                ),
                ("c.toml", "password_history = 100\n", "password_history"),
                (
                    "d.toml",
                    "generic_account_names = [\"\"]\n",
                    "generic_account_names",
                ),
                (
                    "e.toml",
                    "shared_account_markers = [\"qc-team\"]\n",
                    "cannot contain a separator",
                ),
                (
                    "f.toml",
                    "client_failure_window_secs = 0\n",
                    "client_failure_window_secs",
                ),
                ("g.toml", "min_password_score = -1\n", "min_password_score"),
                ("h.toml", "min_pasword_chars = 12\n", "min_pasword_chars"),
            ] {
                jail.create_file(name, text)?;
                let err = load(Some(Path::new(name)), &CliOverrides::default()).unwrap_err();
                assert!(err.to_string().contains(says), "{name}: {err}");
            }
            jail.create_file(
                "off.toml",
                "client_failure_limit = 0\nclient_failure_window_secs = 0\n",
            )?;
            load(Some(Path::new("off.toml")), &CliOverrides::default()).unwrap();
            Ok(())
        });
    }
}
