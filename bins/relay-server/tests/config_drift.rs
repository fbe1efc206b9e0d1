//! The server of record's configuration file edited behind its back: the first start records
//! the configuration as the approved baseline (`CONFIG_BASELINE`); a start after an edit on disk
//! records `CONFIG_DRIFT` naming the changed key, keeps the approved baseline (the drift is
//! reported again at the next start), and never writes a credential of the DSN into the trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, local_records, reserve_port, server_bin};
use relay_domain::Record;

fn write_config(path: &Path, data_dir: &Path, port: u16, notary_interval_secs: u64) {
    std::fs::write(
        path,
        format!(
            "data_dir = {data_dir:?}\ndevice = \"server-drift\"\nlisten = \"127.0.0.1:{port}\"\n\
             notary_interval_secs = {notary_interval_secs}\n"
        ),
    )
    .unwrap();
}

/// Starts the server, waits until it listens, stops it with SIGTERM.
fn start_and_stop(server: &mut Proc, port: u16) {
    server.start();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.running(), "server exited: {}", server.log_tail());
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server never listened: {}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}

/// The kind of each record, with the `event` of SYSTEM records (`SYSTEM:CONFIG_DRIFT`).
fn kinds(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| match r.kind.as_str() {
            "SYSTEM" => {
                format!("SYSTEM:{}", r.payload.to_value().unwrap()["event"]).replace('"', "")
            }
            other => other.to_owned(),
        })
        .collect()
}

/// The SYSTEM records of `event`.
fn system_events<'a>(records: &'a [Record], event: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.kind.as_str() == "SYSTEM" && r.payload.to_value().unwrap()["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_edited_on_disk_is_recorded_as_config_drift_at_start() {
    let root = tempfile::TempDir::new().unwrap();
    let data_dir = root.path().join("data");
    let conf = root.path().join("server.toml");
    let port = reserve_port();
    let args = ["run", "--config", conf.to_str().unwrap()];
    let mut server = Proc::new(
        "relay-server",
        server_bin(),
        &args,
        &root.path().join("log"),
    )
    // A credential in the effective configuration (as an operator would pass the DSN).
    .env(
        "RELAY_STORAGE__PG_DSN",
        "postgres://relay:hunter2@db.internal/relay",
    );

    write_config(&conf, &data_dir, port, 3600);
    start_and_stop(&mut server, port);
    let relay = local_records(&data_dir, "_relay").await;
    assert_eq!(
        system_events(&relay, "CONFIG_BASELINE").len(),
        1,
        "{:?}",
        kinds(&relay)
    );
    assert!(
        system_events(&relay, "CONFIG_DRIFT").is_empty(),
        "{:?}",
        kinds(&relay)
    );

    // Same file: nothing to report.
    start_and_stop(&mut server, port);
    let relay = local_records(&data_dir, "_relay").await;
    assert!(
        system_events(&relay, "CONFIG_DRIFT").is_empty(),
        "{:?}",
        kinds(&relay)
    );

    // Edited on disk: the notary interval, which weakens notarization.
    write_config(&conf, &data_dir, port, 86_400);
    start_and_stop(&mut server, port);
    start_and_stop(&mut server, port);
    let relay = local_records(&data_dir, "_relay").await;
    let drifts = system_events(&relay, "CONFIG_DRIFT");
    assert_eq!(
        drifts.len(),
        2,
        "drift is reported at every start until approved: {:?}",
        kinds(&relay)
    );
    let payload = drifts[0].payload.to_value().unwrap();
    assert_eq!(
        payload["changed"],
        serde_json::json!(["notary_interval_secs"])
    );
    assert_eq!(payload["approved"]["notary_interval_secs"], 3600);
    assert_eq!(payload["current"]["notary_interval_secs"], 86_400);
    let startup = relay
        .iter()
        .rev()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap()
        .payload
        .to_value()
        .unwrap();
    assert_eq!(startup["config"]["state"], "drift", "{startup}");

    for record in &relay {
        let text = record.payload.to_value().unwrap().to_string();
        assert!(
            !text.contains("hunter2"),
            "a DSN credential reached the trail in {}: {text}",
            record.kind.as_str()
        );
    }
}
