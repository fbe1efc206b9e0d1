//! Identifier and digest newtypes: parsed once at the edge, trusted inside.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a string could not become an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The value was empty (or only whitespace).
    #[error("{what} must not be empty")]
    Empty {
        /// Which identifier was being parsed.
        what: &'static str,
    },
    /// The value was longer than allowed.
    #[error("{what} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which identifier was being parsed.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value holds a character the identifier does not allow.
    #[error("{what} contains {ch:?}, which is not allowed ({allowed})")]
    BadChar {
        /// Which identifier was being parsed.
        what: &'static str,
        /// The offending character.
        ch: char,
        /// A description of what is allowed.
        allowed: &'static str,
    },
    /// The value is a placeholder that must never stand for a real identity.
    #[error("{what} {value:?} is a placeholder, not an identity")]
    Placeholder {
        /// Which identifier was being parsed.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A hex digest had the wrong length or a non-hex character.
    #[error("checksum must be 64 lowercase hex characters")]
    BadChecksum,
    /// A chain sequence number was zero, beyond 2^53, or not a number.
    #[error("chain_seq must be a whole number from 1 to 2^53")]
    BadSeq,
}

fn check_token(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if value.trim().is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > max {
        return Err(IdError::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    if let Some(ch) = value.chars().find(|c| !ok(*c)) {
        return Err(IdError::BadChar { what, ch, allowed });
    }
    Ok(())
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the identifier.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_token($what, &value, $max, $allowed, $ok)?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// Names one trail: an independent chain (one per workstation, plus the relay's own `_relay`).
    TrailId, "trail_id", 128, "ASCII letters, digits, '_', '-', '.'", is_slug_char
);
string_id!(
    /// Identifies the key that computed a record's checksum, so keys can rotate.
    KeyId, "key_id", 128, "ASCII letters, digits, '_', '-', '.'", is_slug_char
);
string_id!(
    /// The workstation (edge) a record was captured on.
    Device, "device", 128, "ASCII letters, digits, '_', '-', '.'", is_slug_char
);
string_id!(
    /// The project a captured file belongs to.
    Project, "project", 256, "printable characters", |c: char| !c.is_control()
);
string_id!(
    /// What a record is about, e.g. a file path relative to its watched root.
    Subject, "subject", 4096, "any character but NUL (paths may hold tabs or newlines)", |c: char| c != '\0'
);
string_id!(
    /// The kind of event, as an upper-case word (`FILE_CREATED`, `SIGNATURE`, ...).
    EventKind, "kind", 64, "upper-case ASCII letters, digits and '_'",
    |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
);

impl TrailId {
    /// The reserved trail for the relay's own process events (R1.6).
    pub fn relay() -> Self {
        Self(RELAY_TRAIL.to_owned())
    }

    /// Whether this is the reserved `_relay` trail.
    pub fn is_relay(&self) -> bool {
        self.0 == RELAY_TRAIL
    }
}

/// The name of the reserved trail holding the relay's own events.
pub const RELAY_TRAIL: &str = "_relay";

impl Subject {
    /// The subject used by events that are about no particular thing (process events).
    pub fn none() -> Self {
        Self("-".to_owned())
    }
}

impl EventKind {
    fn known(s: &'static str) -> Self {
        Self(s.to_owned())
    }
    /// A file appeared in a watched root and was captured once complete.
    pub fn file_created() -> Self {
        Self::known("FILE_CREATED")
    }
    /// A captured file's content changed.
    pub fn file_modified() -> Self {
        Self::known("FILE_MODIFIED")
    }
    /// A captured file disappeared.
    pub fn file_deleted() -> Self {
        Self::known("FILE_DELETED")
    }
    /// A file could not be captured; the payload says why.
    pub fn capture_failed() -> Self {
        Self::known("CAPTURE_FAILED")
    }
    /// The relay started; the payload holds its posture (version, mode, time, key, notary).
    pub fn startup() -> Self {
        Self::known("STARTUP")
    }
    /// The relay shut down gracefully.
    pub fn shutdown() -> Self {
        Self::known("SHUTDOWN")
    }
    /// A process-level warning or failure of the relay itself.
    pub fn system() -> Self {
        Self::known("SYSTEM")
    }
    /// A sealed export package was generated (R5, R3.4); in `_relay`.
    pub fn export() -> Self {
        Self::known("EXPORT")
    }
    /// Anchoring a trail head to the notary failed and will be retried (R7.1); in `_relay`.
    pub fn notary_failed() -> Self {
        Self::known("NOTARY_FAILED")
    }
    /// A trail head was anchored to the notary (R7.1); in `_relay`, payload
    /// [`crate::verify::RecordedAnchor`]. Verification checks each one is still in the notary.
    pub fn anchored() -> Self {
        Self::known("ANCHORED")
    }
    /// Someone read, verified or exported trail records (R3.4); in `_relay`.
    pub fn access() -> Self {
        Self::known("ACCESS")
    }
    /// A relay account was created (R3.2); in `_relay`.
    pub fn register() -> Self {
        Self::known("REGISTER")
    }
    /// A session was opened by a successful login; in `_relay`.
    pub fn login() -> Self {
        Self::known("LOGIN")
    }
    /// A login was refused (wrong credentials, locked, disabled, unknown name); in `_relay`.
    pub fn login_failed() -> Self {
        Self::known("LOGIN_FAILED")
    }
    /// A session was closed by its user; in `_relay`.
    pub fn logout() -> Self {
        Self::known("LOGOUT")
    }
    /// A session ended without a logout: its token was presented after the idle timeout or
    /// its expiry, or it was swept as idle; in `_relay`.
    pub fn session_expired() -> Self {
        Self::known("SESSION_EXPIRED")
    }
    /// A request was refused with 403 (role, rule or a temporary password); in `_relay`.
    pub fn access_denied() -> Self {
        Self::known("ACCESS_DENIED")
    }
    /// A signature was refused by the signing workflow (order, separation of duties, a
    /// superseded record) or because its target record does not verify; in `_relay`.
    pub fn signature_refused() -> Self {
        Self::known("SIGNATURE_REFUSED")
    }
    /// An administrator or auditor completed the periodic access review and signed it
    /// (password re-checked, reason); in `_relay`, with the SHA-256 digest of the review it
    /// attests (`review_digest`).
    pub fn access_reviewed() -> Self {
        Self::known("ACCESS_REVIEWED")
    }
    /// An account was locked after repeated failed passwords (R3.3); in `_relay`.
    pub fn lockout() -> Self {
        Self::known("LOCKOUT")
    }
    /// An electronic signature of a record (R4.2); in the signed record's own trail.
    pub fn signature() -> Self {
        Self::known("SIGNATURE")
    }
    /// An account's role, status or password was changed (R3.2); in `_relay`.
    pub fn account_changed() -> Self {
        Self::known("ACCOUNT_CHANGED")
    }
    /// The trail HMAC key was rotated (R1.3); in `_relay`, signed with the new key.
    pub fn key_rotated() -> Self {
        Self::known("KEY_ROTATED")
    }
    /// An administrator proposed a configuration change (four-eyes); in `_relay`.
    pub fn change_proposed() -> Self {
        Self::known("CHANGE_PROPOSED")
    }
    /// A second administrator approved a proposed change with a signature; in `_relay`.
    pub fn change_approved() -> Self {
        Self::known("CHANGE_APPROVED")
    }
    /// A proposed change was rejected (or withdrawn); in `_relay`.
    pub fn change_rejected() -> Self {
        Self::known("CHANGE_REJECTED")
    }
    /// The edge's forwarder had a batch refused for good; the trail's forwarding halted (R8.4);
    /// in `_relay`.
    pub fn forward_poisoned() -> Self {
        Self::known("FORWARD_POISONED")
    }
    /// An edge's clock differs from the server's beyond the threshold (R8.5); in `_relay`.
    pub fn clock_skew() -> Self {
        Self::known("CLOCK_SKEW")
    }
    /// An edge enrolled with a server of record (issue 24); in `_relay` on both sides.
    pub fn enrolled() -> Self {
        Self::known("ENROLLED")
    }
    /// An admin issued a one-time enrollment code for an edge (issue 24); in the server's
    /// `_relay`. The code itself is never recorded.
    pub fn enrollment_code_issued() -> Self {
        Self::known("ENROLLMENT_CODE_ISSUED")
    }
    /// An edge was revoked: its ingest is refused until it enrolls again (issue 24); in the
    /// server's `_relay`.
    pub fn edge_revoked() -> Self {
        Self::known("EDGE_REVOKED")
    }
    /// An edge registered a new trail key version with the server of record, proven under the
    /// version before it (issue 24); in the server's `_relay`.
    pub fn key_registered() -> Self {
        Self::known("KEY_REGISTERED")
    }
}

/// Who caused an event. Never empty and never a placeholder such as `unknown` (R2.2).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actor(String);

impl Actor {
    /// Parses an actor name, refusing empty values and placeholders.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_token("actor", &value, 256, "printable characters", |c| {
            !c.is_control()
        })?;
        let lowered = value.trim().to_ascii_lowercase();
        if matches!(
            lowered.as_str(),
            "unknown" | "anonymous" | "none" | "null" | "-"
        ) {
            return Err(IdError::Placeholder {
                what: "actor",
                value,
            });
        }
        Ok(Self(value))
    }

    /// The actor's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor({:?})", self.0)
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How the relay resolved the actor (R2.1). The network never names the actor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorSource {
    /// The OS account running the relay on the workstation (session mode: the relay runs as
    /// the analyst's own account).
    OsSession,
    /// The person's account that owns the captured file, resolved by a relay running as a
    /// service account (the file's owner uid looked up in the OS account database).
    FileOwner,
    /// The person logged in on the workstation's active local console session, resolved by a
    /// relay running as a service account when the file's owner is not a person's account.
    ConsoleSession,
    /// A relay account authenticated by password (and TOTP when enabled).
    RelayLogin,
    /// A verified signed token presented to the API.
    Token,
    /// The relay process itself (start-up, notarization, scheduler events).
    System,
    /// A service identity: an edge authenticated by its service credential (ingest), or the
    /// relay's own service account on a capture no person could be resolved for (its payload
    /// then says `"unattributed": true`).
    Service,
}

impl ActorSource {
    /// The label written into the canonical record.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorSource::OsSession => "os_session",
            ActorSource::FileOwner => "file_owner",
            ActorSource::ConsoleSession => "console_session",
            ActorSource::RelayLogin => "relay_login",
            ActorSource::Token => "token",
            ActorSource::System => "system",
            ActorSource::Service => "service",
        }
    }

    /// Parses the canonical label.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "os_session" => ActorSource::OsSession,
            "file_owner" => ActorSource::FileOwner,
            "console_session" => ActorSource::ConsoleSession,
            "relay_login" => ActorSource::RelayLogin,
            "token" => ActorSource::Token,
            "system" => ActorSource::System,
            "service" => ActorSource::Service,
            _ => return None,
        })
    }
}

impl fmt::Display for ActorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's position in its trail: gapless, starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ChainSeq(u64);

impl ChainSeq {
    /// The first sequence number of every trail.
    pub const FIRST: ChainSeq = ChainSeq(1);

    /// The last possible sequence number, 2^53: the largest integer every JSON reader and
    /// RFC 8785's IEEE-754 numbers hold exactly, so a record's canonical bytes never depend on
    /// the encoder (docs/spec/chain.md).
    pub const MAX: ChainSeq = ChainSeq(1 << 53);

    /// Makes a sequence number; zero and anything beyond [`MAX`](Self::MAX) are refused.
    pub fn new(n: u64) -> Result<Self, IdError> {
        if n == 0 || n > Self::MAX.0 {
            Err(IdError::BadSeq)
        } else {
            Ok(Self(n))
        }
    }

    /// The number itself.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The sequence number that follows this one ([`MAX`](Self::MAX) stays `MAX`: a trail that
    /// long is full, and a second record at `MAX` is refused as a duplicate).
    pub fn next(self) -> ChainSeq {
        ChainSeq(self.0.saturating_add(1).min(Self::MAX.0))
    }

    /// The sequence number that follows `head` (1 for an empty trail).
    pub fn after(head: Option<ChainSeq>) -> ChainSeq {
        head.map_or(ChainSeq::FIRST, ChainSeq::next)
    }
}

impl TryFrom<u64> for ChainSeq {
    type Error = IdError;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<ChainSeq> for u64 {
    fn from(s: ChainSeq) -> u64 {
        s.0
    }
}

impl fmt::Display for ChainSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 32-byte digest (HMAC-SHA256 checksum, SHA-256 hash or Merkle node), shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// Parses 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<Self, IdError> {
        // One pass that checks and decodes (every stored record's two checksums come through
        // here on each read; the separate check and `hex` decode were ~6% of an export), with
        // a table instead of branches per character (4% of relay-verify's CPU before).
        const INVALID: u8 = 0xff;
        const NIBBLE: [u8; 256] = {
            let mut table = [INVALID; 256];
            let mut c = 0;
            while c < 10 {
                table[b'0' as usize + c] = c as u8;
                c += 1;
            }
            let mut c = 0;
            while c < 6 {
                table[b'a' as usize + c] = 10 + c as u8;
                c += 1;
            }
            table
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(IdError::BadChecksum);
        }
        let mut out = [0u8; 32];
        // Any invalid character sets the high bits of `seen`; checked once at the end.
        let mut seen = 0u8;
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
            seen |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if seen & 0xf0 != 0 {
            return Err(IdError::BadChecksum);
        }
        Ok(Self(out))
    }

    /// The digest as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        String::from_utf8_lossy(&self.hex_bytes()).into_owned()
    }

    /// Writes the lowercase hex form into `out` without allocating.
    pub fn write_hex(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hex_bytes());
    }

    /// The lowercase hex form as ASCII bytes on the stack (serializing a checksum through the
    /// `hex` crate's character iterator was ~9% of an export's rendering thread).
    fn hex_bytes(&self) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[(b >> 4) as usize];
            pair[1] = HEX[(b & 0x0f) as usize];
        }
        out
    }

    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &Checksum) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

impl FromStr for Checksum {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // ASCII, so the lossy view borrows and never replaces anything.
        s.serialize_str(&String::from_utf8_lossy(&self.hex_bytes()))
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::serde_str::from_str_with(d, "64 lowercase hex characters", Checksum::from_hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R2.1
    #[test]
    fn every_actor_source_prints_and_parses_back() {
        for source in [
            ActorSource::OsSession,
            ActorSource::FileOwner,
            ActorSource::ConsoleSession,
            ActorSource::RelayLogin,
            ActorSource::Token,
            ActorSource::System,
            ActorSource::Service,
        ] {
            assert_eq!(ActorSource::parse(source.as_str()), Some(source));
            let json = serde_json::to_value(source).unwrap();
            assert_eq!(json, serde_json::json!(source.as_str()));
            assert_eq!(serde_json::from_value::<ActorSource>(json).unwrap(), source);
        }
        assert_eq!(ActorSource::FileOwner.as_str(), "file_owner");
        assert_eq!(ActorSource::ConsoleSession.as_str(), "console_session");
        assert_eq!(ActorSource::parse("unknown"), None);
    }

    // REQ: R2.2
    #[test]
    fn actor_refuses_empty_and_placeholders() {
        assert!(matches!(Actor::new(""), Err(IdError::Empty { .. })));
        assert!(matches!(Actor::new("   "), Err(IdError::Empty { .. })));
        assert!(matches!(
            Actor::new("Unknown"),
            Err(IdError::Placeholder { .. })
        ));
        assert!(matches!(
            Actor::new("alice\n"),
            Err(IdError::BadChar { .. })
        ));
        assert_eq!(
            Actor::new("alice").map(|a| a.to_string()).ok(),
            Some("alice".into())
        );
    }

    #[test]
    fn trail_id_refuses_path_characters() {
        assert!(TrailId::new("../etc").is_err());
        assert!(TrailId::new("a/b").is_err());
        assert!(TrailId::new("nmr-01").is_ok());
        assert!(TrailId::relay().is_relay());
    }

    #[test]
    fn chain_seq_refuses_zero() {
        assert_eq!(ChainSeq::new(0), Err(IdError::BadSeq));
        assert_eq!(ChainSeq::after(None), ChainSeq::FIRST);
        assert_eq!(ChainSeq::after(Some(ChainSeq::FIRST)).get(), 2);
    }

    #[test]
    fn checksum_hex_round_trips_and_refuses_uppercase() {
        let c = Checksum([0xab; 32]);
        assert_eq!(Checksum::from_hex(&c.to_hex()), Ok(c));
        assert_eq!(
            Checksum::from_hex(&c.to_hex().to_uppercase()),
            Err(IdError::BadChecksum)
        );
        assert_eq!(Checksum::from_hex("ab"), Err(IdError::BadChecksum));
        let mut buf = Vec::new();
        c.write_hex(&mut buf);
        assert_eq!(buf, c.to_hex().into_bytes());
        // Varied byte values (high and low nibbles of every digit), against the hex crate,
        // through to_hex and serde.
        let all = Checksum(std::array::from_fn(|i| (i * 8 + 3) as u8));
        let also = Checksum(std::array::from_fn(|i| 255 - (i * 8) as u8));
        for c in [all, also, Checksum([0; 32]), Checksum([0xff; 32])] {
            assert_eq!(c.to_hex(), hex::encode(c.0));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", hex::encode(c.0))
            );
        }
    }

    #[test]
    fn checksum_hex_accepts_exactly_lowercase_hex_at_every_position() {
        // Every byte value at every position of a valid checksum: accepted iff it is a
        // lowercase hex digit, and then decoded as the `hex` crate decodes it.
        let base: Vec<u8> = (0..32u8)
            .flat_map(|i| format!("{:02x}", i * 7).into_bytes())
            .collect();
        for pos in 0..64 {
            for b in 0..=255u8 {
                let mut text = base.clone();
                text[pos] = b;
                let Ok(s) = std::str::from_utf8(&text) else {
                    continue;
                };
                let lower_hex = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                match Checksum::from_hex(s) {
                    Ok(c) => {
                        assert!(lower_hex, "{s:?} accepted");
                        let mut want = [0u8; 32];
                        hex::decode_to_slice(s, &mut want).unwrap();
                        assert_eq!(c.0, want);
                    }
                    Err(e) => {
                        assert!(!lower_hex, "{s:?} refused");
                        assert_eq!(e, IdError::BadChecksum);
                    }
                }
            }
        }
        assert_eq!(
            Checksum::from_hex(&"a".repeat(63)),
            Err(IdError::BadChecksum)
        );
        assert_eq!(
            Checksum::from_hex(&"a".repeat(65)),
            Err(IdError::BadChecksum)
        );
        // 64 bytes of which some are a multi-byte character.
        assert_eq!(
            Checksum::from_hex(&format!("{}é", "a".repeat(62))),
            Err(IdError::BadChecksum)
        );
    }

    #[test]
    fn event_kind_is_upper_snake() {
        assert!(EventKind::new("FILE_CREATED").is_ok());
        assert!(EventKind::new("file_created").is_err());
    }
}
