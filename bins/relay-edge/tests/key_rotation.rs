//! Key rotation end to end (R1.3): `relay-edge keys rotate` twice between captures gives a trail
//! spanning three key ids that `relay-edge verify` accepts, and tampering a record signed under
//! the oldest key is still detected and named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use relay_domain::Record;

fn keys(data: &Path, action: &str) -> Output {
    Command::new(BIN)
        .args(["keys", action, "--data-dir"])
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

/// Runs the relay, writes two new files and stops it once `total` FILE_CREATED records exist.
fn capture_round(data: &Path, watch: &Path, round: usize, total: usize) {
    let child = start(data, watch);
    for i in 0..2 {
        std::fs::write(
            watch.join(format!("round{round}-{i}.fid")),
            format!("round {round} file {i}"),
        )
        .unwrap();
    }
    wait_for_records(data, "FILE_CREATED", total, Duration::from_secs(30));
    stop(child);
}

// REQ: R1.3
#[test]
fn a_trail_spanning_three_key_ids_verifies_and_tamper_under_the_oldest_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();

    capture_round(&data, &watch, 0, 2);
    let first = keys(&data, "rotate");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("rotated trail key"));
    capture_round(&data, &watch, 1, 4);
    let second = keys(&data, "rotate");
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    capture_round(&data, &watch, 2, 6);

    let list = keys(&data, "list");
    assert_eq!(list.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    let listed_ids: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed_ids.len(), 3, "{listed}");
    assert!(
        listed.lines().last().unwrap().ends_with("(current)"),
        "{listed}"
    );

    let trail = records(&data, TRAIL);
    let used: Vec<String> = trail.iter().map(|r| r.key_id.to_string()).collect();
    let distinct: BTreeSet<&String> = used.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "the trail must span three key ids: {used:?}"
    );
    // Oldest first: the rounds were signed with the keys in the order `keys list` gives.
    assert_eq!(used[0], listed_ids[0]);
    assert_eq!(used[2], listed_ids[1]);
    assert_eq!(used[4], listed_ids[2]);
    let relay = records(&data, "_relay");
    let rotations: Vec<&Record> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "KEY_ROTATED")
        .collect();
    assert_eq!(rotations.len(), 2);
    assert_eq!(
        rotations[1].key_id.as_str(),
        listed_ids[2],
        "KEY_ROTATED is signed with the new key"
    );

    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "verify failed: {stdout}");
    assert!(
        stdout.contains(&format!("OK      {TRAIL}: 6 records verified")),
        "{stdout}"
    );

    // Record 1 was signed under the oldest key: editing it must still be caught and named.
    assert_eq!(trail[0].key_id.as_str(), listed_ids[0]);
    tamper(&data, 1, "subject = 'forged.fid'");
    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify must fail: {stdout}");
    assert!(
        stdout.contains(&format!("BROKEN  {TRAIL}: first bad chain_seq 1")),
        "verify must name seq 1: {stdout}"
    );
}

#[test]
fn keys_on_a_missing_data_dir_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = keys(&tmp.path().join("nothing"), "rotate");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("relay.db not found"));
}
