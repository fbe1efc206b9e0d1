//! Enrollment and key registration (issue 24): `POST /api/v1/enroll` and
//! `POST /api/v1/ingest/keys`.
//!
//! **Enrollment.** An admin issues a one-time code for an edge id ([`crate::fleet`]). The
//! workstation presents it once with its trail key versions; the server redeems the code
//! (single use, bound to that edge, expiring; failures rate-limited per client address and
//! recorded), stores the keys as `trail-hmac.<trail>` keeping their ids, issues a fresh ingest
//! token (a re-enrollment replaces the old one, so the old token never works again), records
//! the edge in the fleet store every replica reads, and writes `ENROLLED` in `_relay` naming the
//! admin who issued the code. No file is copied, no configuration edited, no server restarted.
//!
//! **Key registration.** After `relay-edge keys rotate`, the edge's forwarder sends the versions
//! the server lacks, each with a proof under the version before it
//! ([`relay_domain::TrailKey::registration_proof`]), authenticated by its ingest token. A stolen
//! token alone cannot add a key: the proof needs the previous key.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use relay_domain::ports::{CodeDigest, FleetError, SecretError, SecretProviderExt, SecretValue};
use relay_domain::{Checksum, EventKind, KeyId, TrailId, TrailKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EdgeIdentity, IngestState, authenticate, ingest_token_secret, trail_key_secret};
use crate::error::{ApiError, ErrorBody, error_chain};

/// Most trails one edge enrolls at once.
pub const MAX_ENROLL_TRAILS: usize = 64;
/// Most key versions one request carries.
pub const MAX_KEY_VERSIONS: usize = 1_000;

/// One trail key version as the edge holds it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyVersion {
    /// Its key id (what records name in `key_id`).
    pub id: String,
    /// The key bytes, lower-case hex (at least 32 bytes).
    pub secret_hex: String,
    /// For a registration: the proof under the version before it (hex HMAC-SHA256,
    /// [`relay_domain::TrailKey::registration_proof`]); absent at enrollment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_hex: Option<String>,
}

impl std::fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVersion")
            .field("id", &self.id)
            .field("secret_hex", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/enroll`: an edge presents its one-time code.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The edge id the code was issued for.
    pub edge: String,
    /// The one-time code.
    pub code: String,
    /// The capture trails the edge will forward.
    pub trails: Vec<String>,
    /// Every version of the edge's trail key, oldest first.
    pub keys: Vec<KeyVersion>,
    /// The edge's software version.
    #[serde(default)]
    pub version: Option<String>,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("edge", &self.edge)
            .field("code", &"<redacted>")
            .field("trails", &self.trails)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// What an enrolled edge receives.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// The edge id.
    pub edge: String,
    /// Its ingest token (64 hex characters); shown once, stored by the edge in its secret
    /// provider.
    pub token: String,
    /// The trails it may forward.
    pub trails: Vec<String>,
    /// The key ids the server now holds for them.
    pub key_ids: Vec<String>,
    /// The server's device id.
    pub server: String,
    /// The admin who issued the code.
    pub enrolled_by: String,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("edge", &self.edge)
            .field("token", &"<redacted>")
            .field("trails", &self.trails)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/ingest/keys`: key versions of one trail the server may lack, each proven under
/// the version before it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKeysRequest {
    /// The trail.
    pub trail_id: String,
    /// Every version of the edge's key, oldest first; the first must already be held.
    pub keys: Vec<KeyVersion>,
}

/// What the server holds after a registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RegisterKeysResponse {
    /// The trail.
    pub trail_id: String,
    /// Key ids added by this request.
    pub added: Vec<String>,
    /// Every key id the server holds for the trail.
    pub held: Vec<String>,
}

fn key_of(v: &KeyVersion) -> Result<TrailKey, ApiError> {
    let bad = |why: String| ApiError::unprocessable("invalid_key", why);
    let id = KeyId::new(v.id.clone()).map_err(|e| bad(format!("key id {:?}: {e}", v.id)))?;
    let bytes = zeroize::Zeroizing::new(
        hex::decode(&v.secret_hex).map_err(|_| bad(format!("key {id}: secret_hex is not hex")))?,
    );
    TrailKey::new(id.clone(), &bytes).map_err(|e| bad(format!("key {id}: {e}")))
}

fn secret_of(key: &TrailKey) -> SecretValue {
    SecretValue::new(key.id().clone(), key.expose_secret().to_vec())
}

fn fleet_error(e: FleetError) -> ApiError {
    match e.status() {
        relay_domain::ErrorStatus::Temporary => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the fleet store is unavailable; retry",
        ),
        _ => ApiError::internal("the fleet store failed", &e),
    }
}

/// Enrolls an edge with a one-time code.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "ingest", request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled: the edge's ingest token", body = EnrollResponse),
        (status = 401, description = "The code is unknown, used, expired or for another edge (`enrollment_refused`)", body = ErrorBody),
        (status = 409, description = "A trail is bound to another edge (`trail_taken`) or a key id is held with other bytes (`key_conflict`)", body = ErrorBody),
        (status = 422, description = "Invalid edge id, trail or key", body = ErrorBody),
        (status = 404, description = "Not a server of record: no enrollment here", body = ErrorBody),
        (status = 429, description = "Too many failed enrollments from this client (`too_many_attempts`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody),
    ))]
pub(crate) async fn enroll(
    State(state): State<IngestState>,
    request: axum::extract::Request,
) -> Result<axum::Json<EnrollResponse>, ApiError> {
    let (head, body) = request.into_parts();
    let client = crate::client::ClientInfo::of(&head.headers, &head.extensions);
    let Some(fleet) = state.fleet() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "enrollment_disabled",
            "this server has no fleet store; provision edges by hand (docs/operations.md)",
        ));
    };
    let attempt = match state.inner.enroll_failures.admit(
        client.ip.map(crate::client_limit::ClientKey::of),
        Instant::now(),
    ) {
        Ok(a) => a,
        Err(refused) => {
            state.metrics().enrollments_refused.inc();
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!(
                    "too many failed enrollments from this client; retry in {} s",
                    refused.retry_after
                ),
            );
            e.retry_after = Some(refused.retry_after);
            return Err(e);
        }
    };
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("the request body could not be read (at most 1 MiB)"))?;
    let req: EnrollRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::unprocessable("invalid_body", format!("not an enrollment: {e}")))?;
    let result = enroll_checked(&state, fleet.as_ref(), &req, &client).await;
    match &result {
        Ok(_) => attempt.succeeded(Instant::now()),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => attempt.failed(Instant::now()),
        Err(_) => drop(attempt),
    }
    result.map(axum::Json)
}

async fn enroll_checked(
    state: &IngestState,
    fleet: &dyn relay_domain::ports::FleetStore,
    req: &EnrollRequest,
    client: &crate::client::ClientInfo,
) -> Result<EnrollResponse, ApiError> {
    let parts = state.parts();
    ingest_token_secret(&req.edge)
        .map_err(|e| ApiError::unprocessable("invalid_edge", format!("edge id: {e}")))?;
    if req.trails.is_empty() || req.trails.len() > MAX_ENROLL_TRAILS {
        return Err(ApiError::unprocessable(
            "invalid_trail",
            format!("name 1 to {MAX_ENROLL_TRAILS} trails"),
        ));
    }
    let mut trails = Vec::new();
    for t in &req.trails {
        let trail = TrailId::new(t.clone())
            .map_err(|e| ApiError::unprocessable("invalid_trail", format!("trail {t:?}: {e}")))?;
        if trail.is_relay() {
            return Err(ApiError::unprocessable(
                "invalid_trail",
                "_relay is never forwarded",
            ));
        }
        if !trails.contains(&trail) {
            trails.push(trail);
        }
    }
    if req.keys.is_empty() || req.keys.len() > MAX_KEY_VERSIONS {
        return Err(ApiError::unprocessable(
            "invalid_key",
            format!("send 1 to {MAX_KEY_VERSIONS} key versions"),
        ));
    }
    let keys = req.keys.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    let now = state.now().await?;

    // The code first: nothing is written for a caller without one.
    let code = match fleet
        .redeem(&CodeDigest::of(&req.code), &req.edge, now)
        .await
    {
        Ok(code) => code,
        Err(FleetError::Refused(why)) => {
            state.metrics().enrollments_refused.inc();
            tracing::warn!(edge = %req.edge, client = ?client.address, reason = %why, "enrollment refused");
            let payload = serde_json::json!({
                "event": "ENROLLMENT_REFUSED",
                "edge": req.edge,
                "reason": why.to_string(),
                "client": client.address,
            });
            state
                .record_event(&req.edge, EventKind::system(), payload)
                .await?;
            return Err(ApiError::unauthorized(
                "enrollment_refused",
                format!("{why}; ask an admin for a new code for edge {}", req.edge),
            ));
        }
        Err(e) => return Err(fleet_error(e)),
    };

    // A trail already bound to another edge stays with it.
    let edges = fleet.edges().await.map_err(fleet_error)?;
    for trail in &trails {
        let configured_elsewhere = parts
            .config
            .edge_trails
            .iter()
            .any(|(edge, ts)| edge != &req.edge && ts.contains(trail))
            || (parts
                .config
                .edges
                .iter()
                .any(|e| e == trail.as_str() && e != &req.edge)
                && !parts.config.edge_trails.contains_key(trail.as_str()));
        let enrolled_elsewhere = edges.iter().any(|e| {
            e.edge != req.edge
                && e.state == relay_domain::ports::EdgeState::Enrolled
                && e.trails.contains(trail)
        });
        if configured_elsewhere || enrolled_elsewhere {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "trail_taken",
                format!("trail {trail} is bound to another edge on this server"),
            ));
        }
    }

    let versions: Vec<SecretValue> = keys.iter().map(secret_of).collect();
    let mut key_ids = Vec::new();
    for trail in &trails {
        let name = trail_key_secret(trail)
            .map_err(|e| ApiError::unprocessable("invalid_trail", format!("trail {trail}: {e}")))?;
        parts
            .secrets
            .import(&name, &versions)
            .await
            .map_err(key_error)?;
        key_ids = parts
            .secrets
            .versions(&name)
            .await
            .map_err(ApiError::from)?;
    }
    let token_name = ingest_token_secret(&req.edge)
        .map_err(|e| ApiError::unprocessable("invalid_edge", format!("edge id: {e}")))?;
    let token = match parts.secrets.rotate(&token_name).await {
        Err(SecretError::NotFound { .. }) => parts.secrets.create(&token_name).await,
        other => other,
    }
    .map_err(ApiError::from)?;
    state.reinstate(&req.edge);
    fleet
        .enroll(&req.edge, &trails, now, &code.issued_by)
        .await
        .map_err(fleet_error)?;
    let payload = serde_json::json!({
        "event": "ENROLLED",
        "edge": req.edge,
        "trails": trails.iter().map(TrailId::as_str).collect::<Vec<_>>(),
        "key_ids": key_ids.iter().map(KeyId::as_str).collect::<Vec<_>>(),
        "token_version": token.id().as_str(),
        "code_issued_by": code.issued_by,
        "code_issued_at": code.issued_at.to_canonical(),
        "client": client.address,
        "version": req.version,
    });
    state
        .record_event(&req.edge, EventKind::enrolled(), payload)
        .await?;
    tracing::info!(edge = %req.edge, trails = trails.len(), by = %code.issued_by, "edge enrolled");
    Ok(EnrollResponse {
        edge: req.edge.clone(),
        token: super::token_text(&token),
        trails: trails.iter().map(|t| t.as_str().to_owned()).collect(),
        key_ids: key_ids.iter().map(|k| k.as_str().to_owned()).collect(),
        server: parts.device.as_str().to_owned(),
        enrolled_by: code.issued_by,
    })
}

/// A version id held with other bytes is 409 `key_conflict`; anything else as usual.
fn key_error(e: SecretError) -> ApiError {
    match e {
        e @ SecretError::VersionConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "key_conflict", e.to_string())
        }
        other => ApiError::from(other),
    }
}

/// Registers the edge's new trail key versions, each proven under the version before it.
#[utoipa::path(post, path = "/api/v1/ingest/keys", tag = "ingest", request_body = RegisterKeysRequest,
    params(("X-Relay-Edge" = String, Header, description = "The edge id whose ingest token is presented")),
    responses(
        (status = 200, description = "Every version is held now", body = RegisterKeysResponse),
        (status = 401, description = "Missing or wrong edge credential (no detail)", body = ErrorBody),
        (status = 403, description = "The trail is not bound to this edge (`trail_not_bound`)", body = ErrorBody),
        (status = 404, description = "Not a server of record", body = ErrorBody),
        (status = 422, description = "A proof does not verify (`bad_proof`), the first version is not held (`unknown_key`), or a key is invalid", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn register_keys(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<RegisterKeysResponse>, ApiError> {
    let edge = authenticate(&state, &headers).await?;
    let req: RegisterKeysRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable("invalid_body", format!("not a registration: {e}")))?;
    let trail = TrailId::new(req.trail_id.clone())
        .map_err(|e| ApiError::unprocessable("invalid_trail", format!("trail: {e}")))?;
    if !state.trail_bound(&edge, &trail) {
        return Err(ApiError::forbidden(
            "trail_not_bound",
            format!(
                "trail {trail} is not bound to edge {} on this server",
                edge.0
            ),
        ));
    }
    if req.keys.is_empty() || req.keys.len() > MAX_KEY_VERSIONS {
        return Err(ApiError::unprocessable(
            "invalid_key",
            format!("send 1 to {MAX_KEY_VERSIONS} key versions"),
        ));
    }
    let keys = req.keys.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    let parts = state.parts();
    let name = trail_key_secret(&trail)
        .map_err(|e| ApiError::unprocessable("invalid_trail", format!("trail {trail}: {e}")))?;
    let held = parts
        .secrets
        .key_ring(&name)
        .await
        .map_err(ApiError::from)?;
    // The first version must be held as sent; each next one proven under the one before it.
    let first = &keys[0];
    match held.get(first.id()) {
        Some(k) if k.expose_secret() == first.expose_secret() => {}
        _ => {
            return Err(ApiError::unprocessable(
                "unknown_key",
                format!(
                    "the server does not hold key {} of trail {trail}; enroll the edge again",
                    first.id()
                ),
            ));
        }
    }
    let mut new = Vec::new();
    for (pair, wire) in keys.windows(2).zip(req.keys.iter().skip(1)) {
        let (prev, next) = (&pair[0], &pair[1]);
        let proof = wire
            .proof_hex
            .as_deref()
            .and_then(|h| Checksum::from_hex(h).ok());
        let proven =
            proof.is_some_and(|p| prev.verifies_registration(&edge.0, trail.as_str(), next, &p));
        if !proven {
            tracing::warn!(edge = %edge.0, trail = %trail, key = %next.id(), "key registration refused: bad proof");
            let payload = serde_json::json!({
                "event": "KEY_REGISTRATION_REFUSED",
                "edge": edge.0,
                "trail": trail.as_str(),
                "key_id": next.id().as_str(),
                "proven_under": prev.id().as_str(),
            });
            state
                .record_event(&edge.0, EventKind::system(), payload)
                .await?;
            return Err(ApiError::unprocessable(
                "bad_proof",
                format!(
                    "key {}: the proof under key {} does not verify",
                    next.id(),
                    prev.id()
                ),
            ));
        }
        if held.get(next.id()).is_none() {
            new.push((prev.id().clone(), secret_of(next)));
        }
    }
    let values: Vec<SecretValue> = new.iter().map(|(_, v)| v.clone()).collect();
    let added = if values.is_empty() {
        Vec::new()
    } else {
        parts
            .secrets
            .import(&name, &values)
            .await
            .map_err(key_error)?
    };
    for (under, value) in &new {
        if !added.contains(value.id()) {
            continue;
        }
        let payload = serde_json::json!({
            "event": "KEY_REGISTERED",
            "edge": edge.0,
            "trail": trail.as_str(),
            "key_id": value.id().as_str(),
            "proven_under": under.as_str(),
        });
        state
            .record_event(&edge.0, EventKind::key_registered(), payload)
            .await?;
        tracing::info!(edge = %edge.0, trail = %trail, key = %value.id(), "trail key version registered");
    }
    let all = parts
        .secrets
        .versions(&name)
        .await
        .map_err(ApiError::from)?;
    Ok(axum::Json(RegisterKeysResponse {
        trail_id: trail.as_str().to_owned(),
        added: added.iter().map(|k| k.as_str().to_owned()).collect(),
        held: all.iter().map(|k| k.as_str().to_owned()).collect(),
    }))
}

impl IngestState {
    /// Appends a server event about `edge` to `_relay` (its service identity as actor); a
    /// failure is counted, logged and answered 503 (fail closed).
    pub(crate) async fn record_event(
        &self,
        edge: &str,
        kind: EventKind,
        payload: serde_json::Value,
    ) -> Result<(), ApiError> {
        let identity = EdgeIdentity(edge.to_owned(), None);
        match super::record_server_event(self, &identity, kind, payload).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(edge, error = %error_chain(&e), "server event not recorded");
                Err(ApiError::audit_unavailable(&e))
            }
        }
    }

    /// The server clock now.
    pub(crate) async fn now(&self) -> Result<relay_domain::Timestamp, ApiError> {
        match self.parts().appender.clock().now().await {
            Ok(t) => Ok(t.at),
            Err(e) => Err(ApiError::internal("the clock failed", &e)),
        }
    }
}
