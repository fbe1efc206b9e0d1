//! `FileSecretProvider`: versioned secrets in owner-only files under `<data-dir>/secrets/`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rand::RngCore;
use rand::rngs::OsRng;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretValue, merge_imported};
use relay_domain::{KeyId, TrailKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::LocalError;

/// Bytes of a new secret version: 256 bits.
const SECRET_BYTES: usize = 32;

/// Tag of the file format, so a future format is recognized rather than misread.
const FORMAT: &str = "gims-relay-secret-v1";

/// Secrets kept as one JSON file per name, `<dir>/<name>.json`, holding every version:
/// `{"format":"gims-relay-secret-v1","versions":[{"id":"k-…","secret_hex":"…"}]}`.
///
/// - The directory is created with mode 0700 and each file with mode 0600, written to a
///   temporary file first, fsynced and moved into place, so a crash never leaves half a key.
/// - **Refuses insecure storage** (R10.3): if the directory or a file is accessible to group or
///   others (`mode & 0o077 != 0`), or is a symlink, every operation on it fails with
///   [`SecretError::Insecure`] saying which path and which `chmod` fixes it.
/// - Version ids are [`TrailKey::fingerprint_id`] of the bytes.
/// - `create` is atomic across processes (hard link onto the final name); `rotate` is
///   serialized within this process only, so rotate from one process at a time.
/// - Secret bytes never appear in errors, logs or `Debug` output.
#[derive(Debug, Clone)]
pub struct FileSecretProvider {
    dir: PathBuf,
    write_lock: Arc<Mutex<()>>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    format: String,
    versions: Vec<StoredVersion>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct StoredVersion {
    id: String,
    secret_hex: String,
}

impl FileSecretProvider {
    /// Opens the provider on `dir`, creating it with mode 0700 if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SecretError> {
        let dir = dir.into();
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(LocalError::io("create data directory", parent))?;
        }
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(LocalError::io("create secrets directory", &dir)(e).into()),
        }
        Ok(Self {
            dir,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// The directory holding the secret files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding every version of `name`.
    pub fn secret_file(&self, name: &SecretName) -> PathBuf {
        // Secret names are ASCII letters, digits, '-', '_', '.', not starting with '.', so
        // this always names a file inside the directory.
        self.dir.join(format!("{name}.json"))
    }

    async fn run<T, F>(&self, name: &SecretName, f: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&Store<'_>) -> Result<T, SecretError> + Send + 'static,
    {
        let dir = self.dir.clone();
        let name = name.clone();
        let lock = Arc::clone(&self.write_lock);
        tokio::task::spawn_blocking(move || {
            let store = Store {
                dir: &dir,
                name: &name,
                lock: &lock,
            };
            store.check_dir()?;
            f(&store)
        })
        .await
        .map_err(LocalError::Task)?
    }
}

/// One blocking operation on one secret.
struct Store<'a> {
    dir: &'a Path,
    name: &'a SecretName,
    lock: &'a Mutex<()>,
}

impl Store<'_> {
    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }

    fn insecure(&self, message: String) -> SecretError {
        tracing::error!(secret = %self.name, "{message}");
        SecretError::Insecure {
            name: self.name.clone(),
            message,
        }
    }

    fn malformed(&self, message: impl Into<String>) -> SecretError {
        SecretError::Malformed {
            name: self.name.clone(),
            message: message.into(),
        }
    }

    fn denied(&self, e: LocalError) -> SecretError {
        match e {
            LocalError::Io { op, path, source }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                SecretError::PermissionDenied {
                    name: self.name.clone(),
                    message: format!("{op} {}", path.display()),
                    source: Some(Box::new(source)),
                }
            }
            other => other.into(),
        }
    }

    fn check_dir(&self) -> Result<(), SecretError> {
        let meta = fs::symlink_metadata(self.dir)
            .map_err(|e| self.denied(LocalError::io("inspect secrets directory", self.dir)(e)))?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(self.insecure(format!(
                "{} is not a plain directory; the secrets directory must not be a symlink",
                self.dir.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(self.insecure(format!(
                "directory {} has mode {mode:04o} and is accessible to group or others; \
                 run `chmod 700 {}` (and `chmod 600` on the files in it)",
                self.dir.display(),
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Reads every version, oldest first, refusing a file others can read or write.
    fn load(&self) -> Result<Vec<SecretValue>, SecretError> {
        let path = self.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SecretError::NotFound {
                    name: self.name.clone(),
                    version: None,
                });
            }
            Err(e) => return Err(self.denied(LocalError::io("inspect secret file", &path)(e))),
        };
        if meta.file_type().is_symlink() || !meta.is_file() {
            return Err(self.insecure(format!(
                "{} is not a plain file; secret files must not be symlinks",
                path.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(self.insecure(format!(
                "file {} has mode {mode:04o} and is accessible to group or others; \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = Zeroizing::new(
            fs::read(&path)
                .map_err(|e| self.denied(LocalError::io("read secret file", &path)(e)))?,
        );
        decode_versions(self.name, &path.display().to_string(), &text)
    }

    /// Writes every version to a fresh 0600 temporary file, fsynced, and returns its path.
    fn write_temp(&self, versions: &[SecretValue]) -> Result<PathBuf, SecretError> {
        let bytes = encode_versions(versions)?;
        let salt: u64 = rand::random();
        let tmp = self.dir.join(format!(
            ".{}.tmp.{}.{salt:016x}",
            self.name,
            std::process::id()
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                // The umask may only remove bits; set exactly 0600 regardless.
                f.set_permissions(fs::Permissions::from_mode(0o600))?;
                f.write_all(&bytes)?;
                f.sync_all()
            });
        if let Err(e) = written {
            self.remove_temp(&tmp);
            return Err(self.denied(LocalError::io("write secret file", &tmp)(e)));
        }
        Ok(tmp)
    }

    fn remove_temp(&self, tmp: &Path) {
        if let Err(e) = fs::remove_file(tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "could not remove temporary secret file");
        }
    }

    fn sync_dir(&self) -> Result<(), SecretError> {
        File::open(self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LocalError::io("fsync secrets directory", self.dir)(e).into())
    }
}

/// Decodes the versions of `name` stored as a secret file's bytes (`FORMAT`), oldest first;
/// `location` says where they were read from. Messages never quote the bytes.
pub(crate) fn decode_versions(
    name: &SecretName,
    location: &str,
    bytes: &[u8],
) -> Result<Vec<SecretValue>, SecretError> {
    let malformed = |message: String| SecretError::Malformed {
        name: name.clone(),
        message,
    };
    // serde_json's messages give positions, never the text around them.
    let file: SecretFile =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("{location}: {e}")))?;
    if file.format != FORMAT {
        return Err(malformed(format!(
            "{location}: unknown format {:?} (expected {FORMAT:?})",
            file.format
        )));
    }
    if file.versions.is_empty() {
        return Err(malformed(format!("{location}: holds no version")));
    }
    file.versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let id = KeyId::new(v.id.as_str())
                .map_err(|e| malformed(format!("version {}: bad id: {e}", i + 1)))?;
            let bytes = hex::decode(&v.secret_hex)
                .map_err(|_| malformed(format!("version {id}: secret_hex is not hex")))?;
            if bytes.len() < SECRET_BYTES {
                return Err(malformed(format!(
                    "version {id}: {} bytes, at least {SECRET_BYTES} required",
                    bytes.len()
                )));
            }
            Ok(SecretValue::new(id, bytes))
        })
        .collect()
}

/// Encodes every version as a secret file's bytes (`FORMAT`, one line), wiped on drop.
pub(crate) fn encode_versions(versions: &[SecretValue]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let file = SecretFile {
        format: FORMAT.to_owned(),
        versions: versions
            .iter()
            .map(|v| StoredVersion {
                id: v.id().to_string(),
                secret_hex: hex::encode(v.expose()),
            })
            .collect(),
    };
    let mut bytes = Zeroizing::new(serde_json::to_vec(&file).map_err(|e| SecretError::Other {
        message: "could not encode secret file".into(),
        source: Some(Box::new(e)),
    })?);
    bytes.push(b'\n');
    Ok(bytes)
}

/// A new version of 256 random bits, its id the fingerprint of the bytes.
pub(crate) fn random_version() -> Result<SecretValue, SecretError> {
    let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| SecretError::Unavailable {
            message: "the OS random number generator failed".into(),
            source: Some(Box::new(e)),
        })?;
    let id = TrailKey::fingerprint_id(&bytes);
    Ok(SecretValue::new(id, bytes.to_vec()))
}

#[async_trait]
impl SecretProvider for FileSecretProvider {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |s| {
            let mut versions = s.load()?;
            versions
                .pop()
                .ok_or_else(|| s.malformed("holds no version"))
        })
        .await
    }

    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        let id = id.clone();
        self.run(name, move |s| {
            s.load()?
                .into_iter()
                .find(|v| *v.id() == id)
                .ok_or_else(|| SecretError::NotFound {
                    name: s.name.clone(),
                    version: Some(id),
                })
        })
        .await
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        self.run(name, |s| {
            Ok(s.load()?.iter().map(|v| v.id().clone()).collect())
        })
        .await
    }

    async fn all_versions(&self, name: &SecretName) -> Result<Vec<SecretValue>, SecretError> {
        // One read of the one file: the versions as they were at one instant.
        self.run(name, |s| s.load()).await
    }

    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |s| {
            let value = random_version()?;
            let tmp = s.write_temp(std::slice::from_ref(&value))?;
            let path = s.path();
            // A hard link fails if the name exists: exactly one of two racing creators wins.
            let linked = fs::hard_link(&tmp, &path);
            s.remove_temp(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(SecretError::AlreadyExists {
                        name: s.name.clone(),
                    });
                }
                Err(e) => return Err(s.denied(LocalError::io("create secret file", &path)(e))),
            }
            s.sync_dir()?;
            tracing::info!(secret = %s.name, key_id = %value.id(), "created secret");
            Ok(value)
        })
        .await
    }

    async fn import(
        &self,
        name: &SecretName,
        versions: &[SecretValue],
    ) -> Result<Vec<KeyId>, SecretError> {
        let incoming = versions.to_vec();
        self.run(name, move |s| {
            let _guard = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            let stored = match s.load() {
                Ok(v) => v,
                Err(SecretError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let (merged, added) = merge_imported(s.name, &stored, &incoming)?;
            if added.is_empty() {
                return Ok(added);
            }
            let tmp = s.write_temp(&merged)?;
            let path = s.path();
            if let Err(e) = fs::rename(&tmp, &path) {
                s.remove_temp(&tmp);
                return Err(s.denied(LocalError::io("replace secret file", &path)(e)));
            }
            s.sync_dir()?;
            tracing::info!(secret = %s.name, added = added.len(), versions = merged.len(), "imported secret versions");
            Ok(added)
        })
        .await
    }

    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |s| {
            let _guard = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut versions = s.load()?;
            let value = random_version()?;
            if versions.iter().any(|v| v.id() == value.id()) {
                return Err(SecretError::Other {
                    message: format!("secret {}: new version id collides", s.name),
                    source: None,
                });
            }
            versions.push(value.clone());
            let tmp = s.write_temp(&versions)?;
            let path = s.path();
            if let Err(e) = fs::rename(&tmp, &path) {
                s.remove_temp(&tmp);
                return Err(s.denied(LocalError::io("replace secret file", &path)(e)));
            }
            s.sync_dir()?;
            tracing::info!(secret = %s.name, key_id = %value.id(), "rotated secret");
            Ok(value)
        })
        .await
    }
}
