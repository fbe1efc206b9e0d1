//! Verified ingest on the server of record (R8.3, R8.5): `POST /api/v1/ingest`.
//!
//! An edge sends an ordered batch of whole records of one trail. The server authenticates the
//! edge by its service credential (`Authorization: Bearer <token>` checked in constant time
//! against the secret `ingest-token.<edge>` named by `X-Relay-Edge`; fail closed) from the
//! headers alone, **before a byte of the body is read**: an unauthenticated caller gets a
//! generic 401 and its body is never buffered or parsed. An authenticated body is read up to
//! the configured cap (413 beyond it, refused from `Content-Length` before reading when it
//! says so). The edge may send only the trails bound to it ([`IngestConfig::edge_trails`];
//! by default the trail named like the edge: 403 `trail_not_bound` otherwise). It recomputes every
//! HMAC with the trail's key (`trail-hmac.<trail>`, every version), and appends the batch verbatim
//! in one transaction; the record store checks the link to the stored head (gapless, exact
//! `prev_checksum`) and acknowledges identical re-sends. The server never writes into a
//! forwarded trail: its own events (clock skew, refusals) go to its `_relay` trail, with the
//! edge's service identity as actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use prometheus_client::metrics::counter::Counter;
use relay_domain::ports::SecretProviderExt;
use relay_domain::ports::{
    EdgeState, FleetStore, Receipt, ReceiptStore, RecordStore, RecordStoreError, SecretError,
    SecretName, SecretProvider,
};
use relay_domain::{
    Actor, ActorSource, AppendService, ChainSeq, ChainVerifier, Device, EventDraft, EventKind,
    Payload, Record, TrailId, VerifyFailureReason,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, error_chain};

mod enroll;
mod forwarded_body;
mod report;
mod time;
pub(crate) use enroll::{__path_enroll, __path_register_keys};
pub use enroll::{
    EnrollRequest, EnrollResponse, KeyVersion, RegisterKeysRequest, RegisterKeysResponse,
};
pub use report::{EDGE_HEAD_HEADER, EDGE_VERSION_HEADER};
pub use time::SENT_AT_HEADER;

/// The header naming the edge whose ingest token the bearer token is checked against.
pub const EDGE_HEADER: &str = "x-relay-edge";
/// Prefix of the secret holding an edge's ingest token: `ingest-token.<edge id>`.
pub const INGEST_TOKEN_PREFIX: &str = "ingest-token.";
/// Prefix of the secret holding a forwarded trail's HMAC key: `trail-hmac.<trail id>`.
pub const TRAIL_KEY_PREFIX: &str = "trail-hmac.";
/// The most records one ingest batch may hold.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Failed enrollments one client address may make per [`ENROLL_FAILURE_WINDOW`].
pub const ENROLL_FAILURE_LIMIT: u32 = 10;
/// The window of [`ENROLL_FAILURE_LIMIT`].
pub const ENROLL_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The name of the secret holding `edge`'s ingest token.
pub fn ingest_token_secret(edge: &str) -> Result<SecretName, relay_domain::IdError> {
    SecretName::new(format!("{INGEST_TOKEN_PREFIX}{edge}"))
}

/// The name of the secret holding forwarded trail `trail`'s HMAC key on the server.
pub fn trail_key_secret(trail: &TrailId) -> Result<SecretName, relay_domain::IdError> {
    SecretName::new(format!("{TRAIL_KEY_PREFIX}{}", trail.as_str()))
}

fn token_name(edge: &str) -> Result<SecretName, SecretError> {
    ingest_token_secret(edge).map_err(|e| SecretError::Other {
        message: format!("edge id {edge:?}: {e}"),
        source: None,
    })
}

/// The bearer token text of an ingest token secret (lower-case hex of its bytes).
pub fn token_text(secret: &relay_domain::ports::SecretValue) -> String {
    hex::encode(secret.expose())
}

/// Settings of the ingest endpoint.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Edge ids allowed to ingest (each needs its `ingest-token.<edge>` secret); empty: ingest
    /// is disabled and answers 503.
    pub edges: Vec<String>,
    /// Skew between an edge's `recorded_at` and the server clock that raises `CLOCK_SKEW`.
    pub clock_skew_threshold: Duration,
    /// At most one `CLOCK_SKEW` event per edge per this interval.
    pub clock_skew_interval: Duration,
    /// Largest request body accepted from an authenticated edge, in bytes (the batch cap);
    /// larger is 413 `body_too_large`. Default 64 MiB.
    pub max_body_bytes: usize,
    /// The trails each edge may forward, by edge id. An edge without an entry may forward only
    /// the trail whose id equals its edge id (the default provisioning: trail id = edge id =
    /// device). Another trail is refused with 403 `trail_not_bound`, which the edge retries
    /// until the binding is configured, so a misconfiguration loses nothing.
    pub edge_trails: std::collections::BTreeMap<String, Vec<TrailId>>,
    /// A forwarded record received more than this after it was recorded is shown as late
    /// (API, UI, exports): downtime between capture and custody made visible. Judged at read
    /// time from the stored time of receipt, so a changed threshold applies to every record.
    /// Default 900 s.
    pub late_after: Duration,
}

impl IngestConfig {
    /// Whether `edge` may forward `trail` ([`edge_trails`](Self::edge_trails)).
    pub fn trail_bound_to(&self, edge: &str, trail: &TrailId) -> bool {
        match self.edge_trails.get(edge) {
            Some(trails) => trails.contains(trail),
            None => trail.as_str() == edge,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            edges: Vec::new(),
            clock_skew_threshold: Duration::from_millis(2000),
            clock_skew_interval: Duration::from_secs(60),
            max_body_bytes: 64 * 1024 * 1024,
            edge_trails: std::collections::BTreeMap::new(),
            late_after: Duration::from_secs(900),
        }
    }
}

/// Counters of the ingest endpoint, registered by the runtime.
#[derive(Debug, Clone, Default)]
pub struct IngestMetrics {
    /// Records newly stored by ingest.
    pub records_ingested: Counter,
    /// Batches refused with 422.
    pub batches_refused: Counter,
    /// Requests refused for a missing or wrong credential.
    pub auth_failures: Counter,
    /// Server events (`CLOCK_SKEW`, refusals) that could not be recorded.
    pub audit_write_failures: Counter,
    /// Ingested batches whose time of receipt could not be stored (the records are stored; a
    /// `RECEIPT_NOT_RECORDED` SYSTEM event carries the time instead).
    pub receipt_write_failures: Counter,
    /// Edge health reports that could not be stored (the batch itself is unaffected).
    pub fleet_report_failures: Counter,
    /// Enrollments refused (unknown, used or expired code; too many attempts).
    pub enrollments_refused: Counter,
}

/// What the ingest endpoint is built from.
#[derive(Debug, Clone)]
pub struct IngestParts {
    /// The server's own append service: only ever used for its `_relay` trail.
    pub appender: Arc<AppendService>,
    /// Where forwarded trails are stored.
    pub store: Arc<dyn RecordStore>,
    /// Ingest tokens and trail keys.
    pub secrets: Arc<dyn SecretProvider>,
    /// The server's device id, written on its own events.
    pub device: Device,
    /// Counters.
    pub metrics: IngestMetrics,
    /// Settings.
    pub config: IngestConfig,
}

/// The ingest endpoint's shared state; cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    inner: Arc<IngestInner>,
}

struct IngestInner {
    parts: IngestParts,
    /// One lane per trail: batches of one trail are checked and stored one at a time, so a
    /// duplicated request racing its original is acknowledged instead of refused.
    lanes: Mutex<HashMap<TrailId, Arc<tokio::sync::Mutex<()>>>>,
    last_skew_event: Mutex<HashMap<String, Instant>>,
    /// Edges whose token an approved `ingest_token` change revoked: refused whatever they
    /// present, until an approved `issue`.
    revoked: Mutex<std::collections::BTreeSet<String>>,
    /// Where the time of receipt of newly stored records is kept, when enabled.
    receipts: std::sync::OnceLock<Arc<dyn ReceiptStore>>,
    /// The enrolled edges, their codes and health (issue 24), when enabled.
    fleet: std::sync::OnceLock<Arc<dyn FleetStore>>,
    /// Failed enrollments per client address (10 per 15 minutes).
    enroll_failures: crate::client_limit::ClientFailures,
}

impl std::fmt::Debug for IngestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestState")
            .field("edges", &self.inner.parts.config.edges)
            .finish_non_exhaustive()
    }
}

impl IngestState {
    /// The state for `parts`.
    pub fn new(parts: IngestParts) -> Self {
        Self {
            inner: Arc::new(IngestInner {
                parts,
                lanes: Mutex::new(HashMap::new()),
                last_skew_event: Mutex::new(HashMap::new()),
                revoked: Mutex::new(std::collections::BTreeSet::new()),
                receipts: std::sync::OnceLock::new(),
                fleet: std::sync::OnceLock::new(),
                enroll_failures: crate::client_limit::ClientFailures::new(
                    ENROLL_FAILURE_LIMIT,
                    ENROLL_FAILURE_WINDOW,
                ),
            }),
        }
    }

    /// Accepts edges enrolled in `store` besides the configured ones, serves enrollment and key
    /// registration, and keeps each edge's health there (issue 24). Returns false (and keeps
    /// the first) when already enabled.
    pub fn enable_fleet(&self, store: Arc<dyn FleetStore>) -> bool {
        self.inner.fleet.set(store).is_ok()
    }

    /// The fleet store, when enabled.
    pub fn fleet(&self) -> Option<Arc<dyn FleetStore>> {
        self.inner.fleet.get().cloned()
    }

    pub(crate) fn metrics(&self) -> &IngestMetrics {
        &self.parts().metrics
    }

    /// The clock skew beyond which `CLOCK_SKEW` is raised.
    pub fn clock_skew_threshold(&self) -> Duration {
        self.parts().config.clock_skew_threshold
    }

    /// The configured edges (`ingest_edges`).
    pub fn configured_edges(&self) -> &[String] {
        &self.parts().config.edges
    }

    /// Whether `edge` may forward `trail`: its configured binding (`ingest_trails`), else the
    /// trails it enrolled with, else the trail named like it.
    pub(crate) fn trail_bound(&self, edge: &EdgeIdentity, trail: &TrailId) -> bool {
        let config = &self.parts().config;
        if config.edge_trails.contains_key(&edge.0) {
            return config.trail_bound_to(&edge.0, trail);
        }
        match &edge.1 {
            Some(trails) => trails.contains(trail),
            None => config.trail_bound_to(&edge.0, trail),
        }
    }

    /// Keeps the time of receipt of every newly stored record in `store` (issue 21). Returns
    /// false (and keeps the first) when already enabled.
    pub fn enable_receipts(&self, store: Arc<dyn ReceiptStore>) -> bool {
        self.inner.receipts.set(store).is_ok()
    }

    /// Refuses `edge` from now on (401), whatever token it presents: an approved revocation,
    /// replayed at start-up from the approved changes.
    pub fn revoke(&self, edge: &str) {
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(edge.to_owned());
    }

    /// Accepts `edge` again (an approved `issue` after a revocation).
    pub fn reinstate(&self, edge: &str) {
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(edge);
    }

    /// Edges whose token is revoked, sorted.
    pub fn revoked(&self) -> Vec<String> {
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn is_revoked(&self, edge: &str) -> bool {
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(edge)
    }

    /// Issues `edge`'s token (an approved `issue`): creates the secret `ingest-token.<edge>`, or,
    /// after a revocation, replaces it with a fresh version nobody has seen, and accepts the
    /// edge again. The token text is handed out by `relay-server ingest-token --edge`, never by
    /// the API. Returns the current version id.
    pub async fn issue_token(&self, edge: &str) -> Result<relay_domain::KeyId, SecretError> {
        let name = token_name(edge)?;
        let secrets = &self.parts().secrets;
        let value = if self.is_revoked(edge) {
            match secrets.rotate(&name).await {
                Err(SecretError::NotFound { .. }) => secrets.current_or_create(&name).await?,
                other => other?,
            }
        } else {
            secrets.current_or_create(&name).await?
        };
        self.reinstate(edge);
        Ok(value.id().clone())
    }

    /// Revokes `edge`'s token (an approved `revoke`): the edge is refused at once, and the
    /// secret gets a fresh version so the old token text never matches again, even after a
    /// restart. Returns the version id now current, if the edge had a token.
    pub async fn revoke_token(
        &self,
        edge: &str,
    ) -> Result<Option<relay_domain::KeyId>, SecretError> {
        let name = token_name(edge)?;
        // Refuse first: whatever happens below, the old token is no longer honoured.
        self.revoke(edge);
        match self.parts().secrets.rotate(&name).await {
            Ok(v) => Ok(Some(v.id().clone())),
            Err(SecretError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn parts(&self) -> &IngestParts {
        &self.inner.parts
    }

    fn lane(&self, trail: &TrailId) -> Arc<tokio::sync::Mutex<()>> {
        let mut lanes = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lanes.entry(trail.clone()).or_default().clone()
    }

    /// Edges whose ingest token is missing from the secret provider (checked at start-up, so the
    /// operator sees a warning instead of a stream of 401s).
    pub async fn edges_without_token(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for edge in &self.parts().config.edges {
            let ok = match ingest_token_secret(edge) {
                Ok(name) => self.parts().secrets.current(&name).await.is_ok(),
                Err(_) => false,
            };
            if !ok {
                missing.push(edge.clone());
            }
        }
        missing
    }
}

/// A batch of one trail's records, in seq order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The trail every record belongs to.
    #[schema(value_type = String)]
    pub trail_id: TrailId,
    /// Whole records as the edge stored them, consecutive seqs.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
}

/// What the server stored.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct IngestResponse {
    /// The trail.
    pub trail_id: String,
    /// The highest seq of the batch, now stored on the server (the edge's new cursor).
    pub acked_seq: u64,
    /// The server trail's head seq after the batch.
    pub head_seq: u64,
    /// The server trail's head checksum (hex).
    pub head_checksum: String,
    /// Records newly stored.
    pub appended: u64,
    /// Records that were already stored, identical (a re-send).
    pub already_present: u64,
}

/// One forwarded trail's head as the server of record holds it: what the server witnesses of
/// the edge's trail.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq, Clone)]
pub struct WitnessedHead {
    /// The trail.
    pub trail_id: String,
    /// The seq of the newest record the server stores.
    pub head_seq: u64,
    /// That record's checksum (hex).
    pub head_checksum: String,
}

/// `GET /api/v1/ingest/heads`: every trail of the calling edge the server stores, with its head.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WitnessedHeads {
    /// The edge that asked.
    pub edge: String,
    /// Its trails' heads, by trail id.
    pub heads: Vec<WitnessedHead>,
}

/// The heads the server of record holds of the calling edge's trails: the edge's `verify` asks
/// for them, and reports its own trail BROKEN when it is shorter than, or differs from, what the
/// server witnessed (a tail deleted on the workstation, a restored old backup).
#[utoipa::path(get, path = "/api/v1/ingest/heads", tag = "ingest",
    params(("X-Relay-Edge" = String, Header, description = "The edge id whose ingest token is presented")),
    responses(
        (status = 200, description = "The heads of the edge's trails on the server", body = WitnessedHeads),
        (status = 401, description = "Missing or wrong edge credential (no detail)", body = ErrorBody),
        (status = 503, description = "Ingest disabled or storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn witnessed_heads(
    State(state): State<IngestState>,
    headers: HeaderMap,
) -> Result<axum::Json<WitnessedHeads>, ApiError> {
    let edge = authenticate(&state, &headers).await?;
    report::heartbeat(&state, &edge).await;
    let parts = state.parts();
    let trails = parts.store.trails().await.map_err(ApiError::from)?;
    let heads = trails
        .into_iter()
        .filter(|(trail, _)| !trail.is_relay() && state.trail_bound(&edge, trail))
        .map(|(trail, head)| WitnessedHead {
            trail_id: trail.as_str().to_owned(),
            head_seq: head.seq.get(),
            head_checksum: head.checksum.to_string(),
        })
        .collect();
    Ok(axum::Json(WitnessedHeads {
        edge: edge.0,
        heads,
    }))
}

/// The ingest route (`POST /api/v1/ingest`), to merge next to [`crate::router`].
pub fn ingest_router(state: IngestState) -> Router {
    let limit = state.parts().config.max_body_bytes;
    Router::new()
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/ingest/heads", axum::routing::get(witnessed_heads))
        .route("/api/v1/ingest/keys", post(enroll::register_keys))
        .route("/api/v1/enroll", post(enroll::enroll))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The edge that authenticated a request, with the trails it enrolled with (`None`: a
/// configured edge).
pub(crate) struct EdgeIdentity(String, Option<Vec<TrailId>>);

async fn authenticate(state: &IngestState, headers: &HeaderMap) -> Result<EdgeIdentity, ApiError> {
    let parts = state.parts();
    if parts.config.edges.is_empty() && state.fleet().is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ingest_disabled",
            "ingest is disabled on this server (no edge is configured)",
        ));
    }
    let refuse = || {
        parts.metrics.auth_failures.inc();
        ApiError::unauthorized("invalid_credentials", "missing or invalid edge credential")
    };
    let edge = headers
        .get(EDGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refuse)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(refuse)?;
    let enrolled = match state.fleet() {
        Some(fleet) => fleet.edge(edge).await.map_err(|e| {
            tracing::error!(edge = %edge, error = %error_chain(&e), "ingest: the fleet store failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the fleet store is unavailable; retry",
            )
        })?,
        None => None,
    };
    let trails = match &enrolled {
        // A revocation holds on every replica at once, configured edge or not.
        Some(entry) if entry.state == EdgeState::Revoked => {
            tracing::warn!(edge = %edge, "ingest refused: the edge is revoked");
            return Err(refuse());
        }
        Some(entry) => Some(entry.trails.clone()),
        None if parts.config.edges.iter().any(|e| e == edge) => None,
        None => {
            tracing::warn!(edge = %edge, "ingest refused: edge neither configured nor enrolled");
            return Err(refuse());
        }
    };
    if state.is_revoked(edge) {
        tracing::warn!(edge = %edge, "ingest refused: the edge's token was revoked (approved change)");
        return Err(refuse());
    }
    let name = ingest_token_secret(edge).map_err(|_| refuse())?;
    let secret = match parts.secrets.current(&name).await {
        Ok(s) => s,
        Err(SecretError::NotFound { .. }) => {
            tracing::warn!(edge = %edge, "ingest refused: the edge has no ingest token");
            return Err(refuse());
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    let expected = token_text(&secret);
    let matches = expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()));
    if !matches {
        tracing::warn!(edge = %edge, "ingest refused: wrong token");
        return Err(refuse());
    }
    Ok(EdgeIdentity(edge.to_owned(), trails))
}

/// Ingests a batch of one trail's records from an edge.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest", request_body = IngestRequest,
    params(("X-Relay-Edge" = String, Header, description = "The edge id whose ingest token is presented")),
    responses(
        (status = 200, description = "Stored (or already stored, identical)", body = IngestResponse),
        (status = 400, description = "Malformed JSON (authenticated callers only)", body = ErrorBody),
        (status = 401, description = "Missing or wrong edge credential (checked before the body is read; no detail)", body = ErrorBody),
        (status = 403, description = "The trail is not bound to this edge (`trail_not_bound`) or its key is not provisioned on the server (`trail_not_provisioned`)", body = ErrorBody),
        (status = 413, description = "The body exceeds the configured batch cap", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Refused for good: bad HMAC, gap, conflict; names the seq", body = ErrorBody),
        (status = 503, description = "Ingest disabled or storage unavailable; retry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn ingest(
    State(state): State<IngestState>,
    request: axum::extract::Request,
) -> Result<axum::Json<IngestResponse>, ApiError> {
    let (head, body) = request.into_parts();
    // Credentials first, from the headers alone: nothing of an unauthenticated body is read.
    let edge = authenticate(&state, &head.headers).await?;
    let sent_at = time::sent_at(&head.headers);
    let request = read_batch(&state, &head.headers, body).await?;
    if !state.trail_bound(&edge, &request.trail_id) {
        tracing::warn!(edge = %edge.0, trail = %request.trail_id,
            "ingest refused: the trail is not bound to this edge (ingest_trails)");
        return Err(ApiError::forbidden(
            "trail_not_bound",
            format!(
                "trail {} is not bound to edge {} on this server",
                request.trail_id, edge.0
            ),
        ));
    }
    let result = ingest_batch(&state, &edge, &request).await;
    report::after_batch(&state, &edge, &head.headers, &request, sent_at, &result).await;
    match result {
        Ok(response) => {
            time::check_clock_skew(&state, &edge, &request, sent_at).await;
            Ok(axum::Json(response))
        }
        Err(e) => {
            if e.status == StatusCode::UNPROCESSABLE_ENTITY {
                state.parts().metrics.batches_refused.inc();
                tracing::error!(edge = %edge.0, trail = %request.trail_id, code = e.code,
                    reason = %e.message, "ingest batch refused");
                let payload = serde_json::json!({
                    "event": "INGEST_REFUSED",
                    "edge": edge.0,
                    "trail": request.trail_id.as_str(),
                    "code": e.code,
                    "reason": e.message,
                    "first_seq": request.records.first().map(|r| r.chain_seq.get()),
                    "last_seq": request.records.last().map(|r| r.chain_seq.get()),
                });
                if let Err(audit) =
                    record_server_event(&state, &edge, EventKind::system(), payload).await
                {
                    tracing::error!(error = %error_chain(&audit), "INGEST_REFUSED event not recorded");
                }
            }
            Err(e)
        }
    }
}

/// The body, refused with 413 as soon as it grows past `limit` (nothing more is read).
async fn read_capped(
    mut body: axum::body::Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<Vec<u8>, ApiError> {
    use axum::body::HttpBody;
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame =
            frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(body_too_large(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the batch exceeds {limit} bytes; send smaller batches"),
    )
}

/// Reads and parses an authenticated edge's batch, at most `max_body_bytes` of it.
async fn read_batch(
    state: &IngestState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<IngestRequest, ApiError> {
    let limit = state.parts().config.max_body_bytes;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit)) {
        return Err(body_too_large(limit));
    }
    let bytes = read_capped(body, limit, declared).await?;
    if let Some(request) = forwarded_body::read_forwarded_body(&bytes) {
        return Ok(request);
    }
    serde_json::from_slice::<IngestRequest>(&bytes).map_err(|e| {
        // The caller is an authenticated edge: the parser's message helps its operator.
        if e.classify() == serde_json::error::Category::Data {
            ApiError::unprocessable("invalid_body", format!("not an ingest batch: {e}"))
        } else {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
    })
}

fn refuse(code: &'static str, message: String) -> ApiError {
    ApiError::unprocessable(code, message)
}

async fn ingest_batch(
    state: &IngestState,
    edge: &EdgeIdentity,
    request: &IngestRequest,
) -> Result<IngestResponse, ApiError> {
    let parts = state.parts();
    let trail = &request.trail_id;
    if trail.is_relay() {
        return Err(refuse(
            "reserved_trail",
            "the server's _relay trail is its own; edges forward only their capture trails".into(),
        ));
    }
    let (Some(first), Some(last)) = (request.records.first(), request.records.last()) else {
        return Err(refuse("invalid_batch", "the batch holds no record".into()));
    };
    if request.records.len() > MAX_BATCH_RECORDS {
        return Err(refuse(
            "invalid_batch",
            format!("at most {MAX_BATCH_RECORDS} records per batch"),
        ));
    }
    let key_name = trail_key_secret(trail)
        .map_err(|e| refuse("invalid_trail", format!("trail {trail}: {e}")))?;
    let ring = match parts.secrets.key_ring(&key_name).await {
        Ok(ring) => ring,
        Err(SecretError::NotFound { .. }) => {
            tracing::warn!(edge = %edge.0, trail = %trail, secret = %key_name,
                "ingest refused: the trail's key is not provisioned on the server");
            return Err(ApiError::forbidden(
                "trail_not_provisioned",
                format!("the server holds no key for trail {trail} (secret {key_name})"),
            ));
        }
        Err(e) => return Err(ApiError::from(e)),
    };

    // Every HMAC and the links inside the batch; the link to the stored head is the store's.
    let mut verifier = match first.chain_seq.get().checked_sub(1).map(ChainSeq::new) {
        Some(Ok(prev)) => {
            ChainVerifier::new(trail.clone(), &ring).resume_after(prev, first.prev_checksum)
        }
        _ => ChainVerifier::new(trail.clone(), &ring),
    }
    .with_threads(crate::verify::verify_threads());
    if let Err(f) = verifier.push_page(&request.records) {
        let code = match f.reason {
            VerifyFailureReason::ChecksumMismatch { .. } => "bad_hmac",
            VerifyFailureReason::UnknownKey { .. } => "unknown_key",
            VerifyFailureReason::WrongTrail { .. } => "wrong_trail",
            VerifyFailureReason::Gap { .. } => "gap",
            _ => "invalid_batch",
        };
        return Err(refuse(code, format!("chain_seq {}: {}", f.seq, f.reason)));
    }

    let lane = state.lane(trail);
    let _serialized = lane.lock().await;
    match parts.store.append(&request.records).await {
        Ok(receipt) => {
            parts.metrics.records_ingested.inc_by(receipt.appended);
            tracing::debug!(edge = %edge.0, trail = %trail, first = %first.chain_seq,
                last = %last.chain_seq, appended = receipt.appended,
                already_present = receipt.already_present, "ingested");
            if receipt.appended > 0 {
                // The newly stored records are the batch's suffix (the already present ones
                // are its prefix); a re-send stores none and leaves the first receipt alone.
                let first_new = last.chain_seq.get() - receipt.appended + 1;
                record_receipt(state, edge, trail, first_new, last.chain_seq.get()).await;
            }
            Ok(IngestResponse {
                trail_id: trail.as_str().to_owned(),
                acked_seq: last.chain_seq.get(),
                head_seq: receipt.head.seq.get(),
                head_checksum: receipt.head.checksum.to_hex(),
                appended: receipt.appended,
                already_present: receipt.already_present,
            })
        }
        Err(RecordStoreError::Conflict { seq, .. }) => Err(refuse(
            "conflict",
            format!("chain_seq {seq}: a different record is already stored at this seq"),
        )),
        Err(RecordStoreError::NotNext { seq, reason, .. }) => {
            let head = parts.store.head(trail).await?;
            let head_seq = head.map_or(0, |h| h.seq.get());
            let code = if seq.get() > head_seq + 1 {
                "gap"
            } else {
                "not_next"
            };
            Err(refuse(
                code,
                format!(
                    "chain_seq {seq}: does not continue the stored head (seq {head_seq}): {reason}"
                ),
            ))
        }
        Err(RecordStoreError::InvalidBatch(message)) => Err(refuse("invalid_batch", message)),
        Err(e) => Err(ApiError::from(e)),
    }
}

/// Stores the time of receipt of `trail`'s newly stored records `first..=last` (server clock,
/// taken once they are durable). The records are stored whatever happens here, and the edge is
/// acknowledged (refusing would only make it re-send records the server already holds, which
/// get no receipt); a failure is never silent: an error log, the `receipt_write_failures`
/// counter, and a `RECEIPT_NOT_RECORDED` SYSTEM event in `_relay` carrying the time of receipt
/// (the API then shows `received_at: null`, "unknown").
async fn record_receipt(
    state: &IngestState,
    edge: &EdgeIdentity,
    trail: &TrailId,
    first: u64,
    last: u64,
) {
    let Some(store) = state.inner.receipts.get() else {
        return;
    };
    let parts = state.parts();
    let received_at = match parts.appender.clock().now().await {
        Ok(t) => Ok(t.at),
        Err(e) => Err(format!("the server clock failed: {}", error_chain(&e))),
    };
    let outcome = match received_at {
        Ok(at) => {
            let receipt = Receipt {
                trail_id: trail.clone(),
                first_seq: first,
                last_seq: last,
                received_at: at,
                edge: edge.0.clone(),
            };
            store
                .record(&receipt)
                .await
                .map_err(|e| (Some(at), error_chain(&e)))
        }
        Err(reason) => Err((None, reason)),
    };
    let Err((at, reason)) = outcome else {
        return;
    };
    parts.metrics.receipt_write_failures.inc();
    tracing::error!(edge = %edge.0, trail = %trail, first_seq = first, last_seq = last,
        error = %reason, "the time of receipt of ingested records was not stored; they show as \
        received at an unknown time");
    let payload = serde_json::json!({
        "event": "RECEIPT_NOT_RECORDED",
        "edge": edge.0,
        "trail": trail.as_str(),
        "first_seq": first,
        "last_seq": last,
        "received_at": at.map(|t| t.to_canonical()),
        "reason": reason,
    });
    if let Err(audit) = record_server_event(state, edge, EventKind::system(), payload).await {
        tracing::error!(error = %error_chain(&audit), "RECEIPT_NOT_RECORDED event not recorded");
    }
}

/// Appends one of the server's own events to its `_relay` trail, the edge's service identity as
/// actor; a failure is counted and returned.
async fn record_server_event(
    state: &IngestState,
    edge: &EdgeIdentity,
    kind: EventKind,
    payload: serde_json::Value,
) -> Result<Record, relay_domain::AppendError> {
    let parts = state.parts();
    let payload = Payload::from_value(&payload).unwrap_or_else(|e| {
        // Built in code from ids and numbers; a refusal is a bug, logged, and the event still
        // recorded (kind and actor say what happened).
        tracing::error!(error = %e, "server event payload refused");
        Payload::empty()
    });
    let draft = EventDraft {
        trail_id: TrailId::relay(),
        kind,
        actor: Actor::new(format!("edge:{}", edge.0)).ok(),
        actor_source: ActorSource::Service,
        occurred_at: None,
        device: parts.device.clone(),
        project: None,
        subject: None,
        payload,
    };
    let result = parts
        .appender
        .append_rechaining(draft, crate::APPEND_RETRIES)
        .await;
    if result.is_err() {
        parts.metrics.audit_write_failures.inc();
    }
    result
}
