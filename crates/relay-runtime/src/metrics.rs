//! Prometheus metrics. Every failure that must not stop the process is counted here as well as
//! logged and journaled, so an alert can fire on it.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The relay's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records durably appended to any trail.
    pub records_appended: Counter,
    /// Appends (audit writes) that failed.
    pub audit_write_failures: Counter,
    /// Files that could not be captured (each also has a `CAPTURE_FAILED` record when possible).
    pub capture_failures: Counter,
    /// Notarizations that failed.
    pub notary_failures: Counter,
    /// Failed logins.
    pub login_failures: Counter,
    /// Account lockouts.
    pub lockouts: Counter,
    /// Logins refused because their client address failed too often (429 `too_many_attempts`).
    pub login_client_refusals: Counter,
    /// Capture events no person could be attributed to (recorded as the service identity with
    /// `"unattributed": true`).
    pub capture_unattributed: Counter,
    /// Files seen but not yet captured (settling or awaiting retry).
    pub capture_pending: Gauge,
    /// Append-only controls of the record store found missing at start (0 when enforced).
    pub append_only_missing: Gauge,
    /// Batches the server of record acknowledged (edge forwarder).
    pub batches_forwarded: Counter,
    /// Forward attempts that failed temporarily and will be retried.
    pub forward_retries: Counter,
    /// Trails halted because the server refused a batch for good.
    pub forward_poisoned: Counter,
    /// Backwards steps of the clock (each also a `CLOCK_SKEW` event, `check: step_back`).
    pub clock_steps_back: Counter,
    /// Ingest counters (server of record).
    pub ingest: relay_api::IngestMetrics,
    /// Per-edge health gauges (server of record, issue 24).
    pub fleet: crate::fleet_metrics::FleetGauges,
}

impl Metrics {
    /// A fresh set of metrics registered under the `relay` prefix.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("relay");
        let m = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let records_appended = m(
            &mut registry,
            "records_appended",
            "Records durably appended to a trail",
        );
        let audit_write_failures = m(
            &mut registry,
            "audit_write_failures",
            "Audit-trail appends that failed (nothing was recorded)",
        );
        let capture_failures = m(
            &mut registry,
            "capture_failures",
            "Files that could not be captured",
        );
        let capture_unattributed = m(
            &mut registry,
            "capture_unattributed",
            "Capture events recorded unattributed (no person resolved: service identity)",
        );
        let notary_failures = m(
            &mut registry,
            "notary_failures",
            "Notarizations of trail heads that failed",
        );
        let login_failures = m(&mut registry, "login_failures", "Failed login attempts");
        let lockouts = m(
            &mut registry,
            "lockouts",
            "Accounts locked after repeated failures",
        );
        let login_client_refusals = m(
            &mut registry,
            "login_client_refusals",
            "Logins refused before any password check because their client address failed too many",
        );
        let batches_forwarded = m(
            &mut registry,
            "forward_batches",
            "Batches acknowledged by the server of record",
        );
        let forward_retries = m(
            &mut registry,
            "forward_retries",
            "Forward attempts that failed temporarily (retried with backoff)",
        );
        let forward_poisoned = m(
            &mut registry,
            "forward_poisoned",
            "Trails whose forwarding halted on a refused batch",
        );
        let clock_steps_back = m(
            &mut registry,
            "clock_steps_back",
            "Times the clock read earlier than the latest instant already used",
        );
        let ingest = relay_api::IngestMetrics {
            records_ingested: m(&mut registry, "ingest_records", "Records stored by ingest"),
            batches_refused: m(
                &mut registry,
                "ingest_refused_batches",
                "Ingest batches refused with 422",
            ),
            auth_failures: m(
                &mut registry,
                "ingest_auth_failures",
                "Ingest requests with a missing or wrong edge credential",
            ),
            audit_write_failures: m(
                &mut registry,
                "ingest_audit_write_failures",
                "Server events of ingest that could not be recorded",
            ),
            receipt_write_failures: m(
                &mut registry,
                "ingest_receipt_write_failures",
                "Ingested batches whose time of receipt could not be stored",
            ),
            fleet_report_failures: m(
                &mut registry,
                "fleet_report_failures",
                "Edge health reports the fleet store could not keep",
            ),
            enrollments_refused: m(
                &mut registry,
                "fleet_enrollments_refused",
                "Enrollments refused (unknown, used or expired code; too many attempts)",
            ),
        };
        let fleet = crate::fleet_metrics::FleetGauges::register(&mut registry);
        let capture_pending = Gauge::default();
        registry.register(
            "capture_pending",
            "Files seen and not yet captured",
            capture_pending.clone(),
        );
        let append_only_missing = Gauge::default();
        registry.register(
            "append_only_missing",
            "Append-only controls (triggers, grants) of the record store found missing at start",
            append_only_missing.clone(),
        );
        Arc::new(Self {
            registry,
            append_only_missing,
            records_appended,
            audit_write_failures,
            capture_failures,
            capture_unattributed,
            notary_failures,
            login_failures,
            lockouts,
            login_client_refusals,
            capture_pending,
            batches_forwarded,
            forward_retries,
            forward_poisoned,
            clock_steps_back,
            ingest,
            fleet,
        })
    }

    /// The counters the review API adds to (the same counters, shared).
    pub fn api_metrics(&self) -> relay_api::ApiMetrics {
        relay_api::ApiMetrics {
            login_failures: self.login_failures.clone(),
            lockouts: self.lockouts.clone(),
            login_client_refusals: self.login_client_refusals.clone(),
            audit_write_failures: self.audit_write_failures.clone(),
            records_appended: self.records_appended.clone(),
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            // Encoding into a String cannot fail short of a bug; say so in the output itself.
            out = format!("# metrics encoding failed: {e}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R11.2
    #[test]
    fn renders_counters_in_prometheus_text() {
        let m = Metrics::new();
        m.audit_write_failures.inc();
        m.notary_failures.inc_by(2);
        let text = m.render();
        assert!(
            text.contains("relay_audit_write_failures_total 1"),
            "{text}"
        );
        assert!(text.contains("relay_notary_failures_total 2"), "{text}");
        assert!(text.contains("# HELP relay_login_failures"), "{text}");
        m.capture_unattributed.inc();
        assert!(
            m.render().contains("relay_capture_unattributed_total 1"),
            "{text}"
        );
    }
}
