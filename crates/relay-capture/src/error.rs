//! Errors of capture start-up and the reasons recorded in `CAPTURE_FAILED` events.

use std::fmt;
use std::io;
use std::path::PathBuf;

use relay_domain::TrailId;
use relay_domain::ids::IdError;
use relay_domain::ports::record_store::RecordStoreError;
use thiserror::Error;

/// Why capture could not start or stop cleanly.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The configuration names no root folder.
    #[error("capture needs at least one root folder")]
    NoRoots,
    /// A configuration value is out of range.
    #[error("invalid capture configuration: {0}")]
    InvalidConfig(String),
    /// A root folder cannot be resolved (missing, unreadable).
    #[error("root {root} cannot be used")]
    RootUnusable {
        /// The root as configured.
        root: PathBuf,
        /// Why it cannot be resolved.
        #[source]
        source: io::Error,
    },
    /// A root is not a directory.
    #[error("root {root} is not a directory")]
    RootNotDirectory {
        /// The root as configured.
        root: PathBuf,
    },
    /// A root's resolved path is not valid UTF-8, so it cannot be named in a record.
    #[error("root {root} is not valid UTF-8")]
    RootNotUtf8 {
        /// The root as resolved.
        root: PathBuf,
    },
    /// One root lies inside another, which would capture the same file twice.
    #[error("root {inner} lies inside root {outer}")]
    RootsOverlap {
        /// The enclosing root.
        outer: PathBuf,
        /// The enclosed root.
        inner: PathBuf,
    },
    /// The capture index could not be derived from the trail.
    #[error("trail {trail_id}: cannot read the trail to derive the capture index")]
    Index {
        /// The trail.
        trail_id: TrailId,
        /// The store's error.
        #[source]
        source: RecordStoreError,
    },
    /// The file-system watcher could not be started on a root.
    #[error("cannot watch {root}")]
    Watch {
        /// The root.
        root: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The capture task is no longer running (it stopped or panicked).
    #[error("capture task stopped: {0}")]
    Stopped(String),
    /// A wait on capture progress ran out of time.
    #[error("capture did not reach the awaited state within {0:?}")]
    Timeout(std::time::Duration),
}

/// Why the OS user running the relay could not be resolved as the actor (R2.1, R2.2).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The OS could not name the user of this process.
    #[error("cannot resolve the OS user running the relay")]
    Lookup(#[source] io::Error),
    /// The OS named a user that is not a valid actor (empty or a placeholder).
    #[error("the OS user name is not a usable actor")]
    Invalid(#[source] IdError),
}

/// Why a file could not be captured, as written in a `CAPTURE_FAILED` payload's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureReason {
    /// The relay may not read the file or list its folder.
    PermissionDenied,
    /// The path is a symbolic link; links are never followed.
    Symlink,
    /// The path is a FIFO, socket or device, not a regular file.
    NotRegularFile,
    /// The file disappeared while it was being hashed.
    VanishedMidHash,
    /// The file disappeared before it was complete (before its settle window passed).
    VanishedBeforeComplete,
    /// The path lies outside every watched root.
    OutsideRoots,
    /// The path is not valid UTF-8 and cannot be named in a record.
    NonUtf8Path,
    /// The path is unusable: it holds `..`, passes through a symbolic link, or is too long.
    UnsafePath,
    /// A watched root is missing or unreadable.
    RootUnavailable,
    /// Any other I/O error.
    Io,
}

impl FailureReason {
    /// The code written into the payload.
    pub fn code(self) -> &'static str {
        match self {
            FailureReason::PermissionDenied => "permission_denied",
            FailureReason::Symlink => "symlink_not_followed",
            FailureReason::NotRegularFile => "not_a_regular_file",
            FailureReason::VanishedMidHash => "vanished_mid_hash",
            FailureReason::VanishedBeforeComplete => "vanished_before_complete",
            FailureReason::OutsideRoots => "outside_roots",
            FailureReason::NonUtf8Path => "non_utf8_path",
            FailureReason::UnsafePath => "unsafe_path",
            FailureReason::RootUnavailable => "root_unavailable",
            FailureReason::Io => "io_error",
        }
    }

    /// The reason for an I/O error met while opening or reading a file.
    pub fn from_io(err: &io::Error) -> Self {
        if err.raw_os_error() == Some(libc::ELOOP) {
            return FailureReason::Symlink;
        }
        match err.kind() {
            io::ErrorKind::PermissionDenied => FailureReason::PermissionDenied,
            _ => FailureReason::Io,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A file that could not be captured: the reason and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFailure {
    /// Why.
    pub reason: FailureReason,
    /// What happened, for a reviewer (an OS error message, the link target, ...).
    pub detail: String,
}

impl CaptureFailure {
    /// A failure with a reason and detail.
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// A failure for an I/O error met while doing `what`.
    pub fn io(what: &str, err: &io::Error) -> Self {
        Self::new(FailureReason::from_io(err), format!("{what}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_reasons() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(
            FailureReason::from_io(&denied),
            FailureReason::PermissionDenied
        );
        let eloop = io::Error::from_raw_os_error(libc::ELOOP);
        assert_eq!(FailureReason::from_io(&eloop), FailureReason::Symlink);
        let other = io::Error::other("disk on fire");
        assert_eq!(FailureReason::from_io(&other), FailureReason::Io);
    }
}
