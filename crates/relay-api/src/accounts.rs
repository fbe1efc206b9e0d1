//! `/api/v1/accounts`: list, create and change accounts (administrators only, R3.2). Every
//! change is an `ACCOUNT_CHANGED` event in `_relay`; an administrator cannot change their own
//! role or disable themselves, and where four-eyes changes are enabled, granting or removing the
//! admin role goes through an approved `account_role` change instead.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relay_domain::ports::Role;
use relay_domain::{ActorSource, EventKind, Subject, TrailId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthUser, Password, hash_password};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::login::{AccountView, RegisterRequest, create_account, parse_username, restore};
use crate::state::ApiState;

/// Lists every account.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    responses(
        (status = 200, description = "Every account", body = [AccountView]),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_accounts(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    user.require(&[Role::Admin], "list accounts")?;
    let now = state.now().await?;
    let accounts = state.parts().accounts.list().await?;
    Ok(Json(
        accounts.iter().map(|a| AccountView::of(a, now)).collect(),
    ))
}

/// Creates an account (same body and rules as registration by an administrator); a reason is
/// required and recorded, and the password is temporary (changed by the owner at first login).
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = AccountView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin, registration closed, or a privileged account (admin, reviewer) that needs four eyes (`four_eyes_required`): propose `account_create` at /api/v1/changes", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "No reason (`reason_required`), invalid fields, or a password that breaks the policy (`weak_password`, `password_contains_name`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let view = create_account(&state, Some(&user), req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// A new role.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// Disable (`true`) or re-enable (`false`) the account.
    pub disabled: Option<bool>,
    /// A new printed name.
    pub full_name: Option<String>,
    /// Reset the password to this one; the owner must change it at the next login.
    #[schema(value_type = Option<String>, format = Password)]
    pub reset_password: Option<Password>,
    /// Lift a lockout.
    pub unlock: Option<bool>,
    /// Remove the TOTP second factor.
    pub remove_totp: Option<bool>,
    /// Why (required, 1-500 characters; 422 `reason_required` when missing or blank): recorded
    /// in the `ACCOUNT_CHANGED` event.
    pub reason: Option<String>,
}

/// The reason of an account change: required and not blank (422 `reason_required`), at most
/// 500 characters, trimmed.
pub(crate) fn require_reason(reason: Option<&str>) -> Result<String, ApiError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "reason_required",
            "every account change needs a reason: add \"reason\" (why, e.g. the ticket or the \
             request it follows); it is recorded with the change",
        ));
    }
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_reason",
            "the reason must be at most 500 printable characters",
        ));
    }
    Ok(reason.to_owned())
}

/// Changes an account: role, status, printed name, password reset, unlock, TOTP removal; a
/// reason is required and recorded.
#[utoipa::path(patch, path = "/api/v1/accounts/{username}", tag = "accounts", request_body = AccountPatch,
    params(("username" = String, Path, description = "The account to change")),
    responses(
        (status = 200, description = "Changed", body = AccountView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin, an admin changing their own role or status, or a privileged change that needs four eyes (`four_eyes_required`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "No reason (`reason_required`), nothing to change, invalid values, or a reset password that breaks the policy (`weak_password`, `password_contains_name`, `password_reused`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn patch(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<AccountPatch>,
) -> Result<Json<AccountView>, ApiError> {
    user.require(&[Role::Admin], "change accounts")?;
    let reason = require_reason(req.reason.as_deref())?;
    let username = parse_username(&username)?;
    let now = state.now().await?;
    let before = state
        .parts()
        .accounts
        .get(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {username}")))?;
    let own = username == *user.username();
    let mut after = before.clone();
    let mut changes = serde_json::Map::new();
    if let Some(role) = req.role
        && role != before.role
    {
        if own {
            return Err(ApiError::forbidden(
                "own_role",
                "an administrator cannot change their own role",
            ));
        }
        // Granting a privileged role (admin, or reviewer: a signer), or taking away the admin
        // role, is a four-eyes change where they are enabled.
        if (crate::four_eyes::is_privileged(role) || before.role == Role::Admin)
            && state.change_store().is_some()
        {
            return Err(ApiError::forbidden(
                "four_eyes_required",
                "granting a privileged role (admin, reviewer) or removing the admin role needs \
                 a four-eyes change: propose account_role {\"username\", \"role\"} at \
                 /api/v1/changes for a second administrator to approve",
            ));
        }
        after.role = role;
        changes.insert(
            "role".into(),
            serde_json::json!({"from": before.role.as_str(), "to": role.as_str()}),
        );
    }
    if let Some(disabled) = req.disabled
        && disabled != before.disabled
    {
        if own {
            return Err(ApiError::forbidden(
                "own_status",
                "an administrator cannot disable themselves",
            ));
        }
        // Disabling an administrator, or giving a disabled administrator or reviewer their
        // access back, needs two; disabling a reviewer only narrows who can sign.
        let needs_two = before.role == Role::Admin
            || (!disabled && crate::four_eyes::is_privileged(before.role));
        if needs_two && state.change_store().is_some() {
            return Err(crate::four_eyes::required(
                "disabling or re-enabling an administrator, or re-enabling a reviewer",
                "account_status",
                "{\"username\", \"disabled\"}",
            ));
        }
        after.disabled = disabled;
        changes.insert("disabled".into(), serde_json::json!(disabled));
    }
    if let Some(name) = &req.full_name {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "invalid_full_name",
                "full_name must be 1-200 printable characters",
            ));
        }
        if name != before.full_name {
            crate::identity::refuse_taken_by_others(&state, &username, name, Some(&username))
                .await?;
            after.full_name = name.to_owned();
            changes.insert(
                "full_name".into(),
                serde_json::json!({"from": before.full_name, "to": name}),
            );
        }
    }
    if let Some(password) = &req.reset_password {
        if !own && crate::four_eyes::is_privileged(before.role) && state.change_store().is_some() {
            // Whoever sets an administrator's or a signer's password can act as them.
            return Err(crate::four_eyes::required(
                "resetting the password of an administrator or a reviewer",
                "account_password_reset",
                "{\"username\"}",
            ));
        }
        crate::password_policy::check_new_password(
            state.config(),
            &username,
            &after.full_name,
            password,
        )?;
        crate::password_policy::refuse_reuse(state.config(), &before, password).await?;
        let new_hash = hash_password(password).await?;
        crate::password_policy::rotate(state.config(), &mut after, new_hash);
        // An administrator-set password is known to two people: the owner must change it.
        after.password_changed_at = (!state.config().admin_passwords_temporary).then_some(now);
        after.failed_attempts = 0;
        after.failure_window_start = None;
        after.locked_until = None;
        changes.insert("password_reset".into(), serde_json::json!(true));
    }
    if req.unlock == Some(true) && (before.locked_until.is_some() || before.failed_attempts > 0) {
        after.failed_attempts = 0;
        after.failure_window_start = None;
        after.locked_until = None;
        changes.insert("unlocked".into(), serde_json::json!(true));
    }
    if req.remove_totp == Some(true) && before.totp_secret.is_some() {
        after.totp_secret = None;
        changes.insert("totp_removed".into(), serde_json::json!(true));
    }
    if changes.is_empty() {
        return Err(ApiError::unprocessable(
            "nothing_to_change",
            "the request changes nothing",
        ));
    }
    state
        .parts()
        .accounts
        .update(&after)
        .await
        .map_err(|e| match e {
            relay_domain::ports::AccountStoreError::Precondition(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the account changed meanwhile; reload and retry",
            ),
            other => other.into(),
        })?;
    if after.disabled || req.reset_password.is_some() {
        state.inner.sessions.close_all_of(&username);
    }
    let recorded = state
        .append_event(
            TrailId::relay(),
            EventKind::account_changed(),
            user.username().as_str(),
            ActorSource::Token,
            Subject::new(format!("account:{username}")).ok(),
            None,
            serde_json::json!({"username": username.as_str(), "changes": changes, "reason": reason}),
        )
        .await;
    if let Err(e) = recorded {
        restore(&state, before).await;
        return Err(e);
    }
    tracing::info!(username = %username, by = %user.username(), "account changed");
    let stored = state
        .parts()
        .accounts
        .get(&username)
        .await?
        .unwrap_or(after);
    Ok(Json(AccountView::of(&stored, now)))
}
