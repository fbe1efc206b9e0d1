//! What the server keeps of each edge's health after every batch (issue 24): the edge's local
//! head as it reported it, the stored head, the clock skew, its version and the last refusal.
//! These feed the fleet view and the per-edge metrics ([`crate::fleet`]).
//!
//! A report that cannot be stored changes nothing about the batch (it is stored or refused as
//! before); the failure is logged and counted (`relay_fleet_report_failures_total`).

use axum::http::HeaderMap;
use relay_domain::Timestamp;
use relay_domain::ports::EdgeReport;

use super::{EdgeIdentity, IngestRequest, IngestResponse, IngestState};
use crate::error::{ApiError, error_chain};

/// The header carrying the edge's local head of the batch's trail: `<seq>@<recorded_at>`
/// (canonical UTC), e.g. `1234@2026-12-05T01:02:03.000004Z`.
pub const EDGE_HEAD_HEADER: &str = "x-relay-edge-head";
/// The header carrying the edge's software version (`relay-edge 0.1.0`).
pub const EDGE_VERSION_HEADER: &str = "x-relay-version";
/// Longest version text kept.
const MAX_VERSION_CHARS: usize = 64;

/// Parses an [`EDGE_HEAD_HEADER`] value.
pub(crate) fn edge_head(headers: &HeaderMap) -> Option<(u64, Timestamp)> {
    let value = headers.get(EDGE_HEAD_HEADER)?.to_str().ok()?;
    let (seq, at) = value.split_once('@')?;
    Some((seq.parse().ok()?, Timestamp::parse_canonical(at).ok()?))
}

fn version(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(EDGE_VERSION_HEADER)?.to_str().ok()?;
    let v: String = v
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VERSION_CHARS)
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Stores the edge's report of the batch's trail after `result`.
pub(super) async fn after_batch(
    state: &IngestState,
    edge: &EdgeIdentity,
    headers: &HeaderMap,
    request: &IngestRequest,
    sent_at: Option<Timestamp>,
    result: &Result<IngestResponse, ApiError>,
) {
    let Some(fleet) = state.fleet() else {
        return;
    };
    let now = match state.parts().appender.clock().now().await {
        Ok(t) => t.at,
        Err(e) => {
            state.metrics().fleet_report_failures.inc();
            tracing::warn!(edge = %edge.0, error = %error_chain(&e), "edge report not stored: the server clock failed");
            return;
        }
    };
    let trail = &request.trail_id;
    let (stored_head_seq, stored_head_at, last_batch_at, refused) = match result {
        Ok(ack) => {
            let head_at = request
                .records
                .last()
                .filter(|r| r.chain_seq.get() == ack.head_seq)
                .map(|r| r.recorded_at);
            (ack.head_seq, head_at, Some(now), None)
        }
        Err(e) if e.status.is_client_error() => {
            let head = state.parts().store.head(trail).await.ok().flatten();
            (
                head.map_or(0, |h| h.seq.get()),
                None,
                None,
                (e.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY)
                    .then(|| e.code.to_owned()),
            )
        }
        // A server-side failure says nothing about the edge.
        Err(_) => return,
    };
    let local = edge_head(headers);
    let report = EdgeReport {
        edge: edge.0.clone(),
        trail: trail.clone(),
        seen_at: now,
        last_batch_at,
        local_head_seq: local.map(|(seq, _)| seq),
        local_head_at: local.map(|(_, at)| at),
        stored_head_seq,
        stored_head_at,
        skew_ms: sent_at.map(|s| s.micros_since(now) / 1000),
        version: version(headers),
        refused,
    };
    if let Err(e) = fleet.report(&report).await {
        state.metrics().fleet_report_failures.inc();
        tracing::warn!(edge = %edge.0, trail = %trail, error = %error_chain(&e),
            "edge health report not stored; the fleet view shows the previous one");
    }
}

/// An authenticated request that carries no batch (an idle edge's heartbeat,
/// `GET /api/v1/ingest/heads`): the edge was heard from now.
pub(super) async fn heartbeat(state: &IngestState, edge: &EdgeIdentity) {
    let Some(fleet) = state.fleet() else {
        return;
    };
    let now = match state.parts().appender.clock().now().await {
        Ok(t) => t.at,
        Err(e) => {
            state.metrics().fleet_report_failures.inc();
            tracing::warn!(edge = %edge.0, error = %error_chain(&e), "heartbeat not stored: the server clock failed");
            return;
        }
    };
    if let Err(e) = fleet.seen(&edge.0, now).await {
        state.metrics().fleet_report_failures.inc();
        tracing::warn!(edge = %edge.0, error = %error_chain(&e), "heartbeat not stored");
    }
}
