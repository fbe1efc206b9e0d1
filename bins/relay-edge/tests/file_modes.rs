//! Secrets at rest (issue 18, item 4), attacked as another local user would. The finding:
//! `relay.db` and its `-wal` were created 0644 (the umask's), so any local user could read the
//! Argon2 hashes and a plaintext TOTP secret; `anchors/` and `exports/` too. Now everything the
//! relay creates in its data directory is owner-only whatever the umask, and a data directory
//! that group or others can access is refused at start with the `chmod` that fixes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, TRAIL, stop, wait_for_records};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `relay-edge run` started under `umask 000`, the most permissive there is.
fn start_with_open_umask(data: &Path, watch: &Path) -> std::process::Child {
    Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args([
            "--device",
            TRAIL,
            "--project",
            "PRJ-E2E",
            "--settle-ms",
            "300",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Whether the user `nobody` (uid 65534) can read `path`; `None` when this test cannot switch
/// users (not run as root).
fn nobody_can_read(path: &Path) -> Option<bool> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let status = Command::new("cat")
        .arg(path)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    Some(status.success())
}

// REQ: R10.3
#[test]
fn every_path_the_edge_creates_is_owner_only_whatever_the_umask_and_a_shared_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    set_mode(tmp.path(), 0o755); // others may traverse to the data directory's parent
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("nmr"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start_with_open_umask(&data, &watch);
    std::fs::write(watch.join("one.fid"), "one").unwrap();
    wait_for_records(&data, "FILE_CREATED", 1, Duration::from_secs(30));
    stop(child); // anchors every trail at shutdown

    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("relay.db")), 0o600, "relay.db");
    for side in ["relay.db-wal", "relay.db-shm"] {
        let path = data.join(side);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{side}");
        }
    }
    assert_eq!(mode(&data.join("secrets")), 0o700, "secrets/");
    let anchors = data.join("anchors");
    assert_eq!(mode(&anchors), 0o700, "anchors/");
    let mut anchor_files = 0;
    for entry in std::fs::read_dir(&anchors).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        anchor_files += 1;
    }
    assert!(anchor_files > 0, "the shutdown anchored the trails");

    // Another local user cannot read the database...
    match nobody_can_read(&data.join("relay.db")) {
        Some(read) => assert!(!read, "uid 65534 read relay.db"),
        None => eprintln!("not root: the read as another uid is not tried"),
    }
    // ...and could before: the same attack succeeds on a data directory shared by hand, which
    // is exactly what start-up refuses.
    set_mode(&data, 0o755);
    set_mode(&data.join("relay.db"), 0o644);
    if let Some(read) = nobody_can_read(&data.join("relay.db")) {
        assert!(
            read,
            "the attack must work on a shared data directory, or it proves nothing"
        );
    }
    let out = Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(&data)
        .arg("--watch")
        .arg(&watch)
        .args(["--device", TRAIL, "--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "started on a shared data directory: {text}"
    );
    assert!(text.contains("accessible to its owner only"), "{text}");
    assert!(
        text.contains(&format!("chmod 700 {}", data.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("chmod 600 {}", data.join("relay.db").display())),
        "{text}"
    );
    // Fixed as the message says, it starts again.
    set_mode(&data, 0o700);
    set_mode(&data.join("relay.db"), 0o600);
    let child = start_with_open_umask(&data, &watch);
    std::fs::write(watch.join("two.fid"), "two").unwrap();
    wait_for_records(&data, "FILE_CREATED", 2, Duration::from_secs(30));
    stop(child);
}
