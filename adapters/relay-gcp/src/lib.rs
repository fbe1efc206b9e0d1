//! GCP adapter: Cloud Storage object store, retention-locked Cloud Storage notary and Secret
//! Manager secrets (R10.2 "GCP"; R7.2 "GCS retention").
//!
//! | provider                                  | port             | type                      |
//! |-------------------------------------------|------------------|---------------------------|
//! | Cloud Storage bucket, `objects/`          | `ObjectStore`    | [`GcsObjectStore`]        |
//! | Cloud Storage bucket with locked retention, `anchors/` | `Notary` | [`GcsNotary`]       |
//! | Secret Manager (REST v1)                  | `SecretProvider` | [`SecretManagerProvider`] |
//! | Cloud SQL for PostgreSQL                  | `RecordStore`    | `relay_selfhosted::PgRecordStore` |
//!
//! The record store on GCP is the self-hosted adapter's Postgres store pointed at Cloud SQL
//! (two-role custody and triggers are plain Postgres); this crate has none of its own.
//!
//! **WORM (R7.2).** [`GcsNotary::open`] reads the bucket's retention policy and refuses to run
//! (`NotaryError::NotWorm`) unless it is locked and
//! at least the configured period, or the operator set `allow_non_worm`, in which case it warns
//! and reports `WormPosture::Unenforced`; the runtime writes that posture into the `_relay`
//! trail's start-up event.
//!
//! **SDK.** Cloud Storage goes through the community `gcloud-storage` client over the JSON API;
//! Secret Manager is plain REST on the same HTTP client and token source (no gRPC stack). See
//! docs/adr/0004-gcp-sdk.md. TLS is rustls with ring, as everywhere in the workspace.
//!
//! Every provider call has an explicit per-attempt timeout, a bounded number of attempts (only
//! temporary failures are retried, with jittered backoff) and an overall deadline
//! ([`GcpConnection`]). The crate maps provider errors into the domain's port errors at its
//! boundary by HTTP status and Google error reason; nothing provider-specific leaks out except
//! [`GcpClient::storage`], which exists for operational tooling and tamper tests. It must not
//! read environment variables or config files (only binaries do: [`GcpConfig::from_vars`] takes
//! the lookup function); Application Default Credentials are found by Google's auth library.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod config;
mod error;
mod notary;
mod object_store;
mod secrets;
mod storage;

use std::sync::Arc;

use relay_domain::ports::{NotaryError, ObjectStoreError, SecretError};
use thiserror::Error;

pub use client::{GcpClient, GcpClientError};
pub use config::{
    GcpAuth, GcpConfig, GcpConfigError, GcpConnection, GcsNotaryOptions, GcsObjectStoreOptions,
    SecretManagerOptions,
};
pub use notary::GcsNotary;
pub use object_store::GcsObjectStore;
pub use secrets::SecretManagerProvider;

/// The ports [`open`] builds, ready to be handed to the runtime as `Arc<dyn Port>`.
#[derive(Debug, Clone)]
pub struct GcpAdapters {
    /// The shared client (for tooling; the adapters hold clones).
    pub client: GcpClient,
    /// Objects (exports, evidence).
    pub object_store: Arc<GcsObjectStore>,
    /// Anchors of trail heads.
    pub notary: Arc<GcsNotary>,
    /// Trail keys, token and seal keys, ingest tokens.
    pub secrets: Arc<SecretManagerProvider>,
}

/// Why [`open`] failed; each variant says which part.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GcpOpenError {
    /// Credentials or the HTTP client.
    #[error("cannot connect to Google Cloud")]
    Client(#[from] GcpClientError),
    /// The object store's bucket.
    #[error("cannot open the Cloud Storage object store")]
    ObjectStore(#[source] ObjectStoreError),
    /// The notary's bucket (including a bucket that is not WORM: `NotaryError::NotWorm`).
    #[error("cannot open the Cloud Storage notary")]
    Notary(#[source] NotaryError),
    /// The Secret Manager project.
    #[error("cannot open Secret Manager")]
    Secrets(#[source] SecretError),
}

/// Opens every GCP adapter `config` describes: the client (credentials), the object store (its
/// bucket must exist), the notary (its bucket's retention must be locked unless
/// `allow_non_worm`) and the secret provider (a project must be known).
pub async fn open(config: &GcpConfig) -> Result<GcpAdapters, GcpOpenError> {
    let client = GcpClient::new(&config.connection).await?;
    let secrets = SecretManagerProvider::new(&client, config.secrets.clone())
        .map_err(GcpOpenError::Secrets)?;
    let notary = GcsNotary::open(&client, config.notary.clone())
        .await
        .map_err(GcpOpenError::Notary)?;
    let object_store = GcsObjectStore::open(&client, config.objects.clone())
        .await
        .map_err(GcpOpenError::ObjectStore)?;
    Ok(GcpAdapters {
        client,
        object_store: Arc::new(object_store),
        notary: Arc::new(notary),
        secrets: Arc::new(secrets),
    })
}
