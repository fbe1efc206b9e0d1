//! Streaming verification of a trail: names the first bad `chain_seq` and why (R1.2).

use std::collections::BTreeMap;
use std::fmt;

use crate::chain::{GENESIS, checksum_with_buf};
use crate::ids::{ChainSeq, Checksum, KeyId, TrailId};
use crate::keys::KeyRing;
use crate::record::Record;

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
        }
    }
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
    anchors: BTreeMap<ChainSeq, Checksum>,
    anchors_checked: usize,
    records: u64,
    failure: Option<VerifyFailure>,
    buf: Vec<u8>,
}

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
            anchors_checked: 0,
            records: 0,
            failure: None,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Starts after an already-verified record instead of at genesis (verifying a range).
    pub fn resume_after(mut self, seq: ChainSeq, checksum: Checksum) -> Self {
        self.last = Some((seq, checksum));
        self
    }

    /// Requires the record at `seq` to carry `checksum`, as a notary anchor recorded.
    pub fn with_anchor(mut self, seq: ChainSeq, checksum: Checksum) -> Self {
        self.anchors.insert(seq, checksum);
        self
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

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), VerifyFailure> {
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
            let Some(key) = keys.get(&record.key_id) else {
                return self.fail(
                    seq,
                    VerifyFailureReason::UnknownKey {
                        key_id: record.key_id.clone(),
                    },
                );
            };
            let computed = checksum_with_buf(record, key, &mut self.buf);
            if !computed.ct_eq(&record.checksum) {
                return self.fail(
                    seq,
                    VerifyFailureReason::ChecksumMismatch {
                        key_id: record.key_id.clone(),
                    },
                );
            }
        }
        if let Some(anchored) = self.anchors.get(&seq).copied() {
            if !anchored.ct_eq(&record.checksum) {
                return self.fail(seq, VerifyFailureReason::AnchorMismatch { anchored });
            }
            self.anchors_checked += 1;
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
        if let Some((&anchored_seq, _)) = self.anchors.iter().find(|(s, _)| Some(**s) > head_seq) {
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
    mut progress: impl FnMut(u64) + Send,
) -> Result<StoredVerdict, crate::ports::RecordStoreError> {
    let mut verifier = ChainVerifier::new(trail_id.clone(), keys);
    for a in anchors.iter().filter(|a| a.trail_id == *trail_id) {
        verifier = verifier.with_anchor(a.seq, a.checksum);
    }
    let mut after = 0u64;
    let mut checked = 0u64;
    loop {
        let page = store.read(trail_id, after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.chain_seq.get();
        for record in &page {
            if let Err(failure) = verifier.push(record) {
                return Ok(Err(failure));
            }
        }
        checked += page.len() as u64;
        progress(checked);
    }
    Ok(verifier.finish())
}
