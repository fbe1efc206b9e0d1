//! Builds the server's ports from `[storage]`: one function per provider, each behind the cargo
//! feature that compiles its adapter in (`selfhosted`, `aws`, `gcp`, `azure`). The default build knows only `local`, so it carries no cloud SDK.

use std::sync::Arc;

use relay_runtime::server::ServerStores;

use crate::config::{self, ServerConfig, StorageProvider};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stores the configuration names, with the configured clock.
pub async fn open_stores(c: &ServerConfig) -> Result<ServerStores, BoxError> {
    // `load` already refused a provider that is not compiled in; checked again for callers
    // that build a configuration by hand.
    config::check_compiled(c.storage.provider, &config::compiled_providers())?;
    let mut stores = match c.storage.provider {
        StorageProvider::Local => relay_node::local::server_stores(&c.data_dir).await?,
        StorageProvider::Selfhosted => selfhosted(c).await?,
        StorageProvider::Aws => aws(c).await?,
        StorageProvider::Gcp => gcp(c).await?,
        StorageProvider::Azure => azure(c).await?,
    };
    if c.time_source == config::TimeSourceKind::Ntp {
        let ntp =
            relay_ntp::NtpTimeSource::start(relay_ntp::NtpConfig::new(c.ntp_servers.clone())).await;
        stores.clock = Arc::new(ntp);
    }
    Ok(stores)
}

/// The stores every provider but `local` keeps in Postgres.
#[cfg(any(
    feature = "selfhosted",
    feature = "aws",
    feature = "gcp",
    feature = "azure"
))]
struct PgStores {
    records: Arc<relay_selfhosted::PgRecordStore>,
    accounts: Arc<relay_selfhosted::PgAccountStore>,
    changes: Arc<relay_selfhosted::PgChangeRequestStore>,
    receipts: Arc<relay_selfhosted::PgReceiptStore>,
    fleet: Arc<relay_selfhosted::PgFleetStore>,
}

/// The record, account, change-request and receipt stores on Postgres (every provider but `local`),
/// connected as the runtime role (refused if it could rewrite the log).
#[cfg(any(
    feature = "selfhosted",
    feature = "aws",
    feature = "gcp",
    feature = "azure"
))]
async fn postgres(dsn: &str) -> Result<PgStores, BoxError> {
    let records = Arc::new(
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(dsn)).await?,
    );
    Ok(PgStores {
        accounts: Arc::new(relay_selfhosted::PgAccountStore::new(
            records.pool().clone(),
        )),
        changes: Arc::new(relay_selfhosted::PgChangeRequestStore::new(
            records.pool().clone(),
        )),
        receipts: Arc::new(relay_selfhosted::PgReceiptStore::new(
            records.pool().clone(),
        )),
        fleet: Arc::new(relay_selfhosted::PgFleetStore::new(records.pool().clone())),
        records,
    })
}

/// The Postgres runtime DSN and the Object Lock bucket (`load` checked both are set).
#[cfg(any(feature = "selfhosted", feature = "aws"))]
fn dsn_and_bucket(c: &ServerConfig) -> Result<(&str, &str), BoxError> {
    match (&c.storage.pg_dsn, &c.storage.s3_bucket) {
        (Some(dsn), Some(bucket)) => Ok((dsn, bucket)),
        _ => Err(format!(
            "storage.provider = \"{}\" needs storage.pg_dsn and storage.s3_bucket",
            c.storage.provider.name()
        )
        .into()),
    }
}

/// Azure Database for PostgreSQL records and accounts, anchors in a Blob Storage container with
/// locked version-level immutability (refused otherwise unless `RELAY_AZURE_ALLOW_NON_WORM=1`),
/// Key Vault secrets when `RELAY_AZURE_KEY_VAULT_URL` is set, else 0600 files in
/// `data_dir/secrets`. Options come from `RELAY_AZURE_*` (docs/operations.md).
#[cfg(feature = "azure")]
async fn azure(c: &ServerConfig) -> Result<ServerStores, BoxError> {
    let Some(dsn) = &c.storage.pg_dsn else {
        return Err("storage.provider = \"azure\" needs storage.pg_dsn".into());
    };
    let settings = relay_azure::AzureConfig::from_vars("RELAY_AZURE_", |k| std::env::var(k).ok())?;
    let adapters = relay_azure::open(&settings).await?;
    let pg = postgres(dsn).await?;
    let secrets: Arc<dyn relay_domain::ports::SecretProvider> = match adapters.secrets.clone() {
        Some(key_vault) => key_vault,
        None => Arc::new(relay_local::FileSecretProvider::open(c.secrets_dir())?),
    };
    Ok(ServerStores {
        provider: "azure",
        records: pg.records,
        accounts: pg.accounts,
        changes: Some(pg.changes),
        receipts: Some(pg.receipts),
        fleet: Some(pg.fleet),
        secrets,
        notary: adapters.notary.clone(),
        clock: Arc::new(relay_local::SystemTimeSource::new()),
    })
}

#[cfg(not(feature = "azure"))]
async fn azure(_: &ServerConfig) -> Result<ServerStores, BoxError> {
    Err(config::ConfigError::NotCompiled {
        provider: StorageProvider::Azure.name(),
        feature: "azure",
    }
    .into())
}

/// Cloud SQL Postgres records and accounts, anchors in a Cloud Storage bucket whose retention
/// policy is locked (refused otherwise unless `RELAY_GCP_ALLOW_NON_WORM=1`), Secret Manager
/// secrets. Bucket and options come from `RELAY_GCP_*` (docs/operations.md).
#[cfg(feature = "gcp")]
async fn gcp(c: &ServerConfig) -> Result<ServerStores, BoxError> {
    let Some(dsn) = &c.storage.pg_dsn else {
        return Err("storage.provider = \"gcp\" needs storage.pg_dsn".into());
    };
    let settings = relay_gcp::GcpConfig::from_vars("RELAY_GCP_", |k| std::env::var(k).ok())?;
    let adapters = relay_gcp::open(&settings).await?;
    let pg = postgres(dsn).await?;
    Ok(ServerStores {
        provider: "gcp",
        records: pg.records,
        accounts: pg.accounts,
        changes: Some(pg.changes),
        receipts: Some(pg.receipts),
        fleet: Some(pg.fleet),
        secrets: adapters.secrets.clone(),
        notary: adapters.notary.clone(),
        clock: Arc::new(relay_local::SystemTimeSource::new()),
    })
}

#[cfg(not(feature = "gcp"))]
async fn gcp(_: &ServerConfig) -> Result<ServerStores, BoxError> {
    Err(config::ConfigError::NotCompiled {
        provider: StorageProvider::Gcp.name(),
        feature: "gcp",
    }
    .into())
}

/// Postgres records and accounts, S3-compatible Object Lock anchors, file secrets in
/// `data_dir/secrets` (0600), as on the edge.
#[cfg(feature = "selfhosted")]
async fn selfhosted(c: &ServerConfig) -> Result<ServerStores, BoxError> {
    let (dsn, bucket) = dsn_and_bucket(c)?;
    let pg = postgres(dsn).await?;
    let secrets = Arc::new(relay_local::FileSecretProvider::open(c.secrets_dir())?);
    let s3 = relay_selfhosted::S3Config::from_vars("RELAY_S3_", |k| std::env::var(k).ok());
    let client = relay_selfhosted::S3Client::new(&s3).await;
    let notary = Arc::new(
        relay_selfhosted::S3Notary::open(
            &client,
            relay_selfhosted::S3NotaryOptions::new(bucket.to_owned()),
        )
        .await?,
    );
    Ok(ServerStores {
        provider: "selfhosted",
        records: pg.records,
        accounts: pg.accounts,
        changes: Some(pg.changes),
        receipts: Some(pg.receipts),
        fleet: Some(pg.fleet),
        secrets,
        notary,
        clock: Arc::new(relay_local::SystemTimeSource::new()),
    })
}

#[cfg(not(feature = "selfhosted"))]
async fn selfhosted(_: &ServerConfig) -> Result<ServerStores, BoxError> {
    Err(config::ConfigError::NotCompiled {
        provider: StorageProvider::Selfhosted.name(),
        feature: "selfhosted",
    }
    .into())
}

/// The AWS settings: `[storage]` keys (bucket, region, secrets prefix, KMS key) over the
/// `RELAY_AWS_*` variables (endpoints and static credentials for LocalStack or tests,
/// retentions; see docs/operations.md).
#[cfg(feature = "aws")]
pub fn aws_config(
    c: &ServerConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<relay_aws::AwsConfig, BoxError> {
    let (_, bucket) = dsn_and_bucket(c)?;
    let mut aws = relay_aws::AwsConfig::from_vars("RELAY_AWS_", |k| {
        if k == "RELAY_AWS_BUCKET" {
            Some(bucket.to_owned())
        } else {
            var(k)
        }
    })?;
    if let Some(region) = &c.storage.aws_region {
        aws = aws.region(region);
    }
    if let Some(prefix) = &c.storage.aws_secrets_prefix {
        aws = aws.secrets_prefix(prefix);
    }
    if let Some(key) = &c.storage.aws_kms_key_id {
        aws = aws.kms_key_id(key);
    }
    aws.check()?;
    Ok(aws)
}

/// RDS Postgres records and accounts, S3 Object Lock anchors, Secrets Manager secrets (trail
/// keys of the edges, ingest tokens, the server's own keys).
#[cfg(feature = "aws")]
async fn aws(c: &ServerConfig) -> Result<ServerStores, BoxError> {
    let (dsn, _) = dsn_and_bucket(c)?;
    let settings = aws_config(c, |k| std::env::var(k).ok())?;
    let adapters = relay_aws::open(&settings).await?;
    let pg = postgres(dsn).await?;
    Ok(ServerStores {
        provider: "aws",
        records: pg.records,
        accounts: pg.accounts,
        changes: Some(pg.changes),
        receipts: Some(pg.receipts),
        fleet: Some(pg.fleet),
        secrets: Arc::new(adapters.secrets),
        notary: Arc::new(adapters.notary),
        clock: Arc::new(relay_local::SystemTimeSource::new()),
    })
}

#[cfg(not(feature = "aws"))]
async fn aws(_: &ServerConfig) -> Result<ServerStores, BoxError> {
    Err(config::ConfigError::NotCompiled {
        provider: StorageProvider::Aws.name(),
        feature: "aws",
    }
    .into())
}

#[cfg(all(test, feature = "aws"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn aws_settings_take_storage_keys_over_variables() {
        let mut c = ServerConfig::default();
        c.storage.provider = StorageProvider::Aws;
        c.storage.pg_dsn = Some("postgres://relay_app@rds/relay".into());
        c.storage.s3_bucket = Some("anchors".into());
        c.storage.aws_region = Some("eu-central-1".into());
        c.storage.aws_kms_key_id = Some("alias/relay".into());
        let vars = |k: &str| match k {
            "RELAY_AWS_BUCKET" => Some("ignored".to_owned()),
            "RELAY_AWS_REGION" => Some("us-west-2".to_owned()),
            "RELAY_AWS_ENDPOINT" => Some("http://127.0.0.1:4566".to_owned()),
            "RELAY_AWS_ANCHOR_RETENTION_DAYS" => Some("1".to_owned()),
            _ => None,
        };
        let aws = aws_config(&c, vars).unwrap();
        assert_eq!(aws.bucket_value(), "anchors");
        assert_eq!(aws.region_value(), Some("eu-central-1"));
        assert_eq!(aws.kms_key_id_value(), Some("alias/relay"));
        assert_eq!(aws.secrets_prefix_value(), "gims-relay/");
        assert_eq!(aws.s3_endpoint_value(), Some("http://127.0.0.1:4566"));
        assert_eq!(aws.secrets_endpoint_value(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            aws.anchor_retention_value(),
            std::time::Duration::from_secs(86_400)
        );
        c.storage.aws_secrets_prefix = Some("bad prefix".into());
        assert!(aws_config(&c, vars).is_err());
    }
}
