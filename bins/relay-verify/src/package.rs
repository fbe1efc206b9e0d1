//! Opening a package (directory or zip) without trusting it: only the eight known file names are
//! read, symlinks and anything else are reported, sizes are capped, nothing is ever extracted.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use relay_domain::export::{
    ACCESS_REVIEW_JSON, ANCHORS_JSON, MANIFEST_FILE, MAX_ACCESS_REVIEW_BYTES, MAX_ANCHORS_BYTES,
    MAX_LINE_BYTES, MAX_MANIFEST_BYTES, PACKAGE_FILES, PROOFS_JSONL, PackageInputs, RECEIPTS_JSONL,
    RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL, parse_sealed_manifest,
};
use relay_domain::merkle::{MerkleTree, record_leaf_hash, verify_inclusion};
use relay_domain::ports::Anchor;
use relay_domain::{Checksum, KeyId, KeyRing, Record, TrailKey};
use serde::Deserialize;

/// Why a package or key file cannot be read at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PackageReadError {
    /// The path is neither a directory nor a zip file.
    #[error("{0} is neither a package directory nor a .zip file")]
    NotAPackage(PathBuf),
    /// The package has no manifest.json.
    #[error("{0} has no manifest.json: not an export package")]
    NoManifest(PathBuf),
    /// A file is larger than the verifier accepts.
    #[error("{file} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        file: &'static str,
        /// The limit.
        max: usize,
    },
    /// Reading failed.
    #[error("cannot read {path}")]
    Io {
        /// What was read.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The zip is malformed.
    #[error("{path} is not a readable zip: {message}")]
    Zip {
        /// The zip.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key file is malformed.
    #[error("key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The record asked for is not in the package.
    #[error("{0}")]
    Proof(String),
}

fn io_err(path: impl Into<String>) -> impl FnOnce(io::Error) -> PackageReadError {
    let path = path.into();
    move |source| PackageReadError::Io { path, source }
}

/// An opened package.
pub enum Package {
    /// A directory holding the files.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Known files present (regular files, not symlinks).
        files: Vec<&'static str>,
        /// Anything else found.
        others: Vec<String>,
    },
    /// A zip holding the files at its top level.
    Zip {
        /// The zip file.
        path: PathBuf,
        /// Known entries present.
        files: Vec<&'static str>,
        /// Anything else found (other names, directories, duplicates).
        others: Vec<String>,
    },
}

impl Package {
    /// Opens `path` as a directory or zip package.
    pub fn open(path: &Path) -> Result<Self, PackageReadError> {
        let meta = fs::metadata(path).map_err(io_err(path.display().to_string()))?;
        let (files, others, is_zip) = if meta.is_dir() {
            let mut files = Vec::new();
            let mut others = Vec::new();
            for entry in fs::read_dir(path).map_err(io_err(path.display().to_string()))? {
                let entry = entry.map_err(io_err(path.display().to_string()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let kind = entry
                    .file_type()
                    .map_err(io_err(entry.path().display().to_string()))?;
                match PACKAGE_FILES.iter().find(|f| **f == name) {
                    Some(known) if kind.is_file() => files.push(*known),
                    Some(_) => others.push(format!("{name} (not a regular file)")),
                    None => others.push(name),
                }
            }
            (files, others, false)
        } else if meta.is_file() {
            let archive = open_zip(path)?;
            let mut files: Vec<&'static str> = Vec::new();
            let mut others = zip_directory_faults(path, &archive)?;
            for name in archive.file_names() {
                match PACKAGE_FILES.iter().find(|f| **f == name) {
                    Some(known) if !files.contains(known) => files.push(*known),
                    Some(_) => others.push(format!("{name} (duplicate entry)")),
                    None => others.push(name.chars().take(200).collect()),
                }
            }
            (files, others, true)
        } else {
            return Err(PackageReadError::NotAPackage(path.to_path_buf()));
        };
        if !files.contains(&MANIFEST_FILE) {
            return Err(PackageReadError::NoManifest(path.to_path_buf()));
        }
        let path = path.to_path_buf();
        Ok(if is_zip {
            Package::Zip {
                path,
                files,
                others,
            }
        } else {
            Package::Dir {
                path,
                files,
                others,
            }
        })
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Package::Dir { files, .. } | Package::Zip { files, .. } => files.contains(&name),
        }
    }

    /// A streaming reader of one known file.
    pub fn reader(&self, name: &'static str) -> Result<Box<dyn BufRead + Send>, PackageReadError> {
        match self {
            Package::Dir { path, .. } => {
                let p = path.join(name);
                let file = File::open(&p).map_err(io_err(p.display().to_string()))?;
                Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
            }
            Package::Zip { path, .. } => {
                let archive = open_zip(path)?;
                Ok(Box::new(BufReader::with_capacity(
                    1 << 20,
                    ZipEntryReader::new(archive, name, path)?,
                )))
            }
        }
    }

    /// The whole of one small file, at most `max` bytes.
    fn read_small(&self, name: &'static str, max: usize) -> Result<Vec<u8>, PackageReadError> {
        let mut out = Vec::new();
        self.reader(name)?
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(io_err(name))?;
        if out.len() > max {
            return Err(PackageReadError::TooLarge { file: name, max });
        }
        Ok(out)
    }

    /// The verifier's inputs.
    pub fn inputs(&self) -> Result<PackageInputs<Box<dyn BufRead + Send>>, PackageReadError> {
        let open =
            |name: &'static str| -> Result<Option<Box<dyn BufRead + Send>>, PackageReadError> {
                if self.has(name) {
                    self.reader(name).map(Some)
                } else {
                    Ok(None)
                }
            };
        let anchors = if self.has(ANCHORS_JSON) {
            Some(self.read_small(ANCHORS_JSON, MAX_ANCHORS_BYTES)?)
        } else {
            None
        };
        Ok(PackageInputs {
            manifest: self.read_small(MANIFEST_FILE, MAX_MANIFEST_BYTES)?,
            anchors,
            records_jsonl: open(RECORDS_JSONL)?,
            records_csv: open(RECORDS_CSV)?,
            records_json: open(RECORDS_JSON)?,
            proofs_jsonl: open(PROOFS_JSONL)?,
            receipts_jsonl: open(RECEIPTS_JSONL)?,
            access_review_json: if self.has(ACCESS_REVIEW_JSON) {
                Some(self.read_small(ACCESS_REVIEW_JSON, MAX_ACCESS_REVIEW_BYTES)?)
            } else {
                None
            },
            other_entries: match self {
                Package::Dir { others, .. } | Package::Zip { others, .. } => others.clone(),
            },
        })
    }
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, PackageReadError> {
    let file = File::open(path).map_err(io_err(path.display().to_string()))?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|e| PackageReadError::Zip {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The zip's own central directory, read entry by entry (the zip crate keeps one entry per
/// name, so a second `records.csv` is invisible through it): duplicate names, names the crate
/// reads differently, local headers naming another file, and bytes before the first entry are
/// all faults. An unzip tool shows the *first* of two entries, the crate the last: a package
/// must not depend on which.
fn zip_directory_faults(
    path: &Path,
    archive: &zip::ZipArchive<BufReader<File>>,
) -> Result<Vec<String>, PackageReadError> {
    use std::io::{Seek, SeekFrom};
    let shown =
        |name: &[u8]| -> String { String::from_utf8_lossy(name).chars().take(200).collect() };
    let bad = |message: &str| PackageReadError::Zip {
        path: path.to_path_buf(),
        message: message.to_owned(),
    };
    let mut file = BufReader::new(File::open(path).map_err(io_err(path.display().to_string()))?);
    let io = |e: io::Error| PackageReadError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut faults = Vec::new();
    if archive.offset() != 0 {
        faults.push(format!(
            "({} bytes before the first entry)",
            archive.offset()
        ));
    }
    file.seek(SeekFrom::Start(archive.central_directory_start()))
        .map_err(io)?;
    let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
    loop {
        let mut fixed = [0u8; 46];
        if file.read_exact(&mut fixed[..4]).is_err() || fixed[..4] != [0x50, 0x4b, 0x01, 0x02] {
            break;
        }
        file.read_exact(&mut fixed[4..]).map_err(io)?;
        let u16_at = |i: usize| u64::from(u16::from_le_bytes([fixed[i], fixed[i + 1]]));
        let u32_at = |i: usize| {
            u64::from(u32::from_le_bytes([
                fixed[i],
                fixed[i + 1],
                fixed[i + 2],
                fixed[i + 3],
            ]))
        };
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        let mut name = vec![0u8; name_len as usize];
        file.read_exact(&mut name).map_err(io)?;
        let mut extra = vec![0u8; extra_len as usize];
        file.read_exact(&mut extra).map_err(io)?;
        file.seek(SeekFrom::Current(comment_len as i64))
            .map_err(io)?;
        let mut offset = u32_at(42);
        if offset == 0xFFFF_FFFF {
            // Zip64: the extra field 0x0001 holds, in order, the sizes that overflowed and then
            // the local header offset.
            let skip =
                8 * (u64::from(u32_at(24) == 0xFFFF_FFFF) + u64::from(u32_at(20) == 0xFFFF_FFFF));
            offset =
                zip64_offset(&extra, skip).ok_or_else(|| bad("a zip64 entry has no offset"))?;
        }
        entries.push((name, offset));
        if entries.len() > 64 {
            faults.push("(more than 64 entries)".into());
            break;
        }
    }
    let manifests = entries
        .iter()
        .filter(|(n, _)| n.as_slice() == MANIFEST_FILE.as_bytes())
        .count();
    if manifests > 1 {
        return Err(bad(
            "manifest.json appears more than once; a verifier must not choose a copy",
        ));
    }
    let mut seen: Vec<&[u8]> = Vec::new();
    for (name, _) in &entries {
        if seen.contains(&name.as_slice()) {
            faults.push(format!(
                "{} (duplicate entry: the zip holds this name more than once)",
                shown(name)
            ));
        } else {
            seen.push(name);
        }
        if !std::str::from_utf8(name).is_ok_and(|n| archive.file_names().any(|c| c == n)) {
            faults.push(format!(
                "{} (entry name is not read the same by every zip reader)",
                shown(name)
            ));
        }
    }
    for (name, offset) in &entries {
        let mut local = [0u8; 30];
        let ok = file
            .seek(SeekFrom::Start(archive.offset() + offset))
            .and_then(|_| file.read_exact(&mut local))
            .is_ok()
            && local[..4] == [0x50, 0x4b, 0x03, 0x04];
        let len = usize::from(u16::from_le_bytes([local[26], local[27]]));
        let mut local_name = vec![0u8; len];
        if !ok || file.read_exact(&mut local_name).is_err() || local_name != *name {
            faults.push(format!(
                "{} (its local header names {:?})",
                shown(name),
                shown(&local_name)
            ));
        }
    }
    Ok(faults)
}

fn zip64_offset(extra: &[u8], skip: u64) -> Option<u64> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if id == 1 {
            let at = usize::try_from(skip).ok()?;
            return body
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        }
        rest = &rest[4 + len..];
    }
    None
}

/// An owned, streaming reader of one zip entry. The zip crate's entry borrows its archive, so a
/// thread decompresses the entry and hands over chunks through a bounded channel (at most
/// four chunks of 256 KiB in flight), which also spreads decompression over the cores.
struct ZipEntryReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ZipEntryReader {
    fn new(
        mut archive: zip::ZipArchive<BufReader<File>>,
        name: &'static str,
        path: &Path,
    ) -> Result<Self, PackageReadError> {
        if archive.index_for_name(name).is_none() {
            return Err(PackageReadError::Zip {
                path: path.to_path_buf(),
                message: format!("entry {name} vanished"),
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut entry = match archive.by_name(name) {
                Ok(entry) => entry,
                Err(e) => {
                    // The receiver may be gone already; then nobody needs the error.
                    drop(tx.send(Err(io::Error::other(e.to_string()))));
                    return;
                }
            };
            loop {
                let mut chunk = vec![0u8; 256 * 1024];
                match entry.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        drop(tx.send(Err(e)));
                        return;
                    }
                }
            }
        });
        Ok(Self {
            rx,
            chunk: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl Read for ZipEntryReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The decompressing thread finished and hung up: end of the entry.
                Err(_) => self.done = true,
            }
        }
        let n = (self.chunk.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the relay's trail key file (`secrets/trail-hmac.json`) into a key ring.
pub fn read_key_file(path: &Path) -> Result<KeyRing, PackageReadError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct KeyFile {
        format: String,
        versions: Vec<Version>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Version {
        id: String,
        secret_hex: String,
    }
    let bad = |message: String| PackageReadError::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    let mut text = Vec::new();
    File::open(path)
        .map_err(io_err(path.display().to_string()))?
        .take(1024 * 1024)
        .read_to_end(&mut text)
        .map_err(io_err(path.display().to_string()))?;
    let file: KeyFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if file.format != "gims-relay-secret-v1" {
        return Err(bad(format!("unknown format {:?}", file.format)));
    }
    let mut ring = KeyRing::default();
    let last = file.versions.len().saturating_sub(1);
    for (i, v) in file.versions.iter().enumerate() {
        let id = KeyId::new(v.id.clone()).map_err(|e| bad(e.to_string()))?;
        let bytes = hex::decode(&v.secret_hex).map_err(|e| bad(format!("key {id}: {e}")))?;
        let key = TrailKey::new(id, &bytes).map_err(|e| bad(e.to_string()))?;
        if i == last {
            ring.insert_current(key);
        } else {
            ring.insert(key);
        }
    }
    if file.versions.is_empty() {
        return Err(bad("no key versions".into()));
    }
    Ok(ring)
}

/// The result of `relay-verify proof`.
pub struct ProofOutcome {
    /// Whether the record is proven included in the notarized, sealed head.
    pub included: bool,
    /// The record's leaf hash, if found.
    pub leaf: Option<Checksum>,
    /// Size of the tree proven against.
    pub tree_size: u64,
    /// Its root.
    pub root: Checksum,
    /// Hashes on the audit path.
    pub path_length: usize,
    /// Explanation.
    pub detail: String,
}

#[derive(Deserialize)]
struct ProofLine {
    seq: u64,
    proof: Vec<Checksum>,
}

/// Proves that the record with `seq` is in the Merkle tree of the sealed, anchored head.
pub fn prove_one(package: &Package, seq: u64) -> Result<ProofOutcome, PackageReadError> {
    let manifest_bytes = package.read_small(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
    let parsed = parse_sealed_manifest(&manifest_bytes)
        .map_err(|e| PackageReadError::Proof(e.to_string()))?;
    let m = &parsed.manifest;
    let root = m.head.merkle_root;
    let tree_size = m.head.seq.get();
    let not = |leaf: Option<Checksum>, detail: String| ProofOutcome {
        included: false,
        leaf,
        tree_size,
        root,
        path_length: 0,
        detail,
    };
    if let Err(e) = parsed.seal.verify(&parsed.signing_bytes) {
        return Ok(not(None, format!("manifest.json: {e}")));
    }
    let anchors: Vec<Anchor> = if package.has(ANCHORS_JSON) {
        serde_json::from_slice(&package.read_small(ANCHORS_JSON, MAX_ANCHORS_BYTES)?)
            .map_err(|e| PackageReadError::Proof(format!("anchors.json: {e}")))?
    } else {
        Vec::new()
    };
    let anchored = anchors.iter().any(|a| {
        a.seq == m.head.seq
            && a.checksum == m.head.checksum
            && a.merkle_root.is_none_or(|r| r == root)
    });
    // Stream records.jsonl for the leaf (and, for a whole-trail export, every leaf).
    let mut leaves = Vec::new();
    let mut leaf = None;
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    let mut reader = package.reader(RECORDS_JSONL)?;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io_err(RECORDS_JSONL))?;
        if n == 0 {
            break;
        }
        let record: Record = serde_json::from_slice(buf.strip_suffix(b"\n").unwrap_or(&buf))
            .map_err(|e| PackageReadError::Proof(format!("records.jsonl: {e}")))?;
        let h = record_leaf_hash(&record, &mut scratch);
        if record.chain_seq.get() == seq {
            leaf = Some(h);
        }
        if m.is_whole_trail() {
            leaves.push(h);
        } else if leaf.is_some() {
            break;
        }
    }
    let Some(found) = leaf else {
        return Ok(not(
            None,
            format!("no record with chain_seq {seq} in records.jsonl"),
        ));
    };
    let proof = if m.is_whole_trail() {
        MerkleTree::from_leaves(leaves).inclusion_proof(seq - 1)
    } else {
        let mut proofs = package.reader(PROOFS_JSONL)?;
        let mut found_proof = None;
        loop {
            buf.clear();
            let n = (&mut proofs)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(io_err(PROOFS_JSONL))?;
            if n == 0 {
                break;
            }
            let line: ProofLine =
                serde_json::from_slice(buf.strip_suffix(b"\n").unwrap_or(&buf))
                    .map_err(|e| PackageReadError::Proof(format!("proofs.jsonl: {e}")))?;
            if line.seq == seq {
                found_proof = Some(line.proof);
                break;
            }
        }
        match found_proof {
            Some(p) => p,
            None => return Ok(not(Some(found), format!("no proof for chain_seq {seq}"))),
        }
    };
    let ok = verify_inclusion(&found, seq - 1, tree_size, &proof, &root);
    Ok(ProofOutcome {
        included: ok && anchored,
        leaf: Some(found),
        tree_size,
        root,
        path_length: proof.len(),
        detail: match (ok, anchored) {
            (true, true) => "the head is sealed and covered by a notary anchor".into(),
            (true, false) => {
                "the proof holds, but no anchor in anchors.json covers the head".into()
            }
            (false, _) => "the audit path does not lead to the sealed tree head".into(),
        },
    })
}
