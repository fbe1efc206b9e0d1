//! `/api/v1/changes`: four-eyes configuration changes (segregation of duties).
//!
//! A change that weakens or redirects capture is proposed by one administrator
//! (`CHANGE_PROPOSED`) and takes effect only after a *different* administrator approves it with a
//! signature: password re-checked inside the session, reason required (`CHANGE_APPROVED`). The
//! proposer approving their own proposal is 403; a proposal past its expiry cannot be approved
//! (409). Every step is a chained event in `_relay`, written before the answer. Approved values
//! are applied by the relay at its next start (the answer says so).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relay_domain::ports::{
    ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState,
    ChangeStoreError, Role,
};
use relay_domain::{ActorSource, EventKind, Subject, Timestamp, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, Password, random_hex};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::ApiState;

/// A proposed change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// `watch`, `settle_ms`, `notary_target`, `notary_interval_secs`, `retention_days`,
    /// `ingest_token`, `account_role` or `registration_closed`.
    pub setting: String,
    /// The new value; its shape depends on the setting.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// Why (required, 1-1000 characters).
    pub reason: String,
}

/// An approval: a signature of the second administrator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The approver's password, checked again although the session is valid.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// The TOTP code, when enrolled.
    pub totp: Option<String>,
    /// Why (required, 1-1000 characters).
    pub reason: String,
}

/// A rejection (by another administrator) or withdrawal (by the proposer).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (required, 1-1000 characters).
    pub reason: String,
}

/// A change request as shown to administrators and auditors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// Its id.
    pub id: String,
    /// The setting.
    pub setting: String,
    /// The proposed value.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// Who proposed it.
    pub proposer: String,
    /// Why.
    pub reason: String,
    /// When (canonical UTC).
    pub created_at: String,
    /// When it can no longer be approved.
    pub expires_at: String,
    /// `pending`, `expired`, `approved` or `rejected`.
    pub state: String,
    /// Who decided, once decided.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<String>,
    /// The decision's reason.
    pub decision_reason: Option<String>,
    /// When an approved change takes effect.
    pub takes_effect: Option<String>,
}

impl ChangeView {
    fn of(r: &ChangeRequest, now: Timestamp) -> Self {
        let state = if r.is_expired(now) {
            "expired"
        } else {
            r.state.as_str()
        };
        Self {
            id: r.id.clone(),
            setting: r.setting.as_str().to_owned(),
            value: r.value.clone(),
            proposer: r.proposer.clone(),
            reason: r.reason.clone(),
            created_at: r.created_at.to_canonical(),
            expires_at: r.expires_at.to_canonical(),
            state: state.to_owned(),
            decided_by: r.decided_by.clone(),
            decided_at: r.decided_at.map(Timestamp::to_canonical),
            decision_reason: r.decision_reason.clone(),
            takes_effect: (r.state == ChangeState::Approved)
                .then(|| "at the relay's next start (restart required)".to_owned()),
        }
    }
}

impl From<ChangeStoreError> for ApiError {
    fn from(e: ChangeStoreError) -> Self {
        match &e {
            ChangeStoreError::NotFound(id) => {
                ApiError::not_found(format!("no change request {id}"))
            }
            ChangeStoreError::NotPending { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_pending", e.to_string())
            }
            ChangeStoreError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            _ => ApiError::internal("the change request store failed", &e),
        }
    }
}

fn store(state: &ApiState) -> Result<Arc<dyn ChangeRequestStore>, ApiError> {
    state.change_store().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "changes_unavailable",
            "four-eyes configuration changes are not enabled on this relay",
        )
    })
}

fn check_reason(reason: &str) -> Result<&str, ApiError> {
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

fn plus(t: Timestamp, d: std::time::Duration) -> Result<Timestamp, ApiError> {
    let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(t.unix_micros().saturating_add(micros))
        .map_err(|e| ApiError::internal("the proposal's expiry is out of range", &e))
}

async fn record(
    state: &ApiState,
    kind: EventKind,
    user: &AuthUser,
    r: &ChangeRequest,
    extra: serde_json::Value,
) -> Result<relay_domain::Record, ApiError> {
    let mut payload = serde_json::json!({
        "change_id": r.id,
        "setting": r.setting.as_str(),
        "value": r.value,
        "proposer": r.proposer,
    });
    if let (Some(obj), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        obj.extend(extra);
    }
    state
        .append_event(
            TrailId::relay(),
            kind,
            user.username().as_str(),
            ActorSource::Token,
            Subject::new(format!("change/{}", r.id)).ok(),
            None,
            payload,
        )
        .await
}

/// Proposes a change (administrators).
#[utoipa::path(post, path = "/api/v1/changes", tag = "changes", request_body = ProposeRequest,
    responses(
        (status = 201, description = "Proposed; waits for a second administrator", body = ChangeView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Unknown setting, bad value or missing reason", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn propose(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ProposeRequest>,
) -> Result<(StatusCode, Json<ChangeView>), ApiError> {
    user.require(&[Role::Admin], "propose configuration changes")?;
    let changes = store(&state)?;
    let reason = check_reason(&req.reason)?;
    let setting: ChangeSetting = req
        .setting
        .parse()
        .map_err(|e: String| ApiError::unprocessable("invalid_setting", e))?;
    setting.check_value(&req.value).map_err(|expected| {
        ApiError::unprocessable("invalid_value", format!("{setting} takes {expected}"))
    })?;
    let now = state.now().await?;
    let request = ChangeRequest {
        id: format!("cr-{}", random_hex(8)),
        setting,
        value: req.value,
        proposer: user.username().as_str().to_owned(),
        reason: reason.to_owned(),
        created_at: now,
        expires_at: plus(now, state.config().change_expiry)?,
        state: ChangeState::Pending,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    };
    // The event first: a proposal that exists must have been recorded.
    record(
        &state,
        EventKind::change_proposed(),
        &user,
        &request,
        serde_json::json!({
            "reason": request.reason,
            "expires_at": request.expires_at.to_canonical(),
        }),
    )
    .await?;
    changes.propose(&request).await?;
    tracing::info!(change = %request.id, setting = %setting, proposer = %request.proposer, "configuration change proposed");
    Ok((StatusCode::CREATED, Json(ChangeView::of(&request, now))))
}

/// Pending and recent change requests (administrators and auditors).
#[utoipa::path(get, path = "/api/v1/changes", tag = "changes",
    responses(
        (status = 200, description = "Newest first: pending, expired and decided requests", body = [ChangeView]),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<Vec<ChangeView>>, ApiError> {
    user.require(&[Role::Admin, Role::Auditor], "list configuration changes")?;
    let changes = store(&state)?;
    let now = state.now().await?;
    let all = changes.list(200).await?;
    Ok(Json(all.iter().map(|r| ChangeView::of(r, now)).collect()))
}

/// Approves a change: a different administrator signs it (password and reason).
#[utoipa::path(post, path = "/api/v1/changes/{id}/approve", tag = "changes", request_body = ApproveRequest,
    params(("id" = String, Path, description = "The change request")),
    responses(
        (status = 200, description = "Approved; takes effect at the relay's next start", body = ChangeView),
        (status = 401, description = "Not logged in, or wrong password (nothing recorded)", body = ErrorBody),
        (status = 403, description = "Not an admin, or the proposer approving their own change", body = ErrorBody),
        (status = 404, description = "No such change request", body = ErrorBody),
        (status = 409, description = "Expired, or already decided", body = ErrorBody),
        (status = 422, description = "Missing reason", body = ErrorBody),
        (status = 429, description = "Locked after repeated wrong passwords", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ApproveRequest>,
) -> Result<Json<ChangeView>, ApiError> {
    user.require(&[Role::Admin], "approve configuration changes")?;
    let changes = store(&state)?;
    let reason = check_reason(&req.reason)?;
    let request = changes.get(&id).await?;
    if request.proposer == user.username().as_str() {
        return Err(ApiError::forbidden(
            "self_approval",
            "a change must be approved by a different administrator than its proposer (four-eyes)",
        ));
    }
    let now = state.now().await?;
    if request.state != ChangeState::Pending {
        return Err(ChangeStoreError::NotPending {
            id: request.id.clone(),
            state: request.state.as_str(),
        }
        .into());
    }
    if request.is_expired(now) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "expired",
            format!(
                "change request {} expired at {}; propose it again",
                request.id,
                request.expires_at.to_canonical()
            ),
        ));
    }
    let mut account = user.account.clone();
    state
        .check_credentials(
            &mut account,
            &req.password,
            req.totp.as_deref(),
            now,
            "change_approval",
        )
        .await?;
    record(
        &state,
        EventKind::change_approved(),
        &user,
        &request,
        serde_json::json!({
            "reason": reason,
            "printed_name": account.full_name,
            "meaning": "approved",
            "signed_at": now.to_canonical(),
        }),
    )
    .await?;
    let decided = changes
        .decide(
            &request.id,
            &ChangeDecision {
                state: ChangeState::Approved,
                by: user.username().as_str().to_owned(),
                at: now,
                reason: reason.to_owned(),
            },
        )
        .await?;
    tracing::info!(change = %decided.id, setting = %decided.setting, approver = %user.username(), "configuration change approved");
    Ok(Json(ChangeView::of(&decided, now)))
}

/// Rejects a change (another administrator) or withdraws it (its proposer).
#[utoipa::path(post, path = "/api/v1/changes/{id}/reject", tag = "changes", request_body = RejectRequest,
    params(("id" = String, Path, description = "The change request")),
    responses(
        (status = 200, description = "Rejected", body = ChangeView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such change request", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
        (status = 422, description = "Missing reason", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reject(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RejectRequest>,
) -> Result<Json<ChangeView>, ApiError> {
    user.require(&[Role::Admin], "reject configuration changes")?;
    let changes = store(&state)?;
    let reason = check_reason(&req.reason)?;
    let request = changes.get(&id).await?;
    if request.state != ChangeState::Pending {
        return Err(ChangeStoreError::NotPending {
            id: request.id.clone(),
            state: request.state.as_str(),
        }
        .into());
    }
    let now = state.now().await?;
    record(
        &state,
        EventKind::change_rejected(),
        &user,
        &request,
        serde_json::json!({
            "reason": reason,
            "withdrawn": request.proposer == user.username().as_str(),
        }),
    )
    .await?;
    let decided = changes
        .decide(
            &request.id,
            &ChangeDecision {
                state: ChangeState::Rejected,
                by: user.username().as_str().to_owned(),
                at: now,
                reason: reason.to_owned(),
            },
        )
        .await?;
    Ok(Json(ChangeView::of(&decided, now)))
}
