//! Human-readable renderings of records (CSV and JSON rows) with their signature
//! manifestations (R4.3: printed name, UTC date-time, meaning, reason).
//!
//! Each row is written as a *prefix* (every column of the record) followed by the signatures
//! column, so the verifier can re-render the prefix from `records.jsonl` and compare bytes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::canonical::{write_json_string, write_u64};
use crate::ids::{ChainSeq, Checksum};
use crate::record::Record;
use crate::timestamp::{TimeLabel, Timestamp};

/// The kind of signature records (R4.2).
pub const SIGNATURE_KIND: &str = "SIGNATURE";

/// The CSV header line.
pub const CSV_HEADER: &str = "chain_seq,checksum,prev_checksum,kind,actor,actor_source,occurred_at,recorded_at,time_source,device,project,subject,key_id,payload,signatures\r\n";

/// The layout of a package's renderings, named by its manifest's `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatVersion {
    /// `gims-relay export v1`: signature manifestations without the username; CSV entries
    /// `printed_name | signed_at | meaning | reason` joined by `"; "`, unescaped (a reason
    /// holding `|` or `;` cannot be split back). Read, never written.
    V1,
    /// `gims-relay export v2` (written since issue 20): each manifestation names the signer's
    /// username beside the printed name, and the CSV cell escapes its fields so that any text
    /// round-trips ([`parse_signatures_cell`]).
    V2,
}

impl FormatVersion {
    /// The version written by this relay.
    pub const CURRENT: FormatVersion = FormatVersion::V2;

    /// The version a manifest's `format` names, if known.
    pub fn from_format(format: &str) -> Option<Self> {
        match format {
            super::EXPORT_FORMAT_V1 => Some(FormatVersion::V1),
            super::EXPORT_FORMAT => Some(FormatVersion::V2),
            _ => None,
        }
    }
}

/// The manifestation of one electronic signature on a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifestation {
    /// The signer's printed name.
    pub printed_name: String,
    /// The signer's username (the SIGNATURE record's actor).
    pub username: String,
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
                username: record.actor.as_str().to_owned(),
                signed_at: record.recorded_at,
                meaning: text("meaning"),
                reason: text("reason"),
                signature_seq: record.chain_seq,
                signature_checksum: record.checksum,
            },
        ))
    }

    /// The manifestation's entry in the CSV `signatures` cell: v1 `printed_name | UTC time |
    /// meaning | reason` as written; v2 `printed_name | username | UTC time | meaning |
    /// reason`, each field escaped ([`escape_signature_field`]).
    pub fn line(&self, version: FormatVersion) -> String {
        match version {
            FormatVersion::V1 => format!(
                "{} | {} | {} | {}",
                self.printed_name, self.signed_at, self.meaning, self.reason
            ),
            FormatVersion::V2 => signature_cell_entry([
                &self.printed_name,
                &self.username,
                &self.signed_at.to_canonical(),
                &self.meaning,
                &self.reason,
            ]),
        }
    }
}

/// One manifestation's entry in a v2 signatures cell from its five fields (printed name,
/// username, UTC time, meaning, reason): each escaped ([`escape_signature_field`]), joined by
/// `" | "`. Entries are joined by `"; "`.
pub fn signature_cell_entry(fields: [&str; 5]) -> String {
    let mut out = String::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        escape_signature_field(field, &mut out);
    }
    out
}

/// Appends `field` escaped for a v2 signatures cell: `\` becomes `\\`, `|` becomes `\|`,
/// `;` becomes `\;`, CR becomes `\r` and LF becomes `\n`; nothing else changes.
pub fn escape_signature_field(field: &str, out: &mut String) {
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            ';' => out.push_str("\\;"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Why a v2 signatures cell cannot be split back into fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signatures cell is malformed at character {at}: {why}")]
pub struct CellError {
    /// The character offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub why: &'static str,
}

/// Splits a v2 signatures cell (its text, CSV quoting already removed) back into each
/// manifestation's five fields, unescaped: the inverse of the rendering for any field text.
/// Entries are separated by an unescaped `;` followed by one space, fields by one space, an
/// unescaped `|` and one space.
pub fn parse_signatures_cell(cell: &str) -> Result<Vec<Vec<String>>, CellError> {
    let mut entries = Vec::new();
    if cell.is_empty() {
        return Ok(entries);
    }
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = cell.chars().enumerate().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, e) = chars.next().ok_or(CellError {
                    at,
                    why: "a backslash ends the cell",
                })?;
                field.push(match e {
                    '\\' => '\\',
                    '|' => '|',
                    ';' => ';',
                    'r' => '\r',
                    'n' => '\n',
                    _ => {
                        return Err(CellError {
                            at,
                            why: "unknown escape",
                        });
                    }
                });
            }
            '|' => {
                if field.pop() != Some(' ') || chars.next().map(|(_, c)| c) != Some(' ') {
                    return Err(CellError {
                        at,
                        why: "a field separator is not ' | '",
                    });
                }
                fields.push(std::mem::take(&mut field));
            }
            ';' => {
                if chars.next().map(|(_, c)| c) != Some(' ') {
                    return Err(CellError {
                        at,
                        why: "an entry separator is not '; '",
                    });
                }
                fields.push(std::mem::take(&mut field));
                entries.push(std::mem::take(&mut fields));
            }
            c => field.push(c),
        }
    }
    fields.push(field);
    entries.push(fields);
    if let Some(bad) = entries.iter().position(|e| e.len() != 5) {
        return Err(CellError {
            at: bad,
            why: "an entry does not have 5 fields",
        });
    }
    Ok(entries)
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
    // Runs between quotes are copied whole; each `"` is doubled.
    let mut rest = s.as_bytes();
    while let Some(at) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=at]);
        out.push(b'"');
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
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
    write_u64(out, record.chain_seq.get());
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
    match record.time_source {
        TimeLabel::System => cell(out, "system"),
        label => cell(out, &label.to_label()),
    }
    cell(out, record.device.as_str());
    cell(out, record.project.as_ref().map_or("", |p| p.as_str()));
    cell(out, record.subject.as_ref().map_or("", |s| s.as_str()));
    cell(out, record.key_id.as_str());
    cell(out, record.payload.as_str());
}

/// The text of the signatures cell: manifestation lines joined by `"; "`.
pub fn signatures_cell(version: FormatVersion, signatures: &[Manifestation]) -> String {
    signatures
        .iter()
        .map(|m| m.line(version))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Appends the signatures cell (of the current format) and the row terminator (`\r\n`).
pub fn write_csv_signatures(signatures: &[Manifestation], out: &mut Vec<u8>) {
    write_csv_cell(out, &signatures_cell(FormatVersion::CURRENT, signatures));
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
    // Hex digests and canonical timestamps are plain ASCII: written in place, without the
    // allocation and escaping scan of a string.
    let ascii = |out: &mut Vec<u8>, k: &str, write: &dyn Fn(&mut Vec<u8>)| {
        key(out, k);
        out.push(b'"');
        write(out);
        out.extend_from_slice(b"\",");
    };
    out.push(b'{');
    key(out, "chain_seq");
    write_u64(out, record.chain_seq.get());
    out.push(b',');
    ascii(out, "checksum", &|out| record.checksum.write_hex(out));
    ascii(out, "prev_checksum", &|out| {
        record.prev_checksum.write_hex(out)
    });
    text(out, "kind", record.kind.as_str());
    text(out, "actor", record.actor.as_str());
    text(out, "actor_source", record.actor_source.as_str());
    ascii(out, "occurred_at", &|out| {
        record.occurred_at.write_canonical(out)
    });
    ascii(out, "recorded_at", &|out| {
        record.recorded_at.write_canonical(out)
    });
    match record.time_source {
        TimeLabel::System => text(out, "time_source", "system"),
        label => text(out, "time_source", &label.to_label()),
    }
    text(out, "device", record.device.as_str());
    opt(out, "project", record.project.as_ref().map(|p| p.as_str()));
    opt(out, "subject", record.subject.as_ref().map(|s| s.as_str()));
    text(out, "key_id", record.key_id.as_str());
    key(out, "payload");
    out.extend_from_slice(record.payload.as_str().as_bytes());
    out.push(b',');
    key(out, "signatures");
}

/// Appends the signatures array (of the current format) and closes the row object.
pub fn write_json_signatures(signatures: &[Manifestation], out: &mut Vec<u8>) {
    write_json_signatures_as(FormatVersion::CURRENT, signatures, out);
}

/// Appends the signatures array as `version` lays it out and closes the row object.
pub fn write_json_signatures_as(
    version: FormatVersion,
    signatures: &[Manifestation],
    out: &mut Vec<u8>,
) {
    out.push(b'[');
    for (i, m) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"printed_name\":");
        write_json_string(out, &m.printed_name);
        if version == FormatVersion::V2 {
            out.extend_from_slice(b",\"username\":");
            write_json_string(out, &m.username);
        }
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

    fn manifestation(name: &str, user: &str, reason: &str) -> Manifestation {
        Manifestation {
            printed_name: name.into(),
            username: user.into(),
            signed_at: Timestamp::parse_canonical("2026-12-04T10:00:00.000000Z").unwrap(),
            meaning: "reviewed".into(),
            reason: reason.into(),
            signature_seq: ChainSeq::new(7).unwrap(),
            signature_checksum: Checksum([1; 32]),
        }
    }

    // REQ: R4.3
    #[test]
    fn v2_cells_round_trip_any_reason_and_v1_cells_did_not() {
        let hostile = [
            manifestation("Rita | Reviewer", "rita", "ok; a | b \\ c\r\nd \"q\" ; |"),
            manifestation(" Ali ", "ali", " trailing space | "),
            manifestation("Bo", "bo", ""),
        ];
        let cell = signatures_cell(FormatVersion::V2, &hostile);
        let parsed = parse_signatures_cell(&cell).unwrap();
        assert_eq!(parsed.len(), 3);
        for (m, fields) in hostile.iter().zip(&parsed) {
            assert_eq!(
                fields,
                &vec![
                    m.printed_name.clone(),
                    m.username.clone(),
                    m.signed_at.to_canonical(),
                    m.meaning.clone(),
                    m.reason.clone()
                ]
            );
        }
        // v1 joined the same text unescaped: it cannot be split back into 3 entries.
        let v1 = signatures_cell(FormatVersion::V1, &hostile);
        assert_ne!(v1.split("; ").count(), 3);
        assert_eq!(
            parse_signatures_cell("").unwrap(),
            Vec::<Vec<String>>::new()
        );
        assert!(parse_signatures_cell("a | b").is_err());
        assert!(parse_signatures_cell("a \\x | b | c | d | e").is_err());
    }
}
