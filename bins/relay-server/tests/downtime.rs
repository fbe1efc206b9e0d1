//! Downtime is visible (issue 21): a real `relay-edge` forwarding to a real `relay-server`
//! (local provider) whose process is stopped for at least 30 s of recorded time. The edge
//! records the outage (`FORWARD_OUTAGE` start and end), the server raises no `CLOCK_SKEW` for
//! the late backlog, and its API shows every forwarded record's time of receipt, flagging as
//! late exactly the records that waited out the outage (threshold 15 s, downtime >= 30 s), while
//! a record forwarded before the outage is not late. The sealed package the server makes of the
//! trail carries the times of receipt, and both offline verifiers count the late records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use relay_domain::Timestamp;
use serde_json::{Value, json};

const EDGE: &str = "ws-late";
const PASSWORD: &str = "downtime review password";
const LATE_AFTER_SECS: u64 = 15;
const DOWNTIME: Duration = Duration::from_secs(30);

/// `relay-verify` next to `relay-server` in the target directory, built if missing.
fn verify_bin() -> PathBuf {
    let path = server_bin().with_file_name("relay-verify");
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "relay-verify"])
            .status()
            .unwrap();
        assert!(status.success(), "building relay-verify failed");
    }
    path
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, timeout: Duration, mut ready: F) {
    let start = Instant::now();
    while !ready().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The payloads of the edge's `FORWARD_OUTAGE` events.
async fn outage_events(edge_dir: &Path) -> Vec<Value> {
    local_records(edge_dir, "_relay")
        .await
        .into_iter()
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p["event"] == "FORWARD_OUTAGE")
        .collect()
}

/// The edge's `FILE_CREATED` records whose subject contains `prefix`.
async fn edge_captures(edge_dir: &Path, prefix: &str) -> Vec<relay_domain::Record> {
    local_records(edge_dir, EDGE)
        .await
        .into_iter()
        .filter(|r| {
            r.kind.as_str() == "FILE_CREATED"
                && r.subject
                    .as_ref()
                    .is_some_and(|s| s.as_str().contains(prefix))
        })
        .collect()
}

/// Waits until the server acknowledged everything the edge holds of its trail.
async fn wait_forwarded(edge_dir: &Path, timeout: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let (head, acked) = edge_head_and_acked(edge_dir, EDGE).await;
        if head > 0 && head == acked {
            return head;
        }
        assert!(
            start.elapsed() < timeout,
            "the edge never forwarded its trail (head {head}, acked {acked})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn admin_token(port: u16) -> String {
    common::register_admin(port, "ada", "Ada Admin", PASSWORD);
    common::login(port, "ada", PASSWORD)
}

// REQ: R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_30_s_then_up_flags_the_backlog_late_without_clock_skew_and_the_edge_records_the_outage()
 {
    let ForwardingPair {
        root: _root,
        server_dir,
        edge_dir,
        inbox,
        port,
        mut edge,
        mut server,
        ..
    } = ForwardingPair::start(
        EDGE,
        "server-downtime",
        &format!("late_after_secs = {LATE_AFTER_SECS}\n"),
        "",
    )
    .await;

    // Before the outage: one capture, forwarded while the server is up.
    std::fs::write(inbox.join("before-1.dat"), "on time\n".repeat(8)).unwrap();
    wait_until("the first capture", Duration::from_secs(30), async || {
        !edge_captures(&edge_dir, "before-").await.is_empty()
    })
    .await;
    wait_forwarded(&edge_dir, Duration::from_secs(60)).await;

    // The server goes down; three captures queue on the edge.
    server.stop();
    for i in 1..=3 {
        std::fs::write(
            inbox.join(format!("during-{i}.dat")),
            format!("queued {i}\n").repeat(8),
        )
        .unwrap();
    }
    wait_until(
        "three queued captures and the FORWARD_OUTAGE start",
        Duration::from_secs(60),
        async || {
            edge_captures(&edge_dir, "during-").await.len() == 3
                && !outage_events(&edge_dir).await.is_empty()
        },
    )
    .await;
    // The precondition is certain, not lucky: the server stays down until the newest queued
    // record is at least 30 s old by the (shared) host clock.
    let newest = edge_captures(&edge_dir, "during-")
        .await
        .iter()
        .map(|r| r.recorded_at)
        .max()
        .unwrap();
    loop {
        let now = Timestamp::from_unix_micros(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros(),
            )
            .unwrap(),
        )
        .unwrap();
        let waited = now.micros_since(newest);
        if waited >= i64::try_from(DOWNTIME.as_micros()).unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    server.start();
    wait_healthy(port, &mut server);
    // The edge's backoff is at most 30 s (with jitter): the backlog arrives within 90 s.
    let head = wait_forwarded(&edge_dir, Duration::from_secs(90)).await;

    // The edge recorded the outage, start and end.
    let outage = outage_events(&edge_dir).await;
    let phases: Vec<&str> = outage.iter().filter_map(|p| p["phase"].as_str()).collect();
    assert_eq!(phases, ["start", "end"], "{outage:?}");
    assert!(
        outage[0]["records_queued"].as_u64().unwrap() >= 1,
        "{outage:?}"
    );
    assert!(
        outage[1]["failed_attempts"].as_u64().unwrap() >= 1,
        "{outage:?}"
    );

    // The server's API shows the time of receipt and the late flag, outside the chain.
    let admin = admin_token(port);
    let (status, page) = http_json(
        port,
        "GET",
        &format!("/api/v1/events?trail={EDGE}&limit=500"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(
        events.len() as u64,
        head,
        "every forwarded record is served"
    );
    let by_subject = |prefix: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["kind"] == "FILE_CREATED")
            .filter(|e| e["subject"].as_str().is_some_and(|s| s.contains(prefix)))
            .collect()
    };
    let before = by_subject("before-");
    let during = by_subject("during-");
    assert_eq!((before.len(), during.len()), (1, 3), "{events:?}");
    for e in events {
        assert!(
            e["received_at"].is_string(),
            "every ingested record has a receipt: {e}"
        );
        assert_eq!(e["late_after_secs"], LATE_AFTER_SECS, "{e}");
        let received = Timestamp::parse_canonical(e["received_at"].as_str().unwrap()).unwrap();
        let recorded = Timestamp::parse_canonical(e["recorded_at"].as_str().unwrap()).unwrap();
        assert!(received >= recorded, "received before it was recorded: {e}");
    }
    assert_eq!(
        before[0]["late"], false,
        "forwarded while the server was up: {}",
        before[0]
    );
    for e in &during {
        assert_eq!(e["late"], true, "waited out the outage: {e}");
        assert!(
            e["received_after_ms"].as_i64().unwrap() >= 30_000,
            "received at least 30 s after it was recorded: {e}"
        );
    }
    // One record read on its own says the same.
    let seq = during[0]["chain_seq"].as_u64().unwrap();
    let (status, one) = http_json(
        port,
        "GET",
        &format!("/api/v1/events/{EDGE}/{seq}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["late"], true);
    assert_eq!(one["received_at"], during[0]["received_at"]);

    // A late backlog is not clock skew: the send time is measured, not the records' age.
    let (status, skew) = http_json(
        port,
        "GET",
        "/api/v1/events?trail=_relay&kind=CLOCK_SKEW&limit=500",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{skew}");
    assert_eq!(skew["events"].as_array().unwrap().len(), 0, "{skew}");
    // The receipts were all stored: no RECEIPT_NOT_RECORDED event.
    let (status, system) = http_json(
        port,
        "GET",
        "/api/v1/events?trail=_relay&kind=SYSTEM&q=RECEIPT_NOT_RECORDED&limit=500",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{system}");
    assert_eq!(system["events"].as_array().unwrap().len(), 0, "{system}");

    // The sealed package the server makes carries the times of receipt (receipts.jsonl), and
    // both offline verifiers report the late records.
    let (status, made) = http_json(
        port,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(&json!({"trail_id": EDGE})),
    );
    assert_eq!(status, 201, "{made}");
    let package = server_dir
        .join("exports")
        .join(made["package"].as_str().unwrap());
    let verify = Command::new(verify_bin())
        .arg(&package)
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap_or_else(|_| {
        panic!(
            "relay-verify: {}\n{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        )
    });
    assert_eq!(
        verify.status.code(),
        Some(3),
        "intact, origin not pinned: {report}"
    );
    assert_eq!(report["receipts"]["records"], head, "{report}");
    assert_eq!(report["receipts"]["late"], 3, "{report}");
    assert_eq!(
        report["receipts"]["late_after_secs"], LATE_AFTER_SECS,
        "{report}"
    );
    let python = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec/verify_package.py"))
        .arg(&package)
        .arg("--json")
        .output()
        .unwrap();
    let py: Value = serde_json::from_slice(&python.stdout).unwrap_or_else(|_| {
        panic!(
            "verify_package.py: {}\n{}",
            String::from_utf8_lossy(&python.stdout),
            String::from_utf8_lossy(&python.stderr)
        )
    });
    assert_eq!(python.status.code(), Some(3), "{py}");
    assert_eq!(py["receipts"]["late"], 3, "{py}");
    assert_eq!(py["receipts"]["records"], head, "{py}");

    edge.stop();
    server.stop();
    // The forwarded trail is byte-identical on both sides (receipts live outside it).
    assert_eq!(
        local_records(&server_dir, EDGE).await,
        local_records(&edge_dir, EDGE).await
    );
}
