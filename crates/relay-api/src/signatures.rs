//! `POST /api/v1/signatures`: electronic signatures (R4, §11.50, §11.100, §11.200).
//!
//! A signature re-checks the signer's password even inside a valid session (two components:
//! the token's user and the password), needs a meaning and a reason, and is itself a chained
//! `SIGNATURE` record in the *same* trail as the record it signs, naming that record's exact
//! checksum. Only reviewers sign; a refused call appends nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relay_domain::ports::{RecordStoreExt, Role};
use relay_domain::workflow::SignatureMeaning;
use relay_domain::{ActorSource, Checksum, EventKind, Record, Subject};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, Password};
use crate::error::{ApiError, ErrorBody};
use crate::events::{EventView, Manifestation, parse_trail};
use crate::extract::ApiJson;
use crate::review::ReviewSnapshot;
use crate::state::ApiState;

/// What a signature means (§11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Meaning {
    /// The record was reviewed.
    Reviewed,
    /// The record is approved.
    Approved,
    /// The record is rejected.
    Rejected,
}

impl Meaning {
    pub(crate) fn domain(self) -> SignatureMeaning {
        match self {
            Meaning::Reviewed => SignatureMeaning::Reviewed,
            Meaning::Approved => SignatureMeaning::Approved,
            Meaning::Rejected => SignatureMeaning::Rejected,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.domain().as_str()
    }
}

/// A signature to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// The trail of the record to sign.
    pub trail_id: String,
    /// The exact checksum of the record to sign.
    pub target_checksum: String,
    /// `reviewed`, `approved` or `rejected`.
    pub meaning: Meaning,
    /// Why (required, 1-1000 characters).
    pub reason: String,
    /// The signer's password, checked again although the session is valid.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// The TOTP code, when enrolled.
    pub totp: Option<String>,
}

/// The recorded signature.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignResponse {
    /// The manifestation shown with the record from now on.
    pub manifestation: Manifestation,
    /// The SIGNATURE record itself.
    pub signature_record: EventView,
}

/// Signs a record.
#[utoipa::path(post, path = "/api/v1/signatures", tag = "signatures", request_body = SignRequest,
    responses(
        (status = 201, description = "Signed: the SIGNATURE record and its manifestation", body = SignResponse),
        (status = 401, description = "Not logged in, or wrong password (nothing recorded)", body = ErrorBody),
        (status = 403, description = "The role may not sign (operator, admin, auditor)", body = ErrorBody),
        (status = 409, description = "Refused by the signing workflow (`review_required`, `already_approved`, `rejected_final`, `approver_is_reviewer`, `approver_is_author`, `superseded`, `already_signed`), the target record does not verify (`target_not_intact`), or, on the server of record, forwarded trails are read-only replicas; every refusal but the last is a `SIGNATURE_REFUSED` event", body = ErrorBody),
        (status = 422, description = "No such checksum in that trail, or missing reason", body = ErrorBody),
        (status = 429, description = "Locked after repeated wrong passwords; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn sign(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SignRequest>,
) -> Result<(StatusCode, Json<SignResponse>), ApiError> {
    user.require(&[Role::Reviewer], "sign records")?;
    let reason = checked_reason(&req.reason)?;
    let trail = signable_trail(&state, &req.trail_id)?;
    let target_checksum = Checksum::from_hex(&req.target_checksum).map_err(|_| {
        ApiError::unprocessable(
            "invalid_target",
            "target_checksum must be 64 lowercase hex characters",
        )
    })?;
    let target = find_by_checksum(&state, &trail, &target_checksum)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_target",
                format!("trail {trail} holds no record with checksum {target_checksum}"),
            )
        })?;
    if target.kind == EventKind::signature() {
        return Err(ApiError::unprocessable(
            "invalid_target",
            "a signature record cannot itself be signed",
        ));
    }
    // Who signs, first: the password (and TOTP) re-checked, whatever the workflow will say.
    let now = state.now().await?;
    let account = state
        .reauthenticate(&user, &req.password, req.totp.as_deref(), now, "signature")
        .await?;
    // From the workflow check to the append, no other signature lands on this trail.
    let _lane = state.signing_lane(&trail).await;
    let review = state.review_of(&trail).await?;
    if let Err(refusal) = check_target(&state, &review, &target, &user, req.meaning).await {
        state
            .record_signature_refused(&user, &target, req.meaning.as_str(), &refusal)
            .await;
        return Err(refusal);
    }
    let payload = signature_payload(&target, req.meaning, reason, &account.full_name);
    let subject = Subject::new(target.locator()).ok();
    let record = state
        .append_event(
            trail.clone(),
            EventKind::signature(),
            account.username.as_str(),
            ActorSource::Token,
            subject,
            target.project.clone(),
            payload,
        )
        .await?;
    tracing::info!(trail = %trail, seq = %record.chain_seq, target_seq = %target.chain_seq, meaning = req.meaning.as_str(), "record signed");
    let (_, manifestation) = Manifestation::of(&record).ok_or_else(|| {
        ApiError::internal("a new signature record is unreadable", &std::fmt::Error)
    })?;
    let review = state.review_of(&trail).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignResponse {
            manifestation,
            signature_record: EventView::of(&record, &review),
        }),
    ))
}

/// The trimmed reason, or 422 `reason_required` unless it has 1-1000 printable characters.
pub(crate) fn checked_reason(reason: &str) -> Result<&str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty()
        || reason.chars().count() > 1000
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ApiError::unprocessable(
            "reason_required",
            "a reason of 1-1000 printable characters is required",
        ));
    }
    Ok(reason)
}

/// The trail named `trail_id` if its records can be signed here: 422 `invalid_target` for a
/// malformed name or `_relay`, 409 `replica_read_only` for a forwarded trail on the server of
/// record.
pub(crate) fn signable_trail(
    state: &ApiState,
    trail_id: &str,
) -> Result<relay_domain::TrailId, ApiError> {
    let trail =
        parse_trail(trail_id).map_err(|e| ApiError::unprocessable("invalid_target", e.message))?;
    if state.config().server_of_record && !trail.is_relay() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replica_read_only",
            "this is the server of record: forwarded trails are replicas of the edges' and are \
             never written here; sign the record on its edge (the signature is then forwarded)",
        ));
    }
    if trail.is_relay() {
        return Err(ApiError::unprocessable(
            "invalid_target",
            "records of the relay's own _relay trail cannot be signed",
        ));
    }
    Ok(trail)
}

/// The SIGNATURE record's payload for `target` (the same for a single and a bulk signature).
pub(crate) fn signature_payload(
    target: &Record,
    meaning: Meaning,
    reason: &str,
    printed_name: &str,
) -> serde_json::Value {
    serde_json::json!({
        "target_checksum": target.checksum.to_hex(),
        "target_seq": target.chain_seq.get(),
        "meaning": meaning.as_str(),
        "reason": reason,
        "printed_name": printed_name,
    })
}

/// Checks that `target` may take `meaning` from `user`: its stored bytes verify (HMAC under
/// its key, links to its neighbours) and the signing workflow allows the step. The refusal is
/// a 409 naming the rule.
pub(crate) async fn check_target(
    state: &ApiState,
    review: &ReviewSnapshot,
    target: &Record,
    user: &AuthUser,
    meaning: Meaning,
) -> Result<(), ApiError> {
    crate::target_check::check_intact(state, target).await?;
    review
        .with_facts(target, |facts| {
            relay_domain::workflow::check_signing(
                &state.config().signing_workflow,
                facts,
                user.username().as_str(),
                meaning.domain(),
            )
        })
        .map_err(|r| {
            ApiError::new(
                StatusCode::CONFLICT,
                r.rule.code(),
                format!("{} (rule: {})", r.message, r.rule.name()),
            )
        })
}

/// The record of `trail` whose checksum is `checksum`, scanning the trail (records are
/// immutable, so the answer cannot change once found).
async fn find_by_checksum(
    state: &ApiState,
    trail: &relay_domain::TrailId,
    checksum: &Checksum,
) -> Result<Option<relay_domain::Record>, ApiError> {
    let mut found = None;
    state
        .parts()
        .store
        .for_each_record(trail, 1000, |r| {
            if r.checksum.ct_eq(checksum) {
                found = Some(r);
                false
            } else {
                true
            }
        })
        .await?;
    Ok(found)
}
