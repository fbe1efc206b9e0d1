//! Applying approved account changes (`account_create`, `account_password_reset`,
//! `account_status`): each is stored, then recorded as a chained event naming the change, its
//! proposer and its approver; a change whose event cannot be recorded is undone.
//!
//! A created or reset account gets a random temporary password, returned once to the approver
//! in the approval's answer (never stored, logged or recorded); the owner must change it at the
//! first login, so neither administrator knows the password that is finally used.

use relay_domain::ports::{Account, ChangeRequest, Role, Username};
use relay_domain::{ActorSource, EventKind, Subject, TrailId};

use crate::auth::{AuthUser, Password, hash_password, random_hex};
use crate::changes::apply_failed;
use crate::error::ApiError;
use crate::state::ApiState;

/// Applies the approved account change `change`; what it did, for the approver.
pub(crate) async fn apply(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
) -> Result<serde_json::Value, ApiError> {
    use relay_domain::ports::ChangeSetting as S;
    let text = |k: &str| {
        change
            .value
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let username = crate::login::parse_username(&text("username"))?;
    match change.setting {
        S::AccountCreate => create(state, approver, change, username, &text("full_name")).await,
        S::AccountPasswordReset => reset(state, approver, change, username).await,
        S::AccountStatus => {
            let disabled = change
                .value
                .get("disabled")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            status(state, approver, change, username, disabled).await
        }
        _ => Ok(serde_json::Value::Null),
    }
}

/// A temporary password: 24 random hex characters.
fn temporary_password() -> Password {
    Password::new(random_hex(12))
}

async fn create(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
    username: Username,
    full_name: &str,
) -> Result<serde_json::Value, ApiError> {
    let role: Role = serde_json::from_value(change.value["role"].clone())
        .map_err(|_| apply_failed(change, "the role is not known"))?;
    let full_name = crate::login::check_full_name(full_name)?;
    let now = state.now().await?;
    let password = temporary_password();
    let account = Account {
        username: username.clone(),
        full_name,
        role,
        password_hash: hash_password(&password).await?,
        totp_secret: None,
        disabled: false,
        // Set by an administrator: expired, so the owner must change it first.
        password_changed_at: None,
        failed_attempts: 0,
        failure_window_start: None,
        locked_until: None,
        created_at: now,
        version: 0,
        password_history: Vec::new(),
        last_login_at: None,
    };
    state
        .parts()
        .accounts
        .create(&account)
        .await
        .map_err(|e| apply_failed(change, &format!("the account could not be created: {e}")))?;
    let recorded = record(
        state,
        approver,
        change,
        &username,
        EventKind::register(),
        serde_json::json!({
            "username": username.as_str(),
            "full_name": account.full_name,
            "role": role.as_str(),
            "bootstrap": false,
        }),
    )
    .await;
    if let Err(e) = recorded {
        // No unrecorded account may be usable.
        let mut undo = account.clone();
        undo.disabled = true;
        if let Ok(Some(stored)) = state.parts().accounts.get(&username).await {
            undo.version = stored.version;
        }
        if let Err(undo_err) = state.parts().accounts.update(&undo).await {
            tracing::error!(username = %username, error = %undo_err, "could not disable an account whose REGISTER event failed");
        }
        return Err(e);
    }
    tracing::info!(change = %change.id, username = %username, role = %role, "approved account creation applied");
    Ok(serde_json::json!({
        "username": username.as_str(),
        "role": role.as_str(),
        "temporary_password": password.expose(),
        "note": "shown once: hand it to the account's owner, who must change it at the first login",
    }))
}

async fn reset(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
    username: Username,
) -> Result<serde_json::Value, ApiError> {
    let before = existing(state, &username).await?;
    let password = temporary_password();
    let mut after = before.clone();
    let new_hash = hash_password(&password).await?;
    crate::password_policy::rotate(state.config(), &mut after, new_hash);
    after.password_changed_at = None;
    after.failed_attempts = 0;
    after.failure_window_start = None;
    after.locked_until = None;
    update_and_record(
        state,
        approver,
        change,
        before,
        after,
        serde_json::json!({"password_reset": true}),
    )
    .await?;
    tracing::info!(change = %change.id, username = %username, "approved password reset applied");
    Ok(serde_json::json!({
        "username": username.as_str(),
        "temporary_password": password.expose(),
        "note": "shown once: hand it to the account's owner, who must change it at the next login",
    }))
}

async fn status(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
    username: Username,
    disabled: bool,
) -> Result<serde_json::Value, ApiError> {
    let before = existing(state, &username).await?;
    if before.disabled == disabled {
        return Ok(
            serde_json::json!({"username": username.as_str(), "disabled": disabled, "changed": false}),
        );
    }
    let mut after = before.clone();
    after.disabled = disabled;
    update_and_record(
        state,
        approver,
        change,
        before,
        after,
        serde_json::json!({"disabled": disabled}),
    )
    .await?;
    tracing::info!(change = %change.id, username = %username, disabled, "approved status change applied");
    Ok(serde_json::json!({"username": username.as_str(), "disabled": disabled, "changed": true}))
}

async fn existing(state: &ApiState, username: &Username) -> Result<Account, ApiError> {
    state
        .parts()
        .accounts
        .get(username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {username}")))
}

/// Stores `after`, closes the account's sessions, records `ACCOUNT_CHANGED` with `changes`;
/// undone when the event cannot be recorded.
async fn update_and_record(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
    before: Account,
    after: Account,
    changes: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .parts()
        .accounts
        .update(&after)
        .await
        .map_err(|e| apply_failed(change, &format!("the account could not be updated: {e}")))?;
    state.inner.sessions.close_all_of(&after.username);
    let username = after.username.clone();
    let recorded = record(
        state,
        approver,
        change,
        &username,
        EventKind::account_changed(),
        serde_json::json!({"username": username.as_str(), "changes": changes}),
    )
    .await;
    if let Err(e) = recorded {
        crate::login::restore(state, before).await;
        return Err(e);
    }
    Ok(())
}

/// Appends `kind` for `username` with `payload` plus the change's id and proposer.
async fn record(
    state: &ApiState,
    approver: &AuthUser,
    change: &ChangeRequest,
    username: &Username,
    kind: EventKind,
    mut payload: serde_json::Value,
) -> Result<(), ApiError> {
    payload["change_id"] = serde_json::json!(change.id);
    payload["proposer"] = serde_json::json!(change.proposer);
    state
        .append_event(
            TrailId::relay(),
            kind,
            approver.username().as_str(),
            ActorSource::Token,
            Subject::new(format!("account:{username}")).ok(),
            None,
            payload,
        )
        .await
        .map(|_| ())
}
