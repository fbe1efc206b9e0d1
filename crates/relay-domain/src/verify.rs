//! Streaming verification of a trail: names the first bad `chain_seq` and why (R1.2).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::write_canonical;
use crate::chain::GENESIS;
use crate::ids::{ChainSeq, Checksum, EventKind, KeyId, TrailId};
use crate::keys::KeyRing;
use crate::merkle::{MerkleAccumulator, record_leaf_hash};
use crate::ports::Anchor;
use crate::record::Record;
use crate::timestamp::Timestamp;

/// Why a record failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyFailureReason {
    /// The record's checksum is not the HMAC of its contents: it was edited, or forged.
    ChecksumMismatch {
        /// The key the record names.
        key_id: KeyId,
    },
    /// The record names a key the verifier does not hold.
    UnknownKey {
        /// The key the record names.
        key_id: KeyId,
    },
    /// `prev_checksum` is not the previous record's checksum: a record was inserted, removed
    /// or replaced before this one.
    BrokenLink {
        /// The previous record's checksum (or genesis).
        expected: Checksum,
        /// What this record names.
        found: Checksum,
    },
    /// Records are missing: this seq came where `expected` should have.
    Gap {
        /// The seq that should have come next.
        expected: ChainSeq,
    },
    /// This seq repeats the previous one.
    Duplicate,
    /// This seq is lower than one already seen: records are out of order.
    Reorder {
        /// The highest seq seen before.
        after: ChainSeq,
    },
    /// The record belongs to another trail.
    WrongTrail {
        /// The trail the record names.
        found: TrailId,
    },
    /// The record's checksum differs from what a notary anchor recorded for this seq: the trail
    /// was rewritten, even if re-chained with the real key.
    AnchorMismatch {
        /// The checksum the anchor holds.
        anchored: Checksum,
    },
    /// The trail ends before a seq that a notary anchor recorded: it was truncated.
    Truncated {
        /// The anchored seq the trail no longer reaches.
        anchored_seq: ChainSeq,
    },
    /// The RFC 9162 Merkle root a notary anchor holds for this seq differs from the root
    /// recomputed over records 1..=seq: earlier records were rewritten (and re-chained with the
    /// real key), even if the anchor's checksum was rewritten to match.
    MerkleRootMismatch {
        /// The root the anchor holds.
        anchored: Checksum,
        /// The root of the stored records 1..=seq.
        computed: Checksum,
    },
    /// An `ANCHORED` record of `_relay` whose payload is not a recorded anchor (it chains, so
    /// it was written with the key: the relay never writes one).
    UnreadableAnchorRecord,
    /// Notarizations that `_relay` recorded (`ANCHORED` events) are no longer in the notary as
    /// recorded: anchors were deleted or rewritten.
    AnchorsUnaccounted {
        /// Each recorded anchor that is missing or differs, in seq order.
        anchors: Vec<UnaccountedAnchor>,
    },
    /// The notary's anchors of the trail contradict each other (docs/spec/checkpoint.md): a
    /// checkpoint that does not verify or state its anchor, a consistency proof that fails (the
    /// tree shrank or was rewritten), a link to a deleted anchor, or a fork.
    AnchorHistory {
        /// Every finding, in seq order.
        findings: Vec<crate::anchor_history::AnchorFinding>,
    },
}

impl fmt::Display for VerifyFailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChecksumMismatch { key_id } => {
                write!(
                    f,
                    "checksum mismatch (record altered or forged; key {key_id})"
                )
            }
            Self::UnknownKey { key_id } => write!(f, "record names unknown key {key_id}"),
            Self::BrokenLink { expected, found } => write!(
                f,
                "broken link: prev_checksum {found} but previous record's checksum is {expected}"
            ),
            Self::Gap { expected } => write!(f, "gap: expected chain_seq {expected}"),
            Self::Duplicate => write!(f, "duplicate chain_seq"),
            Self::Reorder { after } => write!(f, "out of order: comes after chain_seq {after}"),
            Self::WrongTrail { found } => write!(f, "record belongs to trail {found}"),
            Self::AnchorMismatch { anchored } => write!(
                f,
                "differs from the notarized anchor (anchored checksum {anchored}): trail rewritten"
            ),
            Self::Truncated { anchored_seq } => write!(
                f,
                "trail truncated: a notary anchor covers chain_seq {anchored_seq}, which is missing"
            ),
            Self::MerkleRootMismatch { anchored, computed } => write!(
                f,
                "Merkle root mismatch: the notary anchor at this chain_seq holds root {anchored} \
                 but records 1..=this seq hash to {computed}: trail rewritten and re-chained"
            ),
            Self::UnreadableAnchorRecord => {
                f.write_str("ANCHORED record whose payload is not a recorded anchor")
            }
            Self::AnchorsUnaccounted { anchors } => {
                write!(
                    f,
                    "{} notary anchor(s) recorded in _relay are missing from or differ in the \
                     notary (anchors deleted or rewritten): ",
                    anchors.len()
                )?;
                write_first_ten(f, anchors)
            }
            Self::AnchorHistory { findings } => {
                write!(
                    f,
                    "{} notary anchor(s) contradict the trail's anchor history: ",
                    findings.len()
                )?;
                write_first_ten(f, findings)
            }
        }
    }
}

/// Writes the first ten of `items` separated by `; `, then how many more there are.
fn write_first_ten<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    const SHOWN: usize = 10;
    for (i, item) in items.iter().take(SHOWN).enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{item}")?;
    }
    if items.len() > SHOWN {
        write!(f, "; and {} more", items.len() - SHOWN)?;
    }
    Ok(())
}

/// The first failure found in a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The trail verified.
    pub trail_id: TrailId,
    /// The first bad `chain_seq`.
    pub seq: ChainSeq,
    /// Why it is bad.
    pub reason: VerifyFailureReason,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trail {} broken at chain_seq {}: {}",
            self.trail_id, self.seq, self.reason
        )
    }
}

impl std::error::Error for VerifyFailure {}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// The trail verified.
    pub trail_id: TrailId,
    /// How many records were checked.
    pub records: u64,
    /// The last verified record, if any.
    pub head: Option<(ChainSeq, Checksum)>,
    /// How many notary anchors were checked against the trail.
    pub anchors_checked: usize,
    /// Whether HMACs were recomputed (false when verifying links only, without keys).
    pub hmac_checked: bool,
}

/// Verifies a trail record by record, in seq order, with constant memory.
///
/// Feed records with [`push`](Self::push); the first failure is returned and remembered (later
/// pushes return it again). [`finish`](Self::finish) also checks that no anchor lies beyond the
/// end of the trail.
pub struct ChainVerifier<'k> {
    trail_id: TrailId,
    keys: Option<&'k KeyRing>,
    last: Option<(ChainSeq, Checksum)>,
    anchors: BTreeMap<ChainSeq, Vec<Checksum>>,
    roots: BTreeMap<ChainSeq, Vec<Checksum>>,
    merkle: Option<MerkleAccumulator>,
    anchors_checked: usize,
    records: u64,
    failure: Option<VerifyFailure>,
    buf: Vec<u8>,
    threads: usize,
}

/// The HMAC verdict on one record, computed ahead of the ordered checks by
/// [`ChainVerifier::push_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hmac {
    /// The checksum is the HMAC of the record under its key.
    Holds,
    /// The record's key is not in the ring.
    UnknownKey,
    /// The checksum is not the HMAC of the record under its key.
    Mismatch,
}

/// Below this many records a page is checked on the calling thread alone.
const PARALLEL_MIN_RECORDS: usize = 256;

impl<'k> ChainVerifier<'k> {
    /// A verifier that recomputes every HMAC with keys from `keys`.
    pub fn new(trail_id: TrailId, keys: &'k KeyRing) -> Self {
        Self::build(trail_id, Some(keys))
    }

    /// A verifier that checks order and links only, for holders of no key (e.g. an auditor).
    pub fn links_only(trail_id: TrailId) -> Self {
        Self::build(trail_id, None)
    }

    fn build(trail_id: TrailId, keys: Option<&'k KeyRing>) -> Self {
        Self {
            trail_id,
            keys,
            last: None,
            anchors: BTreeMap::new(),
            roots: BTreeMap::new(),
            merkle: Some(MerkleAccumulator::new()),
            anchors_checked: 0,
            records: 0,
            failure: None,
            buf: Vec::with_capacity(1024),
            threads: 1,
        }
    }

    /// Recomputes HMACs on up to `threads` threads in [`push_page`](Self::push_page) (default 1:
    /// the calling thread only). Each record's HMAC is independent of the others; the order,
    /// link and anchor checks stay sequential, so the verdict, and the first bad record it
    /// names, are exactly those of [`push`](Self::push) record by record. The domain spawns
    /// scoped threads and does no I/O: the caller says how many (e.g. the machine's cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Checks a page of consecutive records, as [`push`](Self::push) on each in turn would,
    /// with the HMACs computed on the configured threads ([`with_threads`](Self::with_threads)).
    pub fn push_page(&mut self, records: &[Record]) -> Result<(), VerifyFailure> {
        let Some(keys) = self.keys else {
            return records.iter().try_for_each(|r| self.push(r));
        };
        if self.threads <= 1 || records.len() < PARALLEL_MIN_RECORDS {
            return records.iter().try_for_each(|r| self.push(r));
        }
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        let verdicts = hmac_verdicts(records, keys, self.threads);
        for (record, hmac) in records.iter().zip(verdicts) {
            self.push_checked(record, Some(hmac))?;
        }
        Ok(())
    }

    /// Starts after an already-verified record instead of at genesis (verifying a range).
    /// Merkle roots ([`with_anchor_root`](Self::with_anchor_root)) cannot be checked over a
    /// range and are ignored.
    pub fn resume_after(mut self, seq: ChainSeq, checksum: Checksum) -> Self {
        self.last = Some((seq, checksum));
        self.merkle = None;
        self.roots.clear();
        self
    }

    /// Requires the record at `seq` to carry `checksum`, as a notary anchor recorded.
    pub fn with_anchor(mut self, seq: ChainSeq, checksum: Checksum) -> Self {
        let at = self.anchors.entry(seq).or_default();
        if !at.contains(&checksum) {
            at.push(checksum);
        }
        self
    }

    /// Requires the RFC 9162 Merkle root over records 1..=`seq` to be `root`, as a notary
    /// anchor recorded (verifying from genesis only; see [`resume_after`](Self::resume_after)).
    pub fn with_anchor_root(mut self, seq: ChainSeq, root: Checksum) -> Self {
        if self.merkle.is_some() {
            let at = self.roots.entry(seq).or_default();
            if !at.contains(&root) {
                at.push(root);
            }
        }
        self
    }

    /// Requires what a notary anchor holds: its checksum at its seq, and its Merkle root if it
    /// has one.
    pub fn with_notary_anchor(self, anchor: &Anchor) -> Self {
        let this = self.with_anchor(anchor.seq, anchor.checksum);
        match anchor.merkle_root {
            Some(root) => this.with_anchor_root(anchor.seq, root),
            None => this,
        }
    }

    fn fail(&mut self, seq: ChainSeq, reason: VerifyFailureReason) -> Result<(), VerifyFailure> {
        let failure = VerifyFailure {
            trail_id: self.trail_id.clone(),
            seq,
            reason,
        };
        self.failure = Some(failure.clone());
        Err(failure)
    }

    /// The keys HMACs are recomputed with (none for a links-only verifier).
    pub(crate) fn keys(&self) -> Option<&'k KeyRing> {
        self.keys
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), VerifyFailure> {
        self.push_checked(record, None)
    }

    /// [`push`](Self::push) with the record's HMAC verdict computed ahead (on another thread),
    /// for the package verifier's batched walk.
    pub(crate) fn push_with_verdict(
        &mut self,
        record: &Record,
        hmac: Hmac,
    ) -> Result<(), VerifyFailure> {
        self.push_checked(record, Some(hmac))
    }

    /// [`push`](Self::push), with the record's HMAC verdict already computed (`Some`) or to be
    /// computed here (`None`).
    fn push_checked(&mut self, record: &Record, hmac: Option<Hmac>) -> Result<(), VerifyFailure> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        let seq = record.chain_seq;
        if record.trail_id != self.trail_id {
            return self.fail(
                seq,
                VerifyFailureReason::WrongTrail {
                    found: record.trail_id.clone(),
                },
            );
        }
        let (expected_seq, expected_prev) = match self.last {
            None => (ChainSeq::FIRST, GENESIS),
            Some((s, c)) => (s.next(), c),
        };
        // `next` saturates at u64::MAX: nothing may follow a record there, not even a second
        // record at the same seq that links correctly.
        let repeats_last = self.last.is_some_and(|(last_seq, _)| last_seq == seq);
        if seq != expected_seq || repeats_last {
            let reason = match self.last {
                Some((last_seq, _)) if seq == last_seq => VerifyFailureReason::Duplicate,
                Some((last_seq, _)) if seq < last_seq => {
                    VerifyFailureReason::Reorder { after: last_seq }
                }
                _ => VerifyFailureReason::Gap {
                    expected: expected_seq,
                },
            };
            // A gap is reported at the first missing seq; other faults at the offending record.
            let at = if matches!(reason, VerifyFailureReason::Gap { .. }) {
                expected_seq
            } else {
                seq
            };
            return self.fail(at, reason);
        }
        if !record.prev_checksum.ct_eq(&expected_prev) {
            return self.fail(
                seq,
                VerifyFailureReason::BrokenLink {
                    expected: expected_prev,
                    found: record.prev_checksum,
                },
            );
        }
        if let Some(keys) = self.keys {
            let verdict = match hmac {
                Some(v) => v,
                None => hmac_verdict(record, keys, &mut self.buf),
            };
            match verdict {
                Hmac::Holds => {}
                Hmac::UnknownKey => {
                    return self.fail(
                        seq,
                        VerifyFailureReason::UnknownKey {
                            key_id: record.key_id.clone(),
                        },
                    );
                }
                Hmac::Mismatch => {
                    return self.fail(
                        seq,
                        VerifyFailureReason::ChecksumMismatch {
                            key_id: record.key_id.clone(),
                        },
                    );
                }
            }
        }
        if let Some(anchored) = self.anchors.get(&seq) {
            if let Some(bad) = anchored.iter().find(|a| !a.ct_eq(&record.checksum)) {
                let anchored = *bad;
                return self.fail(seq, VerifyFailureReason::AnchorMismatch { anchored });
            }
            self.anchors_checked += anchored.len();
        }
        // The tree head only matters when some anchor holds one; hashing every leaf of a trail
        // nobody anchored a root of would only cost time.
        if !self.roots.is_empty()
            && let Some(acc) = self.merkle.as_mut()
        {
            acc.push_leaf_hash(record_leaf_hash(record, &mut self.buf));
            if let Some(roots) = self.roots.get(&seq) {
                let computed = acc.root();
                if let Some(bad) = roots.iter().find(|r| !r.ct_eq(&computed)) {
                    let anchored = *bad;
                    return self.fail(
                        seq,
                        VerifyFailureReason::MerkleRootMismatch { anchored, computed },
                    );
                }
            }
        }
        self.last = Some((seq, record.checksum));
        self.records += 1;
        Ok(())
    }

    /// The first failure so far, if any.
    pub fn failure(&self) -> Option<&VerifyFailure> {
        self.failure.as_ref()
    }

    /// Ends verification: the trail holds if no record failed and no anchor lies past its end.
    pub fn finish(mut self) -> Result<VerifySummary, VerifyFailure> {
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        let head_seq = self.last.map(|(s, _)| s);
        let beyond = |s: &ChainSeq| Some(*s) > head_seq;
        let first_beyond = [
            self.anchors.keys().find(|s| beyond(s)),
            self.roots.keys().find(|s| beyond(s)),
        ]
        .into_iter()
        .flatten()
        .min()
        .copied();
        if let Some(anchored_seq) = first_beyond {
            return Err(VerifyFailure {
                trail_id: self.trail_id,
                seq: anchored_seq,
                reason: VerifyFailureReason::Truncated { anchored_seq },
            });
        }
        Ok(VerifySummary {
            trail_id: self.trail_id,
            records: self.records,
            head: self.last,
            anchors_checked: self.anchors_checked,
            hmac_checked: self.keys.is_some(),
        })
    }
}

/// The HMAC verdict on `record` under its key from `keys` (its canonical bytes encoded into
/// `buf`).
pub(crate) fn hmac_verdict(record: &Record, keys: &KeyRing, buf: &mut Vec<u8>) -> Hmac {
    buf.clear();
    write_canonical(record, buf);
    hmac_verdict_of_canonical(buf, &record.key_id, &record.checksum, keys)
}

/// The HMAC verdict on a record whose canonical bytes are `canonical` (already encoded), which
/// names `key_id` and carries `checksum`.
pub(crate) fn hmac_verdict_of_canonical(
    canonical: &[u8],
    key_id: &KeyId,
    checksum: &Checksum,
    keys: &KeyRing,
) -> Hmac {
    match keys.get(key_id) {
        None => Hmac::UnknownKey,
        Some(key) if key.mac(canonical).ct_eq(checksum) => Hmac::Holds,
        Some(_) => Hmac::Mismatch,
    }
}

/// The HMAC verdicts on `records`, in order, computed on up to `threads` scoped threads, one
/// contiguous chunk each.
fn hmac_verdicts(records: &[Record], keys: &KeyRing, threads: usize) -> Vec<Hmac> {
    let chunk = records.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                let handle = scope.spawn(move || {
                    let mut buf = Vec::with_capacity(1024);
                    part.iter()
                        .map(|r| hmac_verdict(r, keys, &mut buf))
                        .collect::<Vec<_>>()
                });
                (part.len(), handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, handle)| match handle.join() {
                Ok(verdicts) if verdicts.len() == len => verdicts,
                // Computing an HMAC does not panic; should a thread fail anyway, its own records
                // are reported as not holding rather than passed unchecked or shifted.
                _ => vec![Hmac::Mismatch; len],
            })
            .collect()
    })
}

/// How many records a stored-trail verification reads per page.
pub const VERIFY_PAGE: usize = 4096;

/// The outcome of verifying a stored trail: the verdict, or why the store could not be read.
pub type StoredVerdict = Result<VerifySummary, VerifyFailure>;

/// Verifies a whole stored trail against `keys` and the notary `anchors` of that trail,
/// streaming it page by page with constant memory. `progress` is called after every page with
/// the number of records checked so far.
///
/// The outer `Result` is the store's failure (the trail could not be read); the inner one is
/// the verdict on the records.
pub async fn verify_stored_trail(
    store: &dyn crate::ports::RecordStore,
    keys: &KeyRing,
    trail_id: &TrailId,
    anchors: &[crate::ports::Anchor],
    progress: impl FnMut(u64) + Send,
) -> Result<StoredVerdict, crate::ports::RecordStoreError> {
    verify_stored_trail_on(store, keys, trail_id, anchors, 1, progress).await
}

/// [`verify_stored_trail`] with each page's HMACs computed on up to `threads` threads
/// ([`ChainVerifier::with_threads`]); the verdict is the same.
pub async fn verify_stored_trail_on(
    store: &dyn crate::ports::RecordStore,
    keys: &KeyRing,
    trail_id: &TrailId,
    anchors: &[crate::ports::Anchor],
    threads: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Result<StoredVerdict, crate::ports::RecordStoreError> {
    let mut verifier = ChainVerifier::new(trail_id.clone(), keys).with_threads(threads);
    for a in anchors.iter().filter(|a| a.trail_id == *trail_id) {
        verifier = verifier.with_notary_anchor(a);
    }
    let mut checked = 0u64;
    let mut page = store.read(trail_id, 0, VERIFY_PAGE).await?;
    while let Some(last) = page.last() {
        let after = last.chain_seq.get();
        // The next page is asked for before this one is checked: the store reads it (on its
        // own worker or server) while the HMACs are computed here. `join` polls the read
        // first, so the request is under way before the CPU-bound check starts. A bad record
        // is reported before any failure of that read-ahead.
        let (next, checked_page) =
            futures::join!(store.read(trail_id, after, VERIFY_PAGE), async {
                verifier.push_page(&page)
            });
        if let Err(failure) = checked_page {
            return Ok(Err(failure));
        }
        checked += page.len() as u64;
        progress(checked);
        page = next?;
    }
    Ok(verifier.finish())
}

/// One notarization as `_relay` recorded it: the payload of an `ANCHORED` event, written by the
/// notary scheduler after the notary acknowledged the anchor. Verification checks that every
/// recorded anchor is still in the notary as recorded, so deleting anchors (or a whole anchor
/// directory) is reported instead of silently lowering the count of anchors checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAnchor {
    /// The anchored trail.
    pub trail: TrailId,
    /// The anchored head seq.
    pub seq: ChainSeq,
    /// The anchored head checksum.
    pub checksum: Checksum,
    /// The anchored RFC 9162 tree head over records 1..=seq, when computed.
    pub merkle_root: Option<Checksum>,
    /// When the anchor was made.
    pub anchored_at: Timestamp,
    /// Where the notary stored it (file path, object key and version).
    pub location: String,
}

impl RecordedAnchor {
    /// The record of `anchor`, stored by the notary at `location`.
    pub fn of(anchor: &Anchor, location: impl Into<String>) -> Self {
        Self {
            trail: anchor.trail_id.clone(),
            seq: anchor.seq,
            checksum: anchor.checksum,
            merkle_root: anchor.merkle_root,
            anchored_at: anchor.anchored_at,
            location: location.into(),
        }
    }

    /// The `_relay` event kind that carries it.
    pub fn kind() -> EventKind {
        EventKind::anchored()
    }

    /// Reads it back from an `ANCHORED` record (`None` for any other record, or a payload that
    /// is not one: such a record is reported by [`recorded_anchors`]).
    pub fn from_record(record: &Record) -> Option<Self> {
        if record.kind != EventKind::anchored() {
            return None;
        }
        serde_json::from_str(record.payload.as_str()).ok()
    }
}

/// How a recorded anchor differs from what the notary holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorDiscrepancy {
    /// The notary holds no anchor of the trail at the recorded seq (deleted).
    Missing,
    /// The notary's anchor at the recorded seq carries another checksum (rewritten).
    ChecksumDiffers {
        /// What the notary holds.
        found: Checksum,
    },
    /// The notary's anchor carries the recorded checksum but another Merkle root (rewritten).
    RootDiffers {
        /// What the notary holds.
        found: Option<Checksum>,
    },
}

/// A notarization `_relay` recorded that the notary no longer holds as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnaccountedAnchor {
    /// What `_relay` recorded.
    pub recorded: RecordedAnchor,
    /// The `_relay` seq of the `ANCHORED` event that recorded it.
    pub recorded_in: ChainSeq,
    /// What is wrong.
    pub discrepancy: AnchorDiscrepancy,
}

impl fmt::Display for UnaccountedAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.recorded;
        write!(
            f,
            "anchor of {} at chain_seq {} ({}, recorded in _relay#{}) ",
            r.trail, r.seq, r.location, self.recorded_in
        )?;
        match &self.discrepancy {
            AnchorDiscrepancy::Missing => f.write_str("is missing from the notary"),
            AnchorDiscrepancy::ChecksumDiffers { found } => {
                write!(f, "now holds checksum {found}, recorded {}", r.checksum)
            }
            AnchorDiscrepancy::RootDiffers { found } => write!(
                f,
                "now holds Merkle root {}, recorded {}",
                found.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                r.merkle_root
                    .map_or_else(|| "none".to_owned(), |c| c.to_string())
            ),
        }
    }
}

/// Every anchor recorded in `records` (pages of `_relay`), as `(seq of the ANCHORED event,
/// anchor)`; an `ANCHORED` record whose payload cannot be read is returned in the second list
/// by seq (it was written by this relay, so that means the store was altered).
pub fn recorded_anchors<'r>(
    records: impl IntoIterator<Item = &'r Record>,
) -> (Vec<(ChainSeq, RecordedAnchor)>, Vec<ChainSeq>) {
    let mut ok = Vec::new();
    let mut unreadable = Vec::new();
    for r in records {
        if r.kind != EventKind::anchored() {
            continue;
        }
        match RecordedAnchor::from_record(r) {
            Some(a) => ok.push((r.chain_seq, a)),
            None => unreadable.push(r.chain_seq),
        }
    }
    (ok, unreadable)
}

/// Checks every anchor `_relay` recorded for one trail against the anchors the notary holds
/// for it: each must be there at its seq, with its checksum and Merkle root. Returns the ones
/// that are not, in seq order (empty: every recorded anchor is accounted for).
pub fn account_for_anchors(
    recorded: &[(ChainSeq, RecordedAnchor)],
    notary: &[Anchor],
) -> Vec<UnaccountedAnchor> {
    let mut out = Vec::new();
    for (recorded_in, r) in recorded {
        let at_seq: Vec<&Anchor> = notary
            .iter()
            .filter(|a| a.trail_id == r.trail && a.seq == r.seq)
            .collect();
        let discrepancy = if at_seq.is_empty() {
            Some(AnchorDiscrepancy::Missing)
        } else if at_seq
            .iter()
            .any(|a| a.checksum == r.checksum && a.merkle_root == r.merkle_root)
        {
            None
        } else if let Some(a) = at_seq.iter().find(|a| a.checksum == r.checksum) {
            Some(AnchorDiscrepancy::RootDiffers {
                found: a.merkle_root,
            })
        } else {
            Some(AnchorDiscrepancy::ChecksumDiffers {
                found: at_seq[0].checksum,
            })
        };
        if let Some(discrepancy) = discrepancy {
            out.push(UnaccountedAnchor {
                recorded: r.clone(),
                recorded_in: *recorded_in,
                discrepancy,
            });
        }
    }
    out.sort_by_key(|u| (u.recorded.seq, u.recorded_in));
    out
}
