//! `relay-edge enroll` refuses what it must before touching anything (issue 24): plain http to a
//! remote host, an unreadable CA file, an unreachable server; none creates a data directory or
//! an enrollment file, and each exits 2 with a message naming the cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::process::Command;

fn enroll(data: &std::path::Path, server: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["enroll", "--data-dir"])
        .arg(data)
        .args(["--server", server])
        .args(extra)
        .env("RELAY_ENROLL_CODE", "0123456789abcdef0123456789abcdef")
        .env("RELAY_LOG", "error")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// REQ: R8.3
#[test]
fn enroll_refuses_plain_http_to_a_remote_host_and_a_missing_ca_without_touching_the_disk() {
    let root = tempfile::TempDir::new().unwrap();
    let data = root.path().join("relay-data");
    let (rc, err) = enroll(&data, "http://relay.example.com:8471", &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("plain http is allowed only to a loopback address"),
        "{err}"
    );
    let (rc, err) = enroll(&data, "ftp://relay.example.com", &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("https://"), "{err}");
    let (rc, err) = enroll(
        &data,
        "https://relay.example.com:8471",
        &["--ca-file", "/nonexistent/ca.pem"],
    );
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    assert!(!data.exists(), "nothing was created for a refused target");
    // A well-formed target that does not answer: the data directory and key exist (as after a
    // first `run`), but no enrollment file and no token.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (rc, err) = enroll(&data, &format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("server: network"), "{err}");
    assert!(!data.join("enrollment.json").exists());
    assert!(!data.join("secrets/forward-token.json").exists());
}
