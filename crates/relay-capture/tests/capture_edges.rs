//! Capture's edges found by an attack run (issue 22): content rewritten with its size and mtime
//! put back (`utime`), records written before capture recorded ctime and inode, and a folder
//! swapped for a link to something outside the root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use relay_capture::{Capture, DETECTED_BY_REHASH_AUDIT};
use relay_domain::{ActorSource, EventDraft, EventKind, Payload, Subject};

/// Rewrites `path` with `data` (same length as before) and sets its mtime back to `mtime`, as
/// `os.utime` does: size and mtime look untouched, only the inode change time moved.
fn rewrite_keeping_size_and_mtime(path: &Path, data: &[u8], mtime: SystemTime) {
    let before = fs::metadata(path).unwrap().len();
    assert_eq!(before, data.len() as u64, "the rewrite keeps the size");
    fs::write(path, data).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

// REQ: R6.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_rewritten_with_size_and_mtime_restored_is_recorded_live_and_after_restart() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let path = root.path().join("spectrum.fid");
    let (v1, v2, v3) = (content(1, 4096), content(2, 4096), content(3, 4096));
    fs::write(&path, &v1).unwrap();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();

    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture
        .wait_until(|s| s.captured == 1 && s.is_idle(), WAIT)
        .await
        .unwrap();
    let created = relay.of_kind("FILE_CREATED").await;
    assert!(field(&created[0], "ctime").is_string(), "ctime is recorded");
    assert!(field(&created[0], "inode").is_u64(), "inode is recorded");

    // Live: the watcher sees the write; size and mtime look unchanged, the ctime does not.
    rewrite_keeping_size_and_mtime(&path, &v2, mtime);
    capture
        .wait_until(|s| s.modified == 1 && s.is_idle(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.shutdown().await.unwrap();

    // While stopped: the start-up rescan compares the ctime and inode the trail holds.
    rewrite_keeping_size_and_mtime(&path, &v3, mtime);
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture
        .wait_until(|s| s.modified == 1 && s.is_idle(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.shutdown().await.unwrap();

    // And a restart over the unchanged file records nothing twice.
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(stats.recorded(), 0, "{}", summary(&stats));
    assert_eq!(
        stats.unchanged,
        0,
        "nothing needed re-hashing: {}",
        summary(&stats)
    );

    let modified = relay.of_kind("FILE_MODIFIED").await;
    assert_eq!(modified.len(), 2);
    let pairs: Vec<(String, String)> = modified
        .iter()
        .map(|r| {
            (
                field(r, "previous_sha256").as_str().unwrap().to_owned(),
                field(r, "sha256").as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            (sha256_hex(&v1), sha256_hex(&v2)),
            (sha256_hex(&v2), sha256_hex(&v3)),
        ]
    );
    for r in &modified {
        assert_eq!(
            field(r, "mtime"),
            field(r, "previous_mtime"),
            "mtime was restored"
        );
        assert!(
            field(r, "detected_by").is_null(),
            "found by the ctime, not the audit"
        );
    }
    assert_eq!(relay.of_kind("FILE_CREATED").await.len(), 1);
    assert_eq!(relay.verify().await, 3);
}

/// Appends a `FILE_CREATED` as capture wrote it before it recorded `ctime` and `inode`.
async fn append_legacy_created(relay: &Relay, root: &Path, rel: &str, sha256: &str) {
    let meta = fs::symlink_metadata(root.join(rel)).unwrap();
    let mtime = time::OffsetDateTime::from(meta.modified().unwrap())
        .format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
        ))
        .unwrap();
    let payload = serde_json::json!({
        "root": fs::canonicalize(root).unwrap().to_str().unwrap(),
        "sha256": sha256,
        "size": meta.len(),
        "mtime": mtime,
    });
    relay
        .append
        .append(EventDraft {
            trail_id: trail(),
            kind: EventKind::file_created(),
            actor: Some(relay_domain::Actor::new("labtech").unwrap()),
            actor_source: ActorSource::OsSession,
            occurred_at: None,
            device: relay_domain::Device::new("nmr-01").unwrap(),
            project: None,
            subject: Some(Subject::new(rel).unwrap()),
            payload: Payload::from_value(&payload).unwrap(),
        })
        .await
        .unwrap();
}

// REQ: R6.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_ctime_still_work_and_the_rehash_audit_finds_what_they_miss() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::new();
    let (kept, swapped) = (content(10, 5000), content(11, 5000));
    fs::write(root.path().join("kept.fid"), &kept).unwrap();
    fs::write(root.path().join("swapped.fid"), &swapped).unwrap();
    // The trail (from an older relay) holds kept.fid as it is, and swapped.fid with other
    // content of the same size and mtime: what a utime-restored rewrite leaves behind.
    append_legacy_created(&relay, root.path(), "kept.fid", &sha256_hex(&kept)).await;
    let original = content(12, 5000);
    append_legacy_created(&relay, root.path(), "swapped.fid", &sha256_hex(&original)).await;

    // Start-up: the old records index both files (size and mtime match): nothing recorded,
    // nothing hashed, no duplicate capture.
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    assert_eq!(
        capture.stats().recorded(),
        0,
        "{}",
        summary(&capture.stats())
    );
    assert_eq!(capture.stats().unchanged, 0);

    // An audit on request re-hashes both and records the one that differs.
    capture.request_rehash().unwrap();
    let stats = capture
        .wait_until(|s| s.rehash_audits_completed == 1 && s.is_idle(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    assert_eq!(
        (
            stats.rehashed,
            stats.modified,
            stats.unchanged,
            stats.captured
        ),
        (2, 1, 1, 0),
        "{}",
        summary(&stats)
    );
    capture.shutdown().await.unwrap();
    let modified = relay.of_kind("FILE_MODIFIED").await;
    assert_eq!(modified.len(), 1);
    let m = &modified[0];
    assert_eq!(subject(m), "swapped.fid");
    assert_eq!(field(m, "previous_sha256"), sha256_hex(&original).as_str());
    assert_eq!(field(m, "sha256"), sha256_hex(&swapped).as_str());
    assert_eq!(field(m, "detected_by"), DETECTED_BY_REHASH_AUDIT);
    assert_eq!(field(m, "mtime"), field(m, "previous_mtime"));

    // A periodic audit after a restart: nothing differs any more, nothing is recorded twice.
    let config = relay
        .config(root.path())
        .with_rehash_interval(Some(Duration::from_millis(200)));
    let capture = Capture::start(config, relay.append.clone()).await.unwrap();
    let stats = capture
        .wait_until(|s| s.rehash_audits_completed >= 2 && s.is_idle(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    assert_eq!(stats.recorded(), 0, "{}", summary(&stats));
    capture.shutdown().await.unwrap();
    assert_eq!(relay.verify().await, 3);
}

// REQ: R6.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_swapped_for_a_link_never_leaks_what_lies_outside() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // Stands for /etc/shadow: a size and an mtime nothing inside the root has.
    let secret = outside.path().join("x");
    fs::write(&secret, vec![b's'; 4242]).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000); // 2001-09-09
    fs::File::options()
        .write(true)
        .open(&secret)
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::create_dir(root.path().join("d")).unwrap();
    fs::write(root.path().join("d/x"), b"inside").unwrap();

    let relay = Relay::new();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    capture
        .wait_until(|s| s.captured == 1 && s.is_idle(), WAIT)
        .await
        .unwrap();
    capture.shutdown().await.unwrap();

    // While stopped, d becomes a link to the outside folder holding an x of its own. The
    // start-up rescan does not enter the link, so the captured d/x is looked at by its path:
    // before the descriptor walk, that lstat went through the link and recorded the outside
    // file's size and mtime in a CAPTURE_FAILED.
    fs::rename(root.path().join("d"), root.path().join("d.moved")).unwrap();
    symlink(outside.path(), root.path().join("d")).unwrap();
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    let stats = capture
        .wait_until(|s| s.full_scans_completed >= 1 && s.is_idle(), WAIT)
        .await
        .unwrap();
    assert_nothing_from_outside(&relay).await;
    assert_eq!(
        (stats.deleted, stats.captured),
        (1, 1),
        "{}",
        summary(&stats)
    );
    // Once more while running, swapping the moved folder back in as a link.
    fs::rename(root.path().join("d.moved"), root.path().join("d.real")).unwrap();
    symlink(outside.path(), root.path().join("d.moved")).unwrap();
    let scans = stats.full_scans_completed;
    capture.request_rescan().unwrap();
    capture
        .wait_until(
            |s| s.full_scans_completed > scans && s.deleted == 2 && s.is_idle(),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", summary(&capture.stats())));
    capture.shutdown().await.unwrap();
    assert_nothing_from_outside(&relay).await;

    let records = relay.records().await;
    let deleted: Vec<String> = relay
        .of_kind("FILE_DELETED")
        .await
        .iter()
        .map(subject)
        .collect();
    assert_eq!(deleted, vec!["d/x", "d.moved/x"]);
    let links: Vec<String> = relay
        .of_kind("CAPTURE_FAILED")
        .await
        .iter()
        .filter(|r| field(r, "reason") == "symlink_not_followed")
        .map(subject)
        .collect();
    assert!(links.contains(&"d".to_owned()), "{links:?}");
    assert_eq!(relay.verify().await, records.len() as u64);
}

/// No payload holds the size or mtime of the outside file (4242 bytes, 2001-09-09).
async fn assert_nothing_from_outside(relay: &Relay) {
    for r in relay.records().await {
        let text = r.payload.to_value().unwrap().to_string();
        assert!(
            !text.contains("4242") && !text.contains("2001-09-09"),
            "{} {:?} leaks the outside file: {text}",
            r.kind.as_str(),
            r.subject
        );
    }
}
