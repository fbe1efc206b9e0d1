//! The HMAC-SHA256 chain (R1.2): each record's checksum covers its predecessor's checksum, and
//! the rule every record store applies before appending a batch ([`check_batch_at_head`]): the
//! batch continues the stored chain, after any records it repeats identically.

use crate::canonical::write_canonical;
use crate::ids::Checksum;
use crate::keys::TrailKey;
use crate::ports::record_store::{Head, RecordStoreError};
use crate::record::Record;

/// The `prev_checksum` of every trail's first record: 32 zero bytes.
pub const GENESIS: Checksum = Checksum([0u8; 32]);

/// Computes the checksum `record` should carry under `key`, reusing `buf` as scratch space.
pub fn checksum_with_buf(record: &Record, key: &TrailKey, buf: &mut Vec<u8>) -> Checksum {
    buf.clear();
    write_canonical(record, buf);
    key.mac(buf)
}

/// Computes the checksum `record` should carry under `key`.
pub fn checksum_of(record: &Record, key: &TrailKey) -> Checksum {
    let mut buf = Vec::with_capacity(512 + record.payload.as_str().len());
    checksum_with_buf(record, key, &mut buf)
}

/// Fills in `record.checksum` under `key` (and sets `key_id` to the key's id first).
pub fn seal(record: &mut Record, key: &TrailKey) {
    record.key_id = key.id().clone();
    record.checksum = checksum_of(record, key);
}

/// Checks a batch against the stored records of its trail and returns how many are already
/// present; the rest must continue the chain. Shared by every store that keeps records in order.
pub fn check_batch(stored: &[Record], batch: &[Record]) -> Result<usize, RecordStoreError> {
    let head = stored.last().map(|r| Head {
        seq: r.chain_seq,
        checksum: r.checksum,
    });
    let overlap = match batch.first() {
        Some(first) => {
            let from = usize::try_from(first.chain_seq.get() - 1).unwrap_or(usize::MAX);
            stored.get(from..).unwrap_or_default()
        }
        None => &[],
    };
    check_batch_at_head(head, overlap, batch)
}

/// [`check_batch`] for stores that do not hold the whole trail in memory: `head` is the trail's
/// stored head and `overlap` the stored records from the batch's first seq on, in seq order (at
/// least those up to the head or the batch's last seq, whichever comes first; more are ignored).
///
/// Returns how many leading records of the batch are already stored, identical. A stored record
/// missing from `overlap` although the head says it exists is reported as
/// [`RecordStoreError::Corrupt`], because a gapless store cannot produce that.
pub fn check_batch_at_head(
    head: Option<Head>,
    overlap: &[Record],
    batch: &[Record],
) -> Result<usize, RecordStoreError> {
    let first = batch
        .first()
        .ok_or_else(|| RecordStoreError::InvalidBatch("empty batch".into()))?;
    let trail_id = &first.trail_id;
    for pair in batch.windows(2) {
        if pair[1].trail_id != *trail_id {
            return Err(RecordStoreError::InvalidBatch("batch mixes trails".into()));
        }
        if pair[1].chain_seq != pair[0].chain_seq.next()
            || pair[1].prev_checksum != pair[0].checksum
        {
            return Err(RecordStoreError::InvalidBatch(format!(
                "records {} and {} are not consecutive links",
                pair[0].chain_seq, pair[1].chain_seq
            )));
        }
    }
    let head_seq = head.map_or(0, |h| h.seq.get());
    let mut present = 0usize;
    for (i, r) in batch.iter().enumerate() {
        if r.chain_seq.get() > head_seq {
            break;
        }
        let Some(stored) = overlap.get(i).filter(|s| s.chain_seq == r.chain_seq) else {
            return Err(RecordStoreError::Corrupt {
                trail_id: trail_id.clone(),
                seq: r.chain_seq.get(),
                message: "record below the head is missing from the store".into(),
            });
        };
        if stored != r {
            return Err(RecordStoreError::Conflict {
                trail_id: trail_id.clone(),
                seq: r.chain_seq,
            });
        }
        present += 1;
    }
    if let Some(next) = batch.get(present) {
        let expected_seq = head_seq + 1;
        if next.chain_seq.get() != expected_seq {
            return Err(RecordStoreError::NotNext {
                trail_id: trail_id.clone(),
                seq: next.chain_seq,
                reason: format!("expected chain_seq {expected_seq}"),
            });
        }
        let expected_prev = head.map_or(GENESIS, |h| h.checksum);
        if next.prev_checksum != expected_prev {
            return Err(RecordStoreError::NotNext {
                trail_id: trail_id.clone(),
                seq: next.chain_seq,
                reason: "prev_checksum does not match the stored head".into(),
            });
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;
    use crate::append::{AppendService, EventDraft};
    use crate::ids::{Actor, Device, EventKind, KeyId, TrailId};
    use crate::keys::TrailKey;
    use crate::memory::{InMemoryRecordStore, ManualClock};
    use crate::record::Payload;
    use crate::timestamp::Timestamp;

    fn chain(n: usize) -> Vec<Record> {
        let store = Arc::new(InMemoryRecordStore::new());
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_micros(1).unwrap()));
        let key = TrailKey::new(KeyId::new("k").unwrap(), &[3; 32]).unwrap();
        let svc = AppendService::new(store, clock, key);
        block_on(async {
            let mut out = Vec::new();
            for i in 0..n {
                let draft = EventDraft {
                    trail_id: TrailId::new("t").unwrap(),
                    kind: EventKind::system(),
                    actor: Some(Actor::new("alice").unwrap()),
                    actor_source: crate::ids::ActorSource::System,
                    occurred_at: None,
                    device: Device::new("d").unwrap(),
                    project: None,
                    subject: None,
                    payload: Payload::parse(&format!("{{\"i\":{i}}}")).unwrap(),
                };
                out.push(svc.append(draft).await.unwrap());
            }
            out
        })
    }

    fn head_of(stored: &[Record]) -> Option<Head> {
        stored.last().map(|r| Head {
            seq: r.chain_seq,
            checksum: r.checksum,
        })
    }

    #[test]
    fn check_batch_at_head_agrees_with_check_batch_on_every_window() {
        let all = chain(8);
        let stored = &all[..5];
        for from in 0..all.len() {
            for to in from + 1..=all.len() {
                let batch = &all[from..to];
                let overlap = stored.get(from..).unwrap_or_default();
                let windowed = check_batch_at_head(head_of(stored), overlap, batch);
                let full = check_batch(stored, batch);
                assert_eq!(
                    format!("{windowed:?}"),
                    format!("{full:?}"),
                    "batch {from}..{to}"
                );
            }
        }
    }

    #[test]
    fn check_batch_at_head_reports_a_missing_stored_record_as_corrupt() {
        let all = chain(4);
        // The head says 3 records exist, but the store returned only record 2 for batch 2..=4.
        let result = check_batch_at_head(head_of(&all[..3]), &all[1..2], &all[1..]);
        assert!(
            matches!(result, Err(RecordStoreError::Corrupt { seq: 3, .. })),
            "{result:?}"
        );
    }
}
