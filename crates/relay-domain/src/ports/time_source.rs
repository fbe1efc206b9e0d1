//! `TimeSource`: the relay's only clock, labelled with where its time comes from (R9).

use async_trait::async_trait;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::timestamp::{TimeLabel, Timestamp};

/// An instant with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedInstant {
    /// The instant.
    pub at: Timestamp,
    /// Where it came from.
    pub label: TimeLabel,
}

/// What a time source reports about itself for the start-up posture event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimePosture {
    /// `system`, `ntp`, ...
    pub kind: &'static str,
    /// The label timestamps currently carry.
    pub label: TimeLabel,
    /// A human-readable detail (servers, last sync, fallback reason).
    pub detail: String,
}

/// Why a time source could not tell the time.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TimeSourceError {
    /// The clock reads before 1970 or after 9999.
    #[error("clock out of range: {0}")]
    OutOfRange(String),
    /// The reference cannot be reached; retry later.
    #[error("time reference unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<BoxError>,
    },
}

impl TimeSourceError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            TimeSourceError::Unavailable { .. } => ErrorStatus::Temporary,
            TimeSourceError::OutOfRange(_) => ErrorStatus::Permanent,
        }
    }
}

/// A change in how a source validates time that deserves a record of its own (R9): the
/// reference stepped the clock, every reference was lost, validation recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeEvent {
    /// What happened, as the `event` of a SYSTEM record (`NTP_STEP`, `NTP_LOST`,
    /// `NTP_RECOVERED`).
    pub what: &'static str,
    /// The details (offsets, servers, errors), as the rest of the record's payload.
    pub detail: serde_json::Value,
}

/// The relay's clock.
///
/// # Contract
/// - `now` never silently mixes sources: every instant says whether it is system or validated
///   time, and with what offset.
/// - Instants are not guaranteed monotonic (clocks step); `chain_seq` orders records.
#[async_trait]
pub trait TimeSource: Send + Sync + std::fmt::Debug {
    /// The current instant.
    async fn now(&self) -> Result<TimedInstant, TimeSourceError>;
    /// The current posture.
    fn posture(&self) -> TimePosture;
    /// The [`TimeEvent`]s since the last call, oldest first (each is returned once); a source
    /// without a reference has none.
    fn take_events(&self) -> Vec<TimeEvent> {
        Vec::new()
    }
}
