//! `KeyringSecretProvider`: versioned secrets in the OS keyring (R10.3, opt-in, cargo feature
//! `keyring`), through the `keyring` crate.
//!
//! Each secret is one keyring item holding every version in the same JSON format as the file
//! provider (`gims-relay-secret-v1`), so a rotation replaces one item and never loses an older
//! version. Two stores are supported on Linux:
//!
//! - [`KeyringStore::SecretService`] (the default, and the only one the binaries offer): the
//!   freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC). Items are kept on
//!   disk, encrypted by the keyring daemon, and **survive reboots**. It needs a session bus and an
//!   unlocked collection; on a headless host that means starting the daemon unlocked (see
//!   docs/operations.md). Spoken to with `zbus` (pure Rust): no system library is linked.
//! - [`KeyringStore::KernelKeyutils`]: the Linux kernel key retention service. Keys live in kernel
//!   memory only: **they are lost at reboot**, and the per-user persistent keyring they are linked
//!   into expires after `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds without use.
//!   It exists for tests and caches, never as the only copy of a trail key (a lost trail key
//!   makes every record signed under it unverifiable).
//!
//! A keyring offers no compare-and-set, so `create` and `rotate` are serialized within this
//! process only: run one relay per namespace. Every call runs on a blocking thread with a time
//! limit, so a keyring that waits for an unlock prompt nobody answers is reported as
//! [`SecretError::Unavailable`] instead of hanging the relay.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use relay_domain::KeyId;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretValue};

use crate::secrets::{decode_versions, encode_versions, random_version};

/// The keyring `service` every item of the relay is filed under.
pub const KEYRING_SERVICE: &str = "gims-compliance-relay";

/// How long one keyring call may take before it is reported as unavailable.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Which OS keyring holds the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringStore {
    /// The freedesktop Secret Service over D-Bus: on disk, survives reboots.
    SecretService,
    /// The Linux kernel keyring (user keyring, linked into the user's persistent keyring): in
    /// memory only, lost at reboot. For tests and caches only.
    KernelKeyutils,
}

impl KeyringStore {
    /// The provider kind written into posture events.
    pub fn kind(self) -> &'static str {
        match self {
            KeyringStore::SecretService => "keyring-secret-service",
            KeyringStore::KernelKeyutils => "keyring-kernel-keyutils",
        }
    }

    /// Whether secrets in this store survive a reboot.
    pub fn survives_reboot(self) -> bool {
        match self {
            KeyringStore::SecretService => true,
            KeyringStore::KernelKeyutils => false,
        }
    }
}

/// Secrets of one relay installation in the OS keyring, under a namespace (items
/// `service = gims-compliance-relay`, `user = <namespace>/<secret name>`).
///
/// - Version ids are [`relay_domain::TrailKey::fingerprint_id`] of the bytes, as in the file
///   provider; `create` makes 256 random bits, `rotate` appends a version and keeps the others.
/// - Every write is read back before it is reported done.
/// - Secret bytes never appear in errors, logs or `Debug` output (only the namespace and store).
#[derive(Debug, Clone)]
pub struct KeyringSecretProvider {
    namespace: String,
    store: KeyringStore,
    timeout: Duration,
    write_lock: Arc<Mutex<()>>,
}

/// What one blocking call works with.
struct Item {
    entry: keyring::Entry,
    name: SecretName,
    location: String,
}

fn unavailable(what: &str, e: keyring::Error) -> SecretError {
    let message = match &e {
        // The platform's error is the source: its text follows once in the cause chain.
        keyring::Error::PlatformFailure(_) | keyring::Error::NoStorageAccess(_) => {
            format!("the OS keyring could not {what}")
        }
        other => format!("the OS keyring could not {what}: {}", describe(other)),
    };
    SecretError::Unavailable {
        message,
        source: source_of(e),
    }
}

/// The keyring error without anything that could hold secret bytes.
fn describe(e: &keyring::Error) -> String {
    match e {
        // Holds the bytes that failed to decode: never shown.
        keyring::Error::BadEncoding(_) => "stored data is not valid text".into(),
        keyring::Error::Ambiguous(items) => {
            format!("{} keyring items match one secret", items.len())
        }
        other => other.to_string(),
    }
}

fn source_of(e: keyring::Error) -> Option<relay_domain::error::BoxError> {
    match e {
        keyring::Error::PlatformFailure(s) | keyring::Error::NoStorageAccess(s) => Some(s),
        _ => None,
    }
}

impl Item {
    /// Every stored version, oldest first; `None` when the item does not exist.
    fn load(&self) -> Result<Option<Vec<SecretValue>>, SecretError> {
        match self.entry.get_secret() {
            Ok(bytes) => {
                let bytes = zeroize::Zeroizing::new(bytes);
                decode_versions(&self.name, &self.location, &bytes).map(Some)
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::Ambiguous(items)) => Err(SecretError::Malformed {
                name: self.name.clone(),
                message: format!(
                    "{}: {} keyring items match; remove the duplicates",
                    self.location,
                    items.len()
                ),
            }),
            Err(e) => Err(unavailable("read a secret", e)),
        }
    }

    fn load_existing(&self) -> Result<Vec<SecretValue>, SecretError> {
        self.load()?.ok_or_else(|| SecretError::NotFound {
            name: self.name.clone(),
            version: None,
        })
    }

    /// Replaces the item with `versions` and reads it back.
    fn store(&self, versions: &[SecretValue]) -> Result<(), SecretError> {
        let bytes = encode_versions(versions)?;
        self.entry
            .set_secret(&bytes)
            .map_err(|e| unavailable("store a secret", e))?;
        let back = self.load()?.unwrap_or_default();
        let same = back.len() == versions.len()
            && back
                .iter()
                .zip(versions)
                .all(|(a, b)| a.id() == b.id() && a.ct_matches(b.expose()));
        if !same {
            return Err(SecretError::Other {
                message: format!(
                    "{}: the keyring did not keep what was written",
                    self.location
                ),
                source: None,
            });
        }
        Ok(())
    }
}

impl KeyringSecretProvider {
    /// A provider on `store` for the installation named `namespace` (e.g. the data directory's
    /// absolute path), after a write, read and delete of a probe item proved the keyring usable.
    /// `Unavailable` (with the reason) when it is not: no session bus, no Secret Service, a
    /// locked collection nobody unlocks, a kernel without keyrings.
    pub async fn open(
        namespace: impl Into<String>,
        store: KeyringStore,
    ) -> Result<Self, SecretError> {
        let provider = Self {
            namespace: namespace.into(),
            store,
            timeout: DEFAULT_TIMEOUT,
            write_lock: Arc::new(Mutex::new(())),
        };
        provider.probe().await?;
        Ok(provider)
    }

    /// Sets how long one keyring call may take before it is reported unavailable.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The namespace the items are filed under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The keyring used.
    pub fn store(&self) -> KeyringStore {
        self.store
    }

    /// The keyring `user` of `name` (a name never holds `/`, so items of two names never meet).
    fn user_of(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    fn entry(store: KeyringStore, user: &str) -> Result<keyring::Entry, SecretError> {
        let credential: Box<keyring::credential::Credential> = match store {
            KeyringStore::SecretService => Box::new(
                keyring::secret_service::SsCredential::new_with_target(None, KEYRING_SERVICE, user)
                    .map_err(|e| unavailable("address an item", e))?,
            ),
            KeyringStore::KernelKeyutils => {
                use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
                let kernel = |e: KeyError| SecretError::Unavailable {
                    message: format!("the kernel keyring is not usable: {e:?}"),
                    source: None,
                };
                // The user keyring, not the session keyring: a service started without a login
                // session has none of its own, and keys added to the shared default session
                // keyring cannot be linked into the persistent keyring.
                let anchor =
                    KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(kernel)?;
                let persistent = KeyRing::get_persistent(KeyRingIdentifier::User).ok();
                Box::new(keyring::keyutils::KeyutilsCredential {
                    session: anchor,
                    persistent,
                    description: format!("{KEYRING_SERVICE}:{user}"),
                })
            }
        };
        Ok(keyring::Entry::new_with_credential(credential))
    }

    async fn run<T, F>(&self, name: &SecretName, f: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&Item, &Mutex<()>) -> Result<T, SecretError> + Send + 'static,
    {
        let store = self.store;
        let user = self.user_of(name.as_str());
        let name = name.clone();
        let lock = Arc::clone(&self.write_lock);
        let task = tokio::task::spawn_blocking(move || {
            let item = Item {
                entry: Self::entry(store, &user)?,
                location: format!("{} item {KEYRING_SERVICE}/{user}", store.kind()),
                name,
            };
            f(&item, lock.as_ref())
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SecretError::Other {
                message: "a keyring task failed".into(),
                source: Some(Box::new(e)),
            }),
            Err(_) => Err(SecretError::Unavailable {
                message: format!(
                    "the OS keyring ({}) did not answer within {:?}; is the collection locked \
                     and waiting for an unlock prompt?",
                    self.store.kind(),
                    self.timeout
                ),
                source: None,
            }),
        }
    }

    /// Writes, reads back and deletes a probe item.
    async fn probe(&self) -> Result<(), SecretError> {
        let store = self.store;
        // ':' never occurs in a secret name, so the probe cannot meet a real secret.
        let user = self.user_of(":probe");
        let task = tokio::task::spawn_blocking(move || {
            let entry = Self::entry(store, &user)?;
            let marker = b"gims-relay keyring probe";
            entry
                .set_secret(marker)
                .map_err(|e| unavailable("store a probe item", e))?;
            let back = entry
                .get_secret()
                .map_err(|e| unavailable("read a probe item back", e))?;
            entry
                .delete_credential()
                .map_err(|e| unavailable("delete a probe item", e))?;
            if back != marker {
                return Err(SecretError::Unavailable {
                    message: "the OS keyring returned something else than was stored".into(),
                    source: None,
                });
            }
            Ok(())
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SecretError::Other {
                message: "the keyring probe task failed".into(),
                source: Some(Box::new(e)),
            }),
            Err(_) => Err(SecretError::Unavailable {
                message: format!(
                    "the OS keyring ({}) did not answer the probe within {:?}",
                    store.kind(),
                    self.timeout
                ),
                source: None,
            }),
        }
    }
}

#[async_trait]
impl SecretProvider for KeyringSecretProvider {
    fn kind(&self) -> &'static str {
        self.store.kind()
    }

    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |item, _| {
            let mut versions = item.load_existing()?;
            versions.pop().ok_or_else(|| SecretError::Malformed {
                name: item.name.clone(),
                message: "holds no version".into(),
            })
        })
        .await
    }

    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        let id = id.clone();
        self.run(name, move |item, _| {
            item.load_existing()?
                .into_iter()
                .find(|v| *v.id() == id)
                .ok_or_else(|| SecretError::NotFound {
                    name: item.name.clone(),
                    version: Some(id),
                })
        })
        .await
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        self.run(name, |item, _| {
            Ok(item
                .load_existing()?
                .iter()
                .map(|v| v.id().clone())
                .collect())
        })
        .await
    }

    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |item, lock| {
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if item.load()?.is_some() {
                return Err(SecretError::AlreadyExists {
                    name: item.name.clone(),
                });
            }
            let value = random_version()?;
            item.store(std::slice::from_ref(&value))?;
            tracing::info!(secret = %item.name, key_id = %value.id(), "created secret in the OS keyring");
            Ok(value)
        })
        .await
    }

    async fn import(
        &self,
        name: &SecretName,
        versions: &[SecretValue],
    ) -> Result<Vec<KeyId>, SecretError> {
        let incoming = versions.to_vec();
        self.run(name, move |item, lock| {
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            let stored = item.load()?.unwrap_or_default();
            let (merged, added) =
                relay_domain::ports::merge_imported(&item.name, &stored, &incoming)?;
            if !added.is_empty() {
                item.store(&merged)?;
                tracing::info!(secret = %item.name, added = added.len(), "imported secret versions into the OS keyring");
            }
            Ok(added)
        })
        .await
    }

    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.run(name, |item, lock| {
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut versions = item.load_existing()?;
            let value = random_version()?;
            if versions.iter().any(|v| v.id() == value.id()) {
                return Err(SecretError::Other {
                    message: format!("secret {}: new version id collides", item.name),
                    source: None,
                });
            }
            versions.push(value.clone());
            item.store(&versions)?;
            tracing::info!(secret = %item.name, key_id = %value.id(), "rotated secret in the OS keyring");
            Ok(value)
        })
        .await
    }
}
