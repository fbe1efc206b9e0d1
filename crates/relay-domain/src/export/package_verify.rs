//! The streaming verifier of an export package: every digest, the seal, the chain links (and
//! HMACs with the trail key), Merkle proofs, the renderings, and the notary anchors.
//!
//! Memory does not grow with the package: `records.jsonl` and the renderings are read line by
//! line in lockstep, the Merkle root is accumulated in O(log n), and only the anchors and the
//! (few) rendered signatures awaiting their SIGNATURE record are held.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, BufRead, Read};

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::manifest::{ExportManifest, ManifestError, RowsDigest, parse_sealed_manifest};
use super::render::{
    CSV_HEADER, JSON_OPEN, Manifestation, signatures_cell, write_csv_prefix, write_json_prefix,
};
use super::{
    ANCHORS_JSON, EXPORT_FORMAT, MANIFEST_FILE, MAX_ANCHORS_BYTES, MAX_LINE_BYTES, PACKAGE_FILES,
    PROOFS_JSONL, RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL,
};
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

/// Everything the verifier found.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// The manifest as read.
    pub manifest: ExportManifest,
    /// The seal key's fingerprint as written in the manifest.
    pub fingerprint: String,
    /// Records read from `records.jsonl`.
    pub records: u64,
    /// Whether HMACs were recomputed.
    pub hmac_checked: bool,
    /// Checks that held.
    pub passed: Vec<PassedCheck>,
    /// Checks that failed.
    pub findings: Vec<Finding>,
}

impl PackageReport {
    /// Whether every check held.
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
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

/// A rendered signature awaiting its SIGNATURE record further down `records.jsonl`.
struct PendingSignature {
    row_seq: u64,
    target: Checksum,
    manifestation: Manifestation,
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
        Some(_) => f.pass("seal key", "fingerprint matches the expected one"),
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

    let mut line = Vec::with_capacity(4096);
    let mut other = Vec::with_capacity(4096);
    let mut expected = Vec::with_capacity(4096);
    let mut scratch = Vec::with_capacity(4096);
    if let Some(c) = csv.as_mut() {
        match c.next_line(&mut other)? {
            Line::Some if other == CSV_HEADER.as_bytes() => {}
            _ => f.fail(
                RECORDS_CSV,
                Some(0),
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
    let mut pending: HashMap<u64, Vec<PendingSignature>> = HashMap::new();
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

        // A SIGNATURE record that some rendered row announced: the rendering must match it.
        if let Some(waiting) = pending.remove(&seq.get()) {
            let actual = Manifestation::from_signature_record(&record);
            for w in waiting {
                let ok = actual
                    .as_ref()
                    .is_some_and(|(t, m)| *t == w.target && *m == w.manifestation);
                if !ok {
                    f.fail(
                        RECORDS_JSON,
                        None,
                        Some(w.row_seq),
                        "signature",
                        format!("the rendered signature differs from SIGNATURE record {seq}"),
                    );
                }
            }
        }

        // Renderings: the record's columns must be byte-identical to a re-rendering.
        let mut json_signatures: Option<Vec<Manifestation>> = None;
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
                        Some(sigs) => match serde_json::from_slice::<Vec<Manifestation>>(sigs) {
                            Ok(list) => {
                                for m in &list {
                                    if m.signature_seq > seq {
                                        pending.entry(m.signature_seq.get()).or_default().push(
                                            PendingSignature {
                                                row_seq: seq.get(),
                                                target: record.checksum,
                                                manifestation: m.clone(),
                                            },
                                        );
                                    } else {
                                        fail(
                                            &mut f,
                                            "a signature is older than the record it signs",
                                        );
                                    }
                                }
                                json_signatures = Some(list);
                                rows_compared.1 += 1;
                            }
                            Err(e) => fail(&mut f, &format!("signatures column: {e}")),
                        },
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
                            if let Some(list) = &json_signatures {
                                scratch.clear();
                                super::render::write_csv_cell(&mut scratch, &signatures_cell(list));
                                if cell != scratch.as_slice() {
                                    fail(&mut f, "signatures column differs from records.json");
                                }
                            }
                            rows_compared.0 += 1;
                        }
                    }
                }
                Line::Eof => fail(&mut f, "row missing"),
                Line::TooLong => fail(&mut f, "row is too long"),
            }
        }
        last = Some((seq, record.checksum));
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
        for (sig_seq, waiting) in &pending {
            if contiguous && *sig_seq <= manifest.range.to_seq.get() {
                for w in waiting {
                    f.fail(RECORDS_JSON, None, Some(w.row_seq), "signature", format!("rendered signature names SIGNATURE record {sig_seq}, which is not in the export"));
                }
            }
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

    Ok(PackageReport {
        fingerprint: parsed.seal.fingerprint.chars().take(64).collect(),
        records: count,
        hmac_checked: options.keys.is_some(),
        manifest,
        passed: f.passed,
        findings: f.list,
    })
}
