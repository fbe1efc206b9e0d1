//! Trail keys and the key ring that verification looks keys up in (R1.3).

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ids::{Checksum, KeyId};

/// HMAC-SHA256 as used by the chain.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Domain tag for deriving a key id from key material.
const KEY_ID_DOMAIN_TAG: &[u8] = b"gims-relay:key-id:v1\n";
/// Domain tag of a key registration proof ([`TrailKey::registration_proof`]).
const KEY_REGISTRATION_TAG: &[u8] = b"gims-relay:key-registration:v1\n";

/// The smallest trail key accepted, in bytes (256 bits).
pub const MIN_KEY_BYTES: usize = 32;

/// A secret HMAC key for trail records, with its id. Its bytes are wiped on drop and never
/// printed.
#[derive(Clone)]
pub struct TrailKey {
    id: KeyId,
    mac: HmacSha256,
    // Kept for re-export to other providers and for fingerprints; zeroized on drop.
    bytes: Zeroizing<Vec<u8>>,
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than 256 bits.
    #[error("key {key_id} is {len} bytes; trail keys need at least {MIN_KEY_BYTES}")]
    TooShort {
        /// The key's id.
        key_id: String,
        /// Its length.
        len: usize,
    },
}

impl TrailKey {
    /// Makes a trail key from secret bytes (at least 32).
    pub fn new(id: KeyId, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                key_id: id.to_string(),
                len: secret.len(),
            });
        }
        let mac = <HmacSha256 as Mac>::new_from_slice(secret).map_err(|_| KeyError::TooShort {
            key_id: id.to_string(),
            len: secret.len(),
        })?;
        Ok(Self {
            id,
            mac,
            bytes: Zeroizing::new(secret.to_vec()),
        })
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn mac(&self, message: &[u8]) -> Checksum {
        let mut m = self.mac.clone();
        m.update(message);
        Checksum(m.finalize().into_bytes().into())
    }

    /// The secret bytes, for providers that must store or copy the key.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// The deterministic key id for key material: `k-` and 16 hex digits of a domain-separated
    /// SHA-256 of the key. Reveals nothing usable about a 256-bit key, and lets an auditor holding
    /// the key confirm which key a record names.
    pub fn fingerprint_id(secret: &[u8]) -> KeyId {
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN_TAG);
        h.update(secret);
        let digest = h.finalize();
        let id = format!("k-{}", hex::encode(&digest[..8]));
        // `k-` followed by hex digits is always a valid key id.
        KeyId::new(id).unwrap_or_else(|_| unreachable!("hex key ids are valid"))
    }
}

impl TrailKey {
    /// The proof, made under this key (the version before `new`), that the holder of this key
    /// registers `new` as the next key of `edge`'s trail `trail` with the server of record
    /// (issue 24). Binds the edge, the trail, the new key id and the new key's bytes; every
    /// field is length-prefixed, so no two registrations share a message.
    pub fn registration_proof(&self, edge: &str, trail: &str, new: &TrailKey) -> Checksum {
        let mut message = Vec::with_capacity(KEY_REGISTRATION_TAG.len() + 160);
        message.extend_from_slice(KEY_REGISTRATION_TAG);
        for field in [
            edge.as_bytes(),
            trail.as_bytes(),
            new.id().as_str().as_bytes(),
            new.expose_secret(),
        ] {
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            message.extend_from_slice(&len.to_be_bytes());
            message.extend_from_slice(field);
        }
        self.mac(&message)
    }

    /// Whether `proof` is this key's [`registration_proof`](Self::registration_proof) of `new`
    /// for `edge`'s `trail` (compared in constant time).
    pub fn verifies_registration(
        &self,
        edge: &str,
        trail: &str,
        new: &TrailKey,
        proof: &Checksum,
    ) -> bool {
        self.registration_proof(edge, trail, new).ct_eq(proof)
    }
}

impl fmt::Debug for TrailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrailKey({}, <redacted>)", self.id)
    }
}

/// Every key a verifier may meet, by id, plus the one new records are signed with.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<KeyId, TrailKey>,
    current: Option<KeyId>,
}

impl KeyRing {
    /// A ring holding one key, which is also the current one.
    pub fn single(key: TrailKey) -> Self {
        let mut ring = Self::default();
        ring.insert_current(key);
        ring
    }

    /// Adds a key that may be met when verifying older records.
    pub fn insert(&mut self, key: TrailKey) {
        self.keys.insert(key.id().clone(), key);
    }

    /// Adds a key and makes it the one new records are signed with.
    pub fn insert_current(&mut self, key: TrailKey) {
        self.current = Some(key.id().clone());
        self.insert(key);
    }

    /// The key with this id, if the ring holds it.
    pub fn get(&self, id: &KeyId) -> Option<&TrailKey> {
        self.keys.get(id)
    }

    /// The key new records are signed with.
    pub fn current(&self) -> Option<&TrailKey> {
        self.current.as_ref().and_then(|id| self.keys.get(id))
    }

    /// The ids of every key in the ring.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }
}
