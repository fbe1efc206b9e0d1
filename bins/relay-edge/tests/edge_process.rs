//! End-to-end tests of the `relay-edge` binary as a process: capture into a verifiable chain,
//! tamper detection by `verify`, and no loss or duplication across SIGKILLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_domain::Record;
use sha2::{Digest, Sha256};

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn payload(r: &Record) -> serde_json::Value {
    r.payload.to_value().unwrap()
}

// REQ: R6.1, R6.5
#[test]
fn captures_42_files_including_a_large_and_a_slow_one_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(watch.join("deep/nested/run7")).unwrap();
    let child = start(&data, &watch);

    let mut expected = BTreeMap::new();
    for i in 0..40usize {
        let p = watch.join(format!("spectrum-{i:02}.fid"));
        let body: Vec<u8> = (0..(i * 997 + 1)).map(|b| (b * 31 + i) as u8).collect();
        std::fs::write(&p, body).unwrap();
        expected.insert(format!("spectrum-{i:02}.fid"), p);
    }
    let big = watch.join("deep/nested/run7/fid.bin");
    std::fs::write(
        &big,
        (0..20 * 1024 * 1024)
            .map(|b: usize| (b % 253) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    expected.insert("deep/nested/run7/fid.bin".into(), big);
    // Written slowly over 3 s: must be recorded once, complete.
    let slow = watch.join("slow.ser");
    {
        let mut f = std::fs::File::create(&slow).unwrap();
        for chunk in 0..12 {
            f.write_all(&[chunk as u8; 4096]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    expected.insert("slow.ser".into(), slow);

    wait_for_records(&data, "FILE_CREATED", 42, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500)); // a duplicate would show up here
    stop(child);
    let all = records(&data, TRAIL);
    let created: Vec<&Record> = all
        .iter()
        .filter(|r| r.kind.as_str() == "FILE_CREATED")
        .collect();
    assert_eq!(created.len(), 42, "exactly one FILE_CREATED per file");
    for r in created {
        let subject = r.subject.as_ref().unwrap().as_str().to_owned();
        let path = expected
            .get(&subject)
            .unwrap_or_else(|| panic!("unexpected subject {subject}"));
        let p = payload(r);
        assert_eq!(p["sha256"].as_str().unwrap(), sha256_hex(path), "{subject}");
        assert_eq!(
            p["size"].as_u64().unwrap(),
            std::fs::metadata(path).unwrap().len(),
            "{subject}"
        );
        assert_eq!(r.project.as_ref().unwrap().as_str(), "PRJ-E2E");
        assert_eq!(r.device.as_str(), TRAIL);
        assert!(!r.actor.as_str().is_empty());
    }
    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "verify failed: {stdout}");
    assert!(
        stdout.contains(&format!("OK      {TRAIL}: 42 records verified")),
        "{stdout}"
    );
    let relay = records(&data, "_relay");
    assert_eq!(relay.first().unwrap().kind.as_str(), "STARTUP");
    // SHUTDOWN, then only the final round's ANCHORED records, the last one `_relay`'s own,
    // whose anchor covers everything before it (SHUTDOWN included).
    let shutdown = relay
        .iter()
        .rposition(|r| r.kind.as_str() == "SHUTDOWN")
        .unwrap();
    assert!(
        relay[shutdown + 1..]
            .iter()
            .all(|r| r.kind.as_str() == "ANCHORED")
            && relay.len() > shutdown + 1,
        "{relay:?}"
    );
    let own = relay.last().unwrap().payload.to_value().unwrap();
    assert_eq!(own["trail"], "_relay");
    assert_eq!(own["seq"], relay.len() as u64 - 1);
}

fn captured_data_dir(files: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..files {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    wait_for_records(&data, "FILE_CREATED", files, Duration::from_secs(30));
    stop(child);
    (tmp, data)
}

// REQ: R1.2
#[test]
fn verify_names_the_edited_record_after_triggers_are_dropped() {
    for (seq, edit) in [
        (3u64, "subject = 'forged.fid'"),
        (1, "actor = 'mallory'"),
        (5, "payload = replace(payload, '\"size\":9', '\"size\":8')"),
        (4, "recorded_at = '2020-01-01T00:00:00.000000Z'"),
    ] {
        let (_tmp, data) = captured_data_dir(6);
        assert_eq!(verify(&data).status.code(), Some(0));
        tamper(&data, seq, edit);
        let out = verify(&data);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "verify must fail after `{edit}`: {stdout}"
        );
        assert!(
            stdout.contains(&format!("BROKEN  {TRAIL}: first bad chain_seq {seq}")),
            "verify must name seq {seq} after `{edit}`: {stdout}"
        );
    }
}

#[test]
fn verify_reports_a_missing_data_dir_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = verify(&tmp.path().join("nothing-here"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("relay.db not found"), "{stderr}");
}

// REQ: R6.2
#[test]
fn sigkill_during_bursts_loses_and_duplicates_nothing_over_20_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let mut written = BTreeSet::new();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for round in 0..20 {
        let mut child = start(&data, &watch);
        // A burst of files while the relay runs; kill it at a random moment inside the burst.
        let kill_after = 5 + (next() % 25) as usize;
        for i in 0..30 {
            let name = format!("r{round:02}/f{i:02}.fid");
            std::fs::create_dir_all(watch.join(format!("r{round:02}"))).unwrap();
            std::fs::write(
                watch.join(&name),
                format!("round {round} file {i} {}", next()),
            )
            .unwrap();
            written.insert(name);
            if i == kill_after {
                std::thread::sleep(Duration::from_millis(next() % 700));
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
    // A final clean run reconciles everything written while the relay was dead.
    let child = start(&data, &watch);
    wait_for_records(
        &data,
        "FILE_CREATED",
        written.len(),
        Duration::from_secs(90),
    );
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    let all = records(&data, TRAIL);

    let mut created = BTreeMap::<String, usize>::new();
    let mut failed = BTreeSet::new();
    for r in &all {
        let subject = r
            .subject
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        match r.kind.as_str() {
            "FILE_CREATED" => *created.entry(subject).or_default() += 1,
            "CAPTURE_FAILED" => {
                failed.insert(subject);
            }
            other => panic!("unexpected {other} for {subject}"),
        }
    }
    let dupes: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicated captures: {dupes:?}");
    let lost: Vec<_> = written
        .iter()
        .filter(|f| !created.contains_key(*f) && !failed.contains(*f))
        .collect();
    assert!(
        lost.is_empty(),
        "files neither captured nor CAPTURE_FAILED: {lost:?}"
    );
    let out = verify(&data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
