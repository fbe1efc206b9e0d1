//! Capture edges from outside (issue 22), against the real `relay-edge` process: content
//! rewritten with its size and mtime put back (`os.utime`), and a file name that tries to forge a
//! line in the human log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use relay_domain::Record;
use sha2::{Digest, Sha256};

fn payload(r: &Record) -> serde_json::Value {
    r.payload.to_value().unwrap()
}

fn of_kind<'a>(all: &'a [Record], kind: &str) -> Vec<&'a Record> {
    all.iter().filter(|r| r.kind.as_str() == kind).collect()
}

/// Rewrites `path` with `data` of the same length and sets the mtime back, as `os.utime` does.
fn rewrite_keeping_size_and_mtime(path: &Path, data: &[u8], mtime: SystemTime) {
    assert_eq!(fs::metadata(path).unwrap().len(), data.len() as u64);
    fs::write(path, data).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

// REQ: R6.3
#[test]
fn a_rewrite_with_size_and_mtime_restored_is_recorded_live_and_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    fs::create_dir_all(&watch).unwrap();
    let file = watch.join("spectrum.fid");
    let versions: Vec<Vec<u8>> = (0..3u8).map(|v| vec![b'a' + v; 8192]).collect();
    fs::write(&file, &versions[0]).unwrap();
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();

    let child = start(&data, &watch);
    wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(60));
    rewrite_keeping_size_and_mtime(&file, &versions[1], mtime);
    wait_for_records(&data, "FILE_MODIFIED", 1, Duration::from_secs(60));
    stop(child);

    rewrite_keeping_size_and_mtime(&file, &versions[2], mtime);
    let child = start(&data, &watch);
    wait_for_records(&data, "FILE_MODIFIED", 2, Duration::from_secs(60));
    stop(child);

    let all = records(&data, TRAIL);
    assert_eq!(of_kind(&all, "FILE_CREATED").len(), 1);
    let modified = of_kind(&all, "FILE_MODIFIED");
    assert_eq!(
        modified.len(),
        2,
        "one FILE_MODIFIED per rewrite, none twice"
    );
    for (r, (before, after)) in modified.iter().zip([(0, 1), (1, 2)]) {
        let p = payload(r);
        assert_eq!(
            p["previous_sha256"],
            hex::encode(Sha256::digest(&versions[before]))
        );
        assert_eq!(p["sha256"], hex::encode(Sha256::digest(&versions[after])));
        assert_eq!(p["mtime"], p["previous_mtime"], "the mtime was restored");
        assert_eq!(p["size"], p["previous_size"]);
    }
    let out = verify(&data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `relay-edge run` with info logs in the human format written to `log`, and a re-hash audit
/// every second.
fn start_logging(data: &Path, watch: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args([
            "--device",
            TRAIL,
            "--settle-ms",
            "300",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RELAY_LOG", "info")
        .env("RELAY_REHASH_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("spawn relay-edge")
}

#[test]
fn a_file_name_with_a_newline_cannot_forge_a_log_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    fs::create_dir_all(&watch).unwrap();
    let log = tmp.path().join("edge.log");
    let child = start_logging(&data, &watch, &log);
    fs::write(
        watch.join("a\nFORGED line\r\u{1b}[2Jcleared"),
        b"a name that spans lines",
    )
    .unwrap();
    let all = wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(60));
    // The configured audit runs (and logs) too: its lines are escaped the same way.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(&log)
        .unwrap()
        .lines()
        .any(|l| l.contains("re-hash audit finished") && l.contains("checked=1"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no audit pass was logged: {}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);

    // The trail keeps the real name...
    let created = of_kind(&all, "FILE_CREATED");
    assert_eq!(
        created[0].subject.as_ref().unwrap().as_str(),
        "a\nFORGED line\r\u{1b}[2Jcleared"
    );
    // ...the log shows it escaped on the line that records it, and nothing else.
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("path=a\\nFORGED line\\r\\u{1b}[2Jcleared"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "raw escape in the log: {text:?}");
    assert!(
        !text.contains('\r'),
        "raw carriage return in the log: {text:?}"
    );
    for line in text.lines() {
        assert!(!line.starts_with("FORGED"), "forged line: {line:?}");
        assert!(
            line.contains(" INFO ") || line.contains(" WARN ") || line.contains(" ERROR "),
            "every line is a log record: {line:?}"
        );
    }
    let startup = records(&data, "_relay")
        .into_iter()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap();
    assert_eq!(payload(&startup)["rehash_interval_secs"], 1);
}
