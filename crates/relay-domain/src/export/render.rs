//! Human-readable renderings of records (CSV and JSON rows) with their signature
//! manifestations (R4.3: printed name, UTC date-time, meaning, reason).
//!
//! Each row is written as a *prefix* (every column of the record) followed by the signatures
//! column, so the verifier can re-render the prefix from `records.jsonl` and compare bytes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::canonical::write_json_string;
use crate::ids::{ChainSeq, Checksum};
use crate::record::Record;
use crate::timestamp::Timestamp;

/// The kind of signature records (R4.2).
pub const SIGNATURE_KIND: &str = "SIGNATURE";

/// The CSV header line.
pub const CSV_HEADER: &str = "chain_seq,checksum,prev_checksum,kind,actor,actor_source,occurred_at,recorded_at,time_source,device,project,subject,key_id,payload,signatures\r\n";

/// The manifestation of one electronic signature on a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifestation {
    /// The signer's printed name.
    pub printed_name: String,
    /// When the signature was recorded (UTC).
    pub signed_at: Timestamp,
    /// What the signature means (reviewed, approved, rejected).
    pub meaning: String,
    /// Why the signer signed.
    pub reason: String,
    /// The seq of the SIGNATURE record in the same trail.
    pub signature_seq: ChainSeq,
    /// The checksum of the SIGNATURE record.
    pub signature_checksum: Checksum,
}

impl Manifestation {
    /// If `record` is a SIGNATURE, the checksum it signs and its manifestation.
    pub fn from_signature_record(record: &Record) -> Option<(Checksum, Manifestation)> {
        if record.kind.as_str() != SIGNATURE_KIND {
            return None;
        }
        let payload = record.payload.to_value().ok()?;
        let text = |k: &str| {
            payload
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let target = Checksum::from_hex(payload.get("target_checksum")?.as_str()?).ok()?;
        Some((
            target,
            Manifestation {
                printed_name: text("printed_name"),
                signed_at: record.recorded_at,
                meaning: text("meaning"),
                reason: text("reason"),
                signature_seq: record.chain_seq,
                signature_checksum: record.checksum,
            },
        ))
    }

    /// `printed_name | UTC time | meaning | reason`.
    pub fn line(&self) -> String {
        format!(
            "{} | {} | {} | {}",
            self.printed_name, self.signed_at, self.meaning, self.reason
        )
    }
}

/// The signatures of a trail, by the checksum they sign.
#[derive(Debug, Clone, Default)]
pub struct SignatureIndex(HashMap<Checksum, Vec<Manifestation>>);

impl SignatureIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `record` if it is a SIGNATURE.
    pub fn observe(&mut self, record: &Record) {
        if let Some((target, m)) = Manifestation::from_signature_record(record) {
            self.0.entry(target).or_default().push(m);
        }
    }

    /// The signatures on the record with `checksum`, in trail order.
    pub fn on(&self, checksum: &Checksum) -> &[Manifestation] {
        self.0.get(checksum).map_or(&[], Vec::as_slice)
    }

    /// How many signatures are indexed.
    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Whether no signature is indexed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends one CSV cell (RFC 4180 quoting). A cell that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`; `records.jsonl` keeps the
/// exact value.
pub fn write_csv_cell(out: &mut Vec<u8>, s: &str) {
    let guard = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    let quote = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        || s.starts_with(' ')
        || s.ends_with(' ');
    if quote {
        out.push(b'"');
    }
    if guard {
        out.push(b'\'');
    }
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

/// Appends every column of `record` but the signatures, each followed by a comma.
pub fn write_csv_prefix(record: &Record, out: &mut Vec<u8>) {
    let cell = |out: &mut Vec<u8>, s: &str| {
        write_csv_cell(out, s);
        out.push(b',');
    };
    out.extend_from_slice(record.chain_seq.get().to_string().as_bytes());
    out.push(b',');
    record.checksum.write_hex(out);
    out.push(b',');
    record.prev_checksum.write_hex(out);
    out.push(b',');
    cell(out, record.kind.as_str());
    cell(out, record.actor.as_str());
    cell(out, record.actor_source.as_str());
    record.occurred_at.write_canonical(out);
    out.push(b',');
    record.recorded_at.write_canonical(out);
    out.push(b',');
    cell(out, &record.time_source.to_label());
    cell(out, record.device.as_str());
    cell(out, record.project.as_ref().map_or("", |p| p.as_str()));
    cell(out, record.subject.as_ref().map_or("", |s| s.as_str()));
    cell(out, record.key_id.as_str());
    cell(out, record.payload.as_str());
}

/// The text of the signatures cell: manifestation lines joined by `"; "`.
pub fn signatures_cell(signatures: &[Manifestation]) -> String {
    signatures
        .iter()
        .map(Manifestation::line)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Appends the signatures cell and the row terminator (`\r\n`).
pub fn write_csv_signatures(signatures: &[Manifestation], out: &mut Vec<u8>) {
    write_csv_cell(out, &signatures_cell(signatures));
    out.extend_from_slice(b"\r\n");
}

/// Appends the JSON row of `record` up to and including `"signatures":`.
pub fn write_json_prefix(record: &Record, out: &mut Vec<u8>) {
    let key = |out: &mut Vec<u8>, k: &str| {
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let text = |out: &mut Vec<u8>, k: &str, v: &str| {
        key(out, k);
        write_json_string(out, v);
        out.push(b',');
    };
    let opt = |out: &mut Vec<u8>, k: &str, v: Option<&str>| {
        key(out, k);
        match v {
            Some(v) => write_json_string(out, v),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
    };
    out.push(b'{');
    key(out, "chain_seq");
    out.extend_from_slice(record.chain_seq.get().to_string().as_bytes());
    out.push(b',');
    text(out, "checksum", &record.checksum.to_hex());
    text(out, "prev_checksum", &record.prev_checksum.to_hex());
    text(out, "kind", record.kind.as_str());
    text(out, "actor", record.actor.as_str());
    text(out, "actor_source", record.actor_source.as_str());
    text(out, "occurred_at", &record.occurred_at.to_canonical());
    text(out, "recorded_at", &record.recorded_at.to_canonical());
    text(out, "time_source", &record.time_source.to_label());
    text(out, "device", record.device.as_str());
    opt(out, "project", record.project.as_ref().map(|p| p.as_str()));
    opt(out, "subject", record.subject.as_ref().map(|s| s.as_str()));
    text(out, "key_id", record.key_id.as_str());
    key(out, "payload");
    out.extend_from_slice(record.payload.as_str().as_bytes());
    out.push(b',');
    key(out, "signatures");
}

/// Appends the signatures array and closes the row object.
pub fn write_json_signatures(signatures: &[Manifestation], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, m) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"printed_name\":");
        write_json_string(out, &m.printed_name);
        out.extend_from_slice(b",\"signed_at\":\"");
        m.signed_at.write_canonical(out);
        out.extend_from_slice(b"\",\"meaning\":");
        write_json_string(out, &m.meaning);
        out.extend_from_slice(b",\"reason\":");
        write_json_string(out, &m.reason);
        out.extend_from_slice(b",\"signature_seq\":");
        out.extend_from_slice(m.signature_seq.get().to_string().as_bytes());
        out.extend_from_slice(b",\"signature_checksum\":\"");
        m.signature_checksum.write_hex(out);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

/// The first line of `records.json`.
pub const JSON_OPEN: &[u8] = b"[\n";
/// What separates two rows of `records.json`.
pub const JSON_SEPARATOR: &[u8] = b",\n";
/// The end of `records.json` (after the last row, or right after [`JSON_OPEN`] when empty).
pub const JSON_CLOSE_AFTER_ROW: &[u8] = b"\n]\n";
/// The end of an empty `records.json`.
pub const JSON_CLOSE_EMPTY: &[u8] = b"]\n";

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R5.1
    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let cell = |s: &str| {
            let mut out = Vec::new();
            write_csv_cell(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\"\nnow"), "\"say \"\"hi\"\"\nnow\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("-1,2"), "\"'-1,2\"");
        assert_eq!(cell(""), "");
    }
}
