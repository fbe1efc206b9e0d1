//! The periodic access review (21 CFR 11.10(d), 11.300(b); issue 18): every account with its
//! role, status, creation (by whom, when, how), last login, last password change, failed
//! logins since the previous review, role history and flags an inspector asks about, built
//! from the account store's rows and the chained account events of `_relay`.
//!
//! The same replay tells where the account rows disagree with the trail
//! ([`row_disagreements`]): an account row edited behind the relay's back (role, status,
//! printed name, second factor, password dates) is a named finding of `verify`.
//!
//! Pure: the caller reads the rows and streams `_relay` through an [`AccountReplay`].

mod replay;
mod text;

pub use replay::{
    AccountReplay, ChainedAccount, Creation, PasswordSetBy, PreviousReview, RoleChange,
};
pub use text::review_lines;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::TrailId;
use crate::ports::{Account, RecordStore, RecordStoreError, RecordStoreExt};
use crate::timestamp::Timestamp;

/// The `format` of every access review this version renders.
pub const ACCESS_REVIEW_FORMAT: &str = "gims-relay access review v1";

/// The domain tag of the review digest.
const DIGEST_TAG: &[u8] = b"gims-relay:access-review:v1\n";

/// How far a stored `password_changed_at` may precede the chained event that set it (the
/// relay reads its clock, hashes the password, stores the row, then appends the event).
pub const PASSWORD_EVENT_TOLERANCE_MICROS: i64 = 300 * 1_000_000;

/// One account in the review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewedAccount {
    /// Login name.
    pub username: String,
    /// Printed name (the signature manifestation).
    pub full_name: String,
    /// Role.
    pub role: String,
    /// `enabled`, `disabled` or `locked`.
    pub status: String,
    /// When the account was created (canonical UTC).
    pub created_at: String,
    /// Who created it (`null`: no chained `REGISTER` event).
    pub created_by: Option<String>,
    /// How it was created (`first_admin`, `second_admin_bootstrap`, `by_admin`, `four_eyes`);
    /// `null`: no chained `REGISTER` event.
    pub creation: Option<Creation>,
    /// Why it was created, as recorded.
    pub creation_reason: Option<String>,
    /// Last successful login (`null`: never).
    pub last_login_at: Option<String>,
    /// Last password change by the owner (`null`: a temporary password is pending).
    pub password_changed_at: Option<String>,
    /// Whether a TOTP second factor is enrolled.
    pub totp_enrolled: bool,
    /// Failed logins typed with this name since the previous review (`LOGIN_FAILED`).
    pub failed_logins: u64,
    /// The account's current failure counter (toward a lockout).
    pub failed_attempts: u32,
    /// Every role it held, creation first, with who changed it, the four-eyes change and why.
    pub role_history: Vec<RoleChange>,
    /// What the reviewer should look at: `bootstrap_second_admin`, `never_logged_in`,
    /// `password_expired`, `temporary_password`, `locked`, `disabled`, `not_chained` (no
    /// `REGISTER` event), `row_disagrees_with_trail`.
    pub flags: Vec<String>,
}

/// The review: what `GET /api/v1/access-review`, `relay-edge access-review` and the sealed
/// package's `access_review.json` hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessReview {
    /// [`ACCESS_REVIEW_FORMAT`].
    pub format: String,
    /// When the review was generated (canonical UTC; not covered by the digest).
    pub generated_at: String,
    /// The `_relay` seq the review was built up to (not covered by the digest).
    pub relay_seq: u64,
    /// The start of the review period: the previous review's time (`null`: since installation).
    pub period_from: Option<String>,
    /// The previous `ACCESS_REVIEWED` event.
    pub previous_review: Option<PreviousReview>,
    /// Every account, by username.
    pub accounts: Vec<ReviewedAccount>,
    /// Failed logins since the previous review with names that are no account.
    pub failed_logins_unknown_names: u64,
    /// SHA-256 (hex) over the review's content, see [`AccessReview::content_digest`]; what an
    /// `ACCESS_REVIEWED` event attests.
    pub digest: String,
}

impl AccessReview {
    /// `SHA-256("gims-relay:access-review:v1" 0x0A || JCS(content))` in lowercase hex, where
    /// content is the review's JSON object without `generated_at`, `relay_seq` and `digest`
    /// ([`review_digest_of_json`] over the review as rendered).
    pub fn content_digest(&self) -> String {
        // Serializing plain strings, numbers and lists cannot fail.
        let value = serde_json::to_value(self).unwrap_or_default();
        review_digest_of_json(&value).unwrap_or_default()
    }

    /// The review as pretty JSON text with a final newline (the package's `access_review.json`).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Streams the whole `_relay` trail of `store` through a new [`AccountReplay`].
pub async fn replay_relay_trail(
    store: &dyn RecordStore,
) -> Result<AccountReplay, RecordStoreError> {
    let mut replay = AccountReplay::new();
    store
        .for_each_record(&TrailId::relay(), 1000, |r| {
            replay.observe(&r);
            true
        })
        .await?;
    Ok(replay)
}

/// The digest of a review given as JSON (an object; `None` otherwise): what
/// [`AccessReview::content_digest`] computes, and what the package verifier recomputes from
/// `access_review.json` without knowing the review's types.
pub fn review_digest_of_json(review: &serde_json::Value) -> Option<String> {
    let mut content = review.as_object()?.clone();
    for volatile in ["generated_at", "relay_seq", "digest"] {
        content.remove(volatile);
    }
    let jcs = serde_json_canonicalizer::to_vec(&serde_json::Value::Object(content)).ok()?;
    let mut h = Sha256::new();
    h.update(DIGEST_TAG);
    h.update(&jcs);
    Some(hex::encode(h.finalize()))
}

/// Builds the review of `accounts` from the chained events in `replay` at `now`; a password
/// older than `password_max_age_micros` is flagged as expired.
pub fn build_review(
    accounts: &[Account],
    replay: &AccountReplay,
    now: Timestamp,
    password_max_age_micros: i64,
) -> AccessReview {
    let disagreeing: std::collections::HashSet<String> = row_disagreements(accounts, replay)
        .into_iter()
        .map(|d| d.username.to_ascii_lowercase())
        .collect();
    let mut rows: Vec<ReviewedAccount> = accounts
        .iter()
        .map(|a| {
            let chained = replay.account(a.username.as_str());
            let locked = a.locked_until.is_some_and(|u| u > now);
            let status = if a.disabled {
                "disabled"
            } else if locked {
                "locked"
            } else {
                "enabled"
            };
            let mut flags = Vec::new();
            let mut flag = |f: &str| flags.push(f.to_owned());
            if chained.is_some_and(|c| c.creation == Creation::SecondAdminBootstrap) {
                flag("bootstrap_second_admin");
            }
            if a.last_login_at.is_none() {
                flag("never_logged_in");
            }
            match a.password_changed_at {
                None => flag("temporary_password"),
                Some(at) if now.micros_since(at) > password_max_age_micros => {
                    flag("password_expired");
                }
                Some(_) => {}
            }
            if locked {
                flag("locked");
            }
            if a.disabled {
                flag("disabled");
            }
            if chained.is_none() {
                flag("not_chained");
            }
            if disagreeing.contains(&a.username.as_str().to_ascii_lowercase()) {
                flag("row_disagrees_with_trail");
            }
            ReviewedAccount {
                username: a.username.as_str().to_owned(),
                full_name: a.full_name.clone(),
                role: a.role.as_str().to_owned(),
                status: status.to_owned(),
                created_at: a.created_at.to_canonical(),
                created_by: chained.map(|c| c.created_by.clone()),
                creation: chained.map(|c| c.creation.clone()),
                creation_reason: chained.and_then(|c| c.creation_reason.clone()),
                last_login_at: a.last_login_at.map(Timestamp::to_canonical),
                password_changed_at: a.password_changed_at.map(Timestamp::to_canonical),
                totp_enrolled: a.totp_secret.is_some(),
                failed_logins: replay.failed_logins(a.username.as_str()),
                failed_attempts: a.failed_attempts,
                role_history: chained.map(|c| c.role_history.clone()).unwrap_or_default(),
                flags,
            }
        })
        .collect();
    rows.sort_by(|x, y| x.username.cmp(&y.username));
    let known: std::collections::HashSet<String> = accounts
        .iter()
        .map(|a| a.username.as_str().to_ascii_lowercase())
        .collect();
    let previous = replay.previous_review();
    let mut review = AccessReview {
        format: ACCESS_REVIEW_FORMAT.to_owned(),
        generated_at: now.to_canonical(),
        relay_seq: replay.last_seq(),
        period_from: previous.map(|(_, at)| at.to_canonical()),
        previous_review: previous.map(|(p, _)| p.clone()),
        accounts: rows,
        failed_logins_unknown_names: replay
            .failed_logins_of_unknown_names(&|name| known.contains(name)),
        digest: String::new(),
    };
    review.digest = review.content_digest();
    review
}

/// An account row that disagrees with what the chained events say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDisagreement {
    /// The account.
    pub username: String,
    /// The field (`role`, `disabled`, `full_name`, `totp_enrolled`, `password_changed_at`,
    /// `account`).
    pub field: &'static str,
    /// What the row holds.
    pub stored: String,
    /// What the trail says.
    pub chained: String,
}

impl std::fmt::Display for RowDisagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} stored={} chained={}",
            self.username, self.field, self.stored, self.chained
        )
    }
}

/// Every place where an account row disagrees with the replay of the chained events: a row no
/// `REGISTER` created, a registered account whose row is gone, and per account the role,
/// status, printed name, TOTP enrolment and password date.
pub fn row_disagreements(accounts: &[Account], replay: &AccountReplay) -> Vec<RowDisagreement> {
    let mut out = Vec::new();
    for a in accounts {
        let username = a.username.as_str().to_owned();
        let mut differ = |field: &'static str, stored: String, chained: String| {
            if stored != chained {
                out.push(RowDisagreement {
                    username: username.clone(),
                    field,
                    stored,
                    chained,
                });
            }
        };
        let Some(c) = replay.account(a.username.as_str()) else {
            differ(
                "account",
                "present".into(),
                "absent (no REGISTER event)".into(),
            );
            continue;
        };
        differ(
            "role",
            a.role.as_str().to_owned(),
            c.role.map_or("unknown", |r| r.as_str()).to_owned(),
        );
        differ("disabled", a.disabled.to_string(), c.disabled.to_string());
        differ("full_name", a.full_name.clone(), c.full_name.clone());
        differ(
            "totp_enrolled",
            a.totp_secret.is_some().to_string(),
            c.totp_enrolled.to_string(),
        );
        if let Some(chained) = password_disagreement(a.password_changed_at, c.password) {
            differ(
                "password_changed_at",
                a.password_changed_at
                    .map_or_else(|| "null".to_owned(), Timestamp::to_canonical),
                chained,
            );
        }
    }
    for (key, c) in replay.accounts() {
        if !accounts
            .iter()
            .any(|a| a.username.as_str().eq_ignore_ascii_case(key))
        {
            out.push(RowDisagreement {
                username: c.username.clone(),
                field: "account",
                stored: "absent".into(),
                chained: format!("registered at _relay#{}", c.created_seq),
            });
        }
    }
    out
}

/// What the trail says about a stored `password_changed_at`, when the two disagree: an owner's
/// password is dated at most [`PASSWORD_EVENT_TOLERANCE_MICROS`] before its event and never
/// after it; an administrator's is temporary (`null`) or dated like an owner's.
fn password_disagreement(
    stored: Option<Timestamp>,
    (set_by, event_at): (PasswordSetBy, Timestamp),
) -> Option<String> {
    let near_event = |t: Timestamp| {
        let before = event_at.micros_since(t);
        (0..=PASSWORD_EVENT_TOLERANCE_MICROS).contains(&before)
    };
    let at = event_at.to_canonical();
    match (stored, set_by) {
        (Some(t), _) if near_event(t) => None,
        (None, PasswordSetBy::Administrator) => None,
        (None, PasswordSetBy::Owner) => Some(format!("set by its owner at {at}")),
        (Some(_), PasswordSetBy::Owner) => Some(format!("set by its owner at {at}")),
        (Some(_), PasswordSetBy::Administrator) => {
            Some(format!("null or about {at} (set by an administrator)"))
        }
    }
}

#[cfg(test)]
mod tests;
