//! Test services: a fresh S3 bucket with Object Lock and a fresh Secrets Manager prefix per
//! test, on moto (`.ci/services.sh`), LocalStack or AWS, found through environment variables.
//! An unreachable service skips the whole test with a printed `SKIP` line, or fails it under
//! `RELAY_REQUIRE_SERVICES=1`.
//!
//! | variable                        | default                                         |
//! |---------------------------------|-------------------------------------------------|
//! | `RELAY_TEST_S3_ENDPOINT`        | `http://127.0.0.1:5000` (empty: AWS)            |
//! | `RELAY_TEST_AWS_ENDPOINT`       | `http://127.0.0.1:5000`, Secrets Manager (empty: AWS) |
//! | `RELAY_TEST_S3_ACCESS_KEY`/`_SECRET` | `test` / `test` (both empty: default chain) |
//! | `RELAY_TEST_S3_REGION`          | `us-east-1`                                     |

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use relay_aws::{AwsConfig, S3Client, S3Credentials, S3Notary};
use relay_conformance::TamperOutcome;
use relay_conformance::notary::AnchorTamperProbe;
use relay_domain::TrailId;
use relay_domain::error::BoxError;

/// Anchors and WORM objects in tests are locked for a minute, so test buckets on a real
/// service can be emptied and removed soon after.
pub const TEST_RETENTION: Duration = Duration::from_secs(60);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A suffix no other test run uses.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), nanos % 1_000_000_000_000)
}

fn required() -> bool {
    std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, when services are required, fails.
pub fn unavailable(suite: &str, reason: String) {
    if required() {
        panic!("{suite}: required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP {suite}: {reason}");
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The adapter settings of the test services for `bucket`, with a fresh secrets prefix and
/// short retentions.
pub fn aws_config(bucket: &str) -> AwsConfig {
    let s3_endpoint = var_or("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000");
    let sm_endpoint = var_or("RELAY_TEST_AWS_ENDPOINT", "http://127.0.0.1:5000");
    let access = var_or("RELAY_TEST_S3_ACCESS_KEY", "test");
    let secret = var_or("RELAY_TEST_S3_SECRET", "test");
    let mut config = AwsConfig::new(bucket)
        .region(var_or("RELAY_TEST_S3_REGION", "us-east-1"))
        .secrets_prefix(format!("relay-test/{}/", unique_suffix()))
        .anchor_retention(TEST_RETENTION)
        .object_retention(Some(TEST_RETENTION))
        .s3_timeouts(
            Duration::from_secs(3),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .secrets_timeouts(
            Duration::from_secs(3),
            Duration::from_secs(10),
            Duration::from_secs(30),
        )
        .max_attempts(3);
    if !s3_endpoint.is_empty() {
        config = config.s3_endpoint(s3_endpoint);
    }
    if !sm_endpoint.is_empty() {
        config = config.secrets_endpoint(sm_endpoint);
    }
    if !access.is_empty() && !secret.is_empty() {
        config = config.credentials(S3Credentials::Static {
            access_key_id: access,
            secret_access_key: secret,
        });
    }
    config
}

/// A bucket created for one test (Object Lock enabled when asked), with settings pointing at it.
pub struct AwsHarness {
    /// The adapter settings (fresh secrets prefix, short retentions).
    pub config: AwsConfig,
    /// A plain S3 client on the same endpoint, for playing an attacker.
    pub client: S3Client,
}

impl AwsHarness {
    /// A new bucket, or `None` (skipped) when the S3 endpoint is unreachable.
    pub async fn start(suite: &str, object_lock: bool) -> Option<Self> {
        let bucket = format!("relay-aws-{}", unique_suffix());
        let config = aws_config(&bucket);
        let s3 = config.s3_config();
        let client = S3Client::new(&s3).await;
        let mut req = client
            .sdk()
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(object_lock);
        if s3.region_value() != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(s3.region_value()))
                    .build(),
            );
        }
        if let Err(e) = req.send().await {
            let reason = format!(
                "S3 endpoint {}: create bucket failed: {}",
                s3.endpoint_value().unwrap_or("aws"),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
            if matches!(
                e,
                aws_sdk_s3::error::SdkError::DispatchFailure(_)
                    | aws_sdk_s3::error::SdkError::TimeoutError(_)
            ) {
                unavailable(suite, reason);
                return None;
            }
            panic!("{reason}");
        }
        Some(Self { config, client })
    }
}

/// The Secrets Manager provider of the test endpoint with a fresh prefix, or `None` (skipped)
/// when Secrets Manager is unreachable.
pub async fn secrets_provider(suite: &str) -> Option<relay_aws::SecretsManagerProvider> {
    let config = aws_config("unused-bucket");
    let provider = relay_aws::SecretsManagerProvider::connect(&config)
        .await
        .expect("test settings are valid");
    match provider.client().list_secrets().max_results(1).send().await {
        Ok(_) => Some(provider),
        Err(e) => {
            let reason = format!(
                "Secrets Manager at {}: {}",
                config.secrets_endpoint_value().unwrap_or("aws"),
                error_chain(&e)
            );
            if matches!(
                e,
                aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_)
                    | aws_sdk_secretsmanager::error::SdkError::TimeoutError(_)
            ) {
                unavailable(suite, reason);
                return None;
            }
            panic!("{reason}");
        }
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Tries to delete every anchor version of a trail with the notary's own credentials.
pub struct AnchorTamper<'a> {
    /// The notary under test (for its bucket and key layout).
    pub notary: &'a S3Notary,
    /// The client.
    pub client: S3Client,
}

#[async_trait]
impl AnchorTamperProbe for AnchorTamper<'_> {
    async fn try_rewrite(&self, trail: &TrailId) -> Result<TamperOutcome, BoxError> {
        let listed = self
            .client
            .sdk()
            .list_object_versions()
            .bucket(self.notary.bucket())
            .prefix(self.notary.trail_prefix(trail))
            .send()
            .await?;
        let mut refusals = Vec::new();
        for v in listed.versions() {
            let (key, version) = (
                v.key().unwrap_or_default(),
                v.version_id().unwrap_or_default(),
            );
            for bypass in [false, true] {
                match self
                    .client
                    .sdk()
                    .delete_object()
                    .bucket(self.notary.bucket())
                    .key(key)
                    .version_id(version)
                    .bypass_governance_retention(bypass)
                    .send()
                    .await
                {
                    Ok(_) => return Ok(TamperOutcome::Applied),
                    Err(e) => refusals.push(format!(
                        "delete of the locked version (bypass governance: {bypass}): HTTP {:?} {:?}",
                        e.raw_response().map(|r| r.status().as_u16()),
                        e.code()
                    )),
                }
            }
        }
        if refusals.is_empty() {
            return Err("no anchor versions to tamper with".into());
        }
        Ok(TamperOutcome::Refused(refusals.join("; ")))
    }
}
