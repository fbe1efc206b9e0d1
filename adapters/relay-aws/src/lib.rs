//! AWS adapter (R10.2 "AWS"): the relay's ports on AWS managed services.
//!
//! | AWS service                         | port             | type                         |
//! |-------------------------------------|------------------|------------------------------|
//! | Secrets Manager, `<prefix><name>`   | `SecretProvider` | [`SecretsManagerProvider`]   |
//! | S3 (Object Lock COMPLIANCE), `objects/` | `ObjectStore` | [`S3ObjectStore`]            |
//! | S3 (Object Lock COMPLIANCE), `anchors/` | `Notary`      | [`S3Notary`]                 |
//! | RDS for PostgreSQL, `event_log`     | `RecordStore`    | [`PgRecordStore`]            |
//!
//! Only Secrets Manager is new code here. The S3 object store and Object Lock notary are
//! `relay-selfhosted`'s, which already speak plain S3 and work against AWS unchanged; this
//! crate adds the AWS defaults around them: the default credential chain and region
//! (environment, profile, ECS task role, instance metadata, through `aws-config`), SSE-KMS with a
//! customer key on every put, and WORM objects as well as WORM anchors. The record store is
//! `relay-selfhosted`'s [`PgRecordStore`] on an RDS (or Aurora PostgreSQL) instance, migrated
//! with [`migrate`] through the admin DSN exactly as on-prem (two-role custody, R1.4); it is
//! re-exported here so a binary built with only this adapter names one crate.
//!
//! [`open`] builds the three AWS port objects from one [`AwsConfig`] on one SDK configuration
//! (one HTTP client on rustls + ring, no aws-lc; explicit timeouts and bounded retries on every
//! call). The crate never reads environment variables or files itself ([`AwsConfig::from_vars`]
//! takes the lookup function); the AWS SDK's default chains do, by design, when no static
//! credentials or region are configured.
//!
//! Provider errors are mapped into the ports' error enums at the boundary (`Unavailable` for
//! anything worth retrying: timeouts, throttling, 5xx); secret bytes never appear in errors,
//! logs or `Debug` output.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod error;
mod open;
mod secrets;

pub use config::{AwsConfig, AwsConfigError};
pub use open::{AwsAdapters, AwsOpenError, open};
pub use relay_selfhosted::{
    Custody, MigrateConfig, MigrateError, MigrateReport, PgAccountStore, PgConfig, PgRecordStore,
    S3Client, S3Config, S3Credentials, S3Notary, S3NotaryOptions, S3ObjectStore,
    S3ObjectStoreOptions, migrate, redact_dsn,
};
pub use secrets::{SecretsManagerOptions, SecretsManagerProvider};
