//! Per-edge health as Prometheus gauges (issue 24), refreshed from the fleet store by the
//! server: the same figures as `GET /api/v1/fleet`, with an `edge` label, so one alert rule
//! covers 1,000 workstations (deploy/prometheus/alerts.yml).
//!
//! Every replica exports the whole fleet (it reads the shared store); alert on `max by (edge)`.
//! Each refresh replaces every series, so an edge that left the fleet leaves the metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use relay_domain::ports::{FleetStore, TimeSource};

/// The label set of a per-edge series.
type EdgeLabels = Vec<(String, String)>;
/// A per-edge gauge holding a float.
type EdgeGauge = Family<EdgeLabels, Gauge<f64, AtomicU64>>;

/// How often the server refreshes the gauges.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// The per-edge gauges.
#[derive(Debug, Clone, Default)]
pub struct FleetGauges {
    /// Records the server lacks, summed over the edge's trails.
    pub lag_records: EdgeGauge,
    /// Seconds the stored head trails the edge's local head.
    pub lag_seconds: EdgeGauge,
    /// Seconds since the edge was last heard from.
    pub last_seen_age_seconds: EdgeGauge,
    /// The edge's clock minus the server's, seconds.
    pub clock_skew_seconds: EdgeGauge,
    /// 1 when a batch of the edge was refused for good (its forwarding halted).
    pub poisoned: EdgeGauge,
    /// 1 when the edge is revoked.
    pub revoked: EdgeGauge,
    /// Edges per status (`ok`, `lagging`, `poisoned`, …).
    pub edges: EdgeGauge,
    /// Unix time of the last successful refresh.
    pub refreshed_at: Gauge<f64, AtomicU64>,
}

impl FleetGauges {
    /// Registers the gauges under `relay_fleet_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        let fleet = registry.sub_registry_with_prefix("fleet");
        fleet.register(
            "edge_lag_records",
            "Records the server lacks, per edge",
            g.lag_records.clone(),
        );
        fleet.register(
            "edge_lag_seconds",
            "Seconds the stored head trails the edge's local head",
            g.lag_seconds.clone(),
        );
        fleet.register(
            "edge_last_seen_age_seconds",
            "Seconds since the edge was last heard from",
            g.last_seen_age_seconds.clone(),
        );
        fleet.register(
            "edge_clock_skew_seconds",
            "Edge clock minus server clock at its last send",
            g.clock_skew_seconds.clone(),
        );
        fleet.register(
            "edge_poisoned",
            "1 when a batch of the edge was refused for good",
            g.poisoned.clone(),
        );
        fleet.register(
            "edge_revoked",
            "1 when the edge is revoked",
            g.revoked.clone(),
        );
        fleet.register("edges", "Edges per health status", g.edges.clone());
        fleet.register(
            "refreshed_at_seconds",
            "Unix time the fleet gauges were last refreshed",
            g.refreshed_at.clone(),
        );
        g
    }

    /// Replaces every series with `view`'s figures at unix time `now_secs`.
    pub fn set(&self, view: &relay_api::fleet::FleetView, now_secs: f64) {
        for family in [
            &self.lag_records,
            &self.lag_seconds,
            &self.last_seen_age_seconds,
            &self.clock_skew_seconds,
            &self.poisoned,
            &self.revoked,
            &self.edges,
        ] {
            family.clear();
        }
        for e in &view.edges {
            let label = vec![("edge".to_owned(), e.edge.clone())];
            self.lag_records
                .get_or_create(&label)
                .set(e.lag_records as f64);
            if let Some(s) = e.lag_seconds {
                self.lag_seconds.get_or_create(&label).set(s);
            }
            if let Some(age) = e.last_seen_age_seconds {
                self.last_seen_age_seconds.get_or_create(&label).set(age);
            }
            if let Some(ms) = e.clock_skew_ms {
                self.clock_skew_seconds
                    .get_or_create(&label)
                    .set(ms as f64 / 1000.0);
            }
            let poisoned = e.trails.iter().any(|t| t.refused.is_some());
            self.poisoned
                .get_or_create(&label)
                .set(if poisoned { 1.0 } else { 0.0 });
            self.revoked
                .get_or_create(&label)
                .set(if e.state == "revoked" { 1.0 } else { 0.0 });
        }
        for (status, n) in &view.counts {
            self.edges
                .get_or_create(&vec![("status".to_owned(), status.clone())])
                .set(*n as f64);
        }
        self.refreshed_at.set(now_secs);
    }
}

/// Refreshes `gauges` from `fleet` every [`REFRESH_EVERY`] until `stop` fires. A failed refresh
/// keeps the previous figures (their `refreshed_at_seconds` ages, which the alert rules watch)
/// and logs a warning.
pub async fn refresh_loop(
    gauges: FleetGauges,
    fleet: Arc<dyn FleetStore>,
    clock: Arc<dyn TimeSource>,
    configured: Vec<String>,
    skew_threshold: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match refresh_once(
            &gauges,
            fleet.as_ref(),
            clock.as_ref(),
            &configured,
            skew_threshold,
        )
        .await
        {
            Ok(()) => {}
            Err(why) => tracing::warn!(error = %why, "fleet gauges not refreshed"),
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One refresh of [`refresh_loop`].
pub async fn refresh_once(
    gauges: &FleetGauges,
    fleet: &dyn FleetStore,
    clock: &dyn TimeSource,
    configured: &[String],
    skew_threshold: Duration,
) -> Result<(), String> {
    let now = clock.now().await.map_err(|e| e.to_string())?.at;
    let entries = fleet.edges().await.map_err(|e| e.to_string())?;
    let reports = fleet.reports().await.map_err(|e| e.to_string())?;
    let view = relay_api::fleet::fleet_health(&entries, configured, &reports, now, skew_threshold);
    gauges.set(&view, now.unix_micros() as f64 / 1e6);
    Ok(())
}
