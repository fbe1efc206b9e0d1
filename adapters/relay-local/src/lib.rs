//! Local adapter: SQLite record store, filesystem object store and notary, file secrets, system
//! clock (R10.2 "local").
//!
//! Everything lives under one data directory:
//!
//! | path                     | port             | type                   |
//! |--------------------------|------------------|------------------------|
//! | `relay.db`               | `RecordStore`    | [`SqliteRecordStore`]  |
//! | `relay.db` (`accounts`)  | `AccountStore`   | [`SqliteAccountStore`] |
//! | `relay.db` (`change_requests`) | `ChangeRequestStore` | [`SqliteChangeRequestStore`] |
//! | `relay.db` (`receipts`) | `ReceiptStore` | [`SqliteReceiptStore`] |
//! | `relay.db` (`enrollment_codes`, `fleet_edges`, `edge_reports`) | `FleetStore` | [`SqliteFleetStore`] |
//! | `objects/`               | `ObjectStore`    | [`FsObjectStore`]      |
//! | `anchors/<trail>.jsonl`  | `Notary`         | [`FsNotary`]           |
//! | `secrets/<name>.json`    | `SecretProvider` | [`FileSecretProvider`] |
//! | OS keyring (opt-in, feature `keyring`) | `SecretProvider` | `KeyringSecretProvider` |
//! | (host clock)             | `TimeSource`     | [`SystemTimeSource`]   |
//!
//! The crate maps SQLite and OS errors into the domain's port errors at its boundary; nothing
//! provider-specific leaks out except [`SqliteRecordStore::pool`], which exists for operational
//! tooling and tamper tests. It must not read environment variables or config files (only
//! binaries do), and it must not make any rule of the domain its own: chain validation is
//! `relay_domain::chain::check_batch_at_head`, run inside the write transaction.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod accounts;
mod changes;
mod config;
mod error;
mod fleet;
mod forward_cursor;
#[cfg(feature = "keyring")]
mod keyring_secrets;
mod notary;
mod object_store;
pub mod private_fs;
mod receipts;
mod record_store;
mod secrets;
mod tamper;
mod time_source;

use std::path::Path;
use std::sync::Arc;

use relay_domain::ports::{
    NotaryError, ObjectStoreError, RecordStoreError, SecretError, SecretProvider,
};
use thiserror::Error;

pub use accounts::SqliteAccountStore;
pub use changes::SqliteChangeRequestStore;
pub use config::{LocalConfig, SecretBackend};
pub use fleet::SqliteFleetStore;
pub use forward_cursor::SqliteForwardCursorStore;
#[cfg(feature = "keyring")]
pub use keyring_secrets::{KEYRING_SERVICE, KeyringSecretProvider, KeyringStore};
pub use notary::{FsNotary, TAIL_BYTES as ANCHOR_TAIL_BYTES};
pub use object_store::FsObjectStore;
pub use receipts::SqliteReceiptStore;
pub use record_store::{SqliteRecordStore, WalCheckpoint};
pub use secrets::FileSecretProvider;
pub use time_source::SystemTimeSource;

/// Why the local adapters could not be opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LocalOpenError {
    /// The record store (SQLite database) could not be opened or migrated.
    #[error("could not open the record store")]
    RecordStore(#[from] RecordStoreError),
    /// The object store directory could not be created.
    #[error("could not open the object store")]
    ObjectStore(#[from] ObjectStoreError),
    /// The anchor directory could not be created.
    #[error("could not open the notary")]
    Notary(#[from] NotaryError),
    /// The secrets directory could not be created.
    #[error("could not open the secret provider")]
    Secrets(#[from] SecretError),
}

/// All local adapters over one data directory, ready to be wired as `Arc<dyn Port>`.
#[derive(Debug, Clone)]
pub struct LocalAdapters {
    /// The settings they were opened with.
    pub config: LocalConfig,
    /// `<data-dir>/relay.db`.
    pub record_store: Arc<SqliteRecordStore>,
    /// Table `accounts` of `<data-dir>/relay.db`, on the record store's pool.
    pub accounts: Arc<SqliteAccountStore>,
    /// Tables `change_requests` and `config_baseline` of `<data-dir>/relay.db` (four-eyes).
    pub changes: Arc<SqliteChangeRequestStore>,
    /// Table `forward_cursor` of `<data-dir>/relay.db`: the forwarder's progress per trail.
    pub forward_cursors: Arc<SqliteForwardCursorStore>,
    /// Table `receipts` of `<data-dir>/relay.db`: the server of record's time of receipt of
    /// forwarded records.
    pub receipts: Arc<SqliteReceiptStore>,
    /// Tables `enrollment_codes`, `fleet_edges` and `edge_reports` of `<data-dir>/relay.db`:
    /// the server of record's enrollment codes, enrolled and revoked edges, and their reports.
    pub fleet: Arc<SqliteFleetStore>,
    /// `<data-dir>/objects/`.
    pub object_store: Arc<FsObjectStore>,
    /// `<data-dir>/anchors/`.
    pub notary: Arc<FsNotary>,
    /// The secret provider the configuration asked for ([`SecretBackend`]): `<data-dir>/secrets/`
    /// files, or the OS keyring.
    pub secrets: Arc<dyn SecretProvider>,
    /// Set when the OS keyring was asked for but could not be used, so the file provider
    /// stands in: the caller must say so loudly (start-up warning, posture, SYSTEM event).
    pub secrets_fallback: Option<SecretsFallback>,
    /// The host clock.
    pub clock: Arc<SystemTimeSource>,
}

/// The OS keyring was asked for but could not be used; the file provider stands in.
pub use relay_domain::ports::SecretsFallback;

impl LocalAdapters {
    /// Opens every adapter under `data_dir` with default settings, creating what is missing.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self, LocalOpenError> {
        Self::open_with(LocalConfig::new(data_dir.as_ref())).await
    }

    /// Opens every adapter as `config` says, creating what is missing.
    pub async fn open_with(config: LocalConfig) -> Result<Self, LocalOpenError> {
        let record_store = Arc::new(SqliteRecordStore::open(&config).await?);
        let accounts = Arc::new(SqliteAccountStore::new(record_store.pool().clone()));
        let changes = Arc::new(SqliteChangeRequestStore::new(record_store.pool().clone()));
        let forward_cursors = Arc::new(SqliteForwardCursorStore::new(record_store.pool().clone()));
        let receipts = Arc::new(SqliteReceiptStore::new(record_store.pool().clone()));
        let fleet = Arc::new(SqliteFleetStore::new(record_store.pool().clone()));
        let object_store = Arc::new(FsObjectStore::open(config.objects_dir())?);
        let notary = Arc::new(FsNotary::open(config.anchors_dir())?);
        let (secrets, secrets_fallback) = open_secrets(&config).await?;
        Ok(Self {
            config,
            record_store,
            accounts,
            changes,
            forward_cursors,
            receipts,
            fleet,
            object_store,
            notary,
            secrets,
            secrets_fallback,
            clock: Arc::new(SystemTimeSource::new()),
        })
    }
}

/// The secret provider `config` asks for, or the file provider with the reason it stands in.
async fn open_secrets(
    config: &LocalConfig,
) -> Result<(Arc<dyn SecretProvider>, Option<SecretsFallback>), SecretError> {
    let file = || -> Result<Arc<dyn SecretProvider>, SecretError> {
        Ok(Arc::new(FileSecretProvider::open(config.secrets_dir())?))
    };
    let record = config.secret_provider_path();
    let recorded = read_recorded_backend(&record)?;
    let backend = match (config.secret_backend_value(), recorded) {
        (Some(wanted), recorded) => {
            if recorded.as_ref() != Some(wanted) {
                if let Some(before) = &recorded {
                    tracing::warn!(
                        from = before.as_str(), to = wanted.as_str(), record = %record.display(),
                        "the secret provider of this data directory changes; keys are NOT moved \
                         between providers, and records signed under keys the new provider lacks \
                         will not verify"
                    );
                }
                if recorded.is_some() || *wanted != SecretBackend::File {
                    write_recorded_backend(&record, wanted)?;
                }
            }
            wanted.clone()
        }
        (None, Some(recorded)) => recorded,
        (None, None) => SecretBackend::File,
    };
    match &backend {
        SecretBackend::File => Ok((file()?, None)),
        SecretBackend::Keyring { namespace } => match open_keyring(namespace).await {
            Ok(keyring) => Ok((keyring, None)),
            Err(reason) => {
                let secrets_dir = config.secrets_dir();
                tracing::error!(
                    reason = %reason, secrets_dir = %secrets_dir.display(),
                    "SECRET PROVIDER FALLBACK: secret_provider = \"keyring\" was asked for, but the \
                     OS keyring cannot be used; keys are read from and created in owner-only files \
                     under the secrets directory instead"
                );
                Ok((
                    file()?,
                    Some(SecretsFallback {
                        wanted: "keyring",
                        using: "file",
                        reason,
                    }),
                ))
            }
        },
    }
}

/// What `<data-dir>/secret-provider.json` records, if it exists.
fn read_recorded_backend(path: &Path) -> Result<Option<SecretBackend>, SecretError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(error::LocalError::io("read the secret provider record", path)(e).into());
        }
    };
    let bad = |message: String| SecretError::Other {
        message: format!("{}: {message}", path.display()),
        source: None,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    match value.get("provider").and_then(serde_json::Value::as_str) {
        Some("file") => Ok(Some(SecretBackend::File)),
        Some("keyring") => match value.get("namespace").and_then(serde_json::Value::as_str) {
            Some(namespace) if !namespace.is_empty() => Ok(Some(SecretBackend::Keyring {
                namespace: namespace.to_owned(),
            })),
            _ => Err(bad("provider \"keyring\" without a namespace".into())),
        },
        other => Err(bad(format!("unknown provider {other:?}"))),
    }
}

/// Records `backend` in `<data-dir>/secret-provider.json` (temporary file, fsync, rename).
fn write_recorded_backend(path: &Path, backend: &SecretBackend) -> Result<(), SecretError> {
    use std::io::Write;
    let body = match backend {
        SecretBackend::File => serde_json::json!({ "provider": "file" }),
        SecretBackend::Keyring { namespace } => {
            serde_json::json!({ "provider": "keyring", "namespace": namespace })
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(error::LocalError::io("create data directory", parent))?;
    }
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(format!("{body}\n").as_bytes())?;
        f.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| error::LocalError::io("write the secret provider record", path)(e).into())
}

#[cfg(feature = "keyring")]
async fn open_keyring(namespace: &str) -> Result<Arc<dyn SecretProvider>, String> {
    match KeyringSecretProvider::open(namespace, KeyringStore::SecretService).await {
        Ok(p) => Ok(Arc::new(p)),
        Err(e) => {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                reason.push_str(": ");
                reason.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(reason)
        }
    }
}

#[cfg(not(feature = "keyring"))]
async fn open_keyring(_namespace: &str) -> Result<Arc<dyn SecretProvider>, String> {
    Err("this build has no OS keyring support (cargo feature `keyring` of relay-local)".into())
}
