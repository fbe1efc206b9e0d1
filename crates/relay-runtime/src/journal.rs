//! The `_relay` journal: the relay's own process events (R1.6), written with the relay as actor.

use std::sync::Arc;

use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, Device, EventDraft, EventKind, Payload, Record,
    Subject, TrailId,
};

use crate::metrics::Metrics;

/// How often an append to `_relay` refused as not next or conflicting (another process appended
/// first, at the seq this one expected) is
/// re-chained and tried again; nothing is stored by a refused attempt.
const NOT_NEXT_RETRIES: u32 = 8;
/// The actor name of events the relay process causes itself.
pub const RELAY_ACTOR: &str = "relay";

/// Writes events to the reserved `_relay` trail; every failure is logged, counted and returned.
#[derive(Debug, Clone)]
pub struct Journal {
    appender: Arc<AppendService>,
    metrics: Arc<Metrics>,
    device: Device,
}

impl Journal {
    /// A journal appending through `appender` for workstation `device`.
    pub fn new(appender: Arc<AppendService>, metrics: Arc<Metrics>, device: Device) -> Self {
        Self {
            appender,
            metrics,
            device,
        }
    }

    /// The append service behind the journal.
    pub fn appender(&self) -> &Arc<AppendService> {
        &self.appender
    }

    /// The metrics the journal counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Appends a relay event of `kind` with `payload`, the relay itself as actor.
    pub async fn record(
        &self,
        kind: EventKind,
        subject: Option<Subject>,
        payload: serde_json::Value,
    ) -> Result<Record, AppendError> {
        let relay = Actor::new(RELAY_ACTOR).ok();
        self.record_by(kind, relay, ActorSource::System, subject, payload)
            .await
    }

    /// Appends an event of `kind` to `_relay` caused by `actor` (e.g. the verified API caller
    /// of an export), resolved as `actor_source`.
    pub async fn record_by(
        &self,
        kind: EventKind,
        actor: Option<Actor>,
        actor_source: ActorSource,
        subject: Option<Subject>,
        payload: serde_json::Value,
    ) -> Result<Record, AppendError> {
        let payload = match Payload::from_value(&payload) {
            Ok(p) => p,
            Err(e) => {
                // Our own payloads are built in code; a failure here is a bug worth its own event.
                tracing::error!(kind = %kind, error = %e, "relay event payload refused");
                Payload::from_value(
                    &serde_json::json!({"error": "payload refused", "detail": e.to_string()}),
                )
                .unwrap_or_else(|_| Payload::empty())
            }
        };
        let draft = EventDraft {
            trail_id: TrailId::relay(),
            kind: kind.clone(),
            actor,
            actor_source,
            occurred_at: None,
            device: self.device.clone(),
            project: None,
            subject,
            payload,
        };
        // Another process (e.g. `relay-edge export` next to `relay-edge run`, or a second
        // server of record on the same database recording its anchors) may have appended to
        // `_relay` since this one cached the head: re-chained.
        let result = self
            .appender
            .append_rechaining(draft, NOT_NEXT_RETRIES)
            .await;
        match result {
            Ok(r) => {
                self.metrics.records_appended.inc();
                tracing::debug!(trail = "_relay", seq = %r.chain_seq, kind = %kind, "relay event recorded");
                Ok(r)
            }
            Err(e) => {
                self.metrics.audit_write_failures.inc();
                tracing::error!(trail = "_relay", kind = %kind, error = %e, "failed to record relay event");
                Err(e)
            }
        }
    }

    /// Appends a `SYSTEM` event: a warning or failure of the relay itself.
    pub async fn system(
        &self,
        what: &str,
        payload: serde_json::Value,
    ) -> Result<Record, AppendError> {
        let mut body = serde_json::json!({ "event": what });
        if let (Some(obj), serde_json::Value::Object(extra)) = (body.as_object_mut(), payload) {
            obj.extend(extra);
        }
        self.record(EventKind::system(), None, body).await
    }
}
