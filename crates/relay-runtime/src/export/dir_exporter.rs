//! The review API's sealed exporter ([`DirExporter`]): packages under one directory, their
//! retention, and their download.

use super::*;

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
            access_review: job.access_review,
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
                ExportError::EmptyTrail(_)
                | ExportError::BadRange { .. }
                | ExportError::AccessReviewOutsideRelay(_) => E::Invalid(e.to_string()),
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
