//! A second process opens a live data directory (`relay-edge verify`, `backup`, an operator's
//! tool) while the running relay holds SQLite's write lock for its appends. Opening an
//! up-to-date store must not need that lock: under load the relay can hold it longer than the
//! busy timeout, and the open failed with "database is locked" (seen in the fleet tests).

use std::time::{Duration, Instant};

use relay_domain::TrailId;
use relay_domain::ports::RecordStore;
use relay_local::{LocalAdapters, LocalConfig};
use sqlx::{Connection, Executor, SqliteConnection};

// REQ: R1.1
#[tokio::test]
async fn an_up_to_date_store_opens_while_another_process_holds_the_write_lock() {
    let dir = tempfile::TempDir::new().unwrap();
    // Create and migrate the store, then close it.
    let first = LocalAdapters::open(dir.path()).await.unwrap();
    first.record_store.close().await;

    // "The running relay": a connection inside a write transaction, held for the whole test.
    let db = dir.path().join("relay.db");
    let mut holder = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert!(version > 0, "the first open migrated the store");
    holder.execute("BEGIN IMMEDIATE").await.unwrap();

    // A second opener with a short busy timeout: waiting for the lock would fail it.
    let started = Instant::now();
    let second = LocalAdapters::open_with(
        LocalConfig::new(dir.path()).busy_timeout(Duration::from_millis(200)),
    )
    .await
    .expect("an up-to-date store opens without the write lock");
    // It can read while the lock is held (WAL readers never wait for the writer).
    let head = second
        .record_store
        .head(&TrailId::new("ws-01").unwrap())
        .await
        .unwrap();
    assert!(head.is_none());
    eprintln!(
        "opened and read in {:?} while the write lock was held",
        started.elapsed()
    );

    holder.execute("ROLLBACK").await.unwrap();
    second.record_store.close().await;
}
