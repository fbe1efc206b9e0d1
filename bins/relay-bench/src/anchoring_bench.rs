//! `relay-bench anchoring`: what anchoring costs an object store with many busy trails (issue
//! 19, item 1): object writes and bytes per minute and per day, and the reads a restarted relay
//! makes to find every trail's newest anchor.
//!
//! `--trails` trails each get one record per round; a notary scheduler (with the seal key, so
//! anchors carry signed checkpoints, frontiers and proofs) anchors every 30 s of simulated time
//! (a manual clock) into the real `WormNotary` over a bucket in memory that counts every call.
//! Ours: rounds (`Notary::anchor_round`, one object per round). Baseline, same run: the same
//! scheduler with every anchor stored alone, one object per moved trail per round, as before
//! rounds existed. Counts do not depend on the build or the machine.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use relay_domain::export::SealKey;
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::{
    Anchor, AnchorReceipt, Notary, NotaryError, RecordStore, TimeSource, WormPosture,
};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, KeyId, Payload, Subject,
    Timestamp, TrailId, TrailKey,
};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::notary_scheduler::NotaryScheduler;
use relay_worm::{Listed, LockedBucket, TrailListing, WormNotary};

use crate::Row;

/// What the bucket was asked to do.
#[derive(Debug, Default)]
struct Calls {
    puts: AtomicU64,
    put_bytes: AtomicU64,
    lists: AtomicU64,
    reads: AtomicU64,
}

impl Calls {
    fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.puts.swap(0, Ordering::SeqCst),
            self.put_bytes.swap(0, Ordering::SeqCst),
            self.lists.swap(0, Ordering::SeqCst),
            self.reads.swap(0, Ordering::SeqCst),
        )
    }
}

/// A bucket in memory that counts calls: every list is one call per 1,000 names, as S3's
/// `ListObjectVersions` pages.
#[derive(Clone, Default)]
struct CountingBucket {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    calls: Arc<Calls>,
}

impl fmt::Debug for CountingBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingBucket")
    }
}

#[async_trait]
impl LockedBucket for CountingBucket {
    type Version = ();

    fn kind(&self) -> &'static str {
        "counting"
    }

    fn location(&self, name: &str) -> String {
        format!("mem://bench/{name}")
    }

    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        _posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError> {
        self.calls.puts.fetch_add(1, Ordering::SeqCst);
        self.calls
            .put_bytes
            .fetch_add(body.len() as u64, Ordering::SeqCst);
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if objects.insert(name.to_owned(), body).is_some() {
            return Err(NotaryError::InvalidAnchor(format!("{name} written twice")));
        }
        Ok(AnchorReceipt {
            location: self.location(name),
            retain_until: None,
        })
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<()>>, NotaryError> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<Listed<()>> = objects
            .keys()
            .filter(|n| n.starts_with(prefix))
            .map(|n| Listed {
                name: n.clone(),
                version: (),
            })
            .collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        let pages = (names.len() as u64).div_ceil(1000).max(1);
        self.calls.lists.fetch_add(pages, Ordering::SeqCst);
        Ok(names)
    }

    async fn read_version(
        &self,
        name: &str,
        _version: &(),
        _posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        self.calls.reads.fetch_add(1, Ordering::SeqCst);
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        Ok(objects.get(name).cloned())
    }

    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
        self.calls.lists.fetch_add(1, Ordering::SeqCst);
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let mut folders: Vec<String> = objects
            .keys()
            .filter_map(|n| {
                let rest = n.strip_prefix(prefix)?;
                Some(format!("{prefix}{}/", rest.split_once('/')?.0))
            })
            .collect();
        folders.sort();
        folders.dedup();
        Ok(TrailListing::Folders(folders))
    }
}

/// The WORM notary with its own `anchor_round` hidden: every anchor stored alone (the baseline).
#[derive(Debug)]
struct EachAlone(WormNotary<CountingBucket>);

#[async_trait]
impl Notary for EachAlone {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn worm_posture(&self) -> WormPosture {
        self.0.worm_posture()
    }
    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        self.0.anchor(anchor).await
    }
    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        self.0.anchors(trail).await
    }
    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        self.0.newest_anchor(trail).await
    }
    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        self.0.anchored_trails().await
    }
}

const ROUND_SECS: i64 = 30;
const START: i64 = 1_790_000_000_000_000;

/// One simulated run's figures.
struct Run {
    /// Object writes and bytes in the steady rounds (after the first), per round.
    puts_per_round: f64,
    bytes_per_round: f64,
    /// Reads a restarted relay makes to find every trail's newest anchor: list pages, GETs.
    restart_lists: u64,
    restart_reads: u64,
}

async fn simulate(trails: usize, rounds: usize, use_rounds: bool) -> Result<Run, String> {
    let store: Arc<dyn RecordStore> = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_unix_micros(START).map_err(|e| e.to_string())?,
    ));
    let time: Arc<dyn TimeSource> = clock.clone();
    let key = TrailKey::new(KeyId::new("k-bench").map_err(|e| e.to_string())?, &[7; 32])
        .map_err(|e| e.to_string())?;
    let appender = Arc::new(AppendService::new(store.clone(), time.clone(), key));
    let journal = Journal::new(
        appender.clone(),
        Metrics::new(),
        Device::new("bench").map_err(|e| e.to_string())?,
    );
    let bucket = CountingBucket::default();
    let worm = WormNotary::new(bucket.clone(), "anchors/", WormPosture::Enforced);
    let notary: Arc<dyn Notary> = if use_rounds {
        Arc::new(worm)
    } else {
        Arc::new(EachAlone(worm))
    };
    let seal = Arc::new(SealKey::from_seed(&[9; 32]).map_err(|e| e.to_string())?);
    let mut scheduler =
        NotaryScheduler::new(store.clone(), notary, time, journal.clone()).with_seal_key(seal);
    let ids: Vec<TrailId> = (0..trails)
        .map(|i| TrailId::new(format!("ws-{i:05}")).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let payload =
        Payload::from_value(&serde_json::json!({"size": 1})).map_err(|e| e.to_string())?;
    let (mut steady_puts, mut steady_bytes) = (0u64, 0u64);
    for round in 0..rounds {
        let at = START + round as i64 * ROUND_SECS * 1_000_000;
        clock.set(Timestamp::from_unix_micros(at).map_err(|e| e.to_string())?);
        for trail in &ids {
            appender
                .append(EventDraft {
                    trail_id: trail.clone(),
                    kind: EventKind::file_created(),
                    actor: Some(Actor::new("alice").map_err(|e| e.to_string())?),
                    actor_source: ActorSource::OsSession,
                    occurred_at: None,
                    device: Device::new("ws").map_err(|e| e.to_string())?,
                    project: None,
                    subject: Some(Subject::new("f.fid").map_err(|e| e.to_string())?),
                    payload: payload.clone(),
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        let done = scheduler.notarize_all(1).await;
        if let Some(f) = done.failures.first() {
            return Err(format!("round {round}: {f}"));
        }
        let (puts, bytes, _, _) = bucket.calls.take();
        if round > 0 {
            steady_puts += puts;
            steady_bytes += bytes;
        }
        if round % 20 == 0 {
            eprintln!(
                "anchoring: {} round {round} of {rounds}: {puts} writes, {bytes} bytes",
                if use_rounds { "rounds" } else { "each alone" }
            );
        }
    }
    // A restart: a fresh notary (empty cache) finds every trail's newest anchor.
    let fresh = WormNotary::new(bucket.clone(), "anchors/", WormPosture::Enforced);
    bucket.calls.take();
    for trail in ids.iter().chain([&TrailId::relay()]) {
        fresh
            .newest_anchor(trail)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{trail} has no anchor after the run"))?;
    }
    let (_, _, restart_lists, restart_reads) = bucket.calls.take();
    let steady = (rounds - 1).max(1) as f64;
    Ok(Run {
        puts_per_round: steady_puts as f64 / steady,
        bytes_per_round: steady_bytes as f64 / steady,
        restart_lists,
        restart_reads,
    })
}

/// Runs both sides for `trails` busy trails over `rounds` rounds of 30 s.
pub(crate) async fn bench_anchoring(trails: usize, rounds: usize) -> Result<Vec<Row>, String> {
    if trails == 0 || rounds < 2 {
        return Err("--trails must be at least 1 and --rounds at least 2".into());
    }
    let ours = simulate(trails, rounds, true).await?;
    let base = simulate(trails, rounds, false).await?;
    let per_min = |per_round: f64| per_round * 60.0 / ROUND_SECS as f64;
    let per_day = |per_round: f64| per_round * 86_400.0 / ROUND_SECS as f64;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let hours = rounds as f64 * ROUND_SECS as f64 / 3600.0;
    Ok(vec![
        Row {
            path: leak(format!(
                "anchoring {trails} busy trails every 30 s: object writes per minute ({rounds} rounds, {hours:.2} h)"
            )),
            ours: format!(
                "{:.1} writes/min ({:.0}/day)",
                per_min(ours.puts_per_round),
                per_day(ours.puts_per_round)
            ),
            baseline: format!(
                "{:.1} writes/min ({:.0}/day), one object per moved trail",
                per_min(base.puts_per_round),
                per_day(base.puts_per_round)
            ),
            ratio: format!(
                "{:.1}% of the writes",
                100.0 * ours.puts_per_round / base.puts_per_round.max(1e-9)
            ),
        },
        Row {
            path: leak(format!(
                "anchoring {trails} busy trails every 30 s: bytes written per day"
            )),
            ours: format!("{:.0} MiB/day", mib(per_day(ours.bytes_per_round))),
            baseline: format!("{:.0} MiB/day", mib(per_day(base.bytes_per_round))),
            ratio: format!(
                "{:.2}x",
                ours.bytes_per_round / base.bytes_per_round.max(1e-9)
            ),
        },
        Row {
            path: leak(format!(
                "restart after {hours:.2} h: finding the newest anchor of {trails} trails + _relay"
            )),
            ours: format!(
                "{} list pages, {} reads",
                ours.restart_lists, ours.restart_reads
            ),
            baseline: format!(
                "{} list pages, {} reads",
                base.restart_lists, base.restart_reads
            ),
            ratio: format!(
                "{:.1}x the reads",
                ours.restart_reads as f64 / base.restart_reads.max(1) as f64
            ),
        },
    ])
}
