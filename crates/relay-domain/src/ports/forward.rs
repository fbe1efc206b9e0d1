//! `ForwardCursorStore`: the edge forwarder's durable progress per trail (R8.2, R8.4).

use async_trait::async_trait;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::TrailId;

/// Whether a trail is still being forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardState {
    /// Batches after the acknowledged seq are sent.
    Active,
    /// The server refused a batch for good; forwarding of the trail stopped at the acked seq.
    Poisoned(DeadLetter),
}

/// A batch the server refused for good, kept so an operator can see what and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The first seq of the refused batch.
    pub first_seq: u64,
    /// The last seq of the refused batch.
    pub last_seq: u64,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The server's answer (its error code and message), never a secret.
    pub reason: String,
}

/// The forwarding progress of one trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardCursor {
    /// The trail.
    pub trail_id: TrailId,
    /// The highest seq the server acknowledged as stored (0: nothing yet).
    pub acked_seq: u64,
    /// Active or poisoned.
    pub state: ForwardState,
}

impl ForwardCursor {
    /// A cursor at the start of `trail_id`, active.
    pub fn start(trail_id: TrailId) -> Self {
        Self {
            trail_id,
            acked_seq: 0,
            state: ForwardState::Active,
        }
    }

    /// Whether forwarding of the trail is halted.
    pub fn is_poisoned(&self) -> bool {
        matches!(self.state, ForwardState::Poisoned(_))
    }
}

/// Why a cursor operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ForwardCursorError {
    /// The store cannot be reached or is busy; retry later.
    #[error("forward cursor store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored cursor could not be decoded.
    #[error("forward cursor of trail {trail_id} is unreadable: {message}")]
    Corrupt {
        /// The trail.
        trail_id: String,
        /// What was wrong.
        message: String,
    },
    /// Any other provider failure.
    #[error("forward cursor store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl ForwardCursorError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            ForwardCursorError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Where the edge keeps how far each trail has been forwarded (mutable state, not a trail).
///
/// # Contract
/// - **Durable.** A call that returned `Ok` survives a crash of the process right after it.
/// - **Monotonic.** [`set_acked`](Self::set_acked) never moves a cursor backwards: a seq at or
///   below the stored one leaves it unchanged (a late duplicate acknowledgement is harmless).
/// - **Poison is sticky.** [`set_poisoned`](Self::set_poisoned) keeps the acked seq and records
///   the dead letter; `set_acked` does not clear it, only [`resume`](Self::resume) does (an
///   operator's decision after fixing the cause).
/// - [`get`](Self::get) of a trail never written is `None`; [`list`](Self::list) is ordered by
///   trail id.
#[async_trait]
pub trait ForwardCursorStore: Send + Sync + std::fmt::Debug {
    /// The cursor of `trail`, if one was ever written.
    async fn get(&self, trail: &TrailId) -> Result<Option<ForwardCursor>, ForwardCursorError>;

    /// Records that the server acknowledged `trail` up to `seq` (monotonic).
    async fn set_acked(&self, trail: &TrailId, seq: u64) -> Result<(), ForwardCursorError>;

    /// Halts forwarding of `trail`, keeping `dead_letter`.
    async fn set_poisoned(
        &self,
        trail: &TrailId,
        dead_letter: &DeadLetter,
    ) -> Result<(), ForwardCursorError>;

    /// Clears the poison of `trail` (its acked seq stays).
    async fn resume(&self, trail: &TrailId) -> Result<(), ForwardCursorError>;

    /// Every cursor, ordered by trail id.
    async fn list(&self) -> Result<Vec<ForwardCursor>, ForwardCursorError>;
}
