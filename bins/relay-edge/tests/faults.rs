//! Fault injection on the edge, with real `relay-edge` processes (issue 11, part 3):
//!
//! - the data directory runs out of space (a 16 MiB tmpfs filled with ballast): nothing is
//!   marked captured that is not durably chained, the failures are counted in the metrics, the
//!   chain stays valid, and every file is captured once space returns;
//! - a corrupted SQLite page, a truncated, an emptied and a deleted `relay.db`: `run` refuses to
//!   start naming the file, `verify` reports it, and the file is left exactly as it was;
//! - the wall clock stepping back one hour during capture (a fake NTP server whose answer
//!   jumps): records keep their labelled time, `chain_seq` orders them, and a `CLOCK_SKEW` event
//!   (`check: step_back`) plus the `relay_clock_steps_back_total` metric record the step.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN). Without it the disk-full test is skipped with a
//! printed reason; as root, a failing mount is a failure when `RELAY_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, TRAIL, now_micros, records, to_ntp};
use relay_domain::Record;
use sha2::{Digest, Sha256};

/// A `relay-edge run` that is killed if the test fails before stopping it.
struct Edge {
    child: Option<Child>,
    log: PathBuf,
}

impl Edge {
    fn start(config: &Path, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RELAY_LOG", "info")
            .env_remove("RELAY_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn relay-edge");
        Self {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// SIGTERM, then waits (20 s at most) for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "relay-edge exited with {status}; log {}",
                    self.log.display()
                );
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("relay-edge did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// `GET path` on the edge's listener; the body, or `None` while it does not answer.
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

/// The value of a counter or gauge in the Prometheus text of `/metrics`.
fn metric(port: u16, name: &str) -> Option<f64> {
    let body = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(all: &[Record], kind: &str) -> usize {
    all.iter().filter(|r| r.kind.as_str() == kind).count()
}

fn captured_once(all: &[Record]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in all.iter().filter(|r| r.kind.as_str() == "FILE_CREATED") {
        *seen
            .entry(r.subject.as_ref().unwrap().as_str().to_owned())
            .or_insert(0) += 1;
    }
    seen
}

fn verify(config: &Path) -> Output {
    Command::new(BIN)
        .args(["verify", "--config"])
        .arg(config)
        .env("RELAY_LOG", "error")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap()
}

fn write_config(path: &Path, data: &Path, watch: &Path, port: u16, extra: &str) {
    std::fs::write(
        path,
        format!(
            "data_dir = {data:?}\nwatch = [{watch:?}]\ndevice = \"{TRAIL}\"\nproject = \"PRJ-FAULT\"\n\
             listen = \"127.0.0.1:{port}\"\nsettle_ms = 150\nrescan_secs = 1\n{extra}"
        ),
    )
    .unwrap();
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

// ---------------------------------------------------------------------------------------------
// The data directory runs out of space.

/// A tmpfs mounted for the test, unmounted (lazily, so a stuck process cannot block it) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: could not unmount {}", self.0.display());
        }
    }
}

/// Fills the file system holding `dir` until a write fails with ENOSPC; returns the ballast.
fn fill(dir: &Path) -> PathBuf {
    let ballast = dir.join("ballast.bin");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Whatever is left in partial blocks, too.
    for size in [4096usize, 512, 64, 1] {
        while f.write(&vec![0u8; size]).is_ok_and(|n| n > 0) {}
    }
    f.sync_all().ok();
    ballast
}

#[test]
fn a_full_data_directory_fails_appends_loudly_and_capture_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch, logs) = (
        tmp.path().join("data"),
        tmp.path().join("nmr"),
        tmp.path().join("logs"),
    );
    std::fs::create_dir_all(&watch).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let euid = nix::unistd::geteuid();
    let _mount = match Tmpfs::mount(&data, "16m") {
        Ok(m) => m,
        Err(why) => {
            let required = std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            // As root the mount is expected to work; elsewhere it cannot, and the test says so.
            assert!(
                !(required && euid.is_root()),
                "running as root with RELAY_REQUIRE_SERVICES=1, but a tmpfs cannot be mounted: {why}"
            );
            eprintln!(
                "SKIP disk-full fault test: a small file system for the data directory cannot be \
                 mounted here (uid {euid}): {why}"
            );
            return;
        }
    };
    let port = reserve_port();
    let config = tmp.path().join("edge.toml");
    write_config(&config, &data, &watch, port, "");
    let edge = Edge::start(&config, &logs.join("edge.log"));

    // Normal capture first.
    for i in 0..10 {
        std::fs::write(
            watch.join(format!("before-{i:02}.fid")),
            format!("before {i}"),
        )
        .unwrap();
    }
    wait_until(
        "10 captures before the disk fills",
        Duration::from_secs(30),
        || data.join("relay.db").exists() && count(&records(&data, TRAIL), "FILE_CREATED") >= 10,
    );
    let failures_before = metric(port, "relay_audit_write_failures_total").unwrap();

    // The data directory's file system fills up; the instrument keeps writing (elsewhere).
    let ballast = fill(&data);
    for i in 0..20 {
        std::fs::write(
            watch.join(format!("during-{i:02}.fid")),
            format!("during {i} {}", "x".repeat(2000)),
        )
        .unwrap();
    }
    // Appends fail: counted, and the files stay pending (never marked captured unrecorded).
    wait_until(
        "failed appends counted in relay_audit_write_failures_total",
        Duration::from_secs(30),
        || metric(port, "relay_audit_write_failures_total").is_some_and(|n| n > failures_before),
    );
    std::thread::sleep(Duration::from_secs(2));
    let pending = metric(port, "relay_capture_pending").unwrap();
    let failures_full = metric(port, "relay_audit_write_failures_total").unwrap();
    let during_full = count(&records(&data, TRAIL), "FILE_CREATED");
    eprintln!(
        "disk full: {failures_full} failed appends, {pending} files pending, {during_full} \
         FILE_CREATED so far"
    );
    assert!(
        pending >= 1.0,
        "files that could not be recorded must stay pending"
    );
    assert!(
        during_full < 30,
        "not every file can have been recorded on a full disk"
    );
    // The chain on the full disk still verifies (read-only check next to the running edge).
    let out = verify(&config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify on the full disk: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Space returns: every file is captured, once.
    std::fs::remove_file(&ballast).unwrap();
    wait_until(
        "all 30 files captured after space returned",
        Duration::from_secs(90),
        || count(&records(&data, TRAIL), "FILE_CREATED") >= 30,
    );
    assert_eq!(metric(port, "relay_capture_pending"), Some(0.0));
    std::thread::sleep(Duration::from_millis(1500)); // a duplicate would show up here
    edge.stop();

    let all = records(&data, TRAIL);
    let seen = captured_once(&all);
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "captured twice: {seen:?}");
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.chain_seq.get(), i as u64 + 1, "no gap in chain_seq");
    }
    let out = verify(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("OK      {TRAIL}:")), "{stdout}");
    // The outage is on record once the journal can write again.
    let relay = records(&data, "_relay");
    let outage: Vec<&Record> = relay
        .iter()
        .filter(|r| {
            r.kind.as_str() == "SYSTEM"
                && r.payload.to_value().unwrap()["event"] == "audit_write_outage"
        })
        .collect();
    assert!(
        !outage.is_empty(),
        "an audit_write_outage SYSTEM event in _relay: {:?}",
        relay.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// A damaged relay.db.

/// A data directory with `files` captured files, stopped cleanly (WAL checkpointed).
fn captured(tmp: &Path, files: usize) -> (PathBuf, PathBuf) {
    let (data, watch) = (tmp.join("data"), tmp.join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let config = tmp.join("edge.toml");
    write_config(&config, &data, &watch, reserve_port(), "");
    let edge = Edge::start(&config, &tmp.join("edge.log"));
    for i in 0..files {
        std::fs::write(
            watch.join(format!("f{i:03}.fid")),
            format!("content {i} {}", "y".repeat(i % 300)),
        )
        .unwrap();
    }
    wait_until("captures", Duration::from_secs(60), || {
        data.join("relay.db").exists() && count(&records(&data, TRAIL), "FILE_CREATED") >= files
    });
    edge.stop();
    checkpoint(&data.join("relay.db"));
    (config, data)
}

/// Moves everything from the WAL into the database file, so damage to the file hits live pages.
fn checkpoint(db: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(busy, 0, "checkpoint blocked");
        pool.close().await;
    });
    assert!(
        std::fs::metadata(db.with_extension("db-wal")).map_or(true, |m| m.len() == 0),
        "the WAL is empty after the checkpoint"
    );
}

/// `relay-edge run` on a damaged store: it must exit by itself, nonzero, naming the file.
fn run_refuses(config: &Path, db: &Path, expect: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "relay-edge run kept running on a damaged store ({})",
                db.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "exit code of run: {stderr}");
    assert!(
        stderr.contains(&db.display().to_string()),
        "the error names {}: {stderr}",
        db.display()
    );
    for e in expect {
        assert!(stderr.contains(e), "the error says {e:?}: {stderr}");
    }
    stderr
}

/// Writes garbage over one database page in the middle of the file.
fn corrupt_page(db: &Path) -> u64 {
    let bytes = std::fs::read(db).unwrap();
    let page_size = u64::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let pages = bytes.len() as u64 / page_size;
    assert!(
        pages >= 8,
        "the database should span several pages ({pages})"
    );
    let victim = pages / 2;
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(victim * page_size)).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..page_size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
    victim + 1
}

#[test]
fn a_corrupted_page_stops_run_and_verify_reports_it_without_touching_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = captured(tmp.path(), 150);
    let db = data.join("relay.db");
    let page = corrupt_page(&db);
    let before = sha256_file(&db);

    let stderr = run_refuses(&config, &db, &["damaged", "quick_check"]);
    eprintln!("page {page} corrupted; run said: {stderr}");
    let out = verify(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify: {stdout}");
    assert!(
        stdout.contains(&format!("DAMAGED {}", db.display())),
        "verify names the file: {stdout}"
    );
    assert_eq!(
        sha256_file(&db),
        before,
        "the damaged file is left as it is"
    );
}

#[test]
fn a_truncated_emptied_or_deleted_store_is_refused_and_never_reinitialised() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = captured(tmp.path(), 150);
    let db = data.join("relay.db");
    let whole = std::fs::read(&db).unwrap();

    // Cut in half.
    std::fs::write(&db, &whole[..whole.len() / 2]).unwrap();
    let before = sha256_file(&db);
    run_refuses(&config, &db, &["damaged"]);
    let out = verify(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify: {stdout}");
    assert!(
        stdout.contains(&format!("DAMAGED {}", db.display())),
        "{stdout}"
    );
    assert_eq!(sha256_file(&db), before, "left as it is");

    // Truncated to nothing: SQLite would happily treat it as a new, empty database.
    std::fs::write(&db, b"").unwrap();
    run_refuses(
        &config,
        &db,
        &["empty", "refusing to create a new, empty one"],
    );
    let out = verify(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "verify: {stderr}");
    assert!(
        stderr.contains(&db.display().to_string()) && stderr.contains("empty"),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "still empty");

    // Deleted.
    std::fs::remove_file(&db).unwrap();
    run_refuses(&config, &db, &["missing"]);
    assert!(!db.exists(), "no new relay.db was created");
    let out = verify(&config);
    assert_eq!(out.status.code(), Some(2));
    assert!(!db.exists(), "verify created nothing");
}

// ---------------------------------------------------------------------------------------------
// The wall clock steps backwards during capture.

/// An SNTP server on loopback answering with the host clock plus `offset` microseconds.
struct FakeNtp {
    port: u16,
    offset: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
}

impl FakeNtp {
    fn start(offset_micros: i64) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let offset = Arc::new(AtomicI64::new(offset_micros));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, s) = (offset.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 48 {
                    continue;
                }
                let t = to_ntp(now_micros() + o.load(Ordering::SeqCst));
                let mut reply = [0u8; 48];
                reply[0] = (4 << 3) | 4; // leap 0, version 4, mode 4 (server)
                reply[1] = 2; // stratum
                reply[24..32].copy_from_slice(&buf[40..48]); // originate = their transmit
                reply[32..40].copy_from_slice(&t.to_be_bytes());
                reply[40..48].copy_from_slice(&t.to_be_bytes());
                socket.send_to(&reply, peer).ok();
            }
        });
        Self { port, offset, stop }
    }
}

impl Drop for FakeNtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn offset_of(r: &Record) -> i64 {
    match r.time_source {
        relay_domain::TimeLabel::Validated { offset_micros } => offset_micros,
        other => panic!("seq {} labelled {other}, expected ntp", r.chain_seq),
    }
}

// REQ: R8.5, R9.1
#[test]
fn the_clock_stepping_back_an_hour_mid_capture_is_recorded_and_chain_seq_stays_the_order() {
    const HOUR: i64 = 3_600_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    // The reference first says the host is an hour behind; later it says the host is right, so
    // the relay's validated clock steps back by an hour while it captures.
    let ntp = FakeNtp::start(HOUR);
    let port = reserve_port();
    let config = tmp.path().join("edge.toml");
    write_config(
        &config,
        &data,
        &watch,
        port,
        &format!(
            "time_source = \"ntp\"\nntp_servers = [\"127.0.0.1:{}\"]\nntp_poll_secs = 1\n",
            ntp.port
        ),
    );
    let edge = Edge::start(&config, &tmp.path().join("edge.log"));
    for i in 0..5 {
        std::fs::write(watch.join(format!("ahead-{i}.fid")), format!("ahead {i}")).unwrap();
    }
    wait_until(
        "5 captures on the advanced clock",
        Duration::from_secs(30),
        || data.join("relay.db").exists() && count(&records(&data, TRAIL), "FILE_CREATED") >= 5,
    );
    ntp.offset.store(0, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2500)); // two polls
    for i in 0..5 {
        std::fs::write(watch.join(format!("after-{i}.fid")), format!("after {i}")).unwrap();
    }
    wait_until(
        "5 more captures after the step",
        Duration::from_secs(30),
        || count(&records(&data, TRAIL), "FILE_CREATED") >= 10,
    );
    let steps = metric(port, "relay_clock_steps_back_total");
    edge.stop();

    let all = records(&data, TRAIL);
    assert_eq!(all.len(), 10);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.chain_seq.get(), i as u64 + 1, "chain_seq is the order");
    }
    let (ahead, after) = all.split_at(5);
    for r in ahead {
        let off = offset_of(r);
        assert!(
            (off - HOUR).abs() < 1_000_000,
            "seq {} offset {off}",
            r.chain_seq
        );
    }
    for r in after {
        let off = offset_of(r);
        assert!(off.abs() < 1_000_000, "seq {} offset {off}", r.chain_seq);
    }
    // Later in the chain, earlier on the clock: the labels say why.
    let back = ahead[4].recorded_at.micros_since(after[0].recorded_at);
    assert!(
        back > HOUR - 60_000_000,
        "seq 6 is stamped about an hour before seq 5 ({back} us)"
    );

    let relay = records(&data, "_relay");
    let skews: Vec<serde_json::Value> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "CLOCK_SKEW")
        .map(|r| r.payload.to_value().unwrap())
        .collect();
    assert_eq!(skews.len(), 1, "one step, one CLOCK_SKEW: {skews:?}");
    let p = &skews[0];
    assert_eq!(p["check"], "step_back");
    assert_eq!(p["order"], "chain_seq");
    let ms = p["step_back_ms"].as_i64().unwrap();
    assert!(
        (HOUR / 1000 - 60_000..=HOUR / 1000 + 1_000).contains(&ms),
        "step of about an hour: {p}"
    );
    assert!(p["label"].as_str().unwrap().starts_with("ntp:"), "{p}");
    assert_eq!(steps, Some(1.0), "relay_clock_steps_back_total");

    let out = verify(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("OK      {TRAIL}: 10 records verified")),
        "{stdout}"
    );
}
