//! Key rotation end to end (R1.3): `relay-edge keys rotate` twice between captures gives a trail
//! spanning three key ids that `relay-edge verify` accepts, and tampering a record signed under
//! the oldest key is still detected and named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use relay_domain::ports::RecordStoreExt;
use relay_domain::{Record, TrailId};
use relay_local::SqliteRecordStore;

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");
const TRAIL: &str = "nmr-test";

fn start(data: &Path, watch: &Path) -> Child {
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

fn verify(data: &Path) -> Output {
    Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

fn stop(mut child: Child) {
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

fn records(data: &Path, trail: &str) -> Vec<Record> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store =
            SqliteRecordStore::open_file(&data.join("relay.db"), Duration::from_secs(10), 1)
                .await
                .unwrap();
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

fn wait_for_records(data: &Path, kind: &str, n: usize, timeout: Duration) -> Vec<Record> {
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
fn tamper(data: &Path, seq: u64, sql_set: &str) {
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

fn keys(data: &Path, action: &str) -> Output {
    Command::new(BIN)
        .args(["keys", action, "--data-dir"])
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

/// Runs the relay, writes two new files and stops it once `total` FILE_CREATED records exist.
fn capture_round(data: &Path, watch: &Path, round: usize, total: usize) {
    let child = start(data, watch);
    for i in 0..2 {
        std::fs::write(
            watch.join(format!("round{round}-{i}.fid")),
            format!("round {round} file {i}"),
        )
        .unwrap();
    }
    wait_for_records(data, "FILE_CREATED", total, Duration::from_secs(30));
    stop(child);
}

#[test]
fn a_trail_spanning_three_key_ids_verifies_and_tamper_under_the_oldest_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();

    capture_round(&data, &watch, 0, 2);
    let first = keys(&data, "rotate");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("rotated trail key"));
    capture_round(&data, &watch, 1, 4);
    let second = keys(&data, "rotate");
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    capture_round(&data, &watch, 2, 6);

    let list = keys(&data, "list");
    assert_eq!(list.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    let listed_ids: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed_ids.len(), 3, "{listed}");
    assert!(
        listed.lines().last().unwrap().ends_with("(current)"),
        "{listed}"
    );

    let trail = records(&data, TRAIL);
    let used: Vec<String> = trail.iter().map(|r| r.key_id.to_string()).collect();
    let distinct: BTreeSet<&String> = used.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "the trail must span three key ids: {used:?}"
    );
    // Oldest first: the rounds were signed with the keys in the order `keys list` gives.
    assert_eq!(used[0], listed_ids[0]);
    assert_eq!(used[2], listed_ids[1]);
    assert_eq!(used[4], listed_ids[2]);
    let relay = records(&data, "_relay");
    let rotations: Vec<&Record> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "KEY_ROTATED")
        .collect();
    assert_eq!(rotations.len(), 2);
    assert_eq!(
        rotations[1].key_id.as_str(),
        listed_ids[2],
        "KEY_ROTATED is signed with the new key"
    );

    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "verify failed: {stdout}");
    assert!(
        stdout.contains(&format!("OK      {TRAIL}: 6 records verified")),
        "{stdout}"
    );

    // Record 1 was signed under the oldest key: editing it must still be caught and named.
    assert_eq!(trail[0].key_id.as_str(), listed_ids[0]);
    tamper(&data, 1, "subject = 'forged.fid'");
    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify must fail: {stdout}");
    assert!(
        stdout.contains(&format!("BROKEN  {TRAIL}: first bad chain_seq 1")),
        "verify must name seq 1: {stdout}"
    );
}

#[test]
fn keys_on_a_missing_data_dir_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = keys(&tmp.path().join("nothing"), "rotate");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("relay.db not found"));
}
