//! Every conformance suite against the self-hosted adapters on real services: Postgres and an
//! S3-compatible server with Object Lock (see `common` for how they are found). Only standard
//! S3 calls are used, so the same tests run against MinIO and AWS S3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{AnchorTamper, PgHarness, S3Harness};
use relay_conformance::record_store::{AppendOnlyEvidence, RecordStoreProbes};
use relay_conformance::{notary, object_store, record_store};
use relay_domain::ports::{Notary, ObjectStore, RecordStore, WormPosture};
use relay_selfhosted::{S3Notary, S3NotaryOptions, S3ObjectStore, S3ObjectStoreOptions};

/// Anchors and WORM objects in tests are locked for a minute, so test buckets on a real
/// service can be emptied and removed soon after.
const TEST_RETENTION: Duration = Duration::from_secs(60);

// REQ: R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_record_store_passes_the_record_store_suite() {
    let Some(pg) = PgHarness::start("record_store suite (Postgres)").await else {
        return;
    };
    let store = Arc::new(pg.store().await);
    assert!(store.custody().is_two_role(), "{:?}", store.custody());
    // A second pool as the same runtime role stands in for a second relay process.
    let second: Arc<dyn RecordStore> = Arc::new(pg.store().await);
    // The adapter's custody probe on the owner's pool: the attacker behind the store's back.
    let tamper = relay_selfhosted::OwnerTamperProbe {
        pool: pg.owner.clone(),
    };
    record_store::suite(
        store.clone(),
        RecordStoreProbes {
            append_only: AppendOnlyEvidence::Probe(&tamper),
            second_handle: Some(second),
        },
    )
    .await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_store_passes_the_object_store_suite() {
    let Some(s3) = S3Harness::start("object_store suite (S3)", false).await else {
        return;
    };
    let store = S3ObjectStore::open(&s3.client, S3ObjectStoreOptions::new(&s3.bucket))
        .await
        .unwrap();
    assert_eq!(store.capabilities().worm, WormPosture::Unenforced);
    object_store::suite(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_store_with_retention_passes_the_object_store_suite_as_worm() {
    let Some(s3) = S3Harness::start("object_store suite (S3, Object Lock)", true).await else {
        return;
    };
    let mut options = S3ObjectStoreOptions::new(&s3.bucket);
    options.retention = Some(TEST_RETENTION);
    let store = S3ObjectStore::open(&s3.client, options).await.unwrap();
    assert_eq!(store.capabilities().worm, WormPosture::Enforced);
    object_store::suite(Arc::new(store)).await;
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notary_passes_the_notary_suite_with_object_lock() {
    let Some(s3) = S3Harness::start("notary suite (S3 Object Lock)", true).await else {
        return;
    };
    let mut options = S3NotaryOptions::new(&s3.bucket);
    options.retention = TEST_RETENTION;
    let notary = S3Notary::open(&s3.client, options).await.unwrap();
    assert_eq!(notary.worm_posture(), WormPosture::Enforced);
    assert_eq!(notary.kind(), "s3-object-lock");
    let probe = AnchorTamper {
        notary: &notary,
        client: s3.client.clone(),
    };
    notary::suite(&notary, Some(&probe)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notary_on_an_allowed_unlocked_bucket_passes_the_suite_as_unenforced() {
    let Some(s3) = S3Harness::start("notary suite (S3, unlocked bucket)", false).await else {
        return;
    };
    let mut options = S3NotaryOptions::new(&s3.bucket);
    options.allow_unlocked_bucket = true;
    let notary = S3Notary::open(&s3.client, options).await.unwrap();
    assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
    notary::suite(&notary, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_account_store_passes_the_account_store_suite_and_cannot_delete() {
    let Some(pg) = PgHarness::start("accounts suite (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let accounts = Arc::new(relay_selfhosted::PgAccountStore::new(store.pool().clone()));
    relay_conformance::accounts::suite(accounts).await;
    // The runtime role holds SELECT, INSERT, UPDATE on accounts, never DELETE (42501).
    let denied = sqlx::query("DELETE FROM accounts")
        .execute(store.pool())
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"));
    store.close().await;
}

// REQ: R8.5, R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_receipt_store_passes_the_receipt_suite_and_is_append_only_even_to_the_owner() {
    let Some(pg) = PgHarness::start("receipts suite (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let receipts = Arc::new(relay_selfhosted::PgReceiptStore::new(store.pool().clone()));
    relay_conformance::receipts::suite(receipts.clone()).await;
    let port: &dyn relay_domain::ports::ReceiptStore = receipts.as_ref();
    let receipt = relay_domain::ports::Receipt {
        trail_id: relay_domain::TrailId::new("pg-receipt").unwrap(),
        first_seq: 1,
        last_seq: 4,
        received_at: relay_domain::Timestamp::parse_canonical("2026-03-01T10:00:00.123456Z")
            .unwrap(),
        edge: "ws-1".into(),
    };
    port.record(&receipt).await.unwrap();
    // The runtime role holds SELECT, INSERT only (42501 on UPDATE, DELETE, TRUNCATE).
    for sql in [
        "UPDATE receipts SET received_at = 'x'",
        "DELETE FROM receipts",
        "TRUNCATE receipts",
    ] {
        let denied = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"), "{sql}");
    }
    // Even the owner cannot rewrite, remove or overlap a receipt (P0001, the triggers).
    for sql in [
        "UPDATE receipts SET received_at = '2026-03-01T09:00:00.000000Z'",
        "DELETE FROM receipts",
        "TRUNCATE receipts",
        "INSERT INTO receipts (trail_id, first_seq, last_seq, received_at, edge) \
         VALUES ('pg-receipt', 3, 9, '2026-03-01T11:00:00.000000Z', 'ws-1')",
    ] {
        let refused = sqlx::query(sql).execute(&pg.owner).await.unwrap_err();
        assert_eq!(
            common::sqlstate(&refused).as_deref(),
            Some("P0001"),
            "{sql}"
        );
    }
    assert_eq!(
        port.receipts(&receipt.trail_id, 1, u64::MAX).await.unwrap(),
        vec![receipt]
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_fleet_store_passes_the_fleet_suite() {
    let Some(pg) = PgHarness::start("fleet suite (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let fleet = Arc::new(relay_selfhosted::PgFleetStore::new(store.pool().clone()));
    relay_conformance::fleet::suite(fleet).await;
    // The runtime role holds SELECT, INSERT, UPDATE on the fleet tables, never DELETE (42501):
    // a used code cannot be removed to hide that it was used.
    for sql in [
        "DELETE FROM enrollment_codes",
        "DELETE FROM fleet_edges",
        "DELETE FROM edge_reports",
    ] {
        let denied = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"), "{sql}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_change_request_store_passes_the_change_suite_and_keeps_decisions_immutable() {
    let Some(pg) = PgHarness::start("change requests suite (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let changes = Arc::new(relay_selfhosted::PgChangeRequestStore::new(
        store.pool().clone(),
    ));
    relay_conformance::changes::suite(changes.clone()).await;
    let port: &dyn relay_domain::ports::ChangeRequestStore = changes.as_ref();
    let decided = port
        .list(100)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.state != relay_domain::ports::ChangeState::Pending)
        .expect("the suite decided at least one request");
    let pending = port
        .list(100)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.state == relay_domain::ports::ChangeState::Pending)
        .expect("the suite left at least one request pending");

    // The runtime role holds SELECT, INSERT, UPDATE, never DELETE or TRUNCATE (42501).
    for sql in ["DELETE FROM change_requests", "TRUNCATE change_requests"] {
        let denied = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"), "{sql}");
    }
    // A decided request cannot be re-decided or edited, even by the owner (P0001).
    for pool in [store.pool(), &pg.owner] {
        let reopened = sqlx::query(
            "UPDATE change_requests SET state = 'pending', body = replace(body, '\"approved\"', '\"pending\"') WHERE id = $1",
        )
        .bind(&decided.id)
        .execute(pool)
        .await
        .unwrap_err();
        assert_eq!(common::sqlstate(&reopened).as_deref(), Some("P0001"));
    }
    // A pending proposal's value cannot be edited behind the approver's back: an update may
    // only record a decision.
    let edited = sqlx::query(
        "UPDATE change_requests SET body = jsonb_set(body::jsonb, '{value}', '1')::text WHERE id = $1",
    )
    .bind(&pending.id)
    .execute(store.pool())
    .await
    .unwrap_err();
    assert_eq!(common::sqlstate(&edited).as_deref(), Some("P0001"));
    let smuggled = sqlx::query(
        "UPDATE change_requests SET state = 'approved', \
         body = jsonb_set(jsonb_set(body::jsonb, '{state}', '\"approved\"'), '{value}', '1')::text \
         WHERE id = $1",
    )
    .bind(&pending.id)
    .execute(store.pool())
    .await
    .unwrap_err();
    assert_eq!(common::sqlstate(&smuggled).as_deref(), Some("P0001"));
    assert_eq!(port.get(&pending.id).await.unwrap(), pending);
    let denied = sqlx::query("DELETE FROM change_requests")
        .execute(&pg.owner)
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&denied).as_deref(), Some("P0001"));
    assert_eq!(port.get(&decided.id).await.unwrap(), decided);
    store.close().await;
}
