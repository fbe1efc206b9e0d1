//! Every conformance suite against the local adapters, each in a fresh data directory, plus the
//! local-only checks: triggers, file modes, symlinks, corruption, malformed anchors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use relay_conformance::fixtures::{ChainBuilder, unique_trail};
use relay_conformance::record_store::{AppendOnlyEvidence, RecordStoreProbes};
use relay_conformance::{notary, object_store, record_store, secrets, time_source};
use relay_domain::ports::{
    Anchor, Notary, NotaryError, ObjectKey, ObjectStore, ObjectStoreError, PutMode, RecordStore,
    RecordStoreError, SecretError, SecretName, SecretProvider, TimeSource, WormPosture,
};
use relay_domain::{ChainSeq, Checksum, TimeLabel, Timestamp, TrailId};
use relay_local::{
    FileSecretProvider, FsNotary, FsObjectStore, LocalAdapters, LocalConfig, SqliteRecordStore,
    SystemTimeSource,
};
use tempfile::TempDir;

async fn open_store(dir: &TempDir) -> SqliteRecordStore {
    SqliteRecordStore::open(&LocalConfig::new(dir.path()))
        .await
        .unwrap()
}

// REQ: R1.1, R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_record_store_passes_the_record_store_suite() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open_store(&dir).await);
    // A second pool on the same file stands in for a second process.
    let second: Arc<dyn RecordStore> = Arc::new(open_store(&dir).await);
    // The store's own custody probe (its TamperProbe port: raw SQL on its pool, as an attacker
    // with write access to relay.db would run).
    let probe = store.clone();
    record_store::suite(
        store.clone(),
        RecordStoreProbes {
            append_only: AppendOnlyEvidence::Probe(probe.as_ref()),
            second_handle: Some(second),
        },
    )
    .await;
}

// REQ: R1.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_replaced_by_a_no_op_of_the_same_name_is_reported_altered() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    let fresh = store.append_only_enforcement().await.unwrap();
    assert!(fresh.holds(), "{fresh:?}");
    assert_eq!(fresh.present.len(), 3, "{fresh:?}");
    // Same name, same event, but it no longer refuses anything.
    sqlx::raw_sql(
        "DROP TRIGGER event_log_no_update; \
         CREATE TRIGGER event_log_no_update BEFORE UPDATE ON event_log BEGIN SELECT 1; END;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let e = store.append_only_enforcement().await.unwrap();
    assert!(!e.holds());
    assert_eq!(e.missing.len(), 1, "{e:?}");
    assert!(
        e.missing[0].contains("event_log_no_update") && e.missing[0].contains("altered"),
        "{e:?}"
    );
    // The same statement re-created (whitespace aside) holds again.
    sqlx::raw_sql(
        "DROP TRIGGER event_log_no_update; \
         CREATE TRIGGER event_log_no_update\n  BEFORE UPDATE ON event_log\n  BEGIN\n  \
         SELECT RAISE(ABORT, 'event_log is append-only');\n  END;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(store.append_only_enforcement().await.unwrap().holds());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_object_store_passes_the_object_store_suite() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(FsObjectStore::open(dir.path().join("objects")).unwrap());
    object_store::suite(store).await;
}

// REQ: R1.3, R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_secret_provider_passes_the_secrets_suite() {
    let dir = TempDir::new().unwrap();
    let provider = FileSecretProvider::open(dir.path().join("secrets")).unwrap();
    secrets::suite(&provider).await;
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_notary_passes_the_notary_suite() {
    let dir = TempDir::new().unwrap();
    let notary = FsNotary::open(dir.path().join("anchors")).unwrap();
    assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
    notary::suite(&notary, None).await;
}

#[tokio::test]
async fn system_time_source_passes_the_time_source_suite() {
    time_source::suite(&SystemTimeSource::new()).await;
    assert_eq!(SystemTimeSource::new().posture().kind, "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_adapters_open_every_port_under_one_data_dir() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("nested/data");
    let local = LocalAdapters::open(&data).await.unwrap();
    assert!(data.join("relay.db").exists());
    assert!(data.join("objects").is_dir());
    assert!(data.join("anchors").is_dir());
    let secrets_mode = std::fs::metadata(data.join("secrets"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(secrets_mode & 0o777, 0o700);
    // Usable through the ports as the binary wires them.
    let store: Arc<dyn RecordStore> = local.record_store.clone();
    let mut chain = ChainBuilder::new(unique_trail("wired"));
    store.append(&chain.batch(3)).await.unwrap();
    let secrets: Arc<dyn SecretProvider> = local.secrets.clone();
    secrets.create(&SecretName::trail_hmac()).await.unwrap();
    drop(store);
    local.record_store.close().await;
    // Reopening finds the records and the schema as they were.
    let again = LocalAdapters::open(&data).await.unwrap();
    let head = again
        .record_store
        .head(chain.trail())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.seq.get(), 3);
}

// REQ: R1.4
#[tokio::test]
async fn triggers_refuse_update_and_delete_on_a_live_database() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    let mut chain = ChainBuilder::new(unique_trail("trigger"));
    let batch = chain.batch(2);
    store.append(&batch).await.unwrap();
    let trail = chain.trail().as_str();
    for sql in [
        "UPDATE event_log SET actor = 'mallory' WHERE trail_id = ? AND chain_seq = 1",
        "DELETE FROM event_log WHERE trail_id = ? AND chain_seq = 1",
        "DELETE FROM event_log WHERE trail_id = ?",
    ] {
        let err = sqlx::query(sql)
            .bind(trail)
            .execute(store.pool())
            .await
            .expect_err(sql);
        assert!(
            err.to_string().contains("event_log is append-only"),
            "{sql}: unexpected error {err}"
        );
    }
    // INSERT OR REPLACE would delete the old row first; recursive triggers catch it.
    let err = sqlx::query(
        "INSERT OR REPLACE INTO event_log SELECT * FROM event_log WHERE trail_id = ? AND chain_seq = 1",
    )
    .bind(trail)
    .execute(store.pool())
    .await
    .expect_err("insert or replace");
    // Refused either as a replacement (DELETE trigger) or as a re-insert of seq 1 (continuity).
    assert!(
        err.to_string().contains("event_log is append-only")
            || err
                .to_string()
                .contains("does not continue its trail's chain"),
        "{err}"
    );
    assert_eq!(store.read(chain.trail(), 0, 10).await.unwrap(), batch);
}

#[tokio::test]
async fn a_corrupted_row_is_reported_as_corrupt_with_its_seq() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    let mut chain = ChainBuilder::new(unique_trail("corrupt"));
    store.append(&chain.batch(3)).await.unwrap();
    // The attacker drops the trigger, then edits a row.
    sqlx::raw_sql(
        "DROP TRIGGER event_log_no_update; \
         UPDATE event_log SET occurred_at = 'last tuesday' WHERE chain_seq = 2;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    match store.read(chain.trail(), 0, 10).await {
        Err(RecordStoreError::Corrupt {
            trail_id,
            seq,
            message,
        }) => {
            assert_eq!(&trail_id, chain.trail());
            assert_eq!(seq, 2);
            assert!(message.contains("occurred_at"), "{message}");
        }
        other => panic!("expected Corrupt at seq 2, got {other:?}"),
    }
    // Record 1 is still readable on its own; an append that must compare against 2 is refused.
    assert_eq!(store.read(chain.trail(), 0, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_edited_checksum_breaks_an_append_that_overlaps_it() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    let mut chain = ChainBuilder::new(unique_trail("edited"));
    let batch = chain.batch(2);
    store.append(&batch).await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP TRIGGER event_log_no_update; UPDATE event_log SET checksum = '{}' WHERE chain_seq = 2;",
        Checksum([0x77; 32])
    ))
    .execute(store.pool())
    .await
    .unwrap();
    // The edited row differs from the genuine record: re-sending it is a conflict, not a no-op.
    assert!(matches!(
        store.append(&batch).await,
        Err(RecordStoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn a_busy_database_is_reported_as_unavailable() {
    let dir = TempDir::new().unwrap();
    let config = LocalConfig::new(dir.path()).busy_timeout(std::time::Duration::from_millis(200));
    let store = SqliteRecordStore::open(&config).await.unwrap();
    let other = SqliteRecordStore::open(&config).await.unwrap();
    // Another "process" holds the write lock.
    let mut blocker = other.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("SELECT 1")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut chain = ChainBuilder::new(unique_trail("busy"));
    let err = store.append(&chain.batch(1)).await.unwrap_err();
    assert!(
        matches!(err, RecordStoreError::Unavailable { .. }),
        "expected Unavailable, got {err:?}"
    );
    assert!(err.status().is_temporary());
    blocker.rollback().await.unwrap();
}

// REQ: R10.3
#[tokio::test]
async fn a_secret_file_readable_by_others_is_refused() {
    let dir = TempDir::new().unwrap();
    let provider = FileSecretProvider::open(dir.path().join("secrets")).unwrap();
    let name = SecretName::new("trail-hmac").unwrap();
    let created = provider.create(&name).await.unwrap();
    let path = provider.secret_file(&name);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    match provider.current(&name).await {
        Err(SecretError::Insecure { name: n, message }) => {
            assert_eq!(n, name);
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("chmod 600"), "{message}");
            assert!(!message.contains(&hex::encode(created.expose())));
        }
        other => panic!("expected Insecure, got {other:?}"),
    }
    assert!(matches!(
        provider.rotate(&name).await,
        Err(SecretError::Insecure { .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(provider.current(&name).await.unwrap().id(), created.id());
}

// REQ: R10.3
#[tokio::test]
async fn a_secrets_directory_open_to_others_is_refused() {
    let dir = TempDir::new().unwrap();
    let secrets_dir = dir.path().join("secrets");
    let provider = FileSecretProvider::open(&secrets_dir).unwrap();
    std::fs::set_permissions(&secrets_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    match provider.create(&SecretName::trail_hmac()).await {
        Err(SecretError::Insecure { message, .. }) => {
            assert!(message.contains("chmod 700"), "{message}");
        }
        other => panic!("expected Insecure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_secret_file_is_reported_without_its_contents() {
    let dir = TempDir::new().unwrap();
    let provider = FileSecretProvider::open(dir.path().join("secrets")).unwrap();
    let name = SecretName::new("broken").unwrap();
    let path = provider.secret_file(&name);
    std::fs::write(&path, "{\"format\":\"gims-relay-secret-v1\",\"versions\":[{\"id\":\"k-1\",\"secret_hex\":\"zz-topsecret\"}]}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    match provider.current(&name).await {
        Err(SecretError::Malformed { message, .. }) => {
            assert!(!message.contains("topsecret"), "{message}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[tokio::test]
async fn the_object_store_refuses_a_symlink_escaping_its_root() {
    let dir = TempDir::new().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside the root").unwrap();
    let store = FsObjectStore::open(dir.path().join("objects")).unwrap();
    std::os::unix::fs::symlink(&outside, store.root().join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), store.root().join("leaf")).unwrap();

    let through_dir = ObjectKey::new("evil/secret.txt").unwrap();
    assert!(matches!(
        store.get(&through_dir).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    let written = ObjectKey::new("evil/planted.txt").unwrap();
    assert!(matches!(
        store.put(&written, b"x".to_vec(), PutMode::Overwrite).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    assert!(
        !outside.join("planted.txt").exists(),
        "nothing may be written outside the root"
    );
    let leaf = ObjectKey::new("leaf").unwrap();
    assert!(matches!(
        store.get(&leaf).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    assert!(matches!(
        store.put(&leaf, b"x".to_vec(), PutMode::Overwrite).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    assert!(matches!(
        store.delete(&leaf).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"outside the root"
    );
    // Listing does not follow links either.
    assert!(store.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_object_store_leaves_no_temporary_files() {
    let dir = TempDir::new().unwrap();
    let store = FsObjectStore::open(dir.path()).unwrap();
    let key = ObjectKey::new("a/b").unwrap();
    store
        .put(&key, b"1".to_vec(), PutMode::Create)
        .await
        .unwrap();
    store
        .put(&key, b"2".to_vec(), PutMode::Overwrite)
        .await
        .unwrap();
    assert!(
        store
            .put(&key, b"3".to_vec(), PutMode::Create)
            .await
            .is_err()
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    // Names of temporary files are reserved, so an object can never be mistaken for one.
    let reserved = ObjectKey::new("a/.relay-tmp.x").unwrap();
    assert!(matches!(
        store.put(&reserved, Vec::new(), PutMode::Create).await,
        Err(ObjectStoreError::PermissionDenied { .. })
    ));
}

fn sample_anchor(trail: &TrailId, seq: u64) -> Anchor {
    Anchor {
        trail_id: trail.clone(),
        seq: ChainSeq::new(seq).unwrap(),
        checksum: Checksum([1; 32]),
        merkle_root: None,
        anchored_at: Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
        time_source: TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    }
}

#[tokio::test]
async fn the_fs_notary_reports_a_malformed_anchor_line_with_its_number() {
    let dir = TempDir::new().unwrap();
    let notary = FsNotary::open(dir.path().join("anchors")).unwrap();
    let trail = unique_trail("malformed");
    notary.anchor(&sample_anchor(&trail, 1)).await.unwrap();
    let path = notary.anchor_file(&trail);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"trail_id\": \"oops\"\n");
    std::fs::write(&path, &text).unwrap();
    notary.anchor(&sample_anchor(&trail, 2)).await.unwrap();
    match notary.anchors(&trail).await {
        Err(NotaryError::InvalidAnchor(message)) => {
            assert!(message.contains("line 2"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected InvalidAnchor, got {other:?}"),
    }
}

#[tokio::test]
async fn the_fs_notary_reports_an_unterminated_last_line() {
    let dir = TempDir::new().unwrap();
    let notary = FsNotary::open(dir.path().join("anchors")).unwrap();
    let trail = unique_trail("torn");
    notary.anchor(&sample_anchor(&trail, 1)).await.unwrap();
    let path = notary.anchor_file(&trail);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.trim_end()).unwrap();
    assert!(matches!(
        notary.anchors(&trail).await,
        Err(NotaryError::InvalidAnchor(_))
    ));
}

#[tokio::test]
async fn a_database_from_a_newer_relay_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    sqlx::raw_sql("PRAGMA user_version = 99")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let err = SqliteRecordStore::open(&LocalConfig::new(dir.path()))
        .await
        .unwrap_err();
    let chain = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(chain.contains("newer"), "{chain}");
}

// REQ: R1.5
#[tokio::test]
async fn the_database_itself_refuses_a_forking_or_gapped_insert() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir).await;
    let mut chain = ChainBuilder::new(unique_trail("db-continuity"));
    let batch = chain.batch(3);
    store.append(&batch).await.unwrap();
    // Raw SQL, bypassing the adapter: a second record at seq 2 (fork) and a jump to seq 9 (gap).
    for (seq, prev) in [
        (2i64, batch[0].checksum.to_hex()),
        (9, batch[2].checksum.to_hex()),
        (4, "00".repeat(32)),
    ] {
        let err = sqlx::query(
            "INSERT INTO event_log SELECT trail_id, ?, ?, checksum, kind, actor, actor_source, occurred_at, \
             recorded_at, time_source, device, project, subject, payload, key_id FROM event_log \
             WHERE trail_id = ? AND chain_seq = 3",
        )
        .bind(seq)
        .bind(prev)
        .bind(chain.trail().as_str())
        .execute(store.pool())
        .await
        .expect_err("continuity trigger must refuse");
        assert!(
            err.to_string()
                .contains("does not continue its trail's chain"),
            "{err}"
        );
    }
    assert_eq!(store.read(chain.trail(), 0, 10).await.unwrap(), batch);
}

// REQ: R3.1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_account_store_passes_the_account_store_suite() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    relay_conformance::accounts::suite(adapters.accounts.clone()).await;
}

#[tokio::test]
async fn account_rows_are_mutable_state_but_the_event_log_stays_append_only() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    let a =
        relay_conformance::accounts::sample_account("mutable", relay_domain::ports::Role::Reviewer);
    relay_domain::ports::AccountStore::create(adapters.accounts.as_ref(), &a)
        .await
        .unwrap();
    let pool = adapters.record_store.pool();
    let updated = sqlx::query("UPDATE accounts SET disabled = 1")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    // Accounts survive a reopen (lockout counters must not reset on restart).
    adapters.record_store.close().await;
    let reopened = LocalAdapters::open(dir.path()).await.unwrap();
    let got = relay_domain::ports::AccountStore::get(reopened.accounts.as_ref(), &a.username)
        .await
        .unwrap()
        .unwrap();
    assert!(got.disabled);
}

#[tokio::test]
async fn sqlite_forward_cursor_store_passes_the_forward_suite() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    relay_conformance::forward::suite(adapters.forward_cursors.as_ref()).await;
    // Durable: a reopened database still holds the cursor.
    let t = relay_domain::TrailId::new("durable-cursor").unwrap();
    relay_domain::ports::ForwardCursorStore::set_acked(adapters.forward_cursors.as_ref(), &t, 41)
        .await
        .unwrap();
    adapters.record_store.close().await;
    let reopened = LocalAdapters::open(dir.path()).await.unwrap();
    let c = relay_domain::ports::ForwardCursorStore::get(reopened.forward_cursors.as_ref(), &t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.acked_seq, 41);
}

// REQ: R8.5, R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_receipt_store_passes_the_receipt_suite_and_is_append_only() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    relay_conformance::receipts::suite(adapters.receipts.clone()).await;
    let t = relay_domain::TrailId::new("durable-receipt").unwrap();
    let receipt = relay_domain::ports::Receipt {
        trail_id: t.clone(),
        first_seq: 1,
        last_seq: 4,
        received_at: relay_domain::Timestamp::parse_canonical("2026-03-01T10:00:00.123456Z")
            .unwrap(),
        edge: "ws-1".into(),
    };
    let store: &dyn relay_domain::ports::ReceiptStore = adapters.receipts.as_ref();
    store.record(&receipt).await.unwrap();
    // The store itself refuses to rewrite or remove a receipt, and an overlapping insert from
    // any writer (the triggers, not only the adapter's check).
    let pool = adapters.record_store.pool().clone();
    for sql in [
        "UPDATE receipts SET received_at = '2026-03-01T09:00:00.000000Z'",
        "DELETE FROM receipts",
        "INSERT INTO receipts (trail_id, first_seq, last_seq, received_at, edge) \
         VALUES ('durable-receipt', 3, 9, '2026-03-01T11:00:00.000000Z', 'ws-1')",
    ] {
        let refused = sqlx::query(sql).execute(&pool).await;
        assert!(refused.is_err(), "{sql} must be refused");
    }
    // Durable: a reopened database still holds the receipt, byte for byte.
    adapters.record_store.close().await;
    let reopened = LocalAdapters::open(dir.path()).await.unwrap();
    let store: &dyn relay_domain::ports::ReceiptStore = reopened.receipts.as_ref();
    assert_eq!(store.receipts(&t, 2, 2).await.unwrap(), vec![receipt]);
    reopened.record_store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fleet_store_passes_the_fleet_suite_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    relay_conformance::fleet::suite(adapters.fleet.clone()).await;
    let store: &dyn relay_domain::ports::FleetStore = adapters.fleet.as_ref();
    let at = Timestamp::parse_canonical("2026-03-01T10:00:00.123456Z").unwrap();
    let trails = vec![
        TrailId::new("durable-fleet-a").unwrap(),
        TrailId::new("durable-fleet-b").unwrap(),
    ];
    store
        .enroll("ws-durable", &trails, at, "admin-ann")
        .await
        .unwrap();
    let enrolled = store.edge("ws-durable").await.unwrap().unwrap();
    // Durable: a reopened database still holds the edge, field for field.
    adapters.record_store.close().await;
    let reopened = LocalAdapters::open(dir.path()).await.unwrap();
    let store: &dyn relay_domain::ports::FleetStore = reopened.fleet.as_ref();
    let got = store.edge("ws-durable").await.unwrap().unwrap();
    assert_eq!(got, enrolled);
    assert_eq!(got.state, relay_domain::ports::EdgeState::Enrolled);
    assert_eq!(got.trails, trails);
    assert_eq!(got.enrolled_at, at);
    assert_eq!(got.enrolled_by, "admin-ann");
    reopened.record_store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_change_request_store_passes_the_change_suite() {
    let dir = TempDir::new().unwrap();
    let adapters = LocalAdapters::open(dir.path()).await.unwrap();
    relay_conformance::changes::suite(adapters.changes.clone()).await;
    // Durable: a reopened database still holds the baseline and the requests.
    adapters.record_store.close().await;
    let reopened = LocalAdapters::open(dir.path()).await.unwrap();
    let store: &dyn relay_domain::ports::ChangeRequestStore = reopened.changes.as_ref();
    assert_eq!(
        store.config_baseline().await.unwrap().as_deref(),
        Some("{\"settle_ms\":2}")
    );
    assert!(!store.list(100).await.unwrap().is_empty());
}

/// A namespace no other test or run shares.
#[cfg(feature = "keyring")]
fn keyring_namespace(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("relay-test/{tag}/{}-{nanos}", std::process::id())
}

/// Runs the secrets suite on `store` when this machine offers it; otherwise prints why not.
/// Keyrings are environment-dependent (a session bus and an unlocked Secret Service; a kernel
/// with keyrings), so a machine without one skips loudly instead of failing.
#[cfg(feature = "keyring")]
async fn keyring_suite_or_skip(store: relay_local::KeyringStore) -> bool {
    let namespace = keyring_namespace(store.kind());
    match relay_local::KeyringSecretProvider::open(&namespace, store).await {
        Ok(provider) => {
            assert_eq!(provider.kind(), store.kind());
            assert_eq!(provider.namespace(), namespace);
            secrets::suite(&provider).await;
            // A second provider on the same namespace (another process, a restart) reads the
            // same versions: the keyring, not this object, holds them.
            let name = SecretName::new("trail-hmac").unwrap();
            let first = provider.create(&name).await.unwrap();
            let rotated = provider.rotate(&name).await.unwrap();
            let again = relay_local::KeyringSecretProvider::open(&namespace, store)
                .await
                .unwrap();
            assert_eq!(
                again.versions(&name).await.unwrap(),
                vec![first.id().clone(), rotated.id().clone()]
            );
            assert!(
                again
                    .version(&name, first.id())
                    .await
                    .unwrap()
                    .ct_matches(first.expose())
            );
            true
        }
        Err(e) => {
            eprintln!(
                "SKIP keyring secrets suite on {}: no usable keyring here: {e}",
                store.kind()
            );
            false
        }
    }
}

// REQ: R10.3
#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_secret_provider_passes_the_secrets_suite_on_the_kernel_keyring() {
    keyring_suite_or_skip(relay_local::KeyringStore::KernelKeyutils).await;
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_secret_provider_passes_the_secrets_suite_on_the_secret_service() {
    keyring_suite_or_skip(relay_local::KeyringStore::SecretService).await;
}

#[tokio::test]
async fn the_chosen_secret_provider_is_recorded_and_found_by_every_later_open() {
    let dir = TempDir::new().unwrap();
    let namespace = dir.path().display().to_string();
    let config = LocalConfig::new(dir.path()).secret_backend(relay_local::SecretBackend::Keyring {
        namespace: namespace.clone(),
    });
    let local = LocalAdapters::open_with(config).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("secret-provider.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["provider"], "keyring");
    assert_eq!(record["namespace"], namespace.as_str());
    // Either the keyring is used, or the file provider stands in and says why: never both,
    // never neither.
    let on_keyring = local.secrets.kind().starts_with("keyring-");
    match &local.secrets_fallback {
        Some(fallback) => {
            assert!(!on_keyring);
            assert_eq!(local.secrets.kind(), "file");
            assert_eq!((fallback.wanted, fallback.using), ("keyring", "file"));
            assert!(!fallback.reason.is_empty());
            #[cfg(not(feature = "keyring"))]
            assert!(fallback.reason.contains("feature"), "{}", fallback.reason);
        }
        None => assert!(on_keyring, "{}", local.secrets.kind()),
    }
    local.record_store.close().await;
    // A later open without a choice (verify, export, keys) goes where run keeps the keys.
    let later = LocalAdapters::open(dir.path()).await.unwrap();
    assert_eq!(
        later.secrets.kind().starts_with("keyring-"),
        later.secrets_fallback.is_none()
    );
    later.record_store.close().await;
    // An explicit choice of files is recorded too.
    let files = LocalAdapters::open_with(
        LocalConfig::new(dir.path()).secret_backend(relay_local::SecretBackend::File),
    )
    .await
    .unwrap();
    assert_eq!(files.secrets.kind(), "file");
    assert!(files.secrets_fallback.is_none());
    let record = std::fs::read_to_string(dir.path().join("secret-provider.json")).unwrap();
    assert!(record.contains("\"file\""), "{record}");
}

/// `newest_anchor` on a long anchor file reads only its end and still finds the newest anchor
/// (the same as the last of `anchors`), refuses a cut-off last line and an anchor of another
/// trail in the lines it reads, as `anchors` does.
#[tokio::test]
async fn the_fs_notary_finds_the_newest_anchor_in_the_end_of_a_long_file() {
    let dir = TempDir::new().unwrap();
    let notary = FsNotary::open(dir.path().join("anchors")).unwrap();
    let trail = unique_trail("long");
    let path = notary.anchor_file(&trail);
    let mut text = String::new();
    for seq in 1..=3000u64 {
        text.push_str(&serde_json::to_string(&sample_anchor(&trail, seq)).unwrap());
        text.push('\n');
    }
    assert!(text.len() as u64 > 2 * relay_local::ANCHOR_TAIL_BYTES);
    std::fs::write(&path, &text).unwrap();
    // The newest is also written: a later time at the same seq wins.
    let mut later = sample_anchor(&trail, 3000);
    later.anchored_at = Timestamp::from_unix_micros(1_764_075_476_000_000).unwrap();
    notary.anchor(&later).await.unwrap();
    let newest = notary.newest_anchor(&trail).await.unwrap();
    assert_eq!(newest.as_ref(), Some(&later));
    assert_eq!(newest, notary.anchors(&trail).await.unwrap().pop());

    let mut cut = std::fs::read_to_string(&path).unwrap();
    cut.push_str("{\"trail_id\":");
    std::fs::write(&path, &cut).unwrap();
    assert!(matches!(
        notary.newest_anchor(&trail).await,
        Err(NotaryError::InvalidAnchor(_))
    ));
    let other = unique_trail("other");
    let mut foreign = text.clone();
    foreign.push_str(&serde_json::to_string(&sample_anchor(&other, 3001)).unwrap());
    foreign.push('\n');
    std::fs::write(&path, &foreign).unwrap();
    match notary.newest_anchor(&trail).await {
        Err(NotaryError::InvalidAnchor(m)) => assert!(m.contains("in the file of trail"), "{m}"),
        other => panic!("expected InvalidAnchor, got {other:?}"),
    }
}
