//! A tool or test inspects a data directory while the relay writes to it. The read-only open
//! takes no write lock (it neither waits behind the relay's appends nor blocks them), creates
//! nothing, changes nothing, and refuses a schema it does not read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use relay_conformance::fixtures::ChainBuilder;
use relay_domain::TrailId;
use relay_domain::ports::RecordStore;
use relay_local::{LocalAdapters, SqliteRecordStore};
use sqlx::{Connection, Executor, SqliteConnection};

// REQ: R1.1
#[tokio::test]
async fn a_read_only_open_reads_while_another_process_holds_the_write_lock_and_never_writes() {
    let dir = tempfile::TempDir::new().unwrap();
    let trail = TrailId::new("ws-ro").unwrap();
    let writer = LocalAdapters::open(dir.path()).await.unwrap();
    let mut chain = ChainBuilder::new(trail.clone());
    writer.record_store.append(&chain.batch(3)).await.unwrap();
    let db = dir.path().join("relay.db");

    // "The running relay" inside a write transaction for the whole test.
    let mut holder = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();

    // A short busy timeout: had the open waited for the write lock, it would fail.
    let reader = SqliteRecordStore::open_read_only(&db, Duration::from_millis(200))
        .await
        .expect("a read-only open needs no write lock");
    let head = reader.head(&trail).await.unwrap().expect("three records");
    assert_eq!(head.seq.get(), 3);

    let refused = reader.append(&chain.batch(1)).await;
    assert!(
        refused.is_err(),
        "an append through a read-only store fails"
    );
    holder.execute("ROLLBACK").await.unwrap();
    reader.close().await;
    assert_eq!(
        writer
            .record_store
            .head(&trail)
            .await
            .unwrap()
            .unwrap()
            .seq
            .get(),
        3,
        "nothing was written through the read-only store"
    );
    writer.record_store.close().await;
}

// REQ: R1.1
#[tokio::test]
async fn a_read_only_open_creates_nothing_and_refuses_a_foreign_schema() {
    let dir = tempfile::TempDir::new().unwrap();
    let missing = dir.path().join("relay.db");
    let err = SqliteRecordStore::open_read_only(&missing, Duration::from_secs(1))
        .await
        .expect_err("a missing file is an error");
    assert!(err.to_string().contains("relay.db"), "{err}");
    assert!(!missing.exists(), "the read-only open created {missing:?}");

    // An SQLite file that is not (yet) a relay store: schema version 0.
    let other = dir.path().join("other.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
        .await
        .unwrap();
    conn.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
    conn.close().await.unwrap();
    let err = SqliteRecordStore::open_read_only(&other, Duration::from_secs(1))
        .await
        .expect_err("a foreign schema is refused");
    assert!(err.to_string().contains("schema version 0"), "{err}");
}
