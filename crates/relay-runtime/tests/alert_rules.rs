//! deploy/prometheus/alerts.yml (issue 24) is checked against what the server really exports:
//! the metrics are rendered here (fleet gauges filled for one edge, as after a refresh) and
//! `deploy/prometheus/check_rules.py` checks the rule file's shape, parses every expression as
//! PromQL and refuses any `relay_*` name the server does not export. promtool is not in the
//! registries this project uses; the checker needs PyYAML and promql-parser from PyPI
//! (.ci/lint.sh installs them) and is skipped with a reason without them, a failure under
//! `RELAY_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use relay_api::fleet::{EdgeHealth, FleetView, TrailHealth};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn checker_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import yaml, promql_parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = "python3 with PyYAML and promql-parser is not installed (pip install pyyaml promql-parser)";
        assert!(
            !std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1"),
            "alert rules check: {why}"
        );
        eprintln!("SKIPPED alert rules check: {why}");
    }
    ok
}

fn exported_metrics() -> String {
    let metrics = relay_runtime::metrics::Metrics::new();
    let view = FleetView {
        generated_at: "2026-12-05T00:00:00.000000Z".into(),
        edges: vec![EdgeHealth {
            edge: "ws-1".into(),
            status: "ok".into(),
            problems: vec![],
            state: "enrolled".into(),
            enrolled_by: Some("ada".into()),
            enrolled_at: None,
            revoked_at: None,
            last_seen_at: None,
            last_batch_at: None,
            last_seen_age_seconds: Some(3.0),
            lag_records: 0,
            lag_seconds: Some(0.0),
            clock_skew_ms: Some(12),
            version: None,
            trails: vec![TrailHealth {
                trail_id: "ws-1".into(),
                local_head_seq: Some(5),
                stored_head_seq: 5,
                lag_records: 0,
                lag_seconds: Some(0.0),
                last_batch_at: None,
                refused: None,
            }],
        }],
        counts: [("ok".to_owned(), 1)].into_iter().collect(),
    };
    metrics.fleet.set(&view, 1_764_892_800.0);
    metrics.render()
}

fn check(rules: &Path) -> (bool, String) {
    let dir = tempfile::TempDir::new().unwrap();
    let metrics = dir.path().join("metrics.txt");
    std::fs::write(&metrics, exported_metrics()).unwrap();
    let out = Command::new("python3")
        .arg(repo().join("deploy/prometheus/check_rules.py"))
        .arg(&metrics)
        .arg(rules)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// REQ: R11.2
#[test]
fn the_alert_rules_parse_and_name_only_exported_metrics() {
    if !checker_available() {
        return;
    }
    let (ok, out) = check(&repo().join("deploy/prometheus/alerts.yml"));
    assert!(ok, "{out}");
    assert!(out.contains("alert rules checked, 0 problems"), "{out}");
}

// REQ: R11.2
#[test]
fn the_checker_refuses_a_misspelt_metric_a_bad_duration_and_broken_promql() {
    if !checker_available() {
        return;
    }
    let good = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    for (what, bad) in [
        (
            "not exported",
            good.replace("relay_fleet_edge_poisoned", "relay_fleet_edge_poisonned"),
        ),
        ("duration", good.replace("for: 10m", "for: ten minutes")),
        ("does not parse", good.replace("== 1\n", "== == 1\n")),
    ] {
        assert_ne!(bad, good, "{what}: the mutation applies");
        let path = dir.path().join("alerts.yml");
        std::fs::write(&path, bad).unwrap();
        let (ok, out) = check(&path);
        assert!(!ok, "{what}: accepted:\n{out}");
        assert!(out.contains(what), "{what}:\n{out}");
    }
}
