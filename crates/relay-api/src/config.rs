//! What the API can be configured with; the binaries fill it from their configuration.

use std::time::Duration;

use relay_domain::Device;

/// Settings of the review API. [`ApiConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The workstation or server id written on the events the API records.
    pub device: Device,
    /// When true, no account can be registered at all, not even by an administrator (R3.2).
    pub registration_closed: bool,
    /// Failed logins or signature passwords within [`lockout_window`](Self::lockout_window)
    /// that lock an account. Default 5.
    pub lockout_threshold: u32,
    /// The window failures are counted in. Default 15 minutes.
    pub lockout_window: Duration,
    /// How long a locked account stays locked. Default 15 minutes.
    pub lockout_duration: Duration,
    /// How old a password may get before login demands a change. Default 90 days.
    pub password_max_age: Duration,
    /// A session with no request for this long is closed. Default 15 minutes.
    pub session_idle_timeout: Duration,
    /// Lifetime of a token (`exp - iat`), however active the session. Default 8 hours.
    pub token_ttl: Duration,
    /// The `iss` claim of tokens.
    pub issuer: String,
    /// The `aud` claim of tokens.
    pub audience: String,
    /// Largest request body accepted, in bytes. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Shortest password accepted. Default 12 characters.
    pub min_password_chars: usize,
    /// Lowest zxcvbn strength score (0-4) a new password must reach; 0 turns the strength check
    /// off. Default 3 ("safely unguessable": about 10^8 guesses or more).
    pub min_password_score: u8,
    /// How many of an account's last passwords (the current one included) a new one must differ
    /// from; 0 or 1 checks only the current one. Default 5.
    pub password_history: usize,
    /// Whether a password set by an administrator (account creation, password reset) is
    /// temporary: login then gives a token flagged `must_change_password` that only the password
    /// change and logout accept. Default true.
    pub admin_passwords_temporary: bool,
    /// Failed logins (401, and 429 `locked`) from one client address within
    /// [`client_failure_window`](Self::client_failure_window) after which that client's further
    /// logins are answered 429 `too_many_attempts` before any password is checked; 0 turns the
    /// per-client limit off. The client is the peer address (an IPv6 /64); behind a reverse
    /// proxy every client has the proxy's address. Default 30.
    pub client_failure_limit: u32,
    /// The window of [`client_failure_limit`](Self::client_failure_limit), fixed from a
    /// client's first failure. Default 5 minutes.
    pub client_failure_window: Duration,
    /// Most records one event query scans (filtering happens while scanning). Default 5000.
    pub max_scan: usize,
    /// The server of record: its forwarded trails are byte-identical replicas of the edges',
    /// so the API never writes into them (signatures are made on the edge). Default false.
    pub server_of_record: bool,
    /// Enrollment codes only through an approved four-eyes `enrollment_code` change (issue 24):
    /// `POST /api/v1/fleet/codes` answers 403 `four_eyes_required`. Default false.
    pub enrollment_four_eyes: bool,
    /// How long a proposed configuration change can be approved. Default 72 hours.
    pub change_expiry: Duration,
    /// How long sealed packages made through `POST /exports` are kept, and how many one
    /// requester may hold.
    pub export_retention: ExportRetention,
    /// Account names refused as generic (21 CFR 11.300(a): one person per account), compared
    /// without case, also followed by digits (`admin2`). Default [`GENERIC_ACCOUNT_NAMES`].
    pub generic_account_names: Vec<String>,
    /// Words that mark a shared account anywhere among a name's `.`/`_`/`-` separated parts
    /// (`qc-team`, `nmr.lab`), also followed by digits. Default [`SHARED_ACCOUNT_MARKERS`].
    pub shared_account_markers: Vec<String>,
    /// The signing workflow's rules (order, separation of duties, superseded records). Changed
    /// only by an approved four-eyes `signing_workflow` change, applied at the next start.
    /// Default strict ([`relay_domain::workflow::WorkflowPolicy::STRICT`]).
    pub signing_workflow: relay_domain::workflow::WorkflowPolicy,
    /// The most records [`ApiState::warm_review_index`](crate::ApiState::warm_review_index)
    /// reads at a start, the smallest trails first; the trails beyond it get their review index
    /// at their first read. 0: no warm-up at all. Default
    /// [`DEFAULT_REVIEW_WARM_BUDGET_RECORDS`].
    pub review_warm_budget_records: u64,
}

/// The default [`ApiConfig::review_warm_budget_records`]: about 10 s of reading at a start on
/// the development machine.
pub const DEFAULT_REVIEW_WARM_BUDGET_RECORDS: u64 = 2_000_000;

/// The default markers of shared accounts.
pub const SHARED_ACCOUNT_MARKERS: &[&str] = &[
    "team", "group", "shared", "share", "lab", "labs", "qc", "qa", "common", "everyone", "guest",
    "test", "generic", "temp", "demo",
];

/// The default generic or shared account names refused at account creation.
pub const GENERIC_ACCOUNT_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "lab",
    "labs",
    "test",
    "tester",
    "testing",
    "shared",
    "share",
    "user",
    "users",
    "guest",
    "team",
    "group",
    "qc",
    "qa",
    "operator",
    "reviewer",
    "auditor",
    "system",
    "service",
    "default",
    "demo",
    "temp",
    "generic",
    "everyone",
    "common",
    "instrument",
    "nmr",
];

/// Retention of sealed export packages made through the API: they are evidence copies, not
/// the record (the trail is), so they are removed after `max_age`, and a requester holding
/// `per_user_quota` packages is refused another (429 `export_quota`) until one expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRetention {
    /// Packages older than this are removed (each removal is recorded). Default 7 days.
    pub max_age: Duration,
    /// Most packages one account may hold at once. Default 20.
    pub per_user_quota: usize,
}

impl Default for ExportRetention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            per_user_quota: 20,
        }
    }
}

impl ApiConfig {
    /// The defaults, for workstation `device`.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            registration_closed: false,
            lockout_threshold: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            password_max_age: Duration::from_secs(90 * 24 * 3600),
            session_idle_timeout: Duration::from_secs(15 * 60),
            token_ttl: Duration::from_secs(8 * 3600),
            issuer: "gims-relay".into(),
            audience: "gims-relay-api".into(),
            max_body_bytes: 64 * 1024,
            min_password_chars: 12,
            min_password_score: 3,
            password_history: 5,
            admin_passwords_temporary: true,
            client_failure_limit: 30,
            client_failure_window: Duration::from_secs(5 * 60),
            max_scan: 5000,
            server_of_record: false,
            enrollment_four_eyes: false,
            change_expiry: Duration::from_secs(72 * 3600),
            export_retention: ExportRetention::default(),
            generic_account_names: GENERIC_ACCOUNT_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            shared_account_markers: SHARED_ACCOUNT_MARKERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            signing_workflow: relay_domain::workflow::WorkflowPolicy::STRICT,
            review_warm_budget_records: DEFAULT_REVIEW_WARM_BUDGET_RECORDS,
        }
    }
}

/// Shortest `min_password_chars` a configuration may set: below 8 characters no strength rule
/// makes a password resist an offline guess (NIST SP 800-63B's floor).
pub const MIN_PASSWORD_CHARS_FLOOR: usize = 8;

/// Longest `min_password_chars` a configuration may set (a password has at most 1024 bytes).
pub const MIN_PASSWORD_CHARS_CEILING: usize = 128;

/// Most passwords `password_history` may keep: each is one Argon2 verification at every change.
pub const PASSWORD_HISTORY_CEILING: usize = 24;

/// Longest `client_failure_window` a configuration may set (one day).
pub const CLIENT_FAILURE_WINDOW_CEILING: Duration = Duration::from_secs(24 * 3600);

/// A setting of [`ApiConfig`] a configuration gave a value the API cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
#[non_exhaustive]
pub struct InvalidSetting {
    /// The setting, named as in the configuration files.
    pub setting: &'static str,
    /// What is wrong and what is accepted.
    pub problem: String,
}

impl InvalidSetting {
    fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }
}

impl ApiConfig {
    /// Checks the identity and login settings a configuration file may change
    /// (`min_password_chars`, `min_password_score`, `password_history`, the generic name and
    /// shared marker lists, the per-client failure limit); the first unusable one is named.
    pub fn check_identity_settings(&self) -> Result<(), InvalidSetting> {
        if !(MIN_PASSWORD_CHARS_FLOOR..=MIN_PASSWORD_CHARS_CEILING)
            .contains(&self.min_password_chars)
        {
            return Err(InvalidSetting::new(
                "min_password_chars",
                format!(
                    "{} is not accepted; it must be between {MIN_PASSWORD_CHARS_FLOOR} and \
                     {MIN_PASSWORD_CHARS_CEILING} (default 12)",
                    self.min_password_chars
                ),
            ));
        }
        if self.min_password_score > 4 {
            return Err(InvalidSetting::new(
                "min_password_score",
                format!(
                    "{} is not a zxcvbn score; it must be between 0 (no strength check) and 4 \
                     (default 3)",
                    self.min_password_score
                ),
            ));
        }
        if self.password_history > PASSWORD_HISTORY_CEILING {
            return Err(InvalidSetting::new(
                "password_history",
                format!(
                    "{} is too many; at most {PASSWORD_HISTORY_CEILING} (each is one Argon2 \
                     verification at every password change; default 5)",
                    self.password_history
                ),
            ));
        }
        check_words(
            "generic_account_names",
            &self.generic_account_names,
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
            "ASCII letters, digits, '.', '_' or '-' (an account name)",
        )?;
        check_words(
            "shared_account_markers",
            &self.shared_account_markers,
            |c| c.is_ascii_alphanumeric(),
            "ASCII letters and digits (a marker is matched against the '.', '_' or '-' \
             separated parts of a name, so it cannot contain a separator)",
        )?;
        if self.client_failure_limit > 0
            && (self.client_failure_window.is_zero()
                || self.client_failure_window > CLIENT_FAILURE_WINDOW_CEILING)
        {
            return Err(InvalidSetting::new(
                "client_failure_window_secs",
                format!(
                    "{} s is not accepted; it must be between 1 and {} s (default 300), or set \
                     client_failure_limit = 0 to turn the per-client limit off",
                    self.client_failure_window.as_secs(),
                    CLIENT_FAILURE_WINDOW_CEILING.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// The identity and login settings weaker than their defaults, one sentence each, for the
    /// warning a relay logs at start (empty: every one at least as strict as the default).
    pub fn weakened_identity_settings(&self) -> Vec<String> {
        let strict = ApiConfig::new(self.device.clone());
        let mut weaker = Vec::new();
        if self.min_password_chars < strict.min_password_chars {
            weaker.push(format!(
                "min_password_chars = {} (default {}): shorter passwords are accepted",
                self.min_password_chars, strict.min_password_chars
            ));
        }
        if self.min_password_score < strict.min_password_score {
            weaker.push(format!(
                "min_password_score = {} (default {}): {}",
                self.min_password_score,
                strict.min_password_score,
                if self.min_password_score == 0 {
                    "the strength check is off"
                } else {
                    "easier passwords are accepted"
                }
            ));
        }
        if self.password_history < strict.password_history {
            weaker.push(format!(
                "password_history = {} (default {}): older passwords may be reused sooner",
                self.password_history, strict.password_history
            ));
        }
        if !self.admin_passwords_temporary {
            weaker.push(
                "admin_passwords_temporary = false (default true): a password an administrator \
                 set is not changed by its owner at the first login, so two people know it"
                    .to_owned(),
            );
        }
        for (setting, list, defaults) in [
            (
                "generic_account_names",
                &self.generic_account_names,
                &strict.generic_account_names,
            ),
            (
                "shared_account_markers",
                &self.shared_account_markers,
                &strict.shared_account_markers,
            ),
        ] {
            let dropped: Vec<&str> = defaults
                .iter()
                .filter(|d| !list.iter().any(|w| w.eq_ignore_ascii_case(d)))
                .map(String::as_str)
                .collect();
            if !dropped.is_empty() {
                weaker.push(format!(
                    "{setting} replaces the default list and leaves out {} of its entries \
                     ({}): those names are accepted",
                    dropped.len(),
                    dropped.join(", ")
                ));
            }
        }
        if self.client_failure_limit == 0 {
            weaker.push(
                "client_failure_limit = 0 (default 30): failed logins are not limited per client \
                 address"
                    .to_owned(),
            );
        } else if self.client_failure_limit > strict.client_failure_limit
            || self.client_failure_window < strict.client_failure_window
        {
            weaker.push(format!(
                "client_failure_limit = {} per {} s (default {} per {} s): one client may fail \
                 more often",
                self.client_failure_limit,
                self.client_failure_window.as_secs(),
                strict.client_failure_limit,
                strict.client_failure_window.as_secs()
            ));
        }
        weaker
    }
}

/// Refuses an entry of list `setting` that is empty, longer than 64 characters, or has a
/// character `allowed` refuses (`what` says which are allowed).
fn check_words(
    setting: &'static str,
    list: &[String],
    allowed: impl Fn(char) -> bool,
    what: &str,
) -> Result<(), InvalidSetting> {
    for word in list {
        if word.is_empty() || word.chars().count() > 64 || !word.chars().all(&allowed) {
            return Err(InvalidSetting::new(
                setting,
                format!("{word:?} is not accepted; each entry is 1-64 characters of {what}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ApiConfig {
        ApiConfig::new(Device::new("ws").unwrap())
    }

    // REQ: R3.2
    #[test]
    fn the_defaults_pass_the_checks_and_weaken_nothing() {
        let c = config();
        c.check_identity_settings().unwrap();
        assert_eq!(c.weakened_identity_settings(), Vec::<String>::new());
    }

    // REQ: R3.2
    #[test]
    fn unusable_identity_settings_are_named() {
        let refused = |change: &dyn Fn(&mut ApiConfig)| {
            let mut c = config();
            change(&mut c);
            c.check_identity_settings().unwrap_err()
        };
        assert_eq!(
            refused(&|c| c.min_password_chars = 7).setting,
            "min_password_chars"
        );
        assert_eq!(
            refused(&|c| c.min_password_chars = 129).setting,
            "min_password_chars"
        );
        let e = refused(&|c| c.min_password_score = 5);
        assert_eq!(e.setting, "min_password_score");
        assert!(e.to_string().contains("between 0"), "{e}");
        assert_eq!(
            refused(&|c| c.password_history = 25).setting,
            "password_history"
        );
        let e = refused(&|c| c.generic_account_names = vec!["nmr box".into()]);
        assert!(e.to_string().contains("\"nmr box\""), "{e}");
        assert_eq!(
            refused(&|c| c.generic_account_names = vec![String::new()]).setting,
            "generic_account_names"
        );
        assert_eq!(
            refused(&|c| c.shared_account_markers = vec!["qc-team".into()]).setting,
            "shared_account_markers"
        );
        assert_eq!(
            refused(&|c| c.client_failure_window = Duration::ZERO).setting,
            "client_failure_window_secs"
        );
        let mut off = config();
        off.client_failure_limit = 0;
        off.client_failure_window = Duration::ZERO;
        off.check_identity_settings().unwrap();
    }

    // REQ: R3.2
    #[test]
    fn each_weakened_default_is_one_warning_and_stricter_values_none() {
        let mut c = config();
        c.min_password_chars = 16;
        c.min_password_score = 4;
        c.password_history = 10;
        c.client_failure_limit = 10;
        c.generic_account_names.push("nmrbox".into());
        assert!(c.weakened_identity_settings().is_empty());

        c.min_password_chars = 10;
        c.min_password_score = 0;
        c.password_history = 1;
        c.admin_passwords_temporary = false;
        c.generic_account_names = vec!["nmrbox".into()];
        c.client_failure_limit = 0;
        let warnings = c.weakened_identity_settings();
        assert_eq!(warnings.len(), 6, "{warnings:#?}");
        assert!(
            warnings[1].contains("strength check is off"),
            "{warnings:#?}"
        );
        assert!(
            warnings[4].starts_with("generic_account_names replaces the default list")
                && warnings[4].contains("admin"),
            "{warnings:#?}"
        );
    }
}
