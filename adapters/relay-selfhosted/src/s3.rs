//! The S3 client shared by [`S3ObjectStore`](crate::S3ObjectStore) and
//! [`S3Notary`](crate::S3Notary): custom endpoint, path-style addressing, static credentials or
//! the default chain, explicit timeouts and bounded retries. Nothing in it is specific to one
//! S3 implementation: it talks to MinIO, AWS S3 and emulators the same way.

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::ObjectLockEnabled;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine as _;
use md5::{Digest, Md5};
use relay_domain::Timestamp;

use crate::config::{S3Config, S3Credentials};
use crate::error::{Meaning, S3Error};

/// A configured S3 client. Cheap to clone; connections are pooled inside.
#[derive(Clone)]
pub struct S3Client {
    inner: aws_sdk_s3::Client,
    endpoint: String,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    /// Builds a client as `config` says. Nothing is contacted yet; credentials from the default
    /// chain are resolved on first use.
    pub async fn new(config: &S3Config) -> Self {
        let shared = Self::load_sdk_config(config).await;
        Self::from_sdk_config(&shared, config)
    }

    /// The AWS SDK settings the relay's clients are built on, for S3 and for other AWS services
    /// (the AWS adapter's Secrets Manager client): HTTPS on rustls with ring, the timeouts,
    /// attempts, region, endpoint and credentials of `config`.
    pub async fn load_sdk_config(config: &S3Config) -> SdkConfig {
        // rustls with ring: no aws-lc C build, the same TLS stack sqlx uses.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let (connect, attempt, operation) = config.timeouts_value();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect)
                    .read_timeout(attempt)
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(operation)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts_value()));
        if !config.region_from_default_chain_value() {
            loader = loader.region(Region::new(config.region_value().to_owned()));
        }
        if let Some(endpoint) = config.endpoint_value() {
            loader = loader.endpoint_url(endpoint);
        }
        if let S3Credentials::Static {
            access_key_id,
            secret_access_key,
        } = config.credentials_value()
        {
            loader = loader.credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.clone(),
                None,
                None,
                "relay-static",
            ));
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            // The default chain found no region: use the configured fallback.
            return shared
                .into_builder()
                .region(Region::new(config.region_value().to_owned()))
                .build();
        }
        shared
    }

    /// Builds a client on SDK settings from [`Self::load_sdk_config`] (endpoint, credentials,
    /// timeouts), with the addressing style of `config`.
    pub fn from_sdk_config(shared: &SdkConfig, config: &S3Config) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(config.force_path_style_value())
            // Checksums only where S3 requires them, plus our own Content-MD5 on every upload:
            // the flexible-checksum trailers are not understood by every S3-compatible server.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            inner: aws_sdk_s3::Client::from_conf(s3_config),
            endpoint: config.endpoint_value().unwrap_or("aws-default").to_owned(),
        }
    }

    /// The SDK client, for operational tooling and tests that play an attacker holding the
    /// store's credentials. Using it bypasses every rule of the adapters.
    pub fn sdk(&self) -> &aws_sdk_s3::Client {
        &self.inner
    }

    /// Whether `bucket` has Object Lock enabled (which also makes it versioned).
    pub(crate) async fn object_lock_enabled(&self, bucket: &str) -> Result<bool, S3Error> {
        match self
            .inner
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled)),
            Err(e) => {
                let e = S3Error::op("read the bucket's Object Lock configuration")(e);
                // AWS and MinIO answer a bucket without Object Lock with this code (404).
                if e.code.as_deref() == Some("ObjectLockConfigurationNotFoundError") {
                    return Ok(false);
                }
                if e.meaning() == Meaning::NotFound && e.code.as_deref() != Some("NoSuchBucket") {
                    return Ok(false);
                }
                Err(e)
            }
        }
    }

    /// Checks that `bucket` exists and can be reached with these credentials.
    pub(crate) async fn check_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        self.inner
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(S3Error::op("reach the bucket"))?;
        Ok(())
    }
}

/// The base64 Content-MD5 of `bytes` (the store checks the upload against it).
pub(crate) fn content_md5(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// Now plus `period`, as an S3 date (whole seconds, rounded up, as S3 stores them).
pub(crate) fn retain_until(period: Duration) -> DateTime {
    let at = SystemTime::now() + period + Duration::from_secs(1);
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// An S3 date as a domain timestamp (microsecond precision), if it is in range.
pub(crate) fn to_timestamp(at: &DateTime) -> Option<Timestamp> {
    let micros = at
        .secs()
        .checked_mul(1_000_000)?
        .checked_add(i64::from(at.subsec_nanos() / 1000))?;
    Timestamp::from_unix_micros(micros).ok()
}

/// Whether an S3 date lies in the past.
pub(crate) fn is_past(at: &DateTime) -> bool {
    SystemTime::try_from(*at).is_ok_and(|t| t < SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321 test vector: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }

    #[test]
    fn retain_until_lies_ahead_by_the_period() {
        let until = retain_until(Duration::from_secs(3600));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((3600..=3602).contains(&(until.secs() - now)));
        assert!(!is_past(&until));
        assert!(is_past(&DateTime::from_secs(1)));
        assert_eq!(
            to_timestamp(&DateTime::from_secs(2)).unwrap().unix_micros(),
            2_000_000
        );
    }
}
