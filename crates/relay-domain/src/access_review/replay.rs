//! Replaying the account events of `_relay` (`REGISTER`, `ACCOUNT_CHANGED`, `LOGIN_FAILED`,
//! `CHANGE_PROPOSED`, `ACCESS_REVIEWED`) into what the trail says each account is: its role,
//! status, printed name, second factor and password state, who created it and how, its role
//! history, and the failed logins since the last access review.
//!
//! The replay reads records one at a time in chain order ([`AccountReplay::observe`]), so a
//! caller streams `_relay` through it without holding the trail.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::ids::EventKind;
use crate::ports::Role;
use crate::record::Record;
use crate::timestamp::Timestamp;

/// How many distinct typed names of failed logins are told apart; beyond it, failures of new
/// names are counted as failures of names that are no account (a flood of invented names must
/// not grow memory without bound).
const MAX_TYPED_NAMES: usize = 100_000;

/// How an account came to exist, as its `REGISTER` event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Creation {
    /// The first administrator, registered alone.
    FirstAdmin,
    /// The second administrator, created by the only one without approval (the bootstrap of
    /// four-eyes, `"bootstrap": "second_admin"`): flagged for review.
    SecondAdminBootstrap,
    /// Created by an administrator alone (a role that needs no second approval).
    ByAdmin,
    /// Created by an approved four-eyes change (`account_create`).
    FourEyes,
}

/// One change of an account's role, from the chained events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    /// The `_relay` chain_seq of the event.
    pub seq: u64,
    /// When it was recorded (canonical UTC).
    pub at: String,
    /// The role before (`null` at creation).
    pub from: Option<String>,
    /// The role after.
    pub to: String,
    /// Who carried it out (the event's actor: the approver of a four-eyes change).
    pub by: String,
    /// The four-eyes change request, if it was one.
    pub change_id: Option<String>,
    /// Who proposed the four-eyes change.
    pub proposed_by: Option<String>,
    /// Why (the event's reason, or the change request's).
    pub reason: Option<String>,
}

/// Who set the current password, as the trail says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSetBy {
    /// The owner (a password change, or the first administrator's registration): the stored
    /// `password_changed_at` is the time of that event.
    Owner,
    /// An administrator (creation or reset): temporary, or with the relay's setting
    /// `admin_passwords_temporary` off, dated at that event.
    Administrator,
}

/// What the trail says one account is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAccount {
    /// The login name as registered.
    pub username: String,
    /// The printed name.
    pub full_name: String,
    /// The role (`None`: a role the replay does not know).
    pub role: Option<Role>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Whether a TOTP second factor is enrolled.
    pub totp_enrolled: bool,
    /// Who set the current password and when the event was recorded.
    pub password: (PasswordSetBy, Timestamp),
    /// The `REGISTER` record's seq.
    pub created_seq: u64,
    /// When it was registered.
    pub created_at: Timestamp,
    /// Who registered it (the `REGISTER` actor; the approver of a four-eyes creation).
    pub created_by: String,
    /// How it was created.
    pub creation: Creation,
    /// Why it was created, as recorded.
    pub creation_reason: Option<String>,
    /// Every role it held: creation first.
    pub role_history: Vec<RoleChange>,
}

/// The latest `ACCESS_REVIEWED` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviousReview {
    /// Its `_relay` chain_seq.
    pub seq: u64,
    /// When it was recorded (canonical UTC).
    pub at: String,
    /// Who completed it.
    pub reviewer: String,
    /// The digest of the review it attests.
    pub review_digest: Option<String>,
}

/// The replay of `_relay`'s account events.
#[derive(Debug, Default)]
pub struct AccountReplay {
    accounts: BTreeMap<String, ChainedAccount>,
    /// Reasons of four-eyes proposals, by change id.
    proposals: HashMap<String, String>,
    /// Failed logins since the latest review, by the typed name in lower case.
    failed: HashMap<String, u64>,
    /// Failed logins since the latest review beyond [`MAX_TYPED_NAMES`] distinct names.
    failed_overflow: u64,
    previous_review: Option<(PreviousReview, Timestamp)>,
    last_seq: u64,
    /// Account events the replay could not read (seq and why), reported by verify.
    unreadable: Vec<(u64, String)>,
}

fn text<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

impl AccountReplay {
    /// An empty replay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one `_relay` record (in chain order); records of other kinds are ignored.
    pub fn observe(&mut self, record: &Record) {
        self.last_seq = record.chain_seq.get();
        let kind = record.kind.as_str();
        let tracked = [
            EventKind::register(),
            EventKind::account_changed(),
            EventKind::login_failed(),
            EventKind::change_proposed(),
            EventKind::access_reviewed(),
        ];
        if !tracked.iter().any(|k| k.as_str() == kind) {
            return;
        }
        let payload = match record.payload.to_value() {
            Ok(v) => v,
            Err(e) => {
                self.unreadable
                    .push((record.chain_seq.get(), format!("payload unreadable: {e}")));
                return;
            }
        };
        match kind {
            "REGISTER" => self.register(record, &payload),
            "ACCOUNT_CHANGED" => self.changed(record, &payload),
            "LOGIN_FAILED" => self.login_failed(&payload),
            "CHANGE_PROPOSED" => {
                if let (Some(id), Some(reason)) =
                    (text(&payload, "change_id"), text(&payload, "reason"))
                {
                    self.proposals.insert(id.to_owned(), reason.to_owned());
                }
            }
            _ => self.reviewed(record, &payload),
        }
    }

    fn register(&mut self, record: &Record, p: &serde_json::Value) {
        let Some(username) = text(p, "username") else {
            self.unreadable
                .push((record.chain_seq.get(), "REGISTER without a username".into()));
            return;
        };
        let role_text = text(p, "role").unwrap_or("").to_owned();
        let change_id = text(p, "change_id").map(str::to_owned);
        let proposer = text(p, "proposer").map(str::to_owned);
        let creation = match p.get("bootstrap") {
            Some(serde_json::Value::Bool(true)) => Creation::FirstAdmin,
            Some(serde_json::Value::String(s)) if s == "second_admin" => {
                Creation::SecondAdminBootstrap
            }
            _ if change_id.is_some() => Creation::FourEyes,
            _ => Creation::ByAdmin,
        };
        let reason = text(p, "reason").map(str::to_owned).or_else(|| {
            change_id
                .as_ref()
                .and_then(|id| self.proposals.get(id).cloned())
        });
        let by = record.actor.as_str().to_owned();
        let setter = match creation {
            Creation::FirstAdmin => PasswordSetBy::Owner,
            _ => PasswordSetBy::Administrator,
        };
        let account = ChainedAccount {
            username: username.to_owned(),
            full_name: text(p, "full_name").unwrap_or("").to_owned(),
            role: Role::parse(&role_text),
            disabled: false,
            totp_enrolled: false,
            password: (setter, record.recorded_at),
            created_seq: record.chain_seq.get(),
            created_at: record.recorded_at,
            created_by: by.clone(),
            creation,
            creation_reason: reason.clone(),
            role_history: vec![RoleChange {
                seq: record.chain_seq.get(),
                at: record.recorded_at.to_canonical(),
                from: None,
                to: role_text,
                by,
                change_id,
                proposed_by: proposer,
                reason,
            }],
        };
        self.accounts.insert(username.to_ascii_lowercase(), account);
    }

    fn changed(&mut self, record: &Record, p: &serde_json::Value) {
        let seq = record.chain_seq.get();
        let Some(username) = text(p, "username") else {
            self.unreadable
                .push((seq, "ACCOUNT_CHANGED without a username".into()));
            return;
        };
        let change_id = text(p, "change_id").map(str::to_owned);
        let reason = text(p, "reason").map(str::to_owned).or_else(|| {
            change_id
                .as_ref()
                .and_then(|id| self.proposals.get(id).cloned())
        });
        let Some(account) = self.accounts.get_mut(&username.to_ascii_lowercase()) else {
            self.unreadable.push((
                seq,
                format!("ACCOUNT_CHANGED of {username}, which no REGISTER event created"),
            ));
            return;
        };
        let empty = serde_json::Value::Null;
        let changes = p.get("changes").unwrap_or(&empty);
        if let Some(role) = changes.get("role") {
            let to = text(role, "to").unwrap_or("").to_owned();
            account.role = Role::parse(&to);
            account.role_history.push(RoleChange {
                seq,
                at: record.recorded_at.to_canonical(),
                from: text(role, "from").map(str::to_owned),
                to,
                by: record.actor.as_str().to_owned(),
                change_id,
                proposed_by: text(p, "proposer").map(str::to_owned),
                reason,
            });
        }
        if let Some(disabled) = changes.get("disabled").and_then(serde_json::Value::as_bool) {
            account.disabled = disabled;
        }
        if let Some(name) = changes.get("full_name").and_then(|n| text(n, "to")) {
            account.full_name = name.to_owned();
        }
        if changes.get("password_reset").is_some() {
            account.password = (PasswordSetBy::Administrator, record.recorded_at);
        }
        if changes.get("password_changed").is_some() {
            account.password = (PasswordSetBy::Owner, record.recorded_at);
        }
        if changes.get("totp_enrolled").is_some() {
            account.totp_enrolled = true;
        }
        if changes.get("totp_removed").is_some() {
            account.totp_enrolled = false;
        }
    }

    fn login_failed(&mut self, p: &serde_json::Value) {
        let typed = text(p, "username").unwrap_or("").to_ascii_lowercase();
        if let Some(n) = self.failed.get_mut(&typed) {
            *n += 1;
        } else if self.failed.len() < MAX_TYPED_NAMES {
            self.failed.insert(typed, 1);
        } else {
            self.failed_overflow += 1;
        }
    }

    fn reviewed(&mut self, record: &Record, p: &serde_json::Value) {
        self.previous_review = Some((
            PreviousReview {
                seq: record.chain_seq.get(),
                at: record.recorded_at.to_canonical(),
                reviewer: record.actor.as_str().to_owned(),
                review_digest: text(p, "review_digest").map(str::to_owned),
            },
            record.recorded_at,
        ));
        // The review period starts again.
        self.failed.clear();
        self.failed_overflow = 0;
    }

    /// What the trail says each account is, by username in lower case.
    pub fn accounts(&self) -> &BTreeMap<String, ChainedAccount> {
        &self.accounts
    }

    /// The chained account named `username` (compared without case).
    pub fn account(&self, username: &str) -> Option<&ChainedAccount> {
        self.accounts.get(&username.to_ascii_lowercase())
    }

    /// Failed logins since the latest review typed as `username` (compared without case).
    pub fn failed_logins(&self, username: &str) -> u64 {
        self.failed
            .get(&username.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Failed logins since the latest review with names that are none of `known` (lower case).
    pub fn failed_logins_of_unknown_names(&self, known: &dyn Fn(&str) -> bool) -> u64 {
        self.failed
            .iter()
            .filter(|(name, _)| !known(name))
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.failed_overflow
    }

    /// The latest `ACCESS_REVIEWED` event and its time: the start of the review period.
    pub fn previous_review(&self) -> Option<&(PreviousReview, Timestamp)> {
        self.previous_review.as_ref()
    }

    /// The last `_relay` seq observed.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Account events that could not be read (seq, why).
    pub fn unreadable(&self) -> &[(u64, String)] {
        &self.unreadable
    }
}
