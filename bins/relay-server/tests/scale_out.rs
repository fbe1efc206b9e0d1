//! Scale-out (issue 11, part 4): the server of record scales by running several stateless
//! `relay-server` processes against one Postgres database. Two servers (A, B) share one
//! database, one Object Lock bucket and the same secrets (as replicas behind a load balancer
//! would, from one secret store); four `relay-edge` processes capture continuously, edges 1-2
//! forwarding to A and 3-4 to B. Half-way, edges 1 and 3 are SIGKILLed (mid-batch) and
//! restarted pointing at the other server, so a trail's batches arrive through both servers
//! and a batch may be in flight on one while it is re-sent through the other.
//!
//! At the end: no fork and no gap (each replica equals its edge's trail record for record),
//! every file captured exactly once, and `relay-server verify` passes on both servers for the
//! four trails and the shared `_relay`, which holds the start-up of both.
//!
//! Needs Postgres (`RELAY_TEST_PG_ADMIN_DSN`, default postgres@127.0.0.1:5432) and an S3
//! endpoint with Object Lock (moto): skipped with a printed reason when either is absent, a
//! failure under `RELAY_REQUIRE_SERVICES=1`.
#![cfg(feature = "selfhosted")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use common::*;
use relay_domain::TrailId;
use relay_domain::ports::RecordStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

const TEST: &str = "scale-out: 2 servers, 4 edges";
const EDGES: [&str; 4] = ["ws-scale-1", "ws-scale-2", "ws-scale-3", "ws-scale-4"];

struct EdgeRig {
    name: &'static str,
    dir: PathBuf,
    conf: PathBuf,
    inbox: PathBuf,
    token: String,
    proc: Proc,
    written: u64,
}

// REQ: R1.5, R8.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_take_four_edges_without_fork_or_gap() {
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
    let bucket = format!("relay-scale-{suffix}");
    if let Err(why) = s3.create_locked_bucket(&bucket).await {
        return skip_or_fail(TEST, &why);
    }
    let s3_vars = s3.vars();
    let (db, role) = (
        format!("relay_scale_{suffix}"),
        format!("relay_app_scale_{suffix}"),
    );
    let app_dsn = common::migrated_database(&mut admin, &admin_options, &db, &role).await;

    let root = tempfile::TempDir::new().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let edge_list = EDGES
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let dir = root.path().join(format!("server-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = reserve_port();
        let conf = root.path().join(format!("server-{name}.toml"));
        std::fs::write(
            &conf,
            format!(
                "data_dir = {dir:?}\ndevice = \"server-{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
                 ingest_edges = [{edge_list}]\nnotary_interval_secs = 3600\n[storage]\n\
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
        servers.push((dir, conf, port, proc));
    }
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://127.0.0.1:{}", s.2))
        .collect();
    let url = |i: usize| urls[i].clone();

    // Edges 1-2 forward to A, 3-4 to B; their trail keys and ingest tokens go to A's secrets.
    let mut edges = Vec::new();
    for (i, name) in EDGES.into_iter().enumerate() {
        let (dir, inbox) = (
            root.path().join(format!("edge-{name}")),
            root.path().join(format!("inbox-{name}")),
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        let token = ingest_token(&servers[0].1, name, &s3_vars);
        let conf = root.path().join(format!("{name}.toml"));
        write_edge_config(&conf, name, &dir, &inbox, &url(i / 2), &token, 20);
        let mut proc = Proc::new(
            name,
            edge_bin(),
            &["run", "--config", conf.to_str().unwrap()],
            &logs.join(format!("{name}.log")),
        );
        proc.start();
        edges.push(EdgeRig {
            name,
            dir,
            conf,
            inbox,
            token,
            proc,
            written: 0,
        });
    }
    for e in &edges {
        let key = e.dir.join("secrets/trail-hmac.json");
        wait_for_file(&key, Duration::from_secs(20)).await;
        copy_secret(
            &key,
            &servers[0]
                .0
                .join(format!("secrets/trail-hmac.{}.json", e.name)),
        );
    }
    // A creates the server's own `_relay` key on its first start; B gets the same secrets.
    servers[0].3.start();
    wait_for_file(
        &servers[0].0.join("secrets/trail-hmac.json"),
        Duration::from_secs(30),
    )
    .await;
    // The seal key (made before the trail key) signs both servers' checkpoints.
    assert!(servers[0].0.join("secrets/export-seal.json").is_file());
    for entry in std::fs::read_dir(servers[0].0.join("secrets")).unwrap() {
        let from = entry.unwrap().path();
        let to = servers[1].0.join("secrets").join(from.file_name().unwrap());
        copy_secret(&from, &to);
    }
    servers[1].3.start();

    let started = Instant::now();
    let writers: Vec<_> = edges
        .iter()
        .map(|e| Writer::start(e.inbox.clone(), e.name, Duration::from_millis(40)))
        .collect();

    // Half-way, edges 1 and 3 change servers: killed mid-batch, restarted towards the other.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let mut acked_before_switch = Vec::new();
    for (i, to) in [(0usize, 1usize), (2, 0)] {
        let e = &mut edges[i];
        let (_, acked) = edge_head_and_acked(&e.dir, e.name).await;
        assert!(acked > 0, "{}: nothing forwarded before the switch", e.name);
        acked_before_switch.push((i, acked));
        e.proc.sigkill();
        write_edge_config(&e.conf, e.name, &e.dir, &e.inbox, &url(to), &e.token, 20);
        e.proc.start();
    }
    tokio::time::sleep(Duration::from_millis(4000)).await;
    for (e, w) in edges.iter_mut().zip(writers) {
        e.written = w.finish().await;
    }
    for (_, _, _, proc) in &mut servers {
        assert!(proc.running(), "{} died:\n{}", proc.name, proc.log_tail());
    }

    // Catch up: every file captured, every record acknowledged and in Postgres.
    let replica_store =
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn.clone()))
            .await
            .unwrap();
    let catch_up = Instant::now();
    let mut total = 0;
    for e in &edges {
        let files = e.written;
        assert!(files > 100, "{}: only {files} files written", e.name);
        loop {
            let trail = local_records(&e.dir, e.name).await;
            let captured = captures(&trail).len() as u64;
            let (head, acked) = edge_head_and_acked(&e.dir, e.name).await;
            let replica_head = replica_store
                .head(&TrailId::new(e.name).unwrap())
                .await
                .unwrap()
                .map_or(0, |h| h.seq.get());
            if captured >= files && head == acked && replica_head == head {
                total += head;
                break;
            }
            assert!(
                catch_up.elapsed() < Duration::from_secs(60),
                "{}: no catch-up: captured {captured}/{files}, head {head}, acked {acked}, \
                 replica {replica_head}; logs in {}",
                e.name,
                logs.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    eprintln!(
        "scale-out: {total} records from 4 edges through 2 servers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Both servers took a share, and no record was stored twice: the servers' ingest counters
    // count new rows only (a re-send acknowledged as already present adds nothing), so they
    // never add up to more than the records. They may add up to less: a batch committed by a
    // request whose edge was SIGKILLed at the switch is stored but never answered (nor
    // counted), and its re-send through the other server is acknowledged as already present.
    let ingested: Vec<u64> = servers
        .iter()
        .map(|s| metric(s.2, "relay_ingest_records_total").unwrap() as u64)
        .collect();
    let counted: u64 = ingested.iter().sum();
    eprintln!(
        "scale-out: new rows counted by A {}, by B {}; {} stored by a request whose edge was killed",
        ingested[0],
        ingested[1],
        total - counted.min(total)
    );
    assert!(ingested.iter().all(|&n| n > 0), "{ingested:?}");
    assert!(
        counted <= total,
        "more rows ingested than records: {ingested:?}"
    );
    assert!(
        total - counted <= 2 * 20,
        "at most the two batches in flight at the switch go uncounted: {ingested:?} of {total}"
    );
    for (i, acked) in acked_before_switch {
        let e = &edges[i];
        let (head, _) = edge_head_and_acked(&e.dir, e.name).await;
        assert!(
            head > acked,
            "{}: records after the switch went through the other server",
            e.name
        );
    }
    for e in &mut edges {
        e.proc.stop();
    }
    for (_, _, _, proc) in &mut servers {
        proc.stop();
    }

    for e in &edges {
        let edge_trail = local_records(&e.dir, e.name).await;
        let replica = all_records(&replica_store, e.name).await;
        assert_eq!(
            replica.len(),
            edge_trail.len(),
            "{}: replica length",
            e.name
        );
        for (s, l) in replica.iter().zip(&edge_trail) {
            assert_eq!(s, l, "{}: record differs at seq {}", e.name, l.chain_seq);
        }
        let seen = captures(&edge_trail);
        assert_eq!(seen.len() as u64, e.written, "{}: every file", e.name);
        assert!(seen.values().all(|&n| n == 1), "{}: a duplicate", e.name);
        let relay = local_records(&e.dir, "_relay").await;
        assert!(
            relay.iter().all(|r| r.kind.as_str() != "FORWARD_POISONED"),
            "{}: nothing poisoned",
            e.name
        );
    }
    // The servers' shared `_relay`: both started, nothing refused.
    let server_relay = all_records(&replica_store, "_relay").await;
    for device in ["server-a", "server-b"] {
        assert!(
            server_relay
                .iter()
                .any(|r| r.kind.as_str() == "STARTUP" && r.device.as_str() == device),
            "STARTUP of {device} in the shared _relay"
        );
    }
    let refused: Vec<_> = server_relay
        .iter()
        .filter(|r| {
            r.kind.as_str() == "SYSTEM"
                && r.payload.to_value().unwrap()["event"] == "INGEST_REFUSED"
        })
        .map(|r| r.payload.to_value().unwrap())
        .collect();
    assert!(refused.is_empty(), "ingest refused: {refused:?}");
    for (_, conf, _, _) in &servers {
        let report = server_verify(conf, &s3_vars);
        for name in EDGES {
            assert!(report.contains(&format!("OK      {name}:")), "{report}");
        }
        assert!(report.contains("OK      _relay:"), "{report}");
    }

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
