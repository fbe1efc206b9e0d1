//! What every handler shares: the ports, the services, the token key and the live sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use relay_domain::ports::{
    AccountStore, Notary, RecordStore, SecretError, SecretName, SecretProvider, SecretProviderExt,
    Username,
};
use relay_domain::{
    Actor, ActorSource, AppendService, EventDraft, EventKind, Payload, Project, Record, Subject,
    Timestamp, TrailId,
};

use crate::auth::{TokenKeys, hash_password_blocking, random_hex};
use crate::config::ApiConfig;
use crate::error::ApiError;

/// The name of the secret holding the token signing key (HS256, 256 bits).
pub const TOKEN_SIGNING_SECRET: &str = "token-signing";

/// The counters the API adds to, shared with the process's Prometheus registry.
#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    /// Failed logins (wrong password, unknown user, wrong TOTP, disabled account).
    pub login_failures: Counter,
    /// Accounts locked after repeated failures.
    pub lockouts: Counter,
    /// Logins refused before any password check because their client address failed too often
    /// (429 `too_many_attempts`; also counted in [`login_failures`](Self::login_failures)).
    pub login_client_refusals: Counter,
    /// Audit-trail appends that failed.
    pub audit_write_failures: Counter,
    /// Records durably appended.
    pub records_appended: Counter,
}

/// What the API is built from.
#[derive(Debug, Clone)]
pub struct ApiParts {
    /// The append service every event goes through (its clock is the API's clock).
    pub appender: Arc<AppendService>,
    /// The record store, for reads.
    pub store: Arc<dyn RecordStore>,
    /// The accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// Trail keys (for verify) and the token signing key.
    pub secrets: Arc<dyn SecretProvider>,
    /// Anchors, for verify.
    pub notary: Arc<dyn Notary>,
    /// Counters.
    pub metrics: ApiMetrics,
    /// Settings.
    pub config: ApiConfig,
}

/// Why the API could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiStartError {
    /// The token signing key could not be loaded or created.
    #[error("cannot load the token signing key")]
    TokenKey(#[source] SecretError),
    /// A password hash could not be computed (Argon2 misconfigured).
    #[error("cannot compute password hashes: {0}")]
    Hashing(String),
    /// TOTP secrets stored in clear could not be sealed.
    #[error("cannot seal the stored TOTP secrets: {0}")]
    TotpSeal(String),
}

/// The API's shared state; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.inner.parts.store)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) parts: ApiParts,
    pub(crate) tokens: TokenKeys,
    pub(crate) sessions: Sessions,
    pub(crate) review: crate::review::ReviewIndex,
    /// A hash of a random password, verified against when a username does not exist, so the
    /// answer takes as long as for a real account.
    pub(crate) dummy_hash: String,
    /// One password check per account at a time (failures count exactly; a lock is seen).
    pub(crate) account_locks: crate::password_gate::AccountLocks,
    /// Failure counts of names that do not exist, so lockouts do not reveal which names do.
    pub(crate) unknown_failures: crate::password_gate::UnknownFailures,
    /// Failed logins per client address, so one client cannot try passwords without end.
    pub(crate) client_failures: crate::client_limit::ClientFailures,
    /// Four-eyes change requests, when the binary enabled them.
    pub(crate) changes: std::sync::OnceLock<Arc<dyn relay_domain::ports::ChangeRequestStore>>,
    /// Sealed export packages, when the binary enabled them.
    pub(crate) exporter: std::sync::OnceLock<Arc<dyn crate::exports::SealedExporter>>,
    /// How this relay applies each setting once a change of it is approved.
    pub(crate) change_targets: std::sync::OnceLock<crate::changes::ChangeTargets>,
    /// The server's ingest endpoint, whose tokens approved `ingest_token` changes issue and
    /// revoke.
    pub(crate) ingest: std::sync::OnceLock<crate::ingest::IngestState>,
    /// The server of record's times of receipt and the lateness threshold, when enabled.
    pub(crate) receipts: std::sync::OnceLock<(
        Arc<dyn relay_domain::ports::ReceiptStore>,
        std::time::Duration,
    )>,
}

/// Seals every TOTP secret still stored in clear (enrolled before sealing existed), so none
/// stays readable in the account store.
async fn seal_clear_totp_secrets(parts: &ApiParts) -> Result<(), ApiStartError> {
    let failed = |e: &dyn std::error::Error| ApiStartError::TotpSeal(e.to_string());
    let accounts = parts.accounts.list().await.map_err(|e| failed(&e))?;
    let clear: Vec<_> = accounts
        .into_iter()
        .filter(|a| {
            a.totp_secret
                .as_ref()
                .is_some_and(|t| !crate::totp_seal::is_sealed(t))
        })
        .collect();
    if clear.is_empty() {
        return Ok(());
    }
    let key = crate::totp_seal::current_key(parts.secrets.as_ref())
        .await
        .map_err(|e| ApiStartError::TotpSeal(e.message))?;
    for mut account in clear {
        let Some(plain) = account.totp_secret.take() else {
            continue;
        };
        account.totp_secret = Some(
            crate::totp_seal::seal(&key, &account.username, plain.expose())
                .map_err(|e| ApiStartError::TotpSeal(e.message))?,
        );
        parts
            .accounts
            .update(&account)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(username = %account.username, "TOTP secret sealed at rest");
    }
    Ok(())
}

impl ApiState {
    /// Loads (or creates) the token key and prepares the state.
    pub async fn new(parts: ApiParts) -> Result<Self, ApiStartError> {
        let name = SecretName::new(TOKEN_SIGNING_SECRET).map_err(|e| {
            ApiStartError::TokenKey(SecretError::Other {
                message: e.to_string(),
                source: None,
            })
        })?;
        let secret = parts
            .secrets
            .current_or_create(&name)
            .await
            .map_err(ApiStartError::TokenKey)?;
        let tokens = TokenKeys::new(&secret, &parts.config);
        let dummy = random_hex(16);
        let dummy_hash = tokio::task::spawn_blocking(move || hash_password_blocking(&dummy))
            .await
            .map_err(|e| ApiStartError::Hashing(e.to_string()))?
            .map_err(|e| ApiStartError::Hashing(e.to_string()))?;
        seal_clear_totp_secrets(&parts).await?;
        let sessions = Sessions::new(parts.config.session_idle_timeout);
        let client_failures = crate::client_limit::ClientFailures::new(
            parts.config.client_failure_limit,
            parts.config.client_failure_window,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                parts,
                tokens,
                sessions,
                review: crate::review::ReviewIndex::default(),
                dummy_hash,
                account_locks: crate::password_gate::AccountLocks::default(),
                unknown_failures: crate::password_gate::UnknownFailures::default(),
                client_failures,
                changes: std::sync::OnceLock::new(),
                exporter: std::sync::OnceLock::new(),
                change_targets: std::sync::OnceLock::new(),
                ingest: std::sync::OnceLock::new(),
                receipts: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Enables four-eyes configuration changes (`/api/v1/changes`) on `store`; without it those
    /// endpoints answer 503. Returns false (and keeps the first) when already enabled.
    pub fn enable_changes(&self, store: Arc<dyn relay_domain::ports::ChangeRequestStore>) -> bool {
        self.inner.changes.set(store).is_ok()
    }

    /// Enables sealed exports (`/api/v1/exports`) through `exporter`; without it those endpoints
    /// answer 503. Returns false (and keeps the first) when already enabled.
    pub fn enable_sealed_exports(&self, exporter: Arc<dyn crate::exports::SealedExporter>) -> bool {
        self.inner.exporter.set(exporter).is_ok()
    }

    /// Says how this relay applies each setting once a change of it is approved (which take
    /// effect at once, which at the next start, which this relay does not own); without it,
    /// [`crate::ChangeTargets::default`]. Returns false (and keeps the first) when already set.
    pub fn set_change_targets(&self, targets: crate::changes::ChangeTargets) -> bool {
        self.inner.change_targets.set(targets).is_ok()
    }

    /// Lets approved `ingest_token` changes issue and revoke the tokens of `ingest` (the server
    /// of record's ingest endpoint) at once. Returns false (and keeps the first) when already
    /// enabled.
    pub fn enable_ingest_tokens(&self, ingest: crate::ingest::IngestState) -> bool {
        self.inner.ingest.set(ingest).is_ok()
    }

    /// Shows each record's time of receipt from `store` (server of record) and flags it late
    /// when received more than `late_after` after it was recorded (`received_at`, `late`,
    /// `late_after_secs` in every record view, the UI and exports). Returns false (and keeps
    /// the first) when already enabled.
    pub fn enable_receipts(
        &self,
        store: Arc<dyn relay_domain::ports::ReceiptStore>,
        late_after: Duration,
    ) -> bool {
        self.inner.receipts.set((store, late_after)).is_ok()
    }

    /// The receipts of `trail` covering `records` (none when receipts are not enabled), with
    /// the threshold to judge them by.
    pub(crate) async fn receipts_of(
        &self,
        trail: &TrailId,
        records: &[Record],
    ) -> Result<crate::events::ReceiptIndex, ApiError> {
        let Some((store, late_after)) = self.inner.receipts.get() else {
            return Ok(crate::events::ReceiptIndex::Disabled);
        };
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(crate::events::ReceiptIndex::Disabled);
        };
        let from = first.chain_seq.get().min(last.chain_seq.get());
        let to = first.chain_seq.get().max(last.chain_seq.get());
        let receipts = store.receipts(trail, from, to).await?;
        Ok(crate::events::ReceiptIndex::Enabled {
            receipts,
            late_after: *late_after,
        })
    }

    pub(crate) fn ingest(&self) -> Option<&crate::ingest::IngestState> {
        self.inner.ingest.get()
    }

    pub(crate) fn change_targets(&self) -> crate::changes::ChangeTargets {
        let mut targets = self.inner.change_targets.get().cloned().unwrap_or_default();
        if let Some(ingest) = self.ingest() {
            targets = targets.set(
                relay_domain::ports::ChangeSetting::IngestToken,
                crate::changes::Applies::Now,
            );
            if ingest.fleet().is_some() {
                targets = targets.set(
                    relay_domain::ports::ChangeSetting::EnrollmentCode,
                    crate::changes::Applies::Now,
                );
            }
        }
        targets
    }

    pub(crate) fn sealed_exporter(&self) -> Option<Arc<dyn crate::exports::SealedExporter>> {
        self.inner.exporter.get().cloned()
    }

    pub(crate) fn change_store(&self) -> Option<Arc<dyn relay_domain::ports::ChangeRequestStore>> {
        self.inner.changes.get().cloned()
    }

    pub(crate) fn parts(&self) -> &ApiParts {
        &self.inner.parts
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.inner.parts.config
    }

    /// The API's clock (the append service's time source).
    pub(crate) async fn now(&self) -> Result<Timestamp, ApiError> {
        match self.parts().appender.clock().now().await {
            Ok(t) => Ok(t.at),
            Err(e) => Err(ApiError::internal("the clock failed", &e)),
        }
    }

    /// The draft of an event the API appends (on this relay's device, occurring now).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event_draft(
        &self,
        trail_id: TrailId,
        kind: EventKind,
        actor: &str,
        actor_source: ActorSource,
        subject: Option<Subject>,
        project: Option<Project>,
        payload: serde_json::Value,
    ) -> Result<EventDraft, ApiError> {
        let payload = Payload::from_value(&payload)
            .map_err(|e| ApiError::internal("an event payload was refused", &e))?;
        Ok(EventDraft {
            trail_id,
            kind,
            actor: Actor::new(actor).ok(),
            actor_source,
            occurred_at: None,
            device: self.config().device.clone(),
            project,
            subject,
            payload,
        })
    }

    /// Appends `drafts` (all of one trail, at most [`relay_domain::append::MAX_GROUP_COMMIT`])
    /// as consecutive records in one atomic batch: all are stored or none. A failure is
    /// counted, logged and answered 503 (fail closed), as for [`Self::append_event`].
    pub(crate) async fn append_group(
        &self,
        drafts: Vec<EventDraft>,
    ) -> Result<Vec<Record>, ApiError> {
        match self
            .parts()
            .appender
            .append_group_rechaining(drafts, crate::APPEND_RETRIES)
            .await
        {
            Ok(records) => {
                self.parts()
                    .metrics
                    .records_appended
                    .inc_by(records.len() as u64);
                Ok(records)
            }
            Err(e) => {
                self.parts().metrics.audit_write_failures.inc();
                Err(ApiError::audit_unavailable(&e))
            }
        }
    }

    /// Appends an event; a failure is counted, logged and answered 503 (fail closed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn append_event(
        &self,
        trail_id: TrailId,
        kind: EventKind,
        actor: &str,
        actor_source: ActorSource,
        subject: Option<Subject>,
        project: Option<Project>,
        payload: serde_json::Value,
    ) -> Result<Record, ApiError> {
        let draft = self.event_draft(
            trail_id,
            kind,
            actor,
            actor_source,
            subject,
            project,
            payload,
        )?;
        // `_relay` is shared by every replica on one database: re-chain after another's append.
        match self
            .parts()
            .appender
            .append_rechaining(draft, crate::APPEND_RETRIES)
            .await
        {
            Ok(record) => {
                self.parts().metrics.records_appended.inc();
                Ok(record)
            }
            Err(e) => {
                self.parts().metrics.audit_write_failures.inc();
                Err(ApiError::audit_unavailable(&e))
            }
        }
    }

    /// Records an `ACCESS` event in `_relay` for `user` (R3.4).
    pub(crate) async fn record_access(
        &self,
        user: &Username,
        payload: serde_json::Value,
    ) -> Result<Record, ApiError> {
        self.append_event(
            TrailId::relay(),
            EventKind::access(),
            user.as_str(),
            ActorSource::Token,
            None,
            None,
            payload,
        )
        .await
    }
}

/// Live sessions by token id: a token is honoured only while its session is open and active.
pub(crate) struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    username: Username,
    last_seen: Instant,
}

/// Why a session did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionRefusal {
    /// No such session (logged out, closed by an administrator, or the relay restarted).
    Unknown,
    /// The session was idle longer than the timeout.
    Idle,
}

impl Sessions {
    fn new(idle: Duration) -> Self {
        Self {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Opens session `jti` of `username`; returns the idle sessions it swept (id and user),
    /// for their `SESSION_EXPIRED` records.
    pub(crate) fn open(&self, jti: String, username: Username) -> Vec<(String, Username)> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = self.idle;
        // Forget sessions that can no longer be used, so the map stays small.
        let swept: Vec<(String, Username)> = map
            .iter()
            .filter(|(_, s)| s.last_seen.elapsed() > idle)
            .map(|(id, s)| (id.clone(), s.username.clone()))
            .collect();
        map.retain(|_, s| s.last_seen.elapsed() <= idle);
        map.insert(
            jti,
            Session {
                username,
                last_seen: Instant::now(),
            },
        );
        swept
    }

    /// Closes session `jti` if it is open; whether it was.
    pub(crate) fn take(&self, jti: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(jti)
            .is_some()
    }

    pub(crate) fn touch(&self, jti: &str, username: &Username) -> Result<(), SessionRefusal> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(session) = map.get_mut(jti) else {
            return Err(SessionRefusal::Unknown);
        };
        if session.username != *username {
            return Err(SessionRefusal::Unknown);
        }
        if session.last_seen.elapsed() > self.idle {
            map.remove(jti);
            return Err(SessionRefusal::Idle);
        }
        session.last_seen = Instant::now();
        Ok(())
    }

    pub(crate) fn close(&self, jti: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(jti);
    }

    pub(crate) fn close_all_of(&self, username: &Username) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.username != *username);
    }
}
