//! Reaching files under a root through directory descriptors only (R6.4).
//!
//! A path such as `root/run7/fid` is never handed to the OS whole: the root is opened once, then
//! every folder on the way is opened relative to its parent's descriptor with
//! `O_DIRECTORY | O_NOFOLLOW`, and the last name is stat'ed (`fstatat` with
//! `AT_SYMLINK_NOFOLLOW`) or opened (`openat` with `O_NOFOLLOW`) relative to the folder's
//! descriptor. A folder that is swapped for a symbolic link (or a file) at any moment makes that
//! step fail with `ELOOP`/`ENOTDIR`; it can never redirect a stat or an open to something outside
//! the root, such as `/etc/shadow`.
//!
//! Unix only (`openat` family through `rustix`); a Windows port would provide the same functions
//! over `NtCreateFile` relative handles.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::stat::FileStat;

/// Flags for opening a folder on the way: a real directory, never a link.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Flags for opening a file to hash: never a final link, never blocking on a FIFO swapped in.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// Why a path under a root could not be reached.
#[derive(Debug)]
pub(crate) enum BeneathError {
    /// A folder on the way is not a real directory (a symbolic link, a file, a device).
    NotADirectory {
        /// The subject of that folder.
        at: String,
    },
    /// The OS refused a step (`NotFound` when something on the way is gone).
    Io(io::Error),
}

impl std::fmt::Display for BeneathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BeneathError::NotADirectory { at } => write!(f, "{at} is not a real directory"),
            BeneathError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl BeneathError {
    /// Whether nothing is at the path (gone, or under something that is not a folder).
    pub fn is_missing(&self) -> bool {
        match self {
            BeneathError::NotADirectory { .. } => true,
            BeneathError::Io(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

/// Opens the root folder itself. Its own path was canonicalized at start-up; the last component
/// is still opened without following a link, so a root replaced by a link is refused.
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    rustix::fs::openat(CWD, root, DIR_FLAGS, Mode::empty()).map_err(io::Error::from)
}

/// Opens the folder `rel` (a subject; empty for the root) under `root`, one real directory at a
/// time.
pub(crate) fn open_dir(root: &Path, rel: &str) -> Result<OwnedFd, BeneathError> {
    let mut dir = open_root(root).map_err(BeneathError::Io)?;
    if rel.is_empty() {
        return Ok(dir);
    }
    let mut end = 0;
    for name in rel.split('/') {
        end += name.len();
        dir = open_child_dir(&dir, OsStr::new(name)).map_err(|e| match e {
            ChildDirError::NotADirectory => BeneathError::NotADirectory {
                at: rel[..end].to_owned(),
            },
            ChildDirError::Io(e) => BeneathError::Io(e),
        })?;
        end += 1;
    }
    Ok(dir)
}

/// Why [`open_child_dir`] failed.
#[derive(Debug)]
pub(crate) enum ChildDirError {
    /// The entry is a link, a file or anything else but a directory.
    NotADirectory,
    /// Any other failure.
    Io(io::Error),
}

/// Opens the folder `name` inside the folder `dir`, refusing anything but a real directory.
pub(crate) fn open_child_dir(dir: impl AsFd, name: &OsStr) -> Result<OwnedFd, ChildDirError> {
    match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // ENOTDIR: a file or device; ELOOP: a symbolic link (O_NOFOLLOW). Some systems answer
        // EMLINK or EFTYPE for a link; neither is a directory either.
        Err(Errno::NOTDIR | Errno::LOOP | Errno::MLINK) => Err(ChildDirError::NotADirectory),
        Err(e) => Err(ChildDirError::Io(e.into())),
    }
}

/// Splits a subject into its folder and its last name.
fn split(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", rel),
    }
}

/// `lstat` of the entry `name` inside the folder `dir`.
pub(crate) fn stat_at(dir: impl AsFd, name: &OsStr) -> io::Result<FileStat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileStat::from_stat(&st))
        .map_err(io::Error::from)
}

/// `lstat` of `rel` under `root`, through real directories only.
pub(crate) fn stat(root: &Path, rel: &str) -> Result<FileStat, BeneathError> {
    let (dir, name) = split(rel);
    let dir = open_dir(root, dir)?;
    stat_at(&dir, OsStr::new(name)).map_err(BeneathError::Io)
}

/// The entry `name` of the folder `dir` opened for reading: never a link, never blocking.
pub(crate) fn open_file_at(dir: impl AsFd, name: &OsStr) -> io::Result<File> {
    rustix::fs::openat(dir, name, FILE_FLAGS, Mode::empty())
        .map(File::from)
        .map_err(io::Error::from)
}

/// `fstat` of an open file, in the same shape as [`stat_at`].
pub(crate) fn stat_file(file: &File) -> io::Result<FileStat> {
    rustix::fs::fstat(file)
        .map(|st| FileStat::from_stat(&st))
        .map_err(io::Error::from)
}

/// The folder holding `rel` under `root`, opened through real directories, and the last name.
pub(crate) fn open_parent<'a>(
    root: &Path,
    rel: &'a str,
) -> Result<(OwnedFd, &'a OsStr), BeneathError> {
    let (dir, name) = split(rel);
    Ok((open_dir(root, dir)?, OsStr::new(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    use crate::stat::FileKind;

    #[test]
    fn reaches_files_through_real_folders() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f"), b"hello").unwrap();
        let st = stat(dir.path(), "a/b/f").unwrap();
        assert_eq!((st.kind, st.size), (FileKind::File, 5));
        assert_eq!(stat(dir.path(), "a").unwrap().kind, FileKind::Dir);
        let (parent, name) = open_parent(dir.path(), "a/b/f").unwrap();
        let file = open_file_at(&parent, name).unwrap();
        assert!(stat_file(&file).unwrap().same_version(&st));
    }

    #[test]
    fn a_linked_folder_on_the_way_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("shadow"), b"outside").unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        symlink(outside.path(), dir.path().join("a/link")).unwrap();
        match stat(dir.path(), "a/link/shadow") {
            Err(BeneathError::NotADirectory { at }) => assert_eq!(at, "a/link"),
            other => panic!("expected NotADirectory, got {other:?}"),
        }
        assert!(matches!(
            open_parent(dir.path(), "a/link/shadow"),
            Err(BeneathError::NotADirectory { .. })
        ));
        // A file on the way is not a folder either.
        fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(stat(dir.path(), "file/x").unwrap_err().is_missing());
        assert!(stat(dir.path(), "nothing/x").unwrap_err().is_missing());
    }

    #[test]
    fn a_final_link_is_stated_as_a_link_and_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("shadow"), b"outside").unwrap();
        symlink(outside.path().join("shadow"), dir.path().join("l")).unwrap();
        assert_eq!(stat(dir.path(), "l").unwrap().kind, FileKind::Symlink);
        let root = open_root(dir.path()).unwrap();
        assert!(open_file_at(&root, OsStr::new("l")).is_err());
    }

    #[test]
    fn a_root_replaced_by_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        symlink(outside.path(), &root).unwrap();
        assert!(open_root(&root).is_err());
    }
}
