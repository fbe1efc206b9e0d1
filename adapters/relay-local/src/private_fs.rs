//! Owner-only files and directories.
//!
//! The data directory holds the audit trail, account password hashes, sealed exports and
//! anchors. Everything the local adapters create in it is made owner-only (directories 0700,
//! files 0600) whatever the process umask, and a data directory that group or others can
//! access is refused when it is opened, as the secrets directory already is.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` and its missing parents as owner-only directories (0700); an existing
/// directory is left as it is.
pub fn create_dir_all_private(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Creates the directory `path` (its parent must exist) as owner-only (0700).
pub fn create_dir_private(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o700).create(path)
}

/// Open options that create a file owner-only (0600); the umask can only remove bits.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// Sets exactly `mode` on `path` (for files another program created, such as SQLite's
/// `VACUUM INTO` target).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Makes the directory `path` owner-only (0700) when it is empty: a directory handed to the
/// relay to initialise (a fresh temporary or state directory) becomes the relay's. A directory
/// that already holds anything is left as it is, to be refused if shared.
pub fn make_private_if_empty(path: &Path) -> io::Result<()> {
    if fs::read_dir(path)?.next().is_none() {
        set_mode(path, 0o700)?;
    }
    Ok(())
}

/// One path that group or others can access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPath {
    /// The directory or file.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// Whether it is a directory.
    pub is_dir: bool,
}

impl std::fmt::Display for SharedPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, fix) = if self.is_dir {
            ("directory", "700")
        } else {
            ("file", "600")
        };
        write!(
            f,
            "{kind} {} has mode {:04o} and is accessible to group or others; run `chmod {fix} {}`",
            self.path.display(),
            self.mode,
            self.path.display()
        )
    }
}

/// `path` if it exists and group or others have any access to it.
pub fn shared_access(path: &Path) -> io::Result<Option<SharedPath>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then(|| SharedPath {
        path: path.to_path_buf(),
        mode,
        is_dir: meta.is_dir(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    // REQ: R10.3
    #[test]
    fn created_paths_are_owner_only_and_shared_ones_are_named_with_the_fix() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all_private(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        let file = dir.join("f");
        private_file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .unwrap();
        assert_eq!(mode_of(&file), 0o600);
        assert_eq!(shared_access(&dir).unwrap(), None);
        assert_eq!(shared_access(&file).unwrap(), None);
        assert_eq!(shared_access(&dir.join("missing")).unwrap(), None);

        set_mode(&file, 0o644).unwrap();
        let found = shared_access(&file).unwrap().unwrap();
        assert_eq!(found.mode, 0o644);
        assert!(found.to_string().contains("chmod 600"), "{found}");
        set_mode(&dir, 0o750).unwrap();
        let found = shared_access(&dir).unwrap().unwrap();
        assert!(found.is_dir);
        assert!(found.to_string().contains("chmod 700"), "{found}");

        // An empty directory is taken over; one holding anything is left to be refused.
        make_private_if_empty(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o750, "holds f: left as it is");
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        set_mode(&empty, 0o755).unwrap();
        make_private_if_empty(&empty).unwrap();
        assert_eq!(mode_of(&empty), 0o700);
    }
}
