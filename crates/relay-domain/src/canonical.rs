//! The canonical byte encoding of a record, the input of its HMAC (R1.2).
//!
//! The bytes are the ASCII domain-separation tag [`EVENT_DOMAIN_TAG`] followed by the RFC 8785
//! (JSON Canonicalization Scheme) serialization of a JSON object holding every field of the
//! record except `checksum`. Keys are sorted (all are ASCII, so code-unit order is byte order);
//! `chain_seq` is a JSON integer; digests are lowercase hex strings; timestamps are their
//! 27-byte canonical form; absent `project` / `subject` are `null`; `payload` is embedded as its
//! own canonical JSON. See `docs/spec/chain.md` for the byte layout and test vectors.
//!
//! This encoder writes the fixed schema directly (no intermediate `Value`), which is what makes
//! verification fast; a property test checks it against a general RFC 8785 implementation.

use crate::ids::Checksum;
use crate::record::Record;
use crate::timestamp::TimeLabel;

/// Prefix of every record's canonical bytes; separates record HMACs from any other use of a key.
pub const EVENT_DOMAIN_TAG: &[u8] = b"gims-relay:event:v1\n";

/// Appends `s` as a JSON string per RFC 8785 (ECMAScript `JSON.stringify` escaping).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_key(out: &mut Vec<u8>, key: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_hex(out: &mut Vec<u8>, c: &Checksum) {
    out.push(b'"');
    c.write_hex(out);
    out.push(b'"');
}

fn write_opt(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(s) => write_json_string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends a decimal integer without allocating.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the time-source label as a JSON string (`"system"` or `"ntp:+123us"`) without
/// allocating; the label never needs escaping.
fn write_time_label(out: &mut Vec<u8>, label: TimeLabel) {
    match label {
        TimeLabel::System => out.extend_from_slice(b"\"system\""),
        TimeLabel::Validated { offset_micros } => {
            out.extend_from_slice(b"\"ntp:");
            out.push(if offset_micros < 0 { b'-' } else { b'+' });
            write_u64(out, offset_micros.unsigned_abs());
            out.extend_from_slice(b"us\"");
        }
    }
}

/// Appends the canonical bytes of `record` (everything but its checksum) to `out`.
pub fn write_canonical(record: &Record, out: &mut Vec<u8>) {
    out.extend_from_slice(EVENT_DOMAIN_TAG);
    out.push(b'{');
    write_key(out, "actor", true);
    write_json_string(out, record.actor.as_str());
    write_key(out, "actor_source", false);
    write_json_string(out, record.actor_source.as_str());
    write_key(out, "chain_seq", false);
    write_u64(out, record.chain_seq.get());
    write_key(out, "device", false);
    write_json_string(out, record.device.as_str());
    write_key(out, "key_id", false);
    write_json_string(out, record.key_id.as_str());
    write_key(out, "kind", false);
    write_json_string(out, record.kind.as_str());
    write_key(out, "occurred_at", false);
    out.push(b'"');
    record.occurred_at.write_canonical(out);
    out.push(b'"');
    write_key(out, "payload", false);
    out.extend_from_slice(record.payload.as_str().as_bytes());
    write_key(out, "prev_checksum", false);
    write_hex(out, &record.prev_checksum);
    write_key(out, "project", false);
    write_opt(out, record.project.as_ref().map(|p| p.as_str()));
    write_key(out, "recorded_at", false);
    out.push(b'"');
    record.recorded_at.write_canonical(out);
    out.push(b'"');
    write_key(out, "subject", false);
    write_opt(out, record.subject.as_ref().map(|s| s.as_str()));
    write_key(out, "time_source", false);
    write_time_label(out, record.time_source);
    write_key(out, "trail_id", false);
    write_json_string(out, record.trail_id.as_str());
    out.push(b'}');
}

/// The canonical bytes of `record` as a new vector.
pub fn canonical_bytes(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + record.payload.as_str().len());
    write_canonical(record, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jcs_of_str(s: &str) -> String {
        serde_json_canonicalizer::to_string(&serde_json::Value::String(s.to_owned())).unwrap()
    }

    // REQ: R1.2
    #[test]
    fn escapes_like_rfc8785() {
        for s in [
            "plain",
            "quote\"back\\slash",
            "\u{0}\u{1f}\u{7f}\u{2028}",
            "tab\tnl\ncr\r\u{8}\u{c}",
            "Größe µ 測定 🧪",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), jcs_of_str(s));
        }
    }

    proptest! {
        #[test]
        fn string_escaping_matches_reference_jcs(s in any::<String>()) {
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), jcs_of_str(&s));
        }
    }
}
