//! Witnessed heads (issue 19), attacked from outside as someone with a shell and file access on
//! the workstation would: `relay-edge run` records every notarization in `_relay` (`ANCHORED`),
//! so deleting anchor files is a `verify` finding naming them; dropping an append-only trigger
//! is reported at the next start (STARTUP posture, SYSTEM event, error log) and by `verify`;
//! and a re-chained trail whose anchor checksum was rewritten but whose Merkle root was not is
//! caught by the root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_conformance::test_ports::reserve_port;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use relay_domain::chain::checksum_of;
use relay_domain::ports::{RecordStoreExt, SecretName, SecretProvider, SecretProviderExt};
use relay_domain::{Record, Subject, TrailId};
use relay_local::{FileSecretProvider, SqliteRecordStore};

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");
const TRAIL: &str = "nmr-witness";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(data: &Path, watch: &Path) -> Child {
    start_on(data, watch, 0)
}

fn start_on(data: &Path, watch: &Path, port: u16) -> Child {
    Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args(["--device", TRAIL, "--settle-ms", "200"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RELAY_LOG", "warn")
        .env("RELAY_NOTARY_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay-edge")
}

/// Stops the edge with SIGTERM and returns what it logged.
fn stop(mut child: Child) -> String {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "relay-edge did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

/// A gauge or counter from the edge's `/metrics`, or `None` while it does not answer.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn records(data: &Path, trail: &str) -> Vec<Record> {
    rt().block_on(async {
        let store =
            SqliteRecordStore::open_file(&data.join("relay.db"), Duration::from_secs(10), 1)
                .await
                .unwrap();
        let mut out = Vec::new();
        store
            .for_each_record(&TrailId::new(trail).unwrap(), 1000, |r| {
                out.push(r);
                true
            })
            .await
            .unwrap();
        store.close().await;
        out
    })
}

fn verify(data: &Path) -> (Option<i32>, String) {
    let out: Output = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `sql` on `relay.db` with the sqlite3 shell, as the attacker would.
fn sqlite3(data: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(data.join("relay.db"))
        .arg(sql)
        .output()
        .expect("the sqlite3 shell is installed");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Captures `n` files with a 1 s notary interval, lets the scheduler run, stops.
fn captured(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("in"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..n {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("relay.db").exists() || records(&data, TRAIL).len() < n {
        assert!(Instant::now() < deadline, "capture timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    (tmp, data, watch)
}

/// The anchors `_relay` recorded (`ANCHORED` payloads) of `trail`.
fn recorded_anchors(data: &Path, trail: &str) -> Vec<serde_json::Value> {
    records(data, "_relay")
        .into_iter()
        .filter(|r| r.kind.as_str() == "ANCHORED")
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p["trail"] == trail)
        .collect()
}

fn anchor_file(data: &Path, trail: &str) -> PathBuf {
    data.join(format!("anchors/{trail}.jsonl"))
}

// REQ: R7.2
#[test]
fn deleting_the_anchor_directory_is_a_broken_verdict_naming_the_anchors() {
    let (_tmp, data, _) = captured(4);
    let recorded = recorded_anchors(&data, TRAIL);
    assert!(
        !recorded.is_empty(),
        "the edge records its anchors in _relay"
    );
    assert!(!recorded_anchors(&data, "_relay").is_empty());
    // Every recorded anchor names where the notary put it.
    let file = anchor_file(&data, TRAIL);
    assert!(
        recorded
            .iter()
            .all(|a| a["location"] == file.display().to_string()),
        "{recorded:?}"
    );
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(0), "{stdout}");

    std::fs::remove_dir_all(data.join("anchors")).unwrap();
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    for trail in [TRAIL, "_relay"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("BROKEN  {trail}:")))
            .unwrap_or_else(|| panic!("no BROKEN line for {trail}: {stdout}"));
        assert!(line.contains("missing from the notary"), "{line}");
        assert!(
            line.contains(&anchor_file(&data, trail).display().to_string()),
            "the finding names the anchor file: {line}"
        );
    }
    // Each recorded anchor of the capture trail is named by its seq.
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("BROKEN  {TRAIL}:")))
        .unwrap();
    assert!(
        line.contains(&format!("{} notary anchor(s)", recorded.len())),
        "{line}"
    );
    for a in &recorded {
        assert!(
            line.contains(&format!("at chain_seq {} ", a["seq"])),
            "{a}: {line}"
        );
    }
}

// REQ: R7.2
#[test]
fn deleting_one_anchor_file_breaks_only_that_trail() {
    let (_tmp, data, _) = captured(3);
    let file = anchor_file(&data, TRAIL);
    std::fs::remove_file(&file).unwrap();
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("BROKEN  {TRAIL}:"))
                && l.contains(&file.display().to_string())
                && l.contains("missing from the notary")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("OK      _relay:")),
        "{stdout}"
    );
}

// REQ: R7.2
#[test]
fn deleting_a_trail_and_its_anchors_is_still_named_by_relay() {
    let (_tmp, data, _) = captured(3);
    // Rows and anchors gone: the trail is known only to _relay's record of its anchors.
    sqlite3(
        &data,
        &format!(
            "DROP TRIGGER event_log_no_delete; DELETE FROM event_log WHERE trail_id = '{TRAIL}';"
        ),
    );
    std::fs::remove_file(anchor_file(&data, TRAIL)).unwrap();
    assert!(records(&data, TRAIL).is_empty());
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("BROKEN  {TRAIL}:"))
                && l.contains("missing from the notary")),
        "{stdout}"
    );
    assert!(
        stdout.contains("MISSING append-only enforcement")
            && stdout.contains("event_log_no_delete"),
        "{stdout}"
    );
}

// REQ: R1.4
#[test]
fn a_dropped_trigger_is_reported_at_start_and_by_verify() {
    let (_tmp, data, watch) = captured(2);
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("OK      append-only enforcement"),
        "{stdout}"
    );

    sqlite3(&data, "DROP TRIGGER event_log_no_update;");
    let startups_before = records(&data, "_relay")
        .iter()
        .filter(|r| r.kind.as_str() == "STARTUP")
        .count();
    let port = reserve_port();
    let child = start_on(&data, &watch, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let system = loop {
        let relay = records(&data, "_relay");
        let found = relay.iter().find(|r| {
            r.kind.as_str() == "SYSTEM"
                && r.payload.to_value().unwrap()["event"] == "APPEND_ONLY_ENFORCEMENT_MISSING"
        });
        if let Some(r) = found {
            break r.payload.to_value().unwrap();
        }
        assert!(Instant::now() < deadline, "no SYSTEM event: {relay:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The edge keeps capturing (documented choice) while it reports the gap.
    std::fs::write(
        watch.join("after.fid"),
        "captured after the trigger was dropped",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while records(&data, TRAIL).len() < 3 {
        assert!(Instant::now() < deadline, "capture stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(port, "relay_append_only_missing"), Some(1.0));
    let log = stop(child);

    let missing = system["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{system}");
    assert!(
        missing[0].as_str().unwrap().contains("event_log_no_update"),
        "{system}"
    );
    let relay = records(&data, "_relay");
    let startups: Vec<_> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "STARTUP")
        .collect();
    assert_eq!(startups.len(), startups_before + 1);
    let posture = startups.last().unwrap().payload.to_value().unwrap();
    assert_eq!(posture["append_only"]["enforced"], false, "{posture}");
    assert!(
        posture["append_only"]["missing"][0]
            .as_str()
            .unwrap()
            .contains("event_log_no_update"),
        "{posture}"
    );
    // The earlier start recorded enforcement in place.
    let first = startups.first().unwrap().payload.to_value().unwrap();
    assert_eq!(first["append_only"]["enforced"], true, "{first}");
    assert!(
        log.contains("APPEND-ONLY ENFORCEMENT IS MISSING") && log.contains("event_log_no_update"),
        "{log}"
    );

    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("MISSING append-only enforcement")
                && l.contains("event_log_no_update")),
        "{stdout}"
    );
    // The chains themselves hold: the finding is the missing control, not a record.
    assert!(!stdout.contains("BROKEN"), "{stdout}");
}

// REQ: R7.2
#[test]
fn a_rechained_trail_with_a_rewritten_anchor_checksum_fails_on_the_merkle_root() {
    let (_tmp, data, _) = captured(6);
    let file = anchor_file(&data, TRAIL);
    let anchors: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(anchors.iter().all(|a| a["merkle_root"].is_string()));

    // The attacker reads the real key, rewrites record 3 and re-chains everything after it.
    let key = rt().block_on(async {
        let secrets = FileSecretProvider::open(data.join("secrets")).unwrap();
        let ring = secrets.key_ring(&SecretName::trail_hmac()).await.unwrap();
        ring.current().unwrap().clone()
    });
    let mut all = records(&data, TRAIL);
    let mut sql = String::from("DROP TRIGGER event_log_no_update;");
    let mut prev = all[1].checksum;
    for r in all.iter_mut().skip(2) {
        if r.chain_seq.get() == 3 {
            r.subject = Some(Subject::new("forged.fid").unwrap());
        }
        r.prev_checksum = prev;
        r.checksum = checksum_of(r, &key);
        prev = r.checksum;
        sql.push_str(&format!(
            "UPDATE event_log SET subject = '{}', prev_checksum = '{}', checksum = '{}' \
             WHERE trail_id = '{TRAIL}' AND chain_seq = {};",
            r.subject.as_ref().unwrap().as_str(),
            r.prev_checksum.to_hex(),
            r.checksum.to_hex(),
            r.chain_seq.get()
        ));
    }
    sqlite3(&data, &sql);
    // ... and rewrites each anchor's checksum to the new record, leaving its Merkle root.
    let rewritten: Vec<String> = anchors
        .iter()
        .map(|a| {
            let mut a = a.clone();
            let seq = a["seq"].as_u64().unwrap();
            let record = all.iter().find(|r| r.chain_seq.get() == seq).unwrap();
            a["checksum"] = serde_json::Value::String(record.checksum.to_hex());
            serde_json::to_string(&a).unwrap()
        })
        .collect();
    std::fs::write(&file, rewritten.join("\n") + "\n").unwrap();

    let first_anchor_at_or_after_3 = anchors
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .filter(|s| *s >= 3)
        .min()
        .unwrap();
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "BROKEN  {TRAIL}: first bad chain_seq {first_anchor_at_or_after_3}: Merkle root mismatch"
        )),
        "{stdout}"
    );
}

// REQ: R7.1
#[test]
fn an_idle_relay_does_not_anchor_its_own_anchored_events_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("in"));
    std::fs::create_dir_all(&watch).unwrap();
    let port = reserve_port();
    let child = start_on(&data, &watch, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(port, "relay_records_appended_total").is_none() {
        assert!(Instant::now() < deadline, "the edge did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Several 1 s rounds with nothing to capture.
    std::thread::sleep(Duration::from_secs(5));
    stop(child);
    let relay = records(&data, "_relay");
    let own = |r: &Record| {
        r.kind.as_str() == "ANCHORED" && r.payload.to_value().unwrap()["trail"] == "_relay"
    };
    // Each anchor of `_relay` after the first covers at least one record that is not the
    // ANCHORED event of its own previous anchor: idle rounds anchor nothing.
    let mut since_last = None;
    for r in &relay {
        if own(r) {
            if let Some(n) = since_last {
                assert!(n > 0, "_relay re-anchored with nothing new: {relay:?}");
            }
            since_last = Some(0);
        } else if let Some(n) = since_last.as_mut() {
            *n += 1;
        }
    }
    let anchors_of_relay = relay.iter().filter(|r| own(r)).count();
    assert!(
        anchors_of_relay <= 3,
        "{anchors_of_relay} anchors of an idle _relay in ~6 rounds: {relay:?}"
    );
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(0), "{stdout}");
}

/// The anchors in the notary file of `trail`, as JSON.
fn anchor_lines(data: &Path, trail: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(anchor_file(data, trail))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Two runs of the edge, capturing in each: every anchor is version 2 with a signed checkpoint,
/// the second run's first anchor links to the first run's last one (the tree resumed from the
/// stored frontier across the restart), and verify reports the checkpoints and proofs as holding.
/// Then an attacker with a shell, who also read the seal key, appends an anchor that says the
/// trail went back to 3 records (true checksum and tree head of record 3, signed with the real
/// key, "linked" to the newest anchor): the consistency check refuses it and names it.
// REQ: R7.2
#[test]
fn a_forged_anchor_that_shrinks_the_tree_fails_the_consistency_check() {
    let (_tmp, data, watch) = captured(4);
    let child = start(&data, &watch);
    for i in 4..8 {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while records(&data, TRAIL).len() < 8 {
        assert!(Instant::now() < deadline, "capture timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);

    let anchors = anchor_lines(&data, TRAIL);
    assert!(anchors.len() >= 2, "{anchors:?}");
    for a in &anchors {
        assert_eq!(a["version"], 2, "{a}");
        let note = a["checkpoint"].as_str().unwrap();
        assert!(
            note.starts_with(&format!("gims-relay/{TRAIL}\n{}\n", a["seq"])),
            "{note}"
        );
        assert!(note.contains("\n\n\u{2014} gims-relay-seal-"), "{note}");
    }
    for pair in anchors.windows(2) {
        assert_eq!(
            pair[1]["consistency"]["from_seq"], pair[0]["seq"],
            "{pair:?}"
        );
        assert_eq!(pair[1]["consistency"]["from_root"], pair[0]["merkle_root"]);
    }
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("OK      {TRAIL}:")))
        .unwrap();
    assert!(
        line.ends_with(&format!(
            "{n} signed checkpoint(s) verified, {} consistency proof(s) hold",
            anchors.len() - 1,
            n = anchors.len()
        )),
        "{line}"
    );

    // The forgery: record 3's real checksum and tree head, signed with the real seal key.
    let newest = anchors.last().unwrap().clone();
    let stored = records(&data, TRAIL);
    let mut acc = relay_domain::merkle::MerkleAccumulator::new();
    let mut buf = Vec::new();
    for r in &stored[..3] {
        acc.push_leaf_hash(relay_domain::merkle::record_leaf_hash(r, &mut buf));
    }
    let seal = rt().block_on(async {
        let secrets = FileSecretProvider::open(data.join("secrets")).unwrap();
        let seed = secrets.current(&SecretName::export_seal()).await.unwrap();
        relay_domain::export::SealKey::from_seed(seed.expose()).unwrap()
    });
    let mut forged: relay_domain::ports::Anchor = serde_json::from_value(newest.clone()).unwrap();
    forged.seq = stored[2].chain_seq;
    forged.checksum = stored[2].checksum;
    forged.merkle_root = Some(acc.root());
    forged.frontier = acc.frontier().to_vec();
    forged.anchored_at =
        relay_domain::Timestamp::from_unix_micros(forged.anchored_at.unix_micros() + 1_000_000)
            .unwrap();
    forged.consistency = Some(relay_domain::ports::ConsistencyLink {
        from_seq: serde_json::from_value(newest["seq"].clone()).unwrap(),
        from_root: serde_json::from_value(newest["merkle_root"].clone()).unwrap(),
        proof: Vec::new(),
    });
    forged.checkpoint =
        Some(relay_domain::anchor_history::expected_checkpoint(&forged).sign(&seal));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(anchor_file(&data, TRAIL))
        .unwrap();
    writeln!(file, "{}", serde_json::to_string(&forged).unwrap()).unwrap();
    drop(file);

    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "BROKEN  {TRAIL}: first bad chain_seq 3: 1 notary anchor(s) contradict the trail's anchor history: anchor at chain_seq 3"
        )) && stdout.contains(&format!(
            "the consistency proof from the anchor at chain_seq {} does not hold: the tree shrank or was rewritten",
            newest["seq"]
        )),
        "{stdout}"
    );
}

/// A backup of the store restored while the notary keeps its newer anchors (as a write-once
/// notary does: the restored data directory cannot take them back) is reported at the next
/// start (a `WITNESS_AHEAD_OF_STORE` SYSTEM event naming the missing seqs, an error log) and by
/// verify (BROKEN), on an edge that does not forward.
// REQ: R7.2
#[test]
fn an_old_backup_restored_under_newer_anchors_is_reported_at_start_and_by_verify() {
    let (tmp, data, watch) = captured(3);
    let old_head = records(&data, TRAIL).len() as u64;
    let backup = tmp.path().join("relay.db.backup");
    std::fs::copy(data.join("relay.db"), &backup).unwrap();
    // More captures, anchored, then the old store is put back under the same anchors.
    let child = start(&data, &watch);
    for i in 3..6 {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while records(&data, TRAIL).len() < 6 {
        assert!(Instant::now() < deadline, "capture timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(child);
    let anchored = anchor_lines(&data, TRAIL)
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(anchored > old_head, "{anchored} <= {old_head}");
    for suffix in ["", "-wal", "-shm"] {
        match std::fs::remove_file(data.join(format!("relay.db{suffix}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
    }
    std::fs::copy(&backup, data.join("relay.db")).unwrap();
    // The inbox as the old store knew it: the newer files go.
    for i in 3..6 {
        std::fs::remove_file(watch.join(format!("f{i}.fid"))).unwrap();
    }

    let child = start(&data, &watch);
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let found = records(&data, "_relay")
            .into_iter()
            .map(|r| r.payload.to_value().unwrap())
            .find(|p| p["event"] == "WITNESS_AHEAD_OF_STORE" && p["trail"] == TRAIL);
        if let Some(event) = found {
            break event;
        }
        assert!(Instant::now() < deadline, "no WITNESS_AHEAD_OF_STORE event");
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = stop(child);
    assert_eq!(event["local_seq"], old_head, "{event}");
    assert_eq!(event["anchored_seq"], anchored, "{event}");
    assert_eq!(
        event["missing"],
        format!("{}..={anchored}", old_head + 1),
        "{event}"
    );
    assert!(
        log.contains("A WITNESS HOLDS MORE OF THIS TRAIL THAN THE STORE"),
        "{log}"
    );
    let (code, stdout) = verify(&data);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains(&format!("BROKEN  {TRAIL}")), "{stdout}");
}
