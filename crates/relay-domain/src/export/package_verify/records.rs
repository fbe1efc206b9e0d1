//! Checks 6-12 of docs/spec/export.md §4: the openings of the renderings, then the walk of
//! `records.jsonl`, line by line, with the renderings' rows and the proofs read in lockstep.
//! Per record, in this order: its layout and fields (7), its selection and order (8), its
//! chain link or HMAC (9), the anchors' tree heads (10), its inclusion proof (11, in
//! `proofs.rs`) and its rows in the renderings (12).

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::findings::Findings;
use super::line_read::read_canonical_line;
use super::lines::{Line, strip_newline};
use super::signatures::{RenderedSignatures, short};
use super::{PackageError, PackageVerifier};
use crate::canonical::{EVENT_DOMAIN_TAG, write_canonical};
use crate::export::render::{
    CSV_HEADER, JSON_OPEN, Manifestation, write_csv_prefix, write_json_prefix,
};
use crate::export::{LAYOUT_CHECKSUM_KEY, RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL};
use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::keys::KeyRing;
use crate::merkle::canonical_leaf_hash;
use crate::record::{Payload, Record};
use crate::timestamp::{TimeLabel, Timestamp};
use crate::verify::{ChainVerifier, Hmac, hmac_verdict, hmac_verdict_of_canonical};

/// Lines of `records.jsonl` read, then prepared together (on the configured threads), then
/// checked in order.
const BATCH_LINES: usize = 1024;

/// The per-record work done ahead of the ordered checks, which needs nothing but the line (and
/// the keys): check 7's parse and canonical layout, the leaf hash, the HMAC verdict and the
/// expected prefixes of the record's rows in the renderings.
struct Prepared {
    /// The record, or why its line is not a record in canonical layout (check 7).
    record: Result<Record, String>,
    /// The record's leaf hash (zero when it did not parse).
    leaf: Checksum,
    /// The HMAC verdict under the trail keys, when given.
    hmac: Option<Hmac>,
    /// The record's `records.json` row up to its signatures, when that file is read.
    json_prefix: Vec<u8>,
    /// The record's `records.csv` row up to its signatures, when that file is read.
    csv_prefix: Vec<u8>,
}

/// What the line-read files are, for [`prepare`].
#[derive(Clone, Copy)]
struct Wanted<'k> {
    keys: Option<&'k KeyRing>,
    json: bool,
    csv: bool,
}

/// Prepares one `records.jsonl` line (without its `\n`).
fn prepare(text: &[u8], wanted: Wanted<'_>, scratch: &mut Vec<u8>) -> Prepared {
    // A line in canonical layout is read directly; anything else takes serde and the layout
    // comparison, which decide and word the fault (`line_read`).
    let record = match read_canonical_line(text) {
        Some(r) => Ok(r),
        None => serde_json::from_slice::<RecordLine>(text)
            .map_err(|e| e.to_string())
            .and_then(RecordLine::into_record)
            .and_then(|r| check_line_layout(text, &r, scratch).map(|()| r)),
    };
    let mut out = Prepared {
        record,
        leaf: Checksum([0; 32]),
        hmac: None,
        json_prefix: Vec::with_capacity(if wanted.json { text.len() + 64 } else { 0 }),
        csv_prefix: Vec::with_capacity(if wanted.csv { text.len() } else { 0 }),
    };
    if let Ok(r) = &out.record {
        // The line is the record's canonical layout, so its canonical bytes are the tag and the
        // line with the checksum member taken out: the leaf and the HMAC need no encoding.
        canonical_from_layout(text, scratch);
        out.leaf = canonical_leaf_hash(scratch, &r.checksum);
        out.hmac = wanted
            .keys
            .map(|keys| hmac_verdict_of_canonical(scratch, &r.key_id, &r.checksum, keys));
        if wanted.json {
            write_json_prefix(r, &mut out.json_prefix);
        }
        if wanted.csv {
            write_csv_prefix(r, &mut out.csv_prefix);
        }
    }
    out
}

/// Puts the canonical bytes of the record whose canonical layout is `line` into `out`: the
/// domain tag, then the line with its `checksum` member (`,"checksum":"` + 64 hex digits + `"`)
/// taken out before the closing brace.
fn canonical_from_layout(line: &[u8], out: &mut Vec<u8>) {
    // `,"checksum":"` + 64 hex digits + `"}` end the layout.
    const CHECKSUM_MEMBER: usize = LAYOUT_CHECKSUM_KEY.len() + 64 + 2;
    out.clear();
    out.extend_from_slice(EVENT_DOMAIN_TAG);
    out.extend_from_slice(&line[..line.len().saturating_sub(CHECKSUM_MEMBER)]);
    out.push(b'}');
}

/// Lines a preparing thread takes at a time: small enough that the threads finish a batch
/// together whatever else the cores are doing, large enough that taking one costs nothing.
const SLICE_LINES: usize = 64;

/// A batch of lines being prepared by any number of threads, each taking the next slice of
/// [`SLICE_LINES`] until none is left ([`work`](Self::work)), then put back in line order
/// ([`assemble`](Self::assemble)).
struct Preparation<'l, 'k> {
    slices: Vec<&'l [Vec<u8>]>,
    next: AtomicUsize,
    wanted: Wanted<'k>,
}

/// Slices of a [`Preparation`] prepared by one thread, with their indexes.
type Pieces = Vec<(usize, Vec<Prepared>)>;

impl<'l, 'k> Preparation<'l, 'k> {
    fn new(lines: &'l [Vec<u8>], wanted: Wanted<'k>) -> Self {
        Self {
            slices: lines.chunks(SLICE_LINES).collect(),
            next: AtomicUsize::new(0),
            wanted,
        }
    }

    /// Prepares slices until none is left; what this thread prepared.
    fn work(&self) -> Pieces {
        let mut scratch = Vec::with_capacity(1024);
        let mut done = Vec::new();
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slice) = self.slices.get(i) else {
                return done;
            };
            done.push((i, prepare_slice(slice, self.wanted, &mut scratch)));
        }
    }

    /// Leaves the slices no thread has taken yet (the walk is over).
    fn stop(&self) {
        self.next.store(self.slices.len(), Ordering::Relaxed);
    }

    /// The prepared lines in order, from every thread's pieces.
    fn assemble(self, mut pieces: Pieces) -> Vec<Prepared> {
        pieces.sort_unstable_by_key(|(i, _)| *i);
        let mut out = Vec::with_capacity(self.slices.len() * SLICE_LINES);
        let mut pieces = pieces.into_iter().peekable();
        for (i, slice) in self.slices.iter().enumerate() {
            match pieces.next_if(|(at, _)| *at == i) {
                Some((_, prepared)) => out.extend(prepared),
                // Preparing a line does not panic; should a thread fail anyway, its slices are
                // prepared here rather than lost or shifted.
                None => out.extend(prepare_slice(slice, self.wanted, &mut Vec::new())),
            }
        }
        out
    }
}

/// Prepares `lines` in order on the calling thread.
fn prepare_slice(lines: &[Vec<u8>], wanted: Wanted<'_>, scratch: &mut Vec<u8>) -> Vec<Prepared> {
    lines
        .iter()
        .map(|line| prepare(line, wanted, scratch))
        .collect()
}

/// Prepares `lines` in order, on `threads` threads (the calling one and `threads - 1` scoped
/// ones).
fn prepare_all(lines: &[Vec<u8>], wanted: Wanted<'_>, threads: usize) -> Vec<Prepared> {
    if threads <= 1 || lines.len() <= SLICE_LINES {
        return prepare_slice(lines, wanted, &mut Vec::with_capacity(1024));
    }
    let preparation = Preparation::new(lines, wanted);
    let pieces = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| preparation.work()))
            .collect();
        let mut pieces = preparation.work();
        for helper in helpers {
            // A failed thread's slices are missing here and prepared again by `assemble`.
            if let Ok(theirs) = helper.join() {
                pieces.extend(theirs);
            }
        }
        pieces
    });
    preparation.assemble(pieces)
}

/// How reading a batch of `records.jsonl` lines ended.
enum BatchEnd {
    /// The batch is full; more lines may follow.
    Full,
    /// The end of the file.
    Eof,
    /// A line that cannot be a record at all (too long, or not terminated): `parse` fails at
    /// that row after the lines before it are checked.
    Bad {
        /// The row.
        row: u64,
        /// Why.
        detail: &'static str,
    },
}

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
/// and a payload already in RFC 8785 form. One rule, so two verifiers cannot disagree. On
/// success `buf` holds that layout with the domain tag in front.
pub(super) fn check_line_layout(
    text: &[u8],
    record: &Record,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    // Canonical text the fast check can judge is not parsed again (`Payload::parse`).
    let payload = record.payload.as_str();
    match Payload::parse(payload) {
        Ok(p) if p.as_str() == payload => {}
        Ok(_) => return Err("payload is not in RFC 8785 canonical form".into()),
        Err(e) => return Err(format!("payload: {e}")),
    }
    buf.clear();
    write_canonical(record, buf);
    buf.pop();
    buf.extend_from_slice(LAYOUT_CHECKSUM_KEY);
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
        let wanted = Wanted {
            keys: self.keys,
            json: self.files.json.is_some(),
            csv: self.files.csv.is_some(),
        };
        // Two line buffers: while the ordered checks of one batch run on this thread, the
        // next batch (already read) is prepared on the others.
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut ahead: Vec<Vec<u8>> = Vec::new();
        let Some(mut first_row) = self.files.jsonl.as_ref().map(|l| l.rows + 1) else {
            return Ok(());
        };
        let (filled, mut end) = self.read_batch(&mut lines)?;
        let mut prepared = prepare_all(&lines[..filled], wanted, self.threads);
        let mut spent: Vec<Prepared> = Vec::new();
        loop {
            let next_row = self.files.jsonl.as_ref().map_or(0, |l| l.rows + 1);
            let (ahead_filled, ahead_end) = match end {
                BatchEnd::Full if self.threads > 1 => self.read_batch(&mut ahead)?,
                _ => (0, BatchEnd::Eof),
            };
            let workers = self.threads;
            let checking = std::mem::take(&mut prepared);
            let mut spent_now = Some(std::mem::take(&mut spent));
            let preparation =
                (ahead_filled > 0).then(|| Preparation::new(&ahead[..ahead_filled], wanted));
            let (go_on, pieces) = std::thread::scope(|scope| {
                let helpers: Vec<_> = match &preparation {
                    Some(p) => (0..workers)
                        .map(|_| {
                            // The records of the batch checked before this one are freed by a
                            // helper, off this thread.
                            let spent = spent_now.take();
                            scope.spawn(move || {
                                drop(spent);
                                p.work()
                            })
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let go_on = self.check_batch(first_row, &checking, &end);
                let mut pieces = Pieces::new();
                if let Some(p) = &preparation {
                    // Its own checks done, this thread prepares the rest of the next batch
                    // with the helpers instead of waiting for them.
                    match go_on {
                        Ok(true) => pieces = p.work(),
                        _ => p.stop(),
                    }
                }
                for helper in helpers {
                    // A failed thread's slices are missing here and prepared again by
                    // `assemble`.
                    if let Ok(theirs) = helper.join() {
                        pieces.extend(theirs);
                    }
                }
                (go_on, pieces)
            });
            spent = checking;
            if !go_on? {
                break;
            }
            if self.threads > 1 {
                // Read ahead: the batch prepared beside the checks of this one.
                prepared = match preparation {
                    Some(p) => p.assemble(pieces),
                    None => Vec::new(),
                };
                first_row = next_row;
                end = ahead_end;
                std::mem::swap(&mut lines, &mut ahead);
                if prepared.is_empty() && !matches!(end, BatchEnd::Bad { .. }) {
                    break;
                }
            } else {
                first_row = next_row;
                let (filled, batch_end) = self.read_batch(&mut lines)?;
                prepared = prepare_all(&lines[..filled], wanted, 1);
                end = batch_end;
            }
        }
        Ok(())
    }

    /// The ordered checks of one prepared batch whose first line is `first_row`, then what
    /// ended it. `false`: the walk is over (the end of the file, or a `parse` failure).
    fn check_batch(
        &mut self,
        first_row: u64,
        prepared: &[Prepared],
        end: &BatchEnd,
    ) -> Result<bool, PackageError> {
        for (row, p) in (first_row..).zip(prepared) {
            match &p.record {
                Ok(record) => self.check_record(row, record, p)?,
                Err(e) => {
                    self.f
                        .fail(RECORDS_JSONL, Some(row), None, "parse", e.as_str());
                    self.records_ok = false;
                    return Ok(false);
                }
            }
        }
        match end {
            BatchEnd::Full => Ok(true),
            BatchEnd::Eof => Ok(false),
            BatchEnd::Bad { row, detail } => {
                self.f
                    .fail(RECORDS_JSONL, Some(*row), None, "parse", *detail);
                self.records_ok = false;
                Ok(false)
            }
        }
    }

    /// Reads up to [`BATCH_LINES`] lines of `records.jsonl` into `lines` (each without its
    /// `\n`), stopping early at the end of the file or at a line that cannot be a record.
    /// Returns how many were read, and why the batch ended.
    fn read_batch(&mut self, lines: &mut Vec<Vec<u8>>) -> Result<(usize, BatchEnd), PackageError> {
        let Some(file) = self.files.jsonl.as_mut() else {
            return Ok((0, BatchEnd::Eof));
        };
        let mut filled = 0;
        while filled < BATCH_LINES {
            if lines.len() == filled {
                lines.push(Vec::new());
            }
            let row = file.rows + 1;
            let buf = &mut lines[filled];
            match file.next_line(buf)? {
                Line::Eof => return Ok((filled, BatchEnd::Eof)),
                Line::TooLong => {
                    let detail = "line is too long";
                    return Ok((filled, BatchEnd::Bad { row, detail }));
                }
                Line::Some => {}
            }
            if strip_newline(buf).is_none() {
                let detail = "last line is not terminated (truncated file?)";
                return Ok((filled, BatchEnd::Bad { row, detail }));
            }
            buf.pop();
            filled += 1;
        }
        Ok((filled, BatchEnd::Full))
    }

    /// Checks 8-12 of one record read from `row`, then what later checks need of it.
    fn check_record(
        &mut self,
        row: u64,
        record: &Record,
        prepared: &Prepared,
    ) -> Result<(), PackageError> {
        self.count += 1;
        if self.files.receipts.is_some() {
            self.recorded_at
                .push((record.chain_seq.get(), record.recorded_at));
        }
        self.check_selection(row, record);
        self.check_link(row, record, prepared.hmac);
        let leaf = self.check_tree(row, record, prepared.leaf);
        self.check_proof(record.chain_seq, &leaf)?;

        // For check 14: the SIGNATURE records among the exported ones, and (partial exports)
        // which records were exported.
        if let Some((target, m)) = Manifestation::from_signature_record(record) {
            self.signed.entry(target).or_default().push(m);
        }
        if !self.whole {
            self.exported.insert(short(&record.checksum));
        }

        self.check_renderings(record, prepared)?;
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
    fn check_link(&mut self, row: u64, record: &Record, hmac: Option<Hmac>) {
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
            let pushed = match hmac {
                Some(verdict) => v.push_with_verdict(record, verdict),
                None => v.push(record),
            };
            if let Err(e) = pushed {
                f.fail(
                    RECORDS_JSONL,
                    Some(row),
                    Some(e.seq.get()),
                    "chain",
                    e.to_string(),
                );
            }
        } else if let Some(keys) = keys {
            let verdict = hmac.unwrap_or_else(|| hmac_verdict(record, keys, &mut self.buf.scratch));
            match verdict {
                Hmac::Holds => {}
                Hmac::Mismatch => at(
                    f,
                    "hmac",
                    "checksum mismatch (record altered or forged)".into(),
                ),
                Hmac::UnknownKey => at(f, "hmac", format!("unknown key {}", record.key_id)),
            }
        }
    }

    /// Adds the record to the Merkle tree and the rows digest; whole-trail exports: check 10,
    /// the tree over records `1..=n` equals every anchor's tree head at seq n. Returns the
    /// record's leaf hash.
    fn check_tree(&mut self, row: u64, record: &Record, leaf: Checksum) -> Checksum {
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
    fn check_renderings(
        &mut self,
        record: &Record,
        prepared: &Prepared,
    ) -> Result<(), PackageError> {
        let seq = record.chain_seq;
        let f = &mut self.f;
        let other = &mut self.buf.other;
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
                    let expected = &prepared.json_prefix;
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
                    let expected = &prepared.csv_prefix;
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
