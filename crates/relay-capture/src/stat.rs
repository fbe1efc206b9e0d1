//! What capture knows about a path at one instant: `lstat` semantics (never following links),
//! taken through directory descriptors under a root (see [`crate::beneath`]).

use std::io;

use rustix::fs::{FileType, Stat};

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

/// One version of a path: its identity (device, inode) and content markers (size, mtime, and
/// the inode change time, which `utime` cannot set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub kind: FileKind,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Inode change time in nanoseconds since the Unix epoch. Every write, `chmod`, rename and
    /// `utime` moves it to the current clock, so content rewritten with its size and mtime
    /// restored still shows as a new version.
    pub ctime_ns: i128,
    /// The owner's numeric user id (who the file is attributed to in service mode).
    pub uid: u32,
}

impl FileStat {
    /// Reads a `stat` result. The field widths differ per platform, hence the casts.
    #[allow(clippy::unnecessary_cast, trivial_numeric_casts)]
    pub fn from_stat(st: &Stat) -> Self {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Symlink => FileKind::Symlink,
            FileType::Directory => FileKind::Dir,
            FileType::RegularFile => FileKind::File,
            _ => FileKind::Special,
        };
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Self {
            kind,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: u64::try_from(st.st_size as i64).unwrap_or(0),
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            uid: st.st_uid as u32,
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

    /// The inode change time as written into payloads, in the same format as the mtime.
    pub fn ctime_text(&self) -> String {
        format_mtime(self.ctime_ns)
    }
}

/// `lstat` by path, for tests that set up files (capture itself never stats by path).
#[cfg(test)]
pub(crate) fn lstat(path: &std::path::Path) -> io::Result<FileStat> {
    rustix::fs::statat(rustix::fs::CWD, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileStat::from_stat(&st))
        .map_err(io::Error::from)
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
    /// Looks at `rel` under `root` without passing through anything but real directories of the
    /// root: a folder on the way that is a symbolic link or a file means nothing is there.
    pub fn observe(root: &std::path::Path, rel: &str) -> Self {
        Self::from_result(crate::beneath::stat(root, rel))
    }

    /// Classifies a stat result.
    pub fn from_result(result: Result<FileStat, crate::beneath::BeneathError>) -> Self {
        use crate::beneath::BeneathError;
        match result {
            Ok(stat) => Seen::Present(stat),
            // A folder on the way is now a link or a file: nothing is at the path in the root.
            Err(BeneathError::NotADirectory { .. }) => Seen::Missing,
            Err(BeneathError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            Err(BeneathError::Io(e)) => Seen::Unreadable {
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
        assert_eq!(Seen::observe(dir.path(), "f"), Seen::Missing);
        std::fs::write(&p, b"x").unwrap();
        assert!(
            matches!(Seen::observe(dir.path(), "f"), Seen::Present(s) if s.kind == FileKind::File && s.size == 1)
        );
        assert_eq!(Seen::observe(dir.path(), "f/under-a-file"), Seen::Missing);
    }

    #[test]
    fn observe_never_passes_through_a_linked_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), b"outside secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap();
        assert_eq!(Seen::observe(dir.path(), "d/shadow"), Seen::Missing);
        // The link itself is seen as a link.
        assert!(matches!(
            Seen::observe(dir.path(), "d"),
            Seen::Present(s) if s.kind == FileKind::Symlink
        ));
    }

    #[test]
    fn utime_cannot_restore_the_change_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"first").unwrap();
        let before = lstat(&p).unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        // Sleep-free: the ctime is set from the clock at the rewrite, so make the clock move
        // past the coarse timestamp granularity by rewriting until it does.
        let mut after = before;
        for _ in 0..1000 {
            std::fs::write(&p, b"other").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            after = lstat(&p).unwrap();
            if after.ctime_ns != before.ctime_ns {
                break;
            }
        }
        assert_eq!((after.size, after.mtime_ns), (before.size, before.mtime_ns));
        assert_ne!(after.ctime_ns, before.ctime_ns);
        assert!(!after.same_version(&before));
    }
}
