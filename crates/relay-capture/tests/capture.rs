//! Capture end to end: real folders, the real watcher, an in-memory trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::time::Duration;

use common::*;
use relay_capture::Capture;

// REQ: R6.1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_every_completed_file_once_with_its_sha256() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();

    let mut expected: BTreeMap<String, (String, u64)> = BTreeMap::new();
    // A file written slowly over 3 s: it must be recorded once, complete.
    let slow_path = root.path().join("slow.fid");
    let slow_writer = std::thread::spawn(move || {
        let mut f = fs::File::create(&slow_path).unwrap();
        let mut all = Vec::new();
        for i in 0..60u64 {
            let chunk = content(1000 + i, 4096);
            f.write_all(&chunk).unwrap();
            f.flush().unwrap();
            all.extend_from_slice(&chunk);
            std::thread::sleep(Duration::from_millis(50));
        }
        all
    });
    // 40 files of varied sizes in a few folders.
    for i in 0..40u64 {
        let len = ((i * 7919) % 300_000) as usize + (i as usize % 3);
        let data = content(i, len);
        let rel = format!("exp{}/pdata/{}/file{i:02}.dat", i % 4, i % 2);
        let path = root.path().join(&rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &data).unwrap();
        expected.insert(rel, (sha256_hex(&data), data.len() as u64));
    }
    // One 20 MB file deep in a nested folder.
    let big = content(4242, 20 * 1024 * 1024);
    let big_rel = "deep/nested/folder/big.ser".to_owned();
    fs::create_dir_all(root.path().join("deep/nested/folder")).unwrap();
    fs::write(root.path().join(&big_rel), &big).unwrap();
    expected.insert(big_rel, (sha256_hex(&big), big.len() as u64));
    let slow = slow_writer.join().unwrap();
    expected.insert("slow.fid".into(), (sha256_hex(&slow), slow.len() as u64));
    assert_eq!(expected.len(), 42);

    let stats = capture
        .wait_until(|s| s.captured >= 42, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.wait_idle(WAIT).await.unwrap();
    // Nothing more turns up after a few more settle windows.
    tokio::time::sleep(SETTLE * 4).await;
    capture.wait_idle(WAIT).await.unwrap();
    let final_stats = capture.shutdown().await.unwrap();
    assert_eq!(final_stats.captured, 42, "{}", summary(&stats));

    let created = relay.of_kind("FILE_CREATED").await;
    assert_eq!(created.len(), 42);
    let mut seen = BTreeMap::new();
    for r in &created {
        let sha = field(r, "sha256").as_str().unwrap().to_owned();
        let size = field(r, "size").as_u64().unwrap();
        assert!(field(r, "mtime").as_str().unwrap().ends_with('Z'));
        assert_eq!(
            field(r, "root").as_str().unwrap(),
            fs::canonicalize(root.path()).unwrap().to_str().unwrap()
        );
        assert_eq!(r.actor.as_str(), "labtech");
        assert!(
            seen.insert(subject(r), (sha, size)).is_none(),
            "duplicate {}",
            subject(r)
        );
    }
    assert_eq!(seen, expected);
    assert!(relay.of_kind("FILE_MODIFIED").await.is_empty());
    assert!(relay.of_kind("CAPTURE_FAILED").await.is_empty());
    assert_eq!(relay.verify().await, 42);
}

// REQ: R6.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modification_and_deletion_are_recorded() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    let path = root.path().join("spectrum.jdx");
    fs::write(&path, b"first version").unwrap();
    capture.wait_until(|s| s.captured == 1, WAIT).await.unwrap();

    fs::write(&path, b"second version, longer").unwrap();
    capture.wait_until(|s| s.modified == 1, WAIT).await.unwrap();
    let modified = relay.of_kind("FILE_MODIFIED").await;
    assert_eq!(modified.len(), 1);
    assert_eq!(subject(&modified[0]), "spectrum.jdx");
    assert_eq!(
        field(&modified[0], "sha256"),
        sha256_hex(b"second version, longer")
    );
    assert_eq!(
        field(&modified[0], "previous_sha256"),
        sha256_hex(b"first version")
    );

    // Same content, new mtime: re-hashed, nothing recorded.
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    capture
        .wait_until(|s| s.unchanged == 1, WAIT)
        .await
        .unwrap();

    fs::remove_file(&path).unwrap();
    capture.wait_until(|s| s.deleted == 1, WAIT).await.unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(
        (stats.captured, stats.modified, stats.deleted, stats.failed),
        (1, 1, 1, 0)
    );

    let deleted = relay.of_kind("FILE_DELETED").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(subject(&deleted[0]), "spectrum.jdx");
    assert_eq!(
        field(&deleted[0], "sha256"),
        sha256_hex(b"second version, longer")
    );
    let kinds: Vec<_> = relay
        .records()
        .await
        .iter()
        .map(|r| r.kind.as_str().to_owned())
        .collect();
    assert_eq!(kinds, ["FILE_CREATED", "FILE_MODIFIED", "FILE_DELETED"]);
    assert_eq!(relay.verify().await, 3);
}

// REQ: R6.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_records_nothing_twice_and_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("elsewhere"), b"not ours").unwrap();
    let relay = Relay::new();

    // Files already there before the first start are captured by the start-up scan.
    for i in 0..5 {
        fs::write(root.path().join(format!("f{i}")), format!("data {i}")).unwrap();
    }
    symlink(outside.path().join("elsewhere"), root.path().join("link")).unwrap();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture
        .wait_until(|s| s.captured == 5 && s.failed == 1, WAIT)
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    capture.shutdown().await.unwrap();
    let before = relay.records().await.len();
    assert_eq!(before, 6);

    // Restart over an unchanged folder: nothing new.
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    tokio::time::sleep(SETTLE * 3).await;
    capture.wait_idle(WAIT).await.unwrap();
    assert_eq!(
        capture.stats().recorded(),
        0,
        "{}",
        summary(&capture.stats())
    );
    capture.shutdown().await.unwrap();
    assert_eq!(relay.records().await.len(), before);

    // While stopped: two new files, one changed, one removed.
    fs::write(root.path().join("new-a"), b"new a").unwrap();
    fs::create_dir(root.path().join("later")).unwrap();
    fs::write(root.path().join("later/new-b"), b"new b").unwrap();
    fs::write(
        root.path().join("f1"),
        b"data 1, edited while the relay was down",
    )
    .unwrap();
    fs::remove_file(root.path().join("f2")).unwrap();

    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture
        .wait_until(
            |s| s.captured == 2 && s.modified == 1 && s.deleted == 1,
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.wait_idle(WAIT).await.unwrap();
    // An explicit rescan finds nothing more either.
    let scans = capture.stats().full_scans_completed;
    capture.request_rescan().unwrap();
    capture
        .wait_until(|s| s.full_scans_completed > scans && s.is_idle(), WAIT)
        .await
        .unwrap();
    tokio::time::sleep(SETTLE * 3).await;
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(
        (stats.captured, stats.modified, stats.deleted, stats.failed),
        (2, 1, 1, 0),
        "{}",
        summary(&stats)
    );

    let records = relay.records().await;
    let mut created = BTreeMap::<String, usize>::new();
    for r in records.iter().filter(|r| r.kind.as_str() == "FILE_CREATED") {
        *created.entry(subject(r)).or_default() += 1;
    }
    assert!(created.values().all(|n| *n == 1), "{created:?}");
    assert_eq!(created.len(), 7);
    assert!(created.contains_key("later/new-b"));
    let failed = relay.of_kind("CAPTURE_FAILED").await;
    assert_eq!(failed.len(), 1, "a lasting failure is recorded once");
    assert_eq!(subject(&failed[0]), "link");
    assert_eq!(relay.verify().await, 10);
}

// REQ: R6.2, R6.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_special_files_are_failed_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = b"outside the root: must never be hashed into the trail";
    fs::write(outside.path().join("secret"), secret).unwrap();
    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();

    symlink(
        outside.path().join("secret"),
        root.path().join("link-to-secret"),
    )
    .unwrap();
    symlink(outside.path(), root.path().join("linked-dir")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(root.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let locked = root.path().join("locked");
    fs::write(&locked, b"locked content").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    // Root (and CAP_DAC_OVERRIDE) reads through mode 000; then the file is simply captured.
    let readable_anyway = fs::read(&locked).is_ok();

    let want_failed = if readable_anyway { 3 } else { 4 };
    let want_captured = if readable_anyway { 1 } else { 0 };
    capture
        .wait_until(
            |s| s.failed == want_failed && s.captured == want_captured,
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.wait_idle(WAIT).await.unwrap();
    // Rescans do not repeat a lasting failure.
    for _ in 0..2 {
        let scans = capture.stats().full_scans_completed;
        capture.request_rescan().unwrap();
        capture
            .wait_until(|s| s.full_scans_completed > scans && s.is_idle(), WAIT)
            .await
            .unwrap();
    }
    tokio::time::sleep(SETTLE * 3).await;
    capture.wait_idle(WAIT).await.unwrap();
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(stats.failed, want_failed, "{}", summary(&stats));

    let failed: BTreeMap<String, String> = relay
        .of_kind("CAPTURE_FAILED")
        .await
        .iter()
        .map(|r| (subject(r), field(r, "reason").as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(failed["link-to-secret"], "symlink_not_followed");
    assert_eq!(failed["linked-dir"], "symlink_not_followed");
    assert_eq!(failed["pipe"], "not_a_regular_file");
    if readable_anyway {
        let created = relay.of_kind("FILE_CREATED").await;
        assert_eq!(created.len(), 1);
        assert_eq!(field(&created[0], "sha256"), sha256_hex(b"locked content"));
    } else {
        assert_eq!(failed["locked"], "permission_denied");
    }
    let secret_sha = sha256_hex(secret);
    for r in relay.records().await {
        assert!(
            !r.payload.as_str().contains(&secret_sha),
            "followed a link: {r:?}"
        );
        assert!(
            !subject(&r).starts_with("linked-dir/"),
            "entered a linked folder"
        );
    }
    relay.verify().await;
}

// REQ: R6.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_moved_in_and_out_are_reconciled() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();

    // A finished acquisition folder moved in whole: its files have no events of their own.
    let staged = outside.path().join("exp7");
    fs::create_dir_all(staged.join("pdata/1")).unwrap();
    fs::write(staged.join("fid"), b"fid bytes").unwrap();
    fs::write(staged.join("pdata/1/1r"), b"spectrum bytes").unwrap();
    fs::rename(&staged, root.path().join("exp7")).unwrap();
    capture
        .wait_until(|s| s.captured == 2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));

    // Moved out whole: both captured files are recorded as deleted.
    fs::rename(root.path().join("exp7"), outside.path().join("gone")).unwrap();
    capture
        .wait_until(|s| s.deleted == 2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.wait_idle(WAIT).await.unwrap();
    let stats = capture.shutdown().await.unwrap();
    assert_eq!((stats.captured, stats.deleted, stats.failed), (2, 2, 0));
    let mut deleted: Vec<_> = relay
        .of_kind("FILE_DELETED")
        .await
        .iter()
        .map(subject)
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["exp7/fid", "exp7/pdata/1/1r"]);
    assert_eq!(relay.verify().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_job_limit_is_captured_once_each() {
    // 2,000 files appear at once (renamed in from a staging folder): far more settle together
    // than jobs may run (256), so most wait in the ready queue. Every one is recorded exactly
    // once with its own digest, and a few rewritten right after the burst are recorded with
    // their final content (as created, or created then modified), never lost.
    let root = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();

    const FILES: u64 = 2000;
    let mut expected = BTreeMap::new();
    for i in 0..FILES {
        let data = content(50_000 + i, 512 + (i as usize % 7) * 100);
        fs::write(staging.path().join(format!("b{i:04}.fid")), &data).unwrap();
        expected.insert(format!("b{i:04}.fid"), sha256_hex(&data));
    }
    for i in 0..FILES {
        let name = format!("b{i:04}.fid");
        fs::rename(staging.path().join(&name), root.path().join(&name)).unwrap();
    }
    for i in (0..FILES).step_by(400) {
        let data = content(90_000 + i, 333);
        fs::write(root.path().join(format!("b{i:04}.fid")), &data).unwrap();
        expected.insert(format!("b{i:04}.fid"), sha256_hex(&data));
    }

    capture
        .wait_until(|s| s.captured >= FILES, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    tokio::time::sleep(SETTLE * 3).await;
    capture.wait_idle(WAIT).await.unwrap();
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(stats.captured, FILES, "{}", summary(&stats));

    let mut last = BTreeMap::new();
    let created = relay.of_kind("FILE_CREATED").await;
    assert_eq!(created.len(), FILES as usize, "one FILE_CREATED per file");
    for r in created
        .iter()
        .chain(relay.of_kind("FILE_MODIFIED").await.iter())
    {
        last.insert(subject(r), field(r, "sha256").as_str().unwrap().to_owned());
    }
    assert_eq!(
        last, expected,
        "every file's last record carries its final digest"
    );
    assert!(relay.of_kind("CAPTURE_FAILED").await.is_empty());
    relay.verify().await;
}
