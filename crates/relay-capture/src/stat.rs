//! What capture knows about a path at one instant: `lstat`, never following links.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The type of a directory entry, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

/// One version of a path: its identity (device, inode) and content markers (size, mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub kind: FileKind,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
}

impl FileStat {
    pub fn from_metadata(m: &Metadata) -> Self {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else {
            debug_assert!(
                ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device()
            );
            FileKind::Special
        };
        Self {
            kind,
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }

    /// Whether `other` is the same version of the same file (nothing written in between).
    pub fn same_version(&self, other: &FileStat) -> bool {
        self == other
    }

    /// The mtime as written into payloads: RFC 3339 UTC with nine fractional digits.
    pub fn mtime_text(&self) -> String {
        format_mtime(self.mtime_ns)
    }
}

/// `lstat`: the path itself, never what a link points to.
pub(crate) fn lstat(path: &Path) -> io::Result<FileStat> {
    fs::symlink_metadata(path).map(|m| FileStat::from_metadata(&m))
}

/// What an observation of a path found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Nothing is there.
    Missing,
    /// Something is there.
    Present(FileStat),
    /// The path could not be examined.
    Unreadable {
        /// The error's kind, compared between observations.
        kind: io::ErrorKind,
        /// The error's message.
        message: String,
    },
}

impl Seen {
    pub fn observe(path: &Path) -> Self {
        match lstat(path) {
            Ok(stat) => Seen::Present(stat),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            // A path component that is now a file, not a directory: nothing is at the path.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Seen::Missing,
            Err(e) => Seen::Unreadable {
                kind: e.kind(),
                message: e.to_string(),
            },
        }
    }
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nine fractional digits.
pub(crate) fn format_mtime(mtime_ns: i128) -> String {
    use time::macros::format_description;
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    match time::OffsetDateTime::from_unix_timestamp_nanos(mtime_ns) {
        Ok(t) => match t.format(&fmt) {
            Ok(text) => text,
            Err(_) => format!("unix-ns:{mtime_ns}"),
        },
        // Outside the calendar range `time` supports; still exact and stable.
        Err(_) => format!("unix-ns:{mtime_ns}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtime_text_is_exact_to_the_nanosecond() {
        assert_eq!(format_mtime(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_mtime(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(format_mtime(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn observe_tells_missing_from_present() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert_eq!(Seen::observe(&p), Seen::Missing);
        fs::write(&p, b"x").unwrap();
        assert!(
            matches!(Seen::observe(&p), Seen::Present(s) if s.kind == FileKind::File && s.size == 1)
        );
        assert_eq!(Seen::observe(&p.join("under-a-file")), Seen::Missing);
    }
}
