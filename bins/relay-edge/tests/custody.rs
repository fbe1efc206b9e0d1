//! Custody over time, with real `relay-edge` processes (issue 21): the database file alone after
//! a clean stop, online backup and verified restore, kill -9 recorded as `UNCLEAN_SHUTDOWN`,
//! version evidence, `forward resume`, NTP steps and losses as records, HTTPS on the edge and
//! the refusal of plain HTTP on a network address, and the upgrade check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, TRAIL, now_micros, records, start, stop, to_ntp, wait_for_records};
use relay_domain::Record;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn system_events(all: &[Record], what: &str) -> Vec<serde_json::Value> {
    all.iter()
        .filter(|r| r.kind.as_str() == "SYSTEM")
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p["event"] == what)
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `relay-edge run --config` child, killed if the test fails before stopping it.
struct Edge(Option<Child>);

impl Edge {
    fn start(config: &Path) -> Self {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RELAY_LOG", "warn")
            .env_remove("RELAY_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    fn stop(mut self) {
        stop(self.0.take().unwrap());
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

fn write_config(path: &Path, data: &Path, watch: &Path, port: u16, extra: &str) {
    std::fs::write(
        path,
        format!(
            "data_dir = {data:?}\nwatch = [{watch:?}]\ndevice = \"{TRAIL}\"\n\
             listen = \"127.0.0.1:{port}\"\nsettle_ms = 150\nrescan_secs = 1\n{extra}"
        ),
    )
    .unwrap();
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// 1. The database file alone after a clean stop.

/// Counts the trail's rows in `db` opened read-only, with no WAL next to it.
fn count_rows_read_only(db: &Path, trail: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*) FROM event_log WHERE trail_id = ?1",
        [trail],
        |r| r.get(0),
    )
    .unwrap()
}

// REQ: R11.3
#[test]
fn relay_db_alone_holds_every_record_after_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..25 {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    wait_for_records(&data, "FILE_CREATED", 25, Duration::from_secs(30));
    stop(child);
    let wal = data.join("relay.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL must be checkpointed and truncated at a clean stop"
    );
    // Only relay.db is copied: what an operator copying "the database" gets.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(data.join("relay.db"), copy.join("relay.db")).unwrap();
    assert_eq!(count_rows_read_only(&copy.join("relay.db"), TRAIL), 25);
    let relay_rows = count_rows_read_only(&copy.join("relay.db"), "_relay");
    assert_eq!(relay_rows as usize, records(&data, "_relay").len());
}

// ---------------------------------------------------------------------------------------------
// 2. Online backup while capturing, verified restore elsewhere.

fn manifest_heads(backup: &Path) -> Vec<(String, u64, String)> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    m["state"]["trails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trail"].as_str().unwrap().to_owned(),
                t["head_seq"].as_u64().unwrap(),
                t["head_checksum"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// REQ: R1.4, R1.2
#[test]
fn backup_while_capturing_restores_elsewhere_verified_with_the_manifest_heads() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..20 {
        std::fs::write(watch.join(format!("a{i}.fid")), format!("first {i}")).unwrap();
    }
    wait_for_records(&data, "FILE_CREATED", 20, Duration::from_secs(30));
    // Capture keeps going while the backup runs.
    let writer = {
        let watch = watch.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                std::fs::write(watch.join(format!("b{i}.fid")), format!("during {i}")).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let backup = tmp.path().join("backup");
    let out = run(&["backup", "--data-dir", s(&data), "--out", s(&backup)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    writer.join().unwrap();
    wait_for_records(&data, "FILE_CREATED", 60, Duration::from_secs(30));
    stop(child);
    assert!(
        !backup.join("secrets").exists(),
        "no keys without --include-secrets"
    );
    let heads = manifest_heads(&backup);
    let trail_head = heads.iter().find(|h| h.0 == TRAIL).unwrap();
    assert!(trail_head.1 >= 20, "{heads:?}");

    // A non-empty target is refused, and nothing is written into it.
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "x").unwrap();
    let out = run(&[
        "restore",
        "--from",
        s(&backup),
        "--data-dir",
        s(&busy),
        "--secrets-from",
        s(&data.join("secrets")),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // Without keys the restore cannot be verified, so it is refused.
    let restored = tmp.path().join("restored");
    let out = run(&["restore", "--from", s(&backup), "--data-dir", s(&restored)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--secrets-from"), "{}", text(&out));
    assert!(!restored.exists());

    let out = run(&[
        "restore",
        "--from",
        s(&backup),
        "--data-dir",
        s(&restored),
        "--secrets-from",
        s(&data.join("secrets")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (trail, seq, checksum) in &heads {
        assert!(
            text(&out).contains(&format!("head {seq:>10} {checksum}"))
                && text(&out).contains(trail.as_str()),
            "the restore must report head {seq} of {trail}: {}",
            text(&out)
        );
    }
    let out = run(&["verify", "--data-dir", s(&restored)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "OK      {TRAIL}: {} records verified",
            trail_head.1
        )),
        "{}",
        text(&out)
    );

    // Against the installation's current anchors, the backup is older: reported, exit 1.
    let again = tmp.path().join("again");
    let out = run(&[
        "restore",
        "--from",
        s(&backup),
        "--data-dir",
        s(&again),
        "--secrets-from",
        s(&data.join("secrets")),
        "--anchors-from",
        s(&data.join("anchors")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "OLDER THAN THE NOTARY  {TRAIL}: restored head {}",
            trail_head.1
        )),
        "{}",
        text(&out)
    );
}

// REQ: R1.2, R10.3
#[test]
fn a_backup_with_an_edited_file_is_refused_and_include_secrets_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    std::fs::write(watch.join("one.fid"), "one").unwrap();
    wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(30));
    stop(child);
    let backup = tmp.path().join("backup");
    let out = run(&[
        "backup",
        "--data-dir",
        s(&data),
        "--out",
        s(&backup),
        "--include-secrets",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("WARNING: --include-secrets"),
        "{}",
        text(&out)
    );
    assert!(backup.join("secrets/trail-hmac.json").is_file());

    // Someone opens the backup's relay.db with a tool: SQLite leaves its side files, which the
    // restore neither needs nor counts as tampering while they hold nothing...
    std::fs::write(backup.join("relay.db-shm"), vec![0u8; 32768]).unwrap();
    std::fs::write(backup.join("relay.db-wal"), b"").unwrap();
    let restored_ok = tmp.path().join("restored-with-side-files");
    let out = run(&[
        "restore",
        "--from",
        s(&backup),
        "--data-dir",
        s(&restored_ok),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // ...but a write-ahead log with frames means the copy was changed after it was taken.
    std::fs::write(backup.join("relay.db-wal"), b"frames written to the copy").unwrap();
    let refused = tmp.path().join("restored-with-wal");
    let out = run(&["restore", "--from", s(&backup), "--data-dir", s(&refused)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("relay.db-wal holds 26 bytes"),
        "{}",
        text(&out)
    );
    assert!(!refused.exists());
    std::fs::remove_file(backup.join("relay.db-wal")).unwrap();

    // An attacker edits an anchor of the backup: the manifest's digest catches it.
    let anchor = std::fs::read_dir(backup.join("anchors"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut body = std::fs::read(&anchor).unwrap();
    body.push(b'\n');
    std::fs::write(&anchor, body).unwrap();
    let restored = tmp.path().join("restored");
    let out = run(&["restore", "--from", s(&backup), "--data-dir", s(&restored)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not match the manifest"),
        "{}",
        text(&out)
    );
    assert!(!restored.exists());
}

// ---------------------------------------------------------------------------------------------
// 3. kill -9 is recorded at the next start.

// REQ: R6.2, R1.6
#[test]
fn kill_9_then_restart_records_unclean_shutdown_naming_the_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    std::fs::write(watch.join("a.fid"), "a").unwrap();
    wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(30));
    stop(child);
    // A clean stop: the next start says so and records nothing unclean.
    let mut child = start(&data, &watch);
    std::fs::write(watch.join("b.fid"), "b").unwrap();
    let all = wait_for_records(&data, "FILE_CREATED", 2, Duration::from_secs(30));
    let last = all.last().unwrap().clone();
    let relay = records(&data, "_relay");
    let startup = relay
        .iter()
        .rfind(|r| r.kind.as_str() == "STARTUP")
        .unwrap();
    assert_eq!(
        startup.payload.to_value().unwrap()["previous_run"]["ended"],
        "clean"
    );
    assert!(system_events(&relay, "UNCLEAN_SHUTDOWN").is_empty());

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let relay_before = records(&data, "_relay");
    let newest_relay = relay_before.last().unwrap().clone();
    let child = start(&data, &watch);
    wait_until("the next STARTUP", Duration::from_secs(30), || {
        records(&data, "_relay").len() > relay_before.len() + 1
    });
    stop(child);
    let relay = records(&data, "_relay");
    let unclean = system_events(&relay, "UNCLEAN_SHUTDOWN");
    assert_eq!(unclean.len(), 1, "{unclean:?}");
    let u = &unclean[0];
    assert_eq!(u["previous_startup_seq"], startup.chain_seq.get());
    // The newest record before the kill: the capture of b.fid or a later _relay record.
    let named = &u["last_record_before"];
    let expected = if newest_relay.recorded_at > last.recorded_at {
        &newest_relay
    } else {
        &last
    };
    assert_eq!(named["trail"], expected.trail_id.as_str(), "{u}");
    assert_eq!(named["seq"], expected.chain_seq.get(), "{u}");
    assert_eq!(named["checksum"], expected.checksum.to_string(), "{u}");
    let startup = relay
        .iter()
        .rfind(|r| r.kind.as_str() == "STARTUP")
        .unwrap();
    let p = startup.payload.to_value().unwrap();
    assert_eq!(p["previous_run"]["ended"], "unclean", "{p}");
}

// ---------------------------------------------------------------------------------------------
// 4. Version evidence.

// REQ: R11.2
#[test]
fn version_healthz_and_startup_carry_commit_build_date_and_the_binary_hash() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        version.contains("(commit ") && version.contains(", built "),
        "{version}"
    );
    let commit = version
        .split("(commit ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert!(commit == "unknown" || commit.len() == 40, "{commit}");

    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let port = reserve_port();
    let config = tmp.path().join("edge.toml");
    write_config(&config, &data, &watch, port, "");
    let edge = Edge::start(&config);
    let mut health = None;
    wait_until("healthz", Duration::from_secs(30), || {
        health = http_get(port, "/healthz");
        health.is_some()
    });
    let h: serde_json::Value = serde_json::from_str(&health.unwrap()).unwrap();
    assert_eq!(h["git_commit"], commit.as_str(), "{h}");
    assert!(
        h["build_date"].as_str().is_some_and(|d| !d.is_empty()),
        "{h}"
    );
    edge.stop();
    let relay = records(&data, "_relay");
    let p = relay[0].payload.to_value().unwrap();
    assert_eq!(relay[0].kind.as_str(), "STARTUP");
    assert_eq!(p["build"]["git_commit"], commit.as_str(), "{p}");
    let binary_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(BIN).unwrap(),
    ));
    assert_eq!(p["binary"]["sha256"], binary_sha.as_str(), "{p}");
    assert_eq!(p["previous_run"]["ended"], "first_run", "{p}");
}

#[test]
fn qualify_compares_the_running_binary_with_a_release_checksum_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    std::fs::write(watch.join("q.fid"), "q").unwrap();
    wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(30));
    stop(child);
    let binary_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(BIN).unwrap(),
    ));
    let good = tmp.path().join("SHA256SUMS");
    std::fs::write(
        &good,
        format!(
            "{}  relay-verify-v0-x86_64-linux\n{binary_sha}  relay-edge-v0-x86_64-linux\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = run(&[
        "qualify",
        "--data-dir",
        s(&data),
        "--out",
        s(&tmp.path().join("q1")),
        "--release-sums",
        s(&good),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = std::fs::read_dir(tmp.path().join("q1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .unwrap();
    let md = std::fs::read_to_string(report).unwrap();
    assert!(md.contains(&binary_sha), "IQ-01 names the binary hash");
    assert!(
        md.contains("relay-edge-v0-x86_64-linux"),
        "IQ-01 names the matching entry"
    );

    let bad = tmp.path().join("BADSUMS");
    std::fs::write(
        &bad,
        format!("{}  relay-edge-v0-x86_64-linux\n", "1".repeat(64)),
    )
    .unwrap();
    let out = run(&[
        "qualify",
        "--data-dir",
        s(&data),
        "--out",
        s(&tmp.path().join("q2")),
        "--release-sums",
        s(&bad),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a binary not in the release fails IQ-01: {}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. forward resume, end to end.

/// A server of record stand-in: answers 422 while `refuse` is set, else acknowledges the batch.
struct FakeServer {
    port: u16,
    refuse: Arc<AtomicBool>,
    batches: Arc<AtomicU16>,
}

impl FakeServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refuse = Arc::new(AtomicBool::new(true));
        let batches = Arc::new(AtomicU16::new(0));
        let (r, b) = (refuse.clone(), batches.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some((path, body)) = read_request(&mut conn) else {
                    continue;
                };
                if path != "/api/v1/ingest" {
                    // Key registration and heartbeats: this stand-in has no fleet.
                    let answer = r#"{"error":{"code":"not_found","message":"no fleet here"}}"#;
                    write!(
                        conn,
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    )
                    .ok();
                    continue;
                }
                b.fetch_add(1, Ordering::SeqCst);
                let (status, answer) = if r.load(Ordering::SeqCst) {
                    (
                        "422 Unprocessable Entity",
                        r#"{"error":"chain_mismatch","message":"test server refuses"}"#.to_owned(),
                    )
                } else {
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let last = req["records"].as_array().unwrap().last().unwrap().clone();
                    (
                        "200 OK",
                        serde_json::json!({
                            "trail_id": req["trail_id"], "acked_seq": last["chain_seq"],
                            "head_seq": last["chain_seq"], "head_checksum": last["checksum"],
                            "appended": req["records"].as_array().unwrap().len(),
                            "already_present": 0,
                        })
                        .to_string(),
                    )
                };
                write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .ok();
            }
        });
        Self {
            port,
            refuse,
            batches,
        }
    }
}

/// Reads one HTTP request; returns its body.
/// The request line's path and the body of one request.
fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            return Some((path, buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}

fn forward_state(config: &Path) -> String {
    text(&run(&["forward", "status", "--config", s(config)]))
}

// REQ: R8.4
#[test]
fn forward_resume_refuses_while_the_cause_persists_then_resumes_and_records_who_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let server = FakeServer::start();
    let config = tmp.path().join("edge.toml");
    write_config(
        &config,
        &data,
        &watch,
        reserve_port(),
        &format!(
            "forward_url = \"http://127.0.0.1:{}\"\nforward_token = \"test-token\"\nforward_batch = 5\n",
            server.port
        ),
    );
    let edge = Edge::start(&config);
    for i in 0..3 {
        std::fs::write(watch.join(format!("p{i}.fid")), format!("poison {i}")).unwrap();
    }
    wait_for_records(&data, "FILE_CREATED", 3, Duration::from_secs(30));
    wait_until("the poison", Duration::from_secs(30), || {
        forward_state(&config).contains("POISONED")
    });
    assert_eq!(
        records(&data, "_relay")
            .iter()
            .filter(|r| r.kind.as_str() == "FORWARD_POISONED")
            .count(),
        1
    );

    // The cause persists: refused, nothing recorded, still poisoned.
    let resume = |reason: &str| {
        run(&[
            "forward",
            "resume",
            "--config",
            s(&config),
            "--trail",
            TRAIL,
            "--reason",
            reason,
        ])
    };
    let out = resume("server schema fixed");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("still refuses"), "{}", text(&out));
    assert!(forward_state(&config).contains("POISONED"));
    let no_reason = resume("  ");
    assert_eq!(no_reason.status.code(), Some(2), "{}", text(&no_reason));

    // The fix: the server accepts the batch now.
    server.refuse.store(false, Ordering::SeqCst);
    let out = resume("server schema fixed (CR-42)");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let relay = records(&data, "_relay");
    let resumed: Vec<_> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "FORWARD_RESUMED")
        .map(|r| r.payload.to_value().unwrap())
        .collect();
    assert_eq!(resumed.len(), 1);
    let operator = whoami_user();
    assert_eq!(resumed[0]["operator"], operator.as_str(), "{}", resumed[0]);
    assert_eq!(resumed[0]["reason"], "server schema fixed (CR-42)");
    assert_eq!(resumed[0]["dead_letter"]["status"], 422);

    // The running edge takes the trail up again by itself: new captures are forwarded.
    let before = server.batches.load(Ordering::SeqCst);
    std::fs::write(watch.join("after.fid"), "after the fix").unwrap();
    wait_for_records(&data, "FILE_CREATED", 4, Duration::from_secs(30));
    wait_until("in sync", Duration::from_secs(30), || {
        forward_state(&config).contains("in sync")
    });
    assert!(server.batches.load(Ordering::SeqCst) > before);
    edge.stop();
    // A second resume of a trail that is not poisoned is refused.
    let out = resume("again");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not poisoned"), "{}", text(&out));
}

fn whoami_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// 7. NTP steps, loss and recovery are records.

/// An SNTP server on loopback: the host clock plus `offset`; silent while `mute` is set.
struct FakeNtp {
    port: u16,
    offset: Arc<AtomicI64>,
    mute: Arc<AtomicBool>,
    answers: Arc<AtomicU16>,
}

impl FakeNtp {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let (offset, mute, answers) = (
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU16::new(0)),
        );
        let (o, m, a) = (offset.clone(), mute.clone(), answers.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 48 || m.load(Ordering::SeqCst) {
                    continue;
                }
                let t = to_ntp(now_micros() + o.load(Ordering::SeqCst));
                let mut reply = [0u8; 48];
                reply[0] = (4 << 3) | 4;
                reply[1] = 2;
                reply[24..32].copy_from_slice(&buf[40..48]);
                reply[32..40].copy_from_slice(&t.to_be_bytes());
                reply[40..48].copy_from_slice(&t.to_be_bytes());
                if socket.send_to(&reply, peer).is_ok() {
                    a.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            port,
            offset,
            mute,
            answers,
        }
    }

    /// Waits until the relay asked (and got an answer) `n` more times.
    fn wait_answers(&self, n: u16) {
        let target = self.answers.load(Ordering::SeqCst) + n;
        wait_until("NTP polls", Duration::from_secs(30), || {
            self.answers.load(Ordering::SeqCst) >= target
        });
    }
}

// REQ: R9.1
#[test]
fn ntp_steps_forward_and_back_loss_and_recovery_are_system_events() {
    const STEP: i64 = 300_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let ntp = FakeNtp::start();
    let config = tmp.path().join("edge.toml");
    write_config(
        &config,
        &data,
        &watch,
        reserve_port(),
        &format!(
            "time_source = \"ntp\"\nntp_servers = [\"127.0.0.1:{}\"]\nntp_poll_secs = 1\n",
            ntp.port
        ),
    );
    let edge = Edge::start(&config);
    ntp.wait_answers(1);
    let events = |what: &str| system_events(&records(&data, "_relay"), what);
    ntp.offset.store(STEP, Ordering::SeqCst);
    wait_until("NTP_STEP forward", Duration::from_secs(30), || {
        !events("NTP_STEP").is_empty()
    });
    ntp.offset.store(0, Ordering::SeqCst);
    wait_until("NTP_STEP backward", Duration::from_secs(30), || {
        events("NTP_STEP").len() >= 2
    });
    ntp.mute.store(true, Ordering::SeqCst);
    wait_until("NTP_LOST", Duration::from_secs(30), || {
        !events("NTP_LOST").is_empty()
    });
    ntp.mute.store(false, Ordering::SeqCst);
    wait_until("NTP_RECOVERED", Duration::from_secs(30), || {
        !events("NTP_RECOVERED").is_empty()
    });
    edge.stop();
    let steps = events("NTP_STEP");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0]["direction"], "forward");
    assert_eq!(steps[1]["direction"], "backward");
    for (s, sign) in steps.iter().zip([1i64, -1]) {
        let ms = s["step_ms"].as_i64().unwrap();
        assert!((ms - sign * 300_000).abs() < 2_000, "{s}");
    }
    assert_eq!(events("NTP_LOST").len(), 1);
    assert_eq!(events("NTP_RECOVERED").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 8. HTTPS on the edge; plain HTTP on a network address refused.

fn https_get(port: u16, ca_pem: &Path, path: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    match tls.read_to_string(&mut out) {
        Ok(_) => {}
        // Some servers close without close_notify; what was read is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(out)
}

#[test]
fn the_edge_serves_https_with_a_self_signed_ca_and_records_the_posture() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "edge test CA");
    let ca_cert = ca_params.self_signed(&ca).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca)
        .unwrap();
    std::fs::write(pki.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(pki.join("edge.pem"), leaf.pem()).unwrap();
    std::fs::write(pki.join("edge.key"), leaf_key.serialize_pem()).unwrap();
    let other_ca = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(
        pki.join("other.pem"),
        other_params.self_signed(&other_ca).unwrap().pem(),
    )
    .unwrap();

    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let port = reserve_port();
    let config = tmp.path().join("edge.toml");
    write_config(
        &config,
        &data,
        &watch,
        port,
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            pki.join("edge.pem"),
            pki.join("edge.key")
        ),
    );
    let edge = Edge::start(&config);
    let mut answer = Err(String::new());
    wait_until("HTTPS healthz", Duration::from_secs(30), || {
        answer = https_get(port, &pki.join("ca.pem"), "/healthz");
        answer.is_ok()
    });
    let answer = answer.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    // A client that does not trust the CA is refused; plain HTTP gets no answer.
    assert!(https_get(port, &pki.join("other.pem"), "/healthz").is_err());
    assert!(http_get(port, "/healthz").is_none_or(|b| !b.contains("\"status\"")));
    edge.stop();
    let relay = records(&data, "_relay");
    let p = relay[0].payload.to_value().unwrap();
    assert_eq!(p["listener"]["transport"], "https", "{p}");
}

// REQ: R11.2
#[test]
fn plain_http_on_a_network_address_is_refused_unless_explicitly_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            "--data-dir",
            s(&data),
            "--watch",
            s(&watch),
            "--listen",
            "0.0.0.0:0",
        ])
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "refusing to serve the review API over plain HTTP on the network address 0.0.0.0:0"
        ),
        "{}",
        text(&out)
    );
    assert!(
        !data.join("relay.db").exists(),
        "a refused start records nothing"
    );

    let port = reserve_port();
    let config = tmp.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nwatch = [{watch:?}]\ndevice = \"{TRAIL}\"\n\
             listen = \"0.0.0.0:{port}\"\nallow_plain_http_on_network = true\n"
        ),
    )
    .unwrap();
    let edge = Edge::start(&config);
    wait_until("healthz", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some()
    });
    edge.stop();
    let p = records(&data, "_relay")[0].payload.to_value().unwrap();
    assert_eq!(p["listener"]["transport"], "http_on_network_allowed", "{p}");
}

// ---------------------------------------------------------------------------------------------
// 9. Upgrade check.

// REQ: R1.2
#[test]
fn upgrade_check_passes_on_an_unchanged_store_and_fails_on_any_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..5 {
        std::fs::write(watch.join(format!("u{i}.fid")), format!("u {i}")).unwrap();
    }
    wait_for_records(&data, "FILE_CREATED", 5, Duration::from_secs(30));
    stop(child);
    let state = tmp.path().join("before.json");
    let out = run(&[
        "upgrade-check",
        "record",
        "--data-dir",
        s(&data),
        "--out",
        s(&state),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&[
        "upgrade-check",
        "record",
        "--data-dir",
        s(&data),
        "--out",
        s(&state),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an existing state file is never overwritten"
    );
    let out = run(&[
        "upgrade-check",
        "compare",
        "--data-dir",
        s(&data),
        "--with",
        s(&state),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("SAME"), "{}", text(&out));

    // A record lost across the "upgrade" (an attacker deletes the head past the triggers).
    let conn = rusqlite::Connection::open(data.join("relay.db")).unwrap();
    conn.execute_batch("DROP TRIGGER IF EXISTS event_log_no_delete;")
        .unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{t}\";"))
            .unwrap();
    }
    conn.execute(
        "DELETE FROM event_log WHERE trail_id = ?1 AND chain_seq = 5",
        [TRAIL],
    )
    .unwrap();
    drop(conn);
    let out = run(&[
        "upgrade-check",
        "compare",
        "--data-dir",
        s(&data),
        "--with",
        s(&state),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("DIFFERENT  trail {TRAIL}: 5 records head 5")),
        "{}",
        text(&out)
    );
}
