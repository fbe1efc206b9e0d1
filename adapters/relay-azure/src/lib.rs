//! Azure adapter: Blob Storage object store, immutable-blob notary and Key Vault secrets
//! (R10.2 "Azure"; the record store is relay-selfhosted's Postgres store, on Azure Database for
//! PostgreSQL).
//!
//! | provider                                   | port             | type                        |
//! |--------------------------------------------|------------------|-----------------------------|
//! | blob container, `objects/`                 | `ObjectStore`    | [`AzureBlobObjectStore`]    |
//! | container with version-level immutability | `Notary`         | [`AzureBlobNotary`]         |
//! | Key Vault secrets                          | `SecretProvider` | [`KeyVaultSecretProvider`]  |
//!
//! Built on the official SDK (`azure_storage_blob`, `azure_security_keyvault_secrets`,
//! `azure_identity`; docs/adr/0003-azure-sdk.md), with its default HTTP client replaced by a
//! reqwest client on rustls + ring, and every call under an explicit per-attempt timeout, a
//! bounded retry policy and an operation deadline ([`HttpLimits`]): a service that answers
//! 500 forever (Azurite does, for the immutability-policy call) costs seconds, not minutes.
//!
//! Authentication is Entra ID (managed identity, workload identity, or a client secret) over
//! https; blob calls can instead carry a SAS, which is how tests reach Azurite over plain http.
//!
//! **The notary fails closed**: [`AzureBlobNotary::open`] refuses a container that cannot hold
//! immutable blobs (`NotaryError::NotWorm`)
//! unless `allow_non_worm` is set, in which case it warns and reports
//! [`WormPosture::Unenforced`](relay_domain::ports::WormPosture::Unenforced), which the
//! runtime writes into the `_relay` start-up posture like any other notary's.
//!
//! The crate maps SDK errors into the domain's port errors at its boundary, by HTTP status and
//! service error code; nothing provider-specific leaks out except
//! [`AzureBlobNotary::container_client`], which exists for operational tooling and tamper
//! tests. It must not read environment variables or config files (only binaries do:
//! [`AzureConfig::from_vars`] takes the lookup function).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod blob;
mod config;
mod error;
mod http;
mod notary;
mod object_store;
mod secrets;

use std::sync::Arc;

pub use config::{
    AzureConfig, AzureConfigError, AzureCredential, BlobSettings, HttpLimits, KeyVaultSettings,
};
pub use error::SetupError;
pub use http::AzureClients;
pub use notary::AzureBlobNotary;
pub use object_store::AzureBlobObjectStore;
pub use secrets::KeyVaultSecretProvider;

use relay_domain::ports::{NotaryError, ObjectStoreError};

/// The port objects [`open`] built from one configuration.
#[derive(Debug, Clone)]
pub struct AzureAdapters {
    /// The notary on the notary container (always present).
    pub notary: Arc<AzureBlobNotary>,
    /// The object store, when an object container is configured.
    pub object_store: Option<Arc<AzureBlobObjectStore>>,
    /// The secret provider, when a Key Vault is configured.
    pub secrets: Option<Arc<KeyVaultSecretProvider>>,
    /// The shared clients, for opening more adapters on the same stack.
    pub clients: AzureClients,
}

/// Why [`open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzureOpenError {
    /// The configuration cannot be used (nothing was contacted).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The notary refused to start (`NotWorm`) or could not reach its container.
    #[error("azure notary: {0}")]
    Notary(#[source] NotaryError),
    /// The object store could not reach its container.
    #[error("azure object store: {0}")]
    ObjectStore(#[source] ObjectStoreError),
}

/// Opens every adapter `config` names: the notary (required; it probes its container and
/// fails closed), the object store (if an object container is set) and the Key Vault secret
/// provider (if a vault is set).
pub async fn open(config: &AzureConfig) -> Result<AzureAdapters, AzureOpenError> {
    let clients = AzureClients::new(config)?;
    let notary = Arc::new(
        AzureBlobNotary::open(&clients)
            .await
            .map_err(AzureOpenError::Notary)?,
    );
    let object_store = match config
        .blob
        .as_ref()
        .and_then(|b| b.object_container.as_ref())
    {
        Some(_) => Some(Arc::new(
            AzureBlobObjectStore::open(&clients)
                .await
                .map_err(AzureOpenError::ObjectStore)?,
        )),
        None => None,
    };
    let secrets = match config.key_vault {
        Some(_) => Some(Arc::new(KeyVaultSecretProvider::open(&clients)?)),
        None => None,
    };
    Ok(AzureAdapters {
        notary,
        object_store,
        secrets,
        clients,
    })
}
