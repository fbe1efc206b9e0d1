//! Self-hosted adapter: Postgres record store with two-role custody, S3-compatible object store
//! and Object Lock notary (R10.2 "self-hosted"; MinIO on-prem, S3 in AWS).
//!
//! | provider                 | port             | type               |
//! |--------------------------|------------------|--------------------|
//! | Postgres `event_log`     | `RecordStore`    | [`PgRecordStore`]  |
//! | Postgres `change_requests` | `ChangeRequestStore` | [`PgChangeRequestStore`] |
//! | Postgres `receipts`      | `ReceiptStore`   | [`PgReceiptStore`] |
//! | Postgres `enrollment_codes`, `fleet_edges`, `edge_reports` | `FleetStore` | [`PgFleetStore`] |
//! | S3 bucket, `objects/`    | `ObjectStore`    | [`S3ObjectStore`]  |
//! | S3 bucket, `anchors/`    | `Notary`         | [`S3Notary`]       |
//!
//! **Two-role custody (R1.4).** [`migrate`] runs with an admin DSN: it owns the schema,
//! creates the runtime role and grants it only SELECT, INSERT on `event_log`. The runtime
//! ([`PgRecordStore::connect`]) uses its own DSN and refuses to run with a role that could
//! rewrite the log. Triggers refuse UPDATE, DELETE and TRUNCATE for everyone, the owner
//! included. See docs/adr/0002-postgres-custody.md.
//!
//! The crate maps sqlx and AWS SDK errors into the domain's port errors at its boundary, by
//! SQLSTATE and S3 error code; nothing provider-specific leaks out except
//! [`PgRecordStore::pool`] and [`S3Client::sdk`], which exist for operational tooling and
//! tamper tests. It must not read environment variables or config files (only binaries do:
//! [`S3Config::from_vars`] takes the lookup function), and it makes no rule of the domain its
//! own: chain validation is `relay_domain::chain::check_batch_at_head`, run inside the write
//! transaction.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod accounts;
mod changes;
mod config;
mod copy;
mod error;
mod fleet;
mod migrate;
mod notary;
mod object_store;
mod receipts;
mod record_store;
mod s3;
mod tamper;

pub use accounts::PgAccountStore;
pub use changes::PgChangeRequestStore;
pub use config::{
    MigrateConfig, PgConfig, S3Config, S3Credentials, S3NotaryOptions, S3ObjectStoreOptions,
    redact_dsn,
};
/// The binary `COPY` data of records in `event_log` column order (what appends of 64 records or
/// more send); public so benchmarks can copy the same bytes into a plain table as a baseline.
pub use copy::encode as copy_binary_data;
pub use fleet::PgFleetStore;
pub use migrate::{MigrateError, MigrateReport, migrate};
pub use notary::S3Notary;
pub use object_store::S3ObjectStore;
pub use receipts::PgReceiptStore;
pub use record_store::{Custody, PgRecordStore};
pub use s3::S3Client;
pub use tamper::OwnerTamperProbe;
