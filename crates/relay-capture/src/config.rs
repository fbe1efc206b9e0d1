//! Capture configuration: what to watch, how long a file must be still, and whom to record.

use std::path::PathBuf;
use std::time::Duration;

use relay_domain::{Actor, Device, Project, TrailId};

use crate::attribution::Attribution;

use crate::error::CaptureError;
use crate::hash::DEFAULT_HASH_BUFFER;

/// How long a file's size and mtime must stay unchanged before it counts as complete.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);
/// How often the full safety-net rescan runs.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(60);
/// The `detected_by` value of a `FILE_MODIFIED` found by the re-hash audit: the file's size,
/// mtime, inode change time and inode number all matched the trail, only its content did not.
pub const DETECTED_BY_REHASH_AUDIT: &str = "rehash_audit";
/// The first delay before retrying a failed append; doubles up to [`MAX_RETRY_BACKOFF`].
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between append retries.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// What capture watches and how it records (R6).
///
/// Build with [`CaptureConfig::new`] and the `with_*` setters; every field is public so a binary
/// can also fill it from its own config file.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Folders watched recursively. They must exist and must not lie inside one another.
    pub roots: Vec<PathBuf>,
    /// How long size and mtime must be stable before a file is hashed (default 2 s).
    pub settle: Duration,
    /// How often pending files are re-examined; `None` derives it from `settle`.
    pub poll_interval: Option<Duration>,
    /// How often a full rescan reconciles disk with the trail (default 60 s).
    pub rescan_interval: Duration,
    /// How often every captured file is re-hashed and compared with the trail (default `None`:
    /// only on request, see [`crate::CaptureHandle::request_rehash`]). The audit reads every
    /// captured byte once per pass, using at most `hash_workers - 1` (at least 1) hash workers
    /// so live capture keeps a worker.
    pub rehash_interval: Option<Duration>,
    /// How many files are hashed at once (default 2).
    pub hash_workers: usize,
    /// The read buffer per hash worker, in bytes (default 1 MiB).
    pub hash_buffer: usize,
    /// The first delay before an append that failed is retried (default 1 s).
    pub retry_backoff: Duration,
    /// The trail capture events are appended to.
    pub trail_id: TrailId,
    /// The workstation, written into every event.
    pub device: Device,
    /// The project, written into every event, if configured.
    pub project: Option<Project>,
    /// Who each event is attributed to ([`Attribution`]); [`CaptureConfig::new`] fixes one
    /// actor, [`CaptureConfig::with_attribution`] resolves the person per file.
    pub attribution: Attribution,
}

impl CaptureConfig {
    /// A configuration with no roots yet and every tunable at its default, attributing every
    /// event to `actor` (`os_session`); see [`Self::with_attribution`].
    pub fn new(trail_id: TrailId, device: Device, actor: Actor) -> Self {
        Self {
            roots: Vec::new(),
            settle: DEFAULT_SETTLE,
            poll_interval: None,
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
            rehash_interval: None,
            hash_workers: 2,
            hash_buffer: DEFAULT_HASH_BUFFER,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            trail_id,
            device,
            project: None,
            attribution: Attribution::fixed(actor),
        }
    }

    /// Adds a watched root.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.roots.push(root.into());
        self
    }

    /// Sets the settle window.
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Sets how often pending files are re-examined.
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = Some(every);
        self
    }

    /// Sets the safety-net rescan interval.
    pub fn with_rescan_interval(mut self, every: Duration) -> Self {
        self.rescan_interval = every;
        self
    }

    /// Sets the re-hash audit interval (`None`: only on request).
    pub fn with_rehash_interval(mut self, every: Option<Duration>) -> Self {
        self.rehash_interval = every;
        self
    }

    /// Sets the number of concurrent hash workers.
    pub fn with_hash_workers(mut self, workers: usize) -> Self {
        self.hash_workers = workers;
        self
    }

    /// Sets the project.
    pub fn with_project(mut self, project: Project) -> Self {
        self.project = Some(project);
        self
    }

    /// Resolves each event's actor by `attribution` (the file's owner, the console session, the
    /// process user, as its policy says) instead of one fixed actor.
    pub fn with_attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// Sets the first append-retry delay.
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The poll interval in force: as configured, or a quarter of the settle window within
    /// 20 ms ..= 500 ms.
    pub fn effective_poll_interval(&self) -> Duration {
        self.poll_interval.unwrap_or_else(|| {
            (self.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
        })
    }

    /// Checks the tunables; roots are checked when capture starts.
    pub fn validate(&self) -> Result<(), CaptureError> {
        if self.roots.is_empty() {
            return Err(CaptureError::NoRoots);
        }
        let bad = |what: &str| Err(CaptureError::InvalidConfig(what.to_owned()));
        if self.settle.is_zero() {
            return bad("settle must be longer than zero");
        }
        if self.effective_poll_interval().is_zero() {
            return bad("poll_interval must be longer than zero");
        }
        if self.rescan_interval.is_zero() {
            return bad("rescan_interval must be longer than zero");
        }
        if self.rehash_interval.is_some_and(|d| d.is_zero()) {
            return bad("rehash_interval must be longer than zero (or off)");
        }
        if self.hash_workers == 0 {
            return bad("hash_workers must be at least 1");
        }
        if self.hash_buffer < 4096 {
            return bad("hash_buffer must be at least 4096 bytes");
        }
        if self.retry_backoff.is_zero() {
            return bad("retry_backoff must be longer than zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CaptureConfig {
        CaptureConfig::new(
            TrailId::new("nmr-01").unwrap(),
            Device::new("nmr-01").unwrap(),
            Actor::new("alice").unwrap(),
        )
    }

    #[test]
    fn defaults_follow_the_brief() {
        let c = config().with_root("/data");
        assert_eq!(c.settle, Duration::from_secs(2));
        assert_eq!(c.effective_poll_interval(), Duration::from_millis(500));
        assert_eq!(c.hash_buffer, 1 << 20);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refuses_no_roots_and_zero_windows() {
        assert!(matches!(config().validate(), Err(CaptureError::NoRoots)));
        assert!(matches!(
            config()
                .with_root("/d")
                .with_settle(Duration::ZERO)
                .validate(),
            Err(CaptureError::InvalidConfig(_))
        ));
        assert!(matches!(
            config().with_root("/d").with_hash_workers(0).validate(),
            Err(CaptureError::InvalidConfig(_))
        ));
    }
}
