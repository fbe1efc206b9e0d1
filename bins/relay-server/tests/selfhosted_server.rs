#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `relay-server run` on the self-hosted stores, end to end: a fresh Postgres database migrated
//! by `relay-server migrate` (runtime on the SELECT/INSERT-only app role), an S3 bucket with
//! Object Lock for the notary, and a real `relay-edge` forwarding its trail. The server is
//! SIGKILLed once mid-way; at the end the Postgres replica equals the edge's trail record for
//! record and `relay-server verify` passes. Four-eyes configuration changes work on the
//! Postgres change store: a proposal cannot be approved by its author, a second admin approves
//! it, and it is still listed after a restart.
//!
//! Needs Postgres (`RELAY_TEST_PG_ADMIN_DSN`) and an S3 endpoint with Object Lock
//! (`RELAY_TEST_S3_ENDPOINT`, default moto on 127.0.0.1:5000): skipped with a printed reason
//! when either is absent, a failure under `RELAY_REQUIRE_SERVICES=1`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay_domain::ports::{RecordStore, RecordStoreExt};
use relay_domain::{Record, TrailId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

mod common;

use common::{edge_bin, reserve_port, server_bin};

const EDGE: &str = "ws-pg";

fn skip_or_fail(reason: String) {
    common::skip_or_fail("relay-server run on Postgres + S3", &reason);
}

struct S3Env {
    endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
}

impl S3Env {
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Self {
            endpoint: var("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000"),
            access_key: var("RELAY_TEST_S3_ACCESS_KEY", "test"),
            secret_key: var("RELAY_TEST_S3_SECRET", "test"),
            region: var("RELAY_TEST_S3_REGION", "us-east-1"),
        }
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.env("RELAY_S3_ENDPOINT", &self.endpoint)
            .env("RELAY_S3_ACCESS_KEY", &self.access_key)
            .env("RELAY_S3_SECRET_KEY", &self.secret_key)
            .env("RELAY_S3_REGION", &self.region)
            .env("RELAY_S3_PATH_STYLE", "1");
    }

    fn config(&self) -> relay_selfhosted::S3Config {
        let vars = [
            ("RELAY_S3_ENDPOINT", self.endpoint.clone()),
            ("RELAY_S3_ACCESS_KEY", self.access_key.clone()),
            ("RELAY_S3_SECRET_KEY", self.secret_key.clone()),
            ("RELAY_S3_REGION", self.region.clone()),
            ("RELAY_S3_PATH_STYLE", "1".to_owned()),
        ];
        relay_selfhosted::S3Config::from_vars("RELAY_S3_", |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        })
    }
}

fn spawn(bin: &Path, args: &[&str], log: &Path, s3: Option<&S3Env>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RELAY_LOG", "info")
        .env_remove("RELAY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(s3) = s3 {
        s3.apply(&mut cmd);
    }
    cmd.spawn().unwrap()
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn edge_records(data_dir: &Path) -> Vec<Record> {
    let adapters = relay_local::LocalAdapters::open(data_dir).await.unwrap();
    let mut out = Vec::new();
    adapters
        .record_store
        .for_each_record(&TrailId::new(EDGE).unwrap(), 1000, |r| {
            out.push(r);
            true
        })
        .await
        .unwrap();
    adapters.record_store.close().await;
    out
}

// REQ: R1.4, R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_postgres_and_s3_object_lock_holds_a_verified_replica() {
    let admin_dsn = std::env::var("RELAY_TEST_PG_ADMIN_DSN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin_options = PgConnectOptions::from_str(&admin_dsn).unwrap();
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect()).await {
            Ok(Ok(c)) => c,
            other => return skip_or_fail(format!("Postgres unreachable: {other:?}")),
        };
    let s3 = S3Env::from_env();
    let client = relay_selfhosted::S3Client::new(&s3.config()).await;
    let suffix = format!(
        "{}{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    );
    let bucket = format!("relay-srv-{suffix}");
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .sdk()
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send(),
    )
    .await;
    match created {
        Ok(Ok(_)) => {}
        other => return skip_or_fail(format!("S3 endpoint {} unusable: {other:?}", s3.endpoint)),
    }

    let db = format!("relay_srv_{suffix}");
    let role = format!("relay_app_srv_{suffix}");
    let app_dsn = common::migrated_database(&mut admin, &admin_options, &db, &role).await;

    let root = tempfile::TempDir::new().unwrap();
    let (server_dir, edge_dir, inbox, logs) = (
        root.path().join("server"),
        root.path().join("edge"),
        root.path().join("inbox"),
        root.path().join("logs"),
    );
    for d in [&server_dir, &edge_dir, &inbox, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let server_port = reserve_port();
    let server_conf = root.path().join("server.toml");
    std::fs::write(
        &server_conf,
        format!(
            "data_dir = {server_dir:?}\ndevice = \"server-pg\"\nlisten = \"127.0.0.1:{server_port}\"\n\
             ingest_edges = [\"{EDGE}\"]\nnotary_interval_secs = 3600\n[storage]\nprovider = \"selfhosted\"\n\
             pg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\n"
        ),
    )
    .unwrap();
    let token_out = {
        let mut cmd = Command::new(server_bin());
        cmd.args([
            "ingest-token",
            "--config",
            server_conf.to_str().unwrap(),
            "--edge",
            EDGE,
        ]);
        s3.apply(&mut cmd);
        cmd.output().unwrap()
    };
    assert!(
        token_out.status.success(),
        "{}",
        String::from_utf8_lossy(&token_out.stderr)
    );
    let token = String::from_utf8(token_out.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let edge_conf = root.path().join("edge.toml");
    std::fs::write(
        &edge_conf,
        format!(
            "data_dir = {edge_dir:?}\nwatch = [{inbox:?}]\ndevice = \"{EDGE}\"\nlisten = \"127.0.0.1:0\"\n\
             settle_ms = 150\nrescan_secs = 1\nforward_url = \"http://127.0.0.1:{server_port}\"\n\
             forward_token = \"{token}\"\nforward_batch = 7\n"
        ),
    )
    .unwrap();

    let edge_args = ["run", "--config", edge_conf.to_str().unwrap()];
    let server_args = ["run", "--config", server_conf.to_str().unwrap()];
    let mut edge = spawn(&edge_bin(), &edge_args, &logs.join("edge.log"), None);
    let key = edge_dir.join("secrets/trail-hmac.json");
    let start = Instant::now();
    while !key.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "edge key never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(server_dir.join("secrets")).unwrap();
        let to = server_dir.join(format!("secrets/trail-hmac.{EDGE}.json"));
        std::fs::copy(&key, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut server = spawn(
        &server_bin(),
        &server_args,
        &logs.join("server.log"),
        Some(&s3),
    );

    // Files in two bursts, with a SIGKILL of the server between them.
    for i in 0..15 {
        std::fs::write(
            inbox.join(format!("a-{i:02}.fid")),
            format!("first burst {i}"),
        )
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    for i in 0..15 {
        std::fs::write(
            inbox.join(format!("b-{i:02}.fid")),
            format!("second burst {i}"),
        )
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server = spawn(
        &server_bin(),
        &server_args,
        &logs.join("server.log"),
        Some(&s3),
    );

    // The replica, read back from Postgres as the runtime role.
    let replica_store =
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn.clone()))
            .await
            .unwrap();
    let trail = TrailId::new(EDGE).unwrap();
    let start = Instant::now();
    loop {
        let edge_trail = edge_records(&edge_dir).await;
        let captured = edge_trail
            .iter()
            .filter(|r| r.kind.as_str() == "FILE_CREATED")
            .count();
        let replica_head = replica_store
            .head(&trail)
            .await
            .unwrap()
            .map_or(0, |h| h.seq.get());
        if captured == 30 && replica_head == edge_trail.len() as u64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no catch-up: captured {captured}/30, replica head {replica_head}, edge head {}; logs in {}",
            edge_trail.len(),
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop(&mut edge);
    let change = four_eyes_change(server_port);
    stop(&mut server);
    server = spawn(
        &server_bin(),
        &server_args,
        &logs.join("server.log"),
        Some(&s3),
    );
    let start = Instant::now();
    let listed = loop {
        if let Ok(admin) = std::panic::catch_unwind(|| login_with(server_port, "bob", BOB_PASSWORD))
        {
            break common::http_json(server_port, "GET", "/api/v1/changes", Some(&admin), None);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed.0, 200, "{}", listed.1);
    assert!(
        listed.1.to_string().contains(&change),
        "the approved change must survive a restart (Postgres): {}",
        listed.1
    );
    stop(&mut server);

    let edge_trail = edge_records(&edge_dir).await;
    let mut replica = Vec::new();
    replica_store
        .for_each_record(&trail, 1000, |r| {
            replica.push(r);
            true
        })
        .await
        .unwrap();
    assert_eq!(
        replica, edge_trail,
        "the Postgres replica must equal the edge trail record for record"
    );

    let verify = {
        let mut cmd = Command::new(server_bin());
        cmd.args(["verify", "--config", server_conf.to_str().unwrap()])
            .env("RELAY_LOG", "error");
        s3.apply(&mut cmd);
        cmd.output().unwrap()
    };
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "relay-server verify: {stdout} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.contains(&format!("OK      {EDGE}")), "{stdout}");
    assert!(
        stdout.contains("OK      append-only enforcement"),
        "{stdout}"
    );
    // Every anchor the server wrote is recorded in its _relay and accounted for.
    let mut recorded = 0;
    replica_store
        .for_each_record(&TrailId::relay(), 1000, |r| {
            recorded += usize::from(r.kind.as_str() == "ANCHORED");
            true
        })
        .await
        .unwrap();
    assert!(recorded > 0, "the server records its anchors in _relay");

    // The DBA drops a trigger: `relay-server verify` now fails, naming it.
    let server_verify = || {
        let mut cmd = Command::new(server_bin());
        cmd.args(["verify", "--config", server_conf.to_str().unwrap()])
            .env("RELAY_LOG", "error");
        s3.apply(&mut cmd);
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut owner = admin_options.clone().database(&db).connect().await.unwrap();
    owner
        .execute("DROP TRIGGER event_log_no_delete ON event_log")
        .await
        .unwrap();
    let (code, stdout, stderr) = server_verify();
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("MISSING append-only enforcement")
                && l.contains("event_log_no_delete")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("OK      {EDGE}")), "{stdout}");
    // The DBA grants UPDATE to the runtime role: the store refuses to open (two-role custody),
    // so verify exits non-zero naming the privilege.
    owner
        .execute(format!("GRANT UPDATE ON event_log TO \"{role}\"").as_str())
        .await
        .unwrap();
    drop(owner);
    let (code, stdout, stderr) = server_verify();
    assert_ne!(code, Some(0), "{stdout} {stderr}");
    assert!(
        stderr.contains("holds UPDATE") && stderr.contains(&role),
        "{stdout} {stderr}"
    );

    drop(replica_store);
    admin
        .execute(format!("DROP DATABASE \"{db}\" WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
        .await
        .unwrap();
}

const PASSWORD: &str = "correct horse battery";
/// The password bob chooses at his first login (an administrator-set one is temporary).
const BOB_PASSWORD: &str = "his own harbour key 8 at dusk";

/// Logs `username` in over HTTP; panics unless it succeeds.
fn login(port: u16, username: &str) -> String {
    login_with(port, username, PASSWORD)
}

/// Logs `username` in with `password` over HTTP; panics unless it succeeds.
fn login_with(port: u16, username: &str, password: &str) -> String {
    common::login(port, username, password)
}

/// Two admins on the server; ada proposes a notary interval, may not approve it herself (403),
/// bob approves it with his password. Returns the change id.
fn four_eyes_change(port: u16) -> String {
    let call = |method, path: &str, token: Option<&str>, body: serde_json::Value| {
        common::http_json(port, method, path, token, Some(&body))
    };
    let account = |name: &str, full: &str| serde_json::json!({"username": name, "full_name": full, "password": PASSWORD, "role": "admin", "reason": "a second administrator for four-eyes"});
    common::register_admin(port, "ada", "Ada Admin", PASSWORD);
    let ada = login(port, "ada");
    let (s, b) = call(
        "POST",
        "/api/v1/accounts",
        Some(&ada),
        account("bob", "Bob Admin"),
    );
    assert_eq!(s, 201, "{b}");
    // An administrator-set password is temporary: bob replaces it at his first login.
    let (s, b) = call(
        "POST",
        "/api/v1/auth/password",
        None,
        serde_json::json!({"username": "bob", "old_password": PASSWORD, "new_password": BOB_PASSWORD}),
    );
    assert_eq!(s, 204, "{b}");
    let bob = login_with(port, "bob", BOB_PASSWORD);
    let (s, proposal) = call(
        "POST",
        "/api/v1/changes",
        Some(&ada),
        serde_json::json!({"setting": "notary_interval_secs", "value": 1800, "reason": "audit cadence"}),
    );
    assert_eq!(s, 201, "proposing on Postgres: {proposal}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    let approval = serde_json::json!({"password": PASSWORD, "reason": "checked with QA"});
    let approve = format!("/api/v1/changes/{id}/approve");
    let (s, b) = call("POST", &approve, Some(&ada), approval.clone());
    assert_eq!(s, 403, "self-approval must be refused: {b}");
    let approval = serde_json::json!({"password": BOB_PASSWORD, "reason": "checked with QA"});
    let (s, b) = call("POST", &approve, Some(&bob), approval);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "approved", "{b}");
    id
}
