//! Writing sealed export packages (R5): the files, the optional zip, the head anchor and the
//! `EXPORT` event. The package format and every rule are in `relay_domain::export`; this module
//! only reads the store and writes files.
//!
//! One pass over the store: the trail's `SIGNATURE` records are read first (a filtered read),
//! then the whole trail `1..=head` is read once, verified, hashed and rendered as it streams.
//! Memory: a whole-trail export holds O(log n) Merkle state; a filtered or partial one holds the
//! leaf hashes of the trail to build inclusion proofs (2 × 32 bytes per record, about 64 MB for
//! a million records). Records themselves stream.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use relay_domain::export::render::{
    CSV_HEADER, JSON_CLOSE_AFTER_ROW, JSON_CLOSE_EMPTY, JSON_OPEN, JSON_SEPARATOR,
};
use relay_domain::export::{
    ACCESS_REVIEW_JSON, ANCHORS_JSON, EXPORT_FORMAT, ExportFilter, ExportManifest, FileDigest,
    GeneratedBy, MANIFEST_FILE, ManifestError, Manifestation, PROOFS_JSONL, PreparedPage,
    RECEIPTS_JSONL, RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL, ReceiptLine, Renderings, RowsDigest,
    SealError, SealKey, SealPublicKey, SeqRange, SignatureIndex, TrailHeadSnapshot,
    sealed_manifest_json,
};
use relay_domain::merkle::{MerkleAccumulator, MerkleTree};
use relay_domain::ports::{
    Lateness, Notary, NotaryError, ReceiptError, ReceiptStore, RecordStore, RecordStoreError,
    SecretError, SecretName, SecretProvider, SecretProviderExt, TimeSource, TimeSourceError,
};
use relay_domain::verify::{VERIFY_PAGE, VerifyFailure};
use relay_domain::{
    AppendError, ChainSeq, ChainVerifier, Checksum, EventKind, KeyRing, Record, Subject, TrailId,
};
use sha2::{Digest, Sha256};

use crate::journal::Journal;

mod dir_exporter;
mod writer;

pub use dir_exporter::DirExporter;
pub use writer::{export_package, export_package_with_receipts};

/// Which human-readable renderings to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// `records.csv` only.
    Csv,
    /// `records.json` only.
    Json,
    /// Both.
    #[default]
    Both,
}

impl ExportFormat {
    fn csv(self) -> bool {
        matches!(self, Self::Csv | Self::Both)
    }
    fn json(self) -> bool {
        matches!(self, Self::Json | Self::Both)
    }
    /// The name used in events and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Both => "both",
        }
    }
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The trail.
    pub trail: TrailId,
    /// First seq (default 1).
    pub from_seq: Option<ChainSeq>,
    /// Last seq (default and at most the head).
    pub to_seq: Option<ChainSeq>,
    /// Which records of the range.
    pub filter: ExportFilter,
    /// Which renderings.
    pub format: ExportFormat,
    /// The package directory to create (must not exist or be empty); with `zip`, the zip file
    /// (`.zip` is appended when missing).
    pub out: PathBuf,
    /// Write one zip file instead of a directory.
    pub zip: bool,
    /// Who asked.
    pub generated_by: GeneratedBy,
    /// The periodic access review to carry as `access_review.json` (only in a whole export of
    /// `_relay`; docs/spec/export.md §2), sealed like every other file.
    pub access_review: Option<Vec<u8>>,
}

/// The ports an export reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct ExportServices<'a> {
    /// Where the records are.
    pub store: &'a dyn RecordStore,
    /// Where anchors are read from and the head is anchored if it is not yet.
    pub notary: &'a dyn Notary,
    /// Holds the seal key (`export-seal`, created on first use).
    pub secrets: &'a dyn SecretProvider,
    /// The trail keys, to verify the trail before exporting it.
    pub keys: &'a KeyRing,
    /// Stamps `generated_at` and the head anchor.
    pub clock: &'a dyn TimeSource,
    /// Records the `EXPORT` event.
    pub journal: &'a Journal,
}

/// The server of record's times of receipt, written into a package as `receipts.jsonl` (one
/// line per exported record that has a receipt, with its late flag judged by `late_after`).
#[derive(Debug, Clone, Copy)]
pub struct ExportReceipts<'a> {
    /// Where the times of receipt are.
    pub store: &'a dyn ReceiptStore,
    /// A record received more than this after it was recorded is late.
    pub late_after: std::time::Duration,
}

/// What an export produced.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// The package directory or zip file.
    pub path: PathBuf,
    /// The sealed manifest.
    pub manifest: ExportManifest,
    /// The seal key's fingerprint.
    pub fingerprint: String,
    /// SHA-256 of `manifest.json`.
    pub manifest_sha256: Checksum,
    /// Whether the export anchored the head itself (no anchor covered it yet).
    pub anchored_head: bool,
    /// The `EXPORT` event in `_relay`.
    pub event: Record,
}

/// Why an export failed; nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An access review was asked for in a package that is not a whole export of `_relay`.
    #[error("an access review is carried only by a whole, unfiltered export of _relay, not of {0}")]
    AccessReviewOutsideRelay(TrailId),
    /// The trail has no records.
    #[error("trail {0} has no records to export")]
    EmptyTrail(TrailId),
    /// The seq range is empty or inverted.
    #[error("invalid range: from_seq {from} is beyond to_seq {to} (trail head {head})")]
    BadRange {
        /// First seq asked for.
        from: u64,
        /// Last seq (clipped to the head).
        to: u64,
        /// The head.
        head: u64,
    },
    /// The trail fails verification; a broken trail is not sealed.
    #[error("refusing to seal a broken trail: {0}")]
    Broken(#[source] VerifyFailure),
    /// The output path exists and is not an empty directory.
    #[error("output {0} already exists; choose a new path")]
    OutputExists(PathBuf),
    /// The record store failed.
    #[error("cannot read the record store")]
    Store(#[from] RecordStoreError),
    /// The notary failed.
    #[error("notary failed")]
    Notary(#[from] NotaryError),
    /// The seal key could not be loaded.
    #[error("cannot load the export seal key")]
    Secrets(#[from] SecretError),
    /// The seal key is unusable.
    #[error("the export seal key is unusable")]
    Seal(#[from] SealError),
    /// The clock failed.
    #[error("no time for the export")]
    Time(#[from] TimeSourceError),
    /// The times of receipt could not be read (server of record).
    #[error("cannot read the times of receipt")]
    Receipts(#[from] ReceiptError),
    /// The manifest could not be rendered.
    #[error("cannot render the manifest")]
    Manifest(#[from] ManifestError),
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the zip failed.
    #[error("cannot write the zip {path}: {message}")]
    Zip {
        /// The zip file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The `EXPORT` event could not be recorded, so the package was removed (no unrecorded
    /// exports).
    #[error("the EXPORT event could not be recorded; the package was removed")]
    Journal(#[source] AppendError),
}

/// Loads (creating on first use) the export seal key from `secrets`.
pub async fn load_seal_key(secrets: &dyn SecretProvider) -> Result<SealKey, ExportError> {
    let secret = secrets
        .current_or_create(&SecretName::export_seal())
        .await?;
    Ok(SealKey::from_seed(secret.expose())?)
}

/// The seal public key and its fingerprint, for the start-up posture event.
pub fn seal_posture(public: &SealPublicKey) -> serde_json::Value {
    serde_json::json!({
        "algorithm": relay_domain::export::seal::SEAL_ALGORITHM,
        "public_key": public.to_hex(),
        "fingerprint": public.fingerprint(),
    })
}

/// The OS user running an export from the command line (R2.1: never "unknown").
pub fn resolve_exporting_user() -> Result<relay_domain::Actor, crate::edge::EdgeError> {
    relay_capture::resolve_os_actor().map_err(|e| crate::edge::EdgeError::NoActor(e.to_string()))
}
