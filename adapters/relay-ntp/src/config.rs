//! Settings of the NTP time source.

use std::time::Duration;

/// Which servers to ask and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpConfig {
    /// `host:port` of each server (port 123 for public NTP), tried in order.
    pub servers: Vec<String>,
    /// How often to re-check the offset.
    pub poll_interval: Duration,
    /// How long to wait for one server's answer.
    pub timeout: Duration,
    /// How old the last successful check may be before instants fall back to `system`.
    pub max_staleness: Duration,
    /// An offset change between two checks beyond this is a step of the clock, reported as an
    /// `NTP_STEP` event (either direction).
    pub step_threshold: Duration,
}

impl NtpConfig {
    /// Default poll interval: 64 s, as NTP clients commonly start with.
    pub const DEFAULT_POLL: Duration = Duration::from_secs(64);
    /// Default per-server timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default staleness bound: ten minutes without a successful check.
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(600);
    /// Default step threshold: one second.
    pub const DEFAULT_STEP_THRESHOLD: Duration = Duration::from_secs(1);

    /// Settings for `servers` with the defaults.
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            servers,
            poll_interval: Self::DEFAULT_POLL,
            timeout: Self::DEFAULT_TIMEOUT,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
            step_threshold: Self::DEFAULT_STEP_THRESHOLD,
        }
    }

    /// Sets the step threshold.
    pub fn step_threshold(mut self, threshold: Duration) -> Self {
        self.step_threshold = threshold;
        self
    }

    /// Sets the poll interval.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets the per-server timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the staleness bound.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }
}
