//! `relay-edge forward resume`: clears the poison of a forwarding trail once its cause is fixed.
//!
//! The dead-lettered batch is sent to the server again first. Only when the server now accepts
//! it is the poison cleared (the cursor advanced to what the server acknowledged) and a
//! `FORWARD_RESUMED` event recorded in `_relay`, naming the operator (the OS user running the
//! command), the reason they gave, the dead letter and the server's acknowledgement. While the
//! server still refuses the batch, or cannot be reached to prove otherwise, nothing changes.
//! A running `relay-edge run` takes the trail up again on its next poll.

use std::sync::Arc;

use relay_domain::ports::{
    DeadLetter, ForwardCursorStore, ForwardState, RecordStore, SecretName, TimeSource,
};
use relay_domain::{Actor, AppendService, Device, EventKind, TrailId};

use crate::forwarder::{ForwardSettings, Forwarder, SendOutcome};
use crate::journal::Journal;
use relay_domain::error_chain;

/// The event kind recorded when an operator resumes a poisoned trail.
pub const FORWARD_RESUMED: &str = "FORWARD_RESUMED";

/// Why `forward resume` did not resume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The data directory, cursor or store could not be used.
    #[error("{0}")]
    Open(String),
    /// No reason was given.
    #[error("--reason must say why forwarding may resume (the fix that was made)")]
    NoReason,
    /// The trail is not poisoned.
    #[error("trail {0} is not poisoned; nothing to resume")]
    NotPoisoned(TrailId),
    /// The server still refuses the dead-lettered batch: the cause persists.
    #[error(
        "the server still refuses seq {first}..{last} of trail {trail} (HTTP {status}: {reason}); \
         the cause persists, the trail stays halted"
    )]
    StillRefused {
        /// The trail.
        trail: TrailId,
        /// First seq of the batch.
        first: u64,
        /// Last seq of the batch.
        last: u64,
        /// The HTTP status.
        status: u16,
        /// The server's answer.
        reason: String,
    },
    /// The server could not confirm the fix (unreachable, 5xx, 401...).
    #[error(
        "the server could not confirm the fix ({0}); the trail stays halted: re-run once the \
         server is reachable"
    )]
    Unconfirmed(String),
    /// The resume was done but its event could not be recorded.
    #[error("the poison was cleared but the FORWARD_RESUMED event could not be recorded")]
    Record(#[source] relay_domain::AppendError),
}

/// What `forward resume` did.
#[derive(Debug)]
pub struct ResumeOutcome {
    /// The trail resumed.
    pub trail: TrailId,
    /// The dead letter that was cleared.
    pub dead_letter: DeadLetter,
    /// The seq the server acknowledged for the re-sent batch.
    pub acked_seq: u64,
    /// The `_relay` seq of the `FORWARD_RESUMED` event.
    pub event_seq: u64,
}

/// The ports `forward resume` works on, opened by the composition root.
#[derive(Debug, Clone)]
pub struct ResumePorts {
    /// Every trail's records.
    pub records: Arc<dyn RecordStore>,
    /// How far each trail has been forwarded.
    pub forward_cursors: Arc<dyn ForwardCursorStore>,
    /// The trail key and the forward token.
    pub secrets: Arc<dyn relay_domain::ports::SecretProvider>,
    /// The clock of the `FORWARD_RESUMED` event.
    pub clock: Arc<dyn TimeSource>,
}

/// Re-tries the dead-lettered batch of `trail` and, if the server accepts it now, clears the
/// poison and records `FORWARD_RESUMED` with `operator` and `reason`.
pub async fn resume(
    adapters: &ResumePorts,
    mut settings: ForwardSettings,
    device: Device,
    trail: &TrailId,
    operator: &Actor,
    reason: &str,
) -> Result<ResumeOutcome, ResumeError> {
    if reason.trim().is_empty() {
        return Err(ResumeError::NoReason);
    }
    let open = |e: &dyn std::error::Error| ResumeError::Open(error_chain(e));
    let cursors: Arc<dyn ForwardCursorStore> = adapters.forward_cursors.clone();
    let cursor = cursors.get(trail).await.map_err(|e| open(&e))?;
    let Some(ForwardState::Poisoned(dead)) = cursor.as_ref().map(|c| c.state.clone()) else {
        return Err(ResumeError::NotPoisoned(trail.clone()));
    };
    if settings.token.is_empty() {
        settings.token = crate::forwarder::load_forward_token(adapters.secrets.as_ref())
            .await
            .map_err(|e| open(&e))?;
    }
    let store: Arc<dyn RecordStore> = adapters.records.clone();
    let records = store
        .read(
            trail,
            dead.first_seq.saturating_sub(1),
            usize::try_from(dead.last_seq.saturating_sub(dead.first_seq) + 1).unwrap_or(500),
        )
        .await
        .map_err(|e| open(&e))?;
    let keys = adapters
        .secrets
        .current(&SecretName::trail_hmac())
        .await
        .map_err(|e| open(&e))?
        .to_trail_key()
        .map_err(|e| ResumeError::Open(e.to_string()))?;
    let clock: Arc<dyn TimeSource> = adapters.clock.clone();
    let journal = Journal::new(
        Arc::new(AppendService::new(store.clone(), clock, keys)),
        crate::metrics::Metrics::new(),
        device,
    );
    let forwarder =
        Forwarder::new(settings, store, cursors.clone(), journal.clone()).map_err(|e| open(&e))?;
    let mut outcome = forwarder.send_once(trail, &records).await;
    if let SendOutcome::UnknownKey { reason } = &outcome {
        // Halted by a key rotation the server never learned of: register, then send again.
        tracing::warn!(trail = %trail, reason = %reason, "the server lacks a key; registering the edge's key versions");
        if let Err(why) = crate::enrollment::register_keys(
            &forwarder.settings(),
            adapters.secrets.as_ref(),
            trail,
        )
        .await
        {
            return Err(ResumeError::Unconfirmed(format!(
                "the server lacks a key of the batch and registering the edge's keys failed: {why}"
            )));
        }
        outcome = forwarder.send_once(trail, &records).await;
    }
    let acked_seq = match outcome {
        SendOutcome::Acked(seq) if (dead.first_seq..=dead.last_seq).contains(&seq) => seq,
        SendOutcome::Acked(seq) => {
            return Err(ResumeError::Unconfirmed(format!(
                "the server acknowledged seq {seq}, outside the batch {}..{}",
                dead.first_seq, dead.last_seq
            )));
        }
        SendOutcome::UnknownKey { reason } => {
            return Err(ResumeError::StillRefused {
                trail: trail.clone(),
                first: dead.first_seq,
                last: dead.last_seq,
                status: 422,
                reason,
            });
        }
        SendOutcome::Poison { status, reason } => {
            return Err(ResumeError::StillRefused {
                trail: trail.clone(),
                first: dead.first_seq,
                last: dead.last_seq,
                status,
                reason,
            });
        }
        SendOutcome::Retry(why) => return Err(ResumeError::Unconfirmed(why)),
    };
    cursors
        .set_acked(trail, acked_seq)
        .await
        .map_err(|e| open(&e))?;
    cursors.resume(trail).await.map_err(|e| open(&e))?;
    tracing::warn!(trail = %trail, operator = %operator.as_str(), acked_seq, "forwarding resumed by the operator");
    let event = journal
        .record(
            EventKind::new(FORWARD_RESUMED).map_err(|e| ResumeError::Open(e.to_string()))?,
            None,
            serde_json::json!({
                "trail": trail.as_str(),
                "operator": operator.as_str(),
                "operator_source": "os_session",
                "reason": reason,
                "dead_letter": {
                    "first_seq": dead.first_seq, "last_seq": dead.last_seq,
                    "status": dead.status, "reason": dead.reason,
                },
                "retried_batch_acked_seq": acked_seq,
            }),
        )
        .await
        .map_err(ResumeError::Record)?;
    Ok(ResumeOutcome {
        trail: trail.clone(),
        dead_letter: dead,
        acked_seq,
        event_seq: event.chain_seq.get(),
    })
}
