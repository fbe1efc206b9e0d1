//! One stored `event_log` row, as every SQL record store hands it to
//! `relay_domain::columns::decode_columns`: a database file is untrusted once someone with file
//! access may have edited it. Decoding must never panic, and a decoded record must hold exactly
//! the text of its columns (re-encoding each field gives the column back byte for byte), so
//! verification judges what is stored, not a normalized copy.
//!
//! Input: 8 bytes of `chain_seq` (little-endian i64), then the 15 text columns of
//! `EVENT_LOG_COLUMNS` separated by 0x1F; an empty column is NULL where NULL is allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_domain::TrailId;
use relay_domain::columns::decode_columns;

fuzz_target!(|data: &[u8]| {
    let Some((seq_bytes, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let seq = i64::from_le_bytes(*seq_bytes);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let cols: Vec<&str> = text.split('\x1f').collect();
    let column = |i: usize| -> Result<Option<&str>, String> {
        match cols.get(i) {
            None => Err(format!("column {i} missing")),
            Some(c) if c.is_empty() && matches!(i, 11 | 12) => Ok(None),
            Some(c) => Ok(Some(*c)),
        }
    };
    // The store asks for the trail it reads; take it from the row when it is a valid id.
    let trail = TrailId::new(cols[0]).unwrap_or_else(|_| TrailId::relay());
    let Ok(record) = decode_columns(&trail, seq, column) else {
        return;
    };
    assert_eq!(i64::try_from(record.chain_seq.get()).ok(), Some(seq));
    assert_eq!(record.trail_id, trail);
    assert_eq!(record.trail_id.as_str(), cols[0]);
    assert_eq!(record.prev_checksum.to_hex(), cols[2]);
    assert_eq!(record.checksum.to_hex(), cols[3]);
    assert_eq!(record.kind.as_str(), cols[4]);
    assert_eq!(record.actor.as_str(), cols[5]);
    assert_eq!(record.actor_source.as_str(), cols[6]);
    assert_eq!(record.occurred_at.to_canonical(), cols[7]);
    assert_eq!(record.recorded_at.to_canonical(), cols[8]);
    assert_eq!(record.time_source.to_label(), cols[9]);
    assert_eq!(record.device.as_str(), cols[10]);
    assert_eq!(record.project.as_ref().map_or("", |p| p.as_str()), cols[11]);
    assert_eq!(record.subject.as_ref().map_or("", |s| s.as_str()), cols[12]);
    assert_eq!(record.payload.as_str(), cols[13]);
    assert_eq!(record.key_id.as_str(), cols[14]);
    // The canonical encoder accepts any decoded record (it is what the verifier hashes).
    let bytes = relay_domain::canonical::canonical_bytes(&record);
    assert!(bytes.starts_with(relay_domain::canonical::EVENT_DOMAIN_TAG));
});
