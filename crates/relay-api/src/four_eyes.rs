//! Four-eyes rules for privileged account actions (issue 18, item 1).
//!
//! Where four-eyes changes are enabled, one administrator alone cannot:
//!
//! - create an account with a privileged role, an administrator or a reviewer (who signs)
//!   (`account_create`), except the bootstrap: while the installation has exactly one enabled
//!   administrator, that one may create a second administrator alone, with a reason, recorded
//!   as `"bootstrap": "second_admin"` on its `REGISTER` event;
//! - grant a privileged role, or take away the admin role (`account_role`);
//! - reset the password of another administrator or of a reviewer: `account_password_reset`;
//! - disable or re-enable an administrator, or re-enable a reviewer: `account_status`.
//!
//! Taking a privilege away (disabling a reviewer, making a reviewer an operator) stays a
//! one-administrator action: it can only narrow who can sign.
//!
//! Each goes through `/api/v1/changes`, approved by a *different* administrator who existed
//! when the request was proposed and whom the request does not concern. Refusals name the
//! rule (`four_eyes_required`, `approver_newer_than_request`, `concerns_approver`).

use relay_domain::ports::{Account, ChangeRequest, Role, Username};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::ApiState;

/// Whether `role` is privileged: administrators (who manage accounts) and reviewers (who sign;
/// whoever sets a signer's password or creates a signer can sign as them).
pub(crate) fn is_privileged(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Reviewer)
}

/// The refusal of a privileged action taken alone, naming the change to propose instead.
pub(crate) fn required(what: &str, setting: &str, value: &str) -> ApiError {
    ApiError::forbidden(
        "four_eyes_required",
        format!(
            "{what} needs a four-eyes change: propose {setting} {value} at /api/v1/changes for \
             a second administrator to approve"
        ),
    )
}

/// Allows `admin` to create an administrator alone only as the bootstrap of four-eyes
/// (exactly one enabled administrator today) and with a reason, returned for the record.
pub(crate) async fn second_admin_bootstrap(
    state: &ApiState,
    admin: &AuthUser,
    reason: Option<&str>,
) -> Result<String, ApiError> {
    admin.require(&[Role::Admin], "create accounts")?;
    if state.change_store().is_none() {
        // Four-eyes changes are not enabled on this relay: nothing to bootstrap.
        return Ok(reason.unwrap_or("").to_owned());
    }
    let admins = state
        .parts()
        .accounts
        .list()
        .await?
        .into_iter()
        .filter(|a| a.role == Role::Admin && !a.disabled)
        .count();
    if admins != 1 {
        return Err(required(
            "creating an administrator",
            "account_create",
            "{\"username\", \"full_name\", \"role\": \"admin\"}",
        ));
    }
    match reason.map(str::trim) {
        Some(r) if !r.is_empty() && r.chars().count() <= 1000 => Ok(r.to_owned()),
        _ => Err(ApiError::unprocessable(
            "reason_required",
            "the only administrator may create a second one alone (the bootstrap of four-eyes), \
             with a reason (1-1000 characters); every later privileged action needs two",
        )),
    }
}

/// Checks that `approver` may approve `request`: they existed when it was proposed (an account
/// approved into existence, or made after a proposal, cannot approve it) and it does not
/// concern them.
pub(crate) fn check_approver(approver: &Account, request: &ChangeRequest) -> Result<(), ApiError> {
    if approver.created_at > request.created_at {
        return Err(ApiError::forbidden(
            "approver_newer_than_request",
            format!(
                "change request {} was proposed at {}, before the account {} existed; only an \
                 administrator who existed then may approve it",
                request.id,
                request.created_at.to_canonical(),
                approver.username
            ),
        ));
    }
    if concerned_account(request).is_some_and(|u| u == approver.username) {
        if request.setting == relay_domain::ports::ChangeSetting::AccountRole {
            return Err(ApiError::forbidden(
                "own_role",
                "an administrator cannot approve a change of their own role",
            ));
        }
        return Err(ApiError::forbidden(
            "concerns_approver",
            format!(
                "change request {} concerns the account {}; another administrator must approve it",
                request.id, approver.username
            ),
        ));
    }
    Ok(())
}

/// The account an account change names, if it names one.
fn concerned_account(request: &ChangeRequest) -> Option<Username> {
    use relay_domain::ports::ChangeSetting as S;
    match request.setting {
        S::AccountRole | S::AccountCreate | S::AccountPasswordReset | S::AccountStatus => request
            .value
            .get("username")
            .and_then(serde_json::Value::as_str)
            .and_then(|u| Username::new(u.to_owned()).ok()),
        _ => None,
    }
}
