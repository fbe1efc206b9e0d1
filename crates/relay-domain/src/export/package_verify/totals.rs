//! Checks 15-16 of docs/spec/export.md §4: the totals of the record walk against the manifest
//! (count, rows digest, Merkle root, the chain's end, the head), then every line-read file's
//! SHA-256 and length, and no rows beyond the records in the renderings and proofs.

use std::io::BufRead;

use super::{PackageError, PackageVerifier};
use crate::export::{PROOFS_JSONL, RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL};
use crate::verify::ChainVerifier;

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 15: the rest of `records.jsonl` is empty, and, when the walk read every record:
    /// the count, `rows_digest` and `merkle_root` equal the manifest's; contiguous exports end
    /// the chain at `to_seq` (and report the chain verifier's verdict); whole-trail exports end
    /// at the head.
    pub(super) fn check_totals(&mut self) -> Result<(), PackageError> {
        let f = &mut self.f;
        let records_ok = self.records_ok;
        let manifest = &self.manifest;
        let head = manifest.head;
        let count = self.count;
        let last = self.last;
        let proofs_checked = self.proofs_checked;
        // The rest of the file: nothing after the last record, or just hashed after a failure.
        if let Some(lines) = self.files.jsonl.as_mut() {
            if !records_ok && !f.list.iter().any(|x| x.file == RECORDS_JSONL) {
                f.fail(RECORDS_JSONL, None, None, "parse", "unreadable");
            }
            let extra = lines.drain()?;
            if records_ok && extra > 0 {
                f.fail(
                    RECORDS_JSONL,
                    Some(lines.rows + 1),
                    None,
                    "parse",
                    "trailing bytes after the last record",
                );
            }
        }
        // The totals, only when the walk read every record.
        if records_ok {
            if count != manifest.records {
                f.fail(
                    RECORDS_JSONL,
                    None,
                    None,
                    "count",
                    format!("{count} records, the manifest says {}", manifest.records),
                );
            }
            // The walk is over: the digest is taken out of the verifier to finish it.
            let digest = std::mem::take(&mut self.rows).finish();
            if digest == manifest.rows_digest {
                f.pass(
                    "rows_digest",
                    format!("{count} canonical rows hash to {digest}"),
                );
            } else {
                f.fail(
                    RECORDS_JSONL,
                    None,
                    None,
                    "rows_digest",
                    format!(
                        "rows digest is {digest}; the manifest says {}",
                        manifest.rows_digest
                    ),
                );
            }
            if self.acc.root() == manifest.merkle_root {
                f.pass(
                    "merkle_root",
                    format!("tree head over the {count} exported records matches"),
                );
            } else {
                f.fail(
                    RECORDS_JSONL,
                    None,
                    None,
                    "merkle",
                    "the Merkle root over the exported records differs from the manifest",
                );
            }
            // Contiguous exports: the chain verifier's end check, and the records end at `to_seq`.
            if self.contiguous {
                match self.chain.take().map(ChainVerifier::finish) {
                    Some(Ok(s)) => f.pass(
                        "chain",
                        format!(
                            "{} records linked{}, {} anchor(s) matched in range",
                            s.records,
                            if s.hmac_checked {
                                " and HMACs recomputed"
                            } else {
                                " (links only; no trail key given)"
                            },
                            s.anchors_checked
                        ),
                    ),
                    Some(Err(e)) => f.fail(
                        RECORDS_JSONL,
                        None,
                        Some(e.seq.get()),
                        "chain",
                        e.to_string(),
                    ),
                    None => {}
                }
                let first_ok = count > 0 || manifest.records == 0;
                if !first_ok || last.is_some_and(|(s, _)| s != manifest.range.to_seq) {
                    f.fail(
                        RECORDS_JSONL,
                        None,
                        last.map(|(s, _)| s.get()),
                        "count",
                        format!(
                            "the export ends at chain_seq {} but the range ends at {}",
                            last.map_or(0, |(s, _)| s.get()),
                            manifest.range.to_seq
                        ),
                    );
                }
            } else if self.keys.is_some() {
                f.pass("hmac", format!("{count} HMACs recomputed"));
            }
            // Whole-trail exports end at the head; partial ones proved each record's inclusion.
            if self.whole {
                if self.acc.root() == head.merkle_root
                    && last.map(|(_, c)| c) == Some(head.checksum)
                {
                    f.pass(
                        "head",
                        format!(
                            "records 1..={} are the whole trail up to the head",
                            head.seq
                        ),
                    );
                } else {
                    f.fail(
                    RECORDS_JSONL,
                    None,
                    Some(head.seq.get()),
                    "head",
                    "the records do not end at the manifest's head (checksum or tree head differs)",
                );
                }
            } else if self.files.proofs.is_some() {
                f.pass(
                    "merkle proofs",
                    format!(
                        "{proofs_checked} inclusion proofs against the tree head at chain_seq {}",
                        head.seq
                    ),
                );
            }
        }
        Ok(())
    }

    /// Check 16: drains and hashes every line-read file and compares its digest with the
    /// manifest (`records.jsonl`, then `records.csv`, `records.json`, `proofs.jsonl`); no rows
    /// beyond the exported records; each rendering whose rows all matched passes.
    pub(super) fn check_file_digests(&mut self) -> Result<(), PackageError> {
        if let Some(lines) = self.files.jsonl.take() {
            let (sha, bytes) = lines.finish();
            self.check_digest(RECORDS_JSONL, sha, bytes);
        }
        for (name, file, compared) in [
            (RECORDS_CSV, self.files.csv.take(), self.csv_rows),
            (RECORDS_JSON, self.files.json.take(), self.json_rows),
            (PROOFS_JSONL, self.files.proofs.take(), self.proofs_checked),
        ] {
            let Some(mut lines) = file else { continue };
            let extra = lines.drain()?;
            let expected_extra = u64::from(name == RECORDS_JSON);
            if self.records_ok && !lines.broken && !self.f.has(name) && extra > expected_extra {
                self.f.fail(
                    name,
                    Some(lines.rows + 1),
                    None,
                    "rendering",
                    "rows beyond the exported records",
                );
            }
            if name != PROOFS_JSONL
                && self.records_ok
                && compared == self.count
                && !self.f.has(name)
            {
                self.f.pass(
                    "rendering",
                    format!("{name}: {compared} rows match records.jsonl"),
                );
            }
            let (sha, bytes) = lines.finish();
            self.check_digest(name, sha, bytes);
        }
        Ok(())
    }
}
