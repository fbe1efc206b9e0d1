//! Process helpers shared by the `relay-edge` integration tests: start, stop, verify, read a
//! trail back, wait for records, tamper as an attacker with file access.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use relay_domain::ports::RecordStoreExt;
use relay_domain::{Record, TrailId};
use relay_local::SqliteRecordStore;

pub const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");
pub const TRAIL: &str = "nmr-test";

pub fn start(data: &Path, watch: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args([
            "--device",
            TRAIL,
            "--project",
            "PRJ-E2E",
            "--settle-ms",
            "300",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay-edge")
}

pub fn verify(data: &Path) -> Output {
    Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

pub fn stop(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "relay-edge exited with {status} after SIGTERM"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "relay-edge did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn records(data: &Path, trail: &str) -> Vec<Record> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Read-only: a running relay's appends neither wait for the test nor make it fail. A
        // relay that is starting has created relay.db but may not have committed its schema
        // yet (version 0): wait for that condition, not for a time.
        let db = data.join("relay.db");
        let deadline = Instant::now() + Duration::from_secs(30);
        let store = loop {
            match SqliteRecordStore::open_read_only(&db, Duration::from_secs(30)).await {
                Ok(store) => break store,
                Err(e)
                    if e.to_string().contains("schema version 0") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot read {}: {e}", db.display()),
            }
        };
        let mut out = Vec::new();
        store
            .for_each_record(&TrailId::new(trail).unwrap(), 1000, |r| {
                out.push(r);
                true
            })
            .await
            .unwrap();
        store.close().await;
        out
    })
}

pub fn wait_for_records(data: &Path, kind: &str, n: usize, timeout: Duration) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = if data.join("relay.db").exists() {
            records(data, TRAIL)
        } else {
            Vec::new()
        };
        if all.iter().filter(|r| r.kind.as_str() == kind).count() >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} {kind} records; have {}",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Drops the append-only triggers and edits a stored record, as an attacker with file access.
pub fn tamper(data: &Path, seq: u64, sql_set: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("relay.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            !triggers.is_empty(),
            "the store should have append-only triggers"
        );
        let refused = sqlx::query(&format!(
            "UPDATE event_log SET {sql_set} WHERE trail_id = ? AND chain_seq = ?"
        ))
        .bind(TRAIL)
        .bind(seq as i64)
        .execute(&pool)
        .await;
        assert!(
            refused.is_err(),
            "the trigger must refuse the edit while it exists"
        );
        for t in triggers {
            sqlx::query(&format!("DROP TRIGGER \"{t}\""))
                .execute(&pool)
                .await
                .unwrap();
        }
        let done = sqlx::query(&format!(
            "UPDATE event_log SET {sql_set} WHERE trail_id = ? AND chain_seq = ?"
        ))
        .bind(TRAIL)
        .bind(seq as i64)
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
        pool.close().await;
    });
}

/// Unix microseconds as a 64-bit NTP timestamp (for the fake SNTP servers of the tests).
pub fn to_ntp(unix_micros: i64) -> u64 {
    let micros = u64::try_from(unix_micros).unwrap();
    let secs = micros / 1_000_000 + 2_208_988_800;
    let frac = ((micros % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// The host clock in Unix microseconds.
pub fn now_micros() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}
