//! `/api/v1/access-review`: the periodic access review (21 CFR 11.10(d), 11.300(b); issue 18)
//! for administrators and auditors.
//!
//! - `GET` builds the review from the account store and the chained account events of `_relay`
//!   (`relay_domain::access_review`): every account with role, status, creation, last login,
//!   last password change, failed logins since the previous review, role history and flags
//!   (the bootstrap second administrator among them), and the SHA-256 digest of its content.
//!   Reading it is an `ACCESS` event.
//! - `POST .../complete` is the reviewer's signature: password (and TOTP) re-checked inside the
//!   session, a reason, optionally the digest of the review the reviewer read (409
//!   `review_changed` when the accounts changed since); recorded as `ACCESS_REVIEWED` in `_relay`
//!   with the digest of the review it attests. A refused call records nothing.
//! - `POST .../export` seals the review into an export package of `_relay` (the review as
//!   `access_review.json`, listed in the signed manifest; `relay-verify` checks it offline),
//!   downloaded from `GET /api/v1/exports/{package}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relay_domain::access_review::{AccessReview, build_review, replay_relay_trail};
use relay_domain::ports::Role;
use relay_domain::{Actor, ActorSource, EventKind, Subject, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, Password};
use crate::error::{ApiError, ErrorBody};
use crate::exports::SealedExportView;
use crate::extract::ApiJson;
use crate::state::ApiState;

/// Who may read, complete and export the access review.
const REVIEW_ROLES: &[Role] = &[Role::Admin, Role::Auditor];

/// The access review as served (`relay_domain::access_review::AccessReview`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessReviewView {
    /// `gims-relay access review v1`.
    pub format: String,
    /// When the review was generated (canonical UTC).
    pub generated_at: String,
    /// The `_relay` seq the review was built up to.
    pub relay_seq: u64,
    /// Start of the review period: the previous review's time (`null`: since installation).
    pub period_from: Option<String>,
    /// The previous `ACCESS_REVIEWED` event: `seq`, `at`, `reviewer`, `review_digest`.
    #[schema(value_type = Option<Object>)]
    pub previous_review: Option<relay_domain::access_review::PreviousReview>,
    /// Every account: `username`, `full_name`, `role`, `status` (`enabled`, `disabled`,
    /// `locked`), `created_at`, `created_by`, `creation` (`first_admin`,
    /// `second_admin_bootstrap`, `by_admin`, `four_eyes`), `creation_reason`, `last_login_at`,
    /// `password_changed_at`, `totp_enrolled`, `failed_logins` (since the previous review),
    /// `failed_attempts`, `role_history` (`seq`, `at`, `from`, `to`, `by`, `change_id`,
    /// `proposed_by`, `reason`) and `flags` (`bootstrap_second_admin`, `never_logged_in`,
    /// `password_expired`, `temporary_password`, `locked`, `disabled`, `not_chained`,
    /// `row_disagrees_with_trail`).
    #[schema(value_type = Vec<Object>)]
    pub accounts: Vec<relay_domain::access_review::ReviewedAccount>,
    /// Failed logins since the previous review with names that are no account.
    pub failed_logins_unknown_names: u64,
    /// SHA-256 (hex) of the review's content (everything but `generated_at` and `relay_seq`);
    /// what `ACCESS_REVIEWED` attests.
    pub digest: String,
}

impl From<AccessReview> for AccessReviewView {
    fn from(r: AccessReview) -> Self {
        Self {
            format: r.format,
            generated_at: r.generated_at,
            relay_seq: r.relay_seq,
            period_from: r.period_from,
            previous_review: r.previous_review,
            accounts: r.accounts,
            failed_logins_unknown_names: r.failed_logins_unknown_names,
            digest: r.digest,
        }
    }
}

/// The reviewer's signature of a completed review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteReviewRequest {
    /// The reviewer's password, checked again although the session is valid.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// The TOTP code, when enrolled.
    pub totp: Option<String>,
    /// Why / what was concluded (required, 1-1000 printable characters; 422
    /// `reason_required`).
    pub reason: Option<String>,
    /// The `digest` of the review the reviewer read; when given, the review as it is now must
    /// have it (409 `review_changed` otherwise).
    pub review_digest: Option<String>,
}

/// A completed review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewCompleted {
    /// The `ACCESS_REVIEWED` record's seq in `_relay`.
    pub seq: u64,
    /// The digest of the review it attests.
    pub review_digest: String,
    /// Who completed it (username).
    pub reviewer: String,
    /// The reviewer's printed name.
    pub printed_name: String,
    /// When (canonical UTC, the record's `recorded_at`).
    pub reviewed_at: String,
    /// Accounts reviewed.
    pub accounts: usize,
}

async fn current_review(state: &ApiState) -> Result<AccessReview, ApiError> {
    let now = state.now().await?;
    let accounts = state.parts().accounts.list().await?;
    let replay = replay_relay_trail(state.parts().store.as_ref()).await?;
    let max_age = i64::try_from(state.config().password_max_age.as_micros()).unwrap_or(i64::MAX);
    Ok(build_review(&accounts, &replay, now, max_age))
}

/// The periodic access review (administrators and auditors).
#[utoipa::path(get, path = "/api/v1/access-review", tag = "accounts",
    responses(
        (status = 200, description = "The review of every account, with its digest", body = AccessReviewView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 503, description = "The audit trail cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn review(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<AccessReviewView>, ApiError> {
    user.require(REVIEW_ROLES, "read the access review")?;
    let review = current_review(&state).await?;
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "access_review",
                "accounts": review.accounts.len(),
                "review_digest": review.digest,
            }),
        )
        .await?;
    Ok(Json(review.into()))
}

fn check_reason(reason: Option<&str>) -> Result<String, ApiError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "reason_required",
            "completing the access review needs a reason: add \"reason\" (what was reviewed \
             and concluded); it is recorded with the signature",
        ));
    }
    if reason.chars().count() > 1000 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::unprocessable(
            "invalid_reason",
            "the reason must be at most 1000 printable characters",
        ));
    }
    Ok(reason.to_owned())
}

/// Completes the review: the reviewer's signature (password re-checked, reason), recorded as
/// `ACCESS_REVIEWED` with the digest of the review it attests.
#[utoipa::path(post, path = "/api/v1/access-review/complete", tag = "accounts", request_body = CompleteReviewRequest,
    responses(
        (status = 201, description = "Recorded as ACCESS_REVIEWED in _relay", body = ReviewCompleted),
        (status = 401, description = "Not logged in, or wrong password or TOTP (nothing recorded)", body = ErrorBody),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 409, description = "The review changed since the reviewer read it (`review_changed`): reload it", body = ErrorBody),
        (status = 422, description = "No reason (`reason_required`), or a malformed `review_digest` (`invalid_digest`)", body = ErrorBody),
        (status = 429, description = "Locked after repeated wrong passwords; see Retry-After", body = ErrorBody),
        (status = 503, description = "The audit trail cannot be written (nothing recorded)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn complete(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CompleteReviewRequest>,
) -> Result<(StatusCode, Json<ReviewCompleted>), ApiError> {
    user.require(REVIEW_ROLES, "complete the access review")?;
    let reason = check_reason(req.reason.as_deref())?;
    if let Some(d) = &req.review_digest
        && (d.len() != 64 || !d.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
    {
        return Err(ApiError::unprocessable(
            "invalid_digest",
            "review_digest must be the review's digest: 64 lowercase hex characters",
        ));
    }
    // The review as it is before the signature's own password check (which updates the
    // signer's failure counter): what the reviewer read and now attests.
    let review = current_review(&state).await?;
    if let Some(read) = &req.review_digest
        && *read != review.digest
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "review_changed",
            format!(
                "the accounts changed since the review was read (digest {read}, now {}); \
                 reload the review and check it again",
                review.digest
            ),
        ));
    }
    let now = state.now().await?;
    let account = state
        .reauthenticate(
            &user,
            &req.password,
            req.totp.as_deref(),
            now,
            "access_review",
        )
        .await?;
    let flagged: Vec<serde_json::Value> = review
        .accounts
        .iter()
        .filter(|a| !a.flags.is_empty())
        .map(|a| serde_json::json!({"username": a.username, "flags": a.flags}))
        .collect();
    let record = state
        .append_event(
            TrailId::relay(),
            EventKind::access_reviewed(),
            account.username.as_str(),
            ActorSource::Token,
            Subject::new("access-review").ok(),
            None,
            serde_json::json!({
                "review_digest": review.digest,
                "reason": reason,
                "printed_name": account.full_name,
                "role": account.role.as_str(),
                "accounts": review.accounts.len(),
                "flagged": flagged,
                "period_from": review.period_from,
                "relay_seq": review.relay_seq,
            }),
        )
        .await?;
    tracing::info!(reviewer = %account.username, seq = %record.chain_seq, "access review completed");
    Ok((
        StatusCode::CREATED,
        Json(ReviewCompleted {
            seq: record.chain_seq.get(),
            review_digest: review.digest,
            reviewer: account.username.as_str().to_owned(),
            printed_name: account.full_name,
            reviewed_at: record.recorded_at.to_canonical(),
            accounts: review.accounts.len(),
        }),
    ))
}

/// Seals the current review into an export package of `_relay` (`access_review.json` in the
/// signed manifest); download it from `/api/v1/exports/{package}`, check it with `relay-verify`.
#[utoipa::path(post, path = "/api/v1/access-review/export", tag = "accounts",
    responses(
        (status = 201, description = "The sealed package was written (recorded as EXPORT)", body = SealedExportView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 429, description = "The caller holds the most packages allowed (`export_quota`)", body = ErrorBody),
        (status = 503, description = "Sealed exports not enabled", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<(StatusCode, Json<SealedExportView>), ApiError> {
    user.require(REVIEW_ROLES, "export the access review")?;
    let exporter = crate::exports::exporter(&state)?;
    let review = current_review(&state).await?;
    let job = crate::exports::SealedExportJob {
        trail: TrailId::relay(),
        format: "both".into(),
        from_seq: None,
        to_seq: None,
        requested_by: Actor::new(user.username().as_str())
            .map_err(|e| ApiError::bad_request(format!("account name unusable as actor: {e}")))?,
        access_review: Some(review.to_json_bytes()),
    };
    let view = exporter
        .export(job)
        .await
        .map_err(crate::exports::map_error)?;
    tracing::info!(by = %user.username(), package = %view.package, digest = %review.digest, "access review exported");
    Ok((StatusCode::CREATED, Json(view)))
}
