//! `GET /api/v1/changes/settings`: every four-eyes setting with the value this relay runs with,
//! its type and bounds, so the UI proposes a change with a form per setting (issue 25) instead
//! of typed JSON.
//!
//! It only describes: the proposal (`POST /api/v1/changes`) keeps validating every value. Read
//! by administrators (who propose); recorded as `ACCESS` in `_relay` before the answer, like the
//! other reads. Its cost is constant: the runtime's settings held in memory and one read of the
//! change store's newest requests (at most 200) for the pending proposals.

use axum::Json;
use axum::extract::State;
use relay_domain::ports::{ChangeSetting, ChangeState, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::changes::Applies;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, MAX_API_INTEGER};
use crate::state::ApiState;

/// Which settings to describe.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SettingsQuery {
    /// Only this setting (e.g. `settle_ms`); every setting when absent.
    pub setting: Option<String>,
}

/// One four-eyes setting as the change form shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingView {
    /// The setting's name, as `POST /api/v1/changes` takes it.
    pub setting: String,
    /// What it governs, in words.
    pub description: String,
    /// The form it takes: `integer`, `boolean`, `text`, `path_list`, `digest`, `workflow`,
    /// `account_role`, `account_create`, `account_password_reset`, `account_status`,
    /// `ingest_token` or `enrollment_code`.
    pub kind: String,
    /// The unit of an `integer` (`ms`, `s`, `days`), or of `ttl_minutes` (`min`).
    pub unit: Option<String>,
    /// The smallest integer accepted.
    pub min: Option<u64>,
    /// The largest integer accepted.
    pub max: Option<u64>,
    /// The choices of its enumerated part (roles, `issue` / `revoke`, `strict` / `relaxed`).
    pub options: Vec<String>,
    /// The value's shape in JSON, as a refusal of `POST /api/v1/changes` names it.
    pub expected: String,
    /// `now` (applied at approval), `at_restart` (at the relay's next start) or `not_here`
    /// (proposals are refused on this relay).
    pub applies: String,
    /// When approved, when it takes effect, in words (or why it cannot be changed here).
    pub takes_effect: String,
    /// The value this relay runs with; `null` when it is per account or edge (see
    /// `current_note`) or not known to the API.
    #[schema(value_type = Option<Value>)]
    pub current: Option<serde_json::Value>,
    /// Where the current value is, when `current` is `null`.
    pub current_note: Option<String>,
    /// The pending (not expired) proposals of this setting, newest first.
    pub pending: Vec<String>,
}

fn roles() -> Vec<String> {
    ["operator", "reviewer", "admin", "auditor"]
        .map(String::from)
        .to_vec()
}

/// A setting's form, unit, bounds, choices and description.
type Shape = (
    &'static str,
    Option<&'static str>,
    Option<(u64, u64)>,
    Vec<String>,
    &'static str,
);

/// The form, unit, bounds, choices and description of `setting`.
fn shape(setting: ChangeSetting) -> Shape {
    let whole = Some((1, MAX_API_INTEGER));
    match setting {
        ChangeSetting::WatchRoots => (
            "path_list",
            None,
            None,
            vec![],
            "The folders the edge watches (absolute paths, at least one).",
        ),
        ChangeSetting::SettleMs => (
            "integer",
            Some("ms"),
            whole,
            vec![],
            "How long a file must stay unchanged before its capture is recorded.",
        ),
        ChangeSetting::NotaryTarget => (
            "text",
            None,
            None,
            vec![],
            "Where trail heads are notarized.",
        ),
        ChangeSetting::NotaryIntervalSecs => (
            "integer",
            Some("s"),
            whole,
            vec![],
            "How often trail heads are notarized.",
        ),
        ChangeSetting::RetentionDays => (
            "integer",
            Some("days"),
            whole,
            vec![],
            "How long records and packages are retained.",
        ),
        ChangeSetting::IngestToken => (
            "ingest_token",
            None,
            None,
            ["issue", "revoke"].map(String::from).to_vec(),
            "Issue or revoke an edge's ingest token.",
        ),
        ChangeSetting::AccountRole => ("account_role", None, None, roles(), "An account's role."),
        ChangeSetting::AccountCreate => (
            "account_create",
            None,
            None,
            roles(),
            "A new account with a privileged role; the approver is shown its temporary password once.",
        ),
        ChangeSetting::AccountPasswordReset => (
            "account_password_reset",
            None,
            None,
            vec![],
            "A temporary password for an account; the approver is shown it once.",
        ),
        ChangeSetting::AccountStatus => (
            "account_status",
            None,
            None,
            vec![],
            "Disabling or re-enabling an account.",
        ),
        ChangeSetting::RegistrationClosed => (
            "boolean",
            None,
            None,
            vec![],
            "Whether self-registration is closed.",
        ),
        ChangeSetting::ConfigBaseline => (
            "digest",
            None,
            None,
            vec![],
            "Accept the configuration found at start-up (the digest a CONFIG_DRIFT event named) as the approved one.",
        ),
        ChangeSetting::SigningWorkflow => (
            "workflow",
            None,
            None,
            ["strict", "relaxed"].map(String::from).to_vec(),
            "The signing workflow's rules.",
        ),
        ChangeSetting::EnrollmentCode => (
            "enrollment_code",
            Some("min"),
            Some((1, crate::fleet::MAX_CODE_MINUTES)),
            vec![],
            "A one-time enrollment code for an edge; the approver is shown it once.",
        ),
        _ => ("json", None, None, vec![], "A setting without a form."),
    }
}

/// The value this relay runs with, or where it is instead.
fn current(
    state: &ApiState,
    targets: &crate::changes::ChangeTargets,
    setting: ChangeSetting,
) -> (Option<serde_json::Value>, Option<String>) {
    let config = state.config();
    match setting {
        ChangeSetting::RegistrationClosed => (
            Some(serde_json::Value::Bool(config.registration_closed)),
            None,
        ),
        ChangeSetting::SigningWorkflow => {
            (serde_json::to_value(config.signing_workflow).ok(), None)
        }
        ChangeSetting::AccountRole
        | ChangeSetting::AccountCreate
        | ChangeSetting::AccountPasswordReset
        | ChangeSetting::AccountStatus => (
            None,
            Some("per account: see the account list (GET /api/v1/accounts)".into()),
        ),
        ChangeSetting::IngestToken | ChangeSetting::EnrollmentCode => (
            None,
            Some("per edge: see the fleet (GET /api/v1/fleet)".into()),
        ),
        _ => match targets.current_value(setting) {
            Some(v) => (Some(v.clone()), None),
            None => (
                None,
                Some("not reported to the API by this relay's runtime".into()),
            ),
        },
    }
}

/// Every four-eyes setting with its current value, form and bounds (administrators); logged
/// as `ACCESS`.
#[utoipa::path(get, path = "/api/v1/changes/settings", tag = "changes", params(SettingsQuery),
    responses(
        (status = 200, description = "The settings in a stable order, each with the value this relay runs with", body = [SettingView]),
        (status = 400, description = "Unknown query parameter or unknown setting", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Four-eyes changes are not enabled, or the audit trail cannot be written; nothing was answered", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn settings(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<SettingsQuery>,
) -> Result<Json<Vec<SettingView>>, ApiError> {
    user.require(&[Role::Admin], "read the configuration settings")?;
    let only: Option<ChangeSetting> = match query.setting.as_deref() {
        None => None,
        Some(name) => Some(name.parse().map_err(|e: String| ApiError::bad_request(e))?),
    };
    let changes = crate::changes::store(&state)?;
    let now = state.now().await?;
    let requests = changes.list(200).await?;
    let targets = state.change_targets();
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "read_change_settings",
                "setting": only.map(ChangeSetting::as_str),
            }),
        )
        .await?;
    let views = ChangeSetting::ALL
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
        .map(|setting| {
            let (kind, unit, bounds, options, description) = shape(setting);
            let applies = targets.applies(setting);
            let (applies_code, takes_effect) = match &applies {
                Applies::Now => ("now", "at once, when approved".to_owned()),
                Applies::AtRestart => (
                    "at_restart",
                    "at the relay's next start after approval (restart required)".to_owned(),
                ),
                Applies::NotHere(why) => ("not_here", format!("not on this relay: {why}")),
            };
            let (current, current_note) = current(&state, &targets, setting);
            SettingView {
                setting: setting.as_str().to_owned(),
                description: description.to_owned(),
                kind: kind.to_owned(),
                unit: unit.map(String::from),
                min: bounds.map(|b| b.0),
                max: bounds.map(|b| b.1),
                options,
                expected: setting.expected().to_owned(),
                applies: applies_code.to_owned(),
                takes_effect,
                current,
                current_note,
                pending: requests
                    .iter()
                    .filter(|r| {
                        r.setting == setting
                            && r.state == ChangeState::Pending
                            && !r.is_expired(now)
                    })
                    .map(|r| r.id.clone())
                    .collect(),
            }
        })
        .collect();
    Ok(Json(views))
}
