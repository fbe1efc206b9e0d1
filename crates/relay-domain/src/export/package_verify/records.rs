//! Checks 6-12 of docs/spec/export.md §4: the openings of the renderings, then the walk of
//! `records.jsonl`, line by line, with the renderings' rows and the proofs read in lockstep.
//! Per record, in this order: its layout and fields (7), its selection and order (8), its
//! chain link or HMAC (9), the anchors' tree heads (10), its inclusion proof (11, in
//! `proofs.rs`) and its rows in the renderings (12).

use std::io::BufRead;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::findings::Findings;
use super::lines::{Line, strip_newline};
use super::signatures::{RenderedSignatures, short};
use super::{PackageError, PackageVerifier};
use crate::canonical::{EVENT_DOMAIN_TAG, write_canonical};
use crate::chain::checksum_with_buf;
use crate::export::render::{
    CSV_HEADER, JSON_OPEN, Manifestation, write_csv_prefix, write_json_prefix,
};
use crate::export::{RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL};
use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::merkle::record_leaf_hash;
use crate::record::{Payload, Record};
use crate::timestamp::{TimeLabel, Timestamp};
use crate::verify::ChainVerifier;

/// `records.jsonl` line: a record with its payload kept as raw text (bound by the Merkle tree
/// and the HMAC, so it is not re-canonicalized).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordLine {
    actor: Actor,
    actor_source: ActorSource,
    chain_seq: ChainSeq,
    device: Device,
    key_id: KeyId,
    kind: EventKind,
    occurred_at: Timestamp,
    payload: Box<RawValue>,
    prev_checksum: Checksum,
    project: Option<Project>,
    recorded_at: Timestamp,
    subject: Option<Subject>,
    time_source: TimeLabel,
    trail_id: TrailId,
    checksum: Checksum,
}

impl RecordLine {
    /// The record, once its payload is known to be a JSON object.
    pub(super) fn into_record(self) -> Result<Record, String> {
        if !self.payload.get().starts_with('{') {
            return Err("payload is not a JSON object".into());
        }
        Ok(Record {
            actor: self.actor,
            actor_source: self.actor_source,
            chain_seq: self.chain_seq,
            device: self.device,
            key_id: self.key_id,
            kind: self.kind,
            occurred_at: self.occurred_at,
            payload: Payload::from_stored(self.payload.get().to_owned()),
            prev_checksum: self.prev_checksum,
            project: self.project,
            recorded_at: self.recorded_at,
            subject: self.subject,
            time_source: self.time_source,
            trail_id: self.trail_id,
            checksum: self.checksum,
        })
    }
}

/// Checks that a `records.jsonl` line is byte-identical to its canonical layout: the RFC 8785
/// form of the record without `checksum`, with `,"checksum":"<hex>"` before the closing brace,
/// and a payload already in RFC 8785 form. One rule, so two verifiers cannot disagree.
pub(super) fn check_line_layout(
    text: &[u8],
    record: &Record,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    match Payload::parse(record.payload.as_str()) {
        Ok(p) if p.as_str() == record.payload.as_str() => {}
        Ok(_) => return Err("payload is not in RFC 8785 canonical form".into()),
        Err(e) => return Err(format!("payload: {e}")),
    }
    buf.clear();
    write_canonical(record, buf);
    buf.pop();
    buf.extend_from_slice(b",\"checksum\":\"");
    record.checksum.write_hex(buf);
    buf.extend_from_slice(b"\"}");
    if buf.get(EVENT_DOMAIN_TAG.len()..) == Some(text) {
        Ok(())
    } else {
        Err(
            "line is not the record's canonical layout (RFC 8785 without checksum, then checksum)"
                .into(),
        )
    }
}

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 6: `records.csv` starts with the header row, `records.json` with `[`.
    pub(super) fn check_rendering_openings(&mut self) -> Result<(), PackageError> {
        if let Some(c) = self.files.csv.as_mut() {
            match c.next_line(&mut self.buf.other)? {
                Line::Some if self.buf.other == CSV_HEADER.as_bytes() => {}
                _ => self.f.fail(
                    RECORDS_CSV,
                    Some(1),
                    None,
                    "rendering",
                    "the header row is not the expected one",
                ),
            }
        }
        if let Some(j) = self.files.json.as_mut() {
            match j.next_line(&mut self.buf.other)? {
                Line::Some if self.buf.other == JSON_OPEN => {}
                _ => self.f.fail(
                    RECORDS_JSON,
                    Some(1),
                    None,
                    "rendering",
                    "the file does not open with `[`",
                ),
            }
        }
        Ok(())
    }

    /// Checks 7-12: every record of `records.jsonl`, in file order, until the end of the file
    /// or the first `parse` failure (which stops the walk).
    pub(super) fn check_records(&mut self) -> Result<(), PackageError> {
        // Whole-trail exports: every anchor's tree head is checked when the walk reaches it.
        if self.whole {
            for a in &self.anchors {
                if let Some(root) = a.merkle_root {
                    self.anchor_roots.insert(a.seq.get(), root);
                }
            }
        }
        while self.records_ok {
            let Some((row, record)) = self.read_record()? else {
                break;
            };
            self.check_record(row, &record)?;
        }
        Ok(())
    }

    /// Check 7: the next line of `records.jsonl` (and its row), parsed strictly and in its
    /// canonical layout. `None` at the end of the file, or after a `parse` failure, which
    /// stops the walk.
    fn read_record(&mut self) -> Result<Option<(u64, Record)>, PackageError> {
        let Some(lines) = self.files.jsonl.as_mut() else {
            return Ok(None);
        };
        let row = lines.rows + 1;
        match lines.next_line(&mut self.buf.line)? {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                self.f
                    .fail(RECORDS_JSONL, Some(row), None, "parse", "line is too long");
                self.records_ok = false;
                return Ok(None);
            }
            Line::Some => {}
        }
        let Some(text) = strip_newline(&self.buf.line) else {
            self.f.fail(
                RECORDS_JSONL,
                Some(row),
                None,
                "parse",
                "last line is not terminated (truncated file?)",
            );
            self.records_ok = false;
            return Ok(None);
        };
        match serde_json::from_slice::<RecordLine>(text)
            .map_err(|e| e.to_string())
            .and_then(RecordLine::into_record)
            .and_then(|r| check_line_layout(text, &r, &mut self.buf.expected).map(|()| r))
        {
            Ok(r) => Ok(Some((row, r))),
            Err(e) => {
                self.f.fail(RECORDS_JSONL, Some(row), None, "parse", e);
                self.records_ok = false;
                Ok(None)
            }
        }
    }

    /// Checks 8-12 of one record read from `row`, then what later checks need of it.
    fn check_record(&mut self, row: u64, record: &Record) -> Result<(), PackageError> {
        self.count += 1;
        if self.files.receipts.is_some() {
            self.recorded_at
                .push((record.chain_seq.get(), record.recorded_at));
        }
        self.check_selection(row, record);
        self.check_link(row, record);
        let leaf = self.check_tree(row, record);
        self.check_proof(record.chain_seq, &leaf)?;

        // For check 14: the SIGNATURE records among the exported ones, and (partial exports)
        // which records were exported.
        if let Some((target, m)) = Manifestation::from_signature_record(record) {
            self.signed.entry(target).or_default().push(m);
        }
        if !self.whole {
            self.exported.insert(short(&record.checksum));
        }

        self.check_renderings(record)?;
        self.last = Some((record.chain_seq, record.checksum));
        Ok(())
    }

    /// Check 8: the record is of this trail, in the exported range, selected by the export
    /// filter, and after the previous line's record in seq order.
    fn check_selection(&mut self, row: u64, record: &Record) {
        let seq = record.chain_seq;
        let manifest = &self.manifest;
        let f = &mut self.f;
        let at = |f: &mut Findings, check: &'static str, detail: String| {
            f.fail(RECORDS_JSONL, Some(row), Some(seq.get()), check, detail);
        };
        if record.trail_id != manifest.trail_id {
            at(
                f,
                "selection",
                format!("record of trail {}", record.trail_id),
            );
        }
        if seq < manifest.range.from_seq || seq > manifest.range.to_seq {
            at(f, "selection", "outside the exported range".into());
        }
        if !manifest.filter.selects(record) {
            at(f, "selection", "not selected by the export filter".into());
        }
        if let Some((prev, _)) = self.last
            && seq <= prev
        {
            at(f, "order", format!("comes after chain_seq {prev}"));
        }
    }

    /// Check 9: contiguous exports walk the chain from `from_seq` (links, the anchors inside
    /// the range, and HMACs when the trail keys are given); filtered exports recompute each
    /// HMAC when the keys are given.
    fn check_link(&mut self, row: u64, record: &Record) {
        let seq = record.chain_seq;
        let manifest = &self.manifest;
        let anchors = &self.anchors;
        let keys = self.keys;
        let f = &mut self.f;
        let at = |f: &mut Findings, check: &'static str, detail: String| {
            f.fail(RECORDS_JSONL, Some(row), Some(seq.get()), check, detail);
        };
        if self.contiguous {
            // The chain verifier starts at the first record, which gives the link before it.
            let v = self.chain.get_or_insert_with(|| {
                let mut v = match keys {
                    Some(keys) => ChainVerifier::new(manifest.trail_id.clone(), keys),
                    None => ChainVerifier::links_only(manifest.trail_id.clone()),
                };
                if let Ok(before) = ChainSeq::new(manifest.range.from_seq.get() - 1) {
                    v = v.resume_after(before, record.prev_checksum);
                }
                for a in anchors.iter().filter(|a| {
                    a.trail_id == manifest.trail_id
                        && a.seq >= manifest.range.from_seq
                        && a.seq <= manifest.range.to_seq
                }) {
                    v = v.with_anchor(a.seq, a.checksum);
                }
                v
            });
            if let Err(e) = v.push(record) {
                f.fail(
                    RECORDS_JSONL,
                    Some(row),
                    Some(e.seq.get()),
                    "chain",
                    e.to_string(),
                );
            }
        } else if let Some(keys) = keys {
            match keys.get(&record.key_id) {
                Some(key)
                    if checksum_with_buf(record, key, &mut self.buf.scratch)
                        .ct_eq(&record.checksum) => {}
                Some(_) => at(
                    f,
                    "hmac",
                    "checksum mismatch (record altered or forged)".into(),
                ),
                None => at(f, "hmac", format!("unknown key {}", record.key_id)),
            }
        }
    }

    /// Adds the record to the Merkle tree and the rows digest; whole-trail exports: check 10,
    /// the tree over records `1..=n` equals every anchor's tree head at seq n. Returns the
    /// record's leaf hash.
    fn check_tree(&mut self, row: u64, record: &Record) -> Checksum {
        let leaf = record_leaf_hash(record, &mut self.buf.scratch);
        self.rows.push(&leaf);
        self.acc.push_leaf_hash(leaf);
        if let Some(root) = self.anchor_roots.get(&self.acc.len())
            && self.acc.root() != *root
        {
            self.f.fail(
                RECORDS_JSONL,
                Some(row),
                Some(record.chain_seq.get()),
                "anchor",
                format!(
                    "the Merkle root over records 1..={} differs from the notarized one",
                    self.acc.len()
                ),
            );
        }
        leaf
    }

    /// Check 12: the record's `records.json` row, then its `records.csv` row, is byte-identical
    /// to its re-rendering up to the signatures column. The signatures the rows render are
    /// kept for check 14.
    fn check_renderings(&mut self, record: &Record) -> Result<(), PackageError> {
        let seq = record.chain_seq;
        let f = &mut self.f;
        let other = &mut self.buf.other;
        let expected = &mut self.buf.expected;
        let mut row_signatures = RenderedSignatures {
            row_seq: seq.get(),
            ..RenderedSignatures::default()
        };
        if let Some(j) = self
            .files
            .json
            .as_mut()
            .filter(|j| !j.broken && !f.has(RECORDS_JSON))
        {
            let jrow = j.rows + 1;
            let fail = |f: &mut Findings, d: &str| {
                f.fail(RECORDS_JSON, Some(jrow), Some(seq.get()), "rendering", d)
            };
            match j.next_line(other)? {
                Line::Some => {
                    expected.clear();
                    write_json_prefix(record, expected);
                    let body = other
                        .strip_suffix(b",\n")
                        .or_else(|| other.strip_suffix(b"\n"))
                        .unwrap_or(other.as_slice());
                    match body
                        .strip_prefix(expected.as_slice())
                        .and_then(|rest| rest.strip_suffix(b"}"))
                    {
                        None => fail(f, "row differs from the record in records.jsonl"),
                        Some(sigs) => {
                            row_signatures.json_row = Some(jrow);
                            if sigs != b"[]" {
                                row_signatures.json = sigs.to_vec();
                            }
                            self.json_rows += 1;
                        }
                    }
                }
                Line::Eof => fail(f, "row missing"),
                Line::TooLong => fail(f, "line is too long"),
            }
        }
        if let Some(c) = self
            .files
            .csv
            .as_mut()
            .filter(|c| !c.broken && !f.has(RECORDS_CSV))
        {
            let crow = c.rows;
            let fail = |f: &mut Findings, d: &str| {
                f.fail(RECORDS_CSV, Some(crow + 1), Some(seq.get()), "rendering", d)
            };
            match c.next_csv_row(other)? {
                Line::Some => {
                    expected.clear();
                    write_csv_prefix(record, expected);
                    match other
                        .strip_prefix(expected.as_slice())
                        .and_then(|rest| rest.strip_suffix(b"\r\n"))
                    {
                        None => fail(f, "row differs from the record in records.jsonl"),
                        Some(cell) => {
                            row_signatures.csv_row = Some(crow + 1);
                            row_signatures.csv = cell.to_vec();
                            self.csv_rows += 1;
                        }
                    }
                }
                Line::Eof => fail(f, "row missing"),
                Line::TooLong => fail(f, "row is too long"),
            }
        }
        if !row_signatures.json.is_empty() || !row_signatures.csv.is_empty() {
            self.rendered.insert(record.checksum, row_signatures);
        }
        Ok(())
    }
}
