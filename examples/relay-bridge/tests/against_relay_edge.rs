//! Example (b) end to end: a real `relay-edge` captures a file; the bridge logs in to its API,
//! pages the trail, and re-verifies it independently with the trail key file. An edit to a
//! fetched record, or the wrong key, is caught and named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_conformance::test_ports::reserve_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_bridge::{RelayClient, key_ring_from_file, reverify};
use relay_domain::{Subject, TrailId};

const PASSWORD: &str = "correct horse battery";

/// The `relay-edge` binary next to this test's own (built by `cargo test --workspace`).
fn relay_edge_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("relay-edge");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p relay-edge` first",
        bin.display()
    );
    bin
}

struct Edge(Child);

impl Drop for Edge {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.0.kill().unwrap();
        }
    }
}

#[test]
fn the_bridge_reverifies_a_trail_read_from_a_running_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("inbox"));
    std::fs::create_dir_all(&watch).unwrap();
    let port = reserve_port();
    let base = format!("http://127.0.0.1:{port}");
    let _edge = Edge(
        Command::new(relay_edge_bin())
            .args(["run", "--data-dir"])
            .arg(&data)
            .arg("--watch")
            .arg(&watch)
            .args(["--device", "bridge-ws", "--settle-ms", "200", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("RELAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent = ureq::agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "relay-edge did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first account is the bootstrap administrator (R3.2).
    agent
        .post(&format!("{base}/api/v1/auth/register"))
        .send_json(serde_json::json!({
            "username": "integrator", "full_name": "Ivy Integrator",
            "password": PASSWORD, "role": "admin",
        }))
        .unwrap();
    for i in 0..3 {
        std::fs::write(
            watch.join(format!("sample-{i}.fid")),
            format!("spectrum {i}"),
        )
        .unwrap();
    }

    let client = RelayClient::login(&base, "integrator", PASSWORD).unwrap();
    let trail = TrailId::new("bridge-ws").unwrap();
    let records = loop {
        let records = client.records(&trail).unwrap();
        if records.len() >= 3 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "only {} records captured",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let keys = key_ring_from_file(&data.join("secrets/trail-hmac.json")).unwrap();
    let summary = reverify(&trail, &keys, &records).unwrap();
    assert_eq!(summary.records, 3);

    // An edit to a record in transit is caught at its seq.
    let mut forged = records.clone();
    forged[1].subject = Some(Subject::new("forged.fid").unwrap());
    let failure = reverify(&trail, &keys, &forged).unwrap_err();
    assert_eq!(failure.seq.get(), 2, "{failure}");

    // Without the right key nothing verifies.
    let wrong = tmp.path().join("wrong-key.json");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"format":"gims-relay-secret-v1","versions":[{{"id":"{}","secret_hex":"{}"}}]}}"#,
            records[0].key_id,
            "11".repeat(32)
        ),
    )
    .unwrap();
    let failure = reverify(&trail, &key_ring_from_file(&wrong).unwrap(), &records).unwrap_err();
    assert_eq!(failure.seq.get(), 1, "{failure}");
}
