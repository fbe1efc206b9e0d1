//! The same conformance suites against real Google Cloud. Opt-in: they run only when
//! `RELAY_LIVE_GCP=1`, and otherwise print `SKIP` and pass, also under
//! `RELAY_REQUIRE_SERVICES=1` (CI has no Google Cloud account).
//!
//! Settings come from `RELAY_LIVE_GCP_*`, read by [`GcpConfig::from_vars`] as a binary reads
//! its own prefix; credentials are Application Default Credentials unless
//! `RELAY_LIVE_GCP_CREDENTIALS_FILE` is set. Prepare once:
//!
//! - `RELAY_LIVE_GCP_BUCKET`: a bucket without a retention policy (objects are deleted again);
//! - `RELAY_LIVE_GCP_NOTARY_BUCKET`: a bucket with a **locked** retention policy of at least
//!   `RELAY_LIVE_GCP_NOTARY_MIN_RETENTION_DAYS` (use 1 for a test bucket: its anchors, a few
//!   hundred bytes each, stay that long);
//! - `RELAY_LIVE_GCP_PROJECT`: where secrets `relay-live-test-*` are created (delete them
//!   afterwards: `gcloud secrets list --filter=name:relay-live-test-`).
//!
//! The identity needs `roles/storage.objectAdmin` and `storage.buckets.get` on both buckets,
//! and `roles/secretmanager.admin` (or secretAccessor + secretVersionAdder + create) on the
//! project.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{Media, UploadObjectRequest, UploadType};
use relay_conformance::TamperOutcome;
use relay_conformance::notary::AnchorTamperProbe;
use relay_conformance::{notary, object_store, secrets};
use relay_domain::TrailId;
use relay_domain::error::BoxError;
use relay_domain::ports::{Notary, WormPosture};
use relay_gcp::{GcpAdapters, GcpConfig, GcsNotary, SecretManagerProvider};

fn live_config(suite: &str) -> Option<GcpConfig> {
    if std::env::var("RELAY_LIVE_GCP").as_deref() != Ok("1") {
        // Opt-in, so never a failure, even when services are required.
        eprintln!(
            "SKIP {suite}: set RELAY_LIVE_GCP=1 (and RELAY_LIVE_GCP_*) to run against Google Cloud"
        );
        return None;
    }
    let mut config = GcpConfig::from_vars("RELAY_LIVE_GCP_", |n| std::env::var(n).ok())
        .expect("RELAY_LIVE_GCP_* settings");
    config.secrets.prefix = "relay-live-test-".to_owned();
    Some(config)
}

async fn open(config: &GcpConfig) -> GcpAdapters {
    relay_gcp::open(config)
        .await
        .expect("open the GCP adapters")
}

/// Tries to delete and to replace stored anchors with the notary's own credentials.
struct AnchorTamper<'a> {
    notary: &'a GcsNotary,
    adapters: &'a GcpAdapters,
}

#[async_trait]
impl AnchorTamperProbe for AnchorTamper<'_> {
    async fn try_rewrite(&self, trail: &TrailId) -> Result<TamperOutcome, BoxError> {
        let storage = self.adapters.client.storage();
        let listed = storage
            .list_objects(&ListObjectsRequest {
                bucket: self.notary.bucket().to_owned(),
                prefix: Some(self.notary.trail_prefix(trail)),
                ..Default::default()
            })
            .await?;
        let mut refusals = Vec::new();
        for object in listed.items.unwrap_or_default() {
            let delete = storage
                .delete_object(&DeleteObjectRequest {
                    bucket: object.bucket.clone(),
                    object: object.name.clone(),
                    generation: Some(object.generation),
                    ..Default::default()
                })
                .await;
            match delete {
                Ok(()) => return Ok(TamperOutcome::Applied),
                Err(e) => refusals.push(format!("delete {}: {e}", object.name)),
            }
            let replace = storage
                .upload_object(
                    &UploadObjectRequest {
                        bucket: object.bucket.clone(),
                        ..Default::default()
                    },
                    b"{}".to_vec(),
                    &UploadType::Simple(Media::new(object.name.clone())),
                )
                .await;
            match replace {
                Ok(_) => return Ok(TamperOutcome::Applied),
                Err(e) => refusals.push(format!("replace {}: {e}", object.name)),
            }
        }
        if refusals.is_empty() {
            return Err("no anchors to tamper with".into());
        }
        Ok(TamperOutcome::Refused(refusals.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gcp_passes_the_object_store_suite() {
    let Some(config) = live_config("object_store suite (live GCS)") else {
        return;
    };
    common::bounded(async {
        let adapters = open(&config).await;
        object_store::suite(adapters.object_store.clone()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gcp_notary_passes_the_notary_suite_on_a_locked_bucket() {
    let Some(config) = live_config("notary suite (live GCS, locked retention)") else {
        return;
    };
    common::bounded(async {
        let adapters = open(&config).await;
        let notary = adapters.notary.clone();
        if !config.notary.allow_non_worm {
            assert_eq!(notary.worm_posture(), WormPosture::Enforced);
        }
        let probe = AnchorTamper {
            notary: &notary,
            adapters: &adapters,
        };
        notary::suite(notary.as_ref(), Some(&probe)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gcp_secret_manager_passes_the_secrets_suite() {
    let Some(config) = live_config("secrets suite (live Secret Manager)") else {
        return;
    };
    common::bounded(async {
        let adapters = open(&config).await;
        let provider: Arc<SecretManagerProvider> = adapters.secrets.clone();
        secrets::suite(provider.as_ref()).await;
    })
    .await;
}
