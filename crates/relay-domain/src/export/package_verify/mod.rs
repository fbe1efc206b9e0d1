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
//!
//! The verifier is a `PackageVerifier` walked through the checks of docs/spec/export.md §4 in
//! their normative order, one method per check, each in the submodule of its subject:
//!
//! - `manifest.rs`: the seal, the pinned key, and which files the package holds (checks 2-4);
//! - `anchors.rs`: `anchors.json` (check 5);
//! - `records.rs`: the renderings' openings and the walk of `records.jsonl` with its selection,
//!   chain, Merkle and rendering checks (checks 6-12);
//! - `proofs.rs`: each record's inclusion proof and the signature evidence of partial exports
//!   (checks 11 and 13);
//! - `signatures.rs`: the rendered signatures against the SIGNATURE records (check 14);
//! - `totals.rs`: the totals against the manifest and every file's digest (checks 15-16);
//! - `receipts.rs`: `receipts.jsonl` (check 17);
//! - `access_review.rs`: `access_review.json` (check 18).
//!
//! `lines.rs` reads the files line by line while hashing them, and `findings.rs` collects what
//! held and what failed.

mod access_review;
mod anchors;
mod findings;
pub(crate) mod line_read;
mod lines;
mod manifest;
mod proofs;
mod receipts;
mod records;
mod signatures;
mod totals;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead};

use thiserror::Error;

use self::findings::Findings;
use self::lines::HashedLines;
use self::signatures::RenderedSignatures;
use super::manifest::{ExportManifest, ManifestError, RowsDigest, parse_sealed_manifest};
use super::render::Manifestation;
use super::seal::Seal;
use super::trust::PinnedKey;
use super::{
    EXPORT_FORMAT, EXPORT_FORMAT_V1, MANIFEST_FILE, PROOFS_JSONL, RECEIPTS_JSONL, RECORDS_CSV,
    RECORDS_JSON, RECORDS_JSONL,
};
use crate::ids::{ChainSeq, Checksum};
use crate::keys::KeyRing;
use crate::merkle::MerkleAccumulator;
use crate::ports::Anchor;
use crate::timestamp::Timestamp;
use crate::verify::ChainVerifier;

/// What the verifier is given besides the package.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// The trail keys, to recompute every HMAC (without them, links only).
    pub keys: Option<&'a KeyRing>,
    /// The seal key fingerprint the auditor expects (from the relay's `_relay` trail).
    pub expect_fingerprint: Option<&'a str>,
    /// Threads for the per-record work of the walk of `records.jsonl` (parsing, canonical
    /// layout, leaf hashes, HMACs, expected renderings); 0 or 1: the calling thread only. The
    /// ordered checks stay on the calling thread, so the report is the same for any number.
    pub threads: usize,
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
    /// The bytes of `access_review.json` (access review packages of `_relay` only).
    pub access_review_json: Option<Vec<u8>>,
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
    #[error(
        "manifest.json has format {0:?}; this verifier reads {EXPORT_FORMAT:?} and {EXPORT_FORMAT_V1:?}"
    )]
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

/// Verifies a package; `Err` only when it cannot be verified at all (exit 2), otherwise the
/// report says which checks held and which failed.
pub fn verify_package<R: BufRead + Send>(
    inputs: PackageInputs<R>,
    options: &VerifyOptions<'_>,
) -> Result<PackageReport, PackageError> {
    // Check 1: the manifest parses strictly and is of a known format, or nothing is verified.
    let parsed = parse_sealed_manifest(&inputs.manifest)?;
    let manifest = parsed.manifest;
    if crate::export::FormatVersion::from_format(&manifest.format).is_none() {
        return Err(PackageError::UnsupportedFormat(
            manifest.format.chars().take(64).collect(),
        ));
    }
    let PackageInputs {
        manifest: _,
        anchors,
        records_jsonl,
        records_csv,
        records_json,
        proofs_jsonl,
        receipts_jsonl,
        access_review_json,
        other_entries,
    } = inputs;
    // With several threads each file is read and hashed on a thread of its own; the threads
    // end with the scope, after the verifier (and so their readers) is dropped.
    std::thread::scope(|scope| {
        let open = |name: &'static str, r: Option<R>| {
            r.map(|r| {
                if options.threads > 1 {
                    HashedLines::piped(name, r, scope)
                } else {
                    HashedLines::new(name, r)
                }
            })
        };
        let files = Files {
            jsonl: open(RECORDS_JSONL, records_jsonl),
            csv: open(RECORDS_CSV, records_csv),
            json: open(RECORDS_JSON, records_json),
            proofs: open(PROOFS_JSONL, proofs_jsonl),
            receipts: open(RECEIPTS_JSONL, receipts_jsonl),
        };
        let mut v = PackageVerifier::new(manifest, options.keys, options.threads, files);

        // The checks, in the normative order of docs/spec/export.md §4 (the first failure is
        // the same in every conforming verifier, so this order must not change).
        v.check_seal(
            &parsed.seal,
            &parsed.signing_bytes,
            options.expect_fingerprint,
        );
        v.check_file_list(
            anchors.is_some(),
            access_review_json.is_some(),
            &other_entries,
        );
        v.check_anchors(anchors.as_deref());
        v.check_rendering_openings()?;
        v.check_records()?;
        v.check_evidence()?;
        v.check_rendered_signatures();
        v.check_totals()?;
        v.pass_anchors();
        v.check_file_digests()?;
        let receipts = v.check_receipts()?;
        v.check_access_review(access_review_json.as_deref());
        Ok(v.into_report(&parsed.seal, receipts))
    })
}

/// The package's line-read files (`anchors.json` is read whole by [`PackageVerifier::check_anchors`]).
struct Files<R> {
    /// `records.jsonl`.
    jsonl: Option<HashedLines<R>>,
    /// `records.csv`.
    csv: Option<HashedLines<R>>,
    /// `records.json`.
    json: Option<HashedLines<R>>,
    /// `proofs.jsonl`.
    proofs: Option<HashedLines<R>>,
    /// `receipts.jsonl`.
    receipts: Option<HashedLines<R>>,
}

/// Scratch buffers reused for every line, so the walk does not allocate per record.
struct Buffers {
    /// The current `records.jsonl` (or `receipts.jsonl`) line.
    line: Vec<u8>,
    /// The current line of another file (a rendering or `proofs.jsonl`).
    other: Vec<u8>,
    /// A re-rendering or canonical layout to compare a line with.
    expected: Vec<u8>,
    /// Scratch space for canonical encodings (HMACs, leaf hashes, signature cells).
    scratch: Vec<u8>,
}

/// One verification of one package: the manifest, the files, what the checks found so far, and
/// the state the record walk carries from one check to the next. Each check of
/// docs/spec/export.md §4 is a method, in the submodule of its subject, adding its own findings.
struct PackageVerifier<'k, R> {
    /// The manifest as read.
    manifest: ExportManifest,
    /// Whether the package exports the whole trail up to its head.
    whole: bool,
    /// Whether the exported records are a contiguous run of the chain (no filter).
    contiguous: bool,
    /// The trail keys, to recompute HMACs (`None`: links only).
    keys: Option<&'k KeyRing>,
    /// Threads for the per-record work of the walk ([`VerifyOptions::threads`]).
    threads: usize,
    /// What held and what failed so far.
    f: Findings,
    /// Whether the seal key is the one the auditor expected.
    origin: Origin,
    /// The parsed `anchors.json` (empty when absent or unreadable).
    anchors: Vec<Anchor>,
    /// Whether some anchor lies at the exported head's seq.
    head_anchored: bool,
    /// The seal key, once the seal held: it also signs the anchors' checkpoints.
    seal_key: Option<super::SealPublicKey>,
    /// What the anchors' checkpoints and consistency links proved.
    history: crate::anchor_history::AnchorHistory,
    /// The files read line by line.
    files: Files<R>,
    /// Scratch buffers.
    buf: Buffers,

    // The record walk (checks 7-12), and what later checks need of it.
    /// Whether `records.jsonl` is present and every line so far parsed (a `parse` failure stops
    /// the walk and skips checks 13-15).
    records_ok: bool,
    /// Records read.
    count: u64,
    /// The seq and checksum of the last record read.
    last: Option<(ChainSeq, Checksum)>,
    /// The chain verifier of contiguous exports, created at the first record.
    chain: Option<ChainVerifier<'k>>,
    /// The Merkle tree over the records read.
    acc: MerkleAccumulator,
    /// The rows digest over the records read.
    rows: RowsDigest,
    /// Whole-trail exports: each anchor's notarized tree head by its seq.
    anchor_roots: BTreeMap<u64, Checksum>,
    /// SIGNATURE records by the checksum they sign (few).
    signed: HashMap<Checksum, Vec<Manifestation>>,
    /// The rows that render signatures (few), by their record's checksum.
    rendered: HashMap<Checksum, RenderedSignatures>,
    /// Partial exports only: which checksums were exported (8 bytes per record).
    exported: HashSet<u64>,
    /// With receipts: each exported record's seq and recorded_at, to judge its late flag.
    recorded_at: Vec<(u64, Timestamp)>,
    /// Inclusion proofs in `proofs.jsonl` that held.
    proofs_checked: u64,
    /// Rows of `records.csv` that matched their record.
    csv_rows: u64,
    /// Rows of `records.json` that matched their record.
    json_rows: u64,
}

impl<'k, R: BufRead> PackageVerifier<'k, R> {
    /// A verifier of the package of `manifest`, before any check.
    fn new(
        manifest: ExportManifest,
        keys: Option<&'k KeyRing>,
        threads: usize,
        files: Files<R>,
    ) -> Self {
        let records_ok = files.jsonl.is_some();
        Self {
            whole: manifest.is_whole_trail(),
            contiguous: manifest.is_contiguous(),
            manifest,
            keys,
            threads,
            f: Findings::default(),
            origin: Origin::Unpinned,
            anchors: Vec::new(),
            head_anchored: false,
            seal_key: None,
            history: Default::default(),
            files,
            buf: Buffers {
                line: Vec::with_capacity(4096),
                other: Vec::with_capacity(4096),
                expected: Vec::with_capacity(4096),
                scratch: Vec::with_capacity(4096),
            },
            records_ok,
            count: 0,
            last: None,
            chain: None,
            acc: MerkleAccumulator::new(),
            rows: RowsDigest::new(),
            anchor_roots: BTreeMap::new(),
            signed: HashMap::new(),
            rendered: HashMap::new(),
            exported: HashSet::new(),
            recorded_at: Vec::new(),
            proofs_checked: 0,
            csv_rows: 0,
            json_rows: 0,
        }
    }

    /// The report, once every check ran.
    fn into_report(self, seal: &Seal, receipts: Option<ReceiptSummary>) -> PackageReport {
        PackageReport {
            fingerprint: seal.fingerprint.chars().take(64).collect(),
            seal_public_key: seal.public_key.chars().take(64).collect(),
            origin: self.origin,
            records: self.count,
            hmac_checked: self.keys.is_some(),
            receipts,
            manifest: self.manifest,
            passed: self.f.passed,
            findings: self.f.list,
        }
    }

    /// Compares a file's SHA-256 and length with the manifest's `rendered_sha256` (files it
    /// does not list are already reported by check 4).
    fn check_digest(&mut self, name: &'static str, sha: Checksum, bytes: u64) {
        if let Some(expected) = self.manifest.rendered_sha256.get(name) {
            if expected.sha256 == sha && expected.bytes == bytes {
                self.f
                    .pass("sha256", format!("{name}: {bytes} bytes, sha256 {sha}"));
            } else {
                self.f.fail(
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
    }
}
