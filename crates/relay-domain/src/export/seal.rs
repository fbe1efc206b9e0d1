//! The Ed25519 seal of an export manifest.
//!
//! The seal key is a 32-byte Ed25519 seed held by the `SecretProvider` (secret `export-seal`).
//! Ed25519 signing is deterministic (RFC 8032), so sealing needs no randomness. The key's
//! fingerprint is the lowercase hex of the first 16 bytes of `SHA-256(public key)`.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// The only seal algorithm of format v1.
pub const SEAL_ALGORITHM: &str = "ed25519";

/// Why a seal could not be made or does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The seed is not 32 bytes.
    #[error("the seal key seed must be 32 bytes, got {0}")]
    BadSeed(usize),
    /// The seal names an algorithm other than `ed25519`.
    #[error("unsupported seal algorithm {0:?} (expected \"ed25519\")")]
    UnsupportedAlgorithm(String),
    /// The public key is not 64 hex characters of a valid Ed25519 point.
    #[error("seal public key is malformed: {0}")]
    BadPublicKey(String),
    /// The signature is not 128 hex characters.
    #[error("seal signature is malformed: {0}")]
    BadSignature(String),
    /// The fingerprint written in the seal is not the public key's.
    #[error("seal fingerprint {written} does not match its public key (fingerprint {computed})")]
    FingerprintMismatch {
        /// What the seal says.
        written: String,
        /// What the public key hashes to.
        computed: String,
    },
    /// The signature does not verify: the manifest was edited or signed by another key.
    #[error("seal signature does not verify over the manifest (edited, or signed by another key)")]
    SignatureInvalid,
}

/// The private seal key (an Ed25519 signing key). Wiped on drop, never printed.
pub struct SealKey(SigningKey);

impl SealKey {
    /// The key whose seed is `seed` (exactly 32 bytes).
    pub fn from_seed(seed: &[u8]) -> Result<Self, SealError> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.try_into()
                .map_err(|_| SealError::BadSeed(seed.len()))?,
        );
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    /// The public half.
    pub fn public(&self) -> SealPublicKey {
        SealPublicKey(self.0.verifying_key())
    }

    /// The raw Ed25519 signature of `message` (RFC 8032, deterministic): used for signed-note
    /// checkpoints, whose format carries signatures as bytes.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// Seals `message` (the manifest's signing bytes).
    pub fn seal(&self, message: &[u8]) -> Seal {
        let public = self.public();
        Seal {
            algorithm: SEAL_ALGORITHM.to_owned(),
            public_key: public.to_hex(),
            fingerprint: public.fingerprint(),
            signature: hex::encode(self.0.sign(message).to_bytes()),
        }
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({}, <redacted>)", self.public().fingerprint())
    }
}

/// A seal public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealPublicKey(VerifyingKey);

impl SealPublicKey {
    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|e| SealError::BadPublicKey(e.to_string()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| SealError::BadPublicKey(e.to_string()))
    }

    /// The key as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Whether `signature` is this key's Ed25519 signature of `message` (strict verification:
    /// no malleable or small-order forms).
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }

    /// Lowercase hex of the first 16 bytes of `SHA-256(public key)`.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..16])
    }
}

impl fmt::Debug for SealPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealPublicKey({})", self.fingerprint())
    }
}

/// The seal stored in `manifest.json`: who sealed (public key, fingerprint) and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The Ed25519 public key, 64 hex characters.
    pub public_key: String,
    /// The key's fingerprint (see the module doc).
    pub fingerprint: String,
    /// The Ed25519 signature over the manifest's signing bytes, 128 hex characters.
    pub signature: String,
}

impl Seal {
    /// Checks the seal over `message`; returns the public key that made it.
    pub fn verify(&self, message: &[u8]) -> Result<SealPublicKey, SealError> {
        if self.algorithm != SEAL_ALGORITHM {
            return Err(SealError::UnsupportedAlgorithm(
                self.algorithm.chars().take(32).collect(),
            ));
        }
        let public = SealPublicKey::from_hex(&self.public_key)?;
        let computed = public.fingerprint();
        if computed != self.fingerprint {
            return Err(SealError::FingerprintMismatch {
                written: self.fingerprint.chars().take(64).collect(),
                computed,
            });
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig)
            .map_err(|e| SealError::BadSignature(e.to_string()))?;
        public
            .0
            .verify_strict(message, &Signature::from_bytes(&sig))
            .map_err(|_| SealError::SignatureInvalid)?;
        Ok(public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R5.2
    #[test]
    fn seal_verifies_and_any_change_breaks_it() {
        let key = SealKey::from_seed(&[7u8; 32]).unwrap();
        let seal = key.seal(b"manifest bytes");
        assert_eq!(seal.verify(b"manifest bytes").unwrap(), key.public());
        assert_eq!(
            seal.verify(b"manifest bytez"),
            Err(SealError::SignatureInvalid)
        );
        // Deterministic: the same key and message give the same signature.
        assert_eq!(key.seal(b"manifest bytes"), seal);
    }

    // REQ: R5.2
    #[test]
    fn signature_of_another_key_is_refused() {
        let ours = SealKey::from_seed(&[7u8; 32]).unwrap();
        let theirs = SealKey::from_seed(&[8u8; 32]).unwrap();
        let mut seal = ours.seal(b"m");
        seal.signature = theirs.seal(b"m").signature;
        assert_eq!(seal.verify(b"m"), Err(SealError::SignatureInvalid));
        let mut swapped = theirs.seal(b"m");
        swapped.fingerprint = ours.public().fingerprint();
        assert!(matches!(
            swapped.verify(b"m"),
            Err(SealError::FingerprintMismatch { .. })
        ));
    }

    #[test]
    fn malformed_seals_are_errors_not_panics() {
        let key = SealKey::from_seed(&[1u8; 32]).unwrap();
        let good = key.seal(b"m");
        for (field, value) in [
            ("algorithm", "rsa"),
            ("public_key", "zz"),
            ("signature", "00"),
        ] {
            let mut s = good.clone();
            match field {
                "algorithm" => s.algorithm = value.into(),
                "public_key" => s.public_key = value.into(),
                _ => s.signature = value.into(),
            }
            assert!(s.verify(b"m").is_err(), "{field}");
        }
        assert_eq!(
            SealKey::from_seed(&[0u8; 5]).err(),
            Some(SealError::BadSeed(5))
        );
        assert_eq!(key.public().fingerprint().len(), 32);
    }
}
