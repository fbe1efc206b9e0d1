//! Check 14 of docs/spec/export.md §4: each row of the renderings renders exactly the
//! SIGNATURE records of the package that sign it (from `records.jsonl` or the evidence lines
//! of `proofs.jsonl`), in trail order, byte for byte, in JSON and in CSV alike.

use std::io::BufRead;

use super::PackageVerifier;
use super::findings::Findings;
use crate::export::render::{
    FormatVersion, Manifestation, signatures_cell, write_csv_cell, write_json_signatures_as,
};
use crate::export::{RECORDS_CSV, RECORDS_JSON};
use crate::ids::Checksum;

/// The signatures rendered on one row (kept only for rows that render at least one), compared
/// at the end with the SIGNATURE records of the package that name the row.
#[derive(Default)]
pub(super) struct RenderedSignatures {
    /// The row's record's seq.
    pub(super) row_seq: u64,
    /// The row in `records.json`, if it was read.
    pub(super) json_row: Option<u64>,
    /// The JSON signatures list as rendered (empty for `[]`).
    pub(super) json: Vec<u8>,
    /// The row in `records.csv`, if it was read.
    pub(super) csv_row: Option<u64>,
    /// The CSV signatures cell as rendered.
    pub(super) csv: Vec<u8>,
}

/// Compares one row's rendered signatures with the SIGNATURE records naming it.
fn compare_signatures(
    version: FormatVersion,
    f: &mut Findings,
    row: &RenderedSignatures,
    records: &[Manifestation],
    has_json: bool,
    has_csv: bool,
    buf: &mut Vec<u8>,
) {
    let detail = |file: &str| {
        let seqs: Vec<String> = records
            .iter()
            .map(|m| m.signature_seq.to_string())
            .collect();
        format!(
            "the {file} row renders signatures that differ from the package's SIGNATURE records on it ({})",
            if seqs.is_empty() {
                "none".to_owned()
            } else {
                seqs.join(", ")
            }
        )
    };
    buf.clear();
    write_json_signatures_as(version, records, buf);
    buf.pop();
    let json = if row.json.is_empty() {
        b"[]".as_slice()
    } else {
        row.json.as_slice()
    };
    if has_json && json != buf.as_slice() {
        f.fail(
            RECORDS_JSON,
            row.json_row,
            Some(row.row_seq),
            "signature",
            detail(RECORDS_JSON),
        );
    }
    if has_csv {
        buf.clear();
        write_csv_cell(buf, &signatures_cell(version, records));
        if row.csv != *buf {
            f.fail(
                RECORDS_CSV,
                row.csv_row,
                Some(row.row_seq),
                "signature",
                detail(RECORDS_CSV),
            );
        }
    }
}

/// The first 8 bytes of a checksum: membership of exported records in partial exports.
pub(super) fn short(c: &Checksum) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.0[..8]);
    u64::from_le_bytes(b)
}

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 14: each signed record's row renders its SIGNATURE records, reported per signed
    /// record in the order of its first signature's seq; then the rows that render signatures
    /// no SIGNATURE record backs, in row order. Skipped without renderings, or when the record
    /// walk stopped at a `parse` failure.
    pub(super) fn check_rendered_signatures(&mut self) {
        let has_json = self.files.json.is_some();
        let has_csv = self.files.csv.is_some();
        if !(self.records_ok && (has_csv || has_json)) {
            return;
        }
        let whole = self.whole;
        // The format was checked before any check ran (check 1).
        let version =
            FormatVersion::from_format(&self.manifest.format).unwrap_or(FormatVersion::CURRENT);
        let f = &mut self.f;
        let scratch = &mut self.buf.scratch;
        let mut rendered = std::mem::take(&mut self.rendered);
        let mut targets: Vec<(Checksum, Vec<Manifestation>)> =
            std::mem::take(&mut self.signed).into_iter().collect();
        targets.sort_by_key(|(_, list)| list.first().map(|m| m.signature_seq));
        for (target, mut list) in targets {
            list.sort_by_key(|m| m.signature_seq);
            let target_exported = whole || self.exported.contains(&short(&target));
            match rendered.remove(&target) {
                Some(row) => {
                    compare_signatures(version, f, &row, &list, has_json, has_csv, scratch)
                }
                None if target_exported => {
                    let file = if has_json { RECORDS_JSON } else { RECORDS_CSV };
                    f.fail(
                        file,
                        None,
                        list.first().map(|m| m.signature_seq.get()),
                        "signature",
                        format!("SIGNATURE record {} names an exported record whose row does not render it", list[0].signature_seq),
                    );
                }
                None => {}
            }
        }
        let mut leftover: Vec<RenderedSignatures> = rendered.into_values().collect();
        leftover.sort_by_key(|r| r.row_seq);
        for row in leftover {
            compare_signatures(version, f, &row, &[], has_json, has_csv, scratch);
        }
    }
}
