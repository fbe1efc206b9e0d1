//! `ReceiptStore`: when the server of record stored each forwarded record (issue 21, R8.5).
//!
//! A record's `recorded_at` is the edge's clock at capture and is chained; the instant the
//! server of record *received* it is not (the edge cannot know it, and the chained bytes must
//! stay identical on edge and server). The server keeps it here, next to the trail, one
//! [`Receipt`] per run of records newly stored by one ingest. Reads join receipts to records
//! and judge lateness ([`Lateness`]) with the threshold in force at read time, so downtime
//! between capture and custody is visible without touching the chain.

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::TrailId;
use crate::timestamp::Timestamp;

/// When the server of record stored a run of consecutive records of one trail, and from which
/// edge they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The trail.
    pub trail_id: TrailId,
    /// The first seq newly stored.
    pub first_seq: u64,
    /// The last seq newly stored (at least `first_seq`).
    pub last_seq: u64,
    /// The server clock when the records were durably stored.
    pub received_at: Timestamp,
    /// The edge that sent them (its `X-Relay-Edge` id).
    pub edge: String,
}

impl Receipt {
    /// Whether the receipt covers `seq`.
    pub fn covers(&self, seq: u64) -> bool {
        (self.first_seq..=self.last_seq).contains(&seq)
    }

    /// Whether the receipt covers any seq of `from..=to`.
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        self.first_seq <= to && self.last_seq >= from
    }

    /// Checks the receipt's own shape: seqs from 1, `first_seq <= last_seq`, a non-empty edge.
    pub fn check(&self) -> Result<(), ReceiptError> {
        if self.first_seq == 0 || self.last_seq < self.first_seq {
            return Err(ReceiptError::InvalidRange {
                first_seq: self.first_seq,
                last_seq: self.last_seq,
            });
        }
        if self.edge.is_empty() {
            return Err(ReceiptError::Other {
                message: "a receipt names the edge that sent the records".into(),
                source: None,
            });
        }
        Ok(())
    }
}

/// A record's lateness: how long after it was recorded the server of record stored it, judged
/// against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    /// When the server stored the record.
    pub received_at: Timestamp,
    /// `received_at - recorded_at` in microseconds (negative when the edge clock runs ahead).
    pub delay_micros: i64,
    /// Whether the delay exceeds the threshold.
    pub late: bool,
}

impl Lateness {
    /// The lateness of a record recorded at `recorded_at` and received at `received_at`: late
    /// when received more than `late_after` after it was recorded.
    pub fn judge(recorded_at: Timestamp, received_at: Timestamp, late_after: Duration) -> Self {
        let delay_micros = received_at.micros_since(recorded_at);
        let threshold = i64::try_from(late_after.as_micros()).unwrap_or(i64::MAX);
        Self {
            received_at,
            delay_micros,
            late: delay_micros > threshold,
        }
    }
}

/// The receipt covering `seq` among `receipts`, if any.
pub fn receipt_for(receipts: &[Receipt], seq: u64) -> Option<&Receipt> {
    receipts.iter().find(|r| r.covers(seq))
}

/// Why a receipt operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A different receipt already covers some of these seqs: the first receipt stays.
    #[error("trail {trail_id}: seqs {first_seq}..={last_seq} already have a receipt")]
    Overlap {
        /// The trail.
        trail_id: TrailId,
        /// The first seq of the refused receipt.
        first_seq: u64,
        /// The last seq of the refused receipt.
        last_seq: u64,
    },
    /// The seq range is empty or starts at 0.
    #[error("invalid receipt range {first_seq}..={last_seq}")]
    InvalidRange {
        /// The first seq.
        first_seq: u64,
        /// The last seq.
        last_seq: u64,
    },
    /// A stored receipt could not be decoded.
    #[error("a stored receipt of trail {trail_id} is unreadable: {message}")]
    Corrupt {
        /// The trail.
        trail_id: String,
        /// What was wrong.
        message: String,
    },
    /// The store cannot be reached or is busy; retry later.
    #[error("receipt store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other provider failure.
    #[error("receipt store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl ReceiptError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            ReceiptError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Where the server of record keeps the time of receipt of forwarded records, outside the
/// chained bytes.
///
/// # Contract
/// - **Durable.** A call to [`record`](Self::record) that returned `Ok` survives a crash right
///   after it.
/// - **Append-only, first receipt wins.** There is no update or delete. A receipt whose range
///   overlaps a stored receipt of the same trail is refused with [`ReceiptError::Overlap`] and
///   stores nothing, unless it is *identical* to the stored one (same range, time and edge),
///   which is acknowledged (`Ok`) without a second row: a retried write is harmless, a later
///   time can never replace the first.
/// - **Shape.** A range that is empty or starts at 0 is [`ReceiptError::InvalidRange`]
///   ([`Receipt::check`]).
/// - **Atomic against itself.** Concurrent overlapping `record` calls never both store.
/// - [`receipts`](Self::receipts) returns the receipts of one trail that cover any seq of
///   `from_seq..=to_seq`, ordered by `first_seq`, byte-identical to what was recorded
///   (microsecond time, edge id).
#[async_trait]
pub trait ReceiptStore: Send + Sync + std::fmt::Debug {
    /// Stores `receipt` (see the contract for overlaps).
    async fn record(&self, receipt: &Receipt) -> Result<(), ReceiptError>;

    /// The receipts of `trail` covering any seq of `from_seq..=to_seq`, by `first_seq`.
    async fn receipts(
        &self,
        trail: &TrailId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<Receipt>, ReceiptError>;
}

/// What [`ReceiptStore::record`] must do given the stored receipts overlapping `receipt`'s
/// range (shared by adapters, so every store answers the same): `Ok(true)` store it,
/// `Ok(false)` it is already stored identically, `Err` refuse.
pub fn decide_record(receipt: &Receipt, overlapping: &[Receipt]) -> Result<bool, ReceiptError> {
    receipt.check()?;
    match overlapping {
        [] => Ok(true),
        [stored] if stored == receipt => Ok(false),
        _ => Err(ReceiptError::Overlap {
            trail_id: receipt.trail_id.clone(),
            first_seq: receipt.first_seq,
            last_seq: receipt.last_seq,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + s * 1_000_000).unwrap()
    }

    fn receipt(first: u64, last: u64) -> Receipt {
        Receipt {
            trail_id: TrailId::new("t").unwrap(),
            first_seq: first,
            last_seq: last,
            received_at: ts(0),
            edge: "ws-1".into(),
        }
    }

    #[test]
    fn lateness_is_strictly_beyond_the_threshold() {
        let t = Duration::from_secs(5);
        assert!(!Lateness::judge(ts(0), ts(5), t).late);
        assert!(Lateness::judge(ts(0), ts(6), t).late);
        let early = Lateness::judge(ts(10), ts(0), t);
        assert!(!early.late);
        assert_eq!(early.delay_micros, -10_000_000);
    }

    #[test]
    fn decide_record_refuses_overlaps_but_not_an_identical_retry() {
        let r = receipt(3, 5);
        assert!(decide_record(&r, &[]).unwrap());
        assert!(!decide_record(&r, std::slice::from_ref(&r)).unwrap());
        let mut later = r.clone();
        later.received_at = ts(9);
        assert!(matches!(
            decide_record(&later, std::slice::from_ref(&r)),
            Err(ReceiptError::Overlap { .. })
        ));
        assert!(matches!(
            decide_record(&receipt(5, 4), &[]),
            Err(ReceiptError::InvalidRange { .. })
        ));
        assert!(matches!(
            decide_record(&receipt(0, 4), &[]),
            Err(ReceiptError::InvalidRange { .. })
        ));
        assert_eq!(receipt_for(&[receipt(1, 2), r.clone()], 4), Some(&r));
        assert!(receipt_for(&[r], 6).is_none());
    }
}
