//! `ChangeRequestStore`: four-eyes configuration changes (segregation of duties), as mutable
//! state next to the trail.
//!
//! A change that weakens or redirects capture (watched roots, settle window, notary target or
//! interval, retention, ingest tokens, an admin's role, the registration lock) is *proposed* by
//! one administrator and takes effect only after a *different* administrator approves it with a
//! signature (password re-check and reason). Both steps are chained events written by the
//! caller (`CHANGE_PROPOSED`, `CHANGE_APPROVED`, `CHANGE_REJECTED` in `_relay`); this port keeps
//! the current state so the relay does not replay its trail to know what is pending, and the
//! last approved configuration digest that start-up drift detection compares against.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::timestamp::Timestamp;

/// A setting that may only change under four-eyes control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeSetting {
    /// The watched folders (a JSON array of paths).
    WatchRoots,
    /// The settle window in milliseconds (a JSON number).
    SettleMs,
    /// Where trail heads are notarized (a JSON string).
    NotaryTarget,
    /// How often trail heads are notarized, in seconds (a JSON number).
    NotaryIntervalSecs,
    /// How long records and packages are retained, in days (a JSON number).
    RetentionDays,
    /// An ingest token: `{"source": "...", "action": "issue" | "revoke"}`.
    IngestToken,
    /// An account's role: `{"username": "...", "role": "..."}`.
    AccountRole,
    /// A new account with a privileged role (admin, reviewer):
    /// `{"username": "...", "full_name": "...", "role": "..."}`. Created with a temporary
    /// password the approver receives once; the owner must change it at the first login.
    AccountCreate,
    /// A new temporary password for another user's account: `{"username": "..."}`.
    AccountPasswordReset,
    /// Disabling or re-enabling an administrator: `{"username": "...", "disabled": true}`.
    AccountStatus,
    /// Whether registration is closed (a JSON boolean).
    RegistrationClosed,
    /// Accept the configuration found at start-up as the approved one after a `CONFIG_DRIFT`
    /// (a JSON string: the `sha256:` digest the drift event named).
    ConfigBaseline,
    /// The signing workflow's rules (`crate::workflow::WorkflowPolicy`): `"strict"`,
    /// `"relaxed"` or an object of the rules' booleans.
    SigningWorkflow,
    /// A one-time enrollment code for an edge, issued on approval (issue 24):
    /// `{"edge": "...", "ttl_minutes": 60}` (`ttl_minutes` optional). The approver receives the
    /// code once.
    EnrollmentCode,
}

impl ChangeSetting {
    /// Every setting, in a stable order.
    pub const ALL: [ChangeSetting; 14] = [
        ChangeSetting::WatchRoots,
        ChangeSetting::SettleMs,
        ChangeSetting::NotaryTarget,
        ChangeSetting::NotaryIntervalSecs,
        ChangeSetting::RetentionDays,
        ChangeSetting::IngestToken,
        ChangeSetting::AccountRole,
        ChangeSetting::AccountCreate,
        ChangeSetting::AccountPasswordReset,
        ChangeSetting::AccountStatus,
        ChangeSetting::RegistrationClosed,
        ChangeSetting::ConfigBaseline,
        ChangeSetting::SigningWorkflow,
        ChangeSetting::EnrollmentCode,
    ];

    /// The stored and transmitted label (also the configuration key it overrides, if any).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSetting::WatchRoots => "watch",
            ChangeSetting::SettleMs => "settle_ms",
            ChangeSetting::NotaryTarget => "notary_target",
            ChangeSetting::NotaryIntervalSecs => "notary_interval_secs",
            ChangeSetting::RetentionDays => "retention_days",
            ChangeSetting::IngestToken => "ingest_token",
            ChangeSetting::AccountRole => "account_role",
            ChangeSetting::AccountCreate => "account_create",
            ChangeSetting::AccountPasswordReset => "account_password_reset",
            ChangeSetting::AccountStatus => "account_status",
            ChangeSetting::RegistrationClosed => "registration_closed",
            ChangeSetting::ConfigBaseline => "config_baseline",
            ChangeSetting::SigningWorkflow => "signing_workflow",
            ChangeSetting::EnrollmentCode => "enrollment_code",
        }
    }

    /// Checks that `value` has the shape this setting takes; the message says what is expected.
    pub fn check_value(self, value: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        let ok = match self {
            ChangeSetting::WatchRoots => value.as_array().is_some_and(|a| {
                !a.is_empty() && a.iter().all(|p| p.as_str().is_some_and(|s| !s.is_empty()))
            }),
            ChangeSetting::SettleMs
            | ChangeSetting::NotaryIntervalSecs
            | ChangeSetting::RetentionDays => value.as_u64().is_some_and(|n| n >= 1),
            ChangeSetting::NotaryTarget => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            ChangeSetting::IngestToken => {
                value.get("source").and_then(Value::as_str).is_some()
                    && matches!(
                        value.get("action").and_then(Value::as_str),
                        Some("issue" | "revoke")
                    )
            }
            ChangeSetting::AccountRole => {
                value.get("username").and_then(Value::as_str).is_some()
                    && value.get("role").and_then(Value::as_str).is_some()
            }
            ChangeSetting::AccountCreate => ["username", "full_name", "role"]
                .iter()
                .all(|k| value.get(k).and_then(Value::as_str).is_some()),
            ChangeSetting::AccountPasswordReset => {
                value.get("username").and_then(Value::as_str).is_some()
            }
            ChangeSetting::AccountStatus => {
                value.get("username").and_then(Value::as_str).is_some()
                    && value.get("disabled").and_then(Value::as_bool).is_some()
            }
            ChangeSetting::RegistrationClosed => value.is_boolean(),
            ChangeSetting::ConfigBaseline => value.as_str().is_some_and(|s| {
                s.strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            }),
            ChangeSetting::SigningWorkflow => {
                crate::workflow::WorkflowPolicy::from_value(value).is_ok()
            }
            ChangeSetting::EnrollmentCode => {
                value
                    .get("edge")
                    .and_then(Value::as_str)
                    .is_some_and(|e| !e.is_empty())
                    && value
                        .get("ttl_minutes")
                        .is_none_or(|t| t.as_u64().is_some_and(|n| n >= 1))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.expected().to_owned())
        }
    }

    /// What a value of this setting looks like, in words (the message of [`Self::check_value`]).
    pub fn expected(self) -> &'static str {
        match self {
            ChangeSetting::WatchRoots => "a non-empty array of folder paths",
            ChangeSetting::SettleMs
            | ChangeSetting::NotaryIntervalSecs
            | ChangeSetting::RetentionDays => "a whole number of at least 1",
            ChangeSetting::NotaryTarget => "a non-empty string",
            ChangeSetting::IngestToken => {
                "{\"source\": \"...\", \"action\": \"issue\" | \"revoke\"}"
            }
            ChangeSetting::AccountRole => "{\"username\": \"...\", \"role\": \"...\"}",
            ChangeSetting::AccountCreate => {
                "{\"username\": \"...\", \"full_name\": \"...\", \"role\": \"...\"}"
            }
            ChangeSetting::AccountPasswordReset => "{\"username\": \"...\"}",
            ChangeSetting::AccountStatus => "{\"username\": \"...\", \"disabled\": true | false}",
            ChangeSetting::RegistrationClosed => "true or false",
            ChangeSetting::ConfigBaseline => "\"sha256:<64 hex digits>\"",
            ChangeSetting::EnrollmentCode => "{\"edge\": \"...\", \"ttl_minutes\": 60}",
            ChangeSetting::SigningWorkflow => {
                "\"strict\", \"relaxed\" or {\"review_before_approval\": true, \
                     \"approver_not_reviewer\": true, \"approver_not_author\": true, \
                     \"no_approval_when_superseded\": true, \"no_repeated_meaning\": true}"
            }
        }
    }
}

impl fmt::Display for ChangeSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeSetting::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = ChangeSetting::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown setting {s:?}; known: {}", known.join(", "))
            })
    }
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeState {
    /// Waiting for a second administrator (unless expired, see [`ChangeRequest::is_expired`]).
    Pending,
    /// Approved by a different administrator; in effect.
    Approved,
    /// Rejected (or withdrawn by its proposer).
    Rejected,
}

impl ChangeState {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
        }
    }
}

/// A proposed configuration change and, once decided, its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Unique id, chosen by the caller (random, URL-safe).
    pub id: String,
    /// What is changed.
    pub setting: ChangeSetting,
    /// The proposed value (shape per [`ChangeSetting::check_value`]).
    pub value: serde_json::Value,
    /// The proposing administrator's username.
    pub proposer: String,
    /// Why the proposer wants it.
    pub reason: String,
    /// When it was proposed.
    pub created_at: Timestamp,
    /// After this instant it can no longer be approved.
    pub expires_at: Timestamp,
    /// Where it stands.
    pub state: ChangeState,
    /// The deciding administrator, once decided.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
    /// The decider's reason.
    pub decision_reason: Option<String>,
}

impl ChangeRequest {
    /// Whether a still-pending request has passed its expiry at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.state == ChangeState::Pending && now >= self.expires_at
    }
}

/// A decision on a pending request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeDecision {
    /// `Approved` or `Rejected`.
    pub state: ChangeState,
    /// Who decided.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
}

/// Why a change-request operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChangeStoreError {
    /// No request with that id.
    #[error("change request {0} not found")]
    NotFound(String),
    /// A request with that id already exists.
    #[error("change request {0} already exists")]
    AlreadyExists(String),
    /// The request is no longer pending (decided by someone else first).
    #[error("change request {id} is already {state}")]
    NotPending {
        /// The request.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The store cannot be reached; retry later.
    #[error("change request store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure.
    #[error("change request store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl ChangeStoreError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            ChangeStoreError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Change requests and the approved configuration baseline.
///
/// # Contract
/// - `propose` stores a new `Pending` request; `AlreadyExists` if its id is taken.
/// - `decide` moves a `Pending` request to the decision's state atomically; a request that is
///   not pending (decided concurrently) gives `NotPending` and is left as it is. The store does
///   not judge expiry or who decides: the caller enforces four-eyes and expiry before calling.
/// - `list` returns requests newest first, at most `limit`.
/// - `config_baseline` returns the last approved configuration (canonical JSON) or `None` before
///   the first start; `set_config_baseline` replaces it.
#[async_trait]
pub trait ChangeRequestStore: Send + Sync + fmt::Debug {
    /// Stores a new pending request.
    async fn propose(&self, request: &ChangeRequest) -> Result<(), ChangeStoreError>;
    /// The request with this id.
    async fn get(&self, id: &str) -> Result<ChangeRequest, ChangeStoreError>;
    /// Requests, newest first.
    async fn list(&self, limit: usize) -> Result<Vec<ChangeRequest>, ChangeStoreError>;
    /// Decides a pending request; returns it as stored afterwards.
    async fn decide(
        &self,
        id: &str,
        decision: &ChangeDecision,
    ) -> Result<ChangeRequest, ChangeStoreError>;
    /// The last approved configuration, canonical JSON.
    async fn config_baseline(&self) -> Result<Option<String>, ChangeStoreError>;
    /// Replaces the approved configuration.
    async fn set_config_baseline(&self, canonical_json: &str) -> Result<(), ChangeStoreError>;
}

/// Applies `decision` to `request` as the contract says (shared by adapters so they cannot get
/// it subtly wrong).
pub fn apply_decision(
    request: &mut ChangeRequest,
    decision: &ChangeDecision,
) -> Result<(), ChangeStoreError> {
    if request.state != ChangeState::Pending {
        return Err(ChangeStoreError::NotPending {
            id: request.id.clone(),
            state: request.state.as_str(),
        });
    }
    request.state = decision.state;
    request.decided_by = Some(decision.by.clone());
    request.decided_at = Some(decision.at);
    request.decision_reason = Some(decision.reason.clone());
    Ok(())
}

impl ChangeRequest {
    /// The JSON document a SQL store keeps for the request (shared by adapters, so every store
    /// writes and reads the same shape).
    pub fn to_stored_json(&self) -> Result<String, ChangeStoreError> {
        serde_json::to_string(self).map_err(|e| ChangeStoreError::Other {
            message: format!("a change request could not be encoded: {e}"),
            source: None,
        })
    }

    /// Reads back what [`to_stored_json`](Self::to_stored_json) wrote.
    pub fn from_stored_json(body: &str) -> Result<Self, ChangeStoreError> {
        serde_json::from_str(body).map_err(|e| ChangeStoreError::Other {
            message: format!("a stored change request is unreadable: {e}"),
            source: None,
        })
    }
}
