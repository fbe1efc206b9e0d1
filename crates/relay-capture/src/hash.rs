//! Streaming SHA-256 of a settled file, with the re-checks that keep a half-written or replaced
//! file from being recorded (R6.1, R6.5).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use relay_domain::Checksum;
use sha2::{Digest, Sha256};

use crate::beneath::{self, BeneathError};
use crate::error::{CaptureFailure, FailureReason};
use crate::stat::{FileKind, FileStat};

/// The read buffer used by capture: large enough that hashing runs at SHA-256 speed.
pub const DEFAULT_HASH_BUFFER: usize = 1 << 20;

/// The SHA-256 of a file's content and the number of bytes hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    /// SHA-256 of the content.
    pub sha256: Checksum,
    /// Bytes hashed.
    pub size: u64,
}

/// Hashes everything `reader` yields, reading through `buf`.
pub fn sha256_reader(mut reader: impl Read, buf: &mut [u8]) -> io::Result<FileDigest> {
    sha256_reader_with(&mut reader, buf, &mut || {})
}

/// Hashes the file at `path` with a [`DEFAULT_HASH_BUFFER`] buffer. Follows no final symlink.
pub fn sha256_file(path: &Path) -> io::Result<FileDigest> {
    let file = open_no_follow(path)?;
    let mut buf = vec![0u8; DEFAULT_HASH_BUFFER];
    sha256_reader(file, &mut buf)
}

fn sha256_reader_with(
    reader: &mut dyn Read,
    buf: &mut [u8],
    after_first_read: &mut dyn FnMut(),
) -> io::Result<FileDigest> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut first = true;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        if first {
            first = false;
            after_first_read();
        }
    }
    Ok(FileDigest {
        sha256: Checksum(hasher.finalize().into()),
        size,
    })
}

/// Opens for reading without following a final symlink (`ELOOP` instead) and without blocking on
/// a FIFO that was swapped in after the last `lstat`.
fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// The result of hashing a file that looked settled.
#[derive(Debug)]
pub(crate) enum HashOutcome {
    /// Hashed; `stat` held from before opening until after the last byte.
    Hashed { stat: FileStat, digest: FileDigest },
    /// The file is no longer the version that settled, or changed while hashed: try again later.
    Changed,
    /// Nothing is at the path any more (before it was opened).
    Vanished,
    /// It cannot be captured.
    Failed(CaptureFailure),
}

/// Hashes `rel` under `root` if it is still the version `expect` describes. Every step goes
/// through directory descriptors (see [`crate::beneath`]), so a folder swapped for a link can
/// neither redirect the open nor the stats around it.
pub(crate) fn hash_settled(
    root: &Path,
    rel: &str,
    expect: &FileStat,
    buf: &mut [u8],
) -> HashOutcome {
    hash_settled_with(root, rel, expect, buf, &mut || {})
}

/// [`hash_settled`] with a hook run after the first read, so tests can change the file mid-hash.
pub(crate) fn hash_settled_with(
    root: &Path,
    rel: &str,
    expect: &FileStat,
    buf: &mut [u8],
    after_first_read: &mut dyn FnMut(),
) -> HashOutcome {
    let (dir, name) = match beneath::open_parent(root, rel) {
        Ok(parent) => parent,
        Err(BeneathError::NotADirectory { at }) => {
            return HashOutcome::Failed(CaptureFailure::new(
                FailureReason::UnsafePath,
                format!("path passes through {at}, which is not a real directory"),
            ));
        }
        Err(e) if e.is_missing() => return HashOutcome::Vanished,
        Err(BeneathError::Io(e)) => {
            return HashOutcome::Failed(CaptureFailure::io("open folder", &e));
        }
    };
    let before = match beneath::stat_at(&dir, name) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashOutcome::Vanished,
        Err(e) => return HashOutcome::Failed(CaptureFailure::io("stat", &e)),
    };
    match before.kind {
        FileKind::File => {}
        FileKind::Symlink => {
            return HashOutcome::Failed(CaptureFailure::new(
                FailureReason::Symlink,
                "path is a symbolic link; links are not followed",
            ));
        }
        FileKind::Dir | FileKind::Special => {
            return HashOutcome::Failed(CaptureFailure::new(
                FailureReason::NotRegularFile,
                "path is not a regular file",
            ));
        }
    }
    if !before.same_version(expect) {
        return HashOutcome::Changed;
    }
    let mut file = match beneath::open_file_at(&dir, name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashOutcome::Vanished,
        Err(e) => return HashOutcome::Failed(CaptureFailure::io("open", &e)),
    };
    match beneath::stat_file(&file) {
        Ok(stat) if stat.same_version(&before) => {}
        // Replaced between lstat and open.
        Ok(_) => return HashOutcome::Changed,
        Err(e) => return HashOutcome::Failed(CaptureFailure::io("fstat", &e)),
    }
    let digest = match sha256_reader_with(&mut file, buf, after_first_read) {
        Ok(d) => d,
        Err(e) => return HashOutcome::Failed(CaptureFailure::io("read", &e)),
    };
    let after_fd = match beneath::stat_file(&file) {
        Ok(stat) => stat,
        Err(e) => return HashOutcome::Failed(CaptureFailure::io("fstat", &e)),
    };
    // Resolved afresh from the root: the file must still be at its subject, not only in the
    // folder that was opened (which may have been moved away meanwhile).
    let after_path = match beneath::stat(root, rel) {
        Ok(stat) => stat,
        Err(e) if e.is_missing() => {
            return HashOutcome::Failed(CaptureFailure::new(
                FailureReason::VanishedMidHash,
                "file was removed while it was being hashed",
            ));
        }
        Err(BeneathError::NotADirectory { .. }) => return HashOutcome::Changed,
        Err(BeneathError::Io(e)) => return HashOutcome::Failed(CaptureFailure::io("stat", &e)),
    };
    if !after_fd.same_version(&before)
        || !after_path.same_version(&before)
        || digest.size != before.size
    {
        return HashOutcome::Changed;
    }
    HashOutcome::Hashed {
        stat: before,
        digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::lstat;
    use std::fs;

    fn hex_of(data: &[u8]) -> String {
        let mut buf = [0u8; 7];
        sha256_reader(data, &mut buf).unwrap().sha256.to_hex()
    }

    #[test]
    fn matches_known_sha256_vectors() {
        assert_eq!(
            hex_of(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            hex_of(&million_a),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    fn setup(len: usize) -> (tempfile::TempDir, std::path::PathBuf, FileStat) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![7u8; len]).unwrap();
        let stat = lstat(&path).unwrap();
        (dir, path, stat)
    }

    #[test]
    fn settled_file_hashes_like_sha2() {
        let (tmp, _, stat) = setup(100_000);
        let mut buf = vec![0u8; 4096];
        match hash_settled(tmp.path(), "f", &stat, &mut buf) {
            HashOutcome::Hashed { digest, .. } => {
                let expect: [u8; 32] = Sha256::digest(vec![7u8; 100_000]).into();
                assert_eq!(digest.sha256, Checksum(expect));
                assert_eq!(digest.size, 100_000);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn file_removed_mid_hash_is_vanished_mid_hash() {
        let (tmp, path, stat) = setup(64 * 1024);
        let mut buf = vec![0u8; 4096];
        let p = path.clone();
        let outcome = hash_settled_with(tmp.path(), "f", &stat, &mut buf, &mut || {
            fs::remove_file(&p).unwrap();
        });
        match outcome {
            HashOutcome::Failed(f) => assert_eq!(f.reason, FailureReason::VanishedMidHash),
            other => panic!("unexpected {other:?}"),
        }
    }

    // REQ: R6.1
    #[test]
    fn file_growing_mid_hash_is_not_recorded() {
        let (tmp, path, stat) = setup(64 * 1024);
        let mut buf = vec![0u8; 4096];
        let p = path.clone();
        let outcome = hash_settled_with(tmp.path(), "f", &stat, &mut buf, &mut || {
            use std::io::Write;
            let mut f = OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"more").unwrap();
        });
        assert!(matches!(outcome, HashOutcome::Changed), "{outcome:?}");
    }

    // REQ: R6.4
    #[test]
    fn symlink_and_fifo_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"t").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let stat = lstat(&link).unwrap();
        let mut buf = vec![0u8; 16];
        match hash_settled(dir.path(), "link", &stat, &mut buf) {
            HashOutcome::Failed(f) => assert_eq!(f.reason, FailureReason::Symlink),
            other => panic!("unexpected {other:?}"),
        }
        // O_NOFOLLOW refuses a final link even when called directly.
        let err = sha256_file(&link).unwrap_err();
        assert_eq!(FailureReason::from_io(&err), FailureReason::Symlink);
    }

    #[test]
    fn a_folder_swapped_for_a_link_is_never_opened_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/f"), b"inside").unwrap();
        fs::write(outside.path().join("f"), b"inside").unwrap();
        let stat = lstat(&dir.path().join("d/f")).unwrap();
        fs::rename(dir.path().join("d"), dir.path().join("d.old")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap();
        let mut buf = vec![0u8; 16];
        match hash_settled(dir.path(), "d/f", &stat, &mut buf) {
            HashOutcome::Failed(f) => {
                assert_eq!(f.reason, FailureReason::UnsafePath);
                assert!(f.detail.contains("passes through d,"), "{}", f.detail);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_different_version_than_settled_is_changed() {
        let (tmp, _, mut stat) = setup(10);
        stat.size += 1;
        let mut buf = vec![0u8; 16];
        assert!(matches!(
            hash_settled(tmp.path(), "f", &stat, &mut buf),
            HashOutcome::Changed
        ));
    }
}
