//! Pinned seal keys: the trust file (`gims-relay-trust-v1`) an organisation hands its auditors,
//! listing the seal keys of its relays, and the pins given on the command line.
//!
//! A package whose seal holds is *intact*; it is *verified* only when its seal key is one the
//! auditor pinned. Anyone can re-seal an altered package with a key of their own, so the seal
//! alone says nothing about origin. Format (docs/spec/export.md §4.2):
//!
//! ```text
//! gims-relay-trust-v1
//! # comment lines and blank lines are ignored
//! fb2d2806624a743c59cdab96ff833207  edge ws-01 (fingerprint)
//! 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c  server of record (public key)
//! ```

use std::fmt;

use super::seal::SealPublicKey;

/// The first line of every trust file.
pub const TRUST_FILE_FORMAT: &str = "gims-relay-trust-v1";

/// The largest trust file accepted, in bytes.
pub const MAX_TRUST_FILE_BYTES: usize = 1024 * 1024;

/// One pinned seal key: a fingerprint, or a whole public key, with a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedKey {
    /// The key's fingerprint (32 lowercase hex characters).
    pub fingerprint: String,
    /// The whole public key (64 lowercase hex characters), when the pin gives it.
    pub public_key: Option<String>,
    /// What the pin says the key is (free text; may be empty).
    pub label: String,
}

impl PinnedKey {
    /// Parses one pin: 32 hex characters (a fingerprint) or 64 (a public key), any case.
    pub fn parse(key: &str, label: &str) -> Result<Self, TrustError> {
        let key = key.to_ascii_lowercase();
        if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TrustError::BadKey(shown(&key)));
        }
        let (fingerprint, public_key) = match key.len() {
            32 => (key, None),
            64 => {
                let public =
                    SealPublicKey::from_hex(&key).map_err(|_| TrustError::BadKey(shown(&key)))?;
                (public.fingerprint(), Some(key))
            }
            _ => return Err(TrustError::BadKey(shown(&key))),
        };
        Ok(Self {
            fingerprint,
            public_key,
            label: label.trim().chars().take(200).collect(),
        })
    }

    /// Whether this pin names the seal key with `fingerprint` and hex `public_key`.
    pub fn matches(&self, fingerprint: &str, public_key: &str) -> bool {
        self.fingerprint == fingerprint
            && self
                .public_key
                .as_deref()
                .is_none_or(|k| k == public_key.to_ascii_lowercase())
    }
}

impl fmt::Display for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.label.is_empty() {
            write!(f, "{}", self.fingerprint)
        } else {
            write!(f, "{} ({})", self.fingerprint, self.label)
        }
    }
}

fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Why a pin or a trust file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A key is neither 32 hex characters (fingerprint) nor a valid 64-hex Ed25519 public key.
    #[error("{0:?} is neither a 32-hex-digit fingerprint nor a 64-hex-digit Ed25519 public key")]
    BadKey(String),
    /// The file does not start with the format line.
    #[error("the first line must be {TRUST_FILE_FORMAT:?}")]
    NotATrustFile,
    /// A line is malformed.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        source: Box<TrustError>,
    },
    /// The file is not UTF-8 text or is too large.
    #[error("not a UTF-8 text file of at most {MAX_TRUST_FILE_BYTES} bytes")]
    NotText,
    /// The file lists no key.
    #[error("the file lists no seal key")]
    Empty,
}

/// Parses a trust file (see the module doc): the format line, then one key per line followed by
/// an optional label; `#` starts a comment line; blank lines are ignored.
pub fn parse_trust_file(bytes: &[u8]) -> Result<Vec<PinnedKey>, TrustError> {
    if bytes.len() > MAX_TRUST_FILE_BYTES {
        return Err(TrustError::NotText);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| TrustError::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == TRUST_FILE_FORMAT => {}
        _ => return Err(TrustError::NotATrustFile),
    }
    let mut keys = Vec::new();
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, label) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((line, ""));
        let pin = PinnedKey::parse(key, label).map_err(|e| TrustError::Line {
            line: i + 1,
            source: Box::new(e),
        })?;
        keys.push(pin);
    }
    if keys.is_empty() {
        return Err(TrustError::Empty);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::SealKey;

    #[test]
    fn a_trust_file_lists_fingerprints_and_public_keys_with_labels() {
        let public = SealKey::from_seed(&[7u8; 32]).unwrap().public();
        let text = format!(
            "{TRUST_FILE_FORMAT}\n# ACME labs\n\n{}  edge ws-01\n{} server\n",
            "00112233445566778899AABBCCDDEEFF",
            public.to_hex()
        );
        let keys = parse_trust_file(text.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].fingerprint, "00112233445566778899aabbccddeeff");
        assert_eq!(keys[0].label, "edge ws-01");
        assert_eq!(keys[1].fingerprint, public.fingerprint());
        assert!(keys[1].matches(&public.fingerprint(), &public.to_hex()));
        assert!(!keys[1].matches(&public.fingerprint(), &"00".repeat(32)));
    }

    #[test]
    fn malformed_trust_files_are_refused_with_the_line() {
        assert_eq!(
            parse_trust_file(b"00112233445566778899aabbccddeeff\n"),
            Err(TrustError::NotATrustFile)
        );
        assert_eq!(
            parse_trust_file(b"gims-relay-trust-v1\n# nothing\n"),
            Err(TrustError::Empty)
        );
        let err = parse_trust_file(b"gims-relay-trust-v1\nabc label\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2: "), "{err}");
        assert_eq!(parse_trust_file(&[0xff, 0xfe]), Err(TrustError::NotText));
    }
}
