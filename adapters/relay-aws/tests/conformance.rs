//! The conformance suites against the AWS adapter as `open` builds it: Secrets Manager for
//! secrets, S3 with Object Lock COMPLIANCE for objects and anchors. Runs against moto
//! (`.ci/services.sh`), LocalStack or AWS; see `common` for how the services are found. The
//! record store is `relay-selfhosted`'s `PgRecordStore`, whose suite runs in that crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{AnchorTamper, AwsHarness};
use relay_conformance::{notary, object_store, secrets};
use relay_domain::ports::{Notary, ObjectStore, SecretProvider, WormPosture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_provider_passes_the_secrets_suite() {
    let Some(provider) = common::secrets_provider("secrets suite (Secrets Manager)").await else {
        return;
    };
    assert_eq!(provider.kind(), "aws-secrets-manager");
    secrets::suite(&provider).await;
}

// REQ: R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_adapters_pass_the_secrets_object_store_and_notary_suites() {
    let Some(aws) =
        AwsHarness::start("AWS adapters (S3 Object Lock + Secrets Manager)", true).await
    else {
        return;
    };
    let adapters = relay_aws::open(&aws.config).await.unwrap();
    secrets::suite(&adapters.secrets).await;

    assert_eq!(
        adapters.object_store.capabilities().worm,
        WormPosture::Enforced,
        "objects are retained in COMPLIANCE mode by default"
    );
    object_store::suite(Arc::new(adapters.object_store.clone())).await;

    assert_eq!(adapters.notary.worm_posture(), WormPosture::Enforced);
    assert_eq!(adapters.notary.kind(), "s3-object-lock");
    let probe = AnchorTamper {
        notary: &adapters.notary,
        client: aws.client.clone(),
    };
    notary::suite(&adapters.notary, Some(&probe)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_without_retention_passes_the_suite_as_not_worm() {
    let Some(aws) = AwsHarness::start("AWS object store (no retention)", true).await else {
        return;
    };
    let config = aws.config.clone().object_retention(None);
    let adapters = relay_aws::open(&config).await.unwrap();
    assert_eq!(
        adapters.object_store.capabilities().worm,
        WormPosture::Unenforced
    );
    object_store::suite(Arc::new(adapters.object_store)).await;
}
