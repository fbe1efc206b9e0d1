//! The review state of trails (issue 20): each record's signatures, whether a later capture
//! superseded it, and the review status the signing workflow
//! ([`relay_domain::workflow`]) derives from both.
//!
//! The index is built incrementally per trail: records never change, so each trail is read
//! once and then only from where the last read ended. Readers get an immutable snapshot
//! (`Arc`), copied only when new records arrive while an older snapshot is still in use.
//! Each trail also has a signing lane: a signature's workflow check and its append run under
//! it, so two parallel signatures on one trail cannot both pass a check meant for one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use relay_domain::workflow::{ReviewStatus, SignatureFact, SignatureMeaning, TargetFacts};
use relay_domain::{Checksum, EventKind, Record, TrailId};

use crate::error::ApiError;
use crate::events::Manifestation;
use crate::state::ApiState;

/// Records read per store call while bringing an index up to the head.
const READ_PAGE: usize = 500;

/// What the workflow knows about one trail, up to a seq.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReviewSnapshot {
    /// Signatures by the checksum they sign, in trail order.
    by_target: HashMap<Checksum, Vec<Manifestation>>,
    /// Per subject, the seq of its newest `FILE_MODIFIED` / `FILE_DELETED`.
    newest_change: HashMap<String, u64>,
    /// Record counts per (kind, actor, project, folder): facets and fast totals.
    tally: crate::facets::Tally,
}

/// Whether records of `kind` are file captures that a later capture can supersede.
fn is_capture(kind: &EventKind) -> bool {
    kind.as_str().starts_with("FILE_")
}

/// Whether records of `kind` supersede the earlier captures of their subject.
fn supersedes(kind: &EventKind) -> bool {
    *kind == EventKind::file_modified() || *kind == EventKind::file_deleted()
}

impl ReviewSnapshot {
    fn observe(&mut self, record: &Record) {
        self.tally.observe(record);
        if let Some((target, m)) = Manifestation::of(record) {
            self.by_target.entry(target).or_default().push(m);
        } else if supersedes(&record.kind)
            && let Some(subject) = &record.subject
        {
            self.newest_change
                .insert(subject.as_str().to_owned(), record.chain_seq.get());
        }
    }

    /// The trail's record counts per (kind, actor, project, folder).
    pub(crate) fn tally(&self) -> &crate::facets::Tally {
        &self.tally
    }

    /// The signatures on the record with `checksum`, oldest first.
    pub(crate) fn signatures_on(&self, checksum: &Checksum) -> &[Manifestation] {
        self.by_target.get(checksum).map_or(&[], Vec::as_slice)
    }

    /// Whether `record` can be signed at all: not a SIGNATURE, not in `_relay`.
    pub(crate) fn signable(record: &Record) -> bool {
        !record.trail_id.is_relay() && record.kind != EventKind::signature()
    }

    /// The seq of the newest later capture of `record`'s subject that supersedes it.
    pub(crate) fn superseded_by(&self, record: &Record) -> Option<u64> {
        if !is_capture(&record.kind) {
            return None;
        }
        let subject = record.subject.as_ref()?;
        self.newest_change
            .get(subject.as_str())
            .copied()
            .filter(|&seq| seq > record.chain_seq.get())
    }

    /// The record's signatures as the workflow rules read them.
    fn signature_facts(&self, record: &Record) -> Vec<SignatureFact> {
        self.signatures_on(&record.checksum)
            .iter()
            .map(|m| SignatureFact {
                signer: m.username.clone(),
                meaning: SignatureMeaning::parse(&m.meaning),
                seq: m.signature_seq,
            })
            .collect()
    }

    /// Calls `f` with what the workflow rules know about `record`.
    pub(crate) fn with_facts<T>(
        &self,
        record: &Record,
        f: impl FnOnce(&TargetFacts<'_>) -> T,
    ) -> T {
        let sigs = self.signature_facts(record);
        f(&TargetFacts {
            author: record.actor.as_str(),
            signatures: &sigs,
            superseded_by: self.superseded_by(record),
        })
    }

    /// The review status of `record`; `None` when it cannot be signed.
    pub(crate) fn status(&self, record: &Record) -> Option<ReviewStatus> {
        Self::signable(record)
            .then(|| self.with_facts(record, relay_domain::workflow::review_status))
    }

    /// The next signature `signer` may apply to `record` under the installation's policy.
    pub(crate) fn next_step_for(
        &self,
        policy: &relay_domain::workflow::WorkflowPolicy,
        record: &Record,
        signer: &str,
    ) -> Option<SignatureMeaning> {
        if !Self::signable(record) {
            return None;
        }
        self.with_facts(record, |facts| {
            relay_domain::workflow::next_step_for(policy, facts, signer)
        })
    }
}

/// One trail's index and signing lane.
#[derive(Default)]
struct TrailLane {
    /// The index and how far it has read.
    index: tokio::sync::Mutex<(u64, Arc<ReviewSnapshot>)>,
    /// Held from a signature's workflow check to its append.
    signing: Arc<tokio::sync::Mutex<()>>,
}

/// The review index of every trail read so far.
#[derive(Default)]
pub(crate) struct ReviewIndex {
    trails: Mutex<HashMap<TrailId, Arc<TrailLane>>>,
}

impl ReviewIndex {
    fn lane(&self, trail: &TrailId) -> Arc<TrailLane> {
        let mut trails = self.trails.lock().unwrap_or_else(PoisonError::into_inner);
        trails.entry(trail.clone()).or_default().clone()
    }
}

impl ApiState {
    /// The review state of `trail`, brought up to the stored head.
    pub(crate) async fn review_of(&self, trail: &TrailId) -> Result<Arc<ReviewSnapshot>, ApiError> {
        let lane = self.inner.review.lane(trail);
        let mut guard = lane.index.lock().await;
        let (scanned_upto, snapshot) = &mut *guard;
        loop {
            let page = self
                .parts()
                .store
                .read(trail, *scanned_upto, READ_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            *scanned_upto = last.chain_seq.get();
            let next = Arc::make_mut(snapshot);
            for record in &page {
                next.observe(record);
            }
            if page.len() < READ_PAGE {
                break;
            }
        }
        Ok(snapshot.clone())
    }

    /// Builds the review index (signatures, supersessions and the facet tally) of the trails
    /// in the background, one trail after the other, so that the first read of a large trail
    /// does not wait for it (issue 25: about 3.5 s per 100,000 records in a debug build on a
    /// loaded 2-core machine). Bounded: the smallest trails first, and no more than
    /// [`ApiConfig::review_warm_budget_records`](crate::ApiConfig::review_warm_budget_records)
    /// records in all (default 2,000,000), so a server of record holding a fleet's trails
    /// does not read every record at each start; the rest are built at their first read, as a
    /// trail that fails here is. Each trail warmed is a debug line `review index warmed for a
    /// trail`, and the end an info line `review index warmed` (`warmed`, `records`,
    /// `left_for_first_read`, `budget`). Call it once, after start.
    pub fn warm_review_index(&self) {
        let state = self.clone();
        let budget = self.config().review_warm_budget_records;
        tokio::spawn(async move {
            let mut trails = match state.parts().store.trails().await {
                Ok(trails) => trails,
                Err(e) => {
                    tracing::warn!(error = %e, "review index not warmed: the trails cannot be listed; each is built at its first read");
                    return;
                }
            };
            trails.sort_by_key(|(_, head)| head.seq.get());
            let (mut warmed, mut records) = (0usize, 0u64);
            for (trail, head) in &trails {
                if records.saturating_add(head.seq.get()) > budget {
                    break;
                }
                match state.review_of(trail).await {
                    Ok(_) => {
                        warmed += 1;
                        records += head.seq.get();
                        tracing::debug!(trail = %trail, records = head.seq.get(), "review index warmed for a trail");
                    }
                    Err(e) => {
                        tracing::warn!(trail = %trail, error = ?e, "review index not warmed for this trail; it is built at its first read");
                    }
                }
            }
            tracing::info!(
                warmed,
                records,
                left_for_first_read = trails.len() - warmed,
                budget,
                "review index warmed"
            );
        });
    }

    /// Waits for `trail`'s signing lane; the guard serializes signatures on the trail.
    pub(crate) async fn signing_lane(&self, trail: &TrailId) -> tokio::sync::OwnedMutexGuard<()> {
        let lane = self.inner.review.lane(trail);
        lane.signing.clone().lock_owned().await
    }
}
