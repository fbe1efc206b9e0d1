//! `/api/v1/auth/*`: registration (bootstrap, then administrators only), login, password
//! change, logout, TOTP enrolment, and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relay_domain::ports::{Account, AccountStoreError, Role, Username};
use relay_domain::{ActorSource, EventKind, Subject, Timestamp, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, MaybeAuthUser, Password, hash_password};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::ApiState;

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Login name: ASCII letters, digits, `.`, `_`, `-`.
    #[schema(value_type = String, example = "qa.reviewer")]
    pub username: String,
    /// The printed name shown in signature manifestations.
    pub full_name: String,
    /// The password policy applies: at least 12 characters (configurable), a zxcvbn strength
    /// of 3 or more, neither the username nor the printed name inside (422 `weak_password`,
    /// `password_contains_name`).
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// `operator`, `reviewer`, `admin` or `auditor` (the first account must be `admin`).
    #[schema(value_type = String, example = "reviewer")]
    pub role: Role,
    /// Why: required (422 `reason_required`) whenever an administrator creates an account,
    /// and recorded in the `REGISTER` event; not asked of the first administrator registering
    /// themselves.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An account as shown to administrators (no hash, no TOTP secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// Login name.
    pub username: String,
    /// Printed name.
    pub full_name: String,
    /// Role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Until when the account is locked, if it is.
    pub locked_until: Option<String>,
    /// When the password was last changed by its owner (`null`: must be changed at next login).
    pub password_changed_at: Option<String>,
    /// Whether a TOTP second factor is enrolled.
    pub totp_enabled: bool,
    /// When the account was created.
    pub created_at: String,
    /// When the account last logged in successfully (`null`: never).
    pub last_login_at: Option<String>,
    /// Whether the password is temporary (set by an administrator) and must be changed at the
    /// next login before anything else works.
    pub must_change_password: bool,
}

impl AccountView {
    pub(crate) fn of(a: &Account, now: Timestamp) -> Self {
        Self {
            username: a.username.as_str().to_owned(),
            full_name: a.full_name.clone(),
            role: a.role,
            disabled: a.disabled,
            locked_until: a
                .locked_until
                .filter(|u| *u > now)
                .map(Timestamp::to_canonical),
            password_changed_at: a.password_changed_at.map(Timestamp::to_canonical),
            totp_enabled: a.totp_secret.is_some(),
            created_at: a.created_at.to_canonical(),
            last_login_at: a.last_login_at.map(Timestamp::to_canonical),
            must_change_password: a.password_changed_at.is_none(),
        }
    }
}

pub(crate) fn parse_username(s: &str) -> Result<Username, ApiError> {
    Username::new(s).map_err(|e| ApiError::unprocessable("invalid_username", e.to_string()))
}

pub(crate) fn check_full_name(s: &str) -> Result<String, ApiError> {
    let t = s.trim();
    if t.is_empty() || t.len() > 200 || t.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_full_name",
            "full_name must be 1-200 printable characters",
        ));
    }
    Ok(t.to_owned())
}

/// Creates an account: the first one anonymously (it must be an admin), later ones only by an
/// authenticated administrator; never when registration is closed. Shared by
/// `POST /auth/register` and `POST /accounts`.
pub(crate) async fn create_account(
    state: &ApiState,
    by: Option<&AuthUser>,
    req: RegisterRequest,
) -> Result<AccountView, ApiError> {
    if state.config().registration_closed {
        return Err(ApiError::forbidden(
            "registration_closed",
            "registration is closed by configuration",
        ));
    }
    let reason = match by {
        Some(admin) => {
            admin.require(&[Role::Admin], "create accounts")?;
            Some(crate::accounts::require_reason(req.reason.as_deref())?)
        }
        None => None,
    };
    let username = parse_username(&req.username)?;
    let full_name = check_full_name(&req.full_name)?;
    crate::identity::refuse_generic(state.config(), &username)?;
    crate::password_policy::check_new_password(
        state.config(),
        &username,
        &full_name,
        &req.password,
    )?;
    crate::identity::refuse_taken(state, &username, &full_name).await?;
    let now = state.now().await?;
    let bootstrap = by.is_none();
    let second_admin = match by {
        Some(admin) if req.role == Role::Admin => Some(
            crate::four_eyes::second_admin_bootstrap(state, admin, req.reason.as_deref()).await?,
        ),
        Some(_) if crate::four_eyes::is_privileged(req.role) && state.change_store().is_some() => {
            // Whoever creates a signer chooses who can sign: a second administrator approves.
            return Err(crate::four_eyes::required(
                "creating an account that signs",
                "account_create",
                "{\"username\", \"full_name\", \"role\": \"reviewer\"}",
            ));
        }
        _ => None,
    };
    if bootstrap {
        // Cheap early answer; `create_first` below is the atomic check.
        if state.parts().accounts.count().await? > 0 {
            return Err(ApiError::unauthorized(
                "admin_required",
                "accounts exist already; an administrator must create new ones",
            ));
        }
        if req.role != Role::Admin {
            return Err(ApiError::unprocessable(
                "first_account_must_be_admin",
                "the first account must have the admin role",
            ));
        }
    }
    let account = Account {
        username: username.clone(),
        full_name,
        role: req.role,
        password_hash: hash_password(&req.password).await?,
        totp_secret: None,
        disabled: false,
        // A password an administrator chose is known to two people: temporary, so the owner
        // must change it at the first login. The bootstrap administrator chose their own.
        password_changed_at: (bootstrap || !state.config().admin_passwords_temporary)
            .then_some(now),
        failed_attempts: 0,
        failure_window_start: None,
        locked_until: None,
        created_at: now,
        version: 0,
        password_history: Vec::new(),
        last_login_at: None,
    };
    let stored = if bootstrap {
        state.parts().accounts.create_first(&account).await
    } else {
        state.parts().accounts.create(&account).await
    };
    match stored {
        Ok(()) => {}
        Err(AccountStoreError::AlreadyExists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("account {username} already exists"),
            ));
        }
        Err(AccountStoreError::Precondition(_)) => {
            return Err(ApiError::unauthorized(
                "admin_required",
                "accounts exist already; an administrator must create new ones",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let (actor, source) = match by {
        Some(admin) => (admin.username().as_str().to_owned(), ActorSource::Token),
        None => (username.as_str().to_owned(), ActorSource::RelayLogin),
    };
    let mut payload = serde_json::json!({
        "username": username.as_str(),
        "full_name": account.full_name,
        "role": account.role.as_str(),
        "bootstrap": bootstrap,
    });
    if let Some(reason) = &reason {
        payload["reason"] = serde_json::json!(reason);
    }
    if let Some(reason) = &second_admin {
        // The one privileged action one administrator may take alone: flagged for review.
        payload["bootstrap"] = serde_json::json!("second_admin");
        payload["reason"] = serde_json::json!(reason);
    }
    if let Err(e) = state
        .append_event(
            TrailId::relay(),
            EventKind::register(),
            &actor,
            source,
            Subject::new(format!("account:{username}")).ok(),
            None,
            payload,
        )
        .await
    {
        // No unrecorded account may be usable: disable it again before answering.
        let mut undo = account.clone();
        undo.disabled = true;
        if let Err(undo_err) = state.parts().accounts.update(&undo).await {
            tracing::error!(username = %username, error = %undo_err, "could not disable an account whose REGISTER event failed");
        }
        return Err(e);
    }
    tracing::info!(username = %username, role = %account.role, by = %actor, "account registered");
    Ok(AccountView::of(&account, now))
}

/// Registers an account (R3.2).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = AccountView),
        (status = 401, description = "Accounts exist and no administrator is authenticated", body = ErrorBody),
        (status = 403, description = "Registration closed, the caller is not an admin, or a privileged account (admin, reviewer) that needs four eyes (`four_eyes_required`)", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "Invalid fields, or a password that breaks the policy (`weak_password`, `password_contains_name`)", body = ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub(crate) async fn register(
    State(state): State<ApiState>,
    MaybeAuthUser(by): MaybeAuthUser,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let view = create_account(&state, by.as_ref(), req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// What a first start needs to know, asked without a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupView {
    /// Whether `POST /api/v1/auth/register` accepts a registration without a session: only
    /// while no account exists and registration is not closed by configuration.
    pub registration_open: bool,
    /// No account exists yet: registering creates the first administrator.
    pub first_account: bool,
}

/// Whether this relay is at its first start (issue 25): no account yet, so the review UI shows
/// the page that creates the first administrator instead of the login form. Unauthenticated,
/// records nothing and tells nothing but these two booleans.
#[utoipa::path(get, path = "/api/v1/auth/setup", tag = "auth",
    responses(
        (status = 200, description = "Whether registration without a session is open and whether no account exists yet", body = SetupView),
        (status = 503, description = "The account store is unavailable", body = ErrorBody),
    ),
    security(()))]
pub(crate) async fn setup(State(state): State<ApiState>) -> Result<Json<SetupView>, ApiError> {
    let first_account = state.parts().accounts.count().await? == 0;
    Ok(Json(SetupView {
        registration_open: first_account && !state.config().registration_closed,
        first_account,
    }))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// The current TOTP code, when the account has one enrolled.
    pub totp: Option<String>,
}

/// A session token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token (HS256 JWT).
    pub token: String,
    /// Expiry, seconds since the epoch (the session also closes after the idle timeout).
    pub expires_at: u64,
    /// The account logged in.
    pub account: AccountView,
    /// Idle timeout of the session, in seconds.
    pub idle_timeout_secs: u64,
    /// The password was set by an administrator (account creation or reset) and is temporary:
    /// until it is changed with `POST /api/v1/auth/password`, the token is accepted only by
    /// `POST /api/v1/auth/logout`; every other endpoint answers 403 `password_change_required`.
    pub must_change_password: bool,
}

/// Logs in (R3.3): throttled per account and per client address, refused for disabled
/// accounts, 403 when the password has expired. A temporary password (set by an administrator)
/// logs in with `must_change_password: true`: the token then serves only the password change
/// and logout.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; `must_change_password: true` when the password is temporary (set by an administrator) and must be changed before anything else", body = LoginResponse),
        (status = 401, description = "Wrong credentials, TOTP missing or wrong, or account disabled (the same answer)", body = ErrorBody),
        (status = 403, description = "The password has expired (`password_expired`): change it", body = ErrorBody),
        (status = 429, description = "`locked`: the account (or the typed name) is locked after repeated failures; or `too_many_attempts`: this client address failed too many logins (default 30 in 5 minutes) and is refused before any password check, whatever the username. Both carry Retry-After and are recorded as `LOGIN_FAILED`", body = ErrorBody),
        (status = 503, description = "Too many password checks in progress (`busy`); see Retry-After", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<ApiState>,
    client: crate::client::ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let typed: String = req.username.chars().take(128).collect();
    let mut refused_in_window = None;
    let result = match admit_client(&state, &client) {
        Ok(attempt) => {
            let known = attempt.known();
            let result = crate::password_gate::with_priority(known, login_inner(&state, req)).await;
            end_attempt(attempt, &result);
            result
        }
        Err(refusal) => {
            refused_in_window = Some(refusal.refused_in_window);
            Err(refusal.answer)
        }
    };
    match &result {
        Ok(ok) => {
            for (session, user) in &ok.swept {
                state
                    .record_session_expired(
                        user,
                        session,
                        crate::session_audit::Expiry::Swept,
                        &client,
                    )
                    .await;
            }
            // A session nobody can see in the trail must not exist.
            let mut payload = client.json();
            payload["username"] = serde_json::json!(ok.account.username);
            payload["role"] = serde_json::json!(ok.account.role);
            payload["session"] = serde_json::json!(ok.session_id);
            if let Err(e) = state
                .append_event(
                    TrailId::relay(),
                    EventKind::login(),
                    &ok.account.username,
                    ActorSource::RelayLogin,
                    Subject::new(format!("account:{}", ok.account.username)).ok(),
                    None,
                    payload,
                )
                .await
            {
                state.inner.sessions.close(&ok.session_id);
                return Err(e);
            }
        }
        Err(e)
            if e.status == StatusCode::UNAUTHORIZED
                || e.status == StatusCode::TOO_MANY_REQUESTS =>
        {
            state.parts().metrics.login_failures.inc();
            // A refusal by the per-client limit costs no password check, so one address can
            // make thousands a second: the trail keeps the 1st, 2nd, 4th, 8th, ... of each
            // window with the count so far (the metric counts every one), instead of growing
            // by thousands of records a second.
            if refused_in_window.is_some_and(|n| !n.is_power_of_two()) {
                return result.map(|ok| Json(ok.response));
            }
            let mut payload = client.json();
            payload["username"] = serde_json::json!(typed);
            payload["answer"] = serde_json::json!(e.code);
            if let Some(n) = refused_in_window {
                payload["refused_in_window"] = serde_json::json!(n);
            }
            // The refusal stands whatever happens to its record; a record that cannot be
            // written is counted (audit_write_failures) and logged by append_event's caller.
            if let Err(record_error) = state
                .append_event(
                    TrailId::relay(),
                    EventKind::login_failed(),
                    crate::RELAY_ACTOR,
                    ActorSource::System,
                    None,
                    None,
                    payload,
                )
                .await
            {
                tracing::error!(
                    code = record_error.code,
                    "a refused login could not be recorded as LOGIN_FAILED"
                );
            }
        }
        Err(_) => {}
    }
    result.map(|ok| Json(ok.response))
}

/// A check refused by the per-client failure limit.
struct ClientRefusal {
    /// 429 `too_many_attempts`.
    answer: ApiError,
    /// Refusals of the client in its window, this one included.
    refused_in_window: u64,
}

/// Admits a password check from `client` under the per-client failure limit, or answers 429
/// `too_many_attempts` at once (counted in `login_client_refusals`), before any password work.
fn admit_client<'s>(
    state: &'s ApiState,
    client: &crate::client::ClientInfo,
) -> Result<crate::client_limit::ClientAttempt<'s>, ClientRefusal> {
    let key = client.ip.map(crate::client_limit::ClientKey::of);
    state
        .inner
        .client_failures
        .admit(key, std::time::Instant::now())
        .map_err(|refused| {
            state.parts().metrics.login_client_refusals.inc();
            if refused.refused_in_window.is_power_of_two() {
                tracing::info!(
                    client = client.address.as_deref().unwrap_or(""),
                    retry_after = refused.retry_after,
                    refused_in_window = refused.refused_in_window,
                    "password check refused: the client failed too many logins"
                );
            }
            ClientRefusal {
                answer: ApiError::too_many_attempts(refused.retry_after),
                refused_in_window: refused.refused_in_window,
            }
        })
}

/// Ends an admitted check: counted against its client when the credentials failed (a wrong
/// password, unknown name, wrong TOTP or disabled account, or a lockout answer); the client
/// becomes known when they were right.
fn end_attempt<T>(attempt: crate::client_limit::ClientAttempt<'_>, result: &Result<T, ApiError>) {
    match result {
        Ok(_) => attempt.succeeded(std::time::Instant::now()),
        Err(e) if matches!(e.code, "invalid_credentials" | "invalid_totp" | "locked") => {
            attempt.failed(std::time::Instant::now());
        }
        Err(_) => {}
    }
}

/// A login that succeeded: the answer and the session it opened.
struct LoggedIn {
    response: LoginResponse,
    account: LoggedInAccount,
    session_id: String,
    /// Idle sessions swept when this one opened.
    swept: Vec<(String, Username)>,
}

/// Who logged in, for the `LOGIN` event.
struct LoggedInAccount {
    username: String,
    role: &'static str,
}

async fn login_inner(state: &ApiState, req: LoginRequest) -> Result<LoggedIn, ApiError> {
    // Before the account is read: the same answer for every name, and a flood answered
    // `busy` costs no store read (which slowed the logins of known clients during a flood).
    crate::auth::refuse_if_busy()?;
    let now = state.now().await?;
    let invalid = || ApiError::unauthorized("invalid_credentials", "wrong username or password");
    let account = match Username::new(req.username.clone()) {
        Ok(name) => state.parts().accounts.get(&name).await?,
        Err(_) => None,
    };
    let Some(mut account) = account else {
        tracing::info!("login failed: unknown username");
        return Err(state
            .refuse_unknown(&req.username, &req.password, now)
            .await);
    };
    state
        .check_credentials(
            &mut account,
            &req.password,
            req.totp.as_deref(),
            now,
            "login",
        )
        .await
        .inspect_err(|e| {
            tracing::info!(username = %account.username, code = e.code, "login failed");
        })?;
    if account.disabled {
        // Answered and counted as a wrong password: the answer does not tell that the
        // password was right, nor that the account exists.
        tracing::info!(username = %account.username, "login refused: the account is disabled");
        return Err(state
            .count_failure(&account.username, now, "login", invalid())
            .await);
    }
    let max_age = i64::try_from(state.config().password_max_age.as_micros()).unwrap_or(i64::MAX);
    // `None`: set by an administrator, temporary; the session opens for the change only.
    let must_change_password = account.password_changed_at.is_none();
    let expired = account
        .password_changed_at
        .is_some_and(|at| now.micros_since(at) > max_age);
    if expired {
        return Err(ApiError::forbidden(
            "password_expired",
            "the password has expired; change it with POST /api/v1/auth/password",
        ));
    }
    record_last_login(state, &mut account, now).await?;
    let (token, expires_at, session_id, swept) = state.issue_token(&account.username, now)?;
    tracing::info!(username = %account.username, "logged in");
    Ok(LoggedIn {
        response: LoginResponse {
            token,
            expires_at,
            account: AccountView::of(&account, now),
            idle_timeout_secs: state.config().session_idle_timeout.as_secs(),
            must_change_password,
        },
        account: LoggedInAccount {
            username: account.username.as_str().to_owned(),
            role: account.role.as_str(),
        },
        session_id,
        swept,
    })
}

/// Stores `now` as the account's last login (retried once over a concurrent change).
async fn record_last_login(
    state: &ApiState,
    account: &mut Account,
    now: Timestamp,
) -> Result<(), ApiError> {
    for _ in 0..3 {
        account.last_login_at = Some(now);
        match state.parts().accounts.update(account).await {
            Ok(version) => {
                account.version = version;
                return Ok(());
            }
            Err(AccountStoreError::Precondition(_)) => {
                if let Some(fresh) = state.parts().accounts.get(&account.username).await? {
                    *account = fresh;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the account is being changed concurrently; retry",
    ))
}

/// A password change by the account's owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// Login name.
    pub username: String,
    /// The current password.
    #[schema(value_type = String, format = Password)]
    pub old_password: Password,
    /// The new password: the password policy applies (at least 12 characters, zxcvbn strength
    /// 3 or more, no username or printed name inside) and it must differ from the account's
    /// last 5 passwords (configurable): 422 `weak_password`, `password_contains_name`,
    /// `password_unchanged` or `password_reused`.
    #[schema(value_type = String, format = Password)]
    pub new_password: Password,
    /// The TOTP code, when enrolled.
    pub totp: Option<String>,
}

/// Changes a password (also when it has expired); closes the account's other sessions.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "Wrong credentials", body = ErrorBody),
        (status = 422, description = "The new password breaks the policy: `weak_password`, `password_contains_name`, `password_unchanged` (the current one) or `password_reused` (one of the last N)", body = ErrorBody),
        (status = 429, description = "`locked`: the account is locked; or `too_many_attempts`: this client address failed too many logins or password changes and is refused before any password check. See Retry-After", body = ErrorBody),
        (status = 503, description = "Too many password checks in progress (`busy`); see Retry-After", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<ApiState>,
    client: crate::client::ClientInfo,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    // The old password is checked like a login's, so it counts against the same per-client
    // limit: otherwise a client refused at login could go on guessing here.
    let attempt = admit_client(&state, &client).map_err(|refusal| refusal.answer)?;
    let known = attempt.known();
    let result =
        crate::password_gate::with_priority(known, change_password_inner(&state, req)).await;
    end_attempt(attempt, &result);
    result
}

async fn change_password_inner(
    state: &ApiState,
    req: ChangePasswordRequest,
) -> Result<StatusCode, ApiError> {
    crate::auth::refuse_if_busy()?;
    let now = state.now().await?;
    let invalid = || ApiError::unauthorized("invalid_credentials", "wrong username or password");
    let account = match Username::new(req.username.clone()) {
        Ok(name) => state.parts().accounts.get(&name).await?,
        Err(_) => None,
    };
    let Some(mut account) = account else {
        return Err(state
            .refuse_unknown(&req.username, &req.old_password, now)
            .await);
    };
    state
        .check_credentials(
            &mut account,
            &req.old_password,
            req.totp.as_deref(),
            now,
            "password_change",
        )
        .await?;
    if account.disabled {
        tracing::info!(username = %account.username, "password change refused: the account is disabled");
        return Err(state
            .count_failure(&account.username, now, "password_change", invalid())
            .await);
    }
    crate::password_policy::check_new_password(
        state.config(),
        &account.username,
        &account.full_name,
        &req.new_password,
    )?;
    if crate::auth::verify_password(&account.password_hash, &req.new_password).await? {
        return Err(ApiError::unprocessable(
            "password_unchanged",
            "the new password must differ from the old one",
        ));
    }
    crate::password_policy::refuse_reuse(state.config(), &account, &req.new_password).await?;
    let before = account.clone();
    let new_hash = hash_password(&req.new_password).await?;
    crate::password_policy::rotate(state.config(), &mut account, new_hash);
    account.password_changed_at = Some(now);
    state.parts().accounts.update(&account).await?;
    state.inner.sessions.close_all_of(&account.username);
    let recorded = state
        .append_event(
            TrailId::relay(),
            EventKind::account_changed(),
            account.username.as_str(),
            ActorSource::RelayLogin,
            Subject::new(format!("account:{}", account.username)).ok(),
            None,
            serde_json::json!({"username": account.username.as_str(), "changes": {"password_changed": true}}),
        )
        .await;
    if let Err(e) = recorded {
        restore(state, before).await;
        return Err(e);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Puts an account back as it was after its change could not be recorded.
pub(crate) async fn restore(state: &ApiState, mut before: Account) {
    match state.parts().accounts.get(&before.username).await {
        Ok(Some(now)) => {
            before.version = now.version;
            if let Err(e) = state.parts().accounts.update(&before).await {
                tracing::error!(username = %before.username, error = %e, "could not undo an unrecorded account change");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(username = %before.username, error = %e, "could not undo an unrecorded account change");
        }
    }
}

/// Closes the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out"), (status = 401, description = "Not logged in", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn logout(
    State(state): State<ApiState>,
    client: crate::client::ClientInfo,
    crate::auth::SessionUser(user): crate::auth::SessionUser,
) -> Result<StatusCode, ApiError> {
    state.inner.sessions.close(&user.jti);
    let mut payload = client.json();
    payload["username"] = serde_json::json!(user.username().as_str());
    payload["role"] = serde_json::json!(user.account.role.as_str());
    payload["session"] = serde_json::json!(user.jti);
    state
        .append_event(
            TrailId::relay(),
            EventKind::logout(),
            user.username().as_str(),
            ActorSource::Token,
            Subject::new(format!("account:{}", user.username())).ok(),
            None,
            payload,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = AccountView), (status = 401, description = "Not logged in", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn me(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<AccountView>, ApiError> {
    let now = state.now().await?;
    Ok(Json(AccountView::of(&user.account, now)))
}

/// Password confirmation for TOTP enrolment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolRequest {
    /// The caller's password.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
}

/// A new TOTP secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolResponse {
    /// The base32 secret for an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI (SHA1, 6 digits, 30 s).
    pub otpauth_uri: String,
}

/// Enrols a TOTP second factor for the caller (replacing any previous one).
#[utoipa::path(post, path = "/api/v1/auth/totp", tag = "auth", request_body = TotpEnrolRequest,
    responses(
        (status = 200, description = "Enrolled; later logins need a code", body = TotpEnrolResponse),
        (status = 401, description = "Not logged in or wrong password", body = ErrorBody),
        (status = 429, description = "Locked; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn enrol_totp(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<TotpEnrolRequest>,
) -> Result<Json<TotpEnrolResponse>, ApiError> {
    let now = state.now().await?;
    // Enrolment replaces a factor: the password alone is checked (a lost phone is the case).
    let mut check = user.account.clone();
    // A signed-in user: the check queues as a priority check (a login flood does not refuse it).
    crate::password_gate::with_priority(
        true,
        state.check_password_only(&mut check, &req.password, now, "totp_enrolment"),
    )
    .await?;
    let mut account = state
        .parts()
        .accounts
        .get(user.username())
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "the account no longer exists"))?;
    let mut raw = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let secret = match totp_rs::Secret::Raw(raw.to_vec()).to_encoded() {
        totp_rs::Secret::Encoded(s) => s,
        totp_rs::Secret::Raw(_) => {
            return Err(ApiError::internal(
                "TOTP secret encoding failed",
                &std::fmt::Error,
            ));
        }
    };
    let before = account.clone();
    account.totp_secret = Some(state.seal_totp(&account.username, &secret).await?);
    state.parts().accounts.update(&account).await?;
    let recorded = state
        .append_event(
            TrailId::relay(),
            EventKind::account_changed(),
            account.username.as_str(),
            ActorSource::Token,
            Subject::new(format!("account:{}", account.username)).ok(),
            None,
            serde_json::json!({"username": account.username.as_str(), "changes": {"totp_enrolled": true}}),
        )
        .await;
    if let Err(e) = recorded {
        restore(&state, before).await;
        return Err(e);
    }
    let otpauth_uri = format!(
        "otpauth://totp/GIMS%20Relay:{user}?secret={secret}&issuer=GIMS%20Relay&algorithm=SHA1&digits=6&period=30",
        user = account.username
    );
    Ok(Json(TotpEnrolResponse {
        secret,
        otpauth_uri,
    }))
}
