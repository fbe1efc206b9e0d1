//! The streaming verifier of an export package: every digest, the seal, the chain links (and
//! HMACs with the trail key), Merkle proofs, the renderings and the signatures they show, and
//! the notary anchors. The check order is normative (docs/spec/export.md §4.1), so the first
//! failure is the same in every conforming verifier.
//!
//! Memory does not grow with the package: `records.jsonl` and the renderings are read line by
//! line in lockstep, the Merkle root is accumulated in O(log n), and only the anchors, the
//! SIGNATURE records and the rows that render signatures (few) are held; a partial export also
//! holds 8 bytes per exported record, to know which records a SIGNATURE record may sign, and a
//! package with `receipts.jsonl` 16 bytes per exported record (its seq and `recorded_at`), to
//! recompute each receipt's late flag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, Read};

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::manifest::{ExportManifest, ManifestError, RowsDigest, parse_sealed_manifest};
use super::render::{
    CSV_HEADER, JSON_OPEN, Manifestation, signatures_cell, write_csv_prefix, write_json_prefix,
    write_json_signatures,
};
use super::trust::PinnedKey;
use super::{
    ANCHORS_JSON, EXPORT_FORMAT, MANIFEST_FILE, MAX_ANCHORS_BYTES, MAX_LINE_BYTES, PACKAGE_FILES,
    PROOFS_JSONL, RECEIPTS_JSONL, RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL,
};
use crate::canonical::{EVENT_DOMAIN_TAG, write_canonical};
use crate::chain::checksum_with_buf;
use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::keys::KeyRing;
use crate::merkle::{MerkleAccumulator, record_leaf_hash, verify_inclusion};
use crate::ports::Anchor;
use crate::record::{Payload, Record};
use crate::timestamp::{TimeLabel, Timestamp};
use crate::verify::ChainVerifier;

/// What the verifier is given besides the package.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// The trail keys, to recompute every HMAC (without them, links only).
    pub keys: Option<&'a KeyRing>,
    /// The seal key fingerprint the auditor expects (from the relay's `_relay` trail).
    pub expect_fingerprint: Option<&'a str>,
}

/// The package's files, opened by the caller. A file absent from the package is `None`.
pub struct PackageInputs<R> {
    /// The bytes of `manifest.json`.
    pub manifest: Vec<u8>,
    /// The bytes of `anchors.json`.
    pub anchors: Option<Vec<u8>>,
    /// `records.jsonl`.
    pub records_jsonl: Option<R>,
    /// `records.csv`.
    pub records_csv: Option<R>,
    /// `records.json`.
    pub records_json: Option<R>,
    /// `proofs.jsonl`.
    pub proofs_jsonl: Option<R>,
    /// `receipts.jsonl` (server of record packages only).
    pub receipts_jsonl: Option<R>,
    /// Names of any other entries found in the package (refused: not covered by the seal).
    pub other_entries: Vec<String>,
}

/// Why a package could not be verified at all (as opposed to a check failing).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PackageError {
    /// `manifest.json` is unreadable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest is of a format this verifier does not know.
    #[error("manifest.json has format {0:?}; this verifier reads {EXPORT_FORMAT:?}")]
    UnsupportedFormat(String),
    /// A file could not be read.
    #[error("cannot read {file}")]
    Io {
        /// The file.
        file: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A check that failed: which file, which row (1-based line or CSV row), which seq, which check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The package file at fault.
    pub file: String,
    /// The row (line of JSONL / JSON, data row of CSV), if one is at fault.
    pub row: Option<u64>,
    /// The record's chain_seq, if known.
    pub seq: Option<u64>,
    /// The check that failed (`sha256`, `seal`, `chain`, `merkle`, `anchor`, `rendering`, ...).
    pub check: &'static str,
    /// What was wrong.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (chain_seq {seq})")?;
        }
        write!(f, ": {} check failed: {}", self.check, self.detail)
    }
}

/// A check that held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedCheck {
    /// The check.
    pub check: &'static str,
    /// What it covered.
    pub detail: String,
}

/// What `receipts.jsonl` says about the exported records' time of receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptSummary {
    /// Lines read (exported records with a time of receipt).
    pub receipts: u64,
    /// Records the server of record received late.
    pub late: u64,
    /// The threshold of the last line, in seconds.
    pub late_after_secs: Option<u64>,
}

/// Where a package comes from, as far as the auditor's pins say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The seal key is one the auditor pinned (`--expect-fingerprint`, a trust file entry).
    Pinned(String),
    /// No pin was given: the package is intact, but anyone could have sealed it.
    Unpinned,
}

/// The verdict on a package (exit codes of `relay-verify`: 0, 3, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held and the seal key is pinned.
    Verified,
    /// Every check held, but no pin ties the seal key to an organisation's relay.
    IntactUnpinned,
    /// At least one check failed (including a seal key that is not the pinned one).
    NotVerified,
}

/// Everything the verifier found.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// The manifest as read.
    pub manifest: ExportManifest,
    /// The seal key's fingerprint as written in the manifest.
    pub fingerprint: String,
    /// The seal's public key as written in the manifest (hex).
    pub seal_public_key: String,
    /// Whether the seal key is pinned by the auditor.
    pub origin: Origin,
    /// Records read from `records.jsonl`.
    pub records: u64,
    /// Whether HMACs were recomputed.
    pub hmac_checked: bool,
    /// With `receipts.jsonl`: how many exported records have a time of receipt, how many of
    /// them the server received late, and the threshold it judged with (seconds); `None`
    /// without it (edge packages).
    pub receipts: Option<ReceiptSummary>,
    /// Checks that held.
    pub passed: Vec<PassedCheck>,
    /// Checks that failed.
    pub findings: Vec<Finding>,
}

impl PackageReport {
    /// Whether every check held (the package is intact; see [`PackageReport::verdict`] for origin).
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }

    /// Checks the seal key against the auditor's pins: one matching pin makes the origin
    /// [`Origin::Pinned`]; pins given but none matching is a `seal key` failure. No pins leave
    /// the origin as it is.
    pub fn pin(&mut self, pins: &[PinnedKey]) {
        if pins.is_empty() {
            return;
        }
        match pins
            .iter()
            .find(|p| p.matches(&self.fingerprint, &self.seal_public_key))
        {
            Some(p) if self.seal_holds() => {
                self.passed.push(PassedCheck {
                    check: "seal key",
                    detail: format!("the seal key is pinned: {p}"),
                });
                self.origin = Origin::Pinned(p.to_string());
            }
            Some(_) => {}
            None => self.findings.insert(
                usize::from(self.findings.first().is_some_and(|f| f.check == "seal")),
                Finding {
                    file: MANIFEST_FILE.to_owned(),
                    row: None,
                    seq: None,
                    check: "seal key",
                    detail: format!(
                        "sealed by key {}, which is not among the {} pinned key(s)",
                        self.fingerprint,
                        pins.len()
                    ),
                },
            ),
        }
    }

    fn seal_holds(&self) -> bool {
        !self.findings.iter().any(|f| f.check == "seal")
    }

    /// The verdict: [`Verdict::Verified`] only when every check held and the key is pinned.
    pub fn verdict(&self) -> Verdict {
        match (&self.origin, self.holds()) {
            (_, false) => Verdict::NotVerified,
            (Origin::Pinned(_), true) => Verdict::Verified,
            (Origin::Unpinned, true) => Verdict::IntactUnpinned,
        }
    }
}

/// `records.jsonl` line: a record with its payload kept as raw text (bound by the Merkle tree
/// and the HMAC, so it is not re-canonicalized).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
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
    fn into_record(self) -> Result<Record, String> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofLine {
    seq: ChainSeq,
    proof: Vec<Checksum>,
}

/// Reads lines of one file, hashing every byte, with a length limit.
struct HashedLines<R> {
    file: &'static str,
    inner: R,
    hasher: Sha256,
    bytes: u64,
    rows: u64,
    /// Set once the file is unreadable line-wise (too long a line); the rest is only hashed.
    broken: bool,
}

enum Line {
    Some,
    Eof,
    TooLong,
}

impl<R: BufRead> HashedLines<R> {
    fn new(file: &'static str, inner: R) -> Self {
        Self {
            file,
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            rows: 0,
            broken: false,
        }
    }

    fn io(&self, source: io::Error) -> PackageError {
        PackageError::Io {
            file: self.file,
            source,
        }
    }

    /// Appends the next line (with its `\n`) to `buf`.
    fn append_line(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        let start = buf.len();
        let room = (MAX_LINE_BYTES + 1).saturating_sub(start) as u64;
        let n = (&mut self.inner)
            .take(room)
            .read_until(b'\n', buf)
            .map_err(|e| self.io(e))?;
        self.hasher.update(&buf[start..]);
        self.bytes += n as u64;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if buf.len() > MAX_LINE_BYTES {
            self.broken = true;
            return Ok(Line::TooLong);
        }
        Ok(Line::Some)
    }

    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        buf.clear();
        let line = self.append_line(buf)?;
        if matches!(line, Line::Some) {
            self.rows += 1;
        }
        Ok(line)
    }

    /// The next CSV record, which may span lines inside quotes.
    fn next_csv_row(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        buf.clear();
        loop {
            match self.append_line(buf)? {
                Line::Some => {}
                Line::Eof if buf.is_empty() => return Ok(Line::Eof),
                Line::Eof => break,
                Line::TooLong => return Ok(Line::TooLong),
            }
            if buf.iter().filter(|b| **b == b'"').count() % 2 == 0 {
                break;
            }
        }
        self.rows += 1;
        Ok(Line::Some)
    }

    /// Hashes the rest of the file; returns how many more lines it held.
    fn drain(&mut self) -> Result<u64, PackageError> {
        let mut extra = 0u64;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = self.inner.read(&mut chunk).map_err(|e| self.io(e))?;
            if n == 0 {
                return Ok(extra);
            }
            self.hasher.update(&chunk[..n]);
            self.bytes += n as u64;
            extra += chunk[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }

    fn finish(self) -> (Checksum, u64) {
        (Checksum(self.hasher.finalize().into()), self.bytes)
    }
}

struct Findings {
    list: Vec<Finding>,
    passed: Vec<PassedCheck>,
}

impl Findings {
    fn fail(
        &mut self,
        file: &str,
        row: Option<u64>,
        seq: Option<u64>,
        check: &'static str,
        detail: impl Into<String>,
    ) {
        // One finding per (file, check) is enough to name the fault; a hostile package could
        // otherwise make the report as large as itself.
        if self.list.iter().any(|f| f.file == file && f.check == check) {
            return;
        }
        self.list.push(Finding {
            file: file.to_owned(),
            row,
            seq,
            check,
            detail: detail.into(),
        });
    }

    fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.passed.push(PassedCheck {
            check,
            detail: detail.into(),
        });
    }

    fn has(&self, file: &str) -> bool {
        self.list.iter().any(|f| f.file == file)
    }
}

fn strip_newline(line: &[u8]) -> Option<&[u8]> {
    line.strip_suffix(b"\n")
}

/// The signatures rendered on one row (kept only for rows that render at least one), compared
/// at the end with the SIGNATURE records of the package that name the row.
#[derive(Default)]
struct RenderedSignatures {
    row_seq: u64,
    json_row: Option<u64>,
    json: Vec<u8>,
    csv_row: Option<u64>,
    csv: Vec<u8>,
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

/// Checks that a `records.jsonl` line is byte-identical to its canonical layout: the RFC 8785
/// form of the record without `checksum`, with `,"checksum":"<hex>"` before the closing brace,
/// and a payload already in RFC 8785 form. One rule, so two verifiers cannot disagree.
fn check_line_layout(text: &[u8], record: &Record, buf: &mut Vec<u8>) -> Result<(), String> {
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

/// Compares one row's rendered signatures with the SIGNATURE records naming it.
fn compare_signatures(
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
    write_json_signatures(records, buf);
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
        super::render::write_csv_cell(buf, &signatures_cell(records));
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
fn short(c: &Checksum) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.0[..8]);
    u64::from_le_bytes(b)
}

/// Verifies a package; `Err` only when it cannot be verified at all (exit 2), otherwise the
/// report says which checks held and which failed.
pub fn verify_package<R: BufRead>(
    inputs: PackageInputs<R>,
    options: &VerifyOptions<'_>,
) -> Result<PackageReport, PackageError> {
    let parsed = parse_sealed_manifest(&inputs.manifest)?;
    let manifest = parsed.manifest;
    if manifest.format != EXPORT_FORMAT {
        return Err(PackageError::UnsupportedFormat(
            manifest.format.chars().take(64).collect(),
        ));
    }
    let mut f = Findings {
        list: Vec::new(),
        passed: Vec::new(),
    };

    // 1. The seal, and the key it names.
    match parsed.seal.verify(&parsed.signing_bytes) {
        Ok(public) => f.pass(
            "seal",
            format!(
                "Ed25519 signature over the manifest holds (key {})",
                public.fingerprint()
            ),
        ),
        Err(e) => f.fail(MANIFEST_FILE, None, None, "seal", e.to_string()),
    }
    let mut origin = Origin::Unpinned;
    match options.expect_fingerprint {
        Some(expected) if !expected.eq_ignore_ascii_case(&parsed.seal.fingerprint) => f.fail(
            MANIFEST_FILE,
            None,
            None,
            "seal key",
            format!(
                "sealed by key {} but {expected} was expected",
                parsed.seal.fingerprint
            ),
        ),
        Some(expected) => {
            f.pass("seal key", "fingerprint matches the expected one");
            if !f.has(MANIFEST_FILE) {
                origin = Origin::Pinned(expected.to_ascii_lowercase());
            }
        }
        None => {}
    }

    // 2. The package holds exactly the files the manifest lists.
    for name in manifest.rendered_sha256.keys() {
        if name == MANIFEST_FILE || !PACKAGE_FILES.contains(&name.as_str()) {
            f.fail(
                MANIFEST_FILE,
                None,
                None,
                "file list",
                format!("lists {name:?}, which is not a package file"),
            );
        }
    }
    let present = [
        (RECORDS_JSONL, inputs.records_jsonl.is_some()),
        (RECORDS_CSV, inputs.records_csv.is_some()),
        (RECORDS_JSON, inputs.records_json.is_some()),
        (PROOFS_JSONL, inputs.proofs_jsonl.is_some()),
        (ANCHORS_JSON, inputs.anchors.is_some()),
        (RECEIPTS_JSONL, inputs.receipts_jsonl.is_some()),
    ];
    for (name, is_present) in present {
        let listed = manifest.rendered_sha256.contains_key(name);
        if listed && !is_present {
            f.fail(
                name,
                None,
                None,
                "presence",
                "listed in the manifest but missing",
            );
        } else if is_present && !listed {
            f.fail(
                name,
                None,
                None,
                "presence",
                "present but not covered by the seal",
            );
        }
    }
    for other in &inputs.other_entries {
        let shown: String = other.chars().take(200).collect();
        f.fail(
            &shown,
            None,
            None,
            "presence",
            "unexpected entry in the package (not covered by the seal)",
        );
    }
    for required in [RECORDS_JSONL, ANCHORS_JSON] {
        if !manifest.rendered_sha256.contains_key(required) {
            f.fail(
                required,
                None,
                None,
                "presence",
                "required file is not in the manifest",
            );
        }
    }
    if !manifest.is_whole_trail() && !manifest.rendered_sha256.contains_key(PROOFS_JSONL) {
        f.fail(
            PROOFS_JSONL,
            None,
            None,
            "presence",
            "a partial export must carry Merkle proofs",
        );
    }
    let check_digest = |f: &mut Findings, name: &'static str, sha: Checksum, bytes: u64| {
        if let Some(expected) = manifest.rendered_sha256.get(name) {
            if expected.sha256 == sha && expected.bytes == bytes {
                f.pass("sha256", format!("{name}: {bytes} bytes, sha256 {sha}"));
            } else {
                f.fail(
                    name,
                    None,
                    None,
                    "sha256",
                    format!(
                        "file is {bytes} bytes with sha256 {sha}; the manifest says {} bytes, {}",
                        expected.bytes, expected.sha256
                    ),
                );
            }
        }
    };

    // 3. Anchors.
    let mut anchors: Vec<Anchor> = Vec::new();
    if let Some(bytes) = &inputs.anchors {
        let sha = Checksum(Sha256::digest(bytes).into());
        check_digest(&mut f, ANCHORS_JSON, sha, bytes.len() as u64);
        if bytes.len() > MAX_ANCHORS_BYTES {
            f.fail(ANCHORS_JSON, None, None, "parse", "file is too large");
        } else {
            match serde_json::from_slice::<Vec<Anchor>>(bytes) {
                Ok(list) => anchors = list,
                Err(e) => f.fail(ANCHORS_JSON, None, None, "parse", e.to_string()),
            }
        }
    }
    for (i, a) in anchors.iter().enumerate() {
        if a.trail_id != manifest.trail_id {
            f.fail(
                ANCHORS_JSON,
                Some(i as u64 + 1),
                Some(a.seq.get()),
                "anchor",
                format!(
                    "anchor of trail {} in a package of {}",
                    a.trail_id, manifest.trail_id
                ),
            );
        }
        if a.seq > manifest.head.seq {
            f.fail(
                ANCHORS_JSON,
                Some(i as u64 + 1),
                Some(a.seq.get()),
                "anchor",
                format!(
                    "anchor at chain_seq {} lies beyond the exported head {}: trail truncated",
                    a.seq, manifest.head.seq
                ),
            );
        }
    }
    let head = manifest.head;
    let head_anchor = anchors
        .iter()
        .filter(|a| a.seq == head.seq)
        .collect::<Vec<_>>();
    if head_anchor.is_empty() {
        f.fail(
            ANCHORS_JSON,
            None,
            Some(head.seq.get()),
            "anchor",
            format!(
                "no anchor covers the exported head (chain_seq {})",
                head.seq
            ),
        );
    }
    for a in &head_anchor {
        let root_ok = a.merkle_root.is_none_or(|r| r == head.merkle_root);
        if a.checksum != head.checksum || !root_ok {
            f.fail(
                ANCHORS_JSON,
                None,
                Some(head.seq.get()),
                "anchor",
                "the anchor of the head differs from the manifest's head checksum or Merkle root",
            );
        }
    }

    // 4. Records, in lockstep with the renderings and proofs.
    let whole = manifest.is_whole_trail();
    let contiguous = manifest.is_contiguous();
    let mut anchor_roots: BTreeMap<u64, Checksum> = BTreeMap::new();
    if whole {
        for a in &anchors {
            if let Some(root) = a.merkle_root {
                anchor_roots.insert(a.seq.get(), root);
            }
        }
    }
    let mut jsonl = inputs
        .records_jsonl
        .map(|r| HashedLines::new(RECORDS_JSONL, r));
    let mut csv = inputs.records_csv.map(|r| HashedLines::new(RECORDS_CSV, r));
    let mut json = inputs
        .records_json
        .map(|r| HashedLines::new(RECORDS_JSON, r));
    let mut proofs = inputs
        .proofs_jsonl
        .map(|r| HashedLines::new(PROOFS_JSONL, r));
    let receipts = inputs
        .receipts_jsonl
        .map(|r| HashedLines::new(RECEIPTS_JSONL, r));
    // With receipts: each exported record's seq and recorded_at, to judge its late flag.
    let mut recorded_at: Vec<(u64, Timestamp)> = Vec::new();

    let mut line = Vec::with_capacity(4096);
    let mut other = Vec::with_capacity(4096);
    let mut expected = Vec::with_capacity(4096);
    let mut scratch = Vec::with_capacity(4096);
    if let Some(c) = csv.as_mut() {
        match c.next_line(&mut other)? {
            Line::Some if other == CSV_HEADER.as_bytes() => {}
            _ => f.fail(
                RECORDS_CSV,
                Some(1),
                None,
                "rendering",
                "the header row is not the expected one",
            ),
        }
    }
    if let Some(j) = json.as_mut() {
        match j.next_line(&mut other)? {
            Line::Some if other == JSON_OPEN => {}
            _ => f.fail(
                RECORDS_JSON,
                Some(1),
                None,
                "rendering",
                "the file does not open with `[`",
            ),
        }
    }

    let mut verifier: Option<ChainVerifier<'_>> = None;
    let mut acc = MerkleAccumulator::new();
    let mut rows = RowsDigest::new();
    let mut count = 0u64;
    let mut last: Option<(ChainSeq, Checksum)> = None;
    // SIGNATURE records by the checksum they sign (few), the rows that render signatures (few),
    // and, in partial exports only, which checksums were exported (8 bytes per record).
    let mut signed: HashMap<Checksum, Vec<Manifestation>> = HashMap::new();
    let mut rendered: HashMap<Checksum, RenderedSignatures> = HashMap::new();
    let mut exported: HashSet<u64> = HashSet::new();
    let mut records_ok = jsonl.is_some();
    let mut proofs_checked = 0u64;
    let mut rows_compared = (0u64, 0u64);

    while let Some(lines) = jsonl.as_mut().filter(|_| records_ok) {
        let row = lines.rows + 1;
        match lines.next_line(&mut line)? {
            Line::Eof => break,
            Line::TooLong => {
                f.fail(RECORDS_JSONL, Some(row), None, "parse", "line is too long");
                records_ok = false;
                break;
            }
            Line::Some => {}
        }
        let Some(text) = strip_newline(&line) else {
            f.fail(
                RECORDS_JSONL,
                Some(row),
                None,
                "parse",
                "last line is not terminated (truncated file?)",
            );
            records_ok = false;
            break;
        };
        let record = match serde_json::from_slice::<RecordLine>(text)
            .map_err(|e| e.to_string())
            .and_then(RecordLine::into_record)
            .and_then(|r| check_line_layout(text, &r, &mut expected).map(|()| r))
        {
            Ok(r) => r,
            Err(e) => {
                f.fail(RECORDS_JSONL, Some(row), None, "parse", e);
                records_ok = false;
                break;
            }
        };
        let seq = record.chain_seq;
        let at = |f: &mut Findings, check: &'static str, detail: String| {
            f.fail(RECORDS_JSONL, Some(row), Some(seq.get()), check, detail);
        };
        count += 1;
        if receipts.is_some() {
            recorded_at.push((seq.get(), record.recorded_at));
        }

        // Selection: the record is in range, selected, and in seq order.
        if record.trail_id != manifest.trail_id {
            at(
                &mut f,
                "selection",
                format!("record of trail {}", record.trail_id),
            );
        }
        if seq < manifest.range.from_seq || seq > manifest.range.to_seq {
            at(&mut f, "selection", "outside the exported range".into());
        }
        if !manifest.filter.selects(&record) {
            at(
                &mut f,
                "selection",
                "not selected by the export filter".into(),
            );
        }
        if let Some((prev, _)) = last
            && seq <= prev
        {
            at(&mut f, "order", format!("comes after chain_seq {prev}"));
        }

        // Chain links (contiguous exports) and HMACs.
        if contiguous {
            let v = verifier.get_or_insert_with(|| {
                let mut v = match options.keys {
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
            if let Err(e) = v.push(&record) {
                f.fail(
                    RECORDS_JSONL,
                    Some(row),
                    Some(e.seq.get()),
                    "chain",
                    e.to_string(),
                );
            }
        } else if let Some(keys) = options.keys {
            match keys.get(&record.key_id) {
                Some(key)
                    if checksum_with_buf(&record, key, &mut scratch).ct_eq(&record.checksum) => {}
                Some(_) => at(
                    &mut f,
                    "hmac",
                    "checksum mismatch (record altered or forged)".into(),
                ),
                None => at(&mut f, "hmac", format!("unknown key {}", record.key_id)),
            }
        }

        // Merkle tree, rows digest, anchors' tree heads.
        let leaf = record_leaf_hash(&record, &mut scratch);
        rows.push(&leaf);
        acc.push_leaf_hash(leaf);
        if let Some(root) = anchor_roots.get(&acc.len())
            && acc.root() != *root
        {
            at(
                &mut f,
                "anchor",
                format!(
                    "the Merkle root over records 1..={} differs from the notarized one",
                    acc.len()
                ),
            );
        }
        if let Some(p) = proofs.as_mut().filter(|p| !p.broken) {
            let prow = p.rows + 1;
            match p.next_line(&mut other)? {
                Line::Some => {
                    let parsed = strip_newline(&other)
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
                                &leaf,
                                seq.get() - 1,
                                head.seq.get(),
                                &pl.proof,
                                &head.merkle_root,
                            ) {
                                proofs_checked += 1;
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

        if let Some((target, m)) = Manifestation::from_signature_record(&record) {
            signed.entry(target).or_default().push(m);
        }
        if !whole {
            exported.insert(short(&record.checksum));
        }

        // Renderings: the record's columns must be byte-identical to a re-rendering.
        let mut row_signatures = RenderedSignatures {
            row_seq: seq.get(),
            ..RenderedSignatures::default()
        };
        if let Some(j) = json.as_mut().filter(|j| !j.broken && !f.has(RECORDS_JSON)) {
            let jrow = j.rows + 1;
            let fail = |f: &mut Findings, d: &str| {
                f.fail(RECORDS_JSON, Some(jrow), Some(seq.get()), "rendering", d)
            };
            match j.next_line(&mut other)? {
                Line::Some => {
                    expected.clear();
                    write_json_prefix(&record, &mut expected);
                    let body = other
                        .strip_suffix(b",\n")
                        .or_else(|| other.strip_suffix(b"\n"))
                        .unwrap_or(&other);
                    match body
                        .strip_prefix(expected.as_slice())
                        .and_then(|rest| rest.strip_suffix(b"}"))
                    {
                        None => fail(&mut f, "row differs from the record in records.jsonl"),
                        Some(sigs) => {
                            row_signatures.json_row = Some(jrow);
                            if sigs != b"[]" {
                                row_signatures.json = sigs.to_vec();
                            }
                            rows_compared.1 += 1;
                        }
                    }
                }
                Line::Eof => fail(&mut f, "row missing"),
                Line::TooLong => fail(&mut f, "line is too long"),
            }
        }
        if let Some(c) = csv.as_mut().filter(|c| !c.broken && !f.has(RECORDS_CSV)) {
            let crow = c.rows;
            let fail = |f: &mut Findings, d: &str| {
                f.fail(RECORDS_CSV, Some(crow + 1), Some(seq.get()), "rendering", d)
            };
            match c.next_csv_row(&mut other)? {
                Line::Some => {
                    expected.clear();
                    write_csv_prefix(&record, &mut expected);
                    match other
                        .strip_prefix(expected.as_slice())
                        .and_then(|rest| rest.strip_suffix(b"\r\n"))
                    {
                        None => fail(&mut f, "row differs from the record in records.jsonl"),
                        Some(cell) => {
                            row_signatures.csv_row = Some(crow + 1);
                            row_signatures.csv = cell.to_vec();
                            rows_compared.0 += 1;
                        }
                    }
                }
                Line::Eof => fail(&mut f, "row missing"),
                Line::TooLong => fail(&mut f, "row is too long"),
            }
        }
        if !row_signatures.json.is_empty() || !row_signatures.csv.is_empty() {
            rendered.insert(record.checksum, row_signatures);
        }
        last = Some((seq, record.checksum));
    }

    // 5. Partial exports: the SIGNATURE records on exported records that are not exported
    //    themselves follow the records' proofs in proofs.jsonl, each with its own proof.
    if records_ok && let Some(p) = proofs.as_mut().filter(|p| !p.broken && !whole) {
        let mut last_evidence = 0u64;
        loop {
            let prow = p.rows + 1;
            match p.next_line(&mut other)? {
                Line::Eof => break,
                Line::TooLong => {
                    f.fail(PROOFS_JSONL, Some(prow), None, "parse", "line is too long");
                    break;
                }
                Line::Some => {}
            }
            let parsed = strip_newline(&other)
                .ok_or_else(|| "unterminated line".to_owned())
                .and_then(|t| serde_json::from_slice::<EvidenceLine>(t).map_err(|e| e.to_string()))
                .and_then(|e| {
                    let record = serde_json::from_str::<RecordLine>(e.record.get())
                        .map_err(|x| x.to_string())
                        .and_then(RecordLine::into_record)?;
                    check_line_layout(e.record.get().as_bytes(), &record, &mut expected)?;
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
            let leaf = record_leaf_hash(&record, &mut scratch);
            let in_export = record.chain_seq >= manifest.range.from_seq
                && record.chain_seq <= manifest.range.to_seq
                && manifest.filter.selects(&record);
            let signature = Manifestation::from_signature_record(&record);
            if evidence.seq != record.chain_seq || record.trail_id != manifest.trail_id {
                bad(
                    &mut f,
                    "the evidence line's seq or trail differs from its record".into(),
                );
            } else if seq <= last_evidence || in_export || record.chain_seq > head.seq {
                bad(
                    &mut f,
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
            } else if let Some(keys) = options.keys
                && !keys.get(&record.key_id).is_some_and(|k| {
                    checksum_with_buf(&record, k, &mut scratch).ct_eq(&record.checksum)
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
                    Some((target, m)) if exported.contains(&short(&target)) => {
                        signed.entry(target).or_default().push(m);
                    }
                    _ => bad(
                        &mut f,
                        "not a SIGNATURE record on an exported record".into(),
                    ),
                }
            }
            last_evidence = seq;
        }
    }

    // 6. Rendered signatures: each row renders exactly the SIGNATURE records of the package that
    //    name it, in trail order (CSV cell and JSON list alike).
    if records_ok && (csv.is_some() || json.is_some()) {
        let mut targets: Vec<(Checksum, Vec<Manifestation>)> = signed.into_iter().collect();
        targets.sort_by_key(|(_, list)| list.first().map(|m| m.signature_seq));
        for (target, mut list) in targets {
            list.sort_by_key(|m| m.signature_seq);
            let target_exported = whole || exported.contains(&short(&target));
            match rendered.remove(&target) {
                Some(row) => compare_signatures(
                    &mut f,
                    &row,
                    &list,
                    json.is_some(),
                    csv.is_some(),
                    &mut scratch,
                ),
                None if target_exported => {
                    let file = if json.is_some() {
                        RECORDS_JSON
                    } else {
                        RECORDS_CSV
                    };
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
            compare_signatures(
                &mut f,
                &row,
                &[],
                json.is_some(),
                csv.is_some(),
                &mut scratch,
            );
        }
    }

    // 5. Totals against the manifest.
    if let Some(lines) = jsonl.as_mut() {
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
        let digest = rows.finish();
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
        if acc.root() == manifest.merkle_root {
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
        if contiguous {
            match verifier.take().map(ChainVerifier::finish) {
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
        } else if options.keys.is_some() {
            f.pass("hmac", format!("{count} HMACs recomputed"));
        }
        if whole {
            if acc.root() == head.merkle_root && last.map(|(_, c)| c) == Some(head.checksum) {
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
        } else if proofs.is_some() {
            f.pass(
                "merkle proofs",
                format!(
                    "{proofs_checked} inclusion proofs against the tree head at chain_seq {}",
                    head.seq
                ),
            );
        }
    }
    if !head_anchor.is_empty() && !f.has(ANCHORS_JSON) {
        f.pass("anchors", format!("{} anchor(s); the head chain_seq {} is notarized with the same checksum and tree head", anchors.len(), head.seq));
    }

    // 6. Drain and hash every file.
    if let Some(lines) = jsonl {
        let (sha, bytes) = lines.finish();
        check_digest(&mut f, RECORDS_JSONL, sha, bytes);
    }
    for (name, file, compared) in [
        (RECORDS_CSV, csv, rows_compared.0),
        (RECORDS_JSON, json, rows_compared.1),
        (PROOFS_JSONL, proofs, proofs_checked),
    ] {
        let Some(mut lines) = file else { continue };
        let extra = lines.drain()?;
        let expected_extra = u64::from(name == RECORDS_JSON);
        if records_ok && !lines.broken && !f.has(name) && extra > expected_extra {
            f.fail(
                name,
                Some(lines.rows + 1),
                None,
                "rendering",
                "rows beyond the exported records",
            );
        }
        if name != PROOFS_JSONL && records_ok && compared == count && !f.has(name) {
            f.pass(
                "rendering",
                format!("{name}: {compared} rows match records.jsonl"),
            );
        }
        let (sha, bytes) = lines.finish();
        check_digest(&mut f, name, sha, bytes);
    }

    // 7. `receipts.jsonl`: layout, ascending seqs of exported records, each late flag as the
    // rule gives it for the record's recorded_at, then its digest.
    let mut receipt_summary = None;
    if let Some(mut lines) = receipts {
        recorded_at.sort_unstable_by_key(|(s, _)| *s);
        let mut summary = ReceiptSummary {
            receipts: 0,
            late: 0,
            late_after_secs: None,
        };
        let mut prev = 0u64;
        loop {
            let row = lines.rows + 1;
            match lines.next_line(&mut line)? {
                Line::Eof => break,
                Line::TooLong => {
                    f.fail(RECEIPTS_JSONL, Some(row), None, "parse", "line is too long");
                    break;
                }
                Line::Some => {}
            }
            let Some(text) = strip_newline(&line) else {
                f.fail(
                    RECEIPTS_JSONL,
                    Some(row),
                    None,
                    "parse",
                    "last line is not terminated (truncated file?)",
                );
                break;
            };
            let receipt = match super::receipts::ReceiptLine::parse(text) {
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
        check_digest(&mut f, RECEIPTS_JSONL, sha, bytes);
        receipt_summary = Some(summary);
    }

    Ok(PackageReport {
        fingerprint: parsed.seal.fingerprint.chars().take(64).collect(),
        seal_public_key: parsed.seal.public_key.chars().take(64).collect(),
        origin,
        records: count,
        hmac_checked: options.keys.is_some(),
        receipts: receipt_summary,
        manifest,
        passed: f.passed,
        findings: f.list,
    })
}
