//! The HMAC-SHA256 chain (R1.2): each record's checksum covers its predecessor's checksum.

use crate::canonical::write_canonical;
use crate::ids::Checksum;
use crate::keys::TrailKey;
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
