//! Capture progress counters, published after every step of the capture task.

/// A snapshot of what capture has done and what it is waiting on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStats {
    /// `FILE_CREATED` events appended by this run.
    pub captured: u64,
    /// `FILE_MODIFIED` events appended by this run.
    pub modified: u64,
    /// `FILE_DELETED` events appended by this run.
    pub deleted: u64,
    /// `CAPTURE_FAILED` events appended by this run.
    pub failed: u64,
    /// Files re-hashed after a size or mtime change whose content was unchanged (nothing
    /// recorded).
    pub unchanged: u64,
    /// Files re-hashed by the re-hash audit (changed or not).
    pub rehashed: u64,
    /// Re-hash audit passes completed.
    pub rehash_audits_completed: u64,
    /// Files queued for or being re-hashed by the running audit pass.
    pub auditing: usize,
    /// Events appended by this run that no person could be attributed to (recorded as the
    /// service identity with `"unattributed": true`).
    pub unattributed: u64,
    /// Appends that failed and were (or will be) retried.
    pub append_errors: u64,
    /// Rescans forced by a watcher overflow or error.
    pub watcher_rescans: u64,
    /// Scans (full or of one folder) completed.
    pub scans_completed: u64,
    /// Full rescans completed; the first one is the start-up reconciliation.
    pub full_scans_completed: u64,
    /// Paths waiting for their settle window (or an append retry).
    pub pending: usize,
    /// Captures and appends running now.
    pub in_flight: usize,
    /// A scan is running or queued.
    pub scanning: bool,
}

impl CaptureStats {
    /// Whether the start-up scan is done and nothing is pending, running or queued (a re-hash
    /// audit pass included).
    ///
    /// Idle means nothing is *known* to be outstanding: a file written a moment ago may not have
    /// been reported by the OS yet, so tests wait for the counts they expect first.
    pub fn is_idle(&self) -> bool {
        self.full_scans_completed > 0
            && !self.scanning
            && self.pending == 0
            && self.in_flight == 0
            && self.auditing == 0
    }

    /// Every event this run appended.
    pub fn recorded(&self) -> u64 {
        self.captured + self.modified + self.deleted + self.failed
    }
}
