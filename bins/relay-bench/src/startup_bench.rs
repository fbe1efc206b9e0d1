//! `relay-bench startup`: how long the notary scheduler's first round takes after a start, on a
//! Postgres trail of a few records and of many (issue 19, item 4). With a version 2 anchor the
//! scheduler resumes its Merkle tree from the newest anchor's frontier and reads only the
//! records since; the baseline is the same first round with a version 1 anchor (no frontier),
//! which reads the whole trail from seq 1, as every start did before.
//!
//! Each case: a throw-away database, `n` chained records of one trail appended in batches of
//! 1000 through the adapter, the head anchored (v2 with its frontier, or v1) in an in-memory
//! notary, then a fresh scheduler (a restart) times its first round, which anchors one new
//! record appended after the "restart".

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_domain::anchor_history::build_anchor;
use relay_domain::export::SealKey;
use relay_domain::memory::InMemoryNotary;
use relay_domain::merkle::{MerkleAccumulator, record_leaf_hash};
use relay_domain::ports::{Notary, RecordStore, TimeSource};
use relay_domain::{AppendService, Checksum, Device, GENESIS, TimeLabel, Timestamp, TrailId};
use relay_local::SystemTimeSource;
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::notary_scheduler::NotaryScheduler;

use crate::error::BenchError;
use crate::{Row, bench_db, chain_from, key};

/// The first round after a start, with a v2 anchor and with a v1 anchor, on one trail.
struct Starts {
    v2: Duration,
    v1: Duration,
}

/// Runs the start-up rows for trails of `small` and `large` records.
pub(crate) async fn bench_startup(
    admin_dsn: &str,
    small: usize,
    large: usize,
) -> Result<Vec<Row>, BenchError> {
    let mut results = Vec::new();
    for n in [small, large] {
        let s = starts(admin_dsn, n).await?;
        eprintln!(
            "startup: {n} records: first round {:.3} s from a v2 anchor, {:.3} s from a v1 anchor",
            s.v2.as_secs_f64(),
            s.v1.as_secs_f64()
        );
        results.push((n, true, s.v2));
        results.push((n, false, s.v1));
    }
    let find = |n: usize, f: bool| {
        results
            .iter()
            .find(|r| r.0 == n && r.1 == f)
            .map_or(Duration::ZERO, |r| r.2)
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    let (small_v2, large_v2) = (find(small, true), find(large, true));
    let (small_v1, large_v1) = (find(small, false), find(large, false));
    Ok(vec![
        Row {
            path: leak(format!(
                "first notary round after a start, Postgres, {large} vs {small} records (v2 anchor: resumes from its frontier)"
            )),
            ours: secs(large_v2),
            baseline: format!(
                "{} with {small} records (target: within 2x)",
                secs(small_v2)
            ),
            ratio: format!(
                "{:.1}x",
                large_v2.as_secs_f64() / small_v2.as_secs_f64().max(1e-9)
            ),
        },
        Row {
            path: leak(format!(
                "first notary round after a start, Postgres, {large} records: v2 anchor vs v1 (replay from seq 1)"
            )),
            ours: secs(large_v2),
            baseline: format!(
                "{} replaying the trail ({} with {small} records)",
                secs(large_v1),
                secs(small_v1)
            ),
            ratio: format!(
                "{:.0}x faster",
                large_v1.as_secs_f64() / large_v2.as_secs_f64().max(1e-9)
            ),
        },
    ])
}

async fn starts(admin_dsn: &str, n: usize) -> Result<Starts, BenchError> {
    let bench_db = bench_db::BenchDb::create(admin_dsn, "startup").await?;
    let store: Arc<dyn RecordStore> = Arc::new(
        relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(
            bench_db.app_dsn.clone(),
        ))
        .await
        .map_err(|e| BenchError::Missing(format!("cannot open the bench store: {e}")))?,
    );
    let trail = TrailId::new("bench-startup").unwrap();
    let t = Instant::now();
    let mut acc = MerkleAccumulator::new();
    let mut buf = Vec::new();
    let (mut done, mut head) = (0usize, GENESIS);
    while done < n {
        let part = chain_from(&trail, done, head, (n - done).min(1000));
        for r in &part {
            acc.push_leaf_hash(record_leaf_hash(r, &mut buf));
        }
        store.append(&part).await.unwrap();
        done += part.len();
        head = part.last().map_or(head, |r| r.checksum);
        if done % 1_000_000 == 0 {
            eprintln!("startup: {done} of {n} records loaded");
        }
    }
    eprintln!(
        "startup: {n} records loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let v2 = first_round(&store, &trail, &mut acc, &mut head, n, true).await?;
    let v1 = first_round(&store, &trail, &mut acc, &mut head, n + 1, false).await?;
    bench_db.drop_all().await;
    Ok(Starts { v2, v1 })
}

/// Anchors the head (record `at`, tree `acc`) in a fresh notary (v2 with its frontier, or v1),
/// appends one record, and times a fresh scheduler's first round, which anchors it.
async fn first_round(
    store: &Arc<dyn RecordStore>,
    trail: &TrailId,
    acc: &mut MerkleAccumulator,
    head: &mut Checksum,
    at: usize,
    frontier: bool,
) -> Result<Duration, BenchError> {
    let notary = Arc::new(InMemoryNotary::new());
    let seal = SealKey::from_seed(&[7; 32]).unwrap();
    let mut anchor = build_anchor(
        trail,
        relay_domain::ChainSeq::new(at as u64).unwrap(),
        *head,
        acc,
        None,
        &[],
        (
            Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap(),
            TimeLabel::System,
        ),
        Some(&seal),
    );
    if !frontier {
        anchor.version = 1;
        anchor.frontier.clear();
        anchor.checkpoint = None;
    }
    notary.anchor(&anchor).await.unwrap();
    // The "restart": one record appended since the anchor, and a fresh scheduler.
    let next = chain_from(trail, at, *head, 1);
    acc.push_leaf_hash(record_leaf_hash(&next[0], &mut Vec::new()));
    *head = next[0].checksum;
    store.append(&next).await.unwrap();
    let clock: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    let appender = Arc::new(AppendService::new(store.clone(), clock.clone(), key()));
    let journal = Journal::new(appender, Metrics::new(), Device::new("bench").unwrap());
    let notary_dyn: Arc<dyn Notary> = notary.clone();
    let mut scheduler = NotaryScheduler::new(store.clone(), notary_dyn, clock, journal)
        .with_seal_key(Arc::new(seal));
    let t = Instant::now();
    let round = scheduler.notarize_trail(trail).await;
    let took = t.elapsed();
    let anchored = round
        .map_err(|e| BenchError::Missing(format!("the first round failed: {e}")))?
        .ok_or_else(|| BenchError::Missing("the first round anchored nothing".into()))?;
    assert_eq!(anchored.seq.get(), at as u64 + 1);
    assert_eq!(anchored.merkle_root, Some(acc.root()), "the same tree head");
    if frontier {
        assert_eq!(
            anchored.consistency.as_ref().map(|l| l.from_seq.get()),
            Some(at as u64),
            "linked to the anchor before the restart"
        );
    }
    Ok(took)
}
