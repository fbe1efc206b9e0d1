//! `proofs.jsonl`: check 11 of docs/spec/export.md §4, each exported record's Merkle inclusion
//! proof against the trail head (read in lockstep with `records.jsonl`), and check 13, the
//! signature evidence of partial exports that follows those proofs.

use std::io::BufRead;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::findings::Findings;
use super::lines::{Line, strip_newline};
use super::records::{RecordLine, check_line_layout};
use super::signatures::short;
use super::{PackageError, PackageVerifier};
use crate::chain::checksum_with_buf;
use crate::export::PROOFS_JSONL;
use crate::export::render::Manifestation;
use crate::ids::{ChainSeq, Checksum};
use crate::merkle::{record_leaf_hash, verify_inclusion};

/// A `proofs.jsonl` line of an exported record: its seq and its audit path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofLine {
    seq: ChainSeq,
    proof: Vec<Checksum>,
}

/// A `proofs.jsonl` line after the exported records' proofs: a SIGNATURE record on an exported
/// record that is not itself exported, with its inclusion proof.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceLine {
    seq: ChainSeq,
    proof: Vec<Checksum>,
    record: Box<RawValue>,
}

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 11: the next line of `proofs.jsonl` is the proof of the record of `seq` (whose
    /// leaf hash is `leaf`) and verifies against the trail head's Merkle tree.
    pub(super) fn check_proof(
        &mut self,
        seq: ChainSeq,
        leaf: &Checksum,
    ) -> Result<(), PackageError> {
        let head = self.manifest.head;
        let f = &mut self.f;
        let other = &mut self.buf.other;
        if let Some(p) = self.files.proofs.as_mut().filter(|p| !p.broken) {
            let prow = p.rows + 1;
            match p.next_line(other)? {
                Line::Some => {
                    let parsed = strip_newline(other)
                        .ok_or_else(|| "unterminated line".to_owned())
                        .and_then(|t| {
                            serde_json::from_slice::<ProofLine>(t).map_err(|e| e.to_string())
                        });
                    match parsed {
                        Ok(pl) if pl.seq != seq => f.fail(
                            PROOFS_JSONL,
                            Some(prow),
                            Some(seq.get()),
                            "merkle",
                            format!("proof is for chain_seq {}", pl.seq),
                        ),
                        Ok(pl) if pl.proof.len() > 64 => f.fail(
                            PROOFS_JSONL,
                            Some(prow),
                            Some(seq.get()),
                            "merkle",
                            "proof is too long",
                        ),
                        Ok(pl) => {
                            if verify_inclusion(
                                leaf,
                                seq.get() - 1,
                                head.seq.get(),
                                &pl.proof,
                                &head.merkle_root,
                            ) {
                                self.proofs_checked += 1;
                            } else {
                                f.fail(
                                    PROOFS_JSONL,
                                    Some(prow),
                                    Some(seq.get()),
                                    "merkle",
                                    "the record is not included in the trail head's Merkle tree",
                                );
                            }
                        }
                        Err(e) => f.fail(PROOFS_JSONL, Some(prow), Some(seq.get()), "parse", e),
                    }
                }
                Line::Eof => f.fail(
                    PROOFS_JSONL,
                    Some(prow),
                    Some(seq.get()),
                    "merkle",
                    "no proof for this record",
                ),
                Line::TooLong => f.fail(
                    PROOFS_JSONL,
                    Some(prow),
                    Some(seq.get()),
                    "parse",
                    "line is too long",
                ),
            }
        }
        Ok(())
    }

    /// Check 13, partial exports: the SIGNATURE records on exported records that are not
    /// exported themselves follow the records' proofs in `proofs.jsonl`, each with its own
    /// proof. Each must be in its layout, of this trail, in seq order, not exported, at most
    /// the head, included in the head's tree (with its HMAC when the keys are given), and sign
    /// an exported record; it then counts for check 14.
    pub(super) fn check_evidence(&mut self) -> Result<(), PackageError> {
        let whole = self.whole;
        let manifest = &self.manifest;
        let head = manifest.head;
        let f = &mut self.f;
        let (other, expected, scratch) = (
            &mut self.buf.other,
            &mut self.buf.expected,
            &mut self.buf.scratch,
        );
        if self.records_ok
            && let Some(p) = self.files.proofs.as_mut().filter(|p| !p.broken && !whole)
        {
            let mut last_evidence = 0u64;
            loop {
                let prow = p.rows + 1;
                match p.next_line(other)? {
                    Line::Eof => break,
                    Line::TooLong => {
                        f.fail(PROOFS_JSONL, Some(prow), None, "parse", "line is too long");
                        break;
                    }
                    Line::Some => {}
                }
                let parsed = strip_newline(other)
                    .ok_or_else(|| "unterminated line".to_owned())
                    .and_then(|t| {
                        serde_json::from_slice::<EvidenceLine>(t).map_err(|e| e.to_string())
                    })
                    .and_then(|e| {
                        let record = serde_json::from_str::<RecordLine>(e.record.get())
                            .map_err(|x| x.to_string())
                            .and_then(RecordLine::into_record)?;
                        check_line_layout(e.record.get().as_bytes(), &record, expected)?;
                        Ok((e, record))
                    });
                let (evidence, record) = match parsed {
                    Ok(x) => x,
                    Err(e) => {
                        f.fail(PROOFS_JSONL, Some(prow), None, "parse", e);
                        break;
                    }
                };
                let seq = record.chain_seq.get();
                let bad = |f: &mut Findings, detail: String| {
                    f.fail(PROOFS_JSONL, Some(prow), Some(seq), "signature", detail);
                };
                let leaf = record_leaf_hash(&record, scratch);
                let in_export = record.chain_seq >= manifest.range.from_seq
                    && record.chain_seq <= manifest.range.to_seq
                    && manifest.filter.selects(&record);
                let signature = Manifestation::from_signature_record(&record);
                if evidence.seq != record.chain_seq || record.trail_id != manifest.trail_id {
                    bad(
                        f,
                        "the evidence line's seq or trail differs from its record".into(),
                    );
                } else if seq <= last_evidence || in_export || record.chain_seq > head.seq {
                    bad(
                        f,
                        "evidence records must be in seq order, up to the head, and not exported"
                            .into(),
                    );
                } else if evidence.proof.len() > 64
                    || !verify_inclusion(
                        &leaf,
                        seq - 1,
                        head.seq.get(),
                        &evidence.proof,
                        &head.merkle_root,
                    )
                {
                    f.fail(
                        PROOFS_JSONL,
                        Some(prow),
                        Some(seq),
                        "merkle",
                        "the SIGNATURE record is not included in the trail head's Merkle tree",
                    );
                } else if let Some(keys) = self.keys
                    && !keys.get(&record.key_id).is_some_and(|k| {
                        checksum_with_buf(&record, k, scratch).ct_eq(&record.checksum)
                    })
                {
                    f.fail(
                        PROOFS_JSONL,
                        Some(prow),
                        Some(seq),
                        "hmac",
                        "checksum mismatch or unknown key",
                    );
                } else {
                    match signature {
                        Some((target, m)) if self.exported.contains(&short(&target)) => {
                            self.signed.entry(target).or_default().push(m);
                        }
                        _ => bad(f, "not a SIGNATURE record on an exported record".into()),
                    }
                }
                last_evidence = seq;
            }
        }
        Ok(())
    }
}
