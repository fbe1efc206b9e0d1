//! File capture for the GIMS Compliance Relay (R6): watches folders and records completed files.
//!
//! Instruments only write files. Capture watches one or more roots recursively, waits until a
//! file's size and mtime have held still for a settle window, streams its SHA-256, and appends a
//! `FILE_CREATED` event (then `FILE_MODIFIED` / `FILE_DELETED` as it changes or vanishes) through
//! the domain's [`AppendService`](relay_domain::AppendService). Anything that cannot be captured
//! gets one `CAPTURE_FAILED` with a reason, so there is no silent gap. What has been captured is
//! derived from the trail itself at start-up, and a rescan (at start-up, on watcher overflow and
//! periodically) reconciles disk with it, so a restart neither repeats nor misses a capture.
//!
//! Each event names the person who produced the file ([`Attribution`]): the relay's own
//! account when it runs as a person's (session mode), else the file's owner or the console
//! session's user, else the service identity flagged `unattributed` (never dropped).
//!
//! This crate must not decide *where* records are stored or how they are chained: it only builds
//! event drafts. It never follows a symbolic link, never hashes a file that is still changing, and
//! never reports a file as captured before the append was acknowledged.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod actor;
mod attribution;
mod beneath;
mod capture;
mod config;
mod error;
mod event;
mod hash;
mod index;
mod paths;
mod scan;
mod settle;
mod stat;
mod stats;
mod watcher;

pub use actor::resolve_os_actor;
/// Payload field names of attribution (`owner`, `owner_uid`, `process_user`, `process_uid`,
/// `unattributed`).
pub use attribution::field as attribution_field;
pub use attribution::{
    Attributed, Attribution, AttributionOutlook, AttributionPolicy, CONSOLE_LOOKUP_TTL,
    DEFAULT_UID_MAX, DEFAULT_UID_MIN, OsAccount, OsAccounts, SystemAccounts,
};
pub use capture::{Capture, CaptureHandle};
pub use config::{
    CaptureConfig, DEFAULT_RESCAN_INTERVAL, DEFAULT_RETRY_BACKOFF, DEFAULT_SETTLE,
    DETECTED_BY_REHASH_AUDIT, MAX_RETRY_BACKOFF,
};
pub use error::{ActorError, CaptureError, CaptureFailure, FailureReason};
pub use hash::{DEFAULT_HASH_BUFFER, FileDigest, sha256_file, sha256_reader};
pub use paths::{PathRejection, relative_subject, subject_path};
pub use stats::CaptureStats;
