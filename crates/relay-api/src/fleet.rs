//! The fleet, as an admin and a platform team see it (issue 24): one-time enrollment codes,
//! revocation, and every edge's health in one list, the unhealthy first.
//!
//! - `POST /api/v1/fleet/codes` (admin): a one-time code for an edge id, shown once; only its
//!   SHA-256 is stored. `ENROLLMENT_CODE_ISSUED` names the admin, never the code.
//! - `POST /api/v1/fleet/edges/{edge}/revoke` (admin, with a reason): ingest refused at once on
//!   every replica; the token secret gets a fresh version; `EDGE_REVOKED`. Only enrolling again
//!   with a new code undoes it.
//! - `GET /api/v1/fleet` (admin, reviewer, auditor): [`FleetView`], computed by [`fleet_health`]
//!   (also what the per-edge metrics are made from).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rand::RngCore;
use relay_domain::ports::{
    CodeDigest, EdgeEntry, EdgeReport, EnrollmentCode, FleetError, FleetStore, Role,
};
use relay_domain::{ActorSource, EventKind, Subject, Timestamp, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::ApiState;

/// Default life of an enrollment code.
pub const DEFAULT_CODE_MINUTES: u64 = 60;
/// Longest life of an enrollment code (7 days).
pub const MAX_CODE_MINUTES: u64 = 7 * 24 * 60;
/// An edge not heard from for this long is `silent` (an idle edge still sends a heartbeat
/// every minute, so silence means its relay is down or cut off).
pub const SILENT_AFTER: Duration = Duration::from_secs(15 * 60);
/// An edge whose stored head is this far behind its reported local head is `lagging`.
pub const LAGGING_AFTER: Duration = Duration::from_secs(60);

/// `POST /api/v1/fleet/codes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCodeRequest {
    /// The edge id the code enrolls (its `device`, by default its trail id).
    pub edge: String,
    /// Minutes until the code expires (default 60, at most 10080).
    #[serde(default)]
    pub ttl_minutes: Option<u64>,
}

/// A freshly issued code: shown once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedCode {
    /// The edge id.
    pub edge: String,
    /// The code (32 hex characters, 128 random bits). Not stored; shown once.
    pub code: String,
    /// When it expires (UTC).
    pub expires_at: String,
    /// The admin who issued it.
    pub issued_by: String,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("edge", &self.edge)
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/fleet/edges/{edge}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (recorded; required).
    pub reason: String,
}

/// One trail of an edge in the fleet view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TrailHealth {
    /// The trail.
    pub trail_id: String,
    /// The edge's local head seq as last reported.
    pub local_head_seq: Option<u64>,
    /// The server's stored head seq.
    pub stored_head_seq: u64,
    /// Records the server lacks (`local - stored`, at the last report).
    pub lag_records: u64,
    /// How far the stored head's `recorded_at` trails the local head's, in seconds.
    pub lag_seconds: Option<f64>,
    /// When the server last stored a batch of it.
    pub last_batch_at: Option<String>,
    /// The code of the last refused batch (forwarding of the trail is halted on the edge).
    pub refused: Option<String>,
}

/// One edge in the fleet view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EdgeHealth {
    /// The edge id.
    pub edge: String,
    /// `poisoned`, `silent`, `lagging`, `skewed`, `never_seen`, `revoked` or `ok` (the worst
    /// that applies, in that order).
    pub status: String,
    /// Every problem that applies, in words.
    pub problems: Vec<String>,
    /// `enrolled`, `revoked`, or `configured` (listed in `ingest_edges`, not enrolled).
    pub state: String,
    /// Who issued the code it enrolled with.
    pub enrolled_by: Option<String>,
    /// When it enrolled.
    pub enrolled_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When the server last heard from it.
    pub last_seen_at: Option<String>,
    /// When the server last stored a batch from it.
    pub last_batch_at: Option<String>,
    /// Seconds since it was last heard from.
    pub last_seen_age_seconds: Option<f64>,
    /// Records the server lacks, summed over its trails.
    pub lag_records: u64,
    /// The largest time lag of its trails, in seconds.
    pub lag_seconds: Option<f64>,
    /// Its clock minus the server's at its last send, in milliseconds.
    pub clock_skew_ms: Option<i64>,
    /// Its software version.
    pub version: Option<String>,
    /// Its trails.
    pub trails: Vec<TrailHealth>,
}

/// `GET /api/v1/fleet`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FleetView {
    /// When the view was computed (server clock).
    pub generated_at: String,
    /// Edges, the unhealthy first, then by id.
    pub edges: Vec<EdgeHealth>,
    /// Count of edges per status.
    pub counts: BTreeMap<String, usize>,
}

fn secs(micros: i64) -> f64 {
    micros as f64 / 1e6
}

fn rank(status: &str) -> u8 {
    match status {
        "poisoned" => 0,
        "silent" => 1,
        "lagging" => 2,
        "skewed" => 3,
        "never_seen" => 4,
        "revoked" => 5,
        _ => 6,
    }
}

/// The fleet view of `entries` (enrolled edges), `configured` edges and the newest `reports`
/// at `now`, with `skew_threshold` as the clock skew limit. Pure: the API and the metrics both
/// use it.
pub fn fleet_health(
    entries: &[EdgeEntry],
    configured: &[String],
    reports: &[EdgeReport],
    now: Timestamp,
    skew_threshold: Duration,
) -> FleetView {
    let mut edges: BTreeMap<String, EdgeHealth> = BTreeMap::new();
    let blank = |edge: &str, state: &str| EdgeHealth {
        edge: edge.to_owned(),
        status: String::new(),
        problems: Vec::new(),
        state: state.to_owned(),
        enrolled_by: None,
        enrolled_at: None,
        revoked_at: None,
        last_seen_at: None,
        last_batch_at: None,
        last_seen_age_seconds: None,
        lag_records: 0,
        lag_seconds: None,
        clock_skew_ms: None,
        version: None,
        trails: Vec::new(),
    };
    for edge in configured {
        edges.insert(edge.clone(), blank(edge, "configured"));
    }
    for e in entries {
        let mut h = blank(&e.edge, e.state.as_str());
        h.enrolled_by = Some(e.enrolled_by.clone());
        h.enrolled_at = Some(e.enrolled_at.to_canonical());
        h.revoked_at = e.revoked.as_ref().map(|(at, _)| at.to_canonical());
        edges.insert(e.edge.clone(), h);
    }
    let mut newest_seen: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut newest_batch: BTreeMap<String, Timestamp> = BTreeMap::new();
    for r in reports {
        let Some(h) = edges.get_mut(&r.edge) else {
            continue;
        };
        let lag_records = r
            .local_head_seq
            .map_or(0, |l| l.saturating_sub(r.stored_head_seq));
        let lag_seconds = match (r.local_head_at, r.stored_head_at) {
            (Some(l), Some(s)) => Some(secs(l.micros_since(s).max(0))),
            (Some(_), None) if lag_records > 0 => None,
            _ => Some(0.0).filter(|_| lag_records == 0),
        };
        h.trails.push(TrailHealth {
            trail_id: r.trail.as_str().to_owned(),
            local_head_seq: r.local_head_seq,
            stored_head_seq: r.stored_head_seq,
            lag_records,
            lag_seconds,
            last_batch_at: r.last_batch_at.map(Timestamp::to_canonical),
            refused: r.refused.clone(),
        });
        h.lag_records = h.lag_records.saturating_add(lag_records);
        h.lag_seconds = match (h.lag_seconds, lag_seconds) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if newest_seen.get(&r.edge).is_none_or(|t| *t < r.seen_at) {
            newest_seen.insert(r.edge.clone(), r.seen_at);
            h.clock_skew_ms = r.skew_ms;
            h.version = r.version.clone().or(h.version.take());
        }
        if let Some(b) = r.last_batch_at
            && newest_batch.get(&r.edge).is_none_or(|t| *t < b)
        {
            newest_batch.insert(r.edge.clone(), b);
        }
    }
    let skew_limit = i64::try_from(skew_threshold.as_millis()).unwrap_or(i64::MAX);
    for h in edges.values_mut() {
        if let Some(seen) = newest_seen.get(&h.edge) {
            h.last_seen_at = Some(seen.to_canonical());
            h.last_seen_age_seconds = Some(secs(now.micros_since(*seen).max(0)));
        }
        h.last_batch_at = newest_batch.get(&h.edge).map(|t| t.to_canonical());
        let mut problems: Vec<(&str, String)> = Vec::new();
        for t in &h.trails {
            if let Some(code) = &t.refused {
                problems.push((
                    "poisoned",
                    format!(
                        "trail {}: last batch refused ({code}); forwarding halted",
                        t.trail_id
                    ),
                ));
            }
        }
        if h.state == "revoked" {
            problems.push(("revoked", "revoked: ingest refused".to_owned()));
        }
        match h.last_seen_age_seconds {
            Some(age) if age > SILENT_AFTER.as_secs_f64() && h.state != "revoked" => {
                problems.push((
                    "silent",
                    format!("not heard from for {} min", (age / 60.0).floor()),
                ))
            }
            None if h.state != "revoked" => {
                problems.push(("never_seen", "no batch received yet".to_owned()));
            }
            _ => {}
        }
        if h.lag_seconds
            .is_some_and(|s| s > LAGGING_AFTER.as_secs_f64())
            || (h.lag_records > 0 && h.lag_seconds.is_none())
        {
            problems.push((
                "lagging",
                format!(
                    "{} records behind ({} s)",
                    h.lag_records,
                    h.lag_seconds.map_or("?".to_owned(), |s| format!("{s:.0}"))
                ),
            ));
        }
        if h.clock_skew_ms.is_some_and(|s| s.abs() > skew_limit) {
            problems.push((
                "skewed",
                format!("clock off by {} ms", h.clock_skew_ms.unwrap_or_default()),
            ));
        }
        h.status = problems
            .iter()
            .map(|(s, _)| *s)
            .min_by_key(|s| rank(s))
            .unwrap_or("ok")
            .to_owned();
        h.problems = problems.into_iter().map(|(_, p)| p).collect();
    }
    let mut list: Vec<EdgeHealth> = edges.into_values().collect();
    list.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then_with(|| a.edge.cmp(&b.edge))
    });
    let mut counts = BTreeMap::new();
    for h in &list {
        *counts.entry(h.status.clone()).or_insert(0) += 1;
    }
    FleetView {
        generated_at: now.to_canonical(),
        edges: list,
        counts,
    }
}

fn fleet_of(
    state: &ApiState,
) -> Result<(crate::ingest::IngestState, std::sync::Arc<dyn FleetStore>), ApiError> {
    let ingest = state.ingest().cloned().ok_or_else(disabled)?;
    let fleet = ingest.fleet().ok_or_else(disabled)?;
    Ok((ingest, fleet))
}

/// An edge's own API has no fleet: 404, as for any resource this relay does not hold.
fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "fleet_disabled",
        "this relay is not a server of record: it has no fleet",
    )
}

pub(crate) fn store_error(e: FleetError) -> ApiError {
    match e {
        FleetError::UnknownEdge { edge } => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_edge",
            format!("edge {edge:?} never enrolled"),
        ),
        e if e.status() == relay_domain::ErrorStatus::Temporary => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the fleet store is unavailable; retry",
        ),
        e => ApiError::internal("the fleet store failed", &e),
    }
}

/// A fresh code: 128 random bits as 32 lower-case hex characters.
fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new one-time code for `edge`, issued by `issued_by` at `now` for `ttl_minutes` (1 to
/// [`MAX_CODE_MINUTES`]): the code text (show it once) and what to store (its digest only).
pub fn make_code(
    edge: &str,
    issued_by: &str,
    now: Timestamp,
    ttl_minutes: u64,
) -> Result<(String, EnrollmentCode), ApiError> {
    crate::ingest_token_secret(edge)
        .map_err(|e| ApiError::unprocessable("invalid_edge", format!("edge id: {e}")))?;
    if ttl_minutes == 0 || ttl_minutes > MAX_CODE_MINUTES {
        return Err(ApiError::unprocessable(
            "invalid_ttl",
            format!("the code's lifetime must be 1 to {MAX_CODE_MINUTES} minutes"),
        ));
    }
    let ttl_micros = i64::try_from(ttl_minutes).unwrap_or(i64::MAX / 60_000_000) * 60_000_000;
    let expires_at = Timestamp::from_unix_micros(now.unix_micros().saturating_add(ttl_micros))
        .map_err(|e| ApiError::internal("code expiry out of range", &e))?;
    let code = new_code();
    let stored = EnrollmentCode {
        digest: CodeDigest::of(&code),
        edge: edge.to_owned(),
        issued_by: issued_by.to_owned(),
        issued_at: now,
        expires_at,
        used_at: None,
    };
    Ok((code, stored))
}

/// Issues a one-time enrollment code for an edge.
#[utoipa::path(post, path = "/api/v1/fleet/codes", tag = "fleet", request_body = IssueCodeRequest,
    responses(
        (status = 201, description = "The code, shown once", body = IssuedCode),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Invalid edge id or lifetime", body = ErrorBody),
        (status = 404, description = "Not a server of record (`fleet_disabled`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn issue_code(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<IssueCodeRequest>,
) -> Result<(StatusCode, Json<IssuedCode>), ApiError> {
    user.require(&[Role::Admin], "issue enrollment codes")?;
    let (_, fleet) = fleet_of(&state)?;
    if state.config().enrollment_four_eyes {
        return Err(ApiError::forbidden(
            "four_eyes_required",
            "enrollment codes need a second administrator here: propose an `enrollment_code` \
             change ({\"edge\": \"...\"}) at /api/v1/changes; its approver receives the code",
        ));
    }
    let now = state.now().await?;
    let issued_by = user.username().as_str().to_owned();
    let minutes = req.ttl_minutes.unwrap_or(DEFAULT_CODE_MINUTES);
    let (code, stored) = make_code(&req.edge, &issued_by, now, minutes)?;
    let expires_at = stored.expires_at;
    fleet.issue_code(&stored).await.map_err(store_error)?;
    state
        .append_event(
            TrailId::relay(),
            EventKind::enrollment_code_issued(),
            &issued_by,
            ActorSource::Token,
            Subject::new(format!("edge:{}", req.edge)).ok(),
            None,
            serde_json::json!({
                "edge": req.edge,
                "expires_at": expires_at.to_canonical(),
                "ttl_minutes": minutes,
            }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCode {
            edge: req.edge,
            code,
            expires_at: expires_at.to_canonical(),
            issued_by,
        }),
    ))
}

/// Revokes an edge: ingest refused at once on every replica.
#[utoipa::path(post, path = "/api/v1/fleet/edges/{edge}/revoke", tag = "fleet", request_body = RevokeRequest,
    params(("edge" = String, Path, description = "The edge id")),
    responses(
        (status = 200, description = "Revoked", body = EdgeHealth),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "The edge never enrolled (`unknown_edge`), or not a server of record (`fleet_disabled`)", body = ErrorBody),
        (status = 422, description = "No reason (`reason_required`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    user: AuthUser,
    Path(edge): Path<String>,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Json<EdgeHealth>, ApiError> {
    user.require(&[Role::Admin], "revoke edges")?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "reason_required",
            "say why the edge is revoked",
        ));
    }
    let (ingest, fleet) = fleet_of(&state)?;
    let now = state.now().await?;
    let by = user.username().as_str().to_owned();
    fleet.revoke(&edge, now, &by).await.map_err(store_error)?;
    // The token gets a fresh version too: even a later re-enrollment never honours the old one.
    let token_version = ingest.revoke_token(&edge).await.map_err(ApiError::from)?;
    state
        .append_event(
            TrailId::relay(),
            EventKind::edge_revoked(),
            &by,
            ActorSource::Token,
            Subject::new(format!("edge:{edge}")).ok(),
            None,
            serde_json::json!({
                "edge": edge,
                "reason": req.reason.trim(),
                "token_version": token_version.map(|k| k.as_str().to_owned()),
            }),
        )
        .await?;
    tracing::warn!(edge = %edge, by = %by, "edge revoked");
    let view = view_of(&ingest, fleet.as_ref(), now).await?;
    view.edges
        .into_iter()
        .find(|e| e.edge == edge)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the revoked edge is not in the fleet view",
            )
        })
}

async fn view_of(
    ingest: &crate::ingest::IngestState,
    fleet: &dyn FleetStore,
    now: Timestamp,
) -> Result<FleetView, ApiError> {
    let entries = fleet.edges().await.map_err(store_error)?;
    let reports = fleet.reports().await.map_err(store_error)?;
    Ok(fleet_health(
        &entries,
        ingest.configured_edges(),
        &reports,
        now,
        ingest.clock_skew_threshold(),
    ))
}

/// Every edge's health, the unhealthy first.
#[utoipa::path(get, path = "/api/v1/fleet", tag = "fleet",
    responses(
        (status = 200, description = "Every edge", body = FleetView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "An operator", body = ErrorBody),
        (status = 404, description = "Not a server of record (`fleet_disabled`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<FleetView>, ApiError> {
    user.require(
        &[Role::Admin, Role::Reviewer, Role::Auditor],
        "see the fleet",
    )?;
    let (ingest, fleet) = fleet_of(&state)?;
    let now = state.now().await?;
    view_of(&ingest, fleet.as_ref(), now).await.map(Json)
}

/// Issues the code of an approved `enrollment_code` change (four eyes): stored like a direct
/// issue, recorded as `ENROLLMENT_CODE_ISSUED` by the approver naming the change and its
/// proposer; the approver receives the code once in the approval's answer.
pub(crate) async fn issue_approved(
    state: &ApiState,
    approver: &AuthUser,
    change: &relay_domain::ports::ChangeRequest,
) -> Result<serde_json::Value, ApiError> {
    let (_, fleet) = fleet_of(state)?;
    let edge = change
        .value
        .get("edge")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    let minutes = change
        .value
        .get("ttl_minutes")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(DEFAULT_CODE_MINUTES);
    let now = state.now().await?;
    let issued_by = approver.username().as_str().to_owned();
    let (code, stored) = make_code(&edge, &issued_by, now, minutes)?;
    fleet.issue_code(&stored).await.map_err(|e| {
        crate::changes::apply_failed(change, &format!("the fleet store failed: {e}"))
    })?;
    state
        .append_event(
            TrailId::relay(),
            EventKind::enrollment_code_issued(),
            &issued_by,
            ActorSource::Token,
            Subject::new(format!("edge:{edge}")).ok(),
            None,
            serde_json::json!({
                "edge": edge,
                "expires_at": stored.expires_at.to_canonical(),
                "ttl_minutes": minutes,
                "change_id": change.id,
                "proposer": change.proposer,
            }),
        )
        .await?;
    Ok(serde_json::json!({
        "edge": edge,
        "code": code,
        "expires_at": stored.expires_at.to_canonical(),
        "use": format!("relay-edge enroll --server <this server> --code {code}"),
    }))
}
