//! `FsObjectStore`: objects as files under a root directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use relay_domain::ports::{
    ObjectKey, ObjectMeta, ObjectStore, ObjectStoreCapabilities, ObjectStoreError, PutMode,
    WormPosture,
};

use crate::error::LocalError;

/// Names starting with this are the store's temporary files: never listed, never valid keys.
const TEMP_PREFIX: &str = ".relay-tmp.";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An object store on the local filesystem: key `a/b/c` is the file `<root>/a/b/c`.
///
/// - **Atomic puts.** Bytes go to a temporary file in the object's directory, which is fsynced,
///   then moved into place and the directory fsynced; a reader sees the old object or the whole
///   new one.
/// - **`PutMode::Create` is atomic** (`conditional_put`): the temporary file is hard-linked to
///   the final name, which fails if the name exists, so two racing creators cannot both win.
///   On a filesystem without hard links the store falls back to `create_new` on the final path
///   (still exclusive, but a reader may then see the object while it is being written).
/// - **Confined to the root.** Keys are validated by [`ObjectKey`], and every path component
///   below the root is checked with `symlink_metadata`: a symlink anywhere on the way is refused,
///   so nothing outside the root is read or written through the store. (A process that swaps a
///   directory for a symlink between the check and the open is outside this guarantee.)
/// - **Not WORM.** Anyone with access to the directory can delete or rewrite objects.
/// - Key segments starting with `.relay-tmp.` are reserved for temporary files and refused.
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

/// Why a filesystem operation on an object failed, before it gets the port's meaning.
enum Fault {
    NotFound,
    AlreadyExists,
    Refused(String),
    Local(LocalError),
}

impl From<LocalError> for Fault {
    fn from(e: LocalError) -> Self {
        Fault::Local(e)
    }
}

impl Fault {
    fn into_port(self, key: &ObjectKey) -> ObjectStoreError {
        match self {
            Fault::NotFound => ObjectStoreError::NotFound { key: key.clone() },
            Fault::AlreadyExists => ObjectStoreError::AlreadyExists { key: key.clone() },
            Fault::Refused(message) => ObjectStoreError::PermissionDenied {
                key: key.clone(),
                message,
                source: None,
            },
            Fault::Local(LocalError::Io { op, path, source })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                ObjectStoreError::PermissionDenied {
                    key: key.clone(),
                    message: format!("{op} {}", path.display()),
                    source: Some(Box::new(source)),
                }
            }
            Fault::Local(e) => e.into(),
        }
    }
}

impl FsObjectStore {
    /// Opens the store rooted at `root`, creating the directory if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ObjectStoreError> {
        let root = root.into();
        crate::private_fs::create_dir_all_private(&root)
            .map_err(LocalError::io("create object store root", &root))?;
        // The root itself may be a symlink an operator chose; everything below it may not.
        let root = fs::canonicalize(&root).map_err(LocalError::io("resolve root", &root))?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn run<T, F>(&self, key: &ObjectKey, f: F) -> Result<T, ObjectStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &ObjectKey) -> Result<T, Fault> + Send + 'static,
    {
        let root = self.root.clone();
        let owned = key.clone();
        tokio::task::spawn_blocking(move || f(&root, &owned))
            .await
            .map_err(|e| ObjectStoreError::from(LocalError::Task(e)))?
            .map_err(|fault| fault.into_port(key))
    }
}

/// Walks `key` below `root`, refusing symlinks; creates missing directories when `create`.
/// Returns the object's path, which may not exist yet.
fn resolve(root: &Path, key: &ObjectKey, create: bool) -> Result<PathBuf, Fault> {
    let segments: Vec<&str> = key.segments().collect();
    if segments.iter().any(|s| s.starts_with(TEMP_PREFIX)) {
        return Err(Fault::Refused(format!(
            "key segments starting with {TEMP_PREFIX:?} are reserved"
        )));
    }
    let mut path = root.to_path_buf();
    let Some((last, dirs)) = segments.split_last() else {
        return Err(Fault::NotFound);
    };
    for segment in dirs {
        path.push(segment);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(&path)),
            Ok(m) if m.is_dir() => {}
            Ok(_) if create => {
                return Err(Fault::Refused(format!(
                    "{} is an object, not a directory",
                    path.display()
                )));
            }
            Ok(_) => return Err(Fault::NotFound),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match crate::private_fs::create_dir_private(&path) {
                    Ok(()) => sync_dir(path.parent().unwrap_or(root))?,
                    // A concurrent put made it; check what it is on the next pass.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let m = fs::symlink_metadata(&path)
                            .map_err(LocalError::io("inspect", &path))?;
                        if m.file_type().is_symlink() {
                            return Err(symlink_refused(&path));
                        }
                        if !m.is_dir() {
                            return Err(Fault::Refused(format!(
                                "{} is an object, not a directory",
                                path.display()
                            )));
                        }
                    }
                    Err(e) => return Err(LocalError::io("create directory", &path)(e).into()),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Fault::NotFound),
            Err(e) => return Err(LocalError::io("inspect", &path)(e).into()),
        }
    }
    path.push(last);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_refused(&path)),
        _ => Ok(path),
    }
}

fn symlink_refused(path: &Path) -> Fault {
    tracing::warn!(path = %path.display(), "object store refused a path through a symlink");
    Fault::Refused(format!(
        "{} is a symlink or was replaced; the store never follows links out of its root",
        path.display()
    ))
}

fn sync_dir(dir: &Path) -> Result<(), LocalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LocalError::io("fsync directory", dir))
}

fn temp_path(dir: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt: u64 = rand::random();
    dir.join(format!(
        "{TEMP_PREFIX}{}.{n}.{salt:016x}",
        std::process::id()
    ))
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    let mut file = crate::private_fs::private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(LocalError::io("create", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(LocalError::io("write", path))
}

/// Removes a temporary file; a failure is logged (the put's own outcome is what the caller
/// needs), and the leftover is invisible to `list`.
fn remove_temp(tmp: &Path) {
    if let Err(e) = fs::remove_file(tmp) {
        tracing::warn!(path = %tmp.display(), error = %e, "could not remove temporary object file");
    }
}

fn put_blocking(
    root: &Path,
    key: &ObjectKey,
    bytes: &[u8],
    mode: PutMode,
) -> Result<ObjectMeta, Fault> {
    let path = resolve(root, key, true)?;
    let dir = path.parent().unwrap_or(root).to_path_buf();
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            return Err(Fault::Refused(format!(
                "{} is a directory of other objects",
                path.display()
            )));
        }
        Ok(_) if mode == PutMode::Create => return Err(Fault::AlreadyExists),
        _ => {}
    }
    let tmp = temp_path(&dir);
    if let Err(e) = write_new_file(&tmp, bytes) {
        remove_temp(&tmp);
        return Err(e.into());
    }
    let placed = match mode {
        PutMode::Overwrite => fs::rename(&tmp, &path).map_err(|e| {
            remove_temp(&tmp);
            Fault::from(LocalError::io("rename into place", &path)(e))
        }),
        PutMode::Create => match fs::hard_link(&tmp, &path) {
            Ok(()) => {
                remove_temp(&tmp);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                remove_temp(&tmp);
                Err(Fault::AlreadyExists)
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                remove_temp(&tmp);
                match write_new_file(&path, bytes) {
                    Err(LocalError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        Err(Fault::AlreadyExists)
                    }
                    other => other.map_err(Fault::from),
                }
            }
            Err(e) => {
                remove_temp(&tmp);
                Err(LocalError::io("link into place", &path)(e).into())
            }
        },
    };
    placed?;
    sync_dir(&dir)?;
    Ok(ObjectMeta {
        key: key.clone(),
        size: bytes.len() as u64,
    })
}

fn regular_file(path: &Path) -> Result<std::fs::Metadata, Fault> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(m),
        Ok(_) => Err(Fault::NotFound),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Fault::NotFound),
        Err(e) => Err(LocalError::io("inspect", path)(e).into()),
    }
}

fn list_blocking(root: &Path, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, LocalError> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, key_prefix)) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed by a concurrent delete of its last object's directory: nothing to list.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LocalError::io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(LocalError::io("list", &dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(dir = %dir.display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let key = format!("{key_prefix}{name}");
            let file_type = entry
                .file_type()
                .map_err(LocalError::io("inspect", entry.path()))?;
            if file_type.is_dir() {
                // Only descend where keys can still match the prefix.
                let dir_key = format!("{key}/");
                if prefix.is_none_or(|p| dir_key.starts_with(p) || p.starts_with(&dir_key)) {
                    dirs.push((entry.path(), dir_key));
                }
            } else if file_type.is_file() {
                if prefix.is_some_and(|p| !key.starts_with(p)) {
                    continue;
                }
                let Ok(object_key) = ObjectKey::new(key.as_str()) else {
                    tracing::warn!(path = %entry.path().display(), "skipping a file that is not a valid object key");
                    continue;
                };
                let meta = entry
                    .metadata()
                    .map_err(LocalError::io("inspect", entry.path()))?;
                out.push(ObjectMeta {
                    key: object_key,
                    size: meta.len(),
                });
            } else {
                tracing::warn!(path = %entry.path().display(), "skipping a symlink or special file in the object store");
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    fn capabilities(&self) -> ObjectStoreCapabilities {
        ObjectStoreCapabilities::new(true, WormPosture::Unenforced)
    }

    async fn put(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<ObjectMeta, ObjectStoreError> {
        self.run(key, move |root, key| put_blocking(root, key, &bytes, mode))
            .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, ObjectStoreError> {
        self.run(key, |root, key| {
            let path = resolve(root, key, false)?;
            regular_file(&path)?;
            fs::read(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Fault::NotFound,
                _ => LocalError::io("read", &path)(e).into(),
            })
        })
        .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, ObjectStoreError> {
        self.run(key, |root, key| {
            let path = resolve(root, key, false)?;
            let meta = regular_file(&path)?;
            Ok(ObjectMeta {
                key: key.clone(),
                size: meta.len(),
            })
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        self.run(key, |root, key| {
            let path = resolve(root, key, false)?;
            regular_file(&path)?;
            fs::remove_file(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Fault::NotFound,
                _ => LocalError::io("delete", &path)(e).into(),
            })?;
            sync_dir(path.parent().unwrap_or(root))?;
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let root = self.root.clone();
        let prefix = prefix.map(str::to_owned);
        tokio::task::spawn_blocking(move || list_blocking(&root, prefix.as_deref()))
            .await
            .map_err(|e| ObjectStoreError::from(LocalError::Task(e)))?
            .map_err(ObjectStoreError::from)
    }
}
