//! The review index warm-up budget, attacked from outside a real `relay-server` process (local
//! provider): at start, `warm_review_index` reads the trails' review index the smallest trails
//! first and at most `review_warm_budget_records` records in all; the trails beyond it are
//! indexed at their first read (docs/adr/0005-review-ui-plain-modules.md, docs/operations.md).
//!
//! Four trails of 300, 600, 1,200 and 2,400 records are forwarded through the real ingest
//! path; the server is restarted with a budget of 1,500 records, which covers the server's own
//! `_relay` trail (a few dozen records) and the two smallest trails only. Its log must say that
//! exactly `_relay`, `ws-a` and `ws-b` were warmed, in that order, and that two trails were left
//! for their first read; the largest trail must still answer its facets and events in full at
//! its first read. The test waits for the log lines, never for a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PASSWORD: &str = "warm budget process password";
/// The trails and their sizes, smallest first.
const TRAILS: [(&str, usize); 4] = [("ws-a", 300), ("ws-b", 600), ("ws-c", 1200), ("ws-d", 2400)];
/// Covers `_relay` (under 300 records, checked) and ws-a and ws-b (900), never ws-c as well.
const BUDGET: u64 = 1500;

/// The `key=value` fields of a human log line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// The lines of `log` up to and including the first that contains `needle`, once it is there
/// (60 s at most, failing at once with the log if the process exits).
fn lines_until(log: &Path, needle: &str, server: &mut Proc) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.lines().position(|l| l.contains(needle)) {
            return text.lines().take(at + 1).map(str::to_owned).collect();
        }
        assert!(
            server.running(),
            "relay-server exited: {}",
            server.log_tail()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {needle:?} line within 60 s: {}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// REQ: R11.1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_up_reads_the_smallest_trails_within_its_budget_and_the_rest_at_first_read() {
    let root = tempfile::TempDir::new().unwrap();
    let dir = root.path().join("server");
    std::fs::create_dir_all(&dir).unwrap();
    // The relay refuses a data directory others can read.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let port = reserve_port();
    let conf = root.path().join("server.toml");
    let edges: Vec<String> = TRAILS.iter().map(|(t, _)| format!("\"{t}\"")).collect();
    std::fs::write(
        &conf,
        format!(
            "data_dir = {dir:?}\ndevice = \"server-warm\"\nlisten = \"127.0.0.1:{port}\"\n\
             ingest_edges = [{}]\nnotary_interval_secs = 3600\n\
             review_warm_budget_records = {BUDGET}\n[storage]\nprovider = \"local\"\n",
            edges.join(", ")
        ),
    )
    .unwrap();

    // Each trail chained as its edge would, its key provisioned on the server, then forwarded
    // through the real ingest path.
    let mut forwarded = Vec::new();
    for (trail, n) in TRAILS {
        let (records, key) =
            forwarded_trail(&root.path().join(format!("edge-{trail}")), trail, n).await;
        copy_secret(&key, &dir.join(format!("secrets/trail-hmac.{trail}.json")));
        forwarded.push((trail, ingest_token(&conf, trail, &[]), records));
    }
    let mut first = Proc::new(
        "relay-server",
        server_bin(),
        &["run", "--config", conf.to_str().unwrap()],
        &root.path().join("server-1.log"),
    );
    first.start();
    wait_healthy(port, &mut first);
    for (trail, token, records) in &forwarded {
        for batch in records.chunks(500) {
            let (status, v) = ingest_batch(port, trail, token, trail, batch);
            assert_eq!(status, 200, "ingest of {trail}: {v}");
        }
    }
    first.stop();
    for (trail, n) in TRAILS {
        assert_eq!(local_records(&dir, trail).await.len(), n, "{trail} stored");
    }
    let relay_before = local_records(&dir, "_relay").await.len();

    // The restart warms the index within the budget.
    let log = root.path().join("server-2.log");
    let mut server = Proc::new(
        "relay-server",
        server_bin(),
        &["run", "--config", conf.to_str().unwrap()],
        &log,
    )
    .env("RELAY_LOG", "info,relay_api::review=debug");
    server.start();
    let lines = lines_until(&log, "review index warmed warmed=", &mut server);
    let relay_after = local_records(&dir, "_relay").await.len();
    assert!(
        relay_after < TRAILS[0].1,
        "precondition: _relay ({relay_after} records) is the smallest trail"
    );
    let per_trail: Vec<(String, u64)> = lines
        .iter()
        .filter(|l| l.contains("review index warmed for a trail"))
        .map(|l| {
            let f = fields(l);
            (f["trail"].clone(), f["records"].parse().unwrap())
        })
        .collect();
    eprintln!("warmed, in order: {per_trail:?}");
    let names: Vec<&str> = per_trail.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        ["_relay", "ws-a", "ws-b"],
        "the smallest trails first, and only those within the budget"
    );
    let relay_warmed = per_trail[0].1;
    assert!(
        (relay_before as u64..=relay_after as u64).contains(&relay_warmed),
        "_relay warmed at {relay_warmed} records, between {relay_before} and {relay_after}"
    );
    assert_eq!(per_trail[1].1, 300);
    assert_eq!(per_trail[2].1, 600);
    let summary = fields(lines.last().unwrap());
    eprintln!("summary: {summary:?}");
    assert_eq!(summary["warmed"], "3", "{summary:?}");
    assert_eq!(
        summary["records"],
        (relay_warmed + 900).to_string(),
        "{summary:?}"
    );
    assert_eq!(summary["left_for_first_read"], "2", "{summary:?}");
    assert_eq!(summary["budget"], BUDGET.to_string(), "{summary:?}");

    // The trails beyond the budget are served in full at their first read.
    wait_healthy(port, &mut server);
    register_admin(port, "ada", "Ada Admin", PASSWORD);
    let token = login(port, "ada", PASSWORD);
    for (trail, n) in &TRAILS[2..] {
        let (s, v) = http_json(
            port,
            "GET",
            &format!("/api/v1/trails/{trail}/facets"),
            Some(&token),
            None,
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["records"], json!(n), "{trail} facets at first read: {v}");
        let (s, v) = http_json(
            port,
            "GET",
            &format!("/api/v1/events?trail={trail}&limit=500"),
            Some(&token),
            None,
        );
        assert_eq!(s, 200, "{v}");
        let seqs: Vec<u64> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e: &Value| e["chain_seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=500).collect::<Vec<u64>>(), "{trail} first page");
        assert!(
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["review_status"] == "pending"),
            "{trail}: every capture pending review"
        );
    }
    server.stop();
}
