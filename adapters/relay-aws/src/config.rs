//! Settings of the AWS adapters: the bucket, region, endpoints, credentials, the Secrets Manager
//! name prefix, the KMS key, retentions, timeouts and attempts.
//!
//! The crate never reads the environment itself (only binaries do, see docs/ARCHITECTURE.md):
//! [`AwsConfig::from_vars`] takes a lookup function, to which binaries and tests pass
//! `|name| std::env::var(name).ok()`.

use std::time::Duration;

use relay_selfhosted::{S3Config, S3Credentials, S3NotaryOptions};
use thiserror::Error;

/// Why the AWS settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AwsConfigError {
    /// A required setting is missing.
    #[error("{name} is not set: {why}")]
    Missing {
        /// The variable or key.
        name: String,
        /// What it is for.
        why: &'static str,
    },
    /// A setting has a value the adapter cannot use.
    #[error("{name} is invalid: {message}")]
    Invalid {
        /// The variable or key.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// How to reach AWS (or LocalStack / moto for tests) and where the relay keeps its data there.
///
/// ```
/// # use relay_aws::AwsConfig;
/// # use std::time::Duration;
/// let config = AwsConfig::new("relay-anchors-123")
///     .region("eu-central-1")
///     .kms_key_id("alias/gims-relay")
///     .secrets_prefix("gims-relay/prod/");
/// assert_eq!(config.bucket_value(), "relay-anchors-123");
/// assert_eq!(config.secrets_prefix_value(), "gims-relay/prod/");
/// assert_eq!(config.s3_config().region_value(), "eu-central-1");
/// assert!(!config.s3_config().region_from_default_chain_value());
/// // Without a region, the AWS default chain supplies it.
/// assert!(AwsConfig::new("b").s3_config().region_from_default_chain_value());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    bucket: String,
    region: Option<String>,
    endpoint: Option<String>,
    s3_endpoint: Option<String>,
    secrets_endpoint: Option<String>,
    force_path_style: Option<bool>,
    credentials: S3Credentials,
    secrets_prefix: String,
    kms_key_id: Option<String>,
    objects_prefix: String,
    anchors_prefix: String,
    anchor_retention: Duration,
    object_retention: Option<Duration>,
    s3_timeouts: (Duration, Duration, Duration),
    secrets_timeouts: (Duration, Duration, Duration),
    max_attempts: u32,
}

impl AwsConfig {
    /// Prefix of every Secrets Manager secret the relay owns: `gims-relay/trail-hmac`, ...
    pub const DEFAULT_SECRETS_PREFIX: &'static str = "gims-relay/";
    /// Region used when none is configured and the default chain finds none.
    pub const FALLBACK_REGION: &'static str = "us-east-1";
    /// Retention of anchors and objects: ten years (365-day years), as the self-hosted notary.
    pub const DEFAULT_RETENTION: Duration = S3NotaryOptions::DEFAULT_RETENTION;
    /// Secrets Manager connect limit.
    pub const DEFAULT_SECRETS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Limit of one Secrets Manager HTTP attempt (requests are a few hundred bytes).
    pub const DEFAULT_SECRETS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Limit of one Secrets Manager operation including retries.
    pub const DEFAULT_SECRETS_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
    /// Attempts per operation (first try included), with the SDK's standard backoff.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// The longest secrets prefix accepted (Secrets Manager names are at most 512 characters).
    pub const MAX_SECRETS_PREFIX: usize = 256;

    /// Settings for `bucket` (Object Lock enabled) on AWS, with the default credential chain and
    /// region, secrets under [`Self::DEFAULT_SECRETS_PREFIX`], anchors and objects retained for
    /// [`Self::DEFAULT_RETENTION`] in COMPLIANCE mode, no SSE-KMS key.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: None,
            endpoint: None,
            s3_endpoint: None,
            secrets_endpoint: None,
            force_path_style: None,
            credentials: S3Credentials::DefaultChain,
            secrets_prefix: Self::DEFAULT_SECRETS_PREFIX.to_owned(),
            kms_key_id: None,
            objects_prefix: "objects/".to_owned(),
            anchors_prefix: "anchors/".to_owned(),
            anchor_retention: Self::DEFAULT_RETENTION,
            object_retention: Some(Self::DEFAULT_RETENTION),
            s3_timeouts: (
                S3Config::DEFAULT_CONNECT_TIMEOUT,
                S3Config::DEFAULT_ATTEMPT_TIMEOUT,
                S3Config::DEFAULT_OPERATION_TIMEOUT,
            ),
            secrets_timeouts: (
                Self::DEFAULT_SECRETS_CONNECT_TIMEOUT,
                Self::DEFAULT_SECRETS_ATTEMPT_TIMEOUT,
                Self::DEFAULT_SECRETS_OPERATION_TIMEOUT,
            ),
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Settings from variables, looked up through `var` (binaries pass `std::env::var`). Every
    /// name is `<prefix>` followed by:
    ///
    /// | name                    | meaning                                                    |
    /// |-------------------------|------------------------------------------------------------|
    /// | `BUCKET`                | the Object Lock bucket (required)                          |
    /// | `REGION`                | the region (default: the AWS default chain, else `us-east-1`) |
    /// | `ENDPOINT`              | one endpoint for S3 and Secrets Manager (LocalStack, moto) |
    /// | `S3_ENDPOINT`           | S3 only, overrides `ENDPOINT`                              |
    /// | `SECRETS_ENDPOINT`      | Secrets Manager only, overrides `ENDPOINT`                 |
    /// | `PATH_STYLE`            | `true`/`false`; default: on with a custom S3 endpoint      |
    /// | `ACCESS_KEY`, `SECRET_KEY` | static credentials (both or neither; neither: default chain) |
    /// | `SECRETS_PREFIX`        | prefix of secret names (default `gims-relay/`)             |
    /// | `KMS_KEY_ID`            | KMS key for SSE-KMS on S3 puts and for new secrets         |
    /// | `ANCHOR_RETENTION_DAYS` | COMPLIANCE retention of anchors (default 3650, at least 1) |
    /// | `OBJECT_RETENTION_DAYS` | COMPLIANCE retention of objects (default 3650; 0: objects are not WORM) |
    ///
    /// Empty values count as unset.
    pub fn from_vars(
        prefix: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AwsConfigError> {
        let name = |n: &str| format!("{prefix}{n}");
        let get = |n: &str| var(&name(n)).filter(|v| !v.trim().is_empty());
        let days = |n: &str| -> Result<Option<u64>, AwsConfigError> {
            get(n)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|e| AwsConfigError::Invalid {
                            name: name(n),
                            message: format!("{v:?} is not a whole number of days: {e}"),
                        })
                })
                .transpose()
        };
        let Some(bucket) = get("BUCKET") else {
            return Err(AwsConfigError::Missing {
                name: name("BUCKET"),
                why: "the S3 bucket (with Object Lock) of anchors and objects",
            });
        };
        let mut config = Self::new(bucket);
        config.region = get("REGION");
        config.endpoint = get("ENDPOINT");
        config.s3_endpoint = get("S3_ENDPOINT");
        config.secrets_endpoint = get("SECRETS_ENDPOINT");
        if let Some(path_style) = get("PATH_STYLE") {
            config.force_path_style = Some(!matches!(
                path_style.trim().to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            ));
        }
        match (get("ACCESS_KEY"), get("SECRET_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => {
                config.credentials = S3Credentials::Static {
                    access_key_id,
                    secret_access_key,
                };
            }
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(AwsConfigError::Invalid {
                    name: format!("{} / {}", name("ACCESS_KEY"), name("SECRET_KEY")),
                    message: "set both or neither (neither: the AWS default credential chain)"
                        .into(),
                });
            }
        }
        if let Some(p) = get("SECRETS_PREFIX") {
            config.secrets_prefix = p;
        }
        config.kms_key_id = get("KMS_KEY_ID");
        if let Some(d) = days("ANCHOR_RETENTION_DAYS")? {
            if d == 0 {
                return Err(AwsConfigError::Invalid {
                    name: name("ANCHOR_RETENTION_DAYS"),
                    message: "anchors must be retained for at least one day".into(),
                });
            }
            config.anchor_retention = Duration::from_secs(d.saturating_mul(86_400));
        }
        if let Some(d) = days("OBJECT_RETENTION_DAYS")? {
            config.object_retention =
                (d > 0).then(|| Duration::from_secs(d.saturating_mul(86_400)));
        }
        config.check()?;
        Ok(config)
    }

    /// Checks what can be checked without contacting AWS: the bucket name is set and the
    /// secrets prefix only holds characters Secrets Manager accepts in names.
    pub fn check(&self) -> Result<(), AwsConfigError> {
        if self.bucket.trim().is_empty() {
            return Err(AwsConfigError::Missing {
                name: "bucket".into(),
                why: "the S3 bucket (with Object Lock) of anchors and objects",
            });
        }
        if self.secrets_prefix.len() > Self::MAX_SECRETS_PREFIX {
            return Err(AwsConfigError::Invalid {
                name: "secrets prefix".into(),
                message: format!(
                    "{} characters; at most {} are allowed",
                    self.secrets_prefix.len(),
                    Self::MAX_SECRETS_PREFIX
                ),
            });
        }
        if let Some(c) = self
            .secrets_prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        {
            return Err(AwsConfigError::Invalid {
                name: "secrets prefix".into(),
                message: format!(
                    "{c:?} is not allowed in a Secrets Manager name (ASCII letters, digits and \
                     /_+=.@-)"
                ),
            });
        }
        Ok(())
    }

    /// Sets the region (otherwise the AWS default chain, else [`Self::FALLBACK_REGION`]).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets one custom endpoint for S3 and Secrets Manager (`http://localhost:4566`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets a custom S3 endpoint, overriding [`Self::endpoint`] for S3.
    pub fn s3_endpoint(mut self, url: impl Into<String>) -> Self {
        self.s3_endpoint = Some(url.into());
        self
    }

    /// Sets a custom Secrets Manager endpoint, overriding [`Self::endpoint`] for secrets.
    pub fn secrets_endpoint(mut self, url: impl Into<String>) -> Self {
        self.secrets_endpoint = Some(url.into());
        self
    }

    /// Forces `endpoint/bucket/key` URLs (default: on with a custom S3 endpoint, off on AWS).
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = Some(on);
        self
    }

    /// Sets how to authenticate (default: the AWS default credential chain).
    pub fn credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the prefix of the relay's Secrets Manager names.
    pub fn secrets_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.secrets_prefix = prefix.into();
        self
    }

    /// Sets the KMS key (id, ARN or alias) for SSE-KMS on every S3 put and for new secrets.
    pub fn kms_key_id(mut self, key: impl Into<String>) -> Self {
        self.kms_key_id = Some(key.into());
        self
    }

    /// Sets the key prefixes of objects and anchors in the bucket.
    pub fn key_prefixes(mut self, objects: impl Into<String>, anchors: impl Into<String>) -> Self {
        self.objects_prefix = objects.into();
        self.anchors_prefix = anchors.into();
        self
    }

    /// Sets how long anchors are locked in COMPLIANCE mode.
    pub fn anchor_retention(mut self, period: Duration) -> Self {
        self.anchor_retention = period;
        self
    }

    /// Sets how long objects are locked in COMPLIANCE mode; `None`: objects are not WORM.
    pub fn object_retention(mut self, period: Option<Duration>) -> Self {
        self.object_retention = period;
        self
    }

    /// Sets the S3 connect, per-attempt and per-operation timeouts.
    pub fn s3_timeouts(
        mut self,
        connect: Duration,
        attempt: Duration,
        operation: Duration,
    ) -> Self {
        self.s3_timeouts = (connect, attempt, operation);
        self
    }

    /// Sets the Secrets Manager connect, per-attempt and per-operation timeouts.
    pub fn secrets_timeouts(
        mut self,
        connect: Duration,
        attempt: Duration,
        operation: Duration,
    ) -> Self {
        self.secrets_timeouts = (connect, attempt, operation);
        self
    }

    /// Sets the attempts per operation, for S3 and Secrets Manager (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The bucket.
    pub fn bucket_value(&self) -> &str {
        &self.bucket
    }

    /// The configured region, if any.
    pub fn region_value(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The S3 endpoint in effect (`s3_endpoint`, else `endpoint`), if custom.
    pub fn s3_endpoint_value(&self) -> Option<&str> {
        self.s3_endpoint.as_deref().or(self.endpoint.as_deref())
    }

    /// The Secrets Manager endpoint in effect (`secrets_endpoint`, else `endpoint`), if custom.
    pub fn secrets_endpoint_value(&self) -> Option<&str> {
        self.secrets_endpoint
            .as_deref()
            .or(self.endpoint.as_deref())
    }

    /// How the clients authenticate.
    pub fn credentials_value(&self) -> &S3Credentials {
        &self.credentials
    }

    /// The prefix of the relay's Secrets Manager names.
    pub fn secrets_prefix_value(&self) -> &str {
        &self.secrets_prefix
    }

    /// The KMS key, if any.
    pub fn kms_key_id_value(&self) -> Option<&str> {
        self.kms_key_id.as_deref()
    }

    /// The key prefixes of objects and anchors.
    pub fn key_prefixes_value(&self) -> (&str, &str) {
        (&self.objects_prefix, &self.anchors_prefix)
    }

    /// How long anchors are locked.
    pub fn anchor_retention_value(&self) -> Duration {
        self.anchor_retention
    }

    /// How long objects are locked, if they are.
    pub fn object_retention_value(&self) -> Option<Duration> {
        self.object_retention
    }

    /// The Secrets Manager connect, per-attempt and per-operation timeouts.
    pub fn secrets_timeouts_value(&self) -> (Duration, Duration, Duration) {
        self.secrets_timeouts
    }

    /// The attempts per operation.
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    /// The settings of the S3 client (and of the SDK configuration every client shares).
    pub fn s3_config(&self) -> S3Config {
        let (connect, attempt, operation) = self.s3_timeouts;
        let mut config = S3Config::new(
            self.region
                .clone()
                .unwrap_or_else(|| Self::FALLBACK_REGION.to_owned()),
        )
        .region_from_default_chain(self.region.is_none())
        .credentials(self.credentials.clone())
        .timeouts(connect, attempt, operation)
        .max_attempts(self.max_attempts);
        if let Some(endpoint) = self.s3_endpoint_value() {
            config = config.endpoint(endpoint).force_path_style(true);
        }
        if let Some(on) = self.force_path_style {
            config = config.force_path_style(on);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn from_vars_reads_every_setting() {
        let config = AwsConfig::from_vars(
            "A_",
            vars(&[
                ("A_BUCKET", "anchors"),
                ("A_REGION", "eu-west-1"),
                ("A_ENDPOINT", "http://127.0.0.1:4566"),
                ("A_SECRETS_ENDPOINT", "http://127.0.0.1:5000"),
                ("A_ACCESS_KEY", "ak"),
                ("A_SECRET_KEY", "s3cret-value"),
                ("A_SECRETS_PREFIX", "relay/prod/"),
                ("A_KMS_KEY_ID", "alias/relay"),
                ("A_ANCHOR_RETENTION_DAYS", "30"),
                ("A_OBJECT_RETENTION_DAYS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(config.bucket_value(), "anchors");
        assert_eq!(config.region_value(), Some("eu-west-1"));
        assert_eq!(config.s3_endpoint_value(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            config.secrets_endpoint_value(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(config.secrets_prefix_value(), "relay/prod/");
        assert_eq!(config.kms_key_id_value(), Some("alias/relay"));
        assert_eq!(
            config.anchor_retention_value(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.object_retention_value(), None);
        let s3 = config.s3_config();
        assert_eq!(s3.endpoint_value(), Some("http://127.0.0.1:4566"));
        assert!(s3.force_path_style_value());
        assert!(!s3.region_from_default_chain_value());
        assert!(matches!(
            s3.credentials_value(),
            S3Credentials::Static { access_key_id, .. } if access_key_id == "ak"
        ));
        assert!(
            !format!("{config:?}").contains("s3cret-value"),
            "the secret key must not be shown: {config:?}"
        );
    }

    #[test]
    fn from_vars_defaults_to_aws_with_the_default_chains() {
        let config = AwsConfig::from_vars("A_", vars(&[("A_BUCKET", "b")])).unwrap();
        assert_eq!(config.region_value(), None);
        assert_eq!(config.s3_endpoint_value(), None);
        assert_eq!(config.secrets_endpoint_value(), None);
        assert_eq!(config.credentials_value(), &S3Credentials::DefaultChain);
        assert_eq!(config.secrets_prefix_value(), "gims-relay/");
        assert_eq!(
            config.object_retention_value(),
            Some(AwsConfig::DEFAULT_RETENTION)
        );
        let s3 = config.s3_config();
        assert!(s3.region_from_default_chain_value());
        assert_eq!(s3.region_value(), AwsConfig::FALLBACK_REGION);
        assert!(!s3.force_path_style_value());
    }

    #[test]
    fn from_vars_refuses_what_it_cannot_use() {
        let err = AwsConfig::from_vars("A_", vars(&[])).unwrap_err();
        assert!(err.to_string().contains("A_BUCKET"), "{err}");
        let err = AwsConfig::from_vars("A_", vars(&[("A_BUCKET", "b"), ("A_ACCESS_KEY", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("A_SECRET_KEY"), "{err}");
        let err = AwsConfig::from_vars(
            "A_",
            vars(&[("A_BUCKET", "b"), ("A_ANCHOR_RETENTION_DAYS", "ten")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ANCHOR_RETENTION_DAYS"), "{err}");
        let err = AwsConfig::from_vars(
            "A_",
            vars(&[("A_BUCKET", "b"), ("A_ANCHOR_RETENTION_DAYS", "0")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least one day"), "{err}");
        let err = AwsConfig::from_vars(
            "A_",
            vars(&[("A_BUCKET", "b"), ("A_SECRETS_PREFIX", "relay keys/")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
    }

    #[test]
    fn a_separate_s3_endpoint_does_not_leak_into_secrets_manager() {
        let config = AwsConfig::new("b").s3_endpoint("http://127.0.0.1:9000");
        assert_eq!(config.s3_endpoint_value(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.secrets_endpoint_value(), None);
        let explicit = AwsConfig::new("b")
            .endpoint("http://127.0.0.1:4566")
            .force_path_style(false);
        assert!(!explicit.s3_config().force_path_style_value());
    }
}
