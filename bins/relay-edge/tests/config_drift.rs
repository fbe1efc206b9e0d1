//! Configuration drift (four-eyes governance): a config file edited on disk behind the relay's
//! back is recorded as a CONFIG_DRIFT SYSTEM event at the next start, naming the changed keys;
//! the first start records the baseline, and the relay keeps running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{records, stop};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_domain::Record;

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");

fn start(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay-edge")
}

/// Starts the relay on `config`, waits for its STARTUP, stops it; returns the `_relay` trail.
fn run_once(config: &Path, data: &Path) -> Vec<Record> {
    let before = if data.join("relay.db").exists() {
        records(data, "_relay").len()
    } else {
        0
    };
    let child = start(config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if data.join("relay.db").exists()
            && records(data, "_relay")[before..]
                .iter()
                .any(|r| r.kind.as_str() == "STARTUP")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no STARTUP within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // STARTUP is recorded just before the signal handlers are installed.
    std::thread::sleep(Duration::from_millis(800));
    stop(child);
    records(data, "_relay")[before..].to_vec()
}

fn system_events(records: &[Record], what: &str) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|r| r.kind.as_str() == "SYSTEM")
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p["event"] == what)
        .collect()
}

fn startup_posture(records: &[Record]) -> serde_json::Value {
    records
        .iter()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap()
        .payload
        .to_value()
        .unwrap()
}

#[test]
fn a_config_file_edited_on_disk_is_recorded_as_config_drift_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("edge.toml");
    let base = format!(
        "data_dir = {:?}\ndevice = \"nmr-drift\"\nsettle_ms = 300\nforward_token = \"tok-secret-1\"\n",
        data.display().to_string()
    );
    std::fs::write(&config, &base).unwrap();

    let first = run_once(&config, &data);
    let baseline = system_events(&first, "CONFIG_BASELINE");
    assert_eq!(baseline.len(), 1, "the first start records the baseline");
    assert!(system_events(&first, "CONFIG_DRIFT").is_empty());
    assert_eq!(startup_posture(&first)["config"]["state"], "baseline");
    assert!(
        !baseline[0].to_string().contains("tok-secret-1"),
        "a credential in the configuration must never reach the trail"
    );

    // Unchanged: no event.
    let second = run_once(&config, &data);
    assert!(system_events(&second, "CONFIG_DRIFT").is_empty());
    assert_eq!(startup_posture(&second)["config"]["state"], "approved");

    // Edited behind the relay's back (settle window widened, token swapped).
    std::fs::write(
        &config,
        base.replace("settle_ms = 300", "settle_ms = 60000")
            .replace("tok-secret-1", "tok-secret-2"),
    )
    .unwrap();
    let third = run_once(&config, &data);
    let drift = system_events(&third, "CONFIG_DRIFT");
    assert_eq!(drift.len(), 1, "{third:?}");
    assert_eq!(
        drift[0]["changed"],
        serde_json::json!(["forward_token", "settle_ms"])
    );
    assert_eq!(drift[0]["approved"]["settle_ms"], 300);
    assert_eq!(drift[0]["current"]["settle_ms"], 60000);
    assert!(!drift[0].to_string().contains("tok-secret"));
    let posture = startup_posture(&third);
    assert_eq!(posture["config"]["state"], "drift");
    assert_eq!(
        posture["config"]["changed"],
        serde_json::json!(["forward_token", "settle_ms"])
    );

    // The baseline is not moved by drift: the next start reports it again.
    let fourth = run_once(&config, &data);
    assert_eq!(system_events(&fourth, "CONFIG_DRIFT").len(), 1);

    let out = Command::new(BIN)
        .args(["verify", "--config"])
        .arg(&config)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
