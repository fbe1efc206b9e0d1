//! `RecordStore`: where trail records are kept, append-only.

use async_trait::async_trait;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::{ChainSeq, Checksum, EventKind, TrailId};
use crate::record::Record;

/// The last record of a trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its seq.
    pub seq: ChainSeq,
    /// Its checksum.
    pub checksum: Checksum,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Records newly stored.
    pub appended: u64,
    /// Records that were already stored, identical (idempotent re-append).
    pub already_present: u64,
    /// The trail's head after the append.
    pub head: Head,
}

impl AppendReceipt {
    /// The receipt of an append that stored `appended` new records after `already_present`
    /// identical ones, the last of them `last`, which is the trail's head now.
    pub fn stored(appended: usize, already_present: usize, last: &Record) -> Self {
        Self {
            appended: appended as u64,
            already_present: already_present as u64,
            head: Head {
                seq: last.chain_seq,
                checksum: last.checksum,
            },
        }
    }
}

/// What a record store enforces by itself, checked by the conformance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordStoreCapabilities {
    /// UPDATE and DELETE of stored records are refused by the store itself (triggers, grants).
    pub append_only_enforced: bool,
    /// Appends to one trail are serialized by the store across processes, not only in-process.
    pub cross_process_serialization: bool,
}

impl RecordStoreCapabilities {
    /// Capabilities with the given flags.
    pub fn new(append_only_enforced: bool, cross_process_serialization: bool) -> Self {
        Self {
            append_only_enforced,
            cross_process_serialization,
        }
    }
}

/// The append-only controls a record store found in place when asked (R1.4): the triggers,
/// grants or construction that make it refuse UPDATE and DELETE, read from the live backend at
/// the time of the call (an attacker with access to the database file can drop a trigger after
/// the store was created).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOnlyEnforcement {
    /// How the store enforces it, e.g. `sqlite triggers on event_log`.
    pub mechanism: String,
    /// Each control found in place, one fact per entry (e.g. `trigger event_log_no_update`).
    pub present: Vec<String>,
    /// Each control that should be in place and is not (missing, disabled, altered, or a
    /// privilege the runtime role should not hold), one fact per entry naming it.
    pub missing: Vec<String>,
}

impl AppendOnlyEnforcement {
    /// Whether every control is in place.
    pub fn holds(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Why a record store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordStoreError {
    /// A different record is already stored at this seq (a fork was attempted).
    #[error("trail {trail_id}: a different record is already stored at chain_seq {seq}")]
    Conflict {
        /// The trail.
        trail_id: TrailId,
        /// The contested seq.
        seq: ChainSeq,
    },
    /// The batch does not continue the stored chain: wrong seq or `prev_checksum`.
    #[error("trail {trail_id}: record {seq} does not continue the stored head ({reason})")]
    NotNext {
        /// The trail.
        trail_id: TrailId,
        /// The offending record's seq.
        seq: ChainSeq,
        /// What did not match.
        reason: String,
    },
    /// The batch itself is malformed (empty, mixed trails, not consecutive).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The store refused the operation on permission grounds.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// What was refused.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored row could not be decoded into a record: the store was altered or is corrupt.
    #[error("trail {trail_id}: stored record at chain_seq {seq} is unreadable: {message}")]
    Corrupt {
        /// The trail.
        trail_id: TrailId,
        /// The seq of the bad row (0 when unknown).
        seq: u64,
        /// What was wrong.
        message: String,
    },
    /// The store cannot be reached or is busy; retry later.
    #[error("record store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other provider failure.
    #[error("record store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl RecordStoreError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            RecordStoreError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Where trail records are kept.
///
/// # Contract
/// - **Append-only.** There is no update or delete. Stores that can enforce this themselves
///   (triggers, grants) say so in [`capabilities`](Self::capabilities), and the conformance
///   suite tries to break it.
/// - **Atomic batches.** [`append`](Self::append) stores all of a batch or none of it.
/// - **Chain continuity.** A batch is for one trail, with consecutive seqs. The first new record
///   must have seq `head + 1` and `prev_checksum` equal to the stored head's checksum (or seq 1
///   and genesis). Otherwise [`RecordStoreError::NotNext`].
/// - **Idempotent.** A record identical to the one already stored at its seq is acknowledged as
///   `already_present`; a *different* record at a stored seq is [`RecordStoreError::Conflict`].
///   Records in a batch may overlap the stored head and then continue past it.
/// - **Serialized per trail.** Concurrent appends to one trail never both succeed at the same seq:
///   one gets `NotNext` or `Conflict`, never a fork or a gap.
/// - **Verbatim.** Reads return records byte-identical to what was appended (payload text
///   included), ordered by seq.
/// - The store does not check HMACs (it holds no key); verification is the domain's job.
#[async_trait]
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// What the store enforces by itself.
    fn capabilities(&self) -> RecordStoreCapabilities;

    /// Reads, from the live backend, whether the controls that make it append-only are still in
    /// place (triggers present and unaltered, runtime role without UPDATE/DELETE). A store that
    /// claims `append_only_enforced` must report every control it relies on, so removing one is
    /// reported in [`AppendOnlyEnforcement::missing`] by name. Checked at every start and by
    /// every verification.
    async fn append_only_enforcement(&self) -> Result<AppendOnlyEnforcement, RecordStoreError>;

    /// Appends a batch of chained records to one trail, atomically.
    async fn append(&self, records: &[Record]) -> Result<AppendReceipt, RecordStoreError>;

    /// The last record of `trail`, or `None` if the trail is empty.
    async fn head(&self, trail: &TrailId) -> Result<Option<Head>, RecordStoreError>;

    /// Up to `limit` records of `trail` with seq greater than `after` (0 = from the start), in
    /// seq order.
    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError>;

    /// Every trail with its head, ordered by trail id.
    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError>;

    /// Up to `limit` records of `trail` whose kind is `kind`, with seq greater than `after`, in
    /// seq order (e.g. every `SIGNATURE` of a trail, which an export must know before it renders
    /// the records they sign).
    ///
    /// The default pages through [`read`](Self::read) and filters; stores that can filter where
    /// the data lives (SQL `WHERE kind = ?`) override it, which is what makes a single-pass
    /// export cheap.
    async fn read_kind(
        &self,
        trail: &TrailId,
        kind: &EventKind,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let mut out = Vec::new();
        let mut after = after;
        while out.len() < limit {
            let page = self.read(trail, after, 4096).await?;
            let Some(last) = page.last() else { break };
            after = last.chain_seq.get();
            out.extend(page.into_iter().filter(|r| &r.kind == kind));
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Releases the store's connections (flushes a SQLite WAL, returns Postgres connections)
    /// so that a process ends with its store closed cleanly. Called once by whoever opened the
    /// store, when it is done with it; the store is not used afterwards. The default does
    /// nothing (stores without connections).
    async fn close(&self) {}
}

/// What an attempt to rewrite stored history through the backend itself (bypassing the port)
/// came to; see [`TamperProbe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperAttempt {
    /// The backend refused it; the text is the backend's own refusal.
    Refused(String),
    /// The backend accepted it and changed this many rows.
    Accepted(u64),
}

/// The operational-qualification probe of a record store's custody (OQ-02): plays the attacker
/// who reached the database directly, so qualification and the conformance suite can show the
/// store's append-only controls refuse edits and that, once an attacker has removed them, the
/// chain still exposes the edit. Only ever run on a scratch store: [`drop_append_only_controls`]
/// weakens the store for good.
///
/// [`drop_append_only_controls`]: TamperProbe::drop_append_only_controls
#[async_trait]
pub trait TamperProbe: Send + Sync + std::fmt::Debug {
    /// Tries to rewrite the `subject` of the record `seq` of `trail` in place.
    async fn try_rewrite_subject(
        &self,
        trail: &TrailId,
        seq: u64,
        subject: &str,
    ) -> Result<TamperAttempt, RecordStoreError>;

    /// Tries to delete the record `seq` of `trail`.
    async fn try_delete(
        &self,
        trail: &TrailId,
        seq: u64,
    ) -> Result<TamperAttempt, RecordStoreError>;

    /// Removes the controls that make the store append-only (what an attacker with full
    /// access to the backend does); returns their names.
    async fn drop_append_only_controls(&self) -> Result<Vec<String>, RecordStoreError>;
}

/// Conveniences built on [`RecordStore`]'s required methods, so adapters cannot get them wrong.
#[async_trait]
pub trait RecordStoreExt: RecordStore {
    /// The record at `seq`, if stored.
    async fn get(
        &self,
        trail: &TrailId,
        seq: ChainSeq,
    ) -> Result<Option<Record>, RecordStoreError> {
        let mut page = self.read(trail, seq.get() - 1, 1).await?;
        Ok(page.pop().filter(|r| r.chain_seq == seq))
    }

    /// Calls `each` for every record of `trail` in seq order, reading `page` records at a time.
    async fn for_each_record<F>(
        &self,
        trail: &TrailId,
        page: usize,
        mut each: F,
    ) -> Result<u64, RecordStoreError>
    where
        F: FnMut(Record) -> bool + Send,
    {
        let mut after = 0u64;
        let mut seen = 0u64;
        loop {
            let batch = self.read(trail, after, page.max(1)).await?;
            let Some(last) = batch.last() else {
                return Ok(seen);
            };
            after = last.chain_seq.get();
            for r in batch {
                seen += 1;
                if !each(r) {
                    return Ok(seen);
                }
            }
        }
    }
}

impl<T: RecordStore + ?Sized> RecordStoreExt for T {}
