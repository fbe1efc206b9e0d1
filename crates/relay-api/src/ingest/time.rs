//! Time on ingest: clock skew measured from the instant the edge sent the batch (header
//! [`SENT_AT_HEADER`]), never from the age of the records in it. A backlog forwarded after an
//! outage is old, not skewed; its lateness is what the edge's `FORWARD_OUTAGE` events record.

use std::sync::PoisonError;
use std::time::Instant;

use axum::http::HeaderMap;
use relay_domain::{EventKind, Timestamp};

use super::{EdgeIdentity, IngestRequest, IngestState, record_server_event};
use crate::error::error_chain;

/// The header carrying the edge's clock at the moment it sent the batch (canonical UTC).
pub const SENT_AT_HEADER: &str = "x-relay-sent-at";

/// The edge's send time, when the header is present and well-formed.
pub(super) fn sent_at(headers: &HeaderMap) -> Option<Timestamp> {
    let value = headers.get(SENT_AT_HEADER)?.to_str().ok()?;
    match Timestamp::parse_canonical(value) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed X-Relay-Sent-At header");
            None
        }
    }
}

/// Raises `CLOCK_SKEW` when the edge's send time is off the server clock by more than the
/// threshold (either way), at most once per edge per interval (R8.5). Without a send time
/// (an older edge) nothing is measured: the age of the records says nothing about the clock.
pub(super) async fn check_clock_skew(
    state: &IngestState,
    edge: &EdgeIdentity,
    request: &IngestRequest,
    sent_at: Option<Timestamp>,
) {
    let parts = state.parts();
    let Some(sent_at) = sent_at else {
        tracing::debug!(edge = %edge.0, "no X-Relay-Sent-At header: clock skew not measured");
        return;
    };
    let now = match parts.appender.clock().now().await {
        Ok(t) => t.at,
        Err(e) => {
            tracing::warn!(error = %e, "clock skew check skipped: the server clock failed");
            return;
        }
    };
    let skew_micros = sent_at.micros_since(now);
    let threshold =
        i64::try_from(parts.config.clock_skew_threshold.as_micros()).unwrap_or(i64::MAX);
    if skew_micros.abs() <= threshold {
        return;
    }
    {
        let mut last_event = state
            .inner
            .last_skew_event
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last_event.get(&edge.0)
            && at.elapsed() < parts.config.clock_skew_interval
        {
            return;
        }
        last_event.insert(edge.0.clone(), Instant::now());
    }
    tracing::warn!(edge = %edge.0, trail = %request.trail_id, skew_ms = skew_micros / 1000,
        "edge clock differs from the server clock beyond the threshold");
    let payload = serde_json::json!({
        "edge": edge.0,
        "trail": request.trail_id.as_str(),
        "seq": request.records.last().map(|r| r.chain_seq.get()),
        "basis": "batch_sent_at",
        "edge_sent_at": sent_at.to_canonical(),
        "server_time": now.to_canonical(),
        "skew_ms": skew_micros / 1000,
        "threshold_ms": parts.config.clock_skew_threshold.as_millis(),
    });
    if let Err(e) = record_server_event(state, edge, EventKind::clock_skew(), payload).await {
        tracing::error!(error = %error_chain(&e), "CLOCK_SKEW event not recorded");
    }
}
