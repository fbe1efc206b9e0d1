//! The server of record witnesses the edge's trails (issue 19, item 1): a real `relay-edge`
//! forwarding to a real `relay-server` (local provider). After the server acknowledged every
//! capture, the edge is killed with SIGKILL (no shutdown anchor) and the attacker with a shell on
//! the workstation deletes the trail's newest records behind the store's back, then re-creates
//! the append-only trigger exactly as it was, so neither the chain (it is a valid shorter chain)
//! nor the append-only check (every control is back in place) nor the anchors (none covers the
//! deleted records) can tell. Before this change `relay-edge verify` said `OK` and exited 0; now
//! it asks the server of record for its head of each forwarded trail and reports BROKEN, naming
//! the missing seqs. With the server unreachable it says so instead of claiming the comparison.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const EDGE: &str = "ws-wit";
const FILES: usize = 6;
const DELETED: u64 = 3;

/// `relay-edge verify`: exit code and stdout.
fn edge_verify_raw(edge_conf: &Path) -> (Option<i32>, String) {
    let out = Command::new(edge_bin())
        .args(["verify", "--config", edge_conf.to_str().unwrap()])
        .env("RELAY_LOG", "error")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Deletes the records after `keep` of the edge's trail as an attacker with the database file
/// would, and puts the DELETE trigger back exactly as the schema installs it.
async fn delete_tail_behind_the_stores_back(edge_dir: &Path, keep: u64) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(edge_dir.join("relay.db"))
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("DROP TRIGGER event_log_no_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    let deleted = sqlx::query("DELETE FROM event_log WHERE trail_id = ?1 AND chain_seq > ?2")
        .bind(EDGE)
        .bind(i64::try_from(keep).unwrap())
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, DELETED);
    sqlx::raw_sql(
        "CREATE TRIGGER event_log_no_delete\nBEFORE DELETE ON event_log\nBEGIN\n    \
         SELECT RAISE(ABORT, 'event_log is append-only');\nEND;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Waits until `files` captures are recorded and the server acknowledged the whole trail;
/// returns the head.
async fn wait_captured_and_forwarded(edge_dir: &Path, files: usize, edge: &Proc) -> u64 {
    let start = Instant::now();
    loop {
        let captured = local_records(edge_dir, EDGE)
            .await
            .iter()
            .filter(|r| r.kind.as_str() == "FILE_CREATED")
            .count();
        let (head, acked) = edge_head_and_acked(edge_dir, EDGE).await;
        if captured == files && head == acked {
            return head;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "captured {captured} of {files}, head {head}, acked {acked}: {}",
            edge.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// REQ: R1.4, R8.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_deleted_after_kill_9_is_broken_against_the_server_of_records_head() {
    // No anchor on an interval: only the server of record can witness the new records.
    let ForwardingPair {
        root: _root,
        edge_dir,
        inbox,
        edge_conf,
        mut edge,
        mut server,
        ..
    } = ForwardingPair::start(EDGE, "server-witness", "", "notary_interval_secs = 3600\n").await;

    for i in 1..=FILES {
        std::fs::write(
            inbox.join(format!("spectrum-{i}.fid")),
            format!("fid {i}\n"),
        )
        .unwrap();
    }
    // The precondition, waited for rather than hoped for: every capture recorded and
    // acknowledged by the server.
    let head = wait_captured_and_forwarded(&edge_dir, FILES, &edge).await;
    assert!(head >= FILES as u64);

    // Intact: the server witnesses the whole trail.
    let (code, report) = edge_verify_raw(&edge_conf);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains(&format!(
            "WITNESS {EDGE}: head {head}, witnessed up to seq {head} (server of record); nothing unwitnessed"
        )),
        "{report}"
    );

    // kill -9, then the tail goes behind the store's back.
    edge.sigkill();
    let keep = head - DELETED;
    delete_tail_behind_the_stores_back(&edge_dir, keep).await;

    let (code, report) = edge_verify_raw(&edge_conf);
    assert_eq!(code, Some(1), "{report}");
    // The chain alone is a valid shorter chain and every trigger is in place again...
    assert!(
        report.lines().any(
            |l| l.starts_with("OK") && l.contains(&format!(" {EDGE}: {keep} records verified"))
        ),
        "{report}"
    );
    // ...but the server of record witnessed more.
    assert!(
        report.contains(&format!(
            "BROKEN {EDGE}: shorter than the server of record's witnessed head: the local trail \
             ends at seq {keep}, the server holds seq {head} (records {}..={head} missing here",
            keep + 1
        )),
        "{report}"
    );

    // With the server down, verify says it could not compare instead of claiming it did.
    server.stop();
    let (code, report) = edge_verify_raw(&edge_conf);
    assert!(
        report.contains("WITNESS UNREACHABLE server of record http://127.0.0.1:"),
        "{report}"
    );
    assert!(
        report.contains(&format!("WITNESS {EDGE}: head {keep}, witnessed up to seq")),
        "{report}"
    );
    // Nothing else contradicts the shortened trail: that is exactly the window the report names.
    assert_eq!(code, Some(0), "{report}");
}

// REQ: R8.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_copy_restored_is_reported_at_start_and_by_verify_when_the_server_holds_more() {
    let ForwardingPair {
        root,
        edge_dir,
        inbox,
        edge_conf,
        mut edge,
        server: _server,
        ..
    } = ForwardingPair::start(EDGE, "server-witness", "", "notary_interval_secs = 3600\n").await;
    std::fs::write(inbox.join("before-1.fid"), "fid before\n").unwrap();
    let old_head = wait_captured_and_forwarded(&edge_dir, 1, &edge).await;
    // A copy of the stopped installation: the "backup" (with its own anchors, key and cursor).
    edge.stop();
    let backup = root.path().join("edge-backup");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&edge_dir)
        .arg(&backup)
        .status()
        .unwrap();
    assert!(copied.success());
    edge.start();
    for i in 1..=3 {
        std::fs::write(
            inbox.join(format!("after-{i}.fid")),
            format!("fid after {i}\n"),
        )
        .unwrap();
    }
    let new_head = wait_captured_and_forwarded(&edge_dir, 4, &edge).await;
    assert!(new_head > old_head);
    edge.stop();
    // The old copy is restored in place of the newer store, and the edge started on it.
    std::fs::remove_dir_all(&edge_dir).unwrap();
    std::fs::rename(&backup, &edge_dir).unwrap();
    // The watched files are already captured in the newer history; keep the inbox quiet.
    std::fs::remove_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&inbox).unwrap();
    edge.start();
    let start = Instant::now();
    let event = loop {
        let found = local_records(&edge_dir, "_relay")
            .await
            .into_iter()
            .map(|r| r.payload.to_value().unwrap())
            .find(|p| p["event"] == "WITNESS_AHEAD_OF_STORE");
        if let Some(event) = found {
            break event;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no WITNESS_AHEAD_OF_STORE event: {}",
            edge.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(event["trail"], EDGE, "{event}");
    assert_eq!(event["local_seq"], old_head, "{event}");
    assert_eq!(event["server_seq"], new_head, "{event}");
    assert_eq!(
        event["missing"],
        format!("{}..={new_head}", old_head + 1),
        "{event}"
    );
    edge.stop();
    let (code, report) = edge_verify_raw(&edge_conf);
    assert_eq!(code, Some(1), "{report}");
    // The restarted edge went on capturing on the old copy (the files missing from its inbox
    // are recorded as deleted), so its head moved past `old_head`, still short of the server's.
    let broken = report
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "BROKEN {EDGE}: shorter than the server of record's"
            ))
        })
        .unwrap_or_else(|| panic!("no BROKEN line for {EDGE}: {report}"));
    assert!(
        broken.contains(&format!("the server holds seq {new_head}")),
        "old_head {old_head}, new_head {new_head}: {report}"
    );
}
