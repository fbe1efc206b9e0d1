//! `FORWARD_OUTAGE` events: while the server of record cannot be reached (or answers with a
//! temporary failure), a trail's records queue on the edge. The first failed attempt records a
//! `FORWARD_OUTAGE` SYSTEM event with `phase: "start"` (when, why, how many records were
//! queued); the first acknowledgement after it records `phase: "end"` (when, how many attempts
//! failed, how many records were queued then and are being delivered late). The server sees the
//! same lateness as records whose `recorded_at` lies well before the batch's send time.

use relay_domain::TrailId;
use relay_domain::ports::RecordStore;

use crate::journal::Journal;

/// An outage of one trail's forwarding, from its first failed attempt.
#[derive(Debug)]
pub struct ForwardOutage {
    trail: TrailId,
    since: Option<String>,
    /// Attempts that failed since the outage began (the first included).
    pub failed_attempts: u64,
    start_recorded: bool,
}

async fn now(journal: &Journal) -> Option<String> {
    match journal.appender().clock().now().await {
        Ok(t) => Some(t.at.to_canonical()),
        Err(e) => {
            tracing::warn!(error = %e, "no time for the forward outage record");
            None
        }
    }
}

/// Records of `trail` after `acked` (the queue), or `None` when the store cannot say.
async fn queued(store: &dyn RecordStore, trail: &TrailId, acked: u64) -> Option<u64> {
    match store.head(trail).await {
        Ok(head) => Some(head.map_or(0, |h| h.seq.get()).saturating_sub(acked)),
        Err(e) => {
            tracing::warn!(trail = %trail, error = %e, "forward outage: the queue length is unknown");
            None
        }
    }
}

impl ForwardOutage {
    /// The first failure of `trail` after `acked`: records the start (a failure to record is
    /// logged and counted by the journal, and the end event says so).
    pub async fn begin(
        journal: &Journal,
        store: &dyn RecordStore,
        trail: &TrailId,
        acked: u64,
        reason: &str,
    ) -> Self {
        let since = now(journal).await;
        let payload = serde_json::json!({
            "phase": "start",
            "trail": trail.as_str(),
            "first_failure": since,
            "reason": reason,
            "acked_seq": acked,
            "records_queued": queued(store, trail, acked).await,
            "detail": "the server of record cannot take this trail's records now; they stay queued \
                       on the edge, in order, and are retried with backoff",
        });
        let start_recorded = match journal.system("FORWARD_OUTAGE", payload).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(trail = %trail, error = %e, "FORWARD_OUTAGE start not recorded");
                false
            }
        };
        Self {
            trail: trail.clone(),
            since,
            failed_attempts: 1,
            start_recorded,
        }
    }

    /// The server acknowledged up to `acked` again: records the end. Returns the outage back
    /// when the event could not be recorded, so the next acknowledgement tries again.
    pub async fn end(self, journal: &Journal, store: &dyn RecordStore, acked: u64) -> Option<Self> {
        let payload = serde_json::json!({
            "phase": "end",
            "trail": self.trail.as_str(),
            "first_failure": self.since,
            "recovered": now(journal).await,
            "failed_attempts": self.failed_attempts,
            "acked_seq": acked,
            "records_queued": queued(store, &self.trail, acked).await,
            "start_recorded": self.start_recorded,
            "detail": "the server of record acknowledges this trail again; records queued during \
                       the outage are delivered late, in order",
        });
        match journal.system("FORWARD_OUTAGE", payload).await {
            Ok(r) => {
                tracing::warn!(trail = %self.trail, seq = %r.chain_seq, failed_attempts = self.failed_attempts,
                    "forward outage over; recorded as FORWARD_OUTAGE end");
                None
            }
            Err(e) => {
                tracing::error!(trail = %self.trail, error = %e, "FORWARD_OUTAGE end not recorded");
                Some(self)
            }
        }
    }
}
