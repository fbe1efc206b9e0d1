//! Attribution of captures as processes and accounts really are (R2.1): `relay-edge run` runs
//! as a system account (uid 65534, `nobody`) the way the shipped system unit runs it as
//! `relay`, a person's account (`relay-analyst-test`, created here when missing) writes a file
//! into the watched folder under its own uid, and the trail names that person (`file_owner`).
//! A file owned by a system account, with no console session to fall back on, is still
//! recorded, as the service identity with `"unattributed": true`, counted in `/metrics`.
//!
//! Switching uids needs root (as in CI); elsewhere the tests skip with the reason, unless
//! `RELAY_REQUIRE_SERVICES=1`, under which they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{BIN, TRAIL, records, stop};

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_domain::{ActorSource, Record};

/// The person's account the tests write files as (a uid in UID_MIN..=UID_MAX, a login shell).
const ANALYST: &str = "relay-analyst-test";
/// The system account the edge runs as (`nobody`: above UID_MAX, `nologin` shell).
const SERVICE_UID: u32 = 65534;

/// Says why a test cannot run here; under `RELAY_REQUIRE_SERVICES=1` a missing prerequisite
/// fails the test instead.
fn skip(reason: &str) {
    if std::env::var("RELAY_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("RELAY_REQUIRE_SERVICES=1 but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The analyst's (uid, gid), creating the account when running as root (idempotent: an
/// account created meanwhile by a parallel test, or by `.ci/services.sh`, is used as is).
fn analyst() -> Option<(u32, u32)> {
    let lookup = || {
        nix::unistd::User::from_name(ANALYST)
            .unwrap()
            .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
    };
    if !is_root() {
        return lookup();
    }
    // One creator at a time across the test processes (nextest runs each test in its own), and
    // nobody goes on while another is half-way through creating it.
    let out = Command::new("flock")
        .arg("/tmp/relay-analyst-test.lock")
        .args(["sh", "-c"])
        .arg(format!(
            "getent passwd {ANALYST} >/dev/null || \
             useradd --no-create-home --shell /bin/sh --user-group {ANALYST}"
        ))
        .output()
        .expect("flock and useradd run");
    let ids = lookup();
    assert!(
        ids.is_some(),
        "useradd {ANALYST} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ids
}

/// Runs `sh -c script` as `uid:gid` (no supplementary groups, umask 022: files others may
/// read, as an instrument's are), as that user would.
fn as_user(uid: u32, gid: u32, script: &str) {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "sh", "-c"])
        .arg(format!("umask 022; {script}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch tree the service account can reach: `data` (owner-only, owned by it) and a
/// watched folder anyone may write into, as a shared instrument folder is.
struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    watch: PathBuf,
}

impl Site {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (data, watch) = (tmp.path().join("data"), tmp.path().join("instrument"));
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(
            &data,
            Some(nix::unistd::Uid::from_raw(SERVICE_UID)),
            Some(nix::unistd::Gid::from_raw(SERVICE_UID)),
        )
        .unwrap();
        std::fs::create_dir(&watch).unwrap();
        std::fs::set_permissions(&watch, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Self {
            _tmp: tmp,
            data,
            watch,
        }
    }

    /// `relay-edge run` as the service account (uid and gid 65534), with the default
    /// `attribution` (auto). Returns the child and its HTTP address (from its log).
    fn start_as_service(&self) -> (Child, String) {
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={SERVICE_UID}"))
            .arg(format!("--regid={SERVICE_UID}"))
            .arg("--clear-groups")
            .arg(BIN)
            .args(["run", "--data-dir"])
            .arg(&self.data)
            .arg("--watch")
            .arg(&self.watch)
            .args(["--device", TRAIL, "--settle-ms", "300"])
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("RELAY_LOG", "info")
            .env("HOME", "/nonexistent")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay-edge under setpriv");
        let addr = http_addr(&mut child);
        (child, addr)
    }
}

/// Reads the edge's log until the "relay-edge running" line and returns its `http` address;
/// the rest of the log is drained in the background so the edge never blocks on a full pipe.
fn http_addr(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    // Nobody is listening any more; keep draining.
                    continue;
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "relay-edge did not report running within 60 s:\n{}",
                seen.join("\n")
            )
        });
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "relay-edge running"
        {
            return v["http"].as_str().unwrap().to_owned();
        }
        seen.push(line);
    }
}

/// Waits (bounded) until the trail holds a `FILE_CREATED` for each of `subjects`.
fn wait_for_subjects(data: &Path, subjects: &[&str]) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = records(data, TRAIL);
        let done = subjects.iter().all(|s| {
            all.iter().any(|r| {
                r.kind.as_str() == "FILE_CREATED"
                    && r.subject.as_ref().is_some_and(|x| x.as_str() == *s)
            })
        });
        if done {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {subjects:?}; have {:?}",
            all.iter()
                .map(|r| (r.kind.as_str().to_owned(), r.subject.clone()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn created<'a>(all: &'a [Record], subject: &str) -> &'a Record {
    all.iter()
        .find(|r| {
            r.kind.as_str() == "FILE_CREATED"
                && r.subject.as_ref().is_some_and(|s| s.as_str() == subject)
        })
        .unwrap()
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of a counter in the `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// REQ: R2.1, R2.2
#[test]
fn a_service_account_relay_attributes_files_to_their_owner_or_records_them_unattributed() {
    if !is_root() {
        skip("switching to other uids (setpriv) needs root");
        return;
    }
    let Some((analyst_uid, analyst_gid)) = analyst() else {
        skip(&format!("the account {ANALYST} does not exist"));
        return;
    };
    let site = Site::new();
    let (child, addr) = site.start_as_service();

    as_user(
        analyst_uid,
        analyst_gid,
        &format!("printf 'spectrum' > {}/analyst.fid", site.watch.display()),
    );
    as_user(
        SERVICE_UID,
        SERVICE_UID,
        &format!(
            "printf 'daemon output' > {}/daemon.log",
            site.watch.display()
        ),
    );
    let all = wait_for_subjects(&site.data, &["analyst.fid", "daemon.log"]);
    let startup = records(&site.data, "_relay")
        .into_iter()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap();
    let posture = startup.payload.to_value().unwrap();
    let attribution = &posture["attribution"];
    assert_eq!(attribution["policy"], "auto", "{posture:#}");
    assert_eq!(attribution["mode"], "service", "{posture:#}");
    assert_eq!(attribution["process_user"]["uid"], SERVICE_UID);
    assert_eq!(attribution["process_user"]["person"], false);
    let console_person = attribution["console_session"]["person"] == true;
    // The counter follows the capture's acknowledgement: wait for it, bounded.
    let expected_unattributed = if console_person { 0.0 } else { 1.0 };
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = get(&addr, "/metrics");
        if metric(&text, "relay_capture_unattributed_total") == Some(expected_unattributed) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "relay_capture_unattributed_total never reached {expected_unattributed}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    stop(child);

    // The person who wrote the file, not the account running the relay.
    let analyst = created(&all, "analyst.fid");
    let p = analyst.payload.to_value().unwrap();
    assert_eq!(analyst.actor.as_str(), ANALYST, "{p}");
    assert_eq!(analyst.actor_source, ActorSource::FileOwner, "{p}");
    assert_eq!(p["owner"], ANALYST, "{p}");
    assert_eq!(p["owner_uid"], analyst_uid, "{p}");
    assert_eq!(p["process_uid"], SERVICE_UID, "{p}");
    assert_eq!(
        p["process_user"], attribution["process_user"]["name"],
        "{p}"
    );
    assert!(p.get("unattributed").is_none(), "{p}");

    // A file of a system account: the console session's user if a person is logged in at the
    // console, else (as on CI, which has none) the service identity, flagged.
    let daemon = created(&all, "daemon.log");
    let p = daemon.payload.to_value().unwrap();
    assert_eq!(p["owner_uid"], SERVICE_UID, "{p}");
    let console = &attribution["console_session"];
    if console_person {
        assert_eq!(daemon.actor_source, ActorSource::ConsoleSession, "{p}");
        assert_eq!(daemon.actor.as_str(), console["name"].as_str().unwrap());
        assert!(p.get("unattributed").is_none(), "{p}");
    } else {
        assert_eq!(daemon.actor_source, ActorSource::Service, "{p}");
        assert_eq!(
            daemon.actor.as_str(),
            attribution["process_user"]["name"].as_str().unwrap()
        );
        assert_eq!(p["unattributed"], true, "{p}");
        assert_eq!(
            metric(&metrics, "relay_capture_unattributed_total"),
            Some(1.0),
            "{metrics}"
        );
        let warned = attribution["warnings"].as_array().unwrap();
        assert!(
            warned
                .iter()
                .any(|w| w.as_str().unwrap().contains("unattributed")),
            "the start-up posture warns of unattributed captures: {posture:#}"
        );
    }

    // The new sources verify and export like any other: the chain, a sealed package, and the
    // independent Python verifier of the package format.
    let verify = common::verify(&site.data);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let package = site._tmp.path().join("package");
    let out = Command::new(BIN)
        .args(["export", "--trail", TRAIL, "--data-dir"])
        .arg(&site.data)
        .arg("--out")
        .arg(&package)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(package.join("records.csv")).unwrap();
    assert!(csv.contains(",file_owner,"), "{csv}");
    assert!(
        csv.contains("\"\"owner\"\":\"\"relay-analyst-test\"\""),
        "{csv}"
    );
    let python = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec/verify_package.py"))
        .arg(&package)
        .output()
        .unwrap();
    // 3: intact, sealed by a key this test did not pin (it pins none).
    let said = String::from_utf8_lossy(&python.stdout);
    assert_eq!(
        python.status.code(),
        Some(3),
        "verify_package.py: {said}{}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert!(said.contains("VERDICT: INTACT"), "{said}");
}

// REQ: R2.1
#[test]
fn a_relay_running_as_a_person_keeps_attributing_to_that_person() {
    if !is_root() {
        skip("switching to other uids (setpriv) needs root");
        return;
    }
    let Some((analyst_uid, analyst_gid)) = analyst() else {
        skip(&format!("the account {ANALYST} does not exist"));
        return;
    };
    // Session mode: the relay runs as the analyst (as the user unit or autostart entry starts
    // it); a file someone else owns is still the session's, with the owner beside it.
    let site = Site::new();
    nix::unistd::chown(
        &site.data,
        Some(nix::unistd::Uid::from_raw(analyst_uid)),
        Some(nix::unistd::Gid::from_raw(analyst_gid)),
    )
    .unwrap();
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={analyst_uid}"))
        .arg(format!("--regid={analyst_gid}"))
        .arg("--clear-groups")
        .arg(BIN)
        .args(["run", "--data-dir"])
        .arg(&site.data)
        .arg("--watch")
        .arg(&site.watch)
        .args(["--device", TRAIL, "--settle-ms", "300"])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RELAY_LOG", "info")
        .env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    http_addr(&mut child);
    as_user(
        SERVICE_UID,
        SERVICE_UID,
        &format!("printf 'x' > {}/other.fid", site.watch.display()),
    );
    let all = wait_for_subjects(&site.data, &["other.fid"]);
    stop(child);
    let r = created(&all, "other.fid");
    let p = r.payload.to_value().unwrap();
    assert_eq!(r.actor.as_str(), ANALYST, "{p}");
    assert_eq!(r.actor_source, ActorSource::OsSession, "{p}");
    assert_eq!(p["owner_uid"], SERVICE_UID, "{p}");
    assert_eq!(p["process_user"], ANALYST, "{p}");
    assert!(p.get("unattributed").is_none(), "{p}");
}
