//! Who a capture event is attributed to (R2.1): the person who produced the file, resolved by
//! the relay from the OS, never taken from the file's content or the network.
//!
//! The relay runs in one of two modes, told apart by the account it runs as:
//!
//! - **session mode**: the relay runs as a person's own account (started at their login, see
//!   `deploy/systemd/user/` and `deploy/xdg/`): every capture names that account
//!   (`os_session`), as before this module existed;
//! - **service mode**: the relay runs as a service or system account (the shipped system unit's
//!   `User=relay`, or root): the process user produced none of the files, so a capture names the
//!   file's owner when that is a person's account (`file_owner`), else the person on the active
//!   local console session (`console_session`), else nobody: the event is still recorded,
//!   attributed to the service identity (`service`) with `"unattributed": true` in its payload.
//!
//! Which accounts are "a person's" is the platform's rule ([`OsAccounts::account`]); on Unix it
//! is [`SystemAccounts`]: a uid in `UID_MIN..=UID_MAX` of `/etc/login.defs` (1000..=60000 when
//! absent) whose login shell is not `nologin` or `false`. The platform code sits behind the
//! [`OsAccounts`] trait so another one (Windows: owner SID, WTS console session) can follow.
//!
//! Every file event's payload also carries the file's owner (`owner`, `owner_uid`) and the
//! relay's process user (`process_user`, `process_uid`), whatever the policy chose.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_domain::{Actor, ActorSource};
use serde_json::{Map, Value, json};

use crate::error::ActorError;

/// Payload field names of attribution.
pub mod field {
    /// The file owner's account name (`null` when the uid has no account).
    pub const OWNER: &str = "owner";
    /// The file owner's numeric uid.
    pub const OWNER_UID: &str = "owner_uid";
    /// The account name the relay process runs as.
    pub const PROCESS_USER: &str = "process_user";
    /// The relay process's numeric (effective) uid.
    pub const PROCESS_UID: &str = "process_uid";
    /// `true` when no person could be resolved and the service identity is recorded instead.
    pub const UNATTRIBUTED: &str = "unattributed";
}

/// How long one answer of the console session lookup is reused, so a burst of captures asks
/// the session manager once rather than once per file.
pub const CONSOLE_LOOKUP_TTL: Duration = Duration::from_secs(2);

/// One OS account as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsAccount {
    /// The numeric user id.
    pub uid: u32,
    /// The account name; `None` when the uid has no entry in the account database.
    pub name: Option<String>,
    /// Whether this is a person's account (the platform's rule), not a service or system one.
    pub person: bool,
}

impl OsAccount {
    /// The account as an actor, if it has a name the domain accepts.
    fn actor(&self) -> Option<Actor> {
        self.name.as_ref().and_then(|n| Actor::new(n.clone()).ok())
    }

    /// A person's account with a usable name, as an actor.
    fn person_actor(&self) -> Option<Actor> {
        if self.person { self.actor() } else { None }
    }
}

/// The OS's account database and login sessions: the platform side of attribution.
///
/// # Contract
///
/// - [`process_account`](Self::process_account) is the account this process runs as (its
///   effective uid); it fails rather than invent a name.
/// - [`account`](Self::account) never fails: a uid the database does not know is an account
///   with no name that is not a person's.
/// - [`console_user`](Self::console_user) is the person on the workstation's active local
///   (not remote) console session: `Ok(None)` when there is none, `Err` with the reason when
///   the session manager cannot be asked (the caller records that as "no console session").
/// - Every method may block (an NSS lookup, a session manager call): call them off the async
///   executor.
pub trait OsAccounts: Send + Sync + fmt::Debug {
    /// The account this process runs as.
    fn process_account(&self) -> Result<OsAccount, ActorError>;
    /// The account of `uid`.
    fn account(&self, uid: u32) -> OsAccount;
    /// The person on the active local console session, if any.
    fn console_user(&self) -> Result<Option<OsAccount>, String>;
    /// The rule that makes an account a person's, for the start-up posture and qualification.
    fn person_rule(&self) -> String;
}

/// Which person a capture is attributed to (the `attribution` setting of the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AttributionPolicy {
    /// Session mode when the relay runs as a person's account (the process user), service mode
    /// otherwise (file owner, then console session, then unattributed).
    #[default]
    Auto,
    /// Always the process user (`os_session`), whoever it is: the behaviour before attribution
    /// existed. Under a service account every capture names the service account.
    ProcessUser,
    /// The file's owner when that is a person's account, else unattributed (no console guess).
    FileOwner,
    /// The person on the active local console session, else unattributed (owners ignored).
    ConsoleSession,
}

impl AttributionPolicy {
    /// Every policy, in documentation order.
    pub const ALL: [AttributionPolicy; 4] = [
        AttributionPolicy::Auto,
        AttributionPolicy::ProcessUser,
        AttributionPolicy::FileOwner,
        AttributionPolicy::ConsoleSession,
    ];

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionPolicy::Auto => "auto",
            AttributionPolicy::ProcessUser => "process_user",
            AttributionPolicy::FileOwner => "file_owner",
            AttributionPolicy::ConsoleSession => "console_session",
        }
    }

    /// Parses the setting's value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for AttributionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attribution of one capture event: its actor, how it was resolved, and the payload
/// fields that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributed {
    /// The record's actor.
    pub actor: Actor,
    /// The record's actor source.
    pub source: ActorSource,
    /// The file's owner, when the event is about a known file version.
    pub owner: Option<OsAccount>,
    /// The relay's process user (`None` for a fixed actor, which records no attribution fields).
    pub process: Option<OsAccount>,
    /// No person was resolved: `actor` is the service identity.
    pub unattributed: bool,
}

impl Attributed {
    /// Adds `owner`, `owner_uid`, `process_user`, `process_uid` and `unattributed` to `payload`.
    pub fn add_to(&self, payload: &mut Map<String, Value>) {
        if let Some(owner) = &self.owner {
            payload.insert(field::OWNER.into(), json!(owner.name));
            payload.insert(field::OWNER_UID.into(), json!(owner.uid));
        }
        if let Some(process) = &self.process {
            payload.insert(field::PROCESS_USER.into(), json!(process.name));
            payload.insert(field::PROCESS_UID.into(), json!(process.uid));
        }
        if self.unattributed {
            payload.insert(field::UNATTRIBUTED.into(), json!(true));
        }
    }
}

/// Resolves the actor of every capture event (see the module documentation).
#[derive(Debug, Clone)]
pub struct Attribution {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    /// One actor for every event, as `os_session`, with no attribution fields (embedders and
    /// tests that name the actor themselves).
    Fixed(Actor),
    Resolved(Arc<Resolver>),
}

#[derive(Debug)]
struct Resolver {
    policy: AttributionPolicy,
    accounts: Arc<dyn OsAccounts>,
    process: OsAccount,
    process_actor: Actor,
}

/// What a start-up or qualification can say in advance about attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributionOutlook {
    /// The policy in force.
    pub policy: AttributionPolicy,
    /// `session` (the relay runs as a person's account) or `service`.
    pub mode: &'static str,
    /// The process user.
    pub process: OsAccount,
    /// The person on the active console session now, or why it cannot be known.
    pub console: Result<Option<OsAccount>, String>,
    /// The rule that makes an account a person's.
    pub person_rule: String,
    /// Why some captures will (or may) be recorded `unattributed`, one reason per line; empty
    /// when every capture will name a person.
    pub warnings: Vec<String>,
}

impl AttributionOutlook {
    /// The outlook as the `attribution` member of the `STARTUP` posture.
    pub fn to_json(&self) -> Value {
        let account = |a: &OsAccount| json!({ "name": a.name, "uid": a.uid, "person": a.person });
        json!({
            "policy": self.policy.as_str(),
            "mode": self.mode,
            "process_user": account(&self.process),
            "person_rule": self.person_rule,
            "console_session": match &self.console {
                Ok(Some(a)) => account(a),
                Ok(None) => Value::Null,
                Err(reason) => json!({ "unavailable": reason }),
            },
            "warnings": self.warnings,
        })
    }
}

impl Attribution {
    /// Every event attributed to `actor` as `os_session`, with no attribution fields.
    pub fn fixed(actor: Actor) -> Self {
        Self {
            inner: Inner::Fixed(actor),
        }
    }

    /// Attribution by `policy` over the platform's `accounts`. Fails when the process user
    /// cannot be named (R2.2: not even the service identity would be known).
    pub fn new(
        policy: AttributionPolicy,
        accounts: Arc<dyn OsAccounts>,
    ) -> Result<Self, ActorError> {
        let process = accounts.process_account()?;
        let name = process.name.clone().ok_or_else(|| {
            ActorError::Lookup(std::io::Error::other(format!(
                "uid {} has no account name",
                process.uid
            )))
        })?;
        let process_actor = Actor::new(name).map_err(ActorError::Invalid)?;
        Ok(Self {
            inner: Inner::Resolved(Arc::new(Resolver {
                policy,
                accounts,
                process,
                process_actor,
            })),
        })
    }

    /// The actor when nothing about a file is known: the process user (or the fixed actor).
    pub fn process_actor(&self) -> &Actor {
        match &self.inner {
            Inner::Fixed(actor) => actor,
            Inner::Resolved(r) => &r.process_actor,
        }
    }

    /// Whether [`resolve`](Self::resolve) may block (it asks the OS); a fixed actor never does.
    pub fn asks_the_os(&self) -> bool {
        matches!(self.inner, Inner::Resolved(_))
    }

    /// The attribution of an event about a file owned by `owner_uid` (`None`: not known, e.g.
    /// a failure before the file could be stat'ed). May block: see [`OsAccounts`].
    pub fn resolve(&self, owner_uid: Option<u32>) -> Attributed {
        let r = match &self.inner {
            Inner::Fixed(actor) => {
                return Attributed {
                    actor: actor.clone(),
                    source: ActorSource::OsSession,
                    owner: None,
                    process: None,
                    unattributed: false,
                };
            }
            Inner::Resolved(r) => r,
        };
        let owner = owner_uid.map(|uid| r.accounts.account(uid));
        let from_owner = || owner.as_ref().and_then(OsAccount::person_actor);
        let from_console = || match r.accounts.console_user() {
            Ok(Some(user)) => user.person_actor(),
            Ok(None) => None,
            Err(reason) => {
                tracing::debug!(reason = %reason, "console session cannot be asked");
                None
            }
        };
        let chosen = match r.policy {
            AttributionPolicy::ProcessUser => {
                Some((r.process_actor.clone(), ActorSource::OsSession))
            }
            AttributionPolicy::Auto if r.process.person => {
                Some((r.process_actor.clone(), ActorSource::OsSession))
            }
            AttributionPolicy::Auto => from_owner()
                .map(|a| (a, ActorSource::FileOwner))
                .or_else(|| from_console().map(|a| (a, ActorSource::ConsoleSession))),
            AttributionPolicy::FileOwner => from_owner().map(|a| (a, ActorSource::FileOwner)),
            AttributionPolicy::ConsoleSession => {
                from_console().map(|a| (a, ActorSource::ConsoleSession))
            }
        };
        let (actor, source, unattributed) = match chosen {
            Some((actor, source)) => (actor, source, false),
            None => (r.process_actor.clone(), ActorSource::Service, true),
        };
        Attributed {
            actor,
            source,
            owner,
            process: Some(r.process.clone()),
            unattributed,
        }
    }

    /// What can be said in advance: the mode, the console session now, and whether captures
    /// will be recorded unattributed. `None` for a fixed actor. May block.
    pub fn outlook(&self) -> Option<AttributionOutlook> {
        let Inner::Resolved(r) = &self.inner else {
            return None;
        };
        let console = r.accounts.console_user();
        let console_person = matches!(&console, Ok(Some(a)) if a.person_actor().is_some());
        let no_console = match &console {
            Ok(Some(a)) if a.person_actor().is_some() => String::new(),
            Ok(Some(a)) => format!(
                "the console session's user (uid {}) is not a person's account",
                a.uid
            ),
            Ok(None) => "there is no active local console session".to_owned(),
            Err(reason) => format!("the console session cannot be asked ({reason})"),
        };
        let service = !r.process.person;
        let process = r.process.name.as_deref().unwrap_or("?");
        let mut warnings = Vec::new();
        match r.policy {
            AttributionPolicy::ProcessUser if service => warnings.push(format!(
                "attribution = \"process_user\" while the relay runs as the service account \
                 {process} (uid {}): every capture names {process}, not the person who produced \
                 the file",
                r.process.uid
            )),
            AttributionPolicy::ProcessUser => {}
            AttributionPolicy::Auto if !service => {}
            AttributionPolicy::Auto if !console_person => warnings.push(format!(
                "the relay runs as the service account {process} (uid {}) and {no_console}: a \
                 file not owned by a person's account will be recorded \"unattributed\"",
                r.process.uid
            )),
            AttributionPolicy::Auto => {}
            AttributionPolicy::FileOwner => warnings.push(
                "attribution = \"file_owner\": a file not owned by a person's account will be \
                 recorded \"unattributed\""
                    .to_owned(),
            ),
            AttributionPolicy::ConsoleSession if !console_person => warnings.push(format!(
                "attribution = \"console_session\" and {no_console}: captures will be recorded \
                 \"unattributed\" until a person logs in at the console"
            )),
            AttributionPolicy::ConsoleSession => {}
        }
        Some(AttributionOutlook {
            policy: r.policy,
            mode: if service { "service" } else { "session" },
            process: r.process.clone(),
            console,
            person_rule: r.accounts.person_rule(),
            warnings,
        })
    }
}

/// The Unix account database (NSS, so LDAP/SSSD accounts too) and systemd-logind sessions.
///
/// A person's account: a uid in `UID_MIN..=UID_MAX` of `/etc/login.defs` (1000..=60000 when the
/// file or the key is absent) whose login shell is not `nologin` or `false`. The console
/// session: the active session of `seat0` as `loginctl` reports it (logind's documented
/// interface), when it is local (`Remote=no`), of class `user` and `active`.
#[derive(Debug)]
pub struct SystemAccounts {
    uid_min: u32,
    uid_max: u32,
    console: Mutex<Option<(Instant, ConsoleAnswer)>>,
}

/// One answer of the console session lookup (see [`OsAccounts::console_user`]).
type ConsoleAnswer = Result<Option<OsAccount>, String>;

/// `UID_MIN` when `/etc/login.defs` does not say.
pub const DEFAULT_UID_MIN: u32 = 1000;
/// `UID_MAX` when `/etc/login.defs` does not say.
pub const DEFAULT_UID_MAX: u32 = 60000;

impl SystemAccounts {
    /// The rule read from `/etc/login.defs` (the defaults when it cannot be read).
    pub fn from_login_defs() -> Self {
        let text = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
        Self::with_login_defs(&text)
    }

    /// The rule read from the text of a `login.defs` file.
    pub fn with_login_defs(text: &str) -> Self {
        let key = |name: &str| {
            text.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(name))
                    .then(|| words.next().and_then(|v| v.parse::<u32>().ok()))
                    .flatten()
            })
        };
        Self {
            uid_min: key("UID_MIN").unwrap_or(DEFAULT_UID_MIN),
            uid_max: key("UID_MAX").unwrap_or(DEFAULT_UID_MAX),
            console: Mutex::new(None),
        }
    }

    fn is_person(&self, uid: u32, shell: &std::path::Path) -> bool {
        let no_login = shell
            .file_name()
            .is_some_and(|n| n == "nologin" || n == "false");
        (self.uid_min..=self.uid_max).contains(&uid) && !no_login
    }

    fn ask_logind(&self) -> Result<Option<OsAccount>, String> {
        let session = loginctl(&["show-seat", "seat0", "--property=ActiveSession", "--value"])?;
        let session = session.trim();
        if session.is_empty() {
            return Ok(None);
        }
        let props = loginctl(&[
            "show-session",
            session,
            "--property=Uid",
            "--property=Remote",
            "--property=Class",
            "--property=State",
        ])?;
        let prop = |name: &str| {
            props.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::trim)
            })
        };
        if prop("Remote") != Some("no") || prop("Class") != Some("user") {
            return Ok(None);
        }
        if prop("State") != Some("active") {
            return Ok(None);
        }
        let uid = prop("Uid")
            .and_then(|u| u.parse::<u32>().ok())
            .ok_or_else(|| format!("session {session} has no Uid"))?;
        Ok(Some(self.account(uid)))
    }
}

/// Runs `loginctl` with `args` and returns its output, or why it could not answer.
fn loginctl(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("loginctl")
        .arg("--no-pager")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("loginctl cannot run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: Vec<&str> = err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return Err(format!(
            "loginctl {}: {}",
            args.first().copied().unwrap_or_default(),
            err.join("; ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl OsAccounts for SystemAccounts {
    fn process_account(&self) -> Result<OsAccount, ActorError> {
        let uid = nix::unistd::geteuid().as_raw();
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => Ok(OsAccount {
                uid,
                person: self.is_person(uid, &user.shell),
                name: Some(user.name),
            }),
            Ok(None) => Err(ActorError::Lookup(std::io::Error::other(format!(
                "uid {uid} has no entry in the account database"
            )))),
            Err(e) => Err(ActorError::Lookup(std::io::Error::from(e))),
        }
    }

    fn account(&self, uid: u32) -> OsAccount {
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => OsAccount {
                uid,
                person: self.is_person(uid, &user.shell),
                name: Some(user.name),
            },
            Ok(None) => OsAccount {
                uid,
                name: None,
                person: false,
            },
            Err(e) => {
                tracing::warn!(uid, error = %e, "account database lookup failed");
                OsAccount {
                    uid,
                    name: None,
                    person: false,
                }
            }
        }
    }

    fn console_user(&self) -> Result<Option<OsAccount>, String> {
        let mut cached = self
            .console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, answer)) = cached.as_ref()
            && at.elapsed() < CONSOLE_LOOKUP_TTL
        {
            return answer.clone();
        }
        let answer = self.ask_logind();
        *cached = Some((Instant::now(), answer.clone()));
        answer
    }

    fn person_rule(&self) -> String {
        format!(
            "uid in {}..={} (UID_MIN..=UID_MAX of /etc/login.defs) and a login shell other than \
             nologin or false",
            self.uid_min, self.uid_max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A platform with fixed accounts and console answer.
    #[derive(Debug)]
    struct FakeAccounts {
        process: OsAccount,
        accounts: Vec<OsAccount>,
        console: Result<Option<u32>, String>,
    }

    fn person(uid: u32, name: &str) -> OsAccount {
        OsAccount {
            uid,
            name: Some(name.into()),
            person: true,
        }
    }

    fn system(uid: u32, name: &str) -> OsAccount {
        OsAccount {
            uid,
            name: Some(name.into()),
            person: false,
        }
    }

    impl OsAccounts for FakeAccounts {
        fn process_account(&self) -> Result<OsAccount, ActorError> {
            Ok(self.process.clone())
        }
        fn account(&self, uid: u32) -> OsAccount {
            self.accounts
                .iter()
                .find(|a| a.uid == uid)
                .cloned()
                .unwrap_or(OsAccount {
                    uid,
                    name: None,
                    person: false,
                })
        }
        fn console_user(&self) -> Result<Option<OsAccount>, String> {
            self.console
                .clone()
                .map(|uid| uid.map(|uid| self.account(uid)))
        }
        fn person_rule(&self) -> String {
            "fake".into()
        }
    }

    fn attribution(
        policy: AttributionPolicy,
        process: OsAccount,
        console: Result<Option<u32>, String>,
    ) -> Attribution {
        let accounts = FakeAccounts {
            accounts: vec![
                process.clone(),
                person(1001, "alice"),
                person(1002, "bob"),
                system(65534, "nobody"),
            ],
            process,
            console,
        };
        Attribution::new(policy, Arc::new(accounts)).unwrap()
    }

    fn who(a: &Attributed) -> (&str, ActorSource, bool) {
        (a.actor.as_str(), a.source, a.unattributed)
    }

    // REQ: R2.1
    #[test]
    fn session_mode_keeps_the_process_user() {
        let a = attribution(AttributionPolicy::Auto, person(1002, "bob"), Ok(None));
        let got = a.resolve(Some(1001));
        assert_eq!(who(&got), ("bob", ActorSource::OsSession, false));
        // The owner is still recorded beside the actor.
        assert_eq!(got.owner, Some(person(1001, "alice")));
        assert_eq!(a.outlook().unwrap().mode, "session");
        assert!(a.outlook().unwrap().warnings.is_empty());
    }

    // REQ: R2.1
    #[test]
    fn service_mode_names_the_owner_then_the_console_then_nobody() {
        let relay = system(998, "relay");
        let a = attribution(AttributionPolicy::Auto, relay.clone(), Ok(Some(1002)));
        assert_eq!(
            who(&a.resolve(Some(1001))),
            ("alice", ActorSource::FileOwner, false)
        );
        assert_eq!(
            who(&a.resolve(Some(65534))),
            ("bob", ActorSource::ConsoleSession, false)
        );
        assert_eq!(
            who(&a.resolve(None)),
            ("bob", ActorSource::ConsoleSession, false)
        );
        assert!(a.outlook().unwrap().warnings.is_empty());

        let lonely = attribution(AttributionPolicy::Auto, relay, Err("no logind".into()));
        let got = lonely.resolve(Some(65534));
        assert_eq!(who(&got), ("relay", ActorSource::Service, true));
        let mut payload = Map::new();
        got.add_to(&mut payload);
        assert_eq!(
            Value::Object(payload),
            json!({"owner": "nobody", "owner_uid": 65534, "process_user": "relay",
                   "process_uid": 998, "unattributed": true})
        );
        let outlook = lonely.outlook().unwrap();
        assert_eq!(outlook.mode, "service");
        assert!(outlook.warnings[0].contains("no logind"), "{outlook:?}");
    }

    // REQ: R2.1
    #[test]
    fn explicit_policies_do_what_they_say() {
        let relay = system(998, "relay");
        let owner_only = attribution(AttributionPolicy::FileOwner, relay.clone(), Ok(Some(1002)));
        assert_eq!(
            who(&owner_only.resolve(Some(65534))),
            ("relay", ActorSource::Service, true)
        );
        let console_only = attribution(
            AttributionPolicy::ConsoleSession,
            relay.clone(),
            Ok(Some(1002)),
        );
        assert_eq!(
            who(&console_only.resolve(Some(1001))),
            ("bob", ActorSource::ConsoleSession, false)
        );
        let legacy = attribution(AttributionPolicy::ProcessUser, relay, Ok(Some(1002)));
        assert_eq!(
            who(&legacy.resolve(Some(1001))),
            ("relay", ActorSource::OsSession, false)
        );
        assert!(legacy.outlook().unwrap().warnings[0].contains("process_user"));
        // An owner uid with no account is recorded by number and is nobody's.
        let got = owner_only.resolve(Some(4242));
        assert_eq!(got.owner.unwrap().name, None);
        assert!(got.unattributed);
    }

    #[test]
    fn policies_print_and_parse_back() {
        for p in AttributionPolicy::ALL {
            assert_eq!(AttributionPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(AttributionPolicy::parse("owner"), None);
        assert_eq!(AttributionPolicy::default(), AttributionPolicy::Auto);
    }

    // REQ: R2.1
    #[test]
    fn login_defs_set_the_person_range_and_nologin_shells_are_not_persons() {
        let s = SystemAccounts::with_login_defs("# c\nUID_MIN\t\t 500\nUID_MAX 6000\n");
        assert!(s.is_person(500, std::path::Path::new("/bin/bash")));
        assert!(!s.is_person(499, std::path::Path::new("/bin/bash")));
        assert!(!s.is_person(6001, std::path::Path::new("/bin/bash")));
        assert!(!s.is_person(1000, std::path::Path::new("/usr/sbin/nologin")));
        assert!(!s.is_person(1000, std::path::Path::new("/bin/false")));
        let d = SystemAccounts::with_login_defs("");
        assert!(d.is_person(1000, std::path::Path::new("/bin/sh")));
        assert!(!d.is_person(65534, std::path::Path::new("/bin/sh")));
        assert!(d.person_rule().contains("1000..=60000"));
    }

    // REQ: R2.1
    #[test]
    fn the_system_names_this_process_and_root() {
        let s = SystemAccounts::from_login_defs();
        let me = s.process_account().unwrap();
        assert!(me.name.is_some());
        let root = s.account(0);
        assert_eq!(root.name.as_deref(), Some("root"));
        assert!(!root.person);
    }
}
