//! Sealed export packages (R5): the manifest, its Ed25519 seal, the rendering of records as
//! CSV / JSON rows with signature manifestations, and the streaming package verifier.
//!
//! Everything here is pure: writers take `Vec<u8>` buffers, the verifier takes `impl BufRead`
//! readers, and the seal key arrives as seed bytes. Files and zips are handled by
//! `relay-runtime` (writing) and `relay-verify` (reading). The format is specified in
//! `docs/spec/export.md`.

pub mod manifest;
pub mod package_verify;
pub mod prepare;
pub mod receipts;
pub mod render;
pub mod seal;
pub mod trust;

pub use manifest::{
    ExportFilter, ExportManifest, FileDigest, GeneratedBy, ManifestError, ParsedManifest,
    RowsDigest, SeqRange, TrailHeadSnapshot, manifest_signing_bytes, parse_sealed_manifest,
    sealed_manifest_json,
};
pub use package_verify::{
    Finding, Origin, PackageError, PackageInputs, PackageReport, PassedCheck, ReceiptSummary,
    Verdict, VerifyOptions, verify_package,
};
pub use prepare::{PreparedPage, PreparedRow, Renderings};
pub use receipts::ReceiptLine;
pub use render::{
    CellError, FormatVersion, Manifestation, SignatureIndex, escape_signature_field,
    parse_signatures_cell, signature_cell_entry,
};
pub use seal::{Seal, SealError, SealKey, SealPublicKey};
pub use trust::{PinnedKey, TRUST_FILE_FORMAT, TrustError, parse_trust_file};

/// The `format` of every manifest this version writes (issue 20: signature manifestations
/// name the username, and the CSV signatures cell escapes its fields).
pub const EXPORT_FORMAT: &str = "gims-relay export v2";

/// The `format` of packages written before issue 20; still verified.
pub const EXPORT_FORMAT_V1: &str = "gims-relay export v1";

/// What precedes the checksum's 64 hex digits in a `records.jsonl` line: the line is a record's
/// canonical JSON with this member (`,"checksum":"<hex>"`) before its closing brace. Written by
/// the export's preparation, taken back out by the package verifier.
pub(crate) const LAYOUT_CHECKSUM_KEY: &[u8] = b",\"checksum\":\"";

/// The sealed manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The canonical records exactly as chained, one JSON object per line.
pub const RECORDS_JSONL: &str = "records.jsonl";
/// The human-readable CSV rendering.
pub const RECORDS_CSV: &str = "records.csv";
/// The human-readable JSON rendering (one row object per line inside an array).
pub const RECORDS_JSON: &str = "records.json";
/// The notary anchors of the trail up to the exported head.
pub const ANCHORS_JSON: &str = "anchors.json";
/// Merkle inclusion proofs of each exported record against the trail head (partial exports).
pub const PROOFS_JSONL: &str = "proofs.jsonl";
/// The server of record's time of receipt of exported records (optional; [`receipts`]).
pub const RECEIPTS_JSONL: &str = "receipts.jsonl";

/// The periodic access review a `_relay` package may carry (optional; check 18 of
/// docs/spec/export.md §4).
pub const ACCESS_REVIEW_JSON: &str = "access_review.json";

/// Every file name a package may contain; anything else is refused by the verifier.
pub const PACKAGE_FILES: [&str; 8] = [
    MANIFEST_FILE,
    RECORDS_JSONL,
    RECORDS_CSV,
    RECORDS_JSON,
    ANCHORS_JSON,
    PROOFS_JSONL,
    RECEIPTS_JSONL,
    ACCESS_REVIEW_JSON,
];

/// The longest line (or CSV row) the verifier accepts, in bytes. A record's payload is at most
/// 4 MiB of canonical JSON; escaping in CSV can double it.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The largest `manifest.json` accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// The largest `access_review.json` accepted, in bytes.
pub const MAX_ACCESS_REVIEW_BYTES: usize = 64 * 1024 * 1024;

/// The largest `anchors.json` accepted, in bytes.
pub const MAX_ANCHORS_BYTES: usize = 64 * 1024 * 1024;
