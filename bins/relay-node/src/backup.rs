//! `relay-edge backup` and `relay-edge restore`: an online, consistent copy of a data directory
//! with a manifest of per-trail counts and heads, and a restore that verifies before it finishes.
//!
//! A backup directory holds:
//!
//! - `relay.db`: the store as of one instant (`VACUUM INTO`, taken while the relay runs);
//! - `anchors/`: the notary's anchor files, copied *before* the store, so every anchor in the
//!   backup is covered by the copied trails (an anchor copied after would name a head the
//!   copy does not have and read as a truncation);
//! - `secret-provider.json`, and with `--include-secrets` the key files under `secrets/`;
//! - `manifest.json`: the counts and heads of the copied store, read back from the copy, and
//!   the SHA-256 of every file.
//!
//! A restore refuses a non-empty target, checks every file against the manifest, assembles the
//! data directory next to the target, verifies every trail (chain, HMACs, anchors), compares
//! counts and heads with the manifest, and only then moves it into place.

use std::path::{Path, PathBuf};

use relay_domain::ports::RecordStore;
use serde::{Deserialize, Serialize};

use relay_domain::error_chain;
use relay_runtime::custody::{CustodyState, custody_state};
use relay_runtime::verify::TrailVerdict;

/// The format tag of a backup manifest.
pub const BACKUP_FORMAT: &str = "relay-edge-backup/1";

/// The manifest written as `manifest.json` into a backup directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`BACKUP_FORMAT`].
    pub format: String,
    /// When the copy was taken (RFC 3339 UTC, host clock).
    pub created_at: String,
    /// The data directory copied.
    pub source: String,
    /// Whether `secrets/` is in the backup.
    pub includes_secrets: bool,
    /// Counts and heads of the copied store.
    pub state: CustodyState,
    /// Every copied file (relative path) with its size and SHA-256.
    pub files: Vec<BackupFile>,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Path relative to the backup directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// There is no relay database in the data directory.
    #[error("no relay data in {0} (relay.db not found); check --data-dir")]
    NoData(PathBuf),
    /// The target directory exists and is not empty.
    #[error("{0} exists and is not empty; refusing to write into it")]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened, copied or read.
    #[error("{path}: {message}")]
    Store {
        /// The database file or data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The backup is not a backup, or one of its files does not match its manifest.
    #[error("the backup {path} cannot be restored: {message}")]
    BadBackup {
        /// The backup directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The keys needed to verify the restore are not in the backup nor given.
    #[error(
        "the backup {0} holds no keys (it was taken without --include-secrets); pass \
         --secrets-from DIR with the installation's secrets directory so the restore can be verified"
    )]
    NoKeys(PathBuf),
    /// The restored copy failed verification; nothing was moved into the target.
    #[error("the restored copy failed verification (left for inspection in {staging}): {detail}")]
    Unverified {
        /// Where the failed copy was left.
        staging: PathBuf,
        /// Which trail failed and why.
        detail: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupOutcome {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: BackupManifest,
}

/// Takes an online backup of `data_dir` into `out` (created; must not exist or be empty).
pub async fn backup_data_dir(
    data_dir: &Path,
    out: &Path,
    include_secrets: bool,
) -> Result<BackupOutcome, BackupError> {
    let db = data_dir.join("relay.db");
    if !db.is_file() {
        return Err(BackupError::NoData(data_dir.to_path_buf()));
    }
    prepare_empty_dir(out)?;
    // Anchors first: each names a head the store already had, so the store copied next covers
    // every anchor in the backup.
    copy_tree(&data_dir.join("anchors"), &out.join("anchors"))?;
    let store =
        relay_local::SqliteRecordStore::open_file(&db, std::time::Duration::from_secs(30), 1)
            .await
            .map_err(|e| store_err(&db, &e))?;
    let copied = store.snapshot_into(&out.join("relay.db")).await;
    store.close().await;
    copied.map_err(|e| store_err(&db, &e))?;
    copy_if_exists(
        &data_dir.join("secret-provider.json"),
        &out.join("secret-provider.json"),
    )?;
    if include_secrets {
        copy_tree(&data_dir.join("secrets"), &out.join("secrets"))?;
    }
    let state = state_of_db(&out.join("relay.db")).await?;
    refuse_pending_wal(out, |message| BackupError::Store {
        path: out.join("relay.db"),
        message,
    })?;
    let manifest = BackupManifest {
        format: BACKUP_FORMAT.into(),
        created_at: now_rfc3339().await,
        source: data_dir.display().to_string(),
        includes_secrets: include_secrets,
        state,
        files: list_files(out)?,
    };
    write_json(&out.join("manifest.json"), &manifest)?;
    Ok(BackupOutcome {
        dir: out.to_path_buf(),
        manifest,
    })
}

/// What a restore found and did.
#[derive(Debug)]
pub struct RestoreOutcome {
    /// The restored data directory.
    pub data_dir: PathBuf,
    /// The backup's manifest.
    pub manifest: BackupManifest,
    /// The counts and heads read back from the restored store (equal to the manifest's).
    pub restored: CustodyState,
    /// Every trail's verdict (all hold).
    pub verdicts: Vec<TrailVerdict>,
    /// Trails the newer anchors given with `--anchors-from` show beyond the restored head.
    pub older_than_anchors: Vec<OlderThanAnchor>,
}

/// A trail the notary anchored beyond the restored head: the restore lacks its newer records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlderThanAnchor {
    /// The trail.
    pub trail: String,
    /// The restored head seq (0: the trail is not in the backup).
    pub restored_seq: u64,
    /// The highest seq an anchor names.
    pub anchored_seq: u64,
    /// When that anchor was made.
    pub anchored_at: String,
}

/// Restores the backup `from` into `data_dir` (must not exist or be empty), with the keys of
/// the backup or of `secrets_from`; `anchors_from` (the installation's current anchors) is
/// compared with the restored heads to report a restore older than the notary.
pub async fn restore_data_dir(
    from: &Path,
    data_dir: &Path,
    secrets_from: Option<&Path>,
    anchors_from: Option<&Path>,
) -> Result<RestoreOutcome, BackupError> {
    let manifest = read_manifest(from)?;
    check_files(from, &manifest)?;
    if dir_has_entries(data_dir)? {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    let keys = match secrets_from {
        Some(dir) => dir.to_path_buf(),
        None if manifest.includes_secrets => from.join("secrets"),
        None => return Err(BackupError::NoKeys(from.to_path_buf())),
    };
    let staging = staging_dir(data_dir)?;
    assemble(from, &keys, &staging)?;
    let report = match crate::edge::verify_data_dir(&staging, None).await {
        Ok(v) => v,
        Err(e) => {
            return Err(BackupError::Unverified {
                staging,
                detail: error_chain(&e),
            });
        }
    };
    if !report.append_only.holds() {
        let detail = format!(
            "the restored store lacks append-only enforcement: {}",
            report.append_only.missing.join("; ")
        );
        return Err(BackupError::Unverified { staging, detail });
    }
    let verdicts = report.verdicts;
    if let Some(bad) = verdicts.iter().find(|v| v.verdict.is_err()) {
        let detail = match &bad.verdict {
            Err(f) => format!(
                "trail {}: first bad chain_seq {}: {}",
                bad.trail_id, f.seq, f.reason
            ),
            Ok(_) => String::new(),
        };
        return Err(BackupError::Unverified { staging, detail });
    }
    let restored = state_of_db(&staging.join("relay.db")).await?;
    let differences = relay_runtime::custody::compare(&manifest.state, &restored);
    if !differences.is_empty() {
        let detail = differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(BackupError::Unverified {
            staging,
            detail: format!("the restored heads differ from the manifest: {detail}"),
        });
    }
    let older_than_anchors = match anchors_from {
        Some(dir) => older_than_anchors(&restored, dir).await?,
        None => Vec::new(),
    };
    if data_dir.exists() {
        // Empty (checked above): rename(2) replaces an empty directory.
        std::fs::remove_dir(data_dir).map_err(io("replace the empty directory", data_dir))?;
    }
    std::fs::rename(&staging, data_dir).map_err(io("move the restore into place", data_dir))?;
    Ok(RestoreOutcome {
        data_dir: data_dir.to_path_buf(),
        manifest,
        restored,
        verdicts,
        older_than_anchors,
    })
}

/// Trails whose newest anchor in `anchors_dir` names a seq beyond the restored head.
async fn older_than_anchors(
    restored: &CustodyState,
    anchors_dir: &Path,
) -> Result<Vec<OlderThanAnchor>, BackupError> {
    use relay_domain::ports::Notary;
    let notary =
        relay_local::FsNotary::open(anchors_dir.to_path_buf()).map_err(|e| BackupError::Store {
            path: anchors_dir.to_path_buf(),
            message: error_chain(&e),
        })?;
    let notary_err = |e: relay_domain::ports::NotaryError| BackupError::Store {
        path: anchors_dir.to_path_buf(),
        message: error_chain(&e),
    };
    let mut out = Vec::new();
    for trail in notary.anchored_trails().await.map_err(notary_err)? {
        let anchors = notary.anchors(&trail).await.map_err(notary_err)?;
        let Some(newest) = anchors.iter().max_by_key(|a| a.seq) else {
            continue;
        };
        let restored_seq = restored
            .trails
            .iter()
            .find(|t| t.trail == trail.as_str())
            .map_or(0, |t| t.head_seq);
        if newest.seq.get() > restored_seq {
            out.push(OlderThanAnchor {
                trail: trail.as_str().to_owned(),
                restored_seq,
                anchored_seq: newest.seq.get(),
                anchored_at: newest.anchored_at.to_canonical(),
            });
        }
    }
    Ok(out)
}

/// Counts and heads of the data directory's store (`upgrade-check`): opened as `run` opens it,
/// so the schema migration of this binary runs first and a comparison covers it.
pub async fn state_of_data_dir(data_dir: &Path) -> Result<CustodyState, BackupError> {
    let db = data_dir.join("relay.db");
    if !db.is_file() {
        return Err(BackupError::NoData(data_dir.to_path_buf()));
    }
    let adapters = relay_local::LocalAdapters::open(data_dir)
        .await
        .map_err(|e| store_err(data_dir, &e))?;
    let state = custody_state(adapters.record_store.as_ref() as &dyn RecordStore).await;
    adapters.record_store.close().await;
    state.map_err(|e| store_err(&db, &e))
}

/// Counts and heads of the database file at `db`.
async fn state_of_db(db: &Path) -> Result<CustodyState, BackupError> {
    let store =
        relay_local::SqliteRecordStore::open_file(db, std::time::Duration::from_secs(30), 1)
            .await
            .map_err(|e| store_err(db, &e))?;
    let state = custody_state(&store as &dyn RecordStore).await;
    store.close().await;
    state.map_err(|e| store_err(db, &e))
}

fn store_err(path: &Path, e: &dyn std::error::Error) -> BackupError {
    BackupError::Store {
        path: path.to_path_buf(),
        message: error_chain(e),
    }
}

/// Builds the data directory in `staging` from the backup and the key directory.
fn assemble(from: &Path, keys: &Path, staging: &Path) -> Result<(), BackupError> {
    copy_file(&from.join("relay.db"), &staging.join("relay.db"))?;
    copy_tree(&from.join("anchors"), &staging.join("anchors"))?;
    copy_if_exists(
        &from.join("secret-provider.json"),
        &staging.join("secret-provider.json"),
    )?;
    copy_tree(keys, &staging.join("secrets"))?;
    restrict(&staging.join("secrets"), 0o700)?;
    Ok(())
}

fn read_manifest(from: &Path) -> Result<BackupManifest, BackupError> {
    let path = from.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| BackupError::BadBackup {
        path: from.to_path_buf(),
        message: format!("manifest.json cannot be read: {e}"),
    })?;
    let manifest: BackupManifest =
        serde_json::from_str(&text).map_err(|e| BackupError::BadBackup {
            path: from.to_path_buf(),
            message: format!("manifest.json is not a backup manifest: {e}"),
        })?;
    if manifest.format != BACKUP_FORMAT {
        return Err(BackupError::BadBackup {
            path: from.to_path_buf(),
            message: format!("format {:?}, expected {BACKUP_FORMAT:?}", manifest.format),
        });
    }
    Ok(manifest)
}

/// Every file of the manifest is present with its size and SHA-256; no file is added.
fn check_files(from: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let bad = |message: String| BackupError::BadBackup {
        path: from.to_path_buf(),
        message,
    };
    if !manifest.files.iter().any(|f| f.path == "relay.db") {
        return Err(bad("the manifest lists no relay.db".into()));
    }
    refuse_pending_wal(from, bad)?;
    let found = list_files(from)?;
    for f in &manifest.files {
        match found.iter().find(|g| g.path == f.path) {
            None => return Err(bad(format!("{} is missing", f.path))),
            Some(g) if g != f => {
                return Err(bad(format!(
                    "{} does not match the manifest (sha256 {} size {}, manifest says {} size {})",
                    f.path, g.sha256, g.size, f.sha256, f.size
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = found
        .iter()
        .find(|g| !manifest.files.iter().any(|f| f.path == g.path))
    {
        return Err(bad(format!("{} is not in the manifest", extra.path)));
    }
    Ok(())
}

/// SQLite's own side files next to `relay.db`. Opening the copy (to read its counts and
/// heads, or by anyone inspecting a backup) creates them, and they vanish when the last
/// connection closes, which may be after a listing: they are never part of a backup, and a
/// restore copies `relay.db` alone. A write-ahead log holding frames is different: see
/// [`refuse_pending_wal`].
const SQLITE_SIDE_FILES: [&str; 3] = ["relay.db-wal", "relay.db-shm", "relay.db-journal"];

/// Refuses a `relay.db-wal` with content beside the backup's `relay.db`: the copy is
/// checkpointed when the backup is taken, so frames in the log were written to the copy after
/// that (the restore would silently drop them, or a tool would read them as part of the copy).
fn refuse_pending_wal(
    dir: &Path,
    error: impl FnOnce(String) -> BackupError,
) -> Result<(), BackupError> {
    let wal = dir.join("relay.db-wal");
    match std::fs::metadata(&wal) {
        Ok(meta) if meta.len() > 0 => Err(error(format!(
            "relay.db-wal holds {} bytes written to the copy after it was taken; the backup \
             was opened and changed",
            meta.len()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::Io {
            what: "inspect",
            path: wal,
            source: e,
        }),
    }
}

/// Every regular file under `root` except `manifest.json` and SQLite's side files of
/// `relay.db` ([`SQLITE_SIDE_FILES`]), sorted, with size and SHA-256.
fn list_files(root: &Path) -> Result<Vec<BackupFile>, BackupError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<BackupFile>) -> Result<(), BackupError> {
        for entry in std::fs::read_dir(dir).map_err(io("read directory", dir))? {
            let entry = entry.map_err(io("read directory", dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io("inspect", &path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if rel == "manifest.json" || SQLITE_SIDE_FILES.contains(&rel.as_str()) {
                    continue;
                }
                out.push(BackupFile {
                    size: entry.metadata().map_err(io("inspect", &path))?.len(),
                    sha256: relay_runtime::build_info::sha256_file(&path)
                        .map_err(io("hash", &path))?,
                    path: rel,
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn dir_has_entries(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("read directory", dir)(e)),
    }
}

/// Creates `dir` (owner-only) or accepts it when it exists and is empty.
fn prepare_empty_dir(dir: &Path) -> Result<(), BackupError> {
    if dir_has_entries(dir)? {
        return Err(BackupError::NotEmpty(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    restrict(dir, 0o700)
}

/// A fresh sibling of `target` to assemble a restore in.
fn staging_dir(target: &Path) -> Result<PathBuf, BackupError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "relay-data".into());
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("clear the staging directory", &staging))?;
    }
    std::fs::create_dir(&staging).map_err(io("create", &staging))?;
    restrict(&staging, 0o700)?;
    Ok(staging)
}

fn restrict(path: &Path, mode: u32) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    if !path.exists() {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", path))
}

/// Copies `from` to `to` (fsynced), owner-only: the source's owner bits, never group's or
/// others' (a backup holds the trail and the password hashes, whatever mode an older relay
/// left on the source).
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::copy(from, to).map_err(io("copy", from))?;
    let mode = std::fs::metadata(from)
        .map_err(io("inspect", from))?
        .permissions()
        .mode()
        & 0o700;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", to))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", to))
}

fn copy_if_exists(from: &Path, to: &Path) -> Result<(), BackupError> {
    if from.is_file() {
        copy_file(from, to)?;
    }
    Ok(())
}

/// Copies every regular file under `from` (absent: nothing) into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), BackupError> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read directory", from)(e)),
    };
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in entries {
        let entry = entry.map_err(io("read directory", from))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io("inspect", &path))?;
        if kind.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            copy_file(&path, &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BackupError> {
    use std::io::Write;
    let body = serde_json::to_vec_pretty(value).map_err(|e| BackupError::Io {
        what: "encode",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let mut f = std::fs::File::create(path).map_err(io("create", path))?;
    f.write_all(&body)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io("write", path))
}

/// The host clock as RFC 3339 UTC (the manifest's `created_at`: a label, not evidence).
async fn now_rfc3339() -> String {
    use relay_domain::ports::TimeSource;
    match relay_local::SystemTimeSource::new().now().await {
        Ok(t) => t.at.to_canonical(),
        Err(e) => {
            tracing::warn!(error = %e, "no time for the backup manifest");
            "unknown".into()
        }
    }
}
