//! Custody on live services: two-role custody and triggers on Postgres (R1.4), Object Lock on
//! the S3-compatible store (R7.2). Each denial is tried, never assumed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use common::{PgHarness, S3Harness, sqlstate};
use relay_conformance::fixtures::{ChainBuilder, unique_trail};
use relay_domain::ports::{
    Anchor, Notary, NotaryError, ObjectKey, ObjectStore, ObjectStoreError, PutMode, RecordStore,
    RecordStoreError,
};
use relay_domain::{ChainSeq, Checksum, TimeLabel, Timestamp, TrailId};
use relay_selfhosted::{
    MigrateConfig, MigrateError, PgConfig, PgRecordStore, S3Notary, S3NotaryOptions, S3ObjectStore,
    S3ObjectStoreOptions, migrate,
};

const TAMPER: [&str; 3] = [
    "UPDATE event_log SET actor = 'mallory' WHERE trail_id = $1",
    "DELETE FROM event_log WHERE trail_id = $1",
    "TRUNCATE event_log",
];

async fn try_sql(pool: &sqlx::PgPool, sql: &str, trail: &TrailId) -> Option<String> {
    let q = sqlx::query(sql);
    let q = if sql.contains("$1") {
        q.bind(trail.as_str())
    } else {
        q
    };
    match q.execute(pool).await {
        Ok(done) => panic!(
            "{sql}: expected a refusal, {} rows changed",
            done.rows_affected()
        ),
        Err(e) => sqlstate(&e),
    }
}

// REQ: R1.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_role_is_refused_update_delete_truncate_with_42501() {
    let Some(pg) = PgHarness::start("custody: runtime role grants (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let mut chain = ChainBuilder::new(unique_trail("custody-app"));
    let batch = chain.batch(3);
    store.append(&batch).await.unwrap();
    for sql in TAMPER {
        assert_eq!(
            try_sql(store.pool(), sql, chain.trail()).await.as_deref(),
            Some("42501"),
            "{sql} as the runtime role"
        );
    }
    // The runtime can still append and read.
    let more = chain.batch(2);
    let receipt = store.append(&more).await.unwrap();
    assert_eq!(receipt.head.seq.get(), 5);
    let mut all = batch;
    all.extend(more);
    assert_eq!(store.read(chain.trail(), 0, 10).await.unwrap(), all);
    assert!(store.custody().is_two_role());
    assert_eq!(store.custody().role, pg.app_role);
}

// REQ: R1.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_stopped_by_the_trigger_with_p0001() {
    let Some(pg) = PgHarness::start("custody: triggers (Postgres)").await else {
        return;
    };
    let store = pg.store().await;
    let mut chain = ChainBuilder::new(unique_trail("custody-owner"));
    let batch = chain.batch(3);
    store.append(&batch).await.unwrap();
    for sql in TAMPER {
        assert_eq!(
            try_sql(&pg.owner, sql, chain.trail()).await.as_deref(),
            Some("P0001"),
            "{sql} as the owner"
        );
    }
    // Also with no matching row, and through INSERT .. ON CONFLICT DO UPDATE.
    let none = TrailId::new("no-such-trail").unwrap();
    assert_eq!(
        try_sql(&pg.owner, TAMPER[0], &none).await.as_deref(),
        Some("P0001")
    );
    let upsert = "INSERT INTO event_log SELECT * FROM event_log WHERE trail_id = $1 \
                  ON CONFLICT (trail_id, chain_seq) DO UPDATE SET actor = 'mallory'";
    assert_eq!(
        try_sql(&pg.owner, upsert, chain.trail()).await.as_deref(),
        Some("P0001")
    );
    assert_eq!(store.read(chain.trail(), 0, 10).await.unwrap(), batch);
    store.append(&chain.batch(1)).await.unwrap();
}

// REQ: R1.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_refuses_a_privileged_role_unless_told_otherwise() {
    let Some(pg) = PgHarness::start("custody: privileged runtime role (Postgres)").await else {
        return;
    };
    match PgRecordStore::connect(&PgConfig::new(pg.owner_dsn.clone())).await {
        Err(RecordStoreError::PermissionDenied { message, .. }) => {
            assert!(message.contains("two-role custody"), "{message}");
            assert!(
                message.contains("OWNER") || message.contains("SUPERUSER"),
                "{message}"
            );
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    let tolerated =
        PgRecordStore::connect(&PgConfig::new(pg.owner_dsn.clone()).allow_privileged_role(true))
            .await
            .unwrap();
    assert!(!tolerated.custody().is_two_role());
    assert!(tolerated.custody().excess_privileges.contains(&"UPDATE"));
    tolerated.close().await;
}

/// What the enforcement check reports now, as the running store would at a start or a verify.
async fn missing_now(store: &PgRecordStore) -> Vec<String> {
    store.append_only_enforcement().await.unwrap().missing
}

// REQ: R1.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weakened_triggers_and_grants_are_reported_by_the_enforcement_check() {
    let Some(pg) = PgHarness::start("custody: enforcement check (Postgres)").await else {
        return;
    };
    // The runtime store stays connected: every change below happens while it runs.
    let store = pg.store().await;
    let fresh = store.append_only_enforcement().await.unwrap();
    assert!(fresh.holds(), "{fresh:?}");
    assert_eq!(
        fresh.present.len(),
        4,
        "three triggers and the grants: {fresh:?}"
    );

    // The owner grants UPDATE to the runtime role (two-role custody broken).
    sqlx::query(&format!("GRANT UPDATE ON event_log TO \"{}\"", pg.app_role))
        .execute(&pg.owner)
        .await
        .unwrap();
    let missing = missing_now(&store).await;
    assert!(
        missing
            .iter()
            .any(|m| m.contains("holds UPDATE") && m.contains(&pg.app_role)),
        "{missing:?}"
    );
    sqlx::query(&format!(
        "REVOKE UPDATE ON event_log FROM \"{}\"",
        pg.app_role
    ))
    .execute(&pg.owner)
    .await
    .unwrap();
    assert_eq!(missing_now(&store).await, Vec::<String>::new());

    // A disabled trigger, then one that fires only for replication sessions.
    for (how, state) in [("DISABLE", "\"D\""), ("ENABLE REPLICA", "\"R\"")] {
        sqlx::query(&format!(
            "ALTER TABLE event_log {how} TRIGGER event_log_no_update"
        ))
        .execute(&pg.owner)
        .await
        .unwrap();
        let missing = missing_now(&store).await;
        assert!(
            missing
                .iter()
                .any(|m| m.contains("event_log_no_update") && m.contains(state)),
            "{how}: {missing:?}"
        );
    }
    sqlx::query("ALTER TABLE event_log ENABLE TRIGGER event_log_no_update")
        .execute(&pg.owner)
        .await
        .unwrap();
    assert_eq!(missing_now(&store).await, Vec::<String>::new());

    // The refusing function replaced by one that lets every change through.
    sqlx::query(
        "CREATE OR REPLACE FUNCTION event_log_refuse_change() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    )
    .execute(&pg.owner)
    .await
    .unwrap();
    let missing = missing_now(&store).await;
    assert_eq!(
        missing.len(),
        3,
        "every trigger runs the altered function: {missing:?}"
    );
    assert!(missing.iter().all(|m| m.contains("altered")), "{missing:?}");

    // A dropped trigger.
    sqlx::query("DROP TRIGGER event_log_no_truncate ON event_log")
        .execute(&pg.owner)
        .await
        .unwrap();
    let missing = missing_now(&store).await;
    assert!(
        missing
            .iter()
            .any(|m| m.contains("event_log_no_truncate") && m.contains("missing")),
        "{missing:?}"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_refuses_unsafe_roles() {
    let Some(pg) = PgHarness::start("custody: migrate (Postgres)").await else {
        return;
    };
    let again = migrate(&MigrateConfig::new(pg.owner_dsn.clone()).app_role(pg.app_role.clone()))
        .await
        .unwrap();
    assert!(again.applied.is_empty());
    assert!(!again.role_created);
    assert_eq!(again.schema_version, 6);
    // The admin role itself as the runtime role, a superuser, and a malformed name.
    let admin: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pg.owner)
        .await
        .unwrap();
    for (role, expect_custody) in [(admin.as_str(), true), ("root", true), ("Bad-Name", false)] {
        let superuser: Option<bool> =
            sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = $1")
                .bind(role)
                .fetch_optional(&pg.owner)
                .await
                .unwrap();
        if role == "root" && superuser != Some(true) {
            continue; // only meaningful where a second superuser exists
        }
        let result = migrate(&MigrateConfig::new(pg.owner_dsn.clone()).app_role(role)).await;
        match (result, expect_custody) {
            (Err(MigrateError::Custody(_)), true)
            | (Err(MigrateError::InvalidRoleName(_)), false) => {}
            (other, _) => panic!("app role {role:?}: unexpected {other:?}"),
        }
    }
    // The runtime role still holds exactly SELECT, INSERT.
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT privilege_type::text FROM information_schema.role_table_grants \
         WHERE grantee = $1 AND table_name = 'event_log' ORDER BY 1",
    )
    .bind(&pg.app_role)
    .fetch_all(&pg.owner)
    .await
    .unwrap();
    assert_eq!(grants, ["INSERT", "SELECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_is_refused_with_a_hint() {
    let Some(pg) = PgHarness::start("custody: unmigrated database (Postgres)").await else {
        return;
    };
    sqlx::raw_sql("DELETE FROM relay_schema_migrations")
        .execute(&pg.owner)
        .await
        .unwrap();
    match PgRecordStore::connect(&pg.app_config()).await {
        Err(RecordStoreError::Other { message, .. }) => {
            assert!(message.contains("relay-server migrate"), "{message}")
        }
        other => panic!("expected Other, got {other:?}"),
    }
}

// REQ: R1.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_holding_the_trail_lock_makes_appends_unavailable_not_forked() {
    let Some(pg) = PgHarness::start("custody: lock timeout (Postgres)").await else {
        return;
    };
    let store = PgRecordStore::connect(&pg.app_config().lock_timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    let mut chain = ChainBuilder::new(unique_trail("custody-lock"));
    // Another process holds the trail's lock in an open transaction.
    let mut blocker = store.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(1380273217, hashtext($1))")
        .bind(chain.trail().as_str())
        .execute(&mut *blocker)
        .await
        .unwrap();
    let err = store.append(&chain.batch(1)).await.unwrap_err();
    assert!(
        matches!(err, RecordStoreError::Unavailable { .. }),
        "expected Unavailable, got {err:?}"
    );
    assert!(err.status().is_temporary());
    blocker.rollback().await.unwrap();
    assert_eq!(store.head(chain.trail()).await.unwrap(), None);
}

fn anchor(trail: &TrailId, seq: u64) -> Anchor {
    Anchor {
        trail_id: trail.clone(),
        seq: ChainSeq::new(seq).unwrap(),
        checksum: Checksum([7; 32]),
        merkle_root: None,
        anchored_at: Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
        time_source: TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    }
}

async fn locked_notary(s3: &S3Harness) -> S3Notary {
    let mut options = S3NotaryOptions::new(&s3.bucket);
    options.retention = Duration::from_secs(60);
    S3Notary::open(&s3.client, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notary_refuses_a_bucket_without_object_lock() {
    let Some(s3) = S3Harness::start("custody: notary on unlocked bucket (S3)", false).await else {
        return;
    };
    match S3Notary::open(&s3.client, S3NotaryOptions::new(&s3.bucket)).await {
        Err(NotaryError::NotWorm(message)) => {
            assert!(message.contains("Object Lock"), "{message}");
            assert!(message.contains(&s3.bucket), "{message}");
        }
        other => panic!("expected NotWorm, got {other:?}"),
    }
    let mut options = S3ObjectStoreOptions::new(&s3.bucket);
    options.retention = Some(Duration::from_secs(60));
    assert!(matches!(
        S3ObjectStore::open(&s3.client, options).await,
        Err(ObjectStoreError::Other { .. })
    ));
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_refuses_to_delete_or_unlock_a_locked_anchor_version() {
    let Some(s3) = S3Harness::start("custody: Object Lock anchors (S3)", true).await else {
        return;
    };
    let notary = locked_notary(&s3).await;
    let trail = unique_trail("custody-anchor");
    let receipt = notary.anchor(&anchor(&trail, 1)).await.unwrap();
    assert!(receipt.retain_until.is_some());
    let listed = s3
        .client
        .sdk()
        .list_object_versions()
        .bucket(&s3.bucket)
        .prefix(notary.trail_prefix(&trail))
        .send()
        .await
        .unwrap();
    let v = &listed.versions()[0];
    let (key, version) = (v.key().unwrap(), v.version_id().unwrap());
    assert!(receipt.location.contains(key) && receipt.location.contains(version));
    let head = s3
        .client
        .sdk()
        .head_object()
        .bucket(&s3.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    for bypass in [false, true] {
        let err = s3
            .client
            .sdk()
            .delete_object()
            .bucket(&s3.bucket)
            .key(key)
            .version_id(version)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .expect_err("deleting a locked version must be refused");
        assert_eq!(err.code(), Some("AccessDenied"), "bypass {bypass}");
    }
    assert_eq!(
        notary.anchors(&trail).await.unwrap(),
        vec![anchor(&trail, 1)]
    );
}

async fn first_key(s3: &S3Harness, prefix: String) -> String {
    let listed = s3
        .client
        .sdk()
        .list_objects_v2()
        .bucket(&s3.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    listed.contents()[0].key().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_replaced_or_unlocked_anchors_are_reported_as_invalid() {
    let Some(s3) = S3Harness::start("custody: anchor read-back checks (S3)", true).await else {
        return;
    };
    let notary = locked_notary(&s3).await;
    let sdk = s3.client.sdk();

    // A versionless delete only hides the locked version behind a delete marker.
    let hidden = unique_trail("custody-hidden");
    notary.anchor(&anchor(&hidden, 1)).await.unwrap();
    let key = first_key(&s3, notary.trail_prefix(&hidden)).await;
    sdk.delete_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    match notary.anchors(&hidden).await {
        Err(NotaryError::InvalidAnchor(m)) => assert!(m.contains("delete marker"), "{m}"),
        other => panic!("expected InvalidAnchor, got {other:?}"),
    }
    assert!(notary.anchored_trails().await.unwrap().contains(&hidden));

    // A put to the same key adds a second version that would shadow the anchor.
    let replaced = unique_trail("custody-replaced");
    notary.anchor(&anchor(&replaced, 1)).await.unwrap();
    let key = first_key(&s3, notary.trail_prefix(&replaced)).await;
    let forged = serde_json::to_vec(&anchor(&replaced, 99)).unwrap();
    sdk.put_object()
        .bucket(&s3.bucket)
        .key(&key)
        .body(ByteStream::from(forged))
        .send()
        .await
        .unwrap();
    match notary.anchors(&replaced).await {
        Err(NotaryError::InvalidAnchor(m)) => assert!(m.contains("2 versions"), "{m}"),
        other => panic!("expected InvalidAnchor, got {other:?}"),
    }

    // An object planted without retention is not an anchor the store protects.
    let planted = unique_trail("custody-planted");
    let body = serde_json::to_vec(&anchor(&planted, 1)).unwrap();
    sdk.put_object()
        .bucket(&s3.bucket)
        .key(format!("{}planted.json", notary.trail_prefix(&planted)))
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
    match notary.anchors(&planted).await {
        Err(NotaryError::InvalidAnchor(m)) => assert!(m.contains("COMPLIANCE"), "{m}"),
        other => panic!("expected InvalidAnchor, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worm_object_store_refuses_overwrite_and_delete_through_the_store() {
    let Some(s3) = S3Harness::start("custody: WORM object store (S3)", true).await else {
        return;
    };
    let mut options = S3ObjectStoreOptions::new(&s3.bucket);
    options.retention = Some(Duration::from_secs(60));
    let store = S3ObjectStore::open(&s3.client, options).await.unwrap();
    let key = ObjectKey::new("evidence/run-1.fid").unwrap();
    store
        .put(&key, b"v1".to_vec(), PutMode::Create)
        .await
        .unwrap();
    assert!(matches!(
        store.put(&key, b"v2".to_vec(), PutMode::Overwrite).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    assert!(matches!(
        store.delete(&key).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    // The refusal came from the store: the locked version is still the only one.
    let versions = s3
        .client
        .sdk()
        .list_object_versions()
        .bucket(&s3.bucket)
        .prefix(store.s3_key(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
    assert!(versions.delete_markers().is_empty());
    assert_eq!(store.get(&key).await.unwrap(), b"v1");
}
