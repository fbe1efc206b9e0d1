//! `SecretProvider`: named, versioned secrets (trail HMAC keys, token and seal keys, credentials).

use std::fmt;

use async_trait::async_trait;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::{IdError, KeyId};
use crate::keys::{KeyError, KeyRing, TrailKey};

/// The name of a secret, e.g. `trail-hmac` or `ingest-token.nmr-01`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SecretName(String);

impl SecretName {
    /// The HMAC key of trail records.
    pub const TRAIL_HMAC: &'static str = "trail-hmac";

    /// Validates a name: 1-128 ASCII letters, digits, `-`, `_`, `.`, not starting with `.`.
    pub fn new(name: impl Into<String>) -> Result<Self, IdError> {
        let name = name.into();
        if name.is_empty() {
            return Err(IdError::Empty {
                what: "secret name",
            });
        }
        if name.len() > 128 {
            return Err(IdError::TooLong {
                what: "secret name",
                len: name.len(),
                max: 128,
            });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .or_else(|| name.starts_with('.').then_some('.'))
        {
            return Err(IdError::BadChar {
                what: "secret name",
                ch,
                allowed: "ASCII letters, digits, '-', '_', '.' (not first)",
            });
        }
        Ok(Self(name))
    }

    /// The trail HMAC key's name.
    pub fn trail_hmac() -> Self {
        Self(Self::TRAIL_HMAC.to_owned())
    }

    /// The Ed25519 seed that seals export manifests.
    pub const EXPORT_SEAL: &'static str = "export-seal";

    /// The export seal key's name.
    pub fn export_seal() -> Self {
        Self(Self::EXPORT_SEAL.to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One version of a secret. Wiped on drop, never printed, compared in constant time.
#[derive(Clone)]
pub struct SecretValue {
    id: KeyId,
    bytes: Zeroizing<Vec<u8>>,
}

impl SecretValue {
    /// Wraps secret bytes with their version id.
    pub fn new(id: KeyId, bytes: Vec<u8>) -> Self {
        Self {
            id,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The version id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The secret bytes. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Compares the secret with `candidate` in constant time (for credentials).
    pub fn ct_matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.bytes.len() == candidate.len() && bool::from(self.bytes.as_slice().ct_eq(candidate))
    }

    /// Turns the secret into a trail HMAC key.
    pub fn to_trail_key(&self) -> Result<TrailKey, KeyError> {
        TrailKey::new(self.id.clone(), &self.bytes)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({}, <redacted>)", self.id)
    }
}

/// Why a secret operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No such secret (or no such version).
    #[error("secret {name} not found{}", version.as_ref().map(|v| format!(" (version {v})")).unwrap_or_default())]
    NotFound {
        /// The secret.
        name: SecretName,
        /// The version asked for, if any.
        version: Option<KeyId>,
    },
    /// `create` met an existing secret.
    #[error("secret {name} already exists")]
    AlreadyExists {
        /// The secret.
        name: SecretName,
    },
    /// The secret is stored insecurely (e.g. a key file readable by others) and is refused.
    #[error("secret {name} is stored insecurely: {message}")]
    Insecure {
        /// The secret.
        name: SecretName,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The stored secret is malformed (wrong length, bad encoding).
    #[error("secret {name} is malformed: {message}")]
    Malformed {
        /// The secret.
        name: SecretName,
        /// What is wrong.
        message: String,
    },
    /// The provider refused access.
    #[error("access to secret {name} denied: {message}")]
    PermissionDenied {
        /// The secret.
        name: SecretName,
        /// Why.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider cannot be reached; retry later.
    #[error("secret provider unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// `import` met a version id already stored with other bytes; nothing was stored.
    #[error(
        "secret {name}: version {id} is already stored with other bytes; refusing to import it"
    )]
    VersionConflict {
        /// The secret.
        name: SecretName,
        /// The version id.
        id: KeyId,
    },
    /// The provider assigns its own version ids, so it cannot `import` versions made elsewhere.
    #[error(
        "secret {name}: the {provider} secret provider cannot keep key ids made elsewhere; \
         provision this secret by hand (docs/operations.md)"
    )]
    ImportUnsupported {
        /// The secret.
        name: SecretName,
        /// The provider's kind.
        provider: &'static str,
    },
    /// Any other provider failure.
    #[error("secret provider failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl SecretError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            SecretError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Named, versioned secrets.
///
/// # Contract
/// - A secret has one or more versions, each with a stable [`KeyId`]; `current` is the newest.
/// - `create` makes a new secret of 256 random bits; `AlreadyExists` if it exists.
/// - `rotate` adds a new random version that becomes current; older versions stay readable by
///   id forever, so records signed under them still verify (R1.3).
/// - `versions` lists every version id, oldest first.
/// - `import` (optional: the default refuses) adds versions made elsewhere **with their own ids**
///   ([`merge_imported`]): an id already stored with the same bytes is kept as it is, an id
///   stored with *other* bytes is refused and nothing is stored; the last imported version
///   becomes current; a missing secret is created.
/// - Secret bytes never appear in errors, logs or `Debug` output.
#[async_trait]
pub trait SecretProvider: Send + Sync + std::fmt::Debug {
    /// A short name of the provider for posture events (`file`, `aws-secrets-manager`, ...).
    fn kind(&self) -> &'static str;
    /// The newest version of `name`.
    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError>;
    /// A specific version of `name`.
    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError>;
    /// Every version id of `name`, oldest first.
    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError>;
    /// Every version of `name` with its bytes, oldest first. The default asks for the ids,
    /// then for each version; a provider that holds all versions in one place overrides it to
    /// read them in one go (one consistent view, one read instead of one per version).
    async fn all_versions(&self, name: &SecretName) -> Result<Vec<SecretValue>, SecretError> {
        let mut out = Vec::new();
        for id in self.versions(name).await? {
            out.push(self.version(name, &id).await?);
        }
        Ok(out)
    }
    /// Creates `name` with 256 random bits.
    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError>;
    /// Adds a new random version of `name` and makes it current.
    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError>;
    /// Adds `versions` made elsewhere (an edge's trail key versions registered with the server
    /// of record, a token the server issued) keeping their ids; returns the ids newly added.
    /// Providers whose version ids are assigned by the provider cannot keep foreign ids and
    /// refuse (the default).
    async fn import(
        &self,
        name: &SecretName,
        _versions: &[SecretValue],
    ) -> Result<Vec<KeyId>, SecretError> {
        Err(SecretError::ImportUnsupported {
            name: name.clone(),
            provider: self.kind(),
        })
    }
}

/// The versions a secret holds after importing `incoming` into `stored` (see the
/// [`SecretProvider`] contract), and the ids newly added. Shared by providers so they all
/// answer alike.
pub fn merge_imported(
    name: &SecretName,
    stored: &[SecretValue],
    incoming: &[SecretValue],
) -> Result<(Vec<SecretValue>, Vec<KeyId>), SecretError> {
    let mut merged = stored.to_vec();
    let mut added = Vec::new();
    for value in incoming {
        match merged.iter().find(|v| v.id() == value.id()) {
            Some(held) if held.ct_matches(value.expose()) => {}
            Some(_) => {
                return Err(SecretError::VersionConflict {
                    name: name.clone(),
                    id: value.id().clone(),
                });
            }
            None => {
                merged.push(value.clone());
                added.push(value.id().clone());
            }
        }
    }
    Ok((merged, added))
}

/// Conveniences over [`SecretProvider`].
#[async_trait]
pub trait SecretProviderExt: SecretProvider {
    /// The current version of `name`, creating the secret on first use.
    async fn current_or_create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        match self.current(name).await {
            Err(SecretError::NotFound { .. }) => match self.create(name).await {
                // Another process created it between our two calls: read theirs.
                Err(SecretError::AlreadyExists { .. }) => self.current(name).await,
                other => other,
            },
            other => other,
        }
    }

    /// Every version of `name` as trail keys, the newest being current.
    async fn key_ring(&self, name: &SecretName) -> Result<KeyRing, SecretError> {
        let mut ring = KeyRing::default();
        let values = self.all_versions(name).await?;
        let last = values.len().saturating_sub(1);
        for (i, value) in values.iter().enumerate() {
            let key = value.to_trail_key().map_err(|e| SecretError::Malformed {
                name: name.clone(),
                message: e.to_string(),
            })?;
            if i == last {
                ring.insert_current(key);
            } else {
                ring.insert(key);
            }
        }
        Ok(ring)
    }
}

impl<T: SecretProvider + ?Sized> SecretProviderExt for T {}

/// A secret provider that stands in for the one configured (the OS keyring was asked for but
/// cannot be used, so owner-only files hold the keys): reported loudly at start-up (log, posture,
/// `SYSTEM` event) by whoever opened the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsFallback {
    /// What was asked for (`keyring`).
    pub wanted: &'static str,
    /// The provider standing in (`file`).
    pub using: &'static str,
    /// Why the configured provider could not be used.
    pub reason: String,
}
