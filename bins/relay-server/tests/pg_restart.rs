//! Postgres restarted under load (issue 11, part 3), on a **private** Postgres instance so the
//! fault touches nothing else: `initdb` into a temporary directory, `pg_ctl` on a free port,
//! restarted with `pg_ctl restart -m fast` (clean shutdown, clients disconnected) and
//! `-m immediate` (a crash: WAL recovery on start), and once stopped for two seconds.
//!
//! - **Ingest:** two real `relay-edge` processes capture continuously and forward to a
//!   self-hosted `relay-server` (Postgres + S3 Object Lock). The forwarders retry through the
//!   outages, the server keeps running, and at the end each replica equals its edge's trail
//!   record for record and `relay-server verify` passes.
//! - **Appends:** four tasks append through one `AppendService` on `PgRecordStore` (group
//!   commit) while Postgres restarts. Every acknowledged record is stored at its seq, nothing
//!   is stored twice (a failed append is looked up before it is retried, as the capture index
//!   does), the seqs have no gap and the chain verifies.
//!
//! Needs the Postgres server binaries (`initdb`, `pg_ctl`; `RELAY_TEST_PG_BIN` or
//! `/usr/lib/postgresql/<v>/bin`) and, for ingest, an S3 endpoint with Object Lock (moto from
//! `.ci/services.sh`). Skipped with a printed reason when absent, a failure under
//! `RELAY_REQUIRE_SERVICES=1`. As root, Postgres runs as the `postgres` user (`runuser`).
#![cfg(feature = "selfhosted")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use relay_conformance::test_ports::reserve_port;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use relay_domain::keys::{KeyRing, TrailKey};
use relay_domain::ports::{RecordStore, TimeSource};
use relay_domain::{
    Actor, ActorSource, AppendService, ChainVerifier, Device, EventDraft, EventKind, KeyId,
    Payload, Subject, TrailId,
};
use sqlx::{ConnectOptions, Executor};

/// A Postgres cluster of our own in a temporary directory; stopped (immediately) on drop.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl PrivatePg {
    fn bin_dir() -> Option<PathBuf> {
        if let Ok(dir) = std::env::var("RELAY_TEST_PG_BIN") {
            return Some(PathBuf::from(dir));
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
            .collect();
        versions.sort();
        versions.pop()
    }

    fn start() -> Result<Self, String> {
        let bin = Self::bin_dir().ok_or("no Postgres server binaries (initdb, pg_ctl) found")?;
        let run_as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("relay-private-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.path().join("sock")).map_err(|e| e.to_string())?;
        if run_as_postgres {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            let user = nix::unistd::User::from_name("postgres")
                .map_err(|e| e.to_string())?
                .ok_or("running as root, but there is no postgres user to run Postgres as")?;
            for p in [dir.path().to_owned(), dir.path().join("sock")] {
                nix::unistd::chown(&p, Some(user.uid), Some(user.gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        let pg = Self {
            dir,
            bin,
            port: reserve_port(),
            run_as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let options = pg.options();
        let log = pg.dir.path().join("postgres.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a Postgres tool, its output appended to `tools.log`: never to a pipe, which the
    /// postmaster `pg_ctl start` leaves behind would hold open forever.
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let log_path = self.dir.path().join("tools.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let status = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if status.success() {
            Ok(())
        } else {
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = out.lines().rev().take(15).collect();
            Err(format!(
                "{tool} {} exited with {status}: {}",
                args.join(" "),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }

    fn ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", data.to_str().unwrap(), "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all).unwrap();
    }

    /// `pg_ctl restart -m fast|immediate`; returns how long Postgres was unavailable.
    fn restart(&self, mode: &str) -> Duration {
        let started = Instant::now();
        self.ctl(&["-m", mode, "restart"]);
        started.elapsed()
    }

    fn stop(&self) {
        self.ctl(&["-m", "fast", "stop"]);
    }

    /// Restarts Postgres (`mode` as in [`Self::restart`]) at a moment when at least one append
    /// to `trail` of database `db` is inside its transaction: the test takes the trail's
    /// advisory lock itself (as the superuser), waits until the runtime role's appends are
    /// seen waiting for it in `pg_stat_activity`, and restarts with the lock held. Those
    /// appends cannot have committed, so the restart must fail them. Panics when no append
    /// waits within 30 s (for instance because the store's lock key changed).
    async fn restart_with_appends_in_flight(&self, mode: &str, db: &str, trail: &str) -> Duration {
        // The record store's advisory lock: `pg_advisory_xact_lock(namespace, hashtext(trail))`
        // with the adapter's namespace 'RELA' (adapters/relay-selfhosted/src/migrate.rs).
        const LOCK_NAMESPACE: i32 = 0x5245_4C41;
        let mut holder = self
            .dsn("postgres", db)
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap();
        holder.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_NAMESPACE)
            .bind(trail)
            .execute(&mut holder)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE usename <> 'postgres' AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
            )
            .fetch_one(&mut holder)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no append waited for the trail's advisory lock within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The holder's connection dies with the server; its lock and transaction with it.
        let took = tokio::task::block_in_place(|| self.restart(mode));
        drop(holder);
        took
    }

    fn start_again(&self) {
        let log = self.dir.path().join("postgres.log");
        let options = self.options();
        self.ctl(&["-o", &options, "-l", log.to_str().unwrap(), "start"]);
    }

    /// The server options (`pg_ctl restart` reuses them; `start` must be told again).
    fn options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.path().join("sock").display()
        )
    }

    fn dsn(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` and migrates it with `relay-server migrate`; the runtime DSN.
    async fn migrated_database(&self, db: &str, role: &str) -> String {
        let mut admin = self
            .dsn("postgres", "postgres")
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE \"{db}\"").as_str())
            .await
            .unwrap();
        let migrated = Command::new(server_bin())
            .args([
                "migrate",
                "--admin-dsn",
                &self.dsn("postgres", db),
                "--app-role",
                role,
            ])
            .env("RELAY_LOG", "error")
            .output()
            .unwrap();
        assert!(
            migrated.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        self.dsn(role, db)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        if let Err(e) = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        ) {
            eprintln!("private Postgres not stopped: {e}");
        }
    }
}

fn private_pg(test: &str) -> Option<PrivatePg> {
    match PrivatePg::start() {
        Ok(pg) => Some(pg),
        Err(why) => {
            skip_or_fail(test, &format!("cannot run a private Postgres: {why}"));
            None
        }
    }
}

const EDGES: [&str; 2] = ["ws-pg-a", "ws-pg-b"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_survives_postgres_restarts_and_a_crash_without_loss_or_duplicates() {
    const TEST: &str = "Postgres restart during ingest";
    let Some(pg) = private_pg(TEST) else { return };
    let s3 = S3Env::from_env();
    let suffix = unique_suffix();
    let bucket = format!("relay-pgrestart-{suffix}");
    if let Err(why) = s3.create_locked_bucket(&bucket).await {
        return skip_or_fail(TEST, &why);
    }
    let app_dsn = pg.migrated_database("relay", "relay_app").await;

    let root = tempfile::TempDir::new().unwrap();
    let (server_dir, logs) = (root.path().join("server"), root.path().join("logs"));
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let server_port = reserve_port();
    let server_conf = root.path().join("server.toml");
    std::fs::write(
        &server_conf,
        format!(
            "data_dir = {server_dir:?}\ndevice = \"server-pg-restart\"\nlisten = \"127.0.0.1:{server_port}\"\n\
             ingest_edges = [\"{}\", \"{}\"]\nnotary_interval_secs = 3600\n[storage]\nprovider = \"selfhosted\"\n\
             pg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\n",
            EDGES[0], EDGES[1]
        ),
    )
    .unwrap();
    let s3_vars = s3.vars();

    struct EdgeRig {
        name: &'static str,
        dir: PathBuf,
        conf: PathBuf,
        inbox: PathBuf,
        proc: Proc,
        written: u64,
    }
    let mut edges = Vec::new();
    for name in EDGES {
        let (dir, inbox) = (
            root.path().join(format!("edge-{name}")),
            root.path().join(format!("inbox-{name}")),
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        let token = ingest_token(&server_conf, name, &s3_vars);
        let conf = root.path().join(format!("{name}.toml"));
        write_edge_config(
            &conf,
            name,
            &dir,
            &inbox,
            &format!("http://127.0.0.1:{server_port}"),
            &token,
            10,
        );
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
            proc,
            written: 0,
        });
    }
    for e in &edges {
        let key = e.dir.join("secrets/trail-hmac.json");
        wait_for_file(&key, Duration::from_secs(20)).await;
        copy_secret(
            &key,
            &server_dir.join(format!("secrets/trail-hmac.{}.json", e.name)),
        );
    }
    let mut server = Proc::new(
        "relay-server",
        server_bin(),
        &["run", "--config", server_conf.to_str().unwrap()],
        &logs.join("server.log"),
    );
    for (k, v) in &s3_vars {
        server = server.env(k, v);
    }
    server.start();
    let writers: Vec<_> = edges
        .iter()
        .map(|e| Writer::start(e.inbox.clone(), e.name, Duration::from_millis(40)))
        .collect();

    // The outages are to hit a running server in the middle of ingest, not its start-up: wait
    // (bounded) until it has stored forwarded records. (Seen on a loaded machine: a "fast"
    // restart took 15.7 s and landed on start-up, where the server cannot record its STARTUP
    // event and exits for its service manager to restart it; not what this test is about.)
    let up = std::time::Instant::now();
    while metric(server_port, "relay_ingest_records_total").unwrap_or(0.0) < 1.0 {
        assert!(
            server.running() && up.elapsed() < Duration::from_secs(60),
            "relay-server never ingested a record:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fast = tokio::task::block_in_place(|| pg.restart("fast"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let crash = tokio::task::block_in_place(|| pg.restart("immediate"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    tokio::task::block_in_place(|| pg.stop());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    tokio::task::block_in_place(|| pg.start_again());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (e, w) in edges.iter_mut().zip(writers) {
        e.written = w.finish().await;
    }
    eprintln!(
        "Postgres restarted (fast) in {fast:?}, crashed and recovered in {crash:?}, stopped 2 s"
    );
    assert!(
        server.running(),
        "relay-server must ride out the outages:\n{}",
        server.log_tail()
    );

    let replica_store =
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn.clone()))
            .await
            .unwrap();
    let start = Instant::now();
    for e in &edges {
        let files = e.written;
        assert!(files > 100, "{}: only {files} files written", e.name);
        loop {
            let trail = local_records(&e.dir, e.name).await;
            let captured = captures(&trail).len() as u64;
            let replica_head = replica_store
                .head(&TrailId::new(e.name).unwrap())
                .await
                .unwrap()
                .map_or(0, |h| h.seq.get());
            let (head, acked) = edge_head_and_acked(&e.dir, e.name).await;
            if captured >= files && head == acked && replica_head == head {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{}: no catch-up: captured {captured}/{files}, head {head}, acked {acked}, \
                 replica {replica_head}; logs in {}",
                e.name,
                logs.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for e in &mut edges {
        e.proc.stop();
    }
    server.stop();

    for e in &edges {
        let edge_trail = local_records(&e.dir, e.name).await;
        let replica = all_records(&replica_store, e.name).await;
        assert_eq!(
            replica, edge_trail,
            "{}: the replica equals the edge trail record for record",
            e.name
        );
        let seen = captures(&edge_trail);
        assert_eq!(seen.len() as u64, e.written, "{}: every file", e.name);
        assert!(seen.values().all(|&n| n == 1), "{}: a duplicate", e.name);
        let relay = local_records(&e.dir, "_relay").await;
        assert!(
            relay.iter().all(|r| r.kind.as_str() != "FORWARD_POISONED"),
            "{}: nothing poisoned",
            e.name
        );
        edge_verify(&e.conf);
    }
    // How the outages reached the edges: mostly as slow answers (the server's pool waits for
    // Postgres to come back), sometimes as a 503 that the forwarder retried.
    let retries: Vec<String> = EDGES
        .iter()
        .flat_map(|name| {
            std::fs::read_to_string(logs.join(format!("{name}.log")))
                .unwrap()
                .lines()
                .filter(|l| l.contains("forward failed; retrying"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    eprintln!(
        "forwarders retried {} times; first: {}",
        retries.len(),
        retries.first().map_or("-", String::as_str)
    );
    let report = server_verify(&server_conf, &s3_vars);
    for name in EDGES {
        assert!(report.contains(&format!("OK      {name}:")), "{report}");
    }
    assert!(report.contains("OK      _relay:"), "{report}");
    drop(replica_store);
}

fn draft(trail: &TrailId, subject: &str) -> EventDraft {
    EventDraft {
        trail_id: trail.clone(),
        kind: EventKind::new("FILE_CREATED").unwrap(),
        actor: Some(Actor::new("pg-restart-test").unwrap()),
        actor_source: ActorSource::System,
        occurred_at: None,
        device: Device::new("ws-append").unwrap(),
        project: None,
        subject: Some(Subject::new(subject).unwrap()),
        payload: Payload::parse(&format!("{{\"file\":\"{subject}\"}}")).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_resume_after_postgres_restarts_with_every_acknowledged_record_stored_once() {
    const TEST: &str = "Postgres restart during appends";
    const WRITERS: usize = 4;
    let Some(pg) = private_pg(TEST) else { return };
    let app_dsn = pg.migrated_database("relay", "relay_app").await;
    let store: Arc<relay_selfhosted::PgRecordStore> = Arc::new(
        relay_selfhosted::PgRecordStore::connect(
            &relay_selfhosted::PgConfig::new(app_dsn.clone())
                .acquire_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap(),
    );
    let key = TrailKey::new(KeyId::new("k-pg-restart").unwrap(), &[0x42; 32]).unwrap();
    let clock: Arc<dyn TimeSource> = Arc::new(relay_local::SystemTimeSource::new());
    let appender = Arc::new(AppendService::new(store.clone(), clock, key.clone()));
    let trail = TrailId::new("pg-append").unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (appender, store, trail, stop) =
            (appender.clone(), store.clone(), trail.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // (subject, acknowledged seq, checksum) of every append; failures seen.
            let mut acked = Vec::new();
            let mut failures = 0u32;
            let mut ambiguous = 0u32;
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let subject = format!("w{w}/file-{i:05}");
                loop {
                    match appender.append(draft(&trail, &subject)).await {
                        Ok(r) => {
                            acked.push((subject.clone(), r.chain_seq.get(), r.checksum));
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            // The outcome of a failed commit may be unknown (the connection
                            // died after COMMIT was sent, or Postgres crashed after the commit
                            // record was flushed): find out before retrying, as the capture
                            // index and the ingest's idempotent re-send do.
                            let deadline = Instant::now() + Duration::from_secs(60);
                            let found = loop {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                match find_subject(store.as_ref(), &trail, &subject).await {
                                    Ok(found) => break found,
                                    Err(lookup) => assert!(
                                        Instant::now() < deadline,
                                        "Postgres never came back: {e}; {lookup}"
                                    ),
                                }
                            };
                            if let Some(r) = found {
                                ambiguous += 1;
                                acked.push((subject.clone(), r.chain_seq.get(), r.checksum));
                                break;
                            }
                        }
                    }
                }
            }
            (acked, failures, ambiguous)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each restart happens while appends are known to be inside their transaction (waiting
    // for the trail's advisory lock, which the test holds), so it must break them: the
    // precondition is forced, never left to timing luck.
    let fast = pg
        .restart_with_appends_in_flight("fast", "relay", trail.as_str())
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let crash = pg
        .restart_with_appends_in_flight("immediate", "relay", trail.as_str())
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let (mut failures, mut ambiguous) = (0, 0);
    for t in tasks {
        let (a, f, u) = tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .expect("writers finish")
            .unwrap();
        acked.extend(a);
        failures += f;
        ambiguous += u;
    }
    eprintln!(
        "appends: {} acknowledged, {failures} failed attempts ({ambiguous} of them had been \
         stored: the commit outcome was lost with the connection); Postgres restarted (fast) in \
         {fast:?}, crashed and recovered in {crash:?}",
        acked.len()
    );
    assert!(failures > 0, "the restarts must have hit appends in flight");

    let stored = all_records(store.as_ref(), trail.as_str()).await;
    // No gap, and the chain verifies.
    for (i, r) in stored.iter().enumerate() {
        assert_eq!(r.chain_seq.get(), i as u64 + 1, "seqs without gap");
    }
    let ring = KeyRing::single(key);
    let mut verifier = ChainVerifier::new(trail.clone(), &ring);
    for r in &stored {
        verifier.push(r).unwrap();
    }
    let summary = verifier.finish().unwrap();
    assert_eq!(summary.records, stored.len() as u64);
    // Every acknowledged record is stored where it was acknowledged, and nothing twice.
    for (subject, seq, checksum) in &acked {
        let r = &stored[usize::try_from(*seq).unwrap() - 1];
        assert_eq!(r.checksum, *checksum, "seq {seq} ({subject})");
        assert_eq!(r.subject.as_ref().unwrap().as_str(), subject);
    }
    let mut subjects: Vec<&str> = stored
        .iter()
        .map(|r| r.subject.as_ref().unwrap().as_str())
        .collect();
    subjects.sort_unstable();
    let before = subjects.len();
    subjects.dedup();
    assert_eq!(subjects.len(), before, "a record was stored twice");
    assert_eq!(
        stored.len(),
        acked.len(),
        "every stored record was acknowledged"
    );
}

/// The record of `trail` whose subject is `subject`, if stored (a scan; the trail is small).
async fn find_subject(
    store: &dyn RecordStore,
    trail: &TrailId,
    subject: &str,
) -> Result<Option<relay_domain::Record>, relay_domain::ports::RecordStoreError> {
    let mut after = 0;
    loop {
        let page = store.read(trail, after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = last.chain_seq.get();
        if let Some(r) = page
            .into_iter()
            .find(|r| r.subject.as_ref().is_some_and(|s| s.as_str() == subject))
        {
            return Ok(Some(r));
        }
    }
}
