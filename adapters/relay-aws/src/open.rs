//! [`open`]: the AWS port objects from one [`AwsConfig`], on one SDK configuration.

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use relay_domain::ports::{NotaryError, ObjectStoreError};
use relay_selfhosted::{S3Client, S3Notary, S3NotaryOptions, S3ObjectStore, S3ObjectStoreOptions};
use thiserror::Error;

use crate::config::{AwsConfig, AwsConfigError};
use crate::secrets::{SecretsManagerOptions, SecretsManagerProvider};

/// The AWS implementations of the secret, object and notary ports, ready to use.
#[derive(Debug, Clone)]
pub struct AwsAdapters {
    /// Secrets Manager: trail keys, token and seal keys, ingest tokens.
    pub secrets: SecretsManagerProvider,
    /// Objects under `objects/` in the bucket, WORM when an object retention is configured.
    pub object_store: S3ObjectStore,
    /// Anchors under `anchors/` in the bucket, Object Lock COMPLIANCE.
    pub notary: S3Notary,
    /// The S3 client both use, for operational tooling.
    pub s3: S3Client,
}

/// Why the AWS adapters could not be opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AwsOpenError {
    /// The settings are unusable.
    #[error("AWS settings: {0}")]
    Config(#[from] AwsConfigError),
    /// The object store's bucket is unreachable or lacks Object Lock for a WORM store.
    #[error("opening the S3 object store failed")]
    ObjectStore(#[from] ObjectStoreError),
    /// The notary's bucket is unreachable or lacks Object Lock.
    #[error("opening the S3 Object Lock notary failed")]
    Notary(#[from] NotaryError),
}

/// Builds the Secrets Manager client of `config` on the SDK settings `shared` (region,
/// credentials, HTTP client), with the secrets endpoint, timeouts and attempts of `config`.
fn secrets_manager_client(
    shared: &aws_config::SdkConfig,
    config: &AwsConfig,
) -> aws_sdk_secretsmanager::Client {
    let (connect, attempt, operation) = config.secrets_timeouts_value();
    let mut sm = aws_sdk_secretsmanager::config::Builder::from(shared);
    // Always set: the shared settings carry the S3 endpoint, which must not leak here.
    sm.set_endpoint_url(config.secrets_endpoint_value().map(str::to_owned));
    let sm = sm
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(connect)
                .read_timeout(attempt)
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts_value()))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(sm)
}

impl SecretsManagerProvider {
    /// A provider as `config` says (region, credentials, secrets endpoint, prefix, KMS key,
    /// timeouts). Nothing is contacted yet.
    pub async fn connect(config: &AwsConfig) -> Result<Self, AwsConfigError> {
        config.check()?;
        let shared = S3Client::load_sdk_config(&config.s3_config()).await;
        Ok(Self::from_shared(&shared, config))
    }

    fn from_shared(shared: &aws_config::SdkConfig, config: &AwsConfig) -> Self {
        Self::new(
            secrets_manager_client(shared, config),
            SecretsManagerOptions {
                prefix: config.secrets_prefix_value().to_owned(),
                kms_key_id: config.kms_key_id_value().map(str::to_owned),
            },
        )
    }
}

/// Opens the AWS adapters: checks that the bucket is reachable and has Object Lock (the notary
/// refuses a bucket without it, and so does a WORM object store), and builds the Secrets
/// Manager provider. Every client shares one SDK configuration: the default credential chain
/// and region unless `config` names them, one HTTP client on rustls + ring.
pub async fn open(config: &AwsConfig) -> Result<AwsAdapters, AwsOpenError> {
    config.check()?;
    let s3_config = config.s3_config();
    let shared = S3Client::load_sdk_config(&s3_config).await;
    let s3 = S3Client::from_sdk_config(&shared, &s3_config);
    let (objects_prefix, anchors_prefix) = config.key_prefixes_value();
    let mut objects = S3ObjectStoreOptions::new(config.bucket_value());
    objects.prefix = objects_prefix.to_owned();
    objects.retention = config.object_retention_value();
    objects.sse_kms_key_id = config.kms_key_id_value().map(str::to_owned);
    let object_store = S3ObjectStore::open(&s3, objects).await?;
    let mut anchors = S3NotaryOptions::new(config.bucket_value());
    anchors.prefix = anchors_prefix.to_owned();
    anchors.retention = config.anchor_retention_value();
    anchors.sse_kms_key_id = config.kms_key_id_value().map(str::to_owned);
    let notary = S3Notary::open(&s3, anchors).await?;
    let secrets = SecretsManagerProvider::from_shared(&shared, config);
    tracing::info!(
        bucket = config.bucket_value(),
        region = shared.region().map(|r| r.as_ref()).unwrap_or("?"),
        secrets_prefix = config.secrets_prefix_value(),
        sse_kms = config.kms_key_id_value().is_some(),
        "AWS adapters open"
    );
    Ok(AwsAdapters {
        secrets,
        object_store,
        notary,
        s3,
    })
}
