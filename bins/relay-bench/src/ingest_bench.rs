//! `relay-bench ingest`: the server of record's ingest path end to end, into Postgres, with full
//! verification (R8.3): an in-process server (`relay_api::ingest_router` over `PgRecordStore`),
//! the edge forwarder sending batches of 500 over HTTP on loopback, each batch authenticated,
//! decoded, every HMAC recomputed, the link to the stored head checked and appended in one
//! transaction. Baseline: the same rows as plain batched INSERTs (one UNNEST statement and commit
//! per batch, no HTTP, no verification).

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_domain::memory::{InMemoryForwardCursorStore, InMemoryRecordStore};
use relay_domain::ports::{ForwardCursorStore, RecordStore, SecretProvider, TimeSource};
use relay_domain::{AppendService, ChainVerifier, Device, KeyRing, TrailId};
use relay_local::{FileSecretProvider, SystemTimeSource};
use relay_runtime::forwarder::{ForwardSettings, Forwarder};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;

use crate::{Row, chain_of, fmt_rate, key, pg_plain_insert, rate};

const BATCH: usize = 500;

pub(crate) async fn bench_ingest(
    admin_dsn: &str,
    records: usize,
) -> Result<Vec<Row>, crate::error::BenchError> {
    let bench_db = crate::bench_db::BenchDb::create(admin_dsn, "ingest_").await?;
    let owner = bench_db.owner.clone();
    let app_dsn = bench_db.app_dsn.clone();
    let pg = Arc::new(
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn))
            .await
            .unwrap(),
    );

    // Server side: the edge's key provisioned as `trail-hmac.<trail>`, and an ingest token.
    let trail = TrailId::new("bench-ingest").unwrap();
    let secrets_dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(FileSecretProvider::open(secrets_dir.path().join("secrets")).unwrap());
    let k = key();
    let file = serde_json::json!({
        "format": "gims-relay-secret-v1",
        "versions": [{ "id": k.id().as_str(), "secret_hex": hex_of(k.expose_secret()) }],
    });
    let key_path = secrets_dir
        .path()
        .join(format!("secrets/trail-hmac.{}.json", trail.as_str()));
    std::fs::write(&key_path, serde_json::to_vec(&file).unwrap()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let token = relay_runtime::server::ingest_token(secrets.as_ref(), "bench-edge")
        .await
        .unwrap();
    let clock: Arc<dyn TimeSource> = Arc::new(SystemTimeSource::new());
    let server_appender = Arc::new(AppendService::new(pg.clone(), clock.clone(), key()));
    let ingest = relay_api::IngestState::new(relay_api::IngestParts {
        appender: server_appender,
        store: pg.clone(),
        secrets: secrets.clone() as Arc<dyn SecretProvider>,
        device: Device::new("bench-server").unwrap(),
        metrics: relay_api::IngestMetrics::default(),
        config: relay_api::IngestConfig {
            edges: vec!["bench-edge".into()],
            clock_skew_threshold: Duration::from_secs(365 * 24 * 3600),
            // The bench edge forwards a trail not named like itself.
            edge_trails: std::collections::BTreeMap::from([(
                "bench-edge".to_owned(),
                vec![trail.clone()],
            )]),
            ..Default::default()
        },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, relay_api::ingest_router(ingest))
            .await
            .unwrap();
    });

    // Edge side: the chain in memory, forwarded in batches of 500.
    let chained = chain_of(&trail, records);
    let edge_store = Arc::new(InMemoryRecordStore::new());
    for part in chained.chunks(10_000) {
        edge_store.append(part).await.unwrap();
    }
    let edge_appender = Arc::new(AppendService::new(edge_store.clone(), clock, key()));
    let journal = Journal::new(
        edge_appender,
        Metrics::new(),
        Device::new("bench-edge").unwrap(),
    );
    let cursors = Arc::new(InMemoryForwardCursorStore::new());
    let mut settings = ForwardSettings::new(format!("http://{addr}"), "bench-edge", token);
    settings.batch = BATCH;
    settings.poll = Duration::from_millis(1);
    eprintln!("ingest: {records} records in batches of {BATCH}, HTTP on loopback into Postgres");
    let machine_before = crate::cpu::machine_cpu_seconds();
    let t = Instant::now();
    let handle = Forwarder::new(settings, edge_store.clone(), cursors.clone(), journal)
        .unwrap()
        .spawn();
    loop {
        let acked = cursors
            .get(&trail)
            .await
            .unwrap()
            .map_or(0, |c| c.acked_seq);
        if acked == records as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ingest_time = t.elapsed();
    let ingest_cpu = crate::cpu::machine_cpu_seconds() - machine_before;
    handle.shutdown().await;
    server.abort();
    assert_eq!(
        pg.head(&trail).await.unwrap().unwrap().seq.get(),
        records as u64
    );

    // The same checks without HTTP: verify each batch, append it (what the handler does).
    let direct_trail = TrailId::new("bench-ingest-direct").unwrap();
    let direct = chain_of(&direct_trail, records);
    let ring = KeyRing::single(key());
    let t = Instant::now();
    let mut prev: Option<(relay_domain::ChainSeq, relay_domain::Checksum)> = None;
    for chunk in direct.chunks(BATCH) {
        let mut v = match prev {
            Some((s, c)) => ChainVerifier::new(direct_trail.clone(), &ring).resume_after(s, c),
            None => ChainVerifier::new(direct_trail.clone(), &ring),
        };
        for r in chunk {
            v.push(r).unwrap();
        }
        pg.append(chunk).await.unwrap();
        let last = chunk.last().unwrap();
        prev = Some((last.chain_seq, last.checksum));
    }
    let direct_time = t.elapsed();

    let plain_trail = TrailId::new("bench-ingest-plain").unwrap();
    let plain = chain_of(&plain_trail, records);
    let t = Instant::now();
    for chunk in plain.chunks(BATCH) {
        pg_plain_insert(&owner, chunk).await;
    }
    let plain_time = t.elapsed();

    // Reading a trail back (what `relay-server verify` and the notary scheduler's start-up
    // rebuild do per record), for docs/scaling.md.
    let read_back = || async {
        let t = Instant::now();
        let mut after = 0u64;
        loop {
            let page = pg.read(&trail, after, 4096).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.chain_seq.get();
        }
        assert_eq!(after, records as u64);
        t.elapsed()
    };
    let mut read_time = read_back().await;

    // The same trail verified from Postgres the way `relay-server verify` does it (every
    // core), against the read above as its baseline (issue 23: >= 80%).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ring = KeyRing::single(key());
    let t = Instant::now();
    let verdict = relay_domain::verify::verify_stored_trail_on(
        pg.as_ref(),
        &ring,
        &trail,
        &[],
        threads,
        |_| {},
    )
    .await
    .unwrap()
    .unwrap();
    let verify_time = t.elapsed();
    assert_eq!(verdict.records, records as u64);
    // The baseline is the better of a read before and one after the verification, so neither
    // side gains from a cache the other warmed.
    read_time = read_time.min(read_back().await);

    // What a record costs on disk (for docs/scaling.md): event_log holds the two ingested
    // trails, plain_log the baseline's copy; both with their primary key index and TOAST.
    let size_of = |table: &'static str| {
        let owner = owner.clone();
        async move {
            let (rows, total): (i64, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}')"
            ))
            .fetch_one(&owner)
            .await
            .unwrap();
            total as f64 / rows.max(1) as f64
        }
    };
    let (ours_bytes, plain_bytes) = (size_of("event_log").await, size_of("plain_log").await);

    pg.close().await;
    bench_db.drop_all().await;

    let base = rate(records, plain_time);
    let (over_http, direct) = (rate(records, ingest_time), rate(records, direct_time));
    let baseline = format!(
        "{} plain batched INSERT (same rows, one UNNEST statement and commit per batch)",
        fmt_rate(base, "rec/s")
    );
    Ok(vec![
        Row {
            path: "ingest over HTTP, full verification, Postgres, batches of 500 (records/s)",
            ours: format!(
                "{} ({:.1} s, machine-wide with Postgres: {})",
                fmt_rate(over_http, "rec/s"),
                ingest_time.as_secs_f64(),
                crate::cpu::cpu_note(ingest_cpu, ingest_time)
            ),
            baseline: baseline.clone(),
            ratio: format!("{:.0}%", 100.0 * over_http / base),
        },
        Row {
            path: "ingest checks without HTTP (HMAC + link + append), batches of 500 (records/s)",
            ours: fmt_rate(direct, "rec/s"),
            baseline,
            ratio: format!("{:.0}%", 100.0 * direct / base),
        },
        Row {
            path: "chain verify from Postgres (records/s)",
            ours: format!(
                "{} ({threads} threads, as `relay-server verify`)",
                fmt_rate(rate(records, verify_time), "rec/s")
            ),
            baseline: format!(
                "{} reading and decoding the same rows, pages of 4096",
                fmt_rate(rate(records, read_time), "rec/s")
            ),
            ratio: format!(
                "{:.0}%",
                100.0 * read_time.as_secs_f64() / verify_time.as_secs_f64()
            ),
        },
        Row {
            path: "reading a trail back from Postgres, pages of 4096 (records/s)",
            ours: fmt_rate(rate(records, read_time), "rec/s"),
            baseline: "(absolute)".into(),
            ratio: "-".into(),
        },
        Row {
            path: "Postgres storage per record, table + indexes + TOAST (bytes/record)",
            ours: format!("{ours_bytes:.0} B/record"),
            baseline: format!(
                "{plain_bytes:.0} B/record in plain_log (same rows, primary key only)"
            ),
            ratio: format!("{:.0}%", 100.0 * ours_bytes / plain_bytes),
        },
    ])
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
