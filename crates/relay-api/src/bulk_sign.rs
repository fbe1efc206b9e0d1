//! `POST /api/v1/signatures/batch`: one signature applied to a series of records (issue 25).
//!
//! 21 CFR 11.200(a)(1)(i) allows a series of signings during one period of controlled access
//! to need the full authentication only once: the signer's password (and TOTP when enrolled)
//! is checked once for the whole series, with the same lockout as a single signature. Each
//! target still gets its own `SIGNATURE` record naming its exact checksum, with the same
//! meaning and reason.
//!
//! All or nothing: under the trail's signing lane every target is checked first (it exists in
//! the trail, is not a SIGNATURE, its stored bytes verify, the workflow allows this signer and
//! meaning). One refusal refuses the series: nothing is appended, the answer is a 409 listing
//! each target's verdict, and each refused target is a `SIGNATURE_REFUSED` event as for a
//! single signature. When every target passes, the SIGNATURE records are appended as one
//! atomic group ([`relay_domain::AppendService::append_group`]): a crash or a store failure
//! leaves all of them or none.
//!
//! Why checking everything against one snapshot is the same as signing one after another:
//! targets are distinct (duplicates are refused), a signature only adds facts about its own
//! target (the workflow reads the signatures *on* a record), and a SIGNATURE record supersedes
//! nothing (only `FILE_MODIFIED` / `FILE_DELETED` do). So signing the earlier targets of a
//! series cannot change the verdict on a later one: separation of duties (approver is not the
//! reviewer, not the author) and supersession are judged exactly as if each were signed alone.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use relay_domain::ports::{RecordStoreExt, Role};
use relay_domain::{ActorSource, Checksum, EventKind, Record, Subject, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, Password};
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::events::Manifestation;
use crate::extract::ApiJson;
use crate::signatures::{Meaning, check_target, checked_reason, signable_trail, signature_payload};
use crate::state::ApiState;

/// The most records one bulk signature may sign.
pub const MAX_BATCH_TARGETS: usize = 500;

/// A signature to apply to several records of one trail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSignRequest {
    /// The trail of the records to sign.
    pub trail_id: String,
    /// The exact checksums of the records to sign (1-500, no duplicates).
    pub target_checksums: Vec<String>,
    /// `reviewed`, `approved` or `rejected`, for every target.
    pub meaning: Meaning,
    /// Why (required, 1-1000 characters), for every target.
    pub reason: String,
    /// The signer's password, checked once for the series although the session is valid.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// The TOTP code, when enrolled.
    pub totp: Option<String>,
}

/// One target's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchTargetResult {
    /// The target's checksum, as asked.
    pub target_checksum: String,
    /// The target's seq; absent when the trail holds no such record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// Whether this target passed (201: signed; 409: would have been signed).
    pub ok: bool,
    /// Why the target was refused (`unknown_target`, `invalid_target`, `target_not_intact`,
    /// or a workflow rule such as `already_approved`, `approver_is_reviewer`, `superseded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The refusal in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The manifestation of its new SIGNATURE record (201 only); it names the record's seq
    /// and checksum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifestation: Option<Manifestation>,
}

/// The series was signed: one SIGNATURE record per target, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSignResponse {
    /// How many SIGNATURE records were appended.
    pub signed: usize,
    /// Each target's result, in the order asked.
    pub results: Vec<BatchTargetResult>,
}

/// The series was refused: nothing was appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRefusedBody {
    /// `batch_refused`, and how many targets were refused.
    pub error: ErrorDetail,
    /// Each target's verdict, in the order asked (absent from a `replica_read_only` 409,
    /// which has the plain error body).
    #[schema(required = false)]
    pub results: Vec<BatchTargetResult>,
}

/// What the handler answers besides an [`ApiError`].
pub(crate) enum BatchAnswer {
    Signed(BatchSignResponse),
    Refused(BatchRefusedBody),
}

impl IntoResponse for BatchAnswer {
    fn into_response(self) -> Response {
        match self {
            BatchAnswer::Signed(body) => (StatusCode::CREATED, Json(body)).into_response(),
            BatchAnswer::Refused(body) => {
                let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
                response
                    .extensions_mut()
                    .insert(crate::session_audit::ErrorCode("batch_refused"));
                response
            }
        }
    }
}

/// Signs several records of one trail with one authentication, all or nothing.
#[utoipa::path(post, path = "/api/v1/signatures/batch", tag = "signatures", request_body = BatchSignRequest,
    responses(
        (status = 201, description = "Every target signed: one SIGNATURE record each, in the order asked", body = BatchSignResponse),
        (status = 401, description = "Not logged in, or wrong password (nothing recorded; the failure counts towards the lockout once)", body = ErrorBody),
        (status = 403, description = "The role may not sign (operator, admin, auditor)", body = ErrorBody),
        (status = 409, description = "`batch_refused`: at least one target was refused (unknown, a SIGNATURE, `target_not_intact`, or a workflow rule); nothing was appended, `results` gives each target's verdict and each refused record is a `SIGNATURE_REFUSED` event. Or `replica_read_only` on the server of record (error body only)", body = BatchRefusedBody),
        (status = 422, description = "Missing reason, no targets, more than 500, a duplicate or malformed checksum, or a trail that cannot be signed", body = ErrorBody),
        (status = 429, description = "Locked after repeated wrong passwords; see Retry-After", body = ErrorBody),
        (status = 503, description = "The audit trail could not be written; nothing was signed", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn sign_batch(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<BatchSignRequest>,
) -> Result<BatchAnswer, ApiError> {
    user.require(&[Role::Reviewer], "sign records")?;
    let reason = checked_reason(&req.reason)?;
    let trail = signable_trail(&state, &req.trail_id)?;
    let checksums = checked_targets(&req.target_checksums)?;
    // One full authentication for the series (§11.200(a)(1)(i)), before anything is read.
    let now = state.now().await?;
    let account = state
        .reauthenticate(&user, &req.password, req.totp.as_deref(), now, "signature")
        .await?;
    // From the first check to the append, no other signature lands on this trail.
    let _lane = state.signing_lane(&trail).await;
    let found = find_all(&state, &trail, &checksums).await?;
    let review = state.review_of(&trail).await?;
    let mut results = Vec::with_capacity(checksums.len());
    let mut refusals: Vec<(&Record, ApiError)> = Vec::new();
    for (checksum, hex) in checksums.iter().zip(&req.target_checksums) {
        let Some(target) = found.get(checksum) else {
            results.push(refused(
                hex,
                None,
                "unknown_target",
                format!("trail {trail} holds no record with checksum {hex}"),
            ));
            continue;
        };
        let seq = Some(target.chain_seq.get());
        if target.kind == EventKind::signature() {
            results.push(refused(
                hex,
                seq,
                "invalid_target",
                "a signature record cannot itself be signed".to_owned(),
            ));
            continue;
        }
        match check_target(&state, &review, target, &user, req.meaning).await {
            Ok(()) => results.push(BatchTargetResult {
                target_checksum: hex.clone(),
                target_seq: seq,
                ok: true,
                code: None,
                message: None,
                manifestation: None,
            }),
            Err(refusal) if refusal.status == StatusCode::CONFLICT => {
                results.push(refused(hex, seq, refusal.code, refusal.message.clone()));
                refusals.push((target, refusal));
            }
            Err(other) => return Err(other),
        }
    }
    let refused_count = results.iter().filter(|r| !r.ok).count();
    if refused_count > 0 {
        state
            .record_signatures_refused(&user, &refusals, req.meaning.as_str())
            .await;
        tracing::info!(trail = %trail, targets = checksums.len(), refused = refused_count, "bulk signature refused");
        return Ok(BatchAnswer::Refused(BatchRefusedBody {
            error: ErrorDetail {
                code: "batch_refused".to_owned(),
                message: format!(
                    "{refused_count} of {} records cannot be signed; nothing was signed",
                    checksums.len()
                ),
            },
            results,
        }));
    }
    let mut drafts = Vec::with_capacity(checksums.len());
    for checksum in &checksums {
        let target = found
            .get(checksum)
            .ok_or_else(|| ApiError::internal("a checked target vanished", &std::fmt::Error))?;
        drafts.push(state.event_draft(
            trail.clone(),
            EventKind::signature(),
            account.username.as_str(),
            ActorSource::Token,
            Subject::new(target.locator()).ok(),
            target.project.clone(),
            signature_payload(target, req.meaning, reason, &account.full_name),
        )?);
    }
    let records = state.append_group(drafts).await?;
    for (result, record) in results.iter_mut().zip(&records) {
        let (_, manifestation) = Manifestation::of(record).ok_or_else(|| {
            ApiError::internal("a new signature record is unreadable", &std::fmt::Error)
        })?;
        result.manifestation = Some(manifestation);
    }
    tracing::info!(trail = %trail, signed = records.len(), meaning = req.meaning.as_str(), "records signed in bulk");
    Ok(BatchAnswer::Signed(BatchSignResponse {
        signed: records.len(),
        results,
    }))
}

fn refused(hex: &str, seq: Option<u64>, code: &str, message: String) -> BatchTargetResult {
    BatchTargetResult {
        target_checksum: hex.to_owned(),
        target_seq: seq,
        ok: false,
        code: Some(code.to_owned()),
        message: Some(message),
        manifestation: None,
    }
}

/// The target checksums parsed: 422 unless there are 1-500, each 64 lowercase hex characters,
/// none twice.
fn checked_targets(hex: &[String]) -> Result<Vec<Checksum>, ApiError> {
    if hex.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_target",
            "target_checksums must name at least one record",
        ));
    }
    if hex.len() > MAX_BATCH_TARGETS {
        return Err(ApiError::unprocessable(
            "too_many_targets",
            format!("at most {MAX_BATCH_TARGETS} records can be signed at once"),
        ));
    }
    let mut seen = HashSet::with_capacity(hex.len());
    let mut out = Vec::with_capacity(hex.len());
    for h in hex {
        let checksum = Checksum::from_hex(h).map_err(|_| {
            ApiError::unprocessable(
                "invalid_target",
                "each target checksum must be 64 lowercase hex characters",
            )
        })?;
        if !seen.insert(h.as_str()) {
            return Err(ApiError::unprocessable(
                "duplicate_target",
                format!("checksum {h} is named twice; each record is signed once per series"),
            ));
        }
        out.push(checksum);
    }
    Ok(out)
}

/// The records of `trail` whose checksums are in `wanted`, in one scan of the trail that
/// stops when all are found.
async fn find_all(
    state: &ApiState,
    trail: &TrailId,
    wanted: &[Checksum],
) -> Result<HashMap<Checksum, Record>, ApiError> {
    let wanted: HashSet<Checksum> = wanted.iter().copied().collect();
    let mut found = HashMap::with_capacity(wanted.len());
    state
        .parts()
        .store
        .for_each_record(trail, 1000, |r| {
            if wanted.contains(&r.checksum) {
                found.insert(r.checksum, r);
            }
            found.len() < wanted.len()
        })
        .await?;
    Ok(found)
}
