//! The server CLI's fleet commands (issue 24): `relay-server enroll-code`, `relay-server edge
//! revoke`, `relay-server fleet`. They act on the configured stores directly, like the API does
//! for a logged-in admin, and record the same events in the server's `_relay`, attributed to the
//! OS account that ran the command (`os:<user>`).

use std::sync::Arc;
use std::time::Duration;

use relay_api::fleet::{FleetView, fleet_health, make_code};
use relay_domain::ports::{FleetStore, SecretName, SecretProviderExt};
use relay_domain::{Actor, ActorSource, AppendService, Device, EventKind, Subject};

use crate::journal::Journal;
use crate::server::ServerStores;

/// Why a fleet command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetAdminError {
    /// The server has no fleet store.
    #[error("this server's storage has no fleet store")]
    NoFleet,
    /// Bad input or a refused operation.
    #[error("{0}")]
    Refused(String),
    /// The store, the clock or the secrets failed.
    #[error("{0}")]
    Store(String),
    /// The event could not be recorded (for `issue_code`: the code was not shown, so it is
    /// unusable to anyone).
    #[error("the event could not be recorded in _relay")]
    Record(#[source] relay_domain::AppendError),
}

fn fleet(stores: &ServerStores) -> Result<&Arc<dyn FleetStore>, FleetAdminError> {
    stores.fleet.as_ref().ok_or(FleetAdminError::NoFleet)
}

async fn journal(stores: &ServerStores, device: Device) -> Result<Journal, FleetAdminError> {
    let key = stores
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .map_err(|e| FleetAdminError::Store(e.to_string()))?
        .to_trail_key()
        .map_err(|e| FleetAdminError::Store(e.to_string()))?;
    let appender = Arc::new(AppendService::new(
        stores.records.clone(),
        stores.clock.clone(),
        key,
    ));
    Ok(Journal::new(
        appender,
        crate::metrics::Metrics::new(),
        device,
    ))
}

/// A code issued from the CLI.
#[derive(Debug, Clone)]
pub struct CliCode {
    /// The code text (print it once).
    pub code: String,
    /// When it expires (canonical UTC).
    pub expires_at: String,
}

/// Issues a one-time enrollment code for `edge`, valid for `ttl`.
pub async fn issue_code(
    stores: &ServerStores,
    device: Device,
    edge: &str,
    ttl: Duration,
    actor: &Actor,
) -> Result<CliCode, FleetAdminError> {
    let fleet = fleet(stores)?;
    let now = stores
        .clock
        .now()
        .await
        .map_err(|e| FleetAdminError::Store(e.to_string()))?
        .at;
    let minutes = ttl.as_secs().div_ceil(60);
    let (code, stored) = make_code(edge, actor.as_str(), now, minutes)
        .map_err(|e| FleetAdminError::Refused(e.message))?;
    // The event first: a code is only handed out once its issue is on the record.
    journal(stores, device)
        .await?
        .record_by(
            EventKind::enrollment_code_issued(),
            Some(actor.clone()),
            ActorSource::OsSession,
            Subject::new(format!("edge:{edge}")).ok(),
            serde_json::json!({
                "edge": edge,
                "expires_at": stored.expires_at.to_canonical(),
                "ttl_minutes": minutes,
                "via": "relay-server enroll-code",
            }),
        )
        .await
        .map_err(FleetAdminError::Record)?;
    fleet
        .issue_code(&stored)
        .await
        .map_err(|e| FleetAdminError::Store(e.to_string()))?;
    Ok(CliCode {
        code,
        expires_at: stored.expires_at.to_canonical(),
    })
}

/// Revokes `edge` (refused at once on every replica; its token gets a fresh version).
pub async fn revoke(
    stores: &ServerStores,
    device: Device,
    edge: &str,
    reason: &str,
    actor: &Actor,
) -> Result<(), FleetAdminError> {
    if reason.trim().is_empty() {
        return Err(FleetAdminError::Refused(
            "say why the edge is revoked (--reason)".into(),
        ));
    }
    let fleet = fleet(stores)?;
    let now = stores
        .clock
        .now()
        .await
        .map_err(|e| FleetAdminError::Store(e.to_string()))?
        .at;
    fleet
        .revoke(edge, now, actor.as_str())
        .await
        .map_err(|e| match e {
            relay_domain::ports::FleetError::UnknownEdge { .. } => {
                FleetAdminError::Refused(format!("edge {edge:?} never enrolled"))
            }
            e => FleetAdminError::Store(e.to_string()),
        })?;
    let token_name = relay_api::ingest_token_secret(edge)
        .map_err(|e| FleetAdminError::Refused(format!("edge id: {e}")))?;
    let token_version = match stores.secrets.rotate(&token_name).await {
        Ok(v) => Some(v.id().as_str().to_owned()),
        Err(relay_domain::ports::SecretError::NotFound { .. }) => None,
        Err(e) => return Err(FleetAdminError::Store(e.to_string())),
    };
    journal(stores, device)
        .await?
        .record_by(
            EventKind::edge_revoked(),
            Some(actor.clone()),
            ActorSource::OsSession,
            Subject::new(format!("edge:{edge}")).ok(),
            serde_json::json!({
                "edge": edge,
                "reason": reason.trim(),
                "token_version": token_version,
                "via": "relay-server edge revoke",
            }),
        )
        .await
        .map_err(FleetAdminError::Record)?;
    Ok(())
}

/// Every edge's health, as `GET /api/v1/fleet` shows it.
pub async fn view(
    stores: &ServerStores,
    configured: &[String],
    skew_threshold: Duration,
) -> Result<FleetView, FleetAdminError> {
    let fleet = fleet(stores)?;
    let store = |e: relay_domain::ports::FleetError| FleetAdminError::Store(e.to_string());
    let now = stores
        .clock
        .now()
        .await
        .map_err(|e| FleetAdminError::Store(e.to_string()))?
        .at;
    let entries = fleet.edges().await.map_err(store)?;
    let reports = fleet.reports().await.map_err(store)?;
    Ok(fleet_health(
        &entries,
        configured,
        &reports,
        now,
        skew_threshold,
    ))
}
