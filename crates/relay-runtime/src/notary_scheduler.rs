//! The notary scheduler (R7.1): anchors every trail head (trail, seq, checksum, RFC 9162 tree
//! head, time) to the configured `Notary` on an interval and once more at shutdown.
//!
//! Every anchor the notary acknowledged is recorded as an `ANCHORED` event in `_relay`
//! (trail, seq, checksum, Merkle root, time, where the notary stored it), so verification can
//! check that each one is still in the notary: deleting anchors is then a finding, not a lower
//! count of anchors checked. `_relay` is anchored last in a round, so its anchor covers the
//! round's `ANCHORED` events; the `ANCHORED` event of `_relay`'s own anchor does not by itself
//! make `_relay` due again (an idle relay does not anchor forever).
//!
//! A failure is recorded as a `NOTARY_FAILED` event in `_relay`, counted
//! (`relay_notary_failures_total`), logged, and retried with capped exponential backoff.
//! A Merkle accumulator per trail is kept in memory (O(log n)). Anchors are version 2
//! (docs/spec/checkpoint.md): each carries its tree's frontier, the RFC 9162 consistency proof
//! from the trail's previous anchor and a C2SP checkpoint signed with the seal key. On start-up
//! the accumulator resumes from the newest anchor's frontier, after checking that the stored
//! record at that seq still carries the anchored checksum, so only the records appended since
//! are read (a trail whose newest anchor is version 1 is read once from seq 1, and its frontier
//! is taken when the replay reaches the anchor). Between anchors the leaf hashes appended since
//! the last one are kept to prove consistency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use relay_domain::anchor_history::{AnchorBase, build_anchor};
use relay_domain::export::SealKey;
use relay_domain::merkle::{MerkleAccumulator, record_leaf_hash};
use relay_domain::ports::{
    Anchor, Notary, NotaryError, ROUND_SPAN_MICROS, RecordStore, RecordStoreError, TimeSource,
    TimeSourceError,
};
use relay_domain::verify::RecordedAnchor;
use relay_domain::{
    ChainSeq, Checksum, EventKind, GENESIS, Record, Subject, TimeLabel, Timestamp, TrailId,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::journal::Journal;

/// How often the scheduler anchors, and how it backs off after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotarySchedule {
    /// Time between rounds when all went well (default 15 minutes).
    pub interval: Duration,
    /// First retry delay after a failed round; doubled per consecutive failure.
    pub backoff_base: Duration,
    /// The longest retry delay (never more than `interval`).
    pub backoff_cap: Duration,
}

impl Default for NotarySchedule {
    fn default() -> Self {
        Self::every(Duration::from_secs(15 * 60))
    }
}

impl NotarySchedule {
    /// Rounds every `interval`, retries from 1 s doubling up to 5 minutes (or `interval`).
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            backoff_base: Duration::from_secs(1).min(interval),
            backoff_cap: Duration::from_secs(300).min(interval),
        }
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_cap)
    }
}

/// Why one trail could not be notarized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotarizeError {
    /// The records could not be read.
    #[error("cannot read trail {trail}")]
    Store {
        /// The trail.
        trail: TrailId,
        /// The cause.
        #[source]
        source: RecordStoreError,
    },
    /// The notary refused or failed.
    #[error("notary failed for trail {trail}")]
    Notary {
        /// The trail.
        trail: TrailId,
        /// The cause.
        #[source]
        source: NotaryError,
    },
    /// No time for the anchor.
    #[error("no time for the anchor of trail {trail}")]
    Time {
        /// The trail.
        trail: TrailId,
        /// The cause.
        #[source]
        source: TimeSourceError,
    },
    /// The notary refused or failed to store a round: none of its trails were anchored.
    #[error("notary failed to store a round of {count} trail heads (the first of trail {first})")]
    Round {
        /// The round's first trail.
        first: TrailId,
        /// How many trails the round held.
        count: usize,
        /// The cause.
        #[source]
        source: NotaryError,
    },
    /// The stored trail does not link up; a broken head is never notarized.
    #[error("trail {trail} does not link at chain_seq {seq}; not notarizing a broken chain")]
    Broken {
        /// The trail.
        trail: TrailId,
        /// The first seq that does not continue the previous one.
        seq: u64,
    },
}

impl NotarizeError {
    fn trail(&self) -> &TrailId {
        match self {
            Self::Store { trail, .. }
            | Self::Notary { trail, .. }
            | Self::Time { trail, .. }
            | Self::Broken { trail, .. } => trail,
            Self::Round { first, .. } => first,
        }
    }
}

/// What one round did.
#[derive(Debug, Default)]
pub struct NotarizeRound {
    /// Anchors written.
    pub anchored: Vec<Anchor>,
    /// Trails that failed, with why.
    pub failures: Vec<NotarizeError>,
}

#[derive(Debug, Default)]
struct TrailState {
    acc: MerkleAccumulator,
    last: Option<(ChainSeq, Checksum)>,
    /// The last seq that needs an anchor: every record except the `ANCHORED` event of `_relay`'s
    /// own anchor.
    due: Option<ChainSeq>,
    anchored: Option<ChainSeq>,
    anchors_loaded: bool,
    /// The newest anchor, to link the next one to (its frontier known).
    base: Option<AnchorBase>,
    /// The newest anchor whose frontier is not stored (version 1): its seq and tree head,
    /// until the replay reaches it.
    pending_base: Option<(ChainSeq, Checksum)>,
    /// Leaf hashes appended since `base`.
    since_base: Vec<Checksum>,
    /// When this scheduler last stored the trail's anchor alone (Unix microseconds): its next
    /// anchors may go into rounds for [`ROUND_SPAN_MICROS`] after that.
    alone_at: Option<i64>,
}

impl TrailState {
    /// Whether an anchor made at `now` may go into a round: an anchor of the trail stored alone
    /// by this scheduler at most [`ROUND_SPAN_MICROS`] before.
    fn round_eligible(&self, now: i64) -> bool {
        self.alone_at
            .is_some_and(|at| now >= at && now - at < ROUND_SPAN_MICROS)
    }

    /// Takes `anchor` as the trail's newest, stored alone or in a round.
    fn anchored(&mut self, anchor: &Anchor, alone: bool) {
        self.anchored = Some(anchor.seq);
        self.base = AnchorBase::of(anchor);
        self.since_base.clear();
        if alone {
            self.alone_at = Some(anchor.anchored_at.unix_micros());
        }
    }
}

/// Whether `record` is the `ANCHORED` event of an anchor of `_relay` itself.
fn records_own_anchor(record: &Record) -> bool {
    record.trail_id.is_relay()
        && RecordedAnchor::from_record(record).is_some_and(|a| a.trail.is_relay())
}

/// Anchors trail heads; drive it with [`notarize_all`](Self::notarize_all) or
/// [`spawn`](Self::spawn).
#[derive(Debug)]
pub struct NotaryScheduler {
    store: Arc<dyn RecordStore>,
    notary: Arc<dyn Notary>,
    clock: Arc<dyn TimeSource>,
    journal: Journal,
    seal: Option<Arc<SealKey>>,
    trails: HashMap<TrailId, TrailState>,
    buf: Vec<u8>,
}

const PAGE: usize = 4096;

impl NotaryScheduler {
    /// A scheduler anchoring heads of `store`'s trails to `notary`.
    pub fn new(
        store: Arc<dyn RecordStore>,
        notary: Arc<dyn Notary>,
        clock: Arc<dyn TimeSource>,
        journal: Journal,
    ) -> Self {
        Self {
            store,
            notary,
            clock,
            journal,
            seal: None,
            trails: HashMap::new(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Signs every anchor's checkpoint with `key` (the export seal key, which auditors pin).
    pub fn with_seal_key(mut self, key: Arc<SealKey>) -> Self {
        self.seal = Some(key);
        self
    }

    /// Anchors every trail whose head moved since its last anchor. Each failure has already
    /// been journaled, counted and logged when this returns.
    ///
    /// A trail whose anchor this scheduler stored alone less than [`ROUND_SPAN_MICROS`] ago
    /// goes into the round ([`Notary::anchor_round`]: one object for all of them on an object
    /// store); the others, and every trail's first anchor after a start, are stored alone. So a
    /// round costs one write for the moving trails, one for `_relay`, and one per trail per
    /// hour, however many trails there are.
    pub async fn notarize_all(&mut self, attempt: u32) -> NotarizeRound {
        let mut round = NotarizeRound::default();
        let trails = match self.store.trails().await {
            Ok(t) => t,
            Err(source) => {
                let e = NotarizeError::Store {
                    trail: TrailId::relay(),
                    source,
                };
                self.report(&e, attempt).await;
                round.failures.push(e);
                return round;
            }
        };
        let now = match self.clock.now().await {
            Ok(now) => (now.at, now.label),
            Err(source) => {
                let e = NotarizeError::Time {
                    trail: TrailId::relay(),
                    source,
                };
                self.report(&e, attempt).await;
                round.failures.push(e);
                return round;
            }
        };
        // `_relay` last: its anchor then covers the ANCHORED events of this round.
        let (relay, others): (Vec<_>, Vec<_>) = trails
            .into_iter()
            .map(|(t, _)| t)
            .partition(TrailId::is_relay);
        for group in [others, relay] {
            self.notarize_group(&group, &now, attempt, &mut round).await;
        }
        round
    }

    /// Anchors the trails of `group` that moved, made at `now`: alone or in one round.
    async fn notarize_group(
        &mut self,
        group: &[TrailId],
        now: &(Timestamp, TimeLabel),
        attempt: u32,
        round: &mut NotarizeRound,
    ) {
        let mut alone = Vec::new();
        let mut in_round = Vec::new();
        for trail in group {
            match self.prepare(trail, Some(now)).await {
                Ok(Some(anchor)) => {
                    let eligible = self
                        .trails
                        .get(trail)
                        .is_some_and(|s| s.round_eligible(now.0.unix_micros()));
                    if eligible {
                        in_round.push(anchor);
                    } else {
                        alone.push(anchor);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.report(&e, attempt).await;
                    round.failures.push(e);
                }
            }
        }
        for anchor in alone {
            match self.store_alone(anchor).await {
                Ok(anchor) => round.anchored.push(anchor),
                Err(e) => {
                    self.report(&e, attempt).await;
                    round.failures.push(e);
                }
            }
        }
        let Some(first) = in_round.first().map(|a| a.trail_id.clone()) else {
            return;
        };
        match self.notary.anchor_round(&in_round).await {
            Ok(receipts) => {
                for (anchor, receipt) in in_round.into_iter().zip(receipts) {
                    if let Some(state) = self.trails.get_mut(&anchor.trail_id) {
                        state.anchored(&anchor, false);
                    }
                    tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), location = %receipt.location, "trail head notarized in a round");
                    self.record_anchor(&anchor, &receipt.location).await;
                    round.anchored.push(anchor);
                }
            }
            Err(source) => {
                let e = NotarizeError::Round {
                    first,
                    count: in_round.len(),
                    source,
                };
                self.report(&e, attempt).await;
                round.failures.push(e);
            }
        }
    }

    /// Anchors one trail's head if it moved since its last anchor (`None`: already anchored).
    /// A failure has been journaled, counted and logged when this returns.
    pub async fn notarize_trail(
        &mut self,
        trail: &TrailId,
    ) -> Result<Option<Anchor>, NotarizeError> {
        let result = self.notarize(trail).await;
        if let Err(e) = &result {
            self.report(e, 0).await;
        }
        result
    }

    async fn notarize(&mut self, trail: &TrailId) -> Result<Option<Anchor>, NotarizeError> {
        match self.prepare(trail, None).await? {
            Some(anchor) => self.store_alone(anchor).await.map(Some),
            None => Ok(None),
        }
    }

    /// Stores `anchor` as its own notary object and records it.
    async fn store_alone(&mut self, anchor: Anchor) -> Result<Anchor, NotarizeError> {
        let receipt =
            self.notary
                .anchor(&anchor)
                .await
                .map_err(|source| NotarizeError::Notary {
                    trail: anchor.trail_id.clone(),
                    source,
                })?;
        if let Some(state) = self.trails.get_mut(&anchor.trail_id) {
            state.anchored(&anchor, true);
        }
        tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), location = %receipt.location, "trail head notarized");
        self.record_anchor(&anchor, &receipt.location).await;
        Ok(anchor)
    }

    /// Reads the trail's records since the last round into its tree and, if its head moved
    /// since its last anchor, makes the next anchor (at `now`, or the clock's time), without
    /// storing it. `None`: nothing to anchor.
    async fn prepare(
        &mut self,
        trail: &TrailId,
        now: Option<&(Timestamp, TimeLabel)>,
    ) -> Result<Option<Anchor>, NotarizeError> {
        let state = self.trails.entry(trail.clone()).or_default();
        if !state.anchors_loaded {
            let newest =
                self.notary
                    .newest_anchor(trail)
                    .await
                    .map_err(|source| NotarizeError::Notary {
                        trail: trail.clone(),
                        source,
                    })?;
            state.anchored = newest.as_ref().map(|a| a.seq);
            if let Some(newest) = &newest {
                resume_from_newest(&*self.store, trail, state, newest).await?;
            }
            state.anchors_loaded = true;
        }
        loop {
            let page = self
                .store
                .read(trail, state.acc.len(), PAGE)
                .await
                .map_err(|source| NotarizeError::Store {
                    trail: trail.clone(),
                    source,
                })?;
            if page.is_empty() {
                break;
            }
            for record in &page {
                let (expected_seq, expected_prev) = match state.last {
                    None => (ChainSeq::FIRST, GENESIS),
                    Some((s, c)) => (s.next(), c),
                };
                if record.chain_seq != expected_seq || record.prev_checksum != expected_prev {
                    return Err(NotarizeError::Broken {
                        trail: trail.clone(),
                        seq: expected_seq.get(),
                    });
                }
                let leaf = record_leaf_hash(record, &mut self.buf);
                state.acc.push_leaf_hash(leaf);
                if state.base.is_some() {
                    state.since_base.push(leaf);
                }
                if let Some((seq, root)) = state.pending_base
                    && seq == record.chain_seq
                {
                    state.pending_base = None;
                    // A tree head that the records no longer give is not linked to: the
                    // verifier reports the rewrite, the next anchor starts a new link.
                    if state.acc.root() == root {
                        state.base = Some(AnchorBase {
                            seq,
                            root,
                            frontier: state.acc.frontier().to_vec(),
                        });
                    }
                }
                state.last = Some((record.chain_seq, record.checksum));
                if !records_own_anchor(record) {
                    state.due = Some(record.chain_seq);
                }
            }
        }
        let Some((seq, checksum)) = state.last else {
            return Ok(None);
        };
        if state.anchored.is_some_and(|a| a >= seq)
            || state
                .due
                .is_none_or(|due| state.anchored.is_some_and(|a| a >= due))
        {
            return Ok(None);
        }
        let now = match now {
            Some(now) => *now,
            None => {
                let now = self
                    .clock
                    .now()
                    .await
                    .map_err(|source| NotarizeError::Time {
                        trail: trail.clone(),
                        source,
                    })?;
                (now.at, now.label)
            }
        };
        Ok(Some(build_anchor(
            trail,
            seq,
            checksum,
            &state.acc,
            state.base.as_ref(),
            &state.since_base,
            now,
            self.seal.as_deref(),
        )))
    }

    /// Records the notarization in `_relay` (`ANCHORED`), so verification can account for it.
    async fn record_anchor(&self, anchor: &Anchor, location: &str) {
        let recorded = RecordedAnchor::of(anchor, location);
        let payload = match serde_json::to_value(&recorded) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "ANCHORED payload could not be encoded");
                return;
            }
        };
        let subject = Subject::new(anchor.trail_id.as_str()).ok();
        if let Err(e) = self
            .journal
            .record(RecordedAnchor::kind(), subject, payload)
            .await
        {
            // Already logged and counted by the journal: the anchor exists but verification
            // will not know to miss it.
            tracing::error!(trail = %anchor.trail_id, seq = anchor.seq.get(), error = %e, "ANCHORED event not recorded");
        }
    }

    async fn report(&self, e: &NotarizeError, attempt: u32) {
        self.journal.metrics().notary_failures.inc();
        let detail = relay_domain::error_chain(e);
        tracing::error!(trail = %e.trail(), attempt, error = %detail, "notarization failed; will retry");
        let payload = serde_json::json!({
            "trail": e.trail().as_str(),
            "error": detail,
            "attempt": attempt,
        });
        let subject = Subject::new(e.trail().as_str()).ok();
        if let Err(journal_err) = self
            .journal
            .record(EventKind::notary_failed(), subject, payload)
            .await
        {
            // Already logged and counted by the journal; the metric above still fires.
            tracing::error!(error = %journal_err, "NOTARY_FAILED event not recorded");
        }
    }

    /// Runs rounds on `schedule` (the first one at once) until the handle shuts it down, then
    /// a final round.
    pub fn spawn(mut self, schedule: NotarySchedule) -> NotarySchedulerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut attempt = 0u32;
            let mut delay = Duration::ZERO;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    changed = stopped.changed() => {
                        if changed.is_err() || *stopped.borrow() {
                            break;
                        }
                        continue;
                    }
                }
                let round = self.notarize_all(attempt + 1).await;
                if round.failures.is_empty() {
                    attempt = 0;
                    delay = schedule.interval;
                } else {
                    attempt = attempt.saturating_add(1);
                    delay = schedule.backoff(attempt);
                }
            }
            // Final notarization at shutdown: a few quick retries, then give up loudly.
            let mut last = NotarizeRound::default();
            for final_attempt in 1..=3u32 {
                last = self.notarize_all(attempt + final_attempt).await;
                if last.failures.is_empty() {
                    break;
                }
                tokio::time::sleep(schedule.backoff(final_attempt).min(Duration::from_secs(2)))
                    .await;
            }
            last
        });
        NotarySchedulerHandle { stop, task }
    }
}

/// Sets up `state` from the trail's newest anchor (the only one read at start): with a stored frontier, the accumulator
/// resumes there (after checking that the stored record at that seq still carries the anchored
/// checksum; a trail now shorter than its anchor is left for verification to report); without
/// one, the replay from seq 1 takes the frontier when it reaches the anchor.
async fn resume_from_newest(
    store: &dyn RecordStore,
    trail: &TrailId,
    state: &mut TrailState,
    newest: &Anchor,
) -> Result<(), NotarizeError> {
    let Some(root) = newest.merkle_root else {
        return Ok(());
    };
    if !state.acc.is_empty() {
        return Ok(());
    }
    let resumed = MerkleAccumulator::resume(newest.seq.get(), &newest.frontier)
        .filter(|acc| !newest.frontier.is_empty() && acc.root() == root);
    let Some(acc) = resumed else {
        state.pending_base = Some((newest.seq, root));
        return Ok(());
    };
    let stored = store
        .read(trail, newest.seq.get() - 1, 1)
        .await
        .map_err(|source| NotarizeError::Store {
            trail: trail.clone(),
            source,
        })?;
    match stored.first() {
        Some(r) if r.chain_seq == newest.seq && r.checksum == newest.checksum => {
            state.acc = acc;
            state.last = Some((newest.seq, newest.checksum));
            state.base = AnchorBase::of(newest);
            Ok(())
        }
        // Shorter than the anchor: nothing will be anchored until it grows past it, and
        // verification reports the truncation. Replay from seq 1 so the tree stays true.
        None => {
            state.pending_base = Some((newest.seq, root));
            Ok(())
        }
        Some(_) => Err(NotarizeError::Broken {
            trail: trail.clone(),
            seq: newest.seq.get(),
        }),
    }
}

/// Controls a spawned [`NotaryScheduler`].
#[derive(Debug)]
pub struct NotarySchedulerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<NotarizeRound>,
}

impl NotarySchedulerHandle {
    /// Stops the schedule and waits for the final notarization of every head.
    pub async fn shutdown(self) -> Result<NotarizeRound, tokio::task::JoinError> {
        if self.stop.send(true).is_err() {
            tracing::debug!("notary scheduler already stopped");
        }
        self.task.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R7.1
    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = NotarySchedule::every(Duration::from_secs(60));
        assert_eq!(s.backoff(1), Duration::from_secs(1));
        assert_eq!(s.backoff(2), Duration::from_secs(2));
        assert_eq!(s.backoff(5), Duration::from_secs(16));
        assert_eq!(s.backoff(10), Duration::from_secs(60));
        assert_eq!(s.backoff(200), Duration::from_secs(60));
    }
}
