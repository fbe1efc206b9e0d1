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
    write_csv_prefix, write_csv_signatures, write_json_prefix, write_json_signatures,
};
use relay_domain::export::{
    ANCHORS_JSON, EXPORT_FORMAT, ExportFilter, ExportManifest, FileDigest, GeneratedBy,
    MANIFEST_FILE, ManifestError, Manifestation, PROOFS_JSONL, RECEIPTS_JSONL, RECORDS_CSV,
    RECORDS_JSON, RECORDS_JSONL, ReceiptLine, RowsDigest, SealError, SealKey, SealPublicKey,
    SeqRange, SignatureIndex, TrailHeadSnapshot, sealed_manifest_json,
};
use relay_domain::merkle::{MerkleAccumulator, MerkleTree, record_leaf_hash};
use relay_domain::ports::{
    Anchor, Lateness, Notary, NotaryError, ReceiptError, ReceiptStore, RecordStore,
    RecordStoreError, SecretError, SecretName, SecretProvider, SecretProviderExt, TimeSource,
    TimeSourceError,
};
use relay_domain::verify::{VERIFY_PAGE, VerifyFailure};
use relay_domain::{
    AppendError, ChainSeq, ChainVerifier, Checksum, EventKind, KeyRing, Record, Subject, TrailId,
};
use sha2::{Digest, Sha256};

use crate::journal::Journal;

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

/// Bytes handed to a [`HashedFile`]'s writer thread at a time.
const WRITE_CHUNK: usize = 1 << 20;
/// Chunks that may wait for the writer thread: bounds the export's memory whatever its size.
const WRITE_QUEUE: usize = 4;

/// A file being written and hashed as it goes, on its own thread: rendering the next rows
/// overlaps the hashing and the write system calls of the previous ones.
struct HashedFile {
    path: PathBuf,
    chunk: Vec<u8>,
    to_writer: Option<mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<io::Result<FileDigest>>>,
}

impl HashedFile {
    fn create(path: PathBuf) -> Result<Self, ExportError> {
        let io_error = |source| ExportError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::create_new(&path).map_err(io_error)?;
        let (to_writer, chunks) = mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
        let writer = std::thread::Builder::new()
            .name("export-writer".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                let mut bytes = 0u64;
                for chunk in chunks {
                    hasher.update(&chunk);
                    file.write_all(&chunk)?;
                    bytes += chunk.len() as u64;
                }
                file.sync_all()?;
                Ok(FileDigest {
                    sha256: Checksum(hasher.finalize().into()),
                    bytes,
                })
            })
            .map_err(io_error)?;
        Ok(Self {
            path,
            chunk: Vec::with_capacity(WRITE_CHUNK),
            to_writer: Some(to_writer),
            writer: Some(writer),
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ExportError> {
        self.chunk.extend_from_slice(data);
        if self.chunk.len() >= WRITE_CHUNK {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Sends the buffered bytes to the writer thread; a writer that stopped reports why.
    fn hand_over(&mut self) -> Result<(), ExportError> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(WRITE_CHUNK));
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|tx| tx.send(chunk).is_ok());
        match sent {
            true => Ok(()),
            false => Err(self.join_writer().err().unwrap_or_else(|| ExportError::Io {
                path: self.path.clone(),
                source: io::Error::other("the export writer stopped early"),
            })),
        }
    }

    /// Closes the queue and waits for the writer: the file's digest once it is on disk.
    fn join_writer(&mut self) -> Result<FileDigest, ExportError> {
        self.to_writer = None;
        let outcome = match self.writer.take() {
            Some(writer) => writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the export writer panicked"))),
            None => Err(io::Error::other("the export writer already finished")),
        };
        outcome.map_err(|source| ExportError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(mut self) -> Result<FileDigest, ExportError> {
        if !self.chunk.is_empty() {
            self.hand_over()?;
        }
        self.join_writer()
    }
}

impl Drop for HashedFile {
    /// An abandoned file (the export failed): stop its writer before the package is removed.
    fn drop(&mut self) {
        if self.writer.is_some()
            && let Err(e) = self.join_writer()
        {
            tracing::debug!(error = %e, "abandoned export file");
        }
    }
}

/// Exports `request.trail` as a sealed package, records the `EXPORT` event, and returns what
/// was written. This is what `relay-edge export` and `POST /api/v1/exports` call.
pub async fn export_package(
    services: ExportServices<'_>,
    request: &ExportRequest,
) -> Result<ExportOutcome, ExportError> {
    export_package_with_receipts(services, None, request).await
}

/// [`export_package`] on the server of record: with `receipts`, the package also carries
/// `receipts.jsonl` (docs/spec/export.md §2), sealed like every other file, when any exported
/// record has a time of receipt.
pub async fn export_package_with_receipts(
    services: ExportServices<'_>,
    receipts: Option<ExportReceipts<'_>>,
    request: &ExportRequest,
) -> Result<ExportOutcome, ExportError> {
    let final_path = if request.zip && request.out.extension().is_none_or(|e| e != "zip") {
        request.out.with_extension("zip")
    } else {
        request.out.clone()
    };
    let dir = if request.zip {
        let mut name = final_path.as_os_str().to_owned();
        name.push(format!(".partial-{}", std::process::id()));
        PathBuf::from(name)
    } else {
        final_path.clone()
    };
    if request.zip && final_path.exists() {
        return Err(ExportError::OutputExists(final_path));
    }
    create_empty_dir(&dir)?;
    let result = write_package(services, receipts, request, &dir).await;
    let outcome = match result {
        Ok(written) => written,
        Err(e) => {
            remove_package(&dir);
            return Err(e);
        }
    };
    if request.zip {
        let zipped = zip_dir(&dir, &final_path);
        remove_package(&dir);
        zipped?;
    }
    let (manifest, fingerprint, manifest_sha256, anchored_head) = outcome;
    let payload = serde_json::json!({
        "trail": request.trail.as_str(),
        "range": manifest.range,
        "filter": manifest.filter,
        "records": manifest.records,
        "head_seq": manifest.head.seq,
        "head_checksum": manifest.head.checksum,
        "merkle_root": manifest.merkle_root,
        "rows_digest": manifest.rows_digest,
        "manifest_sha256": manifest_sha256,
        "seal_fingerprint": fingerprint,
        "format": request.format.as_str(),
        "zip": request.zip,
        "requested_by": manifest.generated_by,
        "anchored_head": anchored_head,
    });
    let subject = Subject::new(request.trail.as_str()).ok();
    // The actor is whoever asked (the verified API caller, the OS user of the CLI), not the
    // relay process.
    let by = &request.generated_by;
    let event = match services
        .journal
        .record_by(
            EventKind::export(),
            Some(by.actor.clone()),
            by.actor_source,
            subject,
            payload,
        )
        .await
    {
        Ok(event) => event,
        Err(e) => {
            remove_package(&final_path);
            return Err(ExportError::Journal(e));
        }
    };
    tracing::info!(
        trail = %request.trail, records = manifest.records, path = %final_path.display(),
        fingerprint = %fingerprint, "sealed export written"
    );
    Ok(ExportOutcome {
        path: final_path,
        manifest,
        fingerprint,
        manifest_sha256,
        anchored_head,
        event,
    })
}

fn create_empty_dir(dir: &Path) -> Result<(), ExportError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::OutputExists(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|source| ExportError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
        Err(_) if dir.exists() => Err(ExportError::OutputExists(dir.to_path_buf())),
        Err(source) => Err(ExportError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes a package this export created; failure is logged (the caller already fails).
fn remove_package(path: &Path) {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    if let Err(e) = result
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::error!(path = %path.display(), error = %e, "could not remove an incomplete export");
    }
}

type Written = (ExportManifest, String, Checksum, bool);

async fn write_package(
    services: ExportServices<'_>,
    receipts: Option<ExportReceipts<'_>>,
    request: &ExportRequest,
    dir: &Path,
) -> Result<Written, ExportError> {
    let store = services.store;
    let trail = &request.trail;
    let head = store
        .head(trail)
        .await?
        .ok_or_else(|| ExportError::EmptyTrail(trail.clone()))?;
    let from = request.from_seq.unwrap_or(ChainSeq::FIRST);
    let to = request.to_seq.map_or(head.seq, |t| t.min(head.seq));
    if from > to {
        return Err(ExportError::BadRange {
            from: from.get(),
            to: to.get(),
            head: head.seq.get(),
        });
    }
    let mut anchors = services.notary.anchors(trail).await?;
    let seal_key = load_seal_key(services.secrets).await?;

    // Signatures follow the records they sign, so they must be known before any row is
    // rendered: read just them first (a filtered read the store does where the data lives).
    let signature_records = read_signatures(store, trail, head.seq).await?;
    let mut signatures = SignatureIndex::new();
    for record in &signature_records {
        signatures.observe(record);
    }

    // One pass over the whole trail 1..=head: verify it, hash its leaves and render the
    // exported records. Filtered exports keep every leaf for the inclusion proofs, which are
    // written once the tree is complete.
    let whole = request.filter.is_empty() && from == ChainSeq::FIRST && to == head.seq;
    let mut verifier = ChainVerifier::new(trail.clone(), services.keys);
    for a in &anchors {
        verifier = verifier.with_anchor(a.seq, a.checksum);
    }
    let mut all_leaves = MerkleAccumulator::new();
    let mut leaves = match whole {
        true => Vec::new(),
        false => Vec::with_capacity(usize::try_from(head.seq.get()).unwrap_or(0)),
    };
    let mut selected: Vec<u64> = Vec::new();
    // With receipts: each exported record's seq and recorded_at (16 bytes per record).
    let mut exported_times: Vec<(u64, relay_domain::Timestamp)> = Vec::new();
    // Partial exports carry the SIGNATURE records on exported records that they do not export
    // themselves (with proofs), so every rendered signature can be checked offline.
    let mut exported_checksums: std::collections::HashSet<Checksum> =
        std::collections::HashSet::new();
    let mut jsonl = HashedFile::create(dir.join(RECORDS_JSONL))?;
    let mut csv = match request.format.csv() {
        true => Some(HashedFile::create(dir.join(RECORDS_CSV))?),
        false => None,
    };
    let mut json = match request.format.json() {
        true => Some(HashedFile::create(dir.join(RECORDS_JSON))?),
        false => None,
    };
    if let Some(c) = csv.as_mut() {
        c.write(CSV_HEADER.as_bytes())?;
    }
    if let Some(j) = json.as_mut() {
        j.write(JSON_OPEN)?;
    }
    let mut rows = RowsDigest::new();
    let mut acc = MerkleAccumulator::new();
    let mut count = 0u64;
    let mut signatures_seen = 0usize;
    let mut buf = Vec::with_capacity(4096);
    let mut line = Vec::with_capacity(4096);
    // Renders one page; the next page is read while this runs (see the loop below).
    let mut render_page = |page: &[Record]| -> Result<(), ExportError> {
        for record in page {
            if record.chain_seq > head.seq {
                break;
            }
            verifier.push(record).map_err(ExportError::Broken)?;
            let leaf = record_leaf_hash(record, &mut buf);
            all_leaves.push_leaf_hash(leaf);
            if !whole {
                leaves.push(leaf);
            }
            if record.kind == EventKind::signature() {
                // The rows were rendered with the signatures read up front: they must be
                // exactly the verified ones.
                if signature_records.get(signatures_seen) != Some(record) {
                    return Err(inconsistent_signatures(trail, record.chain_seq));
                }
                signatures_seen += 1;
            }
            if record.chain_seq < from || record.chain_seq > to || !request.filter.selects(record) {
                continue;
            }
            rows.push(&leaf);
            acc.push_leaf_hash(leaf);
            if receipts.is_some() {
                exported_times.push((record.chain_seq.get(), record.recorded_at));
            }
            if !whole {
                selected.push(record.chain_seq.get() - 1);
                if !signatures.on(&record.checksum).is_empty() {
                    exported_checksums.insert(record.checksum);
                }
            }
            line.clear();
            serde_json::to_writer(&mut line, record).map_err(|e| ExportError::Io {
                path: dir.join(RECORDS_JSONL),
                source: e.into(),
            })?;
            line.push(b'\n');
            jsonl.write(&line)?;
            let sigs = signatures.on(&record.checksum);
            if let Some(c) = csv.as_mut() {
                line.clear();
                write_csv_prefix(record, &mut line);
                write_csv_signatures(sigs, &mut line);
                c.write(&line)?;
            }
            if let Some(j) = json.as_mut() {
                line.clear();
                if count > 0 {
                    line.extend_from_slice(JSON_SEPARATOR);
                }
                write_json_prefix(record, &mut line);
                write_json_signatures(sigs, &mut line);
                j.write(&line)?;
            }
            count += 1;
        }
        Ok(())
    };
    // The store read of the next page overlaps the rendering of this one (the SQLite adapter
    // reads on a blocking thread, Postgres on the server), so the export costs about one read
    // of the trail or its rendering, whichever is slower, rather than their sum.
    let mut page = store.read(trail, 0, VERIFY_PAGE).await?;
    while let Some(last) = page.last() {
        let after = last.chain_seq.get();
        if after >= head.seq.get() {
            render_page(&page)?;
            break;
        }
        let (next, rendered) = tokio::join!(store.read(trail, after, VERIFY_PAGE), async {
            render_page(&page)
        });
        rendered?;
        page = next?;
    }
    let summary = verifier.finish().map_err(ExportError::Broken)?;
    if summary.head != Some((head.seq, head.checksum)) {
        return Err(ExportError::Store(RecordStoreError::Corrupt {
            trail_id: trail.clone(),
            seq: head.seq.get(),
            message: "the trail read back does not end at its reported head".into(),
        }));
    }
    if signatures_seen != signature_records.len() {
        return Err(inconsistent_signatures(trail, head.seq));
    }
    let head_snapshot = TrailHeadSnapshot {
        seq: head.seq,
        checksum: head.checksum,
        merkle_root: all_leaves.root(),
    };

    // Filtered or partial exports: an RFC 9162 inclusion proof per exported record.
    let mut proofs = None;
    if !whole {
        let tree = MerkleTree::from_leaves(leaves);
        let mut file = HashedFile::create(dir.join(PROOFS_JSONL))?;
        for index in selected {
            let proof = tree.inclusion_proof(index);
            line.clear();
            line.extend_from_slice(b"{\"seq\":");
            line.extend_from_slice((index + 1).to_string().as_bytes());
            line.extend_from_slice(b",\"proof\":");
            serde_json::to_writer(&mut line, &proof).map_err(|e| ExportError::Io {
                path: dir.join(PROOFS_JSONL),
                source: e.into(),
            })?;
            line.extend_from_slice(b"}\n");
            file.write(&line)?;
        }
        // Then the SIGNATURE records on exported records that are not exported themselves.
        for record in &signature_records {
            let Some((target, _)) = Manifestation::from_signature_record(record) else {
                continue;
            };
            let in_export = record.chain_seq >= from
                && record.chain_seq <= to
                && request.filter.selects(record);
            if in_export || !exported_checksums.contains(&target) {
                continue;
            }
            let proof = tree.inclusion_proof(record.chain_seq.get() - 1);
            line.clear();
            line.extend_from_slice(b"{\"seq\":");
            line.extend_from_slice(record.chain_seq.get().to_string().as_bytes());
            line.extend_from_slice(b",\"proof\":");
            serde_json::to_writer(&mut line, &proof)
                .and_then(|()| {
                    line.extend_from_slice(b",\"record\":");
                    serde_json::to_writer(&mut line, record)
                })
                .map_err(|e| ExportError::Io {
                    path: dir.join(PROOFS_JSONL),
                    source: e.into(),
                })?;
            line.extend_from_slice(b"}\n");
            file.write(&line)?;
        }
        proofs = Some(file);
    }

    // The head must be notarized for the package to prove it: anchor it now if it is not.
    let mut anchored_head = false;
    if !anchors.iter().any(|a| a.seq == head.seq) {
        let now = services.clock.now().await?;
        let anchor = Anchor {
            trail_id: trail.clone(),
            seq: head.seq,
            checksum: head.checksum,
            merkle_root: Some(head_snapshot.merkle_root),
            anchored_at: now.at,
            time_source: now.label,
        };
        services.notary.anchor(&anchor).await?;
        anchors.push(anchor);
        anchored_head = true;
    }
    anchors.retain(|a| a.seq <= head.seq);
    anchors.sort_by_key(|a| (a.seq, a.anchored_at));

    if let Some(j) = json.as_mut() {
        j.write(if count > 0 {
            JSON_CLOSE_AFTER_ROW
        } else {
            JSON_CLOSE_EMPTY
        })?;
    }

    let mut digests = std::collections::BTreeMap::new();
    digests.insert(RECORDS_JSONL.to_owned(), jsonl.finish()?);
    if let Some(r) = receipts
        && let Some(file) = write_receipts(r, trail, from, to, &exported_times, dir).await?
    {
        digests.insert(RECEIPTS_JSONL.to_owned(), file);
    }
    for (name, file) in [
        (RECORDS_CSV, csv),
        (RECORDS_JSON, json),
        (PROOFS_JSONL, proofs),
    ] {
        if let Some(file) = file {
            digests.insert(name.to_owned(), file.finish()?);
        }
    }
    let mut anchors_file = HashedFile::create(dir.join(ANCHORS_JSON))?;
    let mut anchors_text = serde_json::to_vec_pretty(&anchors).map_err(|e| ExportError::Io {
        path: dir.join(ANCHORS_JSON),
        source: e.into(),
    })?;
    anchors_text.push(b'\n');
    anchors_file.write(&anchors_text)?;
    digests.insert(ANCHORS_JSON.to_owned(), anchors_file.finish()?);

    let now = services.clock.now().await?;
    let manifest = ExportManifest {
        format: EXPORT_FORMAT.to_owned(),
        trail_id: trail.clone(),
        range: SeqRange {
            from_seq: from,
            to_seq: to,
        },
        filter: request.filter.clone(),
        records: count,
        head: head_snapshot,
        rows_digest: rows.finish(),
        merkle_root: acc.root(),
        rendered_sha256: digests,
        generated_at: now.at,
        time_source: now.label,
        generated_by: request.generated_by.clone(),
        relay_version: crate::VERSION.to_owned(),
    };
    let (manifest_bytes, seal) = sealed_manifest_json(&manifest, &seal_key)?;
    let mut manifest_file = HashedFile::create(dir.join(MANIFEST_FILE))?;
    manifest_file.write(&manifest_bytes)?;
    let manifest_digest = manifest_file.finish()?;
    Ok((
        manifest,
        seal.fingerprint,
        manifest_digest.sha256,
        anchored_head,
    ))
}

/// Writes `receipts.jsonl` for the exported records that have a time of receipt; `None` (no
/// file) when none has.
async fn write_receipts(
    receipts: ExportReceipts<'_>,
    trail: &TrailId,
    from: ChainSeq,
    to: ChainSeq,
    exported: &[(u64, relay_domain::Timestamp)],
    dir: &Path,
) -> Result<Option<FileDigest>, ExportError> {
    let stored = receipts.store.receipts(trail, from.get(), to.get()).await?;
    // Whole seconds, as the line states it, so a verifier recomputes the same flag.
    let late_after_secs = receipts.late_after.as_secs();
    let late_after = std::time::Duration::from_secs(late_after_secs);
    let mut file: Option<HashedFile> = None;
    let mut line = Vec::with_capacity(128);
    // Both are in seq order: one pass.
    let mut next = stored.iter().peekable();
    for (seq, recorded_at) in exported {
        while next.peek().is_some_and(|r| r.last_seq < *seq) {
            next.next();
        }
        let Some(receipt) = next.peek().filter(|r| r.covers(*seq)) else {
            continue;
        };
        let lateness = Lateness::judge(*recorded_at, receipt.received_at, late_after);
        line.clear();
        ReceiptLine {
            seq: *seq,
            received_at: receipt.received_at,
            late: lateness.late,
            late_after_secs,
        }
        .write(&mut line);
        let out = match file.as_mut() {
            Some(f) => f,
            None => file.insert(HashedFile::create(dir.join(RECEIPTS_JSONL))?),
        };
        out.write(&line)?;
    }
    file.map(HashedFile::finish).transpose()
}

/// Every `SIGNATURE` record of `trail` up to `head`, in seq order.
async fn read_signatures(
    store: &dyn RecordStore,
    trail: &TrailId,
    head: ChainSeq,
) -> Result<Vec<Record>, ExportError> {
    let kind = EventKind::signature();
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page = store.read_kind(trail, &kind, after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.chain_seq.get();
        for record in page {
            if record.chain_seq > head {
                return Ok(out);
            }
            let in_order = out
                .last()
                .is_none_or(|prev: &Record| prev.chain_seq < record.chain_seq);
            if record.kind != kind || !in_order {
                return Err(inconsistent_signatures(trail, record.chain_seq));
            }
            out.push(record);
        }
    }
    Ok(out)
}

/// The store's filtered read of signatures disagrees with its full read.
fn inconsistent_signatures(trail: &TrailId, seq: ChainSeq) -> ExportError {
    ExportError::Store(RecordStoreError::Corrupt {
        trail_id: trail.clone(),
        seq: seq.get(),
        message: "the store's SIGNATURE records disagree with the trail read in full".into(),
    })
}

/// Zips the package directory `dir` into `zip_path` (deflate), fsyncing the result.
fn zip_dir(dir: &Path, zip_path: &Path) -> Result<(), ExportError> {
    let zip_err = |message: String| ExportError::Zip {
        path: zip_path.to_path_buf(),
        message,
    };
    let file = File::create_new(zip_path).map_err(|source| ExportError::Io {
        path: zip_path.to_path_buf(),
        source,
    })?;
    let mut writer = zip::ZipWriter::new(BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let result = (|| {
        for name in relay_domain::export::PACKAGE_FILES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            writer
                .start_file(name, options)
                .map_err(|e| zip_err(e.to_string()))?;
            let mut input = File::open(&path).map_err(|source| ExportError::Io {
                path: path.clone(),
                source,
            })?;
            io::copy(&mut input, &mut writer).map_err(|source| ExportError::Io {
                path: zip_path.to_path_buf(),
                source,
            })?;
        }
        let inner = writer.finish().map_err(|e| zip_err(e.to_string()))?;
        let file = inner
            .into_inner()
            .map_err(|e| zip_err(e.error().to_string()))?;
        file.sync_all().map_err(|source| ExportError::Io {
            path: zip_path.to_path_buf(),
            source,
        })
    })();
    if result.is_err() {
        remove_package(zip_path);
    }
    result
}

/// The OS user running an export from the command line (R2.1: never "unknown").
pub fn resolve_exporting_user() -> Result<relay_domain::Actor, crate::edge::EdgeError> {
    relay_capture::resolve_os_actor().map_err(|e| crate::edge::EdgeError::NoActor(e.to_string()))
}

/// The API's sealed exporter: builds zip packages under one directory (e.g.
/// `<data-dir>/exports`) with the process's own ports and journal, and serves them back.
///
/// Retention ([`relay_api::ExportRetention`], [`DirExporter::with_retention`]): a package's
/// age is its file's modification time, its trail and requester are read from its sealed
/// `manifest.json`; before every export and every download, packages older than the maximum
/// age are removed and the removal is recorded (`SYSTEM` `EXPORT_PACKAGES_REMOVED` in `_relay`,
/// naming each package, its trail and requester); a requester holding the quota is refused.
#[derive(Debug, Clone)]
pub struct DirExporter {
    dir: PathBuf,
    store: std::sync::Arc<dyn RecordStore>,
    notary: std::sync::Arc<dyn Notary>,
    secrets: std::sync::Arc<dyn SecretProvider>,
    clock: std::sync::Arc<dyn TimeSource>,
    journal: Journal,
    device: relay_domain::Device,
    retention: relay_api::ExportRetention,
    /// The server of record's times of receipt and lateness threshold (`receipts.jsonl`).
    receipts: Option<(std::sync::Arc<dyn ReceiptStore>, std::time::Duration)>,
    /// Sweeps and quota checks run one at a time, so two exports racing cannot both pass the
    /// quota.
    sweep: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// What the exporter knows of a package it holds.
#[derive(Debug, Clone)]
struct HeldPackage {
    name: String,
    path: PathBuf,
    modified: std::time::SystemTime,
    trail: Option<TrailId>,
    requested_by: Option<String>,
}

impl DirExporter {
    /// An exporter writing packages into `dir` (created on first use), with the default
    /// retention.
    pub fn new(
        dir: PathBuf,
        store: std::sync::Arc<dyn RecordStore>,
        notary: std::sync::Arc<dyn Notary>,
        secrets: std::sync::Arc<dyn SecretProvider>,
        clock: std::sync::Arc<dyn TimeSource>,
        journal: Journal,
        device: relay_domain::Device,
    ) -> Self {
        Self {
            dir,
            store,
            notary,
            secrets,
            clock,
            journal,
            device,
            retention: relay_api::ExportRetention::default(),
            receipts: None,
            sweep: std::sync::Arc::default(),
        }
    }

    /// The same exporter keeping packages for `retention.max_age`, at most
    /// `retention.per_user_quota` per requester.
    #[must_use]
    pub fn with_retention(mut self, retention: relay_api::ExportRetention) -> Self {
        self.retention = retention;
        self
    }

    /// The same exporter writing `receipts.jsonl` from `store` (server of record), late flags
    /// judged with `late_after`.
    #[must_use]
    pub fn with_receipts(
        mut self,
        store: std::sync::Arc<dyn ReceiptStore>,
        late_after: std::time::Duration,
    ) -> Self {
        self.receipts = Some((store, late_after));
        self
    }

    /// Every package in the directory, oldest first (a missing directory holds none).
    fn held(&self) -> io::Result<Vec<HeldPackage>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if !meta.is_file() || !name.ends_with(".zip") {
                continue;
            }
            let path = entry.path();
            let (trail, requested_by) = match package_owner(&path) {
                Ok(owner) => owner,
                Err(e) => {
                    tracing::warn!(package = %name, error = %e, "export package without a readable manifest");
                    (None, None)
                }
            };
            out.push(HeldPackage {
                name,
                path,
                modified: meta.modified()?,
                trail,
                requested_by,
            });
        }
        out.sort_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// Removes packages older than the maximum age and records the removal; returns the
    /// packages still held.
    async fn sweep_expired(&self) -> Result<Vec<HeldPackage>, relay_api::SealedExportError> {
        use relay_api::SealedExportError as E;
        let failed = |e: io::Error| E::Failed(format!("{}: {e}", self.dir.display()));
        let held = self.held().map_err(failed)?;
        let now = std::time::SystemTime::now();
        let (expired, kept): (Vec<_>, Vec<_>) = held.into_iter().partition(|p| {
            now.duration_since(p.modified)
                .is_ok_and(|age| age > self.retention.max_age)
        });
        if expired.is_empty() {
            return Ok(kept);
        }
        let mut removed = Vec::new();
        let mut failures = Vec::new();
        for p in &expired {
            match fs::remove_file(&p.path) {
                Ok(()) => removed.push(serde_json::json!({
                    "package": p.name,
                    "trail": p.trail.as_ref().map(TrailId::as_str),
                    "requested_by": p.requested_by,
                })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => failures.push(format!("{}: {e}", p.name)),
            }
        }
        if !removed.is_empty() {
            let payload = serde_json::json!({
                "reason": "max_age",
                "max_age_secs": self.retention.max_age.as_secs(),
                "removed": removed,
            });
            // Removed files cannot be put back: a failure to record them is returned (the
            // export or download fails and is logged), never swallowed.
            self.journal
                .system("EXPORT_PACKAGES_REMOVED", payload)
                .await
                .map_err(|e| {
                    E::Failed(format!(
                        "the removal of expired packages was not recorded: {e}"
                    ))
                })?;
            tracing::info!(removed = removed.len(), "expired export packages removed");
        }
        if !failures.is_empty() {
            return Err(E::Failed(format!(
                "expired export packages could not be removed: {}",
                failures.join("; ")
            )));
        }
        Ok(kept)
    }
}

/// The trail and requester named in a package's sealed manifest.
fn package_owner(path: &Path) -> Result<(Option<TrailId>, Option<String>), String> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut entry = zip
        .by_name(relay_domain::export::MANIFEST_FILE)
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    // A manifest is a few KiB; refuse to read a huge one into memory.
    (&mut entry)
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let trail = value
        .get("trail_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| TrailId::new(t).ok());
    let by = value
        .pointer("/generated_by/actor")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok((trail, by))
}

#[async_trait::async_trait]
impl relay_api::SealedExporter for DirExporter {
    async fn export(
        &self,
        job: relay_api::SealedExportJob,
    ) -> Result<relay_api::SealedExportView, relay_api::SealedExportError> {
        use relay_api::SealedExportError as E;
        let format = match job.format.as_str() {
            "csv" => ExportFormat::Csv,
            "json" => ExportFormat::Json,
            "both" => ExportFormat::Both,
            other => return Err(E::Invalid(format!("unknown format {other:?}"))),
        };
        // Held for the whole export, so concurrent exports of one requester cannot overshoot
        // the quota.
        let _one_at_a_time = self.sweep.lock().await;
        let held = self.sweep_expired().await?;
        let mine = held
            .iter()
            .filter(|p| p.requested_by.as_deref() == Some(job.requested_by.as_str()))
            .count();
        if mine >= self.retention.per_user_quota {
            return Err(E::QuotaExceeded(format!(
                "{} already holds {mine} export packages (at most {} at once); each is removed \
                 {} hours after it was made",
                job.requested_by,
                self.retention.per_user_quota,
                self.retention.max_age.as_secs() / 3600
            )));
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| E::Failed(format!("{}: {e}", self.dir.display())))?;
        let now = self
            .clock
            .now()
            .await
            .map_err(|e| E::Failed(e.to_string()))?;
        let stamp: String = now
            .at
            .to_canonical()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("{}-{stamp}-{}.zip", job.trail, std::process::id());
        // On a server of record a forwarded trail is checked with its edge's keys.
        let keys = crate::verify::trail_key_ring(self.secrets.as_ref(), &job.trail)
            .await
            .map_err(|e| E::Failed(relay_domain::error_chain(&e)))?;
        let request = ExportRequest {
            trail: job.trail,
            from_seq: job.from_seq,
            to_seq: job.to_seq,
            filter: ExportFilter::default(),
            format,
            out: self.dir.join(&name),
            zip: true,
            generated_by: GeneratedBy {
                actor: job.requested_by,
                actor_source: relay_domain::ActorSource::Token,
                device: self.device.clone(),
            },
        };
        let services = ExportServices {
            store: self.store.as_ref(),
            notary: self.notary.as_ref(),
            secrets: self.secrets.as_ref(),
            keys: &keys,
            clock: self.clock.as_ref(),
            journal: &self.journal,
        };
        let receipts = self
            .receipts
            .as_ref()
            .map(|(store, late_after)| ExportReceipts {
                store: store.as_ref(),
                late_after: *late_after,
            });
        let outcome = export_package_with_receipts(services, receipts, &request)
            .await
            .map_err(|e| match e {
                ExportError::EmptyTrail(_) | ExportError::BadRange { .. } => {
                    E::Invalid(e.to_string())
                }
                other => E::Failed(relay_domain::error_chain(&other)),
            })?;
        let package = outcome
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(name);
        Ok(relay_api::SealedExportView {
            package,
            records: outcome.manifest.records,
            head_seq: outcome.manifest.head.seq.get(),
            head_checksum: outcome.manifest.head.checksum.to_hex(),
            manifest_sha256: outcome.manifest_sha256.to_hex(),
            seal_fingerprint: outcome.fingerprint,
        })
    }

    async fn open(
        &self,
        package: &str,
    ) -> Result<relay_api::SealedPackage, relay_api::SealedExportError> {
        use relay_api::SealedExportError as E;
        // The API admits only plain file names; refuse anything else here too.
        if package.contains('/') || package.contains('\\') || package.starts_with('.') {
            return Err(E::NotFound);
        }
        let held = {
            let _one_at_a_time = self.sweep.lock().await;
            self.sweep_expired().await?
        };
        let Some(found) = held.into_iter().find(|p| p.name == package) else {
            return Err(E::NotFound);
        };
        let Some(trail) = found.trail else {
            // Without a readable manifest nobody can be shown to be allowed to have it.
            return Err(E::Failed(format!(
                "{}: the package's manifest is unreadable",
                found.path.display()
            )));
        };
        match tokio::fs::read(&found.path).await {
            Ok(bytes) => Ok(relay_api::SealedPackage {
                bytes,
                trail,
                requested_by: found.requested_by.unwrap_or_default(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(E::NotFound),
            Err(e) => Err(E::Failed(format!("{}: {e}", found.path.display()))),
        }
    }
}
