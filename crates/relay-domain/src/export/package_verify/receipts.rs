//! Check 17 of docs/spec/export.md §4: `receipts.jsonl`, the server of record's time of
//! receipt of exported records. Per line: its layout (a `parse` failure stops reading the
//! file), ascending seqs (`order`), the seq of an exported record (`selection`), and the late
//! flag the rule gives for that record's `recorded_at` (`receipt`); then the file's digest.

use std::io::BufRead;

use super::lines::{Line, strip_newline};
use super::{PackageError, PackageVerifier, ReceiptSummary};
use crate::export::RECEIPTS_JSONL;
use crate::export::receipts::ReceiptLine;

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 17; returns what `receipts.jsonl` says (`None` when the package has none).
    pub(super) fn check_receipts(&mut self) -> Result<Option<ReceiptSummary>, PackageError> {
        let Some(mut lines) = self.files.receipts.take() else {
            return Ok(None);
        };
        let f = &mut self.f;
        let line = &mut self.buf.line;
        let recorded_at = &mut self.recorded_at;
        let records_ok = self.records_ok;
        recorded_at.sort_unstable_by_key(|(s, _)| *s);
        let mut summary = ReceiptSummary {
            receipts: 0,
            late: 0,
            late_after_secs: None,
        };
        let mut prev = 0u64;
        loop {
            let row = lines.rows + 1;
            match lines.next_line(line)? {
                Line::Eof => break,
                Line::TooLong => {
                    f.fail(RECEIPTS_JSONL, Some(row), None, "parse", "line is too long");
                    break;
                }
                Line::Some => {}
            }
            let Some(text) = strip_newline(line) else {
                f.fail(
                    RECEIPTS_JSONL,
                    Some(row),
                    None,
                    "parse",
                    "last line is not terminated (truncated file?)",
                );
                break;
            };
            let receipt = match ReceiptLine::parse(text) {
                Ok(r) => r,
                Err(e) => {
                    f.fail(RECEIPTS_JSONL, Some(row), None, "parse", e);
                    break;
                }
            };
            let seq = Some(receipt.seq);
            if receipt.seq <= prev {
                f.fail(
                    RECEIPTS_JSONL,
                    Some(row),
                    seq,
                    "order",
                    format!("comes after chain_seq {prev}"),
                );
            }
            prev = receipt.seq;
            if records_ok {
                match recorded_at.binary_search_by_key(&receipt.seq, |(s, _)| *s) {
                    Ok(i) if receipt.late_holds_for(recorded_at[i].1) => {}
                    Ok(i) => f.fail(
                        RECEIPTS_JSONL,
                        Some(row),
                        seq,
                        "receipt",
                        format!(
                            "late is {} but the record was received {} ms after it was recorded \
                             (threshold {} s)",
                            receipt.late,
                            receipt.received_at.micros_since(recorded_at[i].1) / 1000,
                            receipt.late_after_secs
                        ),
                    ),
                    Err(_) => f.fail(
                        RECEIPTS_JSONL,
                        Some(row),
                        seq,
                        "selection",
                        "no exported record has this chain_seq",
                    ),
                }
            }
            summary.receipts += 1;
            summary.late += u64::from(receipt.late);
            summary.late_after_secs = Some(receipt.late_after_secs);
        }
        lines.drain()?;
        if !f.has(RECEIPTS_JSONL) {
            f.pass(
                "receipts",
                format!(
                    "{} times of receipt; {} records received late by the server of record{}",
                    summary.receipts,
                    summary.late,
                    summary
                        .late_after_secs
                        .map(|t| format!(" (threshold {t} s)"))
                        .unwrap_or_default()
                ),
            );
        }
        let (sha, bytes) = lines.finish();
        self.check_digest(RECEIPTS_JSONL, sha, bytes);
        Ok(Some(summary))
    }
}
