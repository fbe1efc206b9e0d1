//! The identity settings of the configuration file, seen from outside a running `relay-edge`
//! (issue 18): a site's own deny list entry is refused with 422 `generic_account`, the list
//! replaces the default one (documented), a longer minimum password length holds, a weakened
//! default is a start-up warning, and an unusable value stops the edge before it serves.
//!
//! Before: these settings existed only in code (`ApiConfig`); a site could not add its own
//! shared names (`nmrbox`) nor lengthen the password rule without a rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const TEMPORARY: &str = "temporary violet harbour 17";

/// One HTTP/1.1 request to the edge (`Connection: close`): status and JSON body.
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
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
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

/// Writes `edge.toml` in `dir` (data, watch folder, `port`) with `extra` keys.
fn config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let (data, watch) = (dir.join("data"), dir.join("watch"));
    std::fs::create_dir_all(&watch).unwrap();
    let path = dir.join("edge.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\nwatch = [{:?}]\nlisten = \"127.0.0.1:{port}\"\ndevice = \"{}\"\n{extra}",
            data.display().to_string(),
            watch.display().to_string(),
            common::TRAIL
        ),
    )
    .unwrap();
    path
}

// REQ: R3.2
#[test]
fn a_configured_deny_list_and_password_length_hold_in_a_running_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let port = reserve_port();
    let conf = config(
        tmp.path(),
        port,
        "generic_account_names = [\"nmrbox\"]\nmin_password_chars = 16\n",
    );
    let log = tmp.path().join("edge.log");
    let child = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&conf)
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the edge did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (s, v) = http(
        port,
        "POST",
        "/api/v1/auth/register",
        None,
        json!({"username": "ada", "full_name": "Ada Admin", "password": PASSWORD, "role": "admin"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        json!({"username": "ada", "password": PASSWORD}),
    );
    assert_eq!(s, 200, "{v}");
    let admin = v["token"].as_str().unwrap().to_owned();
    let create = |user: &str, full: &str, password: &str| {
        http(
            port,
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            json!({"username": user, "full_name": full, "password": password, "role": "operator", "reason": "new colleague"}),
        )
    };

    // The site's entry is refused, with case and a number after it as for the built-in ones.
    for name in ["nmrbox", "NMRbox", "nmrbox2"] {
        let (s, v) = create(name, &format!("Instrument {name}"), TEMPORARY);
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (422, Some("generic_account")),
            "{name}: {v}"
        );
    }
    // The list replaces the default one: `operator` (a default entry, and no shared marker)
    // is accepted now. The shared markers keep their default: `qc-team` is still refused.
    let (s, v) = create("operator", "Olga Perator", TEMPORARY);
    assert_eq!(s, 201, "the replaced default entry is accepted: {v}");
    let (s, v) = create("qc-team", "Quality Team", TEMPORARY);
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("generic_account")),
        "{v}"
    );
    // min_password_chars = 16: a strong 15-character password is refused, naming the rule.
    let (s, v) = create("j.smith", "Jane Smith", "violet harbor 7");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("weak_password")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 16 characters"),
        "{v}"
    );
    common::stop(child);

    // Leaving defaults out of the list is weaker than the default: a start-up warning.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("IDENTITY SETTING WEAKER THAN THE DEFAULT: generic_account_names replaces")
            && log.contains("operator"),
        "{log}"
    );
}

// REQ: R3.2
#[test]
fn an_unusable_identity_setting_stops_the_edge_before_it_serves() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (
            "min_password_chars = 6\n",
            "min_password_chars: 6 is not accepted; it must be between 8 and 128",
        ),
        (
            "min_password_score = 5\n",
            "min_password_score: 5 is not a zxcvbn score",
        ),
    ] {
        let conf = config(tmp.path(), reserve_port(), extra);
        let out = Command::new(common::BIN)
            .args(["run", "--config"])
            .arg(&conf)
            .env("RELAY_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(says), "{extra}: {stderr}");
        assert!(
            !tmp.path().join("data").join("relay.db").exists(),
            "{extra}: the edge opened its data directory before refusing the configuration"
        );
    }
}
