//! The append service: turns event drafts into chained records, serialized per trail (R1.5),
//! with group commit.
//!
//! Appends to one trail go through a *lane*. Callers enqueue their draft, then take the lane's
//! writer lock in turn. Whoever holds the lock drains everything queued so far (its own draft
//! and those of callers still waiting), chains the drafts onto the trail head, and stores them in
//! **one** atomic, durable batch. Every caller is answered only after that batch is stored, so
//! nothing is acknowledged before it is durable, and a burst of N concurrent appends costs far
//! fewer than N commits.
//!
//! A caller may also enqueue a *group* of drafts ([`AppendService::append_group`]): a group is
//! never split across commits, so its records are chained consecutively and stored in one
//! atomic batch, all or none of them (a bulk signature's records, for instance).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::channel::oneshot;
use thiserror::Error;

use crate::chain::{GENESIS, checksum_with_buf};
use crate::ids::{Actor, ActorSource, ChainSeq, Device, EventKind, Project, Subject, TrailId};
use crate::keys::TrailKey;
use crate::ports::record_store::{Head, RecordStore, RecordStoreError};
use crate::ports::time_source::{TimeSource, TimeSourceError};
use crate::record::{Payload, Record};
use crate::timestamp::Timestamp;

/// The most records one group commit stores; later drafts wait for the next commit.
pub const MAX_GROUP_COMMIT: usize = 2048;

/// An event to append, before the relay chains it.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// The trail to append to.
    pub trail_id: TrailId,
    /// The kind of event.
    pub kind: EventKind,
    /// Who caused it, as resolved by the relay; `None` when resolution failed, and then the
    /// append is refused (R2.2) rather than recorded as "unknown".
    pub actor: Option<Actor>,
    /// How the actor was resolved.
    pub actor_source: ActorSource,
    /// When it happened, if known; otherwise the record's `recorded_at` is used.
    pub occurred_at: Option<Timestamp>,
    /// The workstation.
    pub device: Device,
    /// The project, if any.
    pub project: Option<Project>,
    /// What the event is about, if anything.
    pub subject: Option<Subject>,
    /// Kind-specific details.
    pub payload: Payload,
}

/// Why an append failed. Cloneable, because one failed group commit answers several callers.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The draft has no resolvable actor (R2.2).
    #[error("refused {kind} event for trail {trail_id}: no resolvable actor")]
    NoActor {
        /// The trail.
        trail_id: TrailId,
        /// The event kind.
        kind: EventKind,
    },
    /// The record store refused or failed; nothing of the batch was stored.
    #[error("trail {trail_id}: append failed")]
    Store {
        /// The trail.
        trail_id: TrailId,
        /// The store's error.
        #[source]
        source: Arc<RecordStoreError>,
    },
    /// The time source failed; nothing was stored.
    #[error("trail {trail_id}: no time for the record")]
    Time {
        /// The trail.
        trail_id: TrailId,
        /// The time source's error.
        #[source]
        source: Arc<TimeSourceError>,
    },
    /// The task committing this draft's batch was cancelled; the record may or may not have
    /// been stored, and the trail head tells.
    #[error("trail {trail_id}: append interrupted before an outcome was known")]
    Interrupted {
        /// The trail.
        trail_id: TrailId,
    },
    /// A group of drafts cannot be committed as one batch: it is empty, larger than
    /// [`MAX_GROUP_COMMIT`], or spans several trails. Nothing was stored.
    #[error("trail {trail_id}: refused group append: {reason}")]
    InvalidGroup {
        /// The trail of the group's first draft.
        trail_id: TrailId,
        /// Why the group was refused.
        reason: &'static str,
    },
}

/// A caller's drafts, committed together (one draft for [`AppendService::append`]).
struct Pending {
    drafts: Vec<EventDraft>,
    reply: oneshot::Sender<Result<Vec<Record>, AppendError>>,
}

#[derive(Default)]
struct Lane {
    queue: Mutex<Vec<Pending>>,
    // The cached head; `None` when unknown (first use, or after a failed commit).
    writer: async_lock::Mutex<Option<Option<Head>>>,
}

/// Chains and stores events; one instance per process is shared by every writer.
pub struct AppendService {
    store: Arc<dyn RecordStore>,
    clock: Arc<dyn TimeSource>,
    key: RwLock<TrailKey>,
    lanes: Mutex<HashMap<TrailId, Arc<Lane>>>,
}

impl std::fmt::Debug for AppendService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendService")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl AppendService {
    /// A service appending to `store`, signing with `key`, timing with `clock`.
    pub fn new(store: Arc<dyn RecordStore>, clock: Arc<dyn TimeSource>, key: TrailKey) -> Self {
        Self {
            store,
            clock,
            key: RwLock::new(key),
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// Makes `key` the signing key of every later record (after a rotation).
    pub fn set_signing_key(&self, key: TrailKey) {
        *self.key.write().unwrap_or_else(PoisonError::into_inner) = key;
    }

    /// The id of the key new records are signed with.
    pub fn signing_key_id(&self) -> crate::ids::KeyId {
        self.key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
            .clone()
    }

    /// The store this service writes to.
    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    /// The clock this service stamps records with.
    pub fn clock(&self) -> &Arc<dyn TimeSource> {
        &self.clock
    }

    fn lane(&self, trail: &TrailId) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        lanes.entry(trail.clone()).or_default().clone()
    }

    /// [`append`](Self::append), re-chaining up to `retries` times when the store refuses the
    /// record as not next or conflicting: another process sharing the trail (a second server
    /// of record on one database, `relay-edge export` next to `run`) appended since this
    /// service cached the head. Nothing was stored by a refused attempt, and the next attempt
    /// re-reads the head, so a retry chains the record after the other writer's.
    pub async fn append_rechaining(
        &self,
        draft: EventDraft,
        retries: u32,
    ) -> Result<Record, AppendError> {
        let trail_id = draft.trail_id.clone();
        let mut records = self.append_group_rechaining(vec![draft], retries).await?;
        records.pop().ok_or(AppendError::Interrupted { trail_id })
    }

    /// [`append_group`](Self::append_group), re-chaining the whole group up to `retries` times
    /// as [`append_rechaining`](Self::append_rechaining) does for one draft.
    pub async fn append_group_rechaining(
        &self,
        drafts: Vec<EventDraft>,
        retries: u32,
    ) -> Result<Vec<Record>, AppendError> {
        let mut result = self.append_group(drafts.clone()).await;
        let mut tried = 0;
        while tried < retries
            && let Err(AppendError::Store { source, .. }) = &result
            && matches!(
                **source,
                RecordStoreError::NotNext { .. } | RecordStoreError::Conflict { .. }
            )
        {
            tried += 1;
            result = self.append_group(drafts.clone()).await;
        }
        result
    }

    /// Chains `draft` onto its trail and stores it durably; returns the stored record.
    pub async fn append(&self, draft: EventDraft) -> Result<Record, AppendError> {
        let trail_id = draft.trail_id.clone();
        let mut records = self.append_group(vec![draft]).await?;
        records.pop().ok_or(AppendError::Interrupted { trail_id })
    }

    /// Chains `drafts` (1 to [`MAX_GROUP_COMMIT`], all of one trail) onto their trail as
    /// consecutive records and stores them in **one** atomic batch: all are stored or none.
    /// Returns the stored records in the drafts' order.
    pub async fn append_group(&self, drafts: Vec<EventDraft>) -> Result<Vec<Record>, AppendError> {
        let Some(first) = drafts.first() else {
            return Err(AppendError::InvalidGroup {
                trail_id: TrailId::relay(),
                reason: "the group is empty",
            });
        };
        let trail_id = first.trail_id.clone();
        if drafts.len() > MAX_GROUP_COMMIT {
            return Err(AppendError::InvalidGroup {
                trail_id,
                reason: "the group is larger than one commit",
            });
        }
        if drafts.iter().any(|d| d.trail_id != trail_id) {
            return Err(AppendError::InvalidGroup {
                trail_id,
                reason: "the group spans several trails",
            });
        }
        if let Some(d) = drafts.iter().find(|d| d.actor.is_none()) {
            return Err(AppendError::NoActor {
                trail_id,
                kind: d.kind.clone(),
            });
        }
        let lane = self.lane(&trail_id);
        let (reply, mut answer) = oneshot::channel();
        lane.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending { drafts, reply });

        {
            let mut head = lane.writer.lock().await;
            // A previous writer may already have committed our drafts while we waited.
            match answer.try_recv() {
                Ok(Some(result)) => return result,
                Err(oneshot::Canceled) => return Err(AppendError::Interrupted { trail_id }),
                Ok(None) => {}
            }
            {
                let batch: Vec<Pending> = {
                    let mut queue = lane.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    // Whole groups only, up to MAX_GROUP_COMMIT drafts (at least one group).
                    let mut total = 0;
                    let mut n = 0;
                    for p in queue.iter() {
                        if n > 0 && total + p.drafts.len() > MAX_GROUP_COMMIT {
                            break;
                        }
                        total += p.drafts.len();
                        n += 1;
                    }
                    queue.drain(..n).collect()
                };
                self.commit(&trail_id, &mut head, batch).await;
            }
        }
        // Either we committed it above, or an earlier writer did; the answer is waiting.
        match answer.await {
            Ok(result) => result,
            Err(oneshot::Canceled) => Err(AppendError::Interrupted { trail_id }),
        }
    }

    async fn commit(
        &self,
        trail_id: &TrailId,
        cached: &mut Option<Option<Head>>,
        batch: Vec<Pending>,
    ) {
        if batch.is_empty() {
            return;
        }
        let fail_all = |batch: Vec<Pending>, err: AppendError| {
            for p in batch {
                // A caller that stopped waiting no longer needs its answer.
                drop(p.reply.send(Err(err.clone())));
            }
        };
        let head = match cached.take() {
            Some(head) => head,
            None => match self.store.head(trail_id).await {
                Ok(head) => head,
                Err(e) => {
                    return fail_all(
                        batch,
                        AppendError::Store {
                            trail_id: trail_id.clone(),
                            source: Arc::new(e),
                        },
                    );
                }
            },
        };
        let now = match self.clock.now().await {
            Ok(now) => now,
            Err(e) => {
                *cached = Some(head);
                return fail_all(
                    batch,
                    AppendError::Time {
                        trail_id: trail_id.clone(),
                        source: Arc::new(e),
                    },
                );
            }
        };
        let key = self
            .key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut seq = ChainSeq::after(head.map(|h| h.seq));
        let mut prev = head.map_or(GENESIS, |h| h.checksum);
        let mut buf = Vec::with_capacity(1024);
        let mut records = Vec::with_capacity(batch.len());
        // Each caller's reply and how many of `records` are theirs, in order.
        let mut replies = Vec::with_capacity(batch.len());
        for Pending { drafts, reply } in batch {
            // Checked on entry; kept so a draft without an actor can never be chained.
            if let Some(d) = drafts.iter().find(|d| d.actor.is_none()) {
                drop(reply.send(Err(AppendError::NoActor {
                    trail_id: d.trail_id.clone(),
                    kind: d.kind.clone(),
                })));
                continue;
            }
            let count = drafts.len();
            for draft in drafts {
                let Some(actor) = draft.actor else { continue };
                let mut record = Record {
                    actor,
                    actor_source: draft.actor_source,
                    chain_seq: seq,
                    device: draft.device,
                    key_id: key.id().clone(),
                    kind: draft.kind,
                    occurred_at: draft.occurred_at.unwrap_or(now.at),
                    payload: draft.payload,
                    prev_checksum: prev,
                    project: draft.project,
                    recorded_at: now.at,
                    subject: draft.subject,
                    time_source: now.label,
                    trail_id: draft.trail_id,
                    checksum: GENESIS,
                };
                record.checksum = checksum_with_buf(&record, &key, &mut buf);
                prev = record.checksum;
                seq = seq.next();
                records.push(record);
            }
            replies.push((reply, count));
        }
        if records.is_empty() {
            *cached = Some(head);
            return;
        }
        // The cache stays empty while the commit is in flight: if this future is dropped, the
        // next writer reloads the head from the store instead of trusting a guess.
        match self.store.append(&records).await {
            Ok(receipt) => {
                *cached = Some(Some(receipt.head));
                let mut records = records.into_iter();
                for (reply, count) in replies {
                    let mine: Vec<Record> = records.by_ref().take(count).collect();
                    drop(reply.send(Ok(mine)));
                }
            }
            Err(e) => {
                let err = AppendError::Store {
                    trail_id: trail_id.clone(),
                    source: Arc::new(e),
                };
                for (reply, _) in replies {
                    drop(reply.send(Err(err.clone())));
                }
            }
        }
    }
}
