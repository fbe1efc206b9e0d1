//! The same conformance suites against real Azure. **Opt-in**: runs only with
//! `RELAY_LIVE_AZURE=1`, otherwise prints `SKIP` and passes, even under
//! `RELAY_REQUIRE_SERVICES=1` (real cloud credentials are never a CI requirement).
//!
//! Settings come from `RELAY_LIVE_AZURE_*`, read by [`AzureConfig::from_vars`] (see its table),
//! for example:
//!
//! ```text
//! RELAY_LIVE_AZURE=1
//! RELAY_LIVE_AZURE_STORAGE_ACCOUNT=relaylive
//! RELAY_LIVE_AZURE_NOTARY_CONTAINER=anchors      # version-level immutability support
//! RELAY_LIVE_AZURE_OBJECT_CONTAINER=objects
//! RELAY_LIVE_AZURE_ANCHOR_RETENTION_DAYS=1       # test anchors stay locked this long
//! RELAY_LIVE_AZURE_KEY_VAULT_URL=https://relay-live.vault.azure.net
//! RELAY_LIVE_AZURE_TENANT_ID=… RELAY_LIVE_AZURE_CLIENT_ID=… RELAY_LIVE_AZURE_CLIENT_SECRET=…
//! ```
//!
//! The identity needs Storage Blob Data Owner on the containers (setting immutability
//! policies) and Key Vault Secrets Officer on the vault. Each run leaves locked anchors and
//! probe blobs (for the retention), and secrets named `relay-…` in the vault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use relay_azure::{
    AzureBlobNotary, AzureBlobObjectStore, AzureClients, AzureConfig, KeyVaultSecretProvider,
};
use relay_conformance::TamperOutcome;
use relay_conformance::notary::AnchorTamperProbe;
use relay_conformance::{notary, object_store, secrets};
use relay_domain::TrailId;
use relay_domain::error::BoxError;
use relay_domain::ports::{Notary, WormPosture};

/// Tries to delete stored anchors (each version, and the current blob) with the notary's own
/// credentials; a locked immutability policy must refuse both.
struct DeleteAnchors<'a> {
    notary: &'a AzureBlobNotary,
}

#[async_trait]
impl AnchorTamperProbe for DeleteAnchors<'_> {
    async fn try_rewrite(&self, trail: &TrailId) -> Result<TamperOutcome, BoxError> {
        use azure_storage_blob::models::{
            BlobContainerClientListBlobsOptions, ListBlobsIncludeItem,
        };
        let container = self.notary.container_client();
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(self.notary.trail_prefix(trail)),
            include: Some(vec![ListBlobsIncludeItem::Versions]),
            ..Default::default()
        };
        let items: Vec<_> = container.list_blobs(Some(options))?.try_collect().await?;
        let mut refusals = Vec::new();
        for item in items {
            let Some(name) = item.name else { continue };
            let mut targets = vec![("current blob", container.blob_client(&name))];
            if let Some(version) = &item.version_id {
                targets.push((
                    "locked version",
                    container.blob_client(&name).with_version(version)?,
                ));
            }
            for (what, target) in targets {
                match target.delete(None).await {
                    Ok(_) => return Ok(TamperOutcome::Applied),
                    Err(e) => refusals.push(format!("delete of the {what}: {:?}", e.kind())),
                }
            }
        }
        if refusals.is_empty() {
            return Err("no anchor blobs to tamper with".into());
        }
        Ok(TamperOutcome::Refused(refusals.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_azure_passes_every_suite() {
    if std::env::var("RELAY_LIVE_AZURE").as_deref() != Ok("1") {
        eprintln!(
            "SKIP live Azure suites: opt-in, set RELAY_LIVE_AZURE=1 and RELAY_LIVE_AZURE_* \
             (see tests/live.rs)"
        );
        return;
    }
    let config = AzureConfig::from_vars("RELAY_LIVE_AZURE_", |k| std::env::var(k).ok())
        .expect("RELAY_LIVE_AZURE_* settings");
    let clients = AzureClients::new(&config).expect("Azure clients");
    let blob = config
        .blob
        .as_ref()
        .expect("RELAY_LIVE_AZURE_STORAGE_ACCOUNT or _BLOB_ENDPOINT");

    if blob.object_container.is_some() {
        let store = AzureBlobObjectStore::open(&clients).await.unwrap();
        object_store::suite(Arc::new(store)).await;
    } else {
        eprintln!("NOTE: no RELAY_LIVE_AZURE_OBJECT_CONTAINER; object store suite not run");
    }

    let notary = AzureBlobNotary::open(&clients).await.unwrap();
    if !blob.allow_non_worm {
        assert_eq!(
            notary.worm_posture(),
            WormPosture::Enforced,
            "a live notary container must lock blobs"
        );
    }
    let probe = DeleteAnchors { notary: &notary };
    notary::suite(&notary, Some(&probe)).await;

    if config.key_vault.is_some() {
        let provider = KeyVaultSecretProvider::open(&clients).unwrap();
        secrets::suite(&provider).await;
    } else {
        eprintln!("NOTE: no RELAY_LIVE_AZURE_KEY_VAULT_URL; secrets suite not run");
    }
}
