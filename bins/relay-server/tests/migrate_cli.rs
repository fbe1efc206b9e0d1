//! `relay-server migrate` as an operator runs it: a fresh database migrated by the binary denies
//! `UPDATE event_log` to the runtime role with SQLSTATE 42501 when tried from `psql`.
//! Postgres is found through `RELAY_TEST_PG_ADMIN_DSN` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth for the new role); a missing
//! service skips the test with a printed reason, or fails it under `RELAY_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

fn skip_or_fail(reason: String) {
    if std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP relay-server migrate (Postgres + psql): {reason}");
}

// REQ: R1.4
#[tokio::test]
async fn migrate_makes_update_of_event_log_fail_with_42501_for_the_app_role_in_psql() {
    let admin_dsn = std::env::var("RELAY_TEST_PG_ADMIN_DSN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin_options = PgConnectOptions::from_str(&admin_dsn).unwrap();
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect()).await {
            Ok(Ok(c)) => c,
            other => return skip_or_fail(format!("Postgres unreachable: {other:?}")),
        };
    if Command::new("psql").arg("--version").output().is_err() {
        return skip_or_fail("psql is not installed".into());
    }
    let suffix = format!(
        "{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    );
    let db = format!("relay_cli_{suffix}");
    let role = format!("relay_app_cli_{suffix}");
    admin
        .execute(format!("CREATE DATABASE \"{db}\"").as_str())
        .await
        .unwrap();
    let owner_dsn = admin_options
        .clone()
        .database(&db)
        .to_url_lossy()
        .to_string();

    let bin = env!("CARGO_BIN_EXE_relay-server");
    let run = Command::new(bin)
        .args(["migrate", "--admin-dsn", &owner_dsn, "--app-role", &role])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();

    let host = admin_options.get_host().to_owned();
    let port = admin_options.get_port().to_string();
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-X", "-v", "VERBOSITY=verbose", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", &host, "-p", &port, "-U", &role, "-d", &db, "-c", sql])
            .output()
            .unwrap()
    };
    let update = psql("UPDATE event_log SET actor = 'mallory'");
    let select = psql("SELECT count(*) FROM event_log");
    // A second run is a no-op; a bad DSN exits 2 with the cause chain.
    let rerun = Command::new(bin)
        .args(["migrate", "--admin-dsn", &owner_dsn, "--app-role", &role])
        .output()
        .unwrap();
    let bad = Command::new(bin)
        .args([
            "migrate",
            "--admin-dsn",
            "postgres://nobody:hunter2@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();

    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
        .await
        .unwrap();

    assert!(run.status.success(), "migrate failed: {stdout}\n{stderr}");
    assert!(stdout.contains("schema version 6"), "{stdout}");
    assert!(stdout.contains(&role), "{stdout}");
    assert!(
        !stdout.contains("postgres@"),
        "the DSN's user is not printed: {stdout}"
    );

    let update_err = String::from_utf8_lossy(&update.stderr);
    assert!(!update.status.success(), "UPDATE must fail");
    assert!(
        update_err.contains("42501") && update_err.contains("permission denied"),
        "{update_err}"
    );
    assert!(
        select.status.success(),
        "SELECT must work: {}",
        String::from_utf8_lossy(&select.stderr)
    );

    assert!(rerun.status.success());
    assert!(String::from_utf8_lossy(&rerun.stdout).contains("applied []"));

    assert_eq!(bad.status.code(), Some(2));
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert!(bad_err.contains("error: postgres"), "{bad_err}");
    assert!(bad_err.contains("caused by:"), "{bad_err}");
    assert!(
        !bad_err.contains("hunter2"),
        "the password is never printed: {bad_err}"
    );
}
