#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `relay-server qualify` on the local provider: a fresh installation qualifies (exit 0) with
//! every IQ/OQ check in the report, the run is recorded in `_relay`, and a second run anchors
//! `_relay` on the installed notary (OQ-07).

use std::path::Path;
use std::process::{Command, Output};

fn qualify(config: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay-server"))
        .args(["qualify", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .env_remove("RELAY_STORAGE__PROVIDER")
        .output()
        .unwrap()
}

fn report(out: &Path) -> serde_json::Value {
    let json = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn server_qualify_passes_on_a_fresh_local_installation_and_records_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ndevice = \"srv-q\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    let out1 = dir.path().join("report-1");
    let run = qualify(&config, &out1);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("qualification PASSED"), "{stdout}");
    let r = report(&out1);
    assert_eq!(r["product"], "relay-server");
    let ids: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "IQ-01", "IQ-02", "IQ-05", "IQ-06", "IQ-07", "IQ-08", "OQ-01", "OQ-02", "OQ-03", "OQ-04",
        "OQ-05", "OQ-06", "OQ-07",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert!(r["journal_entry"]["chain_seq"].as_u64().unwrap() >= 1);

    // The second run finds `_relay` (the first run's QUALIFICATION event) and anchors it.
    let out2 = dir.path().join("report-2");
    let run = qualify(&config, &out2);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let r = report(&out2);
    let oq7 = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "OQ-07")
        .unwrap();
    assert_eq!(oq7["status"], "PASS", "{oq7}");
    assert!(
        oq7["evidence"].to_string().contains("anchored _relay#"),
        "{oq7}"
    );
}
