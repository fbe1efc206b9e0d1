//! `relay-edge qualify` as a process: a fresh installation qualifies with every check listed
//! and evidenced; a tampered one fails and the report names the failing checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");

const EXPECTED_CHECKS: [&str; 15] = [
    "IQ-01", "IQ-02", "IQ-03", "IQ-04", "IQ-05", "IQ-06", "IQ-07", "IQ-08", "IQ-09", "OQ-01",
    "OQ-02", "OQ-03", "OQ-04", "OQ-05", "OQ-06",
];

fn qualify(data: &Path, out: &Path) -> Output {
    Command::new(BIN)
        .args(["qualify", "--device", "qual-ws", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

/// The one report pair in `out` (panics unless there is exactly one of each).
fn report(out: &Path) -> (serde_json::Value, String) {
    let files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let pick = |ext: &str| -> PathBuf {
        let found: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        assert_eq!(found.len(), 1, "one .{ext} report expected in {files:?}");
        let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("qualification-20") && name.contains('T') && name.contains("Z."),
            "the file name carries the UTC date and time: {name}"
        );
        found[0].clone()
    };
    let json = serde_json::from_slice(&std::fs::read(pick("json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(pick("md")).unwrap();
    (json, md)
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("check {id} missing from {report:#}"))
}

/// Drops the append-only triggers and edits a stored record, as an attacker with file access.
fn tamper(data: &Path, trail: &str, seq: i64) {
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
        for t in triggers {
            sqlx::query(&format!("DROP TRIGGER \"{t}\""))
                .execute(&pool)
                .await
                .unwrap();
        }
        let done = sqlx::query(
            "UPDATE event_log SET actor = 'mallory' WHERE trail_id = ? AND chain_seq = ?",
        )
        .bind(trail)
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
        pool.close().await;
    });
}

fn kinds_of_relay_trail(data: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("relay.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT kind FROM event_log WHERE trail_id = '_relay' ORDER BY chain_seq",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        kinds
    })
}

/// Whether logind reports an active session on seat0 (the console), as the relay asks it.
fn console_session_exists() -> bool {
    Command::new("loginctl")
        .args(["show-seat", "seat0", "--property=ActiveSession", "--value"])
        .output()
        .is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}

#[test]
fn qualify_passes_on_a_fresh_data_dir_and_lists_every_check_with_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("report"));
    let run = qualify(&data, &out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("qualification PASSED"), "{stdout}");

    let (json, md) = report(&out);
    assert_eq!(json["format"], "gims-relay qualification v1");
    assert_eq!(json["verdict"], "PASS");
    assert_eq!(
        json["checks"].as_array().unwrap().len(),
        EXPECTED_CHECKS.len()
    );
    for id in EXPECTED_CHECKS {
        let c = check(&json, id);
        assert_ne!(c["status"], "FAIL", "{id} failed: {c:#}");
        assert!(
            !c["evidence"].as_array().unwrap().is_empty(),
            "{id} has no evidence"
        );
        assert!(
            md.contains(&format!("### {id} ")),
            "{id} missing in the Markdown"
        );
    }
    // The evidence says what was observed, not just that it passed.
    let evidence = |id: &str| check(&json, id)["evidence"].to_string();
    assert!(evidence("IQ-05").contains("event_log_no_update"));
    assert!(evidence("OQ-02").contains("first bad chain_seq 2"));
    assert!(evidence("OQ-03").contains("wrong password"));
    assert!(evidence("OQ-05").contains("offline verification holds"));
    // The local notary is not WORM: a warning, not a failure.
    assert_eq!(check(&json, "IQ-06")["status"], "WARN");
    // Run by a system account (root in CI) on a machine with no console session, captures of
    // files no person owns will be recorded unattributed: IQ-09 warns, naming why.
    let attribution = check(&json, "IQ-09");
    assert!(
        evidence("IQ-09").contains("attribution policy: auto"),
        "{attribution:#}"
    );
    if nix::unistd::geteuid().as_raw() < 1000 && !console_session_exists() {
        assert_eq!(attribution["status"], "WARN", "{attribution:#}");
        assert!(
            evidence("IQ-09").contains("mode: service"),
            "{attribution:#}"
        );
        assert!(
            evidence("IQ-09").contains("unattributed"),
            "{attribution:#}"
        );
    }

    // The only write to the installation is the QUALIFICATION event; the report points at it.
    assert_eq!(kinds_of_relay_trail(&data), vec!["QUALIFICATION"]);
    assert_eq!(json["journal_entry"]["chain_seq"], 1);

    // A second run on the now-initialized installation also passes (permission checks run).
    std::fs::remove_dir_all(&out).unwrap();
    let again = qualify(&data, &out);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let (json, _) = report(&out);
    assert!(
        check(&json, "IQ-03")["evidence"]
            .to_string()
            .contains("mode")
    );
    assert!(
        check(&json, "OQ-06")["evidence"]
            .to_string()
            .contains("_relay: 1 records hold")
    );
    assert_eq!(
        kinds_of_relay_trail(&data),
        vec!["QUALIFICATION", "QUALIFICATION"]
    );
}

#[test]
fn qualify_fails_on_a_tampered_trail_and_names_the_failing_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("first"));
    assert_eq!(qualify(&data, &out).status.code(), Some(0));

    tamper(&data, "_relay", 1);
    let out = tmp.path().join("after-tamper");
    let run = qualify(&data, &out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("qualification FAILED: IQ-05, OQ-06"),
        "{stdout}"
    );

    let (json, md) = report(&out);
    assert_eq!(json["verdict"], "FAIL");
    let custody = check(&json, "IQ-05");
    assert_eq!(custody["status"], "FAIL");
    assert!(
        custody["evidence"]
            .to_string()
            .contains("event_log_no_update is missing")
    );
    let trails = check(&json, "OQ-06");
    assert_eq!(trails["status"], "FAIL");
    assert!(
        trails["evidence"]
            .to_string()
            .contains("_relay: first bad chain_seq 1"),
        "{trails:#}"
    );
    assert!(
        md.contains("| OQ-06 | OQ | Installed trails verify (read-only, with anchors) | FAIL |")
    );
    // The scratch checks are unaffected by the installation's damage.
    for id in ["OQ-01", "OQ-02", "OQ-03", "OQ-04", "OQ-05"] {
        assert_eq!(check(&json, id)["status"], "PASS", "{id}");
    }
    // The failed run is itself recorded.
    assert_eq!(kinds_of_relay_trail(&data).len(), 2);
}
