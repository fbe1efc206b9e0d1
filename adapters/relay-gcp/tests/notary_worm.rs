//! The notary's WORM gate on the Cloud Storage emulator. The emulator stores a bucket's
//! retention period but can neither lock nor enforce it, so these tests prove the refusals
//! (unlocked policy, no policy) and the explicit override; a locked bucket is real-GCS only
//! (`tests/live.rs`), and the decision itself is unit-tested in `src/notary.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GcsHarness, bounded};
use relay_domain::ports::{Anchor, Notary, NotaryError, WormPosture};
use relay_domain::{ChainSeq, Checksum, TimeLabel, Timestamp, TrailId};
use relay_gcp::{GcpConfig, GcpOpenError, GcsNotary, GcsNotaryOptions};

const TEN_YEARS_SECS: u64 = 10 * 365 * 86_400;

fn anchor(trail: &TrailId, seq: u64) -> Anchor {
    Anchor {
        trail_id: trail.clone(),
        seq: ChainSeq::new(seq).unwrap(),
        checksum: Checksum([7; 32]),
        merkle_root: Some(Checksum([9; 32])),
        anchored_at: Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
        time_source: TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    }
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_refuses_a_bucket_whose_retention_policy_is_not_locked() {
    bounded(async {
        let Some(gcs) =
            GcsHarness::start("notary WORM gate (unlocked policy)", Some(TEN_YEARS_SECS)).await
        else {
            return;
        };
        // The policy is there, long enough, and readable: only the lock is missing.
        let meta = gcs.bucket_metadata().await;
        assert_eq!(
            meta["retentionPolicy"]["retentionPeriod"],
            TEN_YEARS_SECS.to_string()
        );
        assert_ne!(meta["retentionPolicy"]["isLocked"], true);
        match GcsNotary::open(&gcs.client, GcsNotaryOptions::new(&gcs.bucket)).await {
            Err(NotaryError::NotWorm(msg)) => {
                assert!(msg.contains("not locked"), "{msg}");
                assert!(
                    msg.contains(&gcs.bucket),
                    "the message names the bucket: {msg}"
                );
            }
            other => panic!("an unlocked bucket must be NotWorm, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_refuses_a_bucket_without_a_retention_policy() {
    bounded(async {
        let Some(gcs) = GcsHarness::start("notary WORM gate (no policy)", None).await else {
            return;
        };
        assert!(gcs.bucket_metadata().await.get("retentionPolicy").is_none());
        match GcsNotary::open(&gcs.client, GcsNotaryOptions::new(&gcs.bucket)).await {
            Err(NotaryError::NotWorm(msg)) => {
                assert!(msg.contains("has no retention policy"), "{msg}")
            }
            other => panic!("a bucket without retention must be NotWorm, got {other:?}"),
        }
        // Through the wiring entry point too: `open` fails on the notary, naming it.
        let mut config = GcpConfig::new(&gcs.bucket);
        config.connection = gcs.client.connection().clone();
        match relay_gcp::open(&config).await {
            Err(GcpOpenError::Notary(NotaryError::NotWorm(_))) => {}
            other => panic!("open must refuse a non-WORM notary bucket, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_with_the_override_anchors_and_reports_unenforced() {
    bounded(async {
        let Some(gcs) = GcsHarness::start("notary override", Some(TEN_YEARS_SECS)).await else {
            return;
        };
        let mut options = GcsNotaryOptions::new(&gcs.bucket);
        options.allow_non_worm = true;
        let notary = GcsNotary::open(&gcs.client, options).await.unwrap();
        assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
        let trail = TrailId::new(common::unique("override")).unwrap();
        let a = anchor(&trail, 3);
        let receipt = notary.anchor(&a).await.unwrap();
        assert!(
            receipt
                .location
                .starts_with(&format!("gs://{}/anchors/", gcs.bucket)),
            "{}",
            receipt.location
        );
        assert_eq!(
            receipt.retain_until, None,
            "an unenforced notary promises no retention"
        );
        assert_eq!(notary.anchors(&trail).await.unwrap(), vec![a]);
        assert!(notary.anchored_trails().await.unwrap().contains(&trail));
        // The anchor is a real object in the bucket, where the notary said.
        let names = gcs.object_names(&notary.trail_prefix(&trail)).await;
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(receipt.location.contains(&names[0]));

        // The whole adapter set opens with the override and carries the posture.
        let mut config = GcpConfig::new(&gcs.bucket);
        config.connection = gcs.client.connection().clone();
        config.notary.allow_non_worm = true;
        let adapters = relay_gcp::open(&config).await.unwrap();
        assert_eq!(adapters.notary.worm_posture(), WormPosture::Unenforced);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_reports_a_replaced_anchor_that_names_another_trail() {
    bounded(async {
        let Some(gcs) = GcsHarness::start("notary tamper (unenforced)", None).await else {
            return;
        };
        let mut options = GcsNotaryOptions::new(&gcs.bucket);
        options.allow_non_worm = true;
        let notary = GcsNotary::open(&gcs.client, options).await.unwrap();
        let victim = TrailId::new(common::unique("victim")).unwrap();
        let other = TrailId::new(common::unique("other")).unwrap();
        notary.anchor(&anchor(&victim, 1)).await.unwrap();
        // Without WORM an operator can replace the object: the content then names the wrong
        // trail, which the read-back catches.
        let name = gcs.object_names(&notary.trail_prefix(&victim)).await[0].clone();
        let forged = serde_json::to_vec(&anchor(&other, 1)).unwrap();
        let upload = gcloud_storage::http::objects::upload::UploadObjectRequest {
            bucket: gcs.bucket.clone(),
            ..Default::default()
        };
        gcs.client
            .storage()
            .upload_object(
                &upload,
                forged,
                &gcloud_storage::http::objects::upload::UploadType::Simple(
                    gcloud_storage::http::objects::upload::Media::new(name),
                ),
            )
            .await
            .unwrap();
        match notary.anchors(&victim).await {
            Err(NotaryError::InvalidAnchor(msg)) => {
                assert!(msg.contains("holds an anchor of trail"))
            }
            other => panic!("a replaced anchor must be InvalidAnchor, got {other:?}"),
        }
    })
    .await;
}
