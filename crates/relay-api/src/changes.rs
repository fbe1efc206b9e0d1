//! `/api/v1/changes`: four-eyes configuration changes (segregation of duties).
//!
//! A change that weakens or redirects capture is proposed by one administrator
//! (`CHANGE_PROPOSED`) and takes effect only after a *different* administrator approves it with a
//! signature: password re-checked inside the session, reason required (`CHANGE_APPROVED`). The
//! proposer approving their own proposal is 403; a proposal past its expiry cannot be approved
//! (409). Every step is a chained event in `_relay`, written before the answer.
//!
//! What an approval does depends on who owns the setting ([`ChangeTargets`], given by the
//! runtime): an account's role and (on the server of record) an edge's ingest token take effect
//! at once, each with its own chained event (`ACCOUNT_CHANGED`, `SYSTEM` `INGEST_TOKEN_*`); the
//! settings the relay reads at start-up take effect at its next start, which the answer and the
//! UI say, and which the start-up posture records; a setting this relay does not own cannot be
//! proposed here (422 `not_applicable`) rather than being approved and silently ignored.

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

/// When an approved change of a setting takes effect on this relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applies {
    /// At approval: the relay changes the running state and records the effect.
    Now,
    /// At the relay's next start (restart required): start-up applies the approved value and
    /// records it in its posture.
    AtRestart,
    /// Not on this relay (why, and where instead): proposals are refused with 422.
    NotHere(String),
}

/// How this relay applies each [`ChangeSetting`] once a change of it is approved.
///
/// The default suits a relay that applies its settings at start-up: `account_role` at once,
/// `ingest_token` not here (only a server of record with ingest issues tokens; enabling
/// [`crate::ApiState::enable_ingest_tokens`] makes it `Now`), everything else at the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTargets {
    applies: std::collections::BTreeMap<ChangeSetting, Applies>,
    applied_at_start: std::collections::BTreeSet<String>,
    current: std::collections::BTreeMap<ChangeSetting, serde_json::Value>,
}

impl Default for ChangeTargets {
    fn default() -> Self {
        let applies = ChangeSetting::ALL
            .into_iter()
            .map(|s| {
                let a = match s {
                    ChangeSetting::AccountRole
                    | ChangeSetting::AccountCreate
                    | ChangeSetting::AccountPasswordReset
                    | ChangeSetting::AccountStatus => Applies::Now,
                    ChangeSetting::IngestToken => Applies::NotHere(
                        "ingest tokens are issued and revoked on the server of record, whose \
                         ingest endpoint checks them"
                            .into(),
                    ),
                    ChangeSetting::EnrollmentCode => Applies::NotHere(
                        "enrollment codes are issued on the server of record, which enrolls \
                         edges"
                            .into(),
                    ),
                    _ => Applies::AtRestart,
                };
                (s, a)
            })
            .collect();
        Self {
            applies,
            applied_at_start: Default::default(),
            current: Default::default(),
        }
    }
}

impl ChangeTargets {
    /// Says how `setting` is applied here.
    pub fn set(mut self, setting: ChangeSetting, applies: Applies) -> Self {
        self.applies.insert(setting, applies);
        self
    }

    /// Names the approved changes this relay's start-up applied (shown as in effect).
    pub fn applied_at_start(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.applied_at_start.extend(ids);
        self
    }

    /// Tells the value of `setting` this relay runs with (e.g. its settle window), shown
    /// beside the change form (`GET /api/v1/changes/settings`).
    pub fn current(mut self, setting: ChangeSetting, value: serde_json::Value) -> Self {
        self.current.insert(setting, value);
        self
    }

    /// The value of `setting` this relay runs with, when the runtime told it.
    pub(crate) fn current_value(&self, setting: ChangeSetting) -> Option<&serde_json::Value> {
        self.current.get(&setting)
    }

    /// How `setting` is applied here.
    pub fn applies(&self, setting: ChangeSetting) -> Applies {
        self.applies
            .get(&setting)
            .cloned()
            .unwrap_or(Applies::AtRestart)
    }

    /// The `takes_effect` text of a change request.
    fn takes_effect(&self, r: &ChangeRequest) -> Option<String> {
        let applies = self.applies(r.setting);
        match (r.state, applies) {
            (ChangeState::Rejected, _) => None,
            (_, Applies::NotHere(why)) => Some(format!("not on this relay: {why}")),
            (ChangeState::Pending, Applies::Now) => Some("at once, when approved".into()),
            (ChangeState::Pending, Applies::AtRestart) => {
                Some("at the relay's next start after approval (restart required)".into())
            }
            (_, Applies::Now) => Some("in effect since its approval".into()),
            (_, Applies::AtRestart) if self.applied_at_start.contains(&r.id) => {
                Some("in effect since the relay's last start (applied at start-up)".into())
            }
            (_, Applies::AtRestart) => Some("at the relay's next start (restart required)".into()),
        }
    }
}

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
    /// When the change takes (or took) effect on this relay: at once, at the next start
    /// (restart required), in effect since the last start, or not on this relay.
    pub takes_effect: Option<String>,
    /// What applying an approved change did, in the answer to its approval (e.g. the role an
    /// account now has, the ingest token version now current).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<serde_json::Value>,
}

impl ChangeView {
    fn of(r: &ChangeRequest, now: Timestamp, targets: &ChangeTargets) -> Self {
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
            takes_effect: targets.takes_effect(r),
            applied: None,
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

pub(crate) fn store(state: &ApiState) -> Result<Arc<dyn ChangeRequestStore>, ApiError> {
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
        (status = 400, description = "Malformed body, or an integer beyond 2^53 - 1 (`out_of_range`)", body = ErrorBody),
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
    crate::extract::check_json_integers(&req.value, "value")?;
    let changes = store(&state)?;
    let reason = check_reason(&req.reason)?;
    let setting: ChangeSetting = req
        .setting
        .parse()
        .map_err(|e: String| ApiError::unprocessable("invalid_setting", e))?;
    setting.check_value(&req.value).map_err(|expected| {
        ApiError::unprocessable("invalid_value", format!("{setting} takes {expected}"))
    })?;
    let targets = state.change_targets();
    if let Applies::NotHere(why) = targets.applies(setting) {
        return Err(ApiError::unprocessable(
            "not_applicable",
            format!("{setting} cannot be changed on this relay: {why}"),
        ));
    }
    check_target(&state, setting, &req.value, None).await?;
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
    Ok((
        StatusCode::CREATED,
        Json(ChangeView::of(&request, now, &targets)),
    ))
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
    let targets = state.change_targets();
    Ok(Json(
        all.iter()
            .map(|r| ChangeView::of(r, now, &targets))
            .collect(),
    ))
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
    crate::four_eyes::check_approver(&user.account, &request)?;
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
    let targets = state.change_targets();
    let applies = targets.applies(request.setting);
    if let Applies::NotHere(why) = &applies {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_applicable",
            format!("{} cannot be changed on this relay: {why}", request.setting),
        ));
    }
    if applies == Applies::Now {
        check_target(&state, request.setting, &request.value, Some(&user)).await?;
    }
    let account = state
        .reauthenticate(
            &user,
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
    let mut view = ChangeView::of(&decided, now, &targets);
    if applies == Applies::Now {
        view.applied = Some(apply_now(&state, &user, &decided).await?);
    }
    Ok(Json(view))
}

/// The text of `key` in a change value ("" when absent).
fn text<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// The role a change value's `role` names.
fn role_of(value: &serde_json::Value) -> Result<Role, ApiError> {
    serde_json::from_value(serde_json::Value::String(text(value, "role").to_owned())).map_err(
        |_| {
            ApiError::unprocessable(
                "invalid_value",
                format!(
                    "unknown role {:?} (operator, reviewer, admin, auditor)",
                    text(value, "role")
                ),
            )
        },
    )
}

/// The account an `account_role` value names, and the role it asks for.
fn role_change(
    value: &serde_json::Value,
) -> Result<(relay_domain::ports::Username, Role), ApiError> {
    let field = |k: &str| {
        value
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let username = crate::login::parse_username(field("username"))?;
    let role: Role = serde_json::from_value(serde_json::Value::String(field("role").to_owned()))
        .map_err(|_| {
            ApiError::unprocessable(
                "invalid_value",
                format!(
                    "account_role: unknown role {:?} (operator, reviewer, admin, auditor)",
                    field("role")
                ),
            )
        })?;
    Ok((username, role))
}

/// Checks that a change applied at once can be applied: the account exists, the role is known,
/// the approver is not changing their own role, the edge id is valid. Nothing is recorded.
async fn check_target(
    state: &ApiState,
    setting: ChangeSetting,
    value: &serde_json::Value,
    approver: Option<&AuthUser>,
) -> Result<(), ApiError> {
    match setting {
        ChangeSetting::AccountRole => {
            let (username, _) = role_change(value)?;
            if state.parts().accounts.get(&username).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "invalid_value",
                    format!("account_role: no account {username}"),
                ));
            }
            if approver.is_some_and(|a| *a.username() == username) {
                return Err(ApiError::forbidden(
                    "own_role",
                    "an administrator cannot approve a change of their own role",
                ));
            }
            Ok(())
        }
        ChangeSetting::AccountCreate => {
            let username = crate::login::parse_username(text(value, "username"))?;
            let full_name = crate::login::check_full_name(text(value, "full_name"))?;
            role_of(value)?;
            crate::identity::refuse_generic(state.config(), &username)?;
            crate::identity::refuse_taken(state, &username, &full_name).await?;
            Ok(())
        }
        ChangeSetting::AccountPasswordReset | ChangeSetting::AccountStatus => {
            let username = crate::login::parse_username(text(value, "username"))?;
            if state.parts().accounts.get(&username).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "invalid_value",
                    format!("{setting}: no account {username}"),
                ));
            }
            Ok(())
        }
        ChangeSetting::EnrollmentCode => {
            let edge = text(value, "edge");
            let ttl = value
                .get("ttl_minutes")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(crate::fleet::DEFAULT_CODE_MINUTES);
            // The same checks as issuing it directly, on a throwaway instant.
            crate::fleet::make_code(
                edge,
                "check",
                relay_domain::Timestamp::from_unix_micros(0)
                    .map_err(|e| ApiError::internal("epoch", &e))?,
                ttl,
            )
            .map(|_| ())
            .map_err(|e| {
                ApiError::unprocessable("invalid_value", format!("enrollment_code: {}", e.message))
            })
        }
        ChangeSetting::IngestToken => {
            let source = value
                .get("source")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            crate::ingest::ingest_token_secret(source).map_err(|e| {
                ApiError::unprocessable(
                    "invalid_value",
                    format!("ingest_token: edge id {source:?}: {e}"),
                )
            })?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Applies an approved change the running relay owns, records its effect as a chained event,
/// and says what it did. A failure here leaves the approval recorded and is answered 503 with
/// what to do; nothing is half-applied silently.
async fn apply_now(
    state: &ApiState,
    user: &AuthUser,
    change: &ChangeRequest,
) -> Result<serde_json::Value, ApiError> {
    match change.setting {
        ChangeSetting::AccountRole => {
            let (username, role) = role_change(&change.value)?;
            let before = state
                .parts()
                .accounts
                .get(&username)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no account {username}")))?;
            if before.role == role {
                return Ok(
                    serde_json::json!({"username": username.as_str(), "role": role.as_str(), "changed": false}),
                );
            }
            let mut after = before.clone();
            after.role = role;
            state.parts().accounts.update(&after).await.map_err(|e| {
                apply_failed(change, &format!("the account could not be updated: {e}"))
            })?;
            let recorded = state
                .append_event(
                    TrailId::relay(),
                    EventKind::account_changed(),
                    user.username().as_str(),
                    ActorSource::Token,
                    Subject::new(format!("account:{username}")).ok(),
                    None,
                    serde_json::json!({
                        "username": username.as_str(),
                        "changes": {"role": {"from": before.role.as_str(), "to": role.as_str()}},
                        "change_id": change.id,
                        "proposer": change.proposer,
                    }),
                )
                .await;
            if let Err(e) = recorded {
                crate::login::restore(state, before).await;
                return Err(e);
            }
            tracing::info!(change = %change.id, username = %username, role = %role, "approved role change applied");
            Ok(serde_json::json!({
                "username": username.as_str(), "role": role.as_str(),
                "previous_role": before.role.as_str(), "changed": true,
            }))
        }
        ChangeSetting::IngestToken => {
            let Some(ingest) = state.ingest() else {
                return Err(apply_failed(change, "this relay has no ingest endpoint"));
            };
            let source = change
                .value
                .get("source")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let revoke = change
                .value
                .get("action")
                .and_then(serde_json::Value::as_str)
                == Some("revoke");
            let (what, key_id) = if revoke {
                let id = ingest.revoke_token(source).await.map_err(|e| {
                    apply_failed(change, &format!("the token could not be replaced: {e}"))
                })?;
                ("INGEST_TOKEN_REVOKED", id)
            } else {
                let id = ingest.issue_token(source).await.map_err(|e| {
                    apply_failed(change, &format!("the token could not be issued: {e}"))
                })?;
                ("INGEST_TOKEN_ISSUED", Some(id))
            };
            let key_id = key_id.map(|k| k.to_string());
            state
                .append_event(
                    TrailId::relay(),
                    EventKind::system(),
                    user.username().as_str(),
                    ActorSource::Token,
                    Subject::new(format!("edge:{source}")).ok(),
                    None,
                    serde_json::json!({
                        "event": what, "edge": source, "key_id": key_id,
                        "change_id": change.id, "proposer": change.proposer,
                    }),
                )
                .await?;
            tracing::info!(change = %change.id, edge = %source, event = what, "approved ingest token change applied");
            Ok(serde_json::json!({
                "edge": source,
                "action": if revoke { "revoked" } else { "issued" },
                "key_id": key_id,
                "token": if revoke {
                    "refused from now on (401)"
                } else {
                    "hand it to the edge's operator with `relay-server ingest-token --edge <id>`"
                },
            }))
        }
        ChangeSetting::AccountCreate
        | ChangeSetting::AccountPasswordReset
        | ChangeSetting::AccountStatus => crate::four_eyes_apply::apply(state, user, change).await,
        ChangeSetting::EnrollmentCode => crate::fleet::issue_approved(state, user, change).await,
        _ => Ok(serde_json::Value::Null),
    }
}

pub(crate) fn apply_failed(change: &ChangeRequest, why: &str) -> ApiError {
    tracing::error!(change = %change.id, setting = %change.setting, why, "an approved change could not be applied");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "apply_failed",
        format!(
            "change request {} is approved (recorded), but applying it failed: {why}; propose \
             it again once the cause is fixed",
            change.id
        ),
    )
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
    Ok(Json(ChangeView::of(&decided, now, &state.change_targets())))
}
