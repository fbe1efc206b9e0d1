//! Authentication: Argon2id passwords, HS256 tokens, sessions, lockout and TOTP (R2.1, R3).
//!
//! The actor of every call comes from a verified token (or, for login and bootstrap, from the
//! password just checked); no header other than `Authorization: Bearer` is ever read for it.

use std::fmt;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Block, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use relay_domain::ports::{Account, Role, SecretValue, TotpSecret, Username};
use relay_domain::{ActorSource, EventKind, Subject, Timestamp, TrailId};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use crate::client::ClientInfo;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::session_audit::Expiry;
use crate::state::{ApiState, SessionRefusal};

/// A password as received: wiped on drop, never printed.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    /// The text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(String::deserialize(d)?))
    }
}

/// `n` random bytes as hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

thread_local! {
    /// This thread's Argon2 working memory (19 MiB at the default cost), allocated once and
    /// reused by every computation on the thread. Allocating it per computation let the
    /// allocator keep several copies per thread after a few logins (glibc raises its mmap
    /// threshold past the freed block, so the next ones land in the thread's arena and stay):
    /// 222 MiB resident after a dozen logins on a 2-core relay, measured with
    /// `relay-bench login-flood`.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Largest working memory kept between computations, in blocks of 1 KiB: twice the default
/// cost. A stored hash asking for more is computed in memory allocated for it alone.
const KEPT_ARGON2_BLOCKS: usize = 2 * Params::DEFAULT_M_COST as usize;

/// Computes `argon2` over `password` and `salt` into `out` in this thread's reusable working
/// memory, which is wiped afterwards (it holds password-derived blocks).
fn argon2_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = argon2.params().block_count();
    if needed > KEPT_ARGON2_BLOCKS {
        let mut blocks = vec![Block::default(); needed];
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut blocks);
        blocks.fill(Block::default());
        return result;
    }
    ARGON2_MEMORY.with_borrow_mut(|blocks| {
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        let memory = &mut blocks[..needed];
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut *memory);
        memory.fill(Block::default());
        result
    })
}

/// Hashes `password` with Argon2id at the crate's default cost (m=19 MiB, t=2, p=1) and a
/// fresh 128-bit salt; returns the PHC string. CPU-heavy: call from a blocking thread.
pub fn hash_password_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt_string = SaltString::encode_b64(&salt)?;
    let argon2 = Argon2::default();
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    argon2_into(&argon2, password.as_bytes(), &salt, out.as_mut_slice())?;
    // The PHC string `Argon2::hash_password` writes, computed in the reused memory.
    let hash = PasswordHash {
        algorithm: Argon2Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(out.as_slice())?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash` (constant-time comparison of the outputs).
/// The algorithm, version and parameters are read from the hash, so hashes made at an older
/// cost still verify.
pub fn verify_password_blocking(hash: &str, password: &str) -> bool {
    match verify_phc(hash, password) {
        Ok(matches) => matches,
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is malformed");
            false
        }
    }
}

/// [`verify_password_blocking`], with what makes the hash unusable as an error.
fn verify_phc(hash: &str, password: &str) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(hash)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Argon2Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    argon2_into(&argon2, password.as_bytes(), salt, out.as_mut_slice())?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(out.as_slice())? == expected)
}

/// Every Argon2 computation of the process passes this gate: one per core at a time, a short
/// queue, 503 beyond it (a login flood costs neither memory nor the other requests' time).
static ARGON2: std::sync::LazyLock<crate::password_gate::Argon2Gate> =
    std::sync::LazyLock::new(crate::password_gate::Argon2Gate::for_this_machine);

/// 503 `busy` at once when a password check of the current task would be refused by the gate
/// anyway (its queue is full), before any other work.
pub(crate) fn refuse_if_busy() -> Result<(), ApiError> {
    ARGON2.refuse_if_full()
}

pub(crate) async fn hash_password(password: &Password) -> Result<String, ApiError> {
    let password = password.clone();
    match ARGON2
        .run("password hashing failed", move || {
            hash_password_blocking(password.expose())
        })
        .await?
    {
        Ok(hash) => Ok(hash),
        Err(e) => Err(ApiError::internal("password hashing failed", &e)),
    }
}

pub(crate) async fn verify_password(hash: &str, password: &Password) -> Result<bool, ApiError> {
    let hash = hash.to_owned();
    let password = password.clone();
    ARGON2
        .run("password verification failed", move || {
            verify_password_blocking(&hash, password.expose())
        })
        .await
}

/// The claims of a relay token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// The session id.
    pub jti: String,
}

/// The token key and the validation rules pinned by the server.
pub(crate) struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub(crate) fn new(secret: &SecretValue, config: &ApiConfig) -> Self {
        // Only HS256, whatever a token's header says: `alg: none`, RS256 (key confusion) and
        // every other algorithm are refused by the validation itself.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            kid: secret.id().as_str().to_owned(),
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
        }
    }
}

/// A token, its expiry, its session id, and the idle sessions swept when it opened.
pub(crate) type IssuedToken = (String, u64, String, Vec<(String, Username)>);

fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.unix_micros() / 1_000_000).unwrap_or(0)
}

impl ApiState {
    /// Issues a token for `username` and opens its session; returns the token, its expiry,
    /// the session id and the idle sessions swept meanwhile (for `SESSION_EXPIRED`).
    pub(crate) fn issue_token(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<IssuedToken, ApiError> {
        let keys = &self.inner.tokens;
        let iat = secs(now);
        let exp = iat + self.config().token_ttl.as_secs();
        let claims = Claims {
            sub: username.as_str().to_owned(),
            iss: self.config().issuer.clone(),
            aud: self.config().audience.clone(),
            exp,
            iat,
            jti: random_hex(16),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.encoding)
            .map_err(|e| ApiError::internal("token signing failed", &e))?;
        let swept = self
            .inner
            .sessions
            .open(claims.jti.clone(), username.clone());
        Ok((token, exp, claims.jti, swept))
    }

    /// The claims of a token whose only fault is its expiry (signature, key and other claims
    /// valid), to name the session that expired.
    fn decode_expired(&self, token: &str) -> Option<Claims> {
        let keys = &self.inner.tokens;
        let mut validation = keys.validation.clone();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &validation).ok()?;
        (data.header.kid.as_deref() == Some(keys.kid.as_str())).then_some(data.claims)
    }

    /// Verifies a token's signature, algorithm, claims and key id.
    pub(crate) fn decode_token(&self, token: &str, now: Timestamp) -> Result<Claims, ApiError> {
        let keys = &self.inner.tokens;
        let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the token has expired; log in again")
                }
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            })?;
        if data.header.kid.as_deref() != Some(keys.kid.as_str()) {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the token was signed with another key",
            ));
        }
        if data.claims.iat > secs(now) + keys.validation.leeway {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the token was issued in the future",
            ));
        }
        Ok(data.claims)
    }

    /// 429 when `account` is locked at `now`.
    pub(crate) fn ensure_not_locked(
        &self,
        account: &Account,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        match account.locked_until {
            Some(until) if until > now => {
                let left = (until.micros_since(now) + 999_999) / 1_000_000;
                Err(ApiError::locked(u64::try_from(left).unwrap_or(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed password (login or signature) against `username`; at the threshold the
    /// account is locked and a `LOCKOUT` event recorded. Returns the error to answer.
    pub(crate) async fn count_failure(
        &self,
        username: &Username,
        now: Timestamp,
        during: &'static str,
        answer: ApiError,
    ) -> ApiError {
        let config = self.config();
        let window = i64::try_from(config.lockout_window.as_micros()).unwrap_or(i64::MAX);
        let lock_for = i64::try_from(config.lockout_duration.as_micros()).unwrap_or(i64::MAX);
        // Checks of one account are serialized in this process; a conflict means another
        // process (a second server on the same database) or an administrator changed the row.
        for _ in 0..20 {
            let mut account = match self.parts().accounts.get(username).await {
                Ok(Some(a)) => a,
                Ok(None) => return answer,
                Err(e) => return e.into(),
            };
            let in_window = account
                .failure_window_start
                .is_some_and(|start| now.micros_since(start) <= window);
            if in_window {
                account.failed_attempts = account.failed_attempts.saturating_add(1);
            } else {
                account.failed_attempts = 1;
                account.failure_window_start = Some(now);
            }
            let locking = account.failed_attempts >= config.lockout_threshold;
            let attempts = account.failed_attempts;
            if locking {
                let until = Timestamp::from_unix_micros(now.unix_micros().saturating_add(lock_for))
                    .unwrap_or(now);
                account.locked_until = Some(until);
                account.failed_attempts = 0;
                account.failure_window_start = None;
            }
            match self.parts().accounts.update(&account).await {
                Ok(_) => {}
                Err(relay_domain::ports::AccountStoreError::Precondition(_)) => continue,
                Err(e) => return e.into(),
            }
            if locking {
                self.parts().metrics.lockouts.inc();
                tracing::warn!(username = %username, during, "account locked after repeated failures");
                let payload = serde_json::json!({
                    "username": username.as_str(),
                    "during": during,
                    "failed_attempts": attempts,
                    "window_secs": config.lockout_window.as_secs(),
                    "locked_until": account.locked_until.map(Timestamp::to_canonical),
                });
                let subject = Subject::new(format!("account:{username}")).ok();
                if let Err(e) = self
                    .append_event(
                        TrailId::relay(),
                        EventKind::lockout(),
                        crate::RELAY_ACTOR,
                        ActorSource::System,
                        subject,
                        None,
                        payload,
                    )
                    .await
                {
                    // The lock itself is in place; the missing event was counted and logged.
                    return e;
                }
            }
            return answer;
        }
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            "the account is being changed concurrently; retry",
        )
    }

    /// Resets the failure counters after a correct password.
    pub(crate) async fn clear_failures(&self, account: &mut Account) -> Result<(), ApiError> {
        if account.failed_attempts == 0
            && account.failure_window_start.is_none()
            && account.locked_until.is_none()
        {
            return Ok(());
        }
        account.failed_attempts = 0;
        account.failure_window_start = None;
        account.locked_until = None;
        match self.parts().accounts.update(account).await {
            Ok(v) => {
                account.version = v;
                Ok(())
            }
            // Someone counted a failure meanwhile; leaving it counted is the safe side.
            Err(relay_domain::ports::AccountStoreError::Precondition(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks `password` (and TOTP when enrolled) for `account` as part of `during`: lockout
    /// first (429), then the password; a failure is counted and answered 401. `account` is
    /// replaced by the account as stored now.
    pub(crate) async fn check_credentials(
        &self,
        account: &mut Account,
        password: &Password,
        totp: Option<&str>,
        now: Timestamp,
        during: &'static str,
    ) -> Result<(), ApiError> {
        self.check(account, password, Some(totp), now, during).await
    }

    /// Re-authenticates the signed-in `user` for a signature-like act (`during`): the password
    /// (and TOTP when enrolled) checked again inside the valid session, at `now`, as
    /// [`check_credentials`](Self::check_credentials) does; the account as stored now.
    pub(crate) async fn reauthenticate(
        &self,
        user: &AuthUser,
        password: &Password,
        totp: Option<&str>,
        now: Timestamp,
        during: &'static str,
    ) -> Result<Account, ApiError> {
        let mut account = user.account.clone();
        // A signed-in user: the check queues as a priority check, so a login flood filling
        // the common Argon2 queue does not refuse a signature.
        crate::password_gate::with_priority(
            true,
            self.check_credentials(&mut account, password, totp, now, during),
        )
        .await?;
        Ok(account)
    }

    /// [`check_credentials`](Self::check_credentials) without the second factor: for enrolling
    /// a new one, where the old one may be lost.
    pub(crate) async fn check_password_only(
        &self,
        account: &mut Account,
        password: &Password,
        now: Timestamp,
        during: &'static str,
    ) -> Result<(), ApiError> {
        self.check(account, password, None, now, during).await
    }

    /// The check; `totp` is `None` when the second factor is not asked for, `Some(code)` when
    /// it is (and the account has one).
    async fn check(
        &self,
        account: &mut Account,
        password: &Password,
        totp: Option<Option<&str>>,
        now: Timestamp,
        during: &'static str,
    ) -> Result<(), ApiError> {
        // One check of an account at a time, on the account as stored now: N parallel wrong
        // passwords count N failures, and once one of them locks the account no request
        // already in flight gets a right password through.
        let _serial = self
            .inner
            .account_locks
            .lock(account.username.as_str())
            .await;
        match self.parts().accounts.get(&account.username).await? {
            Some(fresh) => *account = fresh,
            None => {
                self.burn_password_check(password).await?;
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "wrong username or password",
                ));
            }
        }
        if let Err(locked) = self.ensure_not_locked(account, now) {
            // The same work as any other answer: the time taken tells nothing.
            self.burn_password_check(password).await?;
            return Err(locked);
        }
        let ok = verify_password(&account.password_hash, password).await?;
        if !ok {
            let answer =
                ApiError::unauthorized("invalid_credentials", "wrong username or password");
            return Err(self
                .count_failure(&account.username, now, during, answer)
                .await);
        }
        if let (Some(stored), Some(totp)) = (&account.totp_secret, totp) {
            let Some(code) = totp else {
                return Err(ApiError::unauthorized(
                    "totp_required",
                    "this account needs a TOTP code",
                ));
            };
            let secret = self.open_totp(&account.username, stored).await?;
            if !totp_matches(&secret, code, now) {
                let answer = ApiError::unauthorized("invalid_totp", "the TOTP code is wrong");
                return Err(self
                    .count_failure(&account.username, now, during, answer)
                    .await);
            }
        }
        self.clear_failures(account).await
    }

    /// Seals the base32 TOTP `secret` of `username` for the account store.
    pub(crate) async fn seal_totp(
        &self,
        username: &Username,
        secret: &str,
    ) -> Result<TotpSecret, ApiError> {
        let key = crate::totp_seal::current_key(self.parts().secrets.as_ref()).await?;
        crate::totp_seal::seal(&key, username, secret)
    }

    /// Opens the stored TOTP secret of `username`. A value that is not sealed, or does not open,
    /// was written into the store by hand: refused (500 with the detail in the log, never a
    /// login on it).
    pub(crate) async fn open_totp(
        &self,
        username: &Username,
        stored: &TotpSecret,
    ) -> Result<TotpSecret, ApiError> {
        let opened = match crate::totp_seal::key_id_of(stored) {
            Ok(id) => {
                match crate::totp_seal::key_version(self.parts().secrets.as_ref(), &id).await {
                    Ok(key) => crate::totp_seal::open(&key, username, stored),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        opened.map_err(|e| {
            tracing::error!(username = %username, error = %e, "TOTP secret refused");
            ApiError::internal("the stored TOTP secret cannot be used", &e)
        })
    }

    /// The answer to credentials for a username that does not exist: the same work (a password
    /// check against the dummy hash) and the same answers as for a real account, including
    /// 429 once the name has failed as often as a real account may.
    pub(crate) async fn refuse_unknown(
        &self,
        typed: &str,
        password: &Password,
        now: Timestamp,
    ) -> ApiError {
        if let Err(e) = self.burn_password_check(password).await {
            return e;
        }
        let failures = &self.inner.unknown_failures;
        if let Some(secs) = failures.locked_for(typed, now) {
            return ApiError::locked(secs);
        }
        let config = self.config();
        failures.count(
            typed,
            now,
            config.lockout_window,
            config.lockout_threshold,
            config.lockout_duration,
        );
        ApiError::unauthorized("invalid_credentials", "wrong username or password")
    }

    /// Runs a password check against the dummy hash, so an unknown username costs as much time
    /// as a known one.
    pub(crate) async fn burn_password_check(&self, password: &Password) -> Result<(), ApiError> {
        let matched = verify_password(&self.inner.dummy_hash, password).await?;
        tracing::trace!(matched, "equalized timing for an unknown username");
        Ok(())
    }
}

/// The TOTP generator for `secret` (RFC 6238: SHA-1, 6 digits, 30 s, one step of skew).
pub(crate) fn totp_for(secret: &TotpSecret) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.expose().to_owned())
        .to_bytes()
        .ok()?;
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).ok()
}

fn totp_matches(secret: &TotpSecret, code: &str, now: Timestamp) -> bool {
    match totp_for(secret) {
        // `check` compares in constant time.
        Some(totp) => totp.check(code.trim(), secs(now)),
        None => {
            tracing::error!("a stored TOTP secret is malformed");
            false
        }
    }
}

/// The authenticated caller of a request: the account named by a verified token whose session
/// is open and active. The only source of an API call's actor.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The caller's account as stored now (role and status are re-read on every call).
    pub account: Account,
    /// The session (token id).
    pub jti: String,
}

impl AuthUser {
    /// The caller's username.
    pub fn username(&self) -> &Username {
        &self.account.username
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.account.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "forbidden",
                format!("the {} role may not {what}", self.account.role),
            ))
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("invalid_token", "malformed Authorization header"))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "invalid_token",
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// Authenticates `token`; a session on a temporary password is refused (403
/// `password_change_required`) unless `temporary_ok`.
async fn authenticate(
    state: &ApiState,
    token: &str,
    temporary_ok: bool,
    client: &ClientInfo,
) -> Result<AuthUser, ApiError> {
    let now = state.now().await?;
    let claims = match state.decode_token(token, now) {
        Ok(claims) => claims,
        Err(e) => {
            // An expired token whose session is still open: the session ends here, recorded.
            if e.code == "token_expired"
                && let Some(claims) = state.decode_expired(token)
                && let Ok(name) = Username::new(claims.sub.clone())
                && state.inner.sessions.take(&claims.jti)
            {
                state
                    .record_session_expired(&name, &claims.jti, Expiry::TokenExpired, client)
                    .await;
            }
            return Err(e);
        }
    };
    let username = Username::new(claims.sub.clone())
        .map_err(|_| ApiError::unauthorized("invalid_token", "the token names no valid user"))?;
    match state.inner.sessions.touch(&claims.jti, &username) {
        Ok(()) => {}
        Err(SessionRefusal::Idle) => {
            state
                .record_session_expired(&username, &claims.jti, Expiry::Idle, client)
                .await;
            return Err(ApiError::unauthorized(
                "session_idle",
                "the session was idle too long; log in again",
            ));
        }
        Err(SessionRefusal::Unknown) => {
            return Err(ApiError::unauthorized(
                "session_closed",
                "the session is closed; log in again",
            ));
        }
    }
    let account = state
        .parts()
        .accounts
        .get(&username)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "the account no longer exists"))?;
    if account.disabled {
        state.inner.sessions.close(&claims.jti);
        return Err(ApiError::unauthorized(
            "account_disabled",
            "the account is disabled",
        ));
    }
    if !temporary_ok && account.password_changed_at.is_none() {
        return Err(ApiError::forbidden(
            "password_change_required",
            "the password was set by an administrator and is temporary: change it with POST \
             /api/v1/auth/password (username, old_password, new_password), then log in again",
        ));
    }
    Ok(AuthUser {
        account,
        jti: claims.jti,
    })
}

impl FromRequestParts<ApiState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::unauthorized("authentication_required", "log in first (Bearer token)")
        })?;
        let client = ClientInfo::of(&parts.headers, &parts.extensions);
        authenticate(state, token, false, &client).await
    }
}

/// The caller of an endpoint that a session on a temporary password may also use (logout):
/// like [`AuthUser`] without the `password_change_required` refusal.
#[derive(Debug, Clone)]
pub(crate) struct SessionUser(pub(crate) AuthUser);

impl FromRequestParts<ApiState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::unauthorized("authentication_required", "log in first (Bearer token)")
        })?;
        let client = ClientInfo::of(&parts.headers, &parts.extensions);
        Ok(Self(authenticate(state, token, true, &client).await?))
    }
}

/// The caller when a token is presented (and then it must be valid), `None` when none is.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<ApiState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match bearer(parts)? {
            Some(token) => {
                let client = ClientInfo::of(&parts.headers, &parts.extensions);
                Ok(Self(Some(
                    authenticate(state, token, false, &client).await?,
                )))
            }
            None => Ok(Self(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    // REQ: R3.1
    #[test]
    fn hashes_are_the_argon2_crates_phc_strings_both_ways() {
        let ours = hash_password_blocking("correct horse battery").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse batterY", &parsed)
                .is_err()
        );

        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = Argon2::default()
            .hash_password(b"violet harbour 17", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password_blocking(&theirs, "violet harbour 17"));
        assert!(!verify_password_blocking(&theirs, "violet harbour 18"));
        // Another cost and algorithm, read from the hash.
        let cheaper = Argon2::new(
            Argon2Algorithm::Argon2i,
            Version::V0x10,
            Params::new(8192, 1, 1, Some(24)).unwrap(),
        )
        .hash_password(b"violet harbour 17", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password_blocking(&cheaper, "violet harbour 17"));
        assert!(!verify_password_blocking(&cheaper, "violet harbour 7"));
        assert!(!verify_password_blocking("$argon2id$not a hash", "x"));
    }

    // REQ: R3.3
    #[test]
    fn one_working_memory_per_thread_is_kept_and_wiped() {
        std::thread::spawn(|| {
            let hash = hash_password_blocking("correct horse battery").unwrap();
            for _ in 0..3 {
                assert!(verify_password_blocking(&hash, "correct horse battery"));
            }
            ARGON2_MEMORY.with_borrow(|blocks| {
                assert_eq!(blocks.len(), Params::DEFAULT_M_COST as usize);
                assert!(
                    blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)),
                    "password-derived blocks were left in memory"
                );
            });
        })
        .join()
        .unwrap();
    }
}
