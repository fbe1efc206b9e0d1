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
    /// Most records one event query scans (filtering happens while scanning). Default 5000.
    pub max_scan: usize,
    /// The server of record: its forwarded trails are byte-identical replicas of the edges',
    /// so the API never writes into them (signatures are made on the edge). Default false.
    pub server_of_record: bool,
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
}

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
            max_scan: 5000,
            server_of_record: false,
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
        }
    }
}
