//! Signed checkpoints of trail heads (docs/spec/checkpoint.md): the C2SP `tlog-checkpoint`
//! body signed as a C2SP `signed-note` with the relay's Ed25519 seal key, so existing
//! transparency-log tooling can read them and an auditor who pinned the seal key can check an
//! anchor's origin without the trail's HMAC key.
//!
//! ```text
//! gims-relay/ws-01
//! 42
//! <base64 of the RFC 9162 tree head over records 1..=42>
//! head <hex chain checksum of record 42>
//! time 2026-12-04T20:00:00.000000Z
//!
//! — gims-relay-seal-<fingerprint> <base64(key id || Ed25519 signature)>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::export::{SealKey, SealPublicKey};
use crate::ids::Checksum;

/// Every checkpoint's origin line starts with this, followed by the trail id.
pub const ORIGIN_PREFIX: &str = "gims-relay/";

/// The signature algorithm byte of Ed25519 in C2SP signed-note key ids and verifier keys.
const ED25519_ALGORITHM: u8 = 0x01;

/// The largest note accepted, in bytes (a checkpoint is a few hundred).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// The signature-line prefix: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint note does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note is not a well-formed signed note or checkpoint.
    #[error("checkpoint is malformed: {0}")]
    Malformed(String),
    /// No signature line of the expected key is present.
    #[error("checkpoint carries no signature by {0}")]
    NoSignature(String),
    /// The expected key's signature does not verify over the body (edited, or forged).
    #[error("checkpoint signature by {0} does not verify (edited, or signed by another key)")]
    SignatureInvalid(String),
    /// The checkpoint does not state what its anchor states.
    #[error("checkpoint {field} is {found:?}, the anchor says {expected:?}")]
    Differs {
        /// Which line.
        field: &'static str,
        /// What the checkpoint says.
        found: String,
        /// What the anchor says.
        expected: String,
    },
}

/// The content of a checkpoint: which trail, how many records, their tree head, the chain
/// checksum of the last one and when it was anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `gims-relay/<trail id>`.
    pub origin: String,
    /// The tree size: the anchored chain_seq.
    pub size: u64,
    /// The RFC 9162 tree head over records `1..=size`.
    pub root: Checksum,
    /// The chain checksum of record `size`.
    pub head: Checksum,
    /// When it was anchored, as the anchor stores it (RFC 3339, UTC).
    pub time: String,
}

impl Checkpoint {
    /// The checkpoint body: origin, size, base64 root, then the `head` and `time` extension
    /// lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\nhead {}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0),
            self.head.to_hex(),
            self.time
        )
    }

    /// The signed note: the body, a blank line and the seal key's signature line.
    pub fn sign(&self, key: &SealKey) -> String {
        let body = self.body();
        let public = key.public();
        let name = key_name(&public);
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&key_id(&name, &public));
        sig.extend_from_slice(&key.sign_bytes(body.as_bytes()));
        format!("{body}\n{SIGNATURE_PREFIX}{name} {}\n", B64.encode(sig))
    }

    /// Parses a checkpoint body (without its signatures): exactly the five lines of
    /// [`body`](Self::body), in that order, in their canonical forms.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_owned());
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body does not end with a newline"))?
            .split('\n')
            .collect();
        let [origin, size, root, head, time] = lines.as_slice() else {
            return Err(bad("the body is not five lines"));
        };
        if origin.len() <= ORIGIN_PREFIX.len() || !origin.starts_with(ORIGIN_PREFIX) {
            return Err(bad("the origin is not gims-relay/<trail>"));
        }
        let canonical = *size == "0" || (!size.starts_with('0') && !size.is_empty());
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("the tree size is not a decimal number"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Checksum)
            .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
        let head = head
            .strip_prefix("head ")
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .and_then(|h| Checksum::from_hex(h).ok())
            .ok_or_else(|| bad("the fourth line is not 'head <64 lowercase hex>'"))?;
        let time = time
            .strip_prefix("time ")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the fifth line is not 'time <RFC 3339>'"))?;
        let parsed = Self {
            origin: (*origin).to_owned(),
            size,
            root,
            head,
            time: time.to_owned(),
        };
        if parsed.body() != body {
            return Err(bad("the body is not in canonical form"));
        }
        Ok(parsed)
    }

    /// Opens a signed note: finds the signature line of `public`, checks it over the body and
    /// parses the body. The signatures follow the last blank line (C2SP signed-note);
    /// signatures by other keys (witness cosignatures) are ignored, and a line of `public`'s
    /// name and key id that does not verify rejects the note.
    pub fn open(note: &str, public: &SealPublicKey) -> Result<Self, CheckpointError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::Malformed("the note is too large".into()));
        }
        let (body, signatures) = split_note(note)?;
        let signatures = signatures.strip_suffix('\n').ok_or_else(|| {
            CheckpointError::Malformed("the note does not end with a newline".into())
        })?;
        let name = key_name(public);
        let id = key_id(&name, public);
        for line in signatures.split('\n') {
            let Some((line_name, sig)) = line
                .strip_prefix(SIGNATURE_PREFIX)
                .and_then(|l| l.split_once(' '))
            else {
                return Err(CheckpointError::Malformed(
                    "a signature line is not '\u{2014} <name> <signature>'".into(),
                ));
            };
            let Ok(sig) = B64.decode(sig) else {
                return Err(CheckpointError::Malformed(
                    "a signature is not base64".into(),
                ));
            };
            if line_name != name || sig.len() != 68 || sig[..4] != id {
                continue;
            }
            let sig: [u8; 64] = sig[4..].try_into().unwrap_or([0; 64]);
            return if public.verifies(body.as_bytes(), &sig) {
                Self::parse_body(body)
            } else {
                Err(CheckpointError::SignatureInvalid(name))
            };
        }
        Err(CheckpointError::NoSignature(name))
    }
}

/// Splits a signed note at its last blank line (C2SP signed-note): the body (with its final
/// newline) and the signature lines.
pub fn split_note(note: &str) -> Result<(&str, &str), CheckpointError> {
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| CheckpointError::Malformed("no blank line before the signatures".into()))?;
    Ok((&note[..split + 1], &note[split + 2..]))
}

/// The signed-note key name of a seal key: `gims-relay-seal-<fingerprint>`.
pub fn key_name(public: &SealPublicKey) -> String {
    format!("gims-relay-seal-{}", public.fingerprint())
}

/// The signed-note key id: the first 4 bytes of `SHA-256(name || "\n" || 0x01 || key)`.
pub fn key_id(name: &str, public: &SealPublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALGORITHM]);
    h.update(public.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The signed-note verifier key, `<name>+<hex key id>+<base64(0x01 || key)>`, as transparency
/// tooling (for example Go's `golang.org/x/mod/sumdb/note`) takes it.
pub fn verifier_key(public: &SealPublicKey) -> String {
    let name = key_name(public);
    let mut key = Vec::with_capacity(33);
    key.push(ED25519_ALGORITHM);
    key.extend_from_slice(public.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(&name, public)),
        B64.encode(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: format!("{ORIGIN_PREFIX}ws-01"),
            size: 42,
            root: Checksum([0xab; 32]),
            head: Checksum([0xcd; 32]),
            time: "2026-12-04T20:00:00.000000Z".into(),
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_round_trips() {
        let key = SealKey::from_seed(&[3; 32]).unwrap();
        let note = sample().sign(&key);
        assert_eq!(Checkpoint::open(&note, &key.public()).unwrap(), sample());
        assert!(note.starts_with("gims-relay/ws-01\n42\n"));
        assert!(note.contains("\n\n\u{2014} gims-relay-seal-"));
        // Deterministic, like every Ed25519 signature.
        assert_eq!(sample().sign(&key), note);
    }

    #[test]
    fn any_edit_or_another_key_is_refused() {
        let key = SealKey::from_seed(&[3; 32]).unwrap();
        let other = SealKey::from_seed(&[4; 32]).unwrap();
        let note = sample().sign(&key);
        let edited = note.replacen("\n42\n", "\n41\n", 1);
        assert!(matches!(
            Checkpoint::open(&edited, &key.public()),
            Err(CheckpointError::SignatureInvalid(_))
        ));
        assert!(matches!(
            Checkpoint::open(&note, &other.public()),
            Err(CheckpointError::NoSignature(_))
        ));
        // A note signed by another key under our name: the key id gives it away.
        let forged = sample()
            .sign(&other)
            .replace(&key_name(&other.public()), &key_name(&key.public()));
        assert!(Checkpoint::open(&forged, &key.public()).is_err());
        // A witness cosignature by another key is ignored, not an error.
        let cosigned = format!(
            "{note}{}",
            sample().sign(&other).split("\n\n").nth(1).unwrap()
        );
        assert_eq!(
            Checkpoint::open(&cosigned, &key.public()).unwrap(),
            sample()
        );
    }

    #[test]
    fn malformed_notes_are_errors_not_panics() {
        let key = SealKey::from_seed(&[3; 32]).unwrap();
        for note in [
            "",
            "\n\n",
            "gims-relay/x\n",
            "gims-relay/x\n1\nAAAA\n\n\u{2014} k c2ln\n",
            "gims-relay/x\n01\nAAAA\n\n\u{2014} k c2ln\n",
            "\u{2014}\n\n\u{2014}",
        ] {
            assert!(Checkpoint::open(note, &key.public()).is_err(), "{note:?}");
        }
        assert!(Checkpoint::parse_body("o\n1\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n-1\nAAAA\n").is_err());
        // Extra, missing or reordered lines, and non-canonical encodings, are not checkpoints.
        let body = sample().body();
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), sample());
        for edit in [
            body.replace("\nhead ", "\nextra\nhead "),
            body.replace("\n42\n", "\n042\n"),
            body.replace("head cdcd", "head CDCD"),
            body.replace("gims-relay/", "other/"),
            body.lines().take(4).map(|l| format!("{l}\n")).collect(),
        ] {
            assert!(Checkpoint::parse_body(&edit).is_err(), "{edit:?}");
        }
    }

    #[test]
    fn the_verifier_key_names_the_key_and_its_id() {
        let key = SealKey::from_seed(&[3; 32]).unwrap();
        let public = key.public();
        let vkey = verifier_key(&public);
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[0], key_name(&public));
        assert_eq!(parts[1], hex::encode(key_id(parts[0], &public)));
        assert_eq!(B64.decode(parts[2]).unwrap()[1..], public.as_bytes()[..]);
    }
}
