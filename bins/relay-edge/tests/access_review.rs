//! The access review and the account rows check from outside, as an inspector and an attacker
//! with a shell on the workstation would (issue 18): accounts are made through a running
//! edge's API (the first admin, the bootstrap second admin, a four-eyes role change, a
//! completed review), then `relay-edge access-review` prints and seals the review, the package
//! is checked by the `relay-verify` binary (and a tampered byte refused), and an account row
//! edited with SQL in a copy of the data directory is named by `relay-edge verify` (exit 1).
//!
//! Before: nothing produced a review, and `UPDATE accounts SET role = 'admin'` in relay.db made
//! an operator an administrator without any check noticing (`verify` said OK).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const TEMPORARY: &str = "temporary violet harbour 17";

/// One HTTP/1.1 request to the edge (`Connection: close`): status and JSON body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn ok(what: &str, expected: u16, (status, body): (u16, Value)) -> Value {
    assert_eq!(status, expected, "{what}: {body}");
    body
}

fn login(port: u16, user: &str) -> String {
    let b = ok(
        "login",
        200,
        http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": user, "password": PASSWORD})),
        ),
    );
    b["token"].as_str().unwrap().to_owned()
}

fn create(port: u16, admin: &str, user: &str, name: &str, role: &str) {
    ok(
        "create",
        201,
        http(
            port,
            "POST",
            "/api/v1/accounts",
            Some(admin),
            Some(
                json!({"username": user, "full_name": name, "password": TEMPORARY, "role": role, "reason": "a second administrator for four-eyes"}),
            ),
        ),
    );
    ok(
        "first password change",
        204,
        http(
            port,
            "POST",
            "/api/v1/auth/password",
            None,
            Some(json!({"username": user, "old_password": TEMPORARY, "new_password": PASSWORD})),
        ),
    );
}

/// A data directory with ada (first admin), bob (bootstrap second admin), otto (operator made
/// reviewer by a four-eyes change ada proposed and bob approved) and a completed review.
fn populated(data: &Path, watch: &Path) {
    let port = reserve_port();
    let child = Command::new(common::BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args(["--device", common::TRAIL, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("RELAY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the edge did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(
        "register",
        201,
        http(
            port,
            "POST",
            "/api/v1/auth/register",
            None,
            Some(
                json!({"username": "ada", "full_name": "Ada Admin", "password": PASSWORD, "role": "admin"}),
            ),
        ),
    );
    let ada = login(port, "ada");
    create(port, &ada, "bob", "Bob Admin", "admin");
    create(port, &ada, "otto", "Otto Operator", "operator");
    let bob = login(port, "bob");
    let p = ok(
        "propose",
        201,
        http(
            port,
            "POST",
            "/api/v1/changes",
            Some(&ada),
            Some(
                json!({"setting": "account_role", "value": {"username": "otto", "role": "reviewer"}, "reason": "trained for QA review"}),
            ),
        ),
    );
    let id = p["id"].as_str().unwrap();
    ok(
        "approve",
        200,
        http(
            port,
            "POST",
            &format!("/api/v1/changes/{id}/approve"),
            Some(&bob),
            Some(json!({"password": PASSWORD, "reason": "training record checked"})),
        ),
    );
    let review = ok(
        "review",
        200,
        http(port, "GET", "/api/v1/access-review", Some(&ada), None),
    );
    ok(
        "complete",
        201,
        http(
            port,
            "POST",
            "/api/v1/access-review/complete",
            Some(&ada),
            Some(
                json!({"password": PASSWORD, "reason": "Q4 access review", "review_digest": review["digest"]}),
            ),
        ),
    );
    common::stop(child);
}

fn edge(args: &[&str], data: &Path) -> Output {
    Command::new(common::BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

/// `relay-verify` next to `relay-edge` in the target directory, built if missing.
fn verify_bin() -> PathBuf {
    let path = Path::new(common::BIN).with_file_name("relay-verify");
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "relay-verify"])
            .status()
            .unwrap();
        assert!(status.success(), "building relay-verify failed");
    }
    path
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// REQ: R3.2, R5.2, R5.3
#[test]
fn the_access_review_lists_role_history_flags_the_bootstrap_admin_and_seals_a_verifiable_package() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("watch"));
    std::fs::create_dir_all(&watch).unwrap();
    populated(&data, &watch);

    let out = edge(&["access-review", "--json"], &data);
    assert!(out.status.success(), "{}", text(&out));
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |u: &str| {
        review["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == u)
            .unwrap()
            .clone()
    };
    assert!(
        row("bob")["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("bootstrap_second_admin"))
    );
    let otto = row("otto");
    assert_eq!(otto["role"], "reviewer");
    let history = otto["role_history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{otto}");
    assert_eq!(history[1]["from"], "operator");
    assert_eq!(history[1]["by"], "bob");
    assert_eq!(history[1]["proposed_by"], "ada");
    assert_eq!(history[1]["reason"], "trained for QA review");
    assert_eq!(review["previous_review"]["reviewer"], "ada");
    // The text table names the same.
    let table = edge(&["access-review"], &data);
    let shown = text(&table);
    assert!(table.status.success(), "{shown}");
    assert!(shown.contains("bootstrap_second_admin"), "{shown}");
    assert!(shown.contains("role operator -> reviewer"), "{shown}");
    assert!(
        shown.contains(review["digest"].as_str().unwrap()),
        "{shown}"
    );

    // Sealed with _relay; relay-verify checks it offline, pinned by the printed fingerprint.
    let pkg = tmp.path().join("review-pkg");
    let out = Command::new(common::BIN)
        .args(["access-review", "--data-dir"])
        .arg(&data)
        .arg("--export")
        .arg(&pkg)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let fingerprint = shown
        .lines()
        .find_map(|l| l.strip_prefix("seal key fingerprint "))
        .unwrap()
        .trim()
        .to_owned();
    let sealed: Value =
        serde_json::from_slice(&std::fs::read(pkg.join("access_review.json")).unwrap()).unwrap();
    assert_eq!(sealed["format"], "gims-relay access review v1");
    let verified = Command::new(verify_bin())
        .arg(&pkg)
        .args(["--expect-fingerprint", &fingerprint])
        .output()
        .unwrap();
    let shown = text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{shown}");
    assert!(shown.contains("access review"), "{shown}");

    // One byte changed in the review (otto's role), and the package no longer verifies.
    let tampered = tmp.path().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    for entry in std::fs::read_dir(&pkg).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tampered.join(entry.file_name())).unwrap();
    }
    let review_file = tampered.join("access_review.json");
    let edited = std::fs::read_to_string(&review_file).unwrap().replacen(
        "\"role\": \"reviewer\"",
        "\"role\": \"reviewes\"",
        1,
    );
    assert_ne!(edited, std::fs::read_to_string(&review_file).unwrap());
    std::fs::write(&review_file, edited).unwrap();
    let refused = Command::new(verify_bin())
        .arg(&tampered)
        .args(["--expect-fingerprint", &fingerprint])
        .output()
        .unwrap();
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{shown}");
    assert!(shown.contains("access_review.json"), "{shown}");
}

// REQ: R3.2, R1.6
#[test]
fn an_account_row_edited_in_a_copy_of_the_data_dir_is_named_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("watch"));
    std::fs::create_dir_all(&watch).unwrap();
    populated(&data, &watch);
    let out = common::verify(&data);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("account rows"), "{shown}");

    // The attacker's copy: otto made an administrator, bob's TOTP flag faked, straight in SQL.
    let copy = tmp.path().join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let db = rusqlite::Connection::open(copy.join("relay.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE accounts SET role = 'admin' WHERE username = 'otto'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    db.execute(
        "UPDATE accounts SET disabled = 1 WHERE username = 'bob'",
        [],
    )
    .unwrap();
    drop(db);
    let out = common::verify(&copy);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("ACCOUNT ROW DISAGREES otto: role stored=admin chained=reviewer"),
        "{shown}"
    );
    assert!(
        shown.contains("ACCOUNT ROW DISAGREES bob: disabled stored=true chained=false"),
        "{shown}"
    );
    // A start on the edited copy says it too: STARTUP posture and a SYSTEM event.
    let child = common::start(&copy, &watch);
    let deadline = Instant::now() + Duration::from_secs(60);
    let event = loop {
        let found = common::records(&copy, "_relay").into_iter().find(|r| {
            r.kind.as_str() == "SYSTEM"
                && r.payload.to_value().unwrap()["event"] == "ACCOUNT_ROWS_DISAGREE"
        });
        if let Some(r) = found {
            break r.payload.to_value().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no ACCOUNT_ROWS_DISAGREE event at start-up"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    common::stop(child);
    assert!(event.to_string().contains("otto"), "{event}");
    let startup = common::records(&copy, "_relay")
        .into_iter()
        .rev()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap()
        .payload
        .to_value()
        .unwrap();
    assert_eq!(startup["account_rows"]["agree"], false, "{startup}");

    // The review flags it too.
    let out = edge(&["access-review", "--json"], &copy);
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    let otto = review["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "otto")
        .unwrap();
    assert!(
        otto["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("row_disagrees_with_trail")),
        "{otto}"
    );
}
