//! The column layout of a stored record, shared by every SQL record store, and the decoder that
//! turns a row's text columns back into a [`Record`] (pure: the adapter reads the columns).

use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::ports::RecordStoreError;
use crate::record::{Payload, Record};
use crate::timestamp::{TimeLabel, Timestamp};

/// The `event_log` columns in the order [`decode_columns`] reads them.
pub const EVENT_LOG_COLUMNS: &str = "trail_id, chain_seq, prev_checksum, checksum, kind, actor, actor_source, \
                                     occurred_at, recorded_at, time_source, device, project, subject, payload, \
                                     key_id";

/// Decodes one `event_log` row of `trail`: `seq_raw` is column 1 (`chain_seq`) and
/// `column(i)` yields text column `i` of [`EVENT_LOG_COLUMNS`] (`None` for NULL). Any malformed
/// field is [`RecordStoreError::Corrupt`] naming the row's seq and the column. The payload is
/// kept verbatim: the chain's HMAC covers those exact bytes.
pub fn decode_columns<'r>(
    trail: &TrailId,
    seq_raw: i64,
    column: impl Fn(usize) -> Result<Option<&'r str>, String>,
) -> Result<Record, RecordStoreError> {
    let seq_u = u64::try_from(seq_raw).unwrap_or(0);
    let bad = |name: &str, e: &dyn std::fmt::Display| RecordStoreError::Corrupt {
        trail_id: trail.clone(),
        seq: seq_u,
        message: format!("column {name}: {e}"),
    };
    let text = |i: usize, name: &str| -> Result<&'r str, RecordStoreError> {
        column(i)
            .map_err(|e| bad(name, &e))?
            .ok_or_else(|| bad(name, &"unexpected NULL"))
    };
    let opt_text = |i: usize, name: &str| -> Result<Option<&'r str>, RecordStoreError> {
        column(i).map_err(|e| bad(name, &e))
    };
    let chain_seq = ChainSeq::new(seq_u).map_err(|e| bad("chain_seq", &e))?;
    let trail_id = TrailId::new(text(0, "trail_id")?).map_err(|e| bad("trail_id", &e))?;
    if trail_id != *trail {
        return Err(bad("trail_id", &format!("row belongs to trail {trail_id}")));
    }
    let prev_checksum =
        Checksum::from_hex(text(2, "prev_checksum")?).map_err(|e| bad("prev_checksum", &e))?;
    let checksum = Checksum::from_hex(text(3, "checksum")?).map_err(|e| bad("checksum", &e))?;
    let kind = EventKind::new(text(4, "kind")?).map_err(|e| bad("kind", &e))?;
    let actor = Actor::new(text(5, "actor")?).map_err(|e| bad("actor", &e))?;
    let source_text = text(6, "actor_source")?;
    let actor_source = ActorSource::parse(source_text)
        .ok_or_else(|| bad("actor_source", &format!("unknown value {source_text:?}")))?;
    let occurred_at =
        Timestamp::parse_canonical(text(7, "occurred_at")?).map_err(|e| bad("occurred_at", &e))?;
    let recorded_at =
        Timestamp::parse_canonical(text(8, "recorded_at")?).map_err(|e| bad("recorded_at", &e))?;
    let label_text = text(9, "time_source")?;
    let time_source = TimeLabel::parse(label_text)
        .ok_or_else(|| bad("time_source", &format!("unknown label {label_text:?}")))?;
    let device = Device::new(text(10, "device")?).map_err(|e| bad("device", &e))?;
    let project = opt_text(11, "project")?
        .map(Project::new)
        .transpose()
        .map_err(|e| bad("project", &e))?;
    let subject = opt_text(12, "subject")?
        .map(Subject::new)
        .transpose()
        .map_err(|e| bad("subject", &e))?;
    let payload = Payload::from_stored(text(13, "payload")?.to_owned());
    let key_id = KeyId::new(text(14, "key_id")?).map_err(|e| bad("key_id", &e))?;
    Ok(Record {
        actor,
        actor_source,
        chain_seq,
        device,
        key_id,
        kind,
        occurred_at,
        payload,
        prev_checksum,
        project,
        recorded_at,
        subject,
        time_source,
        trail_id,
        checksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R1.1
    #[test]
    fn names_the_seq_and_column_of_a_malformed_row() {
        let trail = TrailId::new("t").unwrap();
        let cols = [
            Some("t"),
            None,
            Some("zz"),
            Some("00"),
            Some("K"),
            Some("a"),
            Some("system"),
            Some("x"),
            Some("x"),
            Some("system"),
            Some("d"),
            None,
            None,
            Some("{}"),
            Some("k"),
        ];
        let err = decode_columns(&trail, 7, |i| Ok(cols[i])).unwrap_err();
        assert!(
            matches!(&err, RecordStoreError::Corrupt { seq: 7, message, .. } if message.contains("prev_checksum")),
            "{err:?}"
        );
        let other = decode_columns(&TrailId::new("u").unwrap(), 7, |i| Ok(cols[i])).unwrap_err();
        assert!(
            matches!(&other, RecordStoreError::Corrupt { message, .. } if message.contains("trail_id")),
            "{other:?}"
        );
    }
}
