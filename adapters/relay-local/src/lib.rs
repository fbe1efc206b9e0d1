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
//! | `objects/`               | `ObjectStore`    | [`FsObjectStore`]      |
//! | `anchors/<trail>.jsonl`  | `Notary`         | [`FsNotary`]           |
//! | `secrets/<name>.json`    | `SecretProvider` | [`FileSecretProvider`] |
//! | (host clock)             | `TimeSource`     | [`SystemTimeSource`]   |
//!
//! The crate maps SQLite and OS errors into the domain's port errors at its boundary; nothing
//! provider-specific leaks out except [`SqliteRecordStore::pool`], which exists for operational
//! tooling and tamper tests. It must not read environment variables or config files (only
//! binaries do), and it must not make any rule of the domain its own: chain validation is
//! `relay_domain::memory::check_batch_at_head`, run inside the write transaction.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod accounts;
mod changes;
mod config;
mod error;
mod forward_cursor;
mod notary;
mod object_store;
mod record_store;
mod secrets;
mod time_source;

use std::path::Path;
use std::sync::Arc;

use relay_domain::ports::{NotaryError, ObjectStoreError, RecordStoreError, SecretError};
use thiserror::Error;

pub use accounts::SqliteAccountStore;
pub use changes::SqliteChangeRequestStore;
pub use config::LocalConfig;
pub use forward_cursor::SqliteForwardCursorStore;
pub use notary::FsNotary;
pub use object_store::FsObjectStore;
pub use record_store::SqliteRecordStore;
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
    /// `<data-dir>/objects/`.
    pub object_store: Arc<FsObjectStore>,
    /// `<data-dir>/anchors/`.
    pub notary: Arc<FsNotary>,
    /// `<data-dir>/secrets/`.
    pub secrets: Arc<FileSecretProvider>,
    /// The host clock.
    pub clock: Arc<SystemTimeSource>,
}

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
        let object_store = Arc::new(FsObjectStore::open(config.objects_dir())?);
        let notary = Arc::new(FsNotary::open(config.anchors_dir())?);
        let secrets = Arc::new(FileSecretProvider::open(config.secrets_dir())?);
        Ok(Self {
            config,
            record_store,
            accounts,
            changes,
            forward_cursors,
            object_store,
            notary,
            secrets,
            clock: Arc::new(SystemTimeSource::new()),
        })
    }
}
