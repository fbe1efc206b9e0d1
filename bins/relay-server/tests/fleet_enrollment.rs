//! A fleet, not a pet (issue 24), at the process level: two `relay-server` replicas on one
//! Postgres (and one shared secrets directory, as replicas behind a load balancer share their
//! secret store), configured with **no** `ingest_edges`, and three fresh workstations.
//!
//! - Each edge is enrolled with one command (`relay-edge enroll --server … --code …`), the
//!   codes issued through the API of one replica and the CLI of the other; no server restarts.
//! - A replayed code, a code presented by another edge and an expired code are refused.
//! - Edge 2 rotates its trail key mid-capture (`relay-edge keys rotate`, then a restart): its
//!   forwarder registers the new key version with the server, proven under the previous one, and
//!   forwarding never halts (no poison, the replica catches up, records under the new key id).
//! - Edge 3 is revoked mid-run through replica A: both replicas refuse its token at once (401),
//!   and the fleet view shows it revoked and lagging; re-enrolled with a new code, it catches up.
//! - `GET /api/v1/fleet`, `relay-server fleet --json` and `/metrics` show all three with the
//!   right heads and lag; `relay-server verify` holds on every trail.
//!
//! Needs Postgres and moto (S3 Object Lock); skipped with a printed reason when absent, a failure
//! under `RELAY_REQUIRE_SERVICES=1`.
#![cfg(feature = "selfhosted")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use common::*;
use relay_domain::TrailId;
use relay_domain::ports::RecordStore;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

const TEST: &str = "fleet enrollment: 2 replicas, 3 edges";
const EDGES: [&str; 3] = ["ws-fleet-1", "ws-fleet-2", "ws-fleet-3"];
const PASSWORD: &str = "Fleet-Keeper-Passphrase-2026!";

struct Edge {
    name: &'static str,
    dir: PathBuf,
    conf: PathBuf,
    inbox: PathBuf,
    proc: Proc,
}

fn write_conf(path: &Path, edge: &str, dir: &Path, inbox: &Path) {
    // No forward_url and no token: enrollment provides both.
    std::fs::write(
        path,
        format!(
            "data_dir = {dir:?}\nwatch = [{inbox:?}]\ndevice = \"{edge}\"\nlisten = \"127.0.0.1:0\"\n\
             settle_ms = 150\nrescan_secs = 1\nforward_batch = 20\n"
        ),
    )
    .unwrap();
}

/// `relay-edge enroll`: exit code and output.
fn enroll(e: &Edge, port: u16, code: &str) -> (i32, String) {
    let out = Command::new(edge_bin())
        .args([
            "enroll",
            "--config",
            e.conf.to_str().unwrap(),
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("RELAY_ENROLL_CODE", code)
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `relay-server enroll-code` through the CLI of the server with `conf`.
fn cli_code(conf: &Path, edge: &str, envs: &[(&'static str, String)]) -> String {
    let out = Command::new(server_bin())
        .args([
            "enroll-code",
            "--config",
            conf.to_str().unwrap(),
            "--edge",
            edge,
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll-code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 32, "{code}");
    code
}

fn api_code(port: u16, token: &str, edge: &str) -> String {
    let (status, v) = http_json(
        port,
        "POST",
        "/api/v1/fleet/codes",
        Some(token),
        Some(&json!({"edge": edge, "ttl_minutes": 30})),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["issued_by"], "ada", "{v}");
    v["code"].as_str().unwrap().to_owned()
}

fn register_admin(port: u16) {
    common::register_admin(port, "ada", "Ada Admin", PASSWORD);
}

/// A session on the replica at `port` (sessions live in the replica that opened them).
fn login(port: u16) -> String {
    common::login(port, "ada", PASSWORD)
}

/// The ingest token the edge stored (its `forward-token` secret file, newest version).
fn stored_token(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("secrets/forward-token.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["versions"].as_array().unwrap().last().unwrap()["secret_hex"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/v1/ingest/heads` with `edge`'s `token`: the HTTP status (200 while the edge is
/// accepted, 401 once refused). It stores nothing, so the probe changes no edge's health.
fn ingest_status(port: u16, edge: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/ingest/heads HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nX-Relay-Edge: {edge}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn fleet_edge<'a>(view: &'a Value, edge: &str) -> &'a Value {
    view["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["edge"] == edge)
        .unwrap_or_else(|| panic!("{edge} not in the fleet view: {view}"))
}

async fn replica_head(store: &relay_selfhosted::PgRecordStore, trail: &str) -> u64 {
    store
        .head(&TrailId::new(trail).unwrap())
        .await
        .unwrap()
        .map_or(0, |h| h.seq.get())
}

/// Waits until the replica holds everything the edge recorded and acknowledged.
async fn caught_up(e: &Edge, replica: &relay_selfhosted::PgRecordStore, within: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let (head, acked) = edge_head_and_acked(&e.dir, e.name).await;
        let stored = replica_head(replica, e.name).await;
        if head > 0 && head == acked && stored == head {
            return head;
        }
        assert!(
            start.elapsed() < within,
            "{}: no catch-up (edge head {head}, acked {acked}, replica {stored}):\n{}",
            e.name,
            e.proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn not_poisoned(e: &Edge) {
    let relay = local_records(&e.dir, "_relay").await;
    assert!(
        relay.iter().all(|r| r.kind.as_str() != "FORWARD_POISONED"),
        "{}: forwarding halted",
        e.name
    );
}

// REQ: R8.3, R8.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_enroll_with_one_command_rotate_and_revoke_on_two_replicas() {
    let admin_dsn = std::env::var("RELAY_TEST_PG_ADMIN_DSN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin_options = PgConnectOptions::from_str(&admin_dsn).unwrap();
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect()).await {
            Ok(Ok(c)) => c,
            other => return skip_or_fail(TEST, &format!("Postgres unreachable: {other:?}")),
        };
    let s3 = S3Env::from_env();
    let suffix = unique_suffix();
    let bucket = format!("relay-fleet-{suffix}");
    if let Err(why) = s3.create_locked_bucket(&bucket).await {
        return skip_or_fail(TEST, &why);
    }
    let s3_vars = s3.vars();
    let (db, role) = (
        format!("relay_fleet_{suffix}"),
        format!("relay_app_fleet_{suffix}"),
    );
    let app_dsn = common::migrated_database(&mut admin, &admin_options, &db, &role).await;
    let owner_options = admin_options.clone().database(&db);

    let root = tempfile::TempDir::new().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let shared_secrets = root.path().join("shared-secrets");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&shared_secrets)
            .unwrap();
    }
    // Two replicas, no `ingest_edges`: every edge comes through enrollment.
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let dir = root.path().join(format!("server-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = reserve_port();
        let conf = root.path().join(format!("server-{name}.toml"));
        std::fs::write(
            &conf,
            format!(
                "data_dir = {dir:?}\nsecrets_dir = {shared_secrets:?}\ndevice = \"server-{name}\"\n\
                 listen = \"127.0.0.1:{port}\"\nnotary_interval_secs = 3600\n[storage]\n\
                 provider = \"selfhosted\"\npg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\n"
            ),
        )
        .unwrap();
        let mut proc = Proc::new(
            &format!("relay-server-{name}"),
            server_bin(),
            &["run", "--config", conf.to_str().unwrap()],
            &logs.join(format!("server-{name}.log")),
        );
        for (k, v) in &s3_vars {
            proc = proc.env(k, v);
        }
        proc.start();
        wait_healthy(port, &mut proc);
        servers.push((conf, port, proc));
    }
    let (port_a, port_b) = (servers[0].1, servers[1].1);
    register_admin(port_a);
    let (token, token_b) = (login(port_a), login(port_b));

    let mut edges: Vec<Edge> = EDGES
        .iter()
        .map(|name| {
            let dir = root.path().join(format!("edge-{name}"));
            let inbox = root.path().join(format!("inbox-{name}"));
            std::fs::create_dir_all(&inbox).unwrap();
            let conf = root.path().join(format!("{name}.toml"));
            write_conf(&conf, name, &dir, &inbox);
            let proc = Proc::new(
                name,
                edge_bin(),
                &["run", "--config", conf.to_str().unwrap()],
                &logs.join(format!("{name}.log")),
            );
            Edge {
                name,
                dir,
                conf,
                inbox,
                proc,
            }
        })
        .collect();

    // --- Enrollment: one command per workstation, codes from the API of B and the CLI of A.
    let code_1 = api_code(port_b, &token_b, EDGES[0]);
    let code_2 = cli_code(&servers[0].0, EDGES[1], &s3_vars);
    let code_3 = cli_code(&servers[0].0, EDGES[2], &s3_vars);
    // A code presented by another edge is refused, and stays good for its own edge.
    let (rc, out) = enroll(&edges[2], port_a, &code_2);
    assert_eq!(rc, 1, "another edge's code: {out}");
    assert!(out.contains("enrollment_refused"), "{out}");
    for (e, port, code) in [
        (&edges[0], port_a, &code_1),
        (&edges[1], port_b, &code_2),
        (&edges[2], port_a, &code_3),
    ] {
        let (rc, out) = enroll(e, port, code);
        assert_eq!(rc, 0, "{}: {out}", e.name);
        assert!(out.contains(&format!("enrolled edge {}", e.name)), "{out}");
        assert!(e.dir.join("enrollment.json").is_file());
    }
    // Replayed: refused, on either replica.
    for port in [port_a, port_b] {
        let (rc, out) = enroll(&edges[0], port, &code_1);
        assert_eq!(rc, 1, "replayed code: {out}");
        assert!(out.contains("already used"), "{out}");
    }
    // Expired: a code whose time ran out (its expiry moved into the past by the database
    // owner, standing in for an hour passing) is refused.
    let stale = cli_code(&servers[1].0, "ws-fleet-late", &s3_vars);
    {
        let mut owner = owner_options.clone().connect().await.unwrap();
        owner
            .execute(
                "UPDATE enrollment_codes SET expires_at = '2020-01-01T00:00:00.000000Z' \
                 WHERE edge = 'ws-fleet-late'",
            )
            .await
            .unwrap();
    }
    let late_dir = root.path().join("edge-late");
    let late_conf = root.path().join("late.toml");
    write_conf(
        &late_conf,
        "ws-fleet-late",
        &late_dir,
        &root.path().join("inbox-late"),
    );
    let late = Edge {
        name: "ws-fleet-late",
        dir: late_dir,
        conf: late_conf,
        inbox: root.path().join("inbox-late"),
        proc: Proc::new("late", edge_bin(), &[], &logs.join("late.log")),
    };
    let (rc, out) = enroll(&late, port_a, &stale);
    assert_eq!(rc, 1, "expired code: {out}");
    assert!(out.contains("expired"), "{out}");
    assert!(!late.dir.join("enrollment.json").exists());

    // --- Capture and forward, no server restarted since the enrollments.
    for e in &mut edges {
        e.proc.start();
    }
    let mut writers: Vec<Option<Writer>> = edges
        .iter()
        .map(|e| {
            Some(Writer::start(
                e.inbox.clone(),
                e.name,
                Duration::from_millis(50),
            ))
        })
        .collect();
    let replica =
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn.clone()))
            .await
            .unwrap();
    let start = Instant::now();
    for e in &edges {
        while replica_head(&replica, e.name).await < 10 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} never forwarded:\n{}",
                e.name,
                e.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // --- Edge 2 rotates its key mid-capture (its writer keeps writing while it restarts).
    let old_key = {
        let records = local_records(&edges[1].dir, EDGES[1]).await;
        records.last().unwrap().key_id.clone()
    };
    edges[1].proc.stop();
    let out = Command::new(edge_bin())
        .args([
            "keys",
            "rotate",
            "--config",
            edges[1].conf.to_str().unwrap(),
        ])
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    edges[1].proc.start();

    // --- Edge 3 revoked through A: both replicas refuse its token at once.
    let token_3 = stored_token(&edges[2].dir);
    assert_eq!(
        ingest_status(port_b, EDGES[2], &token_3),
        200,
        "before revocation"
    );
    let (status, v) = http_json(
        port_a,
        "POST",
        &format!("/api/v1/fleet/edges/{}/revoke", EDGES[2]),
        Some(&token),
        Some(&json!({"reason": "workstation sent for repair"})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "revoked", "{v}");
    for port in [port_a, port_b] {
        assert_eq!(
            ingest_status(port, EDGES[2], &token_3),
            401,
            "revoked, port {port}"
        );
    }
    let revoked_at = replica_head(&replica, EDGES[2]).await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (w, e) in writers.iter_mut().zip(&edges).take(2) {
        let written = w.take().unwrap().finish().await;
        assert!(written > 20, "{}: only {written} files", e.name);
    }
    let head_1 = caught_up(&edges[0], &replica, Duration::from_secs(60)).await;
    let head_2 = caught_up(&edges[1], &replica, Duration::from_secs(60)).await;
    not_poisoned(&edges[0]).await;
    not_poisoned(&edges[1]).await;
    let trail_2 = all_records(&replica, EDGES[1]).await;
    let new_key = trail_2.last().unwrap().key_id.clone();
    assert_ne!(
        new_key, old_key,
        "records after the rotation use the new key"
    );
    assert!(trail_2.iter().any(|r| r.key_id == old_key));
    // The revoked edge keeps capturing; the server stores none of it.
    let (local_3, _) = edge_head_and_acked(&edges[2].dir, EDGES[2]).await;
    assert!(local_3 > revoked_at, "edge 3 kept capturing");
    assert_eq!(replica_head(&replica, EDGES[2]).await, revoked_at);

    // --- The fleet view, from the other replica: heads, lag, states.
    let (status, view) = http_json(port_b, "GET", "/api/v1/fleet", Some(&token_b), None);
    assert_eq!(status, 200, "{view}");
    for (name, head) in [(EDGES[0], head_1), (EDGES[1], head_2)] {
        let e = fleet_edge(&view, name);
        assert_eq!(e["state"], "enrolled", "{e}");
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["lag_records"], 0, "{e}");
        assert_eq!(e["trails"][0]["stored_head_seq"], head, "{e}");
        assert_eq!(e["trails"][0]["local_head_seq"], head, "{e}");
        assert!(
            e["version"].as_str().unwrap().starts_with("relay-edge "),
            "{e}"
        );
    }
    let e3 = fleet_edge(&view, EDGES[2]);
    assert_eq!(e3["state"], "revoked", "{e3}");
    assert_eq!(e3["trails"][0]["stored_head_seq"], revoked_at, "{e3}");
    let edges_json = view["edges"].as_array().unwrap();
    let rank_of = |name: &str| edges_json.iter().position(|e| e["edge"] == name).unwrap();
    assert!(
        rank_of(EDGES[2]) < rank_of(EDGES[0]),
        "the revoked edge is listed before the healthy ones: {view}"
    );
    // The CLI shows the same fleet.
    let out = Command::new(server_bin())
        .args([
            "fleet",
            "--json",
            "--config",
            servers[0].0.to_str().unwrap(),
        ])
        .envs(s3_vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fleet_edge(&cli_view, EDGES[1])["trails"][0]["stored_head_seq"],
        head_2
    );
    assert_eq!(fleet_edge(&cli_view, EDGES[2])["state"], "revoked");
    // And the metrics, refreshed every 15 s.
    let start = Instant::now();
    loop {
        let revoked = metric(
            port_a,
            &format!("relay_fleet_edge_revoked{{edge=\"{}\"}}", EDGES[2]),
        );
        let lag = metric(
            port_a,
            &format!("relay_fleet_edge_lag_records{{edge=\"{}\"}}", EDGES[1]),
        );
        if revoked == Some(1.0) && lag == Some(0.0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "fleet metrics never showed the fleet: revoked {revoked:?}, lag {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // --- Re-enrollment with a new code undoes the revocation; the backlog arrives.
    let writer_3 = writers[2].take().unwrap();
    let written_3 = writer_3.finish().await;
    edges[2].proc.stop();
    let code_3b = api_code(port_a, &token, EDGES[2]);
    let (rc, out) = enroll(&edges[2], port_b, &code_3b);
    assert_eq!(rc, 0, "re-enrollment: {out}");
    assert_ne!(stored_token(&edges[2].dir), token_3, "a fresh token");
    assert_eq!(
        ingest_status(port_a, EDGES[2], &token_3),
        401,
        "the old token stays dead"
    );
    edges[2].proc.start();
    let head_3 = caught_up(&edges[2], &replica, Duration::from_secs(60)).await;
    assert!(head_3 > revoked_at);
    not_poisoned(&edges[2]).await;
    assert_eq!(
        captures(&local_records(&edges[2].dir, EDGES[2]).await).len() as u64,
        written_3
    );

    for e in &mut edges {
        e.proc.stop();
    }
    for (_, _, proc) in &mut servers {
        assert!(proc.running(), "{} died:\n{}", proc.name, proc.log_tail());
        proc.stop();
    }

    // --- The record: ENROLLED on both sides, KEY_REGISTERED, EDGE_REVOKED; every trail holds.
    let server_relay = all_records(&replica, "_relay").await;
    let kinds = |kind: &str| -> Vec<Value> {
        server_relay
            .iter()
            .filter(|r| r.kind.as_str() == kind)
            .map(|r| r.payload.to_value().unwrap())
            .collect()
    };
    let enrolled = kinds("ENROLLED");
    assert_eq!(
        enrolled.len(),
        4,
        "three enrollments and one re-enrollment: {enrolled:?}"
    );
    assert!(
        enrolled
            .iter()
            .any(|p| p["edge"] == EDGES[0] && p["code_issued_by"] == "ada"),
        "{enrolled:?}"
    );
    let registered = kinds("KEY_REGISTERED");
    assert!(
        registered
            .iter()
            .any(|p| p["edge"] == EDGES[1] && p["key_id"] == new_key.as_str()),
        "{registered:?}"
    );
    let revoked = kinds("EDGE_REVOKED");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["reason"], "workstation sent for repair");
    assert_eq!(
        kinds("ENROLLMENT_CODE_ISSUED").len(),
        5,
        "two through the API, three through the CLI"
    );
    for e in &edges {
        let relay = local_records(&e.dir, "_relay").await;
        assert!(
            relay.iter().any(|r| r.kind.as_str() == "ENROLLED"),
            "{}: ENROLLED in the edge's _relay",
            e.name
        );
        let edge_trail = local_records(&e.dir, e.name).await;
        let stored = all_records(&replica, e.name).await;
        assert_eq!(
            stored, edge_trail,
            "{}: the replica equals the edge",
            e.name
        );
    }
    let report = server_verify(&servers[1].0, &s3_vars);
    for name in EDGES {
        assert!(report.contains(&format!("OK      {name}:")), "{report}");
    }

    drop(replica);
    admin
        .execute(format!("DROP DATABASE \"{db}\" WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
        .await
        .unwrap();
}
