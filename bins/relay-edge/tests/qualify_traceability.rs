//! The qualification report answers §11.10(a) on its own: `relay-edge qualify` prints the
//! requirement traceability matrix with each test's last result, read from the JUnit file of the
//! test run (`--test-results`), "not run" without one, and refuses a results file it cannot read
//! instead of inventing results.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");

fn qualify(data: &Path, out: &Path, results: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["qualify", "--device", "qual-ws", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("RELAY_LOG", "error");
    if let Some(r) = results {
        cmd.arg("--test-results").arg(r);
    }
    cmd.output().unwrap()
}

fn report_files(out: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(out) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn read_report(out: &Path) -> (serde_json::Value, String) {
    let files = report_files(out);
    let pick = |ext: &str| {
        files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("no .{ext} report in {files:?}"))
            .clone()
    };
    (
        serde_json::from_slice(&std::fs::read(pick("json")).unwrap()).unwrap(),
        std::fs::read_to_string(pick("md")).unwrap(),
    )
}

/// A JUnit file as `cargo nextest run` writes it: one tagged test passed, one failed.
const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="2" failures="1" errors="0" uuid="0" timestamp="2026-12-03T10:00:00.000+00:00" time="1.0">
    <testsuite name="relay-domain::chain" tests="2" disabled="0" errors="0" failures="1">
        <testcase name="intact_chain_verifies" classname="relay-domain::chain" timestamp="2026-12-03T10:00:00.000+00:00" time="0.010">
        </testcase>
        <testcase name="edited_field_is_named_by_seq" classname="relay-domain::chain" timestamp="2026-12-03T10:00:00.000+00:00" time="0.010">
            <failure type="test failure">thread 'edited_field_is_named_by_seq' panicked</failure>
        </testcase>
    </testsuite>
</testsuites>
"#;

/// The `R1.2` row of the report's matrix.
fn r1_2_row(md: &str) -> &str {
    let section = md
        .split("## Requirement traceability")
        .nth(1)
        .expect("the report has a traceability section");
    section
        .lines()
        .find(|l| l.starts_with("| R1.2 "))
        .expect("R1.2 in the matrix")
}

// REQ: R11.5
#[test]
fn the_report_shows_each_requirements_tests_with_their_last_result() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("junit.xml");
    std::fs::write(&results, JUNIT).unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let run = qualify(&data, &out, Some(&results));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("traceability: 39 requirements, test results: 1 passed, 1 failed"),
        "{stdout}"
    );

    let (json, md) = read_report(&out);
    let row = r1_2_row(&md);
    assert!(row.contains("§11.10(a)"), "{row}");
    assert!(row.contains("`crates/relay-domain/src/chain.rs`"), "{row}");
    assert!(
        row.contains("`crates/relay-domain/tests/chain.rs::intact_chain_verifies`: passed"),
        "{row}"
    );
    assert!(
        row.contains("`crates/relay-domain/tests/chain.rs::edited_field_is_named_by_seq`: FAILED"),
        "{row}"
    );
    // Tests absent from the results are not run, never assumed to pass.
    assert!(
        row.contains(
            "`crates/relay-domain/tests/chain.rs::reorder_and_duplicate_are_named`: not run"
        ),
        "{row}"
    );
    assert!(md.contains(&format!("JUnit file {}", results.display())));

    let t = &json["traceability"];
    let reqs = t["requirements"].as_array().unwrap();
    assert_eq!(reqs.len(), 39);
    assert_eq!(reqs[0]["id"], "R1.1");
    assert_eq!(reqs[38]["id"], "R11.5");
    assert!(
        reqs.iter()
            .all(|r| !r["tests"].as_array().unwrap().is_empty())
    );
    assert_eq!(
        (t["passed"].as_u64(), t["failed"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn without_results_every_test_is_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let run = qualify(&data, &out, None);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (json, md) = read_report(&out);
    assert_eq!(json["traceability"]["passed"], 0);
    assert_eq!(json["traceability"]["failed"], 0);
    assert!(json["traceability"]["not_run"].as_u64().unwrap() >= 39);
    assert!(md.contains("no test results given"));
    assert!(!r1_2_row(&md).contains(": passed"));
}

#[test]
fn unreadable_or_malformed_results_stop_the_run_before_anything_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (name, content) in [
        ("missing.xml", None),
        ("garbage.xml", Some("<testsuites><testcase name=\"x\"")),
        ("html.xml", Some("<html><body>not junit</body></html>")),
        (
            "empty.xml",
            Some("<testsuites name=\"nextest-run\"></testsuites>"),
        ),
    ] {
        let results = tmp.path().join(name);
        if let Some(c) = content {
            std::fs::write(&results, c).unwrap();
        }
        let out = tmp.path().join(format!("out-{name}"));
        let run = qualify(&data, &out, Some(&results));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            stderr.contains("traceability") || stderr.contains("test results"),
            "{name}: {stderr}"
        );
        assert!(
            report_files(&out).is_empty(),
            "{name}: a report was written"
        );
    }
    // Nothing was recorded in `_relay` by the refused runs: a real run is the first QUALIFICATION.
    let out = tmp.path().join("out-ok");
    let run = qualify(&data, &out, None);
    assert!(run.status.success());
    let (json, _) = read_report(&out);
    let seq = json["journal_entry"]["chain_seq"].as_u64().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let baseline = qualify(&fresh.path().join("data"), &fresh.path().join("out"), None);
    assert!(baseline.status.success());
    let (fresh_json, _) = read_report(&fresh.path().join("out"));
    assert_eq!(
        seq,
        fresh_json["journal_entry"]["chain_seq"].as_u64().unwrap()
    );
}
