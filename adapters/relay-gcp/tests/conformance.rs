//! Every conformance suite this crate's ports must pass: the object store and the notary on the
//! Cloud Storage emulator (see `common` for how it is found), the secret provider against the
//! Secret Manager protocol fake (`fakes`). The record store on GCP is relay-selfhosted's
//! Postgres store, whose suite runs in that crate. `tests/live.rs` runs the same suites
//! against real Google Cloud when asked to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fakes;

use std::sync::Arc;

use common::{GcsHarness, bounded, test_connection};
use fakes::secret_manager::FakeSecretManager;
use relay_conformance::{notary, object_store, secrets};
use relay_domain::ports::{Notary, ObjectStore, SecretProvider, WormPosture};
use relay_gcp::{
    GcpClient, GcsNotary, GcsNotaryOptions, GcsObjectStore, GcsObjectStoreOptions,
    SecretManagerOptions, SecretManagerProvider,
};

// REQ: R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_object_store_passes_the_object_store_suite_on_the_emulator() {
    bounded(async {
        let Some(gcs) = GcsHarness::start("object_store suite (GCS emulator)", None).await else {
            return;
        };
        let store = GcsObjectStore::open(&gcs.client, GcsObjectStoreOptions::new(&gcs.bucket))
            .await
            .unwrap();
        let caps = store.capabilities();
        assert_eq!(caps.worm, WormPosture::Unenforced, "no locked retention");
        // The emulator ignores upload preconditions; the store must notice instead of claiming
        // an atomic create it cannot deliver there.
        assert!(
            !caps.conditional_put,
            "the emulator does not enforce ifGenerationMatch; conditional_put must be false"
        );
        assert!(
            gcs.object_names("objects/.relay-precondition-probe")
                .await
                .is_empty(),
            "the precondition probe leaves nothing behind"
        );
        object_store::suite(Arc::new(store)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_notary_on_an_allowed_unlocked_bucket_passes_the_notary_suite_as_unenforced() {
    bounded(async {
        let Some(gcs) =
            GcsHarness::start("notary suite (GCS emulator, unlocked)", Some(3600)).await
        else {
            return;
        };
        let mut options = GcsNotaryOptions::new(&gcs.bucket);
        options.allow_non_worm = true;
        let notary = GcsNotary::open(&gcs.client, options).await.unwrap();
        assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
        assert_eq!(notary.kind(), "gcs-retention-lock");
        notary::suite(&notary, None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_manager_provider_passes_the_secrets_suite_against_the_protocol_fake() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let client = GcpClient::new(&test_connection("http://127.0.0.1:1", &fake.endpoint))
            .await
            .unwrap();
        let provider =
            SecretManagerProvider::new(&client, SecretManagerOptions::default()).unwrap();
        assert_eq!(provider.kind(), "gcp-secret-manager");
        secrets::suite(&provider).await;
        // Every secret the suite made lives under the prefix, as Secret Manager ids.
        let ids = fake.secret_ids();
        assert!(ids.len() >= 6, "{ids:?}");
        assert!(ids.iter().all(|id| id.starts_with("relay-")), "{ids:?}");
    })
    .await;
}
