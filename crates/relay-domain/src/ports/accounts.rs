//! `AccountStore`: the relay's user accounts (R3), as mutable state next to the trail.
//!
//! The chain stays the one source of truth for *what happened*: every change made through this
//! port is also written as a chained event by its caller (`REGISTER`, `ACCOUNT_CHANGED`,
//! `LOCKOUT`). The account table is the current state those events produced, kept so that a
//! login does not have to replay the trail.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::IdError;
use crate::timestamp::Timestamp;

/// A relay account's login name: 1-64 ASCII letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit. Names are case-sensitive and never reused for another person.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates a login name.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::Empty { what: "username" });
        }
        if value.len() > 64 {
            return Err(IdError::TooLong {
                what: "username",
                len: value.len(),
                max: 64,
            });
        }
        let allowed = "ASCII letters, digits, '.', '_', '-' (not first)";
        if let Some(ch) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .or_else(|| value.chars().next().filter(|c| !c.is_ascii_alphanumeric()))
        {
            return Err(IdError::BadChar {
                what: "username",
                ch,
                allowed,
            });
        }
        let lowered = value.to_ascii_lowercase();
        if matches!(
            lowered.as_str(),
            "unknown" | "anonymous" | "none" | "null" | "relay" | "system"
        ) {
            return Err(IdError::Placeholder {
                what: "username",
                value,
            });
        }
        Ok(Self(value))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({:?})", self.0)
    }
}

impl FromStr for Username {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What an account may do (R3.1). Every privileged call checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works at an instrument; reads records, cannot sign.
    Operator,
    /// QA: reads and signs records (reviewed / approved / rejected).
    Reviewer,
    /// Manages accounts; cannot sign data records.
    Admin,
    /// Read-only: reads, verifies and exports; cannot sign.
    Auditor,
}

impl Role {
    /// The stored and transmitted label.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Parses the label.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "operator" => Role::Operator,
            "reviewer" => Role::Reviewer,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }

    /// Whether this role may apply electronic signatures to data records (only reviewers).
    pub fn may_sign(self) -> bool {
        self == Role::Reviewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TOTP shared secret (RFC 6238). Wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<String>);

impl TotpSecret {
    /// Wraps a base32 secret.
    pub fn new(base32: String) -> Self {
        Self(Zeroizing::new(base32))
    }

    /// The base32 text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// One relay account.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub username: Username,
    /// The printed name shown in signature manifestations (§11.50).
    pub full_name: String,
    /// What the account may do.
    pub role: Role,
    /// The Argon2id hash in PHC string form (salt and parameters included). The domain never
    /// hashes; it only stores what the API layer computed.
    pub password_hash: String,
    /// The TOTP secret when a second factor is enrolled.
    pub totp_secret: Option<TotpSecret>,
    /// A disabled account cannot log in and its tokens are refused.
    pub disabled: bool,
    /// When the password was last set by its owner; `None` when it must be changed at the next
    /// login (after an administrator reset).
    pub password_changed_at: Option<Timestamp>,
    /// Failed logins or signature passwords in the current window.
    pub failed_attempts: u32,
    /// When the current failure window started.
    pub failure_window_start: Option<Timestamp>,
    /// Until when the account is locked after too many failures.
    pub locked_until: Option<Timestamp>,
    /// When the account was created.
    pub created_at: Timestamp,
    /// Incremented by the store on every update; used for optimistic concurrency.
    pub version: u64,
    /// The PHC strings of the passwords used before the current one, newest first (the API
    /// refuses a new password matching the current one or any of these, and keeps as many as
    /// its policy needs).
    pub password_history: Vec<String>,
    /// When the account last logged in successfully, if ever.
    pub last_login_at: Option<Timestamp>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("full_name", &self.full_name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("totp", &self.totp_secret.is_some())
            .field("disabled", &self.disabled)
            .field("password_changed_at", &self.password_changed_at)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .field("created_at", &self.created_at)
            .field("version", &self.version)
            .field("password_history", &self.password_history.len())
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// Why an account store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AccountStoreError {
    /// No account with that name.
    #[error("account {0} not found")]
    NotFound(Username),
    /// `create` met an existing account of that name.
    #[error("account {0} already exists")]
    AlreadyExists(Username),
    /// A condition of the call did not hold: `create_first` found an account, or `update` found
    /// a newer version than the caller read.
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// A stored row could not be decoded.
    #[error("stored account {username} is unreadable: {message}")]
    Corrupt {
        /// The account (as stored).
        username: String,
        /// What was wrong.
        message: String,
    },
    /// The store cannot be reached or is busy; retry later.
    #[error("account store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other provider failure.
    #[error("account store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl AccountStoreError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            AccountStoreError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Where relay accounts are kept.
///
/// # Contract
/// - **Mutable state, audited elsewhere.** Accounts can be updated (unlike trail records); the
///   caller records every change as a chained event. The store keeps no history itself.
/// - **Unique names.** [`create`](Self::create) of an existing username is
///   [`AccountStoreError::AlreadyExists`] and changes nothing.
/// - **Atomic bootstrap.** [`create_first`](Self::create_first) stores the account only if the
///   store holds no account at all, atomically (two concurrent first registrations never both
///   succeed); otherwise [`AccountStoreError::Precondition`].
/// - **Optimistic updates.** [`update`](Self::update) stores the account only if the stored
///   `version` equals the given account's `version`, and stores it with `version + 1`, which it
///   returns; a stale version is `Precondition`, a missing account `NotFound`. The username and
///   `created_at` never change.
/// - **Verbatim.** Reads return every field as last stored (secrets included: the store is as
///   sensitive as the secret provider).
/// - `list` is ordered by username; `count` counts every account, disabled ones included.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Stores a new account (its `version` is stored as given, normally 0).
    async fn create(&self, account: &Account) -> Result<(), AccountStoreError>;
    /// Stores a new account only if there is none yet (the bootstrap administrator).
    async fn create_first(&self, account: &Account) -> Result<(), AccountStoreError>;
    /// The account named `username`, if any.
    async fn get(&self, username: &Username) -> Result<Option<Account>, AccountStoreError>;
    /// Every account, ordered by username.
    async fn list(&self) -> Result<Vec<Account>, AccountStoreError>;
    /// Replaces the stored account if its version is unchanged; returns the new version.
    async fn update(&self, account: &Account) -> Result<u64, AccountStoreError>;
    /// How many accounts exist.
    async fn count(&self) -> Result<u64, AccountStoreError>;
}

/// The columns of a stored account as an SQL store reads them, before validation. Every SQL
/// account store fills one of these and calls [`StoredAccountRow::decode`], so the rules for
/// turning stored text back into an [`Account`] live in one place.
#[derive(Debug)]
pub struct StoredAccountRow {
    /// `username`.
    pub username: String,
    /// `full_name`.
    pub full_name: String,
    /// `role`.
    pub role: String,
    /// `password_hash` (PHC string).
    pub password_hash: String,
    /// `totp_secret`.
    pub totp_secret: Option<String>,
    /// `disabled`.
    pub disabled: bool,
    /// `password_changed_at` (canonical timestamp text).
    pub password_changed_at: Option<String>,
    /// `failed_attempts`.
    pub failed_attempts: i64,
    /// `failure_window_start` (canonical timestamp text).
    pub failure_window_start: Option<String>,
    /// `locked_until` (canonical timestamp text).
    pub locked_until: Option<String>,
    /// `created_at` (canonical timestamp text).
    pub created_at: String,
    /// `version`.
    pub version: i64,
    /// `password_history`: a JSON array of PHC strings, newest first
    /// ([`StoredAccountRow::encode_history`]).
    pub password_history: String,
    /// `last_login_at` (canonical timestamp text).
    pub last_login_at: Option<String>,
}

impl StoredAccountRow {
    /// The stored text of a password history: a JSON array of PHC strings.
    pub fn encode_history(history: &[String]) -> String {
        serde_json::to_string(history).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Validates the row; a malformed column is [`AccountStoreError::Corrupt`] naming it.
    pub fn decode(self) -> Result<Account, AccountStoreError> {
        let name = self.username.clone();
        let bad = |column: &str, e: &dyn fmt::Display| AccountStoreError::Corrupt {
            username: name.clone(),
            message: format!("column {column}: {e}"),
        };
        let ts = |t: Option<String>, c: &str| -> Result<Option<Timestamp>, AccountStoreError> {
            t.map(|t| Timestamp::parse_canonical(&t).map_err(|e| bad(c, &e)))
                .transpose()
        };
        let username = Username::new(self.username).map_err(|e| bad("username", &e))?;
        let role = Role::parse(&self.role).ok_or_else(|| bad("role", &self.role))?;
        let created_at =
            Timestamp::parse_canonical(&self.created_at).map_err(|e| bad("created_at", &e))?;
        Ok(Account {
            username,
            full_name: self.full_name,
            role,
            password_hash: self.password_hash,
            totp_secret: self.totp_secret.map(TotpSecret::new),
            disabled: self.disabled,
            password_changed_at: ts(self.password_changed_at, "password_changed_at")?,
            failed_attempts: u32::try_from(self.failed_attempts)
                .map_err(|e| bad("failed_attempts", &e))?,
            failure_window_start: ts(self.failure_window_start, "failure_window_start")?,
            locked_until: ts(self.locked_until, "locked_until")?,
            created_at,
            version: u64::try_from(self.version).map_err(|e| bad("version", &e))?,
            password_history: serde_json::from_str(&self.password_history)
                .map_err(|e| bad("password_history", &e))?,
            last_login_at: ts(self.last_login_at, "last_login_at")?,
        })
    }
}
