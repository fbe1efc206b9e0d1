//! The package writer: one pass over the store, files hashed and written on their own threads,
//! the optional zip.

use super::*;
use relay_domain::anchor_history::{AnchorBase, build_anchor};

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
    let mut payload = serde_json::json!({
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
    if let Some(review) = manifest.rendered_sha256.get(ACCESS_REVIEW_JSON) {
        payload["access_review_sha256"] = serde_json::json!(review.sha256);
    }
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
    if request.access_review.is_some()
        && (!trail.is_relay()
            || !request.filter.is_empty()
            || from != ChainSeq::FIRST
            || to != head.seq)
    {
        return Err(ExportError::AccessReviewOutsideRelay(trail.clone()));
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
    // The newest anchor with a tree head, which an anchor of the head made here links to: its
    // frontier is taken when the walk reaches it, and the leaves after it are kept.
    let link_to = anchors
        .iter()
        .filter(|a| a.seq < head.seq && a.merkle_root.is_some())
        .max_by_key(|a| a.seq)
        .map(|a| (a.seq, a.merkle_root));
    let mut base: Option<AnchorBase> = None;
    let mut since_base: Vec<Checksum> = Vec::new();
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
    let mut line = Vec::with_capacity(4096);
    // Each page's per-record work (HMAC verdict, leaf hash, rows) is prepared on every core;
    // the ordered checks and the writes below stay on this thread, in trail order.
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let renderings = Renderings {
        csv: csv.is_some(),
        json: json.is_some(),
    };
    let exported = |record: &Record| {
        record.chain_seq >= from && record.chain_seq <= to && request.filter.selects(record)
    };
    // Renders one page; the next page is read while this runs (see the loop below).
    let mut prepared = PreparedPage::new();
    let mut render_page = |page: &[Record]| -> Result<(), ExportError> {
        prepared.prepare(&verifier, page, &signatures, renderings, &exported, threads);
        for (record, row) in page.iter().zip(prepared.rows()) {
            if record.chain_seq > head.seq {
                break;
            }
            verifier
                .push_prepared(record, &row)
                .map_err(ExportError::Broken)?;
            let leaf = row.leaf;
            all_leaves.push_leaf_hash(leaf);
            if base.is_some() {
                since_base.push(leaf);
            }
            if let Some((seq, Some(root))) = link_to
                && seq == record.chain_seq
                && all_leaves.root() == root
            {
                base = Some(AnchorBase {
                    seq,
                    root,
                    frontier: all_leaves.frontier().to_vec(),
                });
            }
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
            if !exported(record) {
                continue;
            }
            rows.push(&leaf);
            // A whole-trail export's tree is the trail's own (`all_leaves`).
            if !whole {
                acc.push_leaf_hash(leaf);
            }
            if receipts.is_some() {
                exported_times.push((record.chain_seq.get(), record.recorded_at));
            }
            if !whole {
                selected.push(record.chain_seq.get() - 1);
                if !signatures.on(&record.checksum).is_empty() {
                    exported_checksums.insert(record.checksum);
                }
            }
            jsonl.write(row.jsonl)?;
            if let Some(c) = csv.as_mut() {
                c.write(row.csv)?;
            }
            if let Some(j) = json.as_mut() {
                if count > 0 {
                    j.write(JSON_SEPARATOR)?;
                }
                j.write(row.json)?;
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
        let anchor = build_anchor(
            trail,
            head.seq,
            head.checksum,
            &all_leaves,
            base.as_ref(),
            &since_base,
            (now.at, now.label),
            Some(&seal_key),
        );
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
    if let Some(review) = &request.access_review {
        let mut file = HashedFile::create(dir.join(ACCESS_REVIEW_JSON))?;
        file.write(review)?;
        digests.insert(ACCESS_REVIEW_JSON.to_owned(), file.finish()?);
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
        merkle_root: if whole { all_leaves.root() } else { acc.root() },
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
