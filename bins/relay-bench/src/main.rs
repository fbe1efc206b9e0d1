//! `relay-bench`: measures the relay's hot paths next to the simplest baseline doing the same
//! work, in the same run, so the ratios mean something on any machine.
//!
//! `cargo run --release -p relay-bench -- [--records N] [--appends N] [--hash-mib N] [--dir DIR]`
//! prints a Markdown table (the one in docs/performance.md).
//!
//! `cargo run --release -p relay-bench -- pg [--admin-dsn DSN] [--records N]` measures batched
//! chained appends into Postgres through the self-hosted adapter (batches of 1, 100, 1000) next
//! to a plain batched INSERT of the same rows, in a database it creates and drops.
//!
//! `cargo run --release -p relay-bench -- login-flood [--attackers N] [--seconds N]
//! [--sources many|one|both]` floods a real release `relay-edge` with bogus logins while a
//! legitimate user logs in, and reports its peak RSS and the legitimate logins' latency.
//!
//! With `--json FILE` every run also appends its rows, each with its issue-11 target checked, as
//! JSON lines; `relay-bench report --from FILE... --write docs/performance.md` renders them as one
//! table between the report markers. `scripts/bench.sh` runs all of it in one command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hmac::{Hmac, Mac};
use relay_domain::canonical::canonical_bytes;
use relay_domain::chain::checksum_with_buf;
use relay_domain::ports::{RecordStore, TimeSource};
use relay_domain::{
    Actor, ActorSource, AppendService, ChainSeq, ChainVerifier, Device, EventDraft, EventKind,
    GENESIS, KeyId, KeyRing, Payload, Project, Record, Subject, TimeLabel, Timestamp, TrailId,
    TrailKey,
};
use relay_local::{SqliteRecordStore, SystemTimeSource};
use sha2::{Digest, Sha256};

use crate::error::BenchError;

mod anchoring_bench;
mod api_bench;
mod bench_db;
mod capture_bench;
mod cpu;
mod error;
mod export_bench;
mod ingest_bench;
mod login_flood_bench;
mod report;
mod server_start_bench;
mod startup_bench;
mod ui_trail;

/// Measures the relay's hot paths against baselines.
#[derive(Debug, Parser)]
struct Args {
    /// Records for the in-memory verification benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records for the stored-trail verification benchmark (SQLite).
    #[arg(long, default_value_t = 200_000)]
    stored_records: usize,
    /// Durable appends per append benchmark.
    #[arg(long, default_value_t = 2000)]
    appends: usize,
    /// Concurrent appenders for the concurrent append benchmark.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Size of the hashing buffer in MiB.
    #[arg(long, default_value_t = 512)]
    hash_mib: usize,
    /// Directory for the benchmark databases (same disk as production data, ideally).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size in MiB of the file hashed by capture and by `openssl dgst -sha256` (0: skip).
    #[arg(long, default_value_t = 2048)]
    hash_file_mib: usize,
    /// Small files dropped at once for the burst capture rows, one row per size,
    /// comma-separated (0: skip).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    burst_files: Vec<usize>,
    /// Size of each burst file in bytes.
    #[arg(long, default_value_t = 4096)]
    burst_file_bytes: usize,
    /// Settle window of the capture engine in the burst rows, in milliseconds (default: the
    /// product's default settle window, 2000).
    #[arg(long, default_value_t = relay_capture::DEFAULT_SETTLE.as_millis() as u64)]
    burst_settle_ms: u64,
    /// Also append every row as a JSON line (with its target checked) to this file, for
    /// `relay-bench report`.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// A single benchmark instead of the default set.
    #[command(subcommand)]
    command: Option<Bench>,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Renders the JSON rows of earlier runs (`--json`) as one table with targets, the machine
    /// and the command, and splices it between the report markers of a document.
    Report {
        /// JSON-lines files written by `--json`, in table order.
        #[arg(long, num_args = 1.., required = true)]
        from: Vec<PathBuf>,
        /// Document whose `<!-- bench-report:begin -->` .. `end` section is replaced.
        #[arg(long)]
        write: Option<PathBuf>,
        /// The command that produced the rows, as shown in the report.
        #[arg(long, default_value = "scripts/bench.sh")]
        command_line: String,
        /// When the run started (UTC).
        #[arg(long, default_value = "")]
        started: String,
        /// When the run finished (UTC).
        #[arg(long, default_value = "")]
        finished: String,
        /// Load average when the run started.
        #[arg(long, default_value = "")]
        load_at_start: String,
        /// The sizes of the run, as shown in the report.
        #[arg(long, default_value = "")]
        sizes: String,
        /// Rows that could not be measured, with the reason (repeatable).
        #[arg(long)]
        missing: Vec<String>,
    },
    /// Batched chained appends into Postgres (self-hosted adapter) vs binary COPY and plain
    /// batched INSERT of the same rows.
    Pg {
        /// DSN of a role that may create databases and roles (the bench drops what it creates).
        #[arg(
            long,
            env = "RELAY_BENCH_PG_ADMIN_DSN",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_dsn: String,
        /// Records per batch size (batches of 1 use a tenth of them).
        #[arg(long, default_value_t = 50_000)]
        records: usize,
    },
    /// Server ingest end to end into Postgres (HTTP, auth, every HMAC, link, one transaction per
    /// batch of 500) vs plain batched INSERT.
    Ingest {
        /// DSN of a role that may create databases and roles (the bench drops what it creates).
        #[arg(
            long,
            env = "RELAY_BENCH_PG_ADMIN_DSN",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_dsn: String,
        /// Records ingested.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
    },
    /// The notary scheduler's first round after a start on a Postgres trail of `--small` and of
    /// `--large` records (issue 19): resuming from a version 2 anchor's frontier vs replaying
    /// the trail from seq 1 (a version 1 anchor).
    Startup {
        /// DSN of a role that may create databases and roles (the bench drops what it creates).
        #[arg(
            long,
            env = "RELAY_BENCH_PG_ADMIN_DSN",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_dsn: String,
        /// Records of the small trail.
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        /// Records of the large trail.
        #[arg(long, default_value_t = 10_000_000)]
        large: usize,
    },
    /// The whole `relay-server run` process restarted on a Postgres trail of `--small` and of
    /// `--large` records (issue 19, item 4), with Object Lock anchors on S3 (moto on
    /// 127.0.0.1:5000 unless `RELAY_TEST_S3_ENDPOINT` says otherwise): after an untimed first
    /// start, the time from spawn to healthy, to the first ingest batch acknowledged and to the
    /// first anchor of it (median of three restarts). Build the server first: `cargo build -p
    /// relay-server --features selfhosted`.
    ServerStart {
        /// DSN of a role that may create databases and roles (the bench drops what it creates).
        #[arg(
            long,
            env = "RELAY_BENCH_PG_ADMIN_DSN",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_dsn: String,
        /// Records of the small trail.
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        /// Records of the large trail.
        #[arg(long, default_value_t = 10_000_000)]
        large: usize,
        /// The `relay-server` binary (built with the `selfhosted` feature); default: the one
        /// next to this executable.
        #[arg(long)]
        server_bin: Option<PathBuf>,
    },
    /// What anchoring costs an object store (issue 19): object writes, bytes, and the reads of
    /// a restart, with `--trails` busy trails anchored every 30 s of simulated time into the
    /// WORM notary over a counting in-memory bucket; rounds vs one object per moved trail.
    Anchoring {
        /// Busy trails (each gets one record per round).
        #[arg(long, default_value_t = 1000)]
        trails: usize,
        /// Rounds of 30 s simulated (125 is just over an hour: every trail is stored alone
        /// twice, at the first round and an hour later).
        #[arg(long, default_value_t = 125)]
        rounds: usize,
    },
    /// Sealed export of a SQLite trail to a package, then `relay-verify` of it as a child
    /// process (wall time and peak RSS). Build relay-verify first:
    /// `cargo build --release -p relay-verify -p relay-bench`.
    Export {
        /// Records in the exported trail.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Which renderings to write: csv, json or both.
        #[arg(long, default_value = "both", value_parser = ["csv", "json", "both"])]
        format: String,
    },
    /// The review API of a real release `relay-edge` (next to this executable) under `wrk`:
    /// `GET /api/v1/events`, pages of 100 at random offsets, paced, then unpaced. Build it first:
    /// `cargo build --release -p relay-edge -p relay-bench`; needs `wrk` on PATH.
    Api {
        /// Records in the served trail.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Duration of each wrk run (paced, then unpaced), in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Requests per second of the paced run.
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
    /// Stores a realistic capture trail of `--records` records (1,000 run folders, four
    /// operators, three projects) in a relay data directory, chained under the directory's
    /// own trail key through the real SQLite store, for the review UI's scale test
    /// (`e2e/browser/scale.test.mjs`, issue 25). Then start `relay-server` (local storage) or
    /// `relay-edge` on the directory.
    UiTrail {
        /// The data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// The trail (must not exist yet).
        #[arg(long, default_value = "nmr-scale")]
        trail: String,
        /// Records to store.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
    },
    /// A real release `relay-edge` (next to this executable) under a flood of bogus logins while
    /// a legitimate user logs in from 127.0.0.1: peak RSS, answers, legitimate logins' latency.
    /// Build it first: `cargo build --release -p relay-edge -p relay-bench`.
    LoginFlood {
        /// Bogus logins kept in flight at once (each answered one is replaced).
        #[arg(long, default_value_t = 1000)]
        attackers: usize,
        /// How long the flood lasts, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Where the bogus logins come from: `many` (one address of 127.0.0.0/8 each), `one`
        /// (all from 127.0.0.2) or `both` (two runs).
        #[arg(long, default_value = "both", value_parser = ["many", "one", "both"])]
        sources: String,
    },
}

struct Row {
    path: &'static str,
    ours: String,
    baseline: String,
    ratio: String,
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn fmt_rate(r: f64, unit: &str) -> String {
    if r >= 1e6 {
        format!("{:.2} M {unit}", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k {unit}", r / 1e3)
    } else {
        format!("{r:.0} {unit}")
    }
}

fn key() -> TrailKey {
    TrailKey::new(KeyId::new("k-bench").unwrap(), &[42u8; 32]).unwrap()
}

fn trail() -> TrailId {
    TrailId::new("bench-01").unwrap()
}

/// A realistic FILE_CREATED record body (about 420 bytes canonical).
fn draft(i: usize) -> EventDraft {
    EventDraft {
        trail_id: trail(),
        kind: EventKind::file_created(),
        actor: Some(Actor::new("nmr-operator").unwrap()),
        actor_source: ActorSource::OsSession,
        occurred_at: None,
        device: Device::new("nmr-01").unwrap(),
        project: Some(Project::new("PRJ-42").unwrap()),
        subject: Some(Subject::new(format!("2026/run{}/spectrum-{i}.fid", i / 100)).unwrap()),
        payload: Payload::from_value(&serde_json::json!({
            "sha256": format!("{:064x}", i), "size": i * 4096, "root": "/data/nmr",
            "mtime": "2026-11-25T09:00:00.000000Z"
        }))
        .unwrap(),
    }
}

/// Chains `n` records in memory without a store.
fn chain(n: usize) -> Vec<Record> {
    chain_of(&trail(), n)
}

/// Chains `n` records of `trail` in memory without a store.
fn chain_of(trail: &TrailId, n: usize) -> Vec<Record> {
    chain_from(trail, 0, GENESIS, n)
}

/// Chains `n` records of `trail` that follow record `after` (whose checksum is `prev`).
fn chain_from(
    trail: &TrailId,
    after: usize,
    prev: relay_domain::Checksum,
    n: usize,
) -> Vec<Record> {
    let key = key();
    let mut buf = Vec::new();
    let mut prev = prev;
    let at = Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap();
    (after..after + n)
        .map(|i| {
            let d = draft(i);
            let mut r = Record {
                actor: d.actor.unwrap(),
                actor_source: d.actor_source,
                chain_seq: ChainSeq::new(i as u64 + 1).unwrap(),
                device: d.device,
                key_id: key.id().clone(),
                kind: d.kind,
                occurred_at: at,
                payload: d.payload,
                prev_checksum: prev,
                project: d.project,
                recorded_at: at,
                subject: d.subject,
                time_source: TimeLabel::System,
                trail_id: trail.clone(),
                checksum: GENESIS,
            };
            r.checksum = checksum_with_buf(&r, &key, &mut buf);
            prev = r.checksum;
            r
        })
        .collect()
}

/// The same in-memory verification with each page's HMACs on every core
/// (`ChainVerifier::push_page`), against the single-core raw HMAC rate times the cores.
fn bench_verify_parallel(n: usize) -> Row {
    let records = chain(n);
    let ring = KeyRing::single(key());
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let t = Instant::now();
    let mut v = ChainVerifier::new(trail(), &ring).with_threads(threads);
    for page in records.chunks(relay_domain::verify::VERIFY_PAGE) {
        v.push_page(page).unwrap();
    }
    assert_eq!(v.finish().unwrap().records, n as u64);
    let ours = rate(n, t.elapsed());
    let t = Instant::now();
    let mut sequential = ChainVerifier::new(trail(), &ring);
    for r in &records {
        sequential.push(r).unwrap();
    }
    let one_core = rate(n, t.elapsed());
    // What this machine's cores give for perfectly independent work: the raw HMAC of the
    // canonical bytes, on one thread and then split over `threads` threads that share nothing.
    let bytes: Vec<Vec<u8>> = records.iter().map(canonical_bytes).collect();
    let raw = raw_hmac_of;
    let t = Instant::now();
    std::hint::black_box(raw(&bytes));
    let raw_one = t.elapsed();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for part in bytes.chunks(bytes.len().div_ceil(threads).max(1)) {
            scope.spawn(|| std::hint::black_box(raw(part)));
        }
    });
    let raw_all = t.elapsed();
    let scaling = raw_one.as_secs_f64() / raw_all.as_secs_f64();
    // The verifier's own per-record work (canonical encoding from the record's fields, then the
    // HMAC) split the same way: how far the records' layout in memory lets it scale.
    let trail_key = key();
    let encode = |part: &[Record]| {
        let mut buf = Vec::with_capacity(1024);
        let mut acc = 0u8;
        for r in part {
            acc ^= checksum_with_buf(r, &trail_key, &mut buf).0[0];
        }
        acc
    };
    let t = Instant::now();
    std::hint::black_box(encode(&records));
    let encode_one = t.elapsed();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for part in records.chunks(records.len().div_ceil(threads).max(1)) {
            scope.spawn(|| std::hint::black_box(encode(part)));
        }
    });
    let encode_scaling = encode_one.as_secs_f64() / t.elapsed().as_secs_f64();
    // The baseline: one core's raw HMAC over the same canonical bytes. The verifier's
    // own per-record work (encoding, then HMAC) on every core bounds what it can reach of it.
    let raw_rate = rate(n, raw_one);
    let bound = 100.0 * encode_scaling * one_core / raw_rate;
    Row {
        path: "parallel chain verify, in memory (records/s)",
        ours: format!(
            "{} ({:.2}x one core's verification, {}; bound here {bound:.0}%: the verifier's encoding + HMAC of the records on {threads} threads reach {encode_scaling:.2}x its one-core rate, independent raw HMAC loops {scaling:.2}x)",
            fmt_rate(ours, "rec/s"),
            ours / one_core,
            fmt_rate(one_core, "rec/s"),
        ),
        baseline: format!(
            "{} raw HMAC-SHA256 of the same canonical bytes on one core",
            fmt_rate(raw_rate, "rec/s")
        ),
        ratio: format!("{:.0}%", 100.0 * ours / raw_rate),
    }
}

/// The baseline of the verify rows: a raw HMAC-SHA256 of each prepared canonical encoding
/// (one keyed state cloned per message), folded into a byte so nothing is optimised away.
fn raw_hmac_of(messages: &[Vec<u8>]) -> u8 {
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(&[42u8; 32]).unwrap();
    let mut acc = 0u8;
    for b in messages {
        let mut m = mac.clone();
        m.update(b);
        acc ^= m.finalize().into_bytes()[0];
    }
    acc
}

fn bench_verify(n: usize) -> Row {
    let records = chain(n);
    let ring = KeyRing::single(key());
    let t = Instant::now();
    let mut v = ChainVerifier::new(trail(), &ring);
    for r in &records {
        v.push(r).unwrap();
    }
    assert_eq!(v.finish().unwrap().records, n as u64);
    let ours = rate(n, t.elapsed());

    let bytes: Vec<Vec<u8>> = records.iter().map(canonical_bytes).collect();
    let t = Instant::now();
    std::hint::black_box(raw_hmac_of(&bytes));
    let base = rate(n, t.elapsed());
    Row {
        path: "chain verify, in memory (records/s)",
        ours: fmt_rate(ours, "rec/s"),
        baseline: format!(
            "{} raw HMAC-SHA256 of the same canonical bytes",
            fmt_rate(base, "rec/s")
        ),
        ratio: format!("{:.0}%", 100.0 * ours / base),
    }
}

fn bench_hash(mib: usize, dir: &std::path::Path) -> Vec<Row> {
    let data: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let raw = Sha256::digest(&data);
    let base = rate(data.len(), t.elapsed()) / 1e6;
    let mut buf = vec![0u8; relay_capture::DEFAULT_HASH_BUFFER];
    let t = Instant::now();
    let ours = relay_capture::sha256_reader(std::io::Cursor::new(&data), &mut buf).unwrap();
    let ours_rate = rate(data.len(), t.elapsed()) / 1e6;
    assert_eq!(ours.sha256.0.as_slice(), raw.as_slice());

    let path = dir.join("hash-input.bin");
    std::fs::write(&path, &data).unwrap();
    let t = Instant::now();
    let from_file = relay_capture::sha256_file(&path).unwrap();
    let file_rate = rate(data.len(), t.elapsed()) / 1e6;
    assert_eq!(from_file.sha256.0.as_slice(), raw.as_slice());
    std::fs::remove_file(&path).unwrap();
    vec![
        Row {
            path: "capture hashing, same buffer (MB/s)",
            ours: format!("{ours_rate:.0} MB/s"),
            baseline: format!("{base:.0} MB/s raw `sha2` digest"),
            ratio: format!("{:.0}%", 100.0 * ours_rate / base),
        },
        Row {
            path: "capture hashing, file in page cache (MB/s)",
            ours: format!("{file_rate:.0} MB/s"),
            baseline: format!("{base:.0} MB/s raw `sha2` digest"),
            ratio: format!("{:.0}%", 100.0 * file_rate / base),
        },
    ]
}

async fn open_store(dir: &std::path::Path, name: &str) -> Arc<SqliteRecordStore> {
    Arc::new(
        SqliteRecordStore::open_file(&dir.join(name), Duration::from_secs(30), 4)
            .await
            .unwrap(),
    )
}

/// A plain table with the same columns, the same WAL + synchronous=FULL settings, no triggers and
/// no chain checks: the cheapest durable insert of the same rows.
async fn plain_pool(dir: &std::path::Path, name: &str) -> sqlx::SqlitePool {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let opts = SqliteConnectOptions::new()
        .filename(dir.join(name))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS plain (trail_id TEXT NOT NULL, chain_seq INTEGER NOT NULL, prev_checksum TEXT, \
         checksum TEXT, kind TEXT, actor TEXT, actor_source TEXT, occurred_at TEXT, recorded_at TEXT, \
         time_source TEXT, device TEXT, project TEXT, subject TEXT, payload TEXT, key_id TEXT, \
         PRIMARY KEY (trail_id, chain_seq))",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

async fn plain_insert(pool: &sqlx::SqlitePool, r: &Record) {
    sqlx::query("INSERT INTO plain VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        .bind(r.trail_id.as_str())
        .bind(r.chain_seq.get() as i64)
        .bind(r.prev_checksum.to_hex())
        .bind(r.checksum.to_hex())
        .bind(r.kind.as_str())
        .bind(r.actor.as_str())
        .bind(r.actor_source.as_str())
        .bind(r.occurred_at.to_canonical())
        .bind(r.recorded_at.to_canonical())
        .bind(r.time_source.to_label())
        .bind(r.device.as_str())
        .bind(r.project.as_ref().map(|p| p.as_str().to_owned()))
        .bind(r.subject.as_ref().map(|s| s.as_str().to_owned()))
        .bind(r.payload.as_str())
        .bind(r.key_id.as_str())
        .execute(pool)
        .await
        .unwrap();
}

async fn bench_appends(n: usize, concurrency: usize, dir: &std::path::Path) -> Vec<Row> {
    let clock: Arc<dyn TimeSource> = Arc::new(SystemTimeSource::new());
    let records = chain(n);

    // Single appender: every append is its own durable commit, as is every plain insert. The two
    // sides alternate in ten rounds so that load drifting on the machine hits both equally.
    let store = open_store(dir, "single.db").await;
    let svc = AppendService::new(store.clone(), clock.clone(), key());
    let pool = plain_pool(dir, "plain-single.db").await;
    let rounds = 10;
    let per_round = n.div_ceil(rounds);
    let (mut ours_time, mut base_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let range = (round * per_round)..((round + 1) * per_round).min(n);
        let t = Instant::now();
        for i in range.clone() {
            svc.append(draft(i)).await.unwrap();
        }
        ours_time += t.elapsed();
        let t = Instant::now();
        for r in &records[range] {
            plain_insert(&pool, r).await;
        }
        base_time += t.elapsed();
    }
    let ours_single = rate(n, ours_time);
    let base_single = rate(n, base_time);

    // Concurrent appenders: group commit lets waiting appends share one durable transaction.
    let store = open_store(dir, "concurrent.db").await;
    let svc = Arc::new(AppendService::new(store.clone(), clock.clone(), key()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(concurrency) {
                svc.append(draft(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ours_conc = rate(n, t.elapsed());
    let head = store.head(&trail()).await.unwrap().unwrap();
    assert_eq!(
        head.seq.get(),
        n as u64,
        "concurrent appends must neither gap nor fork"
    );

    let pool = Arc::new(plain_pool(dir, "plain-concurrent.db").await);
    let records = Arc::new(records);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (pool, records) = (pool.clone(), records.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..records.len()).step_by(concurrency) {
                plain_insert(&pool, &records[i]).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let base_conc = rate(n, t.elapsed());
    vec![
        Row {
            path: "durable chained append, SQLite, 1 appender (records/s)",
            ours: fmt_rate(ours_single, "rec/s"),
            baseline: format!(
                "{} plain INSERT, own commit each, same WAL + synchronous=FULL",
                fmt_rate(base_single, "rec/s")
            ),
            ratio: format!("{:.0}%", 100.0 * ours_single / base_single),
        },
        Row {
            path: "durable chained append, SQLite, concurrent appenders (records/s)",
            ours: format!("{} ({concurrency} tasks)", fmt_rate(ours_conc, "rec/s")),
            baseline: format!(
                "{} plain INSERT from {concurrency} tasks, own commit each",
                fmt_rate(base_conc, "rec/s")
            ),
            ratio: format!("{:.0}%", 100.0 * ours_conc / base_conc),
        },
    ]
}

async fn bench_stored_verify(n: usize, dir: &std::path::Path) -> Row {
    let store = open_store(dir, "stored-verify.db").await;
    for chunk in chain(n).chunks(5000) {
        store.append(chunk).await.unwrap();
    }
    let ring = KeyRing::single(key());
    // Every core, as `relay-edge verify` does.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    let verdict = relay_domain::verify::verify_stored_trail_on(
        store.as_ref(),
        &ring,
        &trail(),
        &[],
        threads,
        |_| {},
    )
    .await
    .unwrap()
    .unwrap();
    let ours = rate(n, t.elapsed());
    assert_eq!(verdict.records, n as u64);

    let t = Instant::now();
    let mut after = 0u64;
    let mut seen = 0usize;
    loop {
        let page = store
            .read(&trail(), after, relay_domain::verify::VERIFY_PAGE)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.chain_seq.get();
        seen += page.len();
    }
    let base = rate(seen, t.elapsed());
    Row {
        path: "chain verify from SQLite (records/s)",
        ours: format!(
            "{} ({threads} threads, as `relay-edge verify`)",
            fmt_rate(ours, "rec/s")
        ),
        baseline: format!(
            "{} reading and decoding the same rows",
            fmt_rate(base, "rec/s")
        ),
        ratio: format!("{:.0}%", 100.0 * ours / base),
    }
}

/// The plain baseline: the same columns and primary key as `event_log`, no triggers, no chain
/// checks, no lock; the same one-statement `UNNEST` insert, one transaction per batch.
/// The baseline of the Postgres rows: the same records' binary COPY into `plain_copy` (no
/// triggers, no lock, no chain check), one COPY and commit per batch.
async fn pg_plain_copy(pool: &sqlx::PgPool, rows: &[Record]) {
    let mut tx = pool.begin().await.unwrap();
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY plain_copy ({}) FROM STDIN (FORMAT binary)",
            relay_domain::columns::EVENT_LOG_COLUMNS
        ))
        .await
        .unwrap();
    copy.send(relay_selfhosted::copy_binary_data(rows))
        .await
        .unwrap();
    copy.finish().await.unwrap();
    tx.commit().await.unwrap();
}

async fn pg_plain_insert(pool: &sqlx::PgPool, rows: &[Record]) {
    let col = |f: &dyn Fn(&Record) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let opt = |f: &dyn Fn(&Record) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO plain_log SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], \
         $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
         $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])",
    )
    .bind(col(&|r| r.trail_id.as_str().to_owned()))
    .bind(
        rows.iter()
            .map(|r| r.chain_seq.get() as i64)
            .collect::<Vec<i64>>(),
    )
    .bind(col(&|r| r.prev_checksum.to_hex()))
    .bind(col(&|r| r.checksum.to_hex()))
    .bind(col(&|r| r.kind.as_str().to_owned()))
    .bind(col(&|r| r.actor.as_str().to_owned()))
    .bind(col(&|r| r.actor_source.as_str().to_owned()))
    .bind(col(&|r| r.occurred_at.to_canonical()))
    .bind(col(&|r| r.recorded_at.to_canonical()))
    .bind(col(&|r| r.time_source.to_label()))
    .bind(col(&|r| r.device.as_str().to_owned()))
    .bind(opt(&|r| r.project.as_ref().map(|p| p.as_str().to_owned())))
    .bind(opt(&|r| r.subject.as_ref().map(|s| s.as_str().to_owned())))
    .bind(col(&|r| r.payload.as_str().to_owned()))
    .bind(col(&|r| r.key_id.as_str().to_owned()))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn bench_pg(admin_dsn: &str, records: usize) -> Result<Vec<Row>, BenchError> {
    let bench_db = bench_db::BenchDb::create(admin_dsn, "").await?;
    let owner = bench_db.owner.clone();
    let app_dsn = bench_db.app_dsn.clone();
    let store = relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn))
        .await
        .unwrap();

    let mut rows = Vec::new();
    for batch in [1usize, 100, 1000] {
        let n = if batch == 1 { records / 10 } else { records };
        let trail = TrailId::new(format!("bench-pg-{batch}")).unwrap();
        let chained = chain_of(&trail, n);
        eprintln!("postgres: {n} records in batches of {batch}");
        // Ten rounds, rotating which side goes first, so load from other processes on the
        // machine falls on every side alike. Sides: ours, plain batched INSERT, binary COPY.
        let mut times = [Duration::ZERO; 3];
        let round = n.div_ceil(10).div_ceil(batch) * batch;
        for (i, part) in chained.chunks(round).enumerate() {
            for k in 0..3 {
                let side = (i + k) % 3;
                let t = Instant::now();
                for chunk in part.chunks(batch) {
                    match side {
                        0 => {
                            store.append(chunk).await.unwrap();
                        }
                        1 => pg_plain_insert(&owner, chunk).await,
                        _ => pg_plain_copy(&owner, chunk).await,
                    }
                }
                times[side] += t.elapsed();
            }
        }
        assert_eq!(
            store.head(&trail).await.unwrap().unwrap().seq.get(),
            n as u64
        );
        let [ours, base, copy] = times.map(|t| rate(n, t));
        rows.push(Row {
            path: match batch {
                1 => "chained append, Postgres, batches of 1 (records/s)",
                100 => "chained append, Postgres, batches of 100 (records/s)",
                _ => "chained append, Postgres, batches of 1000 (records/s)",
            },
            ours: fmt_rate(ours, "rec/s"),
            baseline: format!(
                "{} binary COPY of the same rows into a plain table (one COPY and commit per batch); {} plain batched INSERT ({:.0}% of it)",
                fmt_rate(copy, "rec/s"),
                fmt_rate(base, "rec/s"),
                100.0 * ours / base
            ),
            ratio: format!("{:.0}%", 100.0 * ours / copy),
        });
    }
    store.close().await;
    bench_db.drop_all().await;
    Ok(rows)
}

fn print_rows(rows: Vec<Row>) -> Result<(), BenchError> {
    report::emit(&rows)?;
    println!("| path | ours | baseline (same run) | ours / baseline |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.path, r.ours, r.baseline, r.ratio);
    }
    Ok(())
}

/// The multi-threaded runtime every benchmark runs on.
fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Missing(format!("cannot start the tokio runtime: {e}")))
}

/// A scratch directory for one run, under `--dir` when given (same disk as production data).
fn scratch_dir(dir: Option<&std::path::Path>) -> Result<tempfile::TempDir, BenchError> {
    match dir {
        Some(d) => tempfile::tempdir_in(d).map_err(BenchError::path(
            "cannot create a scratch directory in --dir",
            d,
        )),
        None => tempfile::tempdir().map_err(BenchError::path(
            "cannot create a scratch directory in",
            &std::env::temp_dir(),
        )),
    }
}

/// Bad paths, arguments and missing tools: one line on stderr and exit 2, never a panic.
fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("relay-bench: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !message.ends_with(&text) {
                    message.push_str(&format!(": {text}"));
                }
                cause = c.source();
            }
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Checks what the chosen benches need before any of them runs.
fn preflight(args: &Args) -> Result<(), BenchError> {
    match &args.command {
        Some(Bench::Api { records, rate, .. }) => {
            if *records < api_bench::PAGE {
                return Err(BenchError::Usage(format!(
                    "api: --records must be at least {} (one page)",
                    api_bench::PAGE
                )));
            }
            if *rate == 0 {
                return Err(BenchError::Usage("api: --rate must be at least 1".into()));
            }
            error::sibling_binary("relay-edge")?;
            if !error::on_path("wrk") {
                return Err(BenchError::Missing(
                    "api: `wrk` is not on PATH; install it (Debian: `apt-get install -y wrk`)"
                        .into(),
                ));
            }
        }
        Some(Bench::LoginFlood {
            attackers, seconds, ..
        }) => {
            if *attackers == 0 || *seconds == 0 {
                return Err(BenchError::Usage(
                    "login-flood: --attackers and --seconds must be at least 1".into(),
                ));
            }
            error::sibling_binary("relay-edge")?;
        }
        None if args.hash_file_mib > 0 && !error::on_path("openssl") => {
            return Err(BenchError::Missing(
                "`openssl` is not on PATH (the baseline of the large-file hashing row); install                  it (Debian: `apt-get install -y openssl`) or pass --hash-file-mib 0"
                    .into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn run(args: Args) -> Result<(), BenchError> {
    report::set_output(args.json.clone())?;
    preflight(&args)?;
    if let Some(Bench::Report {
        from,
        write,
        command_line,
        started,
        finished,
        load_at_start,
        sizes,
        missing,
    }) = &args.command
    {
        let info = report::RunInfo {
            command: command_line,
            started,
            finished,
            load_at_start,
            sizes,
            missing,
        };
        println!("{}", report::render(from, write.as_deref(), &info)?);
        return Ok(());
    }
    if let Some(Bench::UiTrail {
        data_dir,
        trail,
        records,
    }) = &args.command
    {
        let rt = runtime()?;
        let t = Instant::now();
        rt.block_on(ui_trail::build(data_dir, trail, *records))
            .map_err(BenchError::Usage)?;
        eprintln!(
            "ui-trail: {records} records of {trail} stored in {} in {:.1} s",
            data_dir.display(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if let Some(Bench::Api {
        records,
        seconds,
        rate,
    }) = &args.command
    {
        let tmp = scratch_dir(args.dir.as_deref())?;
        let rt = runtime()?;
        return print_rows(api_bench::bench_api(
            &rt,
            *records,
            *seconds,
            *rate,
            tmp.path(),
        ));
    }
    if let Some(Bench::LoginFlood {
        attackers,
        seconds,
        sources,
    }) = &args.command
    {
        use login_flood_bench::Sources;
        let scenarios: &[Sources] = match sources.as_str() {
            "many" => &[Sources::Many],
            "one" => &[Sources::One],
            _ => &[Sources::Many, Sources::One],
        };
        let tmp = scratch_dir(args.dir.as_deref())?;
        let rt = runtime()?;
        return print_rows(login_flood_bench::bench_login_flood(
            &rt,
            *attackers,
            *seconds,
            scenarios,
            tmp.path(),
        )?);
    }
    if let Some(Bench::Export { records, format }) = &args.command {
        let tmp = scratch_dir(args.dir.as_deref())?;
        let rt = runtime()?;
        return print_rows(export_bench::bench_export(
            &rt,
            *records,
            format,
            tmp.path(),
        ));
    }
    if let Some(Bench::Ingest { admin_dsn, records }) = &args.command {
        let rt = runtime()?;
        return print_rows(rt.block_on(ingest_bench::bench_ingest(admin_dsn, *records))?);
    }
    if let Some(Bench::Startup {
        admin_dsn,
        small,
        large,
    }) = &args.command
    {
        let rt = runtime()?;
        return print_rows(rt.block_on(startup_bench::bench_startup(admin_dsn, *small, *large))?);
    }
    if let Some(Bench::ServerStart {
        admin_dsn,
        small,
        large,
        server_bin,
    }) = &args.command
    {
        let rt = runtime()?;
        return print_rows(rt.block_on(server_start_bench::bench_server_start(
            admin_dsn,
            *small,
            *large,
            server_bin.as_deref(),
        ))?);
    }
    if let Some(Bench::Anchoring { trails, rounds }) = &args.command {
        let rt = runtime()?;
        let rows = rt
            .block_on(anchoring_bench::bench_anchoring(*trails, *rounds))
            .map_err(BenchError::Missing)?;
        return print_rows(rows);
    }
    if let Some(Bench::Pg { admin_dsn, records }) = &args.command {
        let rt = runtime()?;
        return print_rows(rt.block_on(bench_pg(admin_dsn, *records))?);
    }
    let tmp = scratch_dir(args.dir.as_deref())?;
    let rt = runtime()?;
    let mut rows = Vec::new();
    eprintln!("verify: {} records in memory", args.records);
    rows.push(bench_verify(args.records));
    rows.push(bench_verify_parallel(args.records));
    eprintln!("verify: {} records from SQLite", args.stored_records);
    rows.push(rt.block_on(bench_stored_verify(args.stored_records, tmp.path())));
    eprintln!("hashing: {} MiB", args.hash_mib);
    rows.extend(bench_hash(args.hash_mib, tmp.path()));
    eprintln!(
        "appends: {} durable appends, then {} concurrent appenders",
        args.appends, args.concurrency
    );
    rows.extend(rt.block_on(bench_appends(args.appends, args.concurrency, tmp.path())));
    if args.hash_file_mib > 0 {
        eprintln!(
            "capture hashing: {} MiB file vs openssl dgst -sha256",
            args.hash_file_mib
        );
        rows.push(capture_bench::bench_hash_file(
            args.hash_file_mib,
            tmp.path(),
        ));
    }
    for files in args.burst_files.iter().copied().filter(|n| *n > 0) {
        eprintln!("burst capture: {files} files");
        rows.push(rt.block_on(capture_bench::bench_burst(
            files,
            args.burst_file_bytes,
            Duration::from_millis(args.burst_settle_ms),
            tmp.path(),
        )));
    }
    print_rows(rows)
}
