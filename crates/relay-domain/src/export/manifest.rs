//! The export manifest, its signing bytes (RFC 8785) and the rows digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::seal::{Seal, SealKey};
use crate::ids::{Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, Project, TrailId};
use crate::timestamp::{TimeLabel, Timestamp};

/// Prefix of the bytes a seal signs: separates manifest seals from any other Ed25519 use.
pub const MANIFEST_DOMAIN_TAG: &[u8] = b"gims-relay:export-manifest:v1\n";

/// Prefix of the rows digest input.
pub const ROWS_DOMAIN_TAG: &[u8] = b"gims-relay:export-rows:v1\n";

/// The requested seq range, clipped to the trail head at export time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqRange {
    /// First seq of the range.
    pub from_seq: ChainSeq,
    /// Last seq of the range.
    pub to_seq: ChainSeq,
}

/// Which records of the range were exported; all `None` means every record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFilter {
    /// Only records of this project.
    pub project: Option<Project>,
    /// Only records of this kind.
    pub kind: Option<EventKind>,
}

impl ExportFilter {
    /// Whether the filter selects every record.
    pub fn is_empty(&self) -> bool {
        self.project.is_none() && self.kind.is_none()
    }

    /// Whether `record` is selected.
    pub fn selects(&self, record: &crate::record::Record) -> bool {
        self.project
            .as_ref()
            .is_none_or(|p| record.project.as_ref() == Some(p))
            && self.kind.as_ref().is_none_or(|k| record.kind == *k)
    }
}

/// The trail head the export was taken against: the tree every proof and anchor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailHeadSnapshot {
    /// Seq of the head.
    pub seq: ChainSeq,
    /// Checksum of the head.
    pub checksum: Checksum,
    /// RFC 9162 tree head over records `1..=seq`.
    pub merkle_root: Checksum,
}

/// The SHA-256 and size of one package file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// SHA-256 of the exact bytes.
    pub sha256: Checksum,
    /// Length in bytes.
    pub bytes: u64,
}

/// Who generated the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedBy {
    /// The actor that asked for the export.
    pub actor: Actor,
    /// How the actor was resolved.
    pub actor_source: ActorSource,
    /// The workstation or server that produced it.
    pub device: Device,
}

/// The manifest of an export package (everything but the seal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportManifest {
    /// Always [`super::EXPORT_FORMAT`].
    pub format: String,
    /// The exported trail.
    pub trail_id: TrailId,
    /// The seq range asked for, clipped to the head.
    pub range: SeqRange,
    /// The record filter applied within the range.
    pub filter: ExportFilter,
    /// How many records were exported.
    pub records: u64,
    /// The trail head at export time.
    pub head: TrailHeadSnapshot,
    /// SHA-256 over [`ROWS_DOMAIN_TAG`] and the leaf hash of every exported record, in order.
    pub rows_digest: Checksum,
    /// RFC 9162 tree head over the exported records only.
    pub merkle_root: Checksum,
    /// SHA-256 and size of every other file of the package, by file name.
    pub rendered_sha256: BTreeMap<String, FileDigest>,
    /// When the package was generated.
    pub generated_at: Timestamp,
    /// Where `generated_at` came from.
    pub time_source: TimeLabel,
    /// Who generated it.
    pub generated_by: GeneratedBy,
    /// Version of the relay that generated it.
    pub relay_version: String,
}

impl ExportManifest {
    /// Whether the export is the whole trail `1..=head` with no filter (then no proofs are
    /// needed: the records' own tree head is the trail's).
    pub fn is_whole_trail(&self) -> bool {
        self.filter.is_empty()
            && self.range.from_seq == ChainSeq::FIRST
            && self.range.to_seq == self.head.seq
    }

    /// Whether the exported records are a contiguous run of the chain (no filter).
    pub fn is_contiguous(&self) -> bool {
        self.filter.is_empty()
    }
}

/// Why a manifest could not be built or read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not JSON, or not of the manifest's shape.
    #[error("manifest.json is not a valid manifest: {0}")]
    Shape(String),
    /// The manifest has no `seal` object.
    #[error("manifest.json has no seal")]
    Unsealed,
    /// The manifest is larger than allowed.
    #[error("manifest.json is {0} bytes; at most {max} are allowed", max = super::MAX_MANIFEST_BYTES)]
    TooLarge(usize),
}

/// The bytes a seal signs: [`MANIFEST_DOMAIN_TAG`] then the RFC 8785 form of the manifest
/// object without its `seal` member.
pub fn manifest_signing_bytes(unsealed: &serde_json::Value) -> Result<Vec<u8>, ManifestError> {
    let jcs = serde_json_canonicalizer::to_vec(unsealed)
        .map_err(|e| ManifestError::Shape(e.to_string()))?;
    let mut out = Vec::with_capacity(MANIFEST_DOMAIN_TAG.len() + jcs.len());
    out.extend_from_slice(MANIFEST_DOMAIN_TAG);
    out.extend_from_slice(&jcs);
    Ok(out)
}

/// Seals `manifest` with `key` and renders `manifest.json` (pretty-printed, seal last).
pub fn sealed_manifest_json(
    manifest: &ExportManifest,
    key: &SealKey,
) -> Result<(Vec<u8>, Seal), ManifestError> {
    let mut value =
        serde_json::to_value(manifest).map_err(|e| ManifestError::Shape(e.to_string()))?;
    let seal = key.seal(&manifest_signing_bytes(&value)?);
    let seal_value =
        serde_json::to_value(&seal).map_err(|e| ManifestError::Shape(e.to_string()))?;
    match value.as_object_mut() {
        Some(obj) => {
            obj.insert("seal".to_owned(), seal_value);
        }
        None => return Err(ManifestError::Shape("manifest is not an object".into())),
    }
    let mut text =
        serde_json::to_vec_pretty(&value).map_err(|e| ManifestError::Shape(e.to_string()))?;
    text.push(b'\n');
    Ok((text, seal))
}

/// A parsed `manifest.json`: the manifest, its seal, and the exact bytes the seal must cover.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    /// The manifest.
    pub manifest: ExportManifest,
    /// The seal.
    pub seal: Seal,
    /// The signing bytes of the manifest as read (see [`manifest_signing_bytes`]).
    pub signing_bytes: Vec<u8>,
}

/// Parses `manifest.json` without trusting it: size-limited, strictly typed, unknown fields
/// refused. The seal is *not* checked here (see [`Seal::verify`]).
pub fn parse_sealed_manifest(bytes: &[u8]) -> Result<ParsedManifest, ManifestError> {
    if bytes.len() > super::MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(bytes.len()));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Shape(e.to_string()))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| ManifestError::Shape("the top level must be a JSON object".into()))?;
    let seal_value = obj.remove("seal").ok_or(ManifestError::Unsealed)?;
    let seal: Seal = serde_json::from_value(seal_value)
        .map_err(|e| ManifestError::Shape(format!("seal: {e}")))?;
    let signing_bytes = manifest_signing_bytes(&value)?;
    let manifest: ExportManifest =
        serde_json::from_value(value).map_err(|e| ManifestError::Shape(e.to_string()))?;
    Ok(ParsedManifest {
        manifest,
        seal,
        signing_bytes,
    })
}

/// Streams the rows digest: SHA-256 over [`ROWS_DOMAIN_TAG`] and each record's leaf hash.
#[derive(Debug, Clone)]
pub struct RowsDigest(Sha256);

impl Default for RowsDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl RowsDigest {
    /// An empty digest.
    pub fn new() -> Self {
        let mut h = Sha256::new();
        h.update(ROWS_DOMAIN_TAG);
        Self(h)
    }

    /// Adds the next exported record's leaf hash.
    pub fn push(&mut self, leaf: &Checksum) {
        self.0.update(leaf.0);
    }

    /// The digest.
    pub fn finish(self) -> Checksum {
        Checksum(self.0.finalize().into())
    }
}
