//! What the AWS adapter adds beyond the port suites, on moto / LocalStack / AWS (see `common`):
//! key rotation in Secrets Manager keeps old records verifiable, Object Lock refuses the
//! deletion of an anchor version, SSE-KMS is applied to every put, a secret created beforehand
//! without a value is adopted, concurrent rotations lose no key, an edge key file imports
//! as is, and an unreachable endpoint is `Unavailable`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ServerSideEncryption;
use common::AwsHarness;
use relay_aws::{AwsConfig, S3Credentials, SecretsManagerProvider};
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::{
    Anchor, Notary, ObjectKey, ObjectStore, PutMode, RecordStore, SecretError, SecretName,
    SecretProvider, SecretProviderExt,
};
use relay_domain::verify::verify_stored_trail;
use relay_domain::{
    Actor, ActorSource, AppendService, Device, ErrorStatus, EventDraft, EventKind, KeyRing,
    Payload, TimeLabel, Timestamp, TrailId, VerifyFailureReason,
};

fn draft(trail: &TrailId, n: u32) -> EventDraft {
    EventDraft {
        trail_id: trail.clone(),
        kind: EventKind::new("SAMPLE_REGISTERED").unwrap(),
        actor: Some(Actor::new("lims-service").unwrap()),
        actor_source: ActorSource::Service,
        occurred_at: None,
        device: Device::new("aws-test").unwrap(),
        project: None,
        subject: None,
        payload: Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    }
}

// REQ: R1.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_in_the_provider_yields_a_new_key_id_and_records_chained_under_the_old_key_still_verify()
 {
    let Some(aws) = AwsHarness::start("key rotation (Secrets Manager + Object Lock)", true).await
    else {
        return;
    };
    let adapters = relay_aws::open(&aws.config).await.unwrap();
    let name = SecretName::trail_hmac();
    let first = adapters.secrets.current_or_create(&name).await.unwrap();

    let store = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_canonical("2026-03-01T08:00:00.000000Z").unwrap(),
    ));
    let service = AppendService::new(store.clone(), clock, first.to_trail_key().unwrap());
    let trail = TrailId::new(format!("rot-{}", common::unique_suffix())).unwrap();
    for n in 0..3 {
        service.append(draft(&trail, n)).await.unwrap();
    }

    let rotated = adapters.secrets.rotate(&name).await.unwrap();
    assert_ne!(rotated.id(), first.id(), "rotation yields a new key_id");
    // Another process (a fresh provider on the same prefix) sees the rotation.
    let other = SecretsManagerProvider::connect(&aws.config).await.unwrap();
    let current = other.current(&name).await.unwrap();
    assert_eq!(current.id(), rotated.id());
    assert!(current.ct_matches(rotated.expose()));
    service.set_signing_key(current.to_trail_key().unwrap());
    for n in 3..5 {
        service.append(draft(&trail, n)).await.unwrap();
    }

    let records = store.read(&trail, 0, 100).await.unwrap();
    let key_ids: Vec<_> = records.iter().map(|r| r.key_id.clone()).collect();
    assert_eq!(
        key_ids,
        [
            first.id().clone(),
            first.id().clone(),
            first.id().clone(),
            rotated.id().clone(),
            rotated.id().clone()
        ]
    );

    // Anchor the head in the Object Lock notary, then verify with the ring from Secrets
    // Manager: records under the old key verify, and so does the anchor.
    let head = records.last().unwrap();
    adapters
        .notary
        .anchor(&Anchor {
            trail_id: trail.clone(),
            seq: head.chain_seq,
            checksum: head.checksum,
            merkle_root: None,
            anchored_at: Timestamp::parse_canonical("2026-03-01T08:00:01.000000Z").unwrap(),
            time_source: TimeLabel::System,
            version: 1,
            frontier: Vec::new(),
            consistency: None,
            checkpoint: None,
        })
        .await
        .unwrap();
    let anchors = adapters.notary.anchors(&trail).await.unwrap();
    assert_eq!(anchors.len(), 1);
    let ring = other.key_ring(&name).await.unwrap();
    let summary = verify_stored_trail(store.as_ref(), &ring, &trail, &anchors, |_| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.records, 5);
    assert_eq!(summary.anchors_checked, 1);

    // The old key is what makes the first records verify: without it, seq 1 is refused.
    let only_new = KeyRing::single(current.to_trail_key().unwrap());
    let failure = verify_stored_trail(store.as_ref(), &only_new, &trail, &anchors, |_| {})
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.seq.get(), 1);
    assert!(
        matches!(failure.reason, VerifyFailureReason::UnknownKey { .. }),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_anchor_version_is_refused_by_object_lock() {
    let Some(aws) = AwsHarness::start("anchor deletion (Object Lock)", true).await else {
        return;
    };
    let adapters = relay_aws::open(&aws.config).await.unwrap();
    let trail = TrailId::new(format!("del-{}", common::unique_suffix())).unwrap();
    let anchor = Anchor {
        trail_id: trail.clone(),
        seq: relay_domain::ChainSeq::new(7).unwrap(),
        checksum: relay_domain::Checksum([7; 32]),
        merkle_root: None,
        anchored_at: Timestamp::parse_canonical("2026-03-01T08:00:00.000000Z").unwrap(),
        time_source: TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    };
    let receipt = adapters.notary.anchor(&anchor).await.unwrap();
    assert!(receipt.retain_until.is_some(), "{receipt:?}");
    let (key, version) = receipt
        .location
        .strip_prefix(&format!("s3://{}/", aws.config.bucket_value()))
        .and_then(|rest| rest.split_once("?versionId="))
        .unwrap();
    assert_ne!(version, "null", "an Object Lock bucket is versioned");

    let refused = aws
        .client
        .sdk()
        .delete_object()
        .bucket(aws.config.bucket_value())
        .key(key)
        .version_id(version)
        .send()
        .await
        .expect_err("deleting a COMPLIANCE-locked version must be refused");
    assert_eq!(refused.code(), Some("AccessDenied"), "{refused:?}");
    let head = aws
        .client
        .sdk()
        .head_object()
        .bucket(aws.config.bucket_value())
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    assert_eq!(adapters.notary.anchors(&trail).await.unwrap(), vec![anchor]);

    // A versionless delete only hides the anchor behind a delete marker, and the notary
    // reports that as tampering instead of returning fewer anchors.
    aws.client
        .sdk()
        .delete_object()
        .bucket(aws.config.bucket_value())
        .key(key)
        .send()
        .await
        .unwrap();
    let hidden = adapters.notary.anchors(&trail).await.unwrap_err();
    assert!(hidden.to_string().contains("delete marker"), "{hidden}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_put_is_encrypted_with_the_configured_kms_key() {
    let Some(aws) = AwsHarness::start("SSE-KMS", true).await else {
        return;
    };
    // `alias/aws/s3` exists in every AWS account (the S3-managed key); moto and LocalStack
    // accept it too. Override with RELAY_TEST_AWS_KMS_KEY_ID for a customer key.
    let kms_key =
        std::env::var("RELAY_TEST_AWS_KMS_KEY_ID").unwrap_or_else(|_| "alias/aws/s3".to_owned());
    let adapters = relay_aws::open(&aws.config.clone().kms_key_id(kms_key.clone()))
        .await
        .unwrap();
    let key = ObjectKey::new("exports/pkg.zip").unwrap();
    adapters
        .object_store
        .put(&key, b"package".to_vec(), PutMode::Create)
        .await
        .unwrap();
    let trail = TrailId::new(format!("kms-{}", common::unique_suffix())).unwrap();
    let receipt = adapters
        .notary
        .anchor(&Anchor {
            trail_id: trail,
            seq: relay_domain::ChainSeq::new(1).unwrap(),
            checksum: relay_domain::Checksum([1; 32]),
            merkle_root: None,
            anchored_at: Timestamp::parse_canonical("2026-03-01T08:00:00.000000Z").unwrap(),
            time_source: TimeLabel::System,
            version: 1,
            frontier: Vec::new(),
            consistency: None,
            checkpoint: None,
        })
        .await
        .unwrap();
    let anchor_key = receipt
        .location
        .strip_prefix(&format!("s3://{}/", aws.config.bucket_value()))
        .and_then(|rest| rest.split_once("?versionId="))
        .unwrap()
        .0
        .to_owned();
    for s3_key in [adapters.object_store.s3_key(&key), anchor_key] {
        let head = aws
            .client
            .sdk()
            .head_object()
            .bucket(aws.config.bucket_value())
            .key(&s3_key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{s3_key}"
        );
        let used = head.ssekms_key_id().unwrap_or_default();
        // AWS answers with the key's ARN (an alias resolves to its key); emulators echo the id.
        assert!(
            used.contains(&kms_key) || (kms_key.starts_with("alias/") && used.contains(":key/")),
            "{s3_key}: SSE-KMS key {used:?}, configured {kms_key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_created_beforehand_without_a_value_is_adopted_once() {
    let Some(provider) = common::secrets_provider("adopt an empty secret").await else {
        return;
    };
    let name = SecretName::new("ingest-token.nmr-01").unwrap();
    // As Terraform does: the secret, with no value.
    provider
        .client()
        .create_secret()
        .name(provider.secret_id(&name))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        provider.current(&name).await,
        Err(SecretError::NotFound { .. })
    ));
    let token = provider.current_or_create(&name).await.unwrap();
    assert_eq!(token.expose().len(), 32);
    assert_eq!(
        provider.versions(&name).await.unwrap(),
        vec![token.id().clone()]
    );
    assert!(matches!(
        provider.create(&name).await,
        Err(SecretError::AlreadyExists { .. })
    ));
    assert!(
        provider
            .current(&name)
            .await
            .unwrap()
            .ct_matches(token.expose())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_lose_no_key() {
    let Some(provider) = common::secrets_provider("concurrent rotations").await else {
        return;
    };
    let name = SecretName::new("token-signing").unwrap();
    let first = provider.create(&name).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let p = provider.clone();
        let n = name.clone();
        tasks.push(tokio::spawn(async move { p.rotate(&n).await }));
    }
    let mut rotated = Vec::new();
    for t in tasks {
        rotated.push(t.await.unwrap().unwrap());
    }
    let ids = provider.versions(&name).await.unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(&ids[0], first.id());
    for r in &rotated {
        assert!(ids.contains(r.id()), "rotation {} lost: {ids:?}", r.id());
        let read = provider.version(&name, r.id()).await.unwrap();
        assert!(read.ct_matches(r.expose()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_key_file_imported_as_is_keeps_its_key_ids() {
    let Some(provider) = common::secrets_provider("import an edge key file").await else {
        return;
    };
    // An edge's key file, as relay-local's FileSecretProvider writes it (two versions).
    let dir = tempfile::TempDir::new().unwrap();
    let files = relay_local::FileSecretProvider::open(dir.path().join("secrets")).unwrap();
    let name = SecretName::trail_hmac();
    let v1 = files.create(&name).await.unwrap();
    let v2 = files.rotate(&name).await.unwrap();
    let text = std::fs::read_to_string(files.secret_file(&name)).unwrap();

    let imported = SecretName::new("trail-hmac.ws-01").unwrap();
    provider
        .client()
        .create_secret()
        .name(provider.secret_id(&imported))
        .secret_string(text)
        .send()
        .await
        .unwrap();
    assert_eq!(
        provider.versions(&imported).await.unwrap(),
        vec![v1.id().clone(), v2.id().clone()]
    );
    assert!(
        provider
            .version(&imported, v1.id())
            .await
            .unwrap()
            .ct_matches(v1.expose())
    );
    assert_eq!(provider.current(&imported).await.unwrap().id(), v2.id());
}

#[tokio::test]
async fn an_unreachable_secrets_manager_is_unavailable_within_the_timeouts() {
    // Nothing listens on port 9 of the loopback (discard; refused at once).
    let config = AwsConfig::new("unused")
        .region("us-east-1")
        .endpoint("http://127.0.0.1:9")
        .credentials(S3Credentials::Static {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        })
        .secrets_timeouts(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .max_attempts(2);
    let provider = SecretsManagerProvider::connect(&config).await.unwrap();
    let started = std::time::Instant::now();
    let err = provider
        .current(&SecretName::trail_hmac())
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.status(), ErrorStatus::Temporary);
    assert!(started.elapsed() < Duration::from_secs(10));
}
