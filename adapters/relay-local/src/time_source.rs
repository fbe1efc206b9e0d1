//! `SystemTimeSource`: the host clock, labelled as unvalidated system time.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use relay_domain::ports::{TimePosture, TimeSource, TimeSourceError, TimedInstant};
use relay_domain::{TimeLabel, Timestamp};

/// The host's system clock. Every instant is labelled [`TimeLabel::System`]: nothing here
/// checks the clock against a reference, and the posture says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTimeSource;

impl SystemTimeSource {
    /// The system clock.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl TimeSource for SystemTimeSource {
    async fn now(&self) -> Result<TimedInstant, TimeSourceError> {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| {
            TimeSourceError::OutOfRange(format!("system clock is before 1970: {e}"))
        })?;
        let micros = i64::try_from(since_epoch.as_micros())
            .map_err(|_| TimeSourceError::OutOfRange("system clock is past 9999".into()))?;
        let at = Timestamp::from_unix_micros(micros)
            .map_err(|e| TimeSourceError::OutOfRange(e.to_string()))?;
        Ok(TimedInstant {
            at,
            label: TimeLabel::System,
        })
    }

    fn posture(&self) -> TimePosture {
        TimePosture {
            kind: "system",
            label: TimeLabel::System,
            detail: "host system clock, not validated against a time reference".into(),
        }
    }
}
