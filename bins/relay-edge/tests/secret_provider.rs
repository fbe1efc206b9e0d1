//! `secret_provider = "keyring"` when the OS keyring cannot be used: the edge falls back to the
//! file provider loudly (a start-up error line, the STARTUP posture, a
//! `SECRET_PROVIDER_FALLBACK` SYSTEM event), every later command finds the keys where `run`
//! keeps them, and a key that vanished from the provider stops the edge instead of being
//! replaced silently by a new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{BIN, records, stop};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A session bus address that cannot be reached, so the Secret Service is unavailable whatever
/// the machine running the test offers.
const NO_BUS: &str = "unix:path=/nonexistent/gims-relay-test/bus";

fn start(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay-edge")
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nwatch = [{:?}]\ndevice = \"ws-keyring\"\nsecret_provider = \"keyring\"\n",
            data.display().to_string(),
            inbox.display().to_string()
        ),
    )
    .unwrap();
    config
}

// REQ: R10.3
#[test]
fn an_unusable_keyring_falls_back_to_files_loudly_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let mut child = start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(data.join("relay.db").exists()
        && records(&data, "_relay")
            .iter()
            .any(|r| r.payload.as_str().contains("SECRET_PROVIDER_FALLBACK")))
    {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("relay-edge exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "no fallback event within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(800));
    let mut stderr = child.stderr.take().unwrap();
    stop(child);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(err.contains("SECRET PROVIDER FALLBACK"), "{err}");

    let relay = records(&data, "_relay");
    let startup = relay.iter().find(|r| r.kind.as_str() == "STARTUP").unwrap();
    let posture = startup.payload.to_value().unwrap();
    assert_eq!(posture["secret_provider"], "file");
    assert_eq!(posture["secret_provider_fallback"]["wanted"], "keyring");
    assert_eq!(posture["secret_provider_fallback"]["using"], "file");
    assert!(
        !posture["secret_provider_fallback"]["reason"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let fallback = relay
        .iter()
        .find(|r| r.payload.as_str().contains("SECRET_PROVIDER_FALLBACK"))
        .unwrap();
    assert_eq!(fallback.kind.as_str(), "SYSTEM");
    assert_eq!(fallback.chain_seq.get(), startup.chain_seq.get() + 1);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("secret-provider.json")).unwrap())
            .unwrap();
    assert_eq!(record["provider"], "keyring");
    assert!(data.join("secrets/trail-hmac.json").is_file());

    // verify (no --config) finds the installation's keys the same way and passes.
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(&data)
        .env("RELAY_LOG", "error")
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Rotating the stand-in file provider's key would put the installation's keys in two
    // places: refused.
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--data-dir"])
        .arg(&data)
        .env("RELAY_LOG", "error")
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to rotate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// REQ: R1.3
#[test]
fn a_trail_key_missing_from_the_provider_stops_the_edge_instead_of_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let child = start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(data.join("relay.db").exists()
        && records(&data, "_relay")
            .iter()
            .any(|r| r.kind.as_str() == "STARTUP"))
    {
        assert!(Instant::now() < deadline, "no STARTUP within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(800));
    stop(child);
    let signed_by = records(&data, "_relay").last().unwrap().key_id.to_string();
    // The key vanishes (a keyring that lost its items, a deleted file).
    std::fs::remove_file(data.join("secrets/trail-hmac.json")).unwrap();
    let before = records(&data, "_relay").len();

    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the edge must not start: {err}");
    assert!(err.contains(&signed_by), "names the missing key: {err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(
        !data.join("secrets/trail-hmac.json").exists(),
        "no new trail key was minted"
    );
    assert_eq!(records(&data, "_relay").len(), before, "nothing recorded");
}
