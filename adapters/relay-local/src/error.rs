//! The adapter's own errors, converted into the port errors at the boundary.
//!
//! Adapter code works with [`LocalError`], which keeps the provider's error (sqlx, io, serde) and
//! what was being done; the `From` impls below decide what each provider failure *means* to a
//! caller of the port (retry or not, permission, not found), so callers never parse messages.

use std::io;
use std::path::PathBuf;

use relay_domain::error::BoxError;
use relay_domain::ports::{Classified, ProviderFailure};
use thiserror::Error;

/// SQLite primary result codes (the low byte of an extended code), from sqlite3.h.
mod sqlite_code {
    pub const PERM: i32 = 3;
    pub const BUSY: i32 = 5;
    pub const LOCKED: i32 = 6;
    pub const READONLY: i32 = 8;
    pub const IOERR: i32 = 10;
    pub const FULL: i32 = 13;
    pub const CANTOPEN: i32 = 14;
    pub const CONSTRAINT: i32 = 19;
    pub const AUTH: i32 = 23;
    /// `SQLITE_CONSTRAINT_TRIGGER`: a trigger's `RAISE(ABORT, ..)`.
    pub const CONSTRAINT_TRIGGER: i32 = 19 | (7 << 8);
    /// `SQLITE_CONSTRAINT_PRIMARYKEY`.
    pub const CONSTRAINT_PRIMARYKEY: i32 = 19 | (6 << 8);
    /// `SQLITE_CONSTRAINT_UNIQUE`.
    pub const CONSTRAINT_UNIQUE: i32 = 19 | (8 << 8);
}

/// A failure inside the local adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
pub(crate) enum LocalError {
    /// A SQLite operation failed.
    #[error("sqlite: {op} failed")]
    Sql {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A filesystem operation failed.
    #[error("{op} {}: failed", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A blocking task was cancelled or panicked.
    #[error("background filesystem task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl LocalError {
    /// A SQLite failure while doing `op`.
    pub(crate) fn sql(op: &'static str) -> impl FnOnce(sqlx::Error) -> LocalError {
        move |source| LocalError::Sql { op, source }
    }

    /// A filesystem failure while doing `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io { op, path, source }
    }

    /// The SQLite extended result code, when the database reported one.
    pub(crate) fn sqlite_code(&self) -> Option<i32> {
        match self {
            LocalError::Sql {
                source: sqlx::Error::Database(db),
                ..
            } => db.code().and_then(|c| c.parse().ok()),
            _ => None,
        }
    }

    /// Whether this is a unique or primary-key violation (another writer stored that row).
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(
            self.sqlite_code(),
            Some(sqlite_code::CONSTRAINT_PRIMARYKEY | sqlite_code::CONSTRAINT_UNIQUE)
        )
    }

    pub(crate) fn meaning(&self) -> Meaning {
        match self {
            LocalError::Sql { source, .. } => match source {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Io(_) => Meaning::Temporary,
                sqlx::Error::Database(_) => {
                    let code = self.sqlite_code().unwrap_or(0);
                    match code & 0xff {
                        sqlite_code::BUSY
                        | sqlite_code::LOCKED
                        | sqlite_code::IOERR
                        | sqlite_code::FULL
                        | sqlite_code::CANTOPEN => Meaning::Temporary,
                        sqlite_code::PERM | sqlite_code::READONLY | sqlite_code::AUTH => {
                            Meaning::Denied
                        }
                        sqlite_code::CONSTRAINT if code == sqlite_code::CONSTRAINT_TRIGGER => {
                            Meaning::Denied
                        }
                        _ => Meaning::Other,
                    }
                }
                _ => Meaning::Other,
            },
            LocalError::Io { source, .. } => io_meaning(source),
            LocalError::Task(_) => Meaning::Other,
        }
    }

    pub(crate) fn into_parts(self) -> (String, BoxError) {
        let message = self.to_string();
        let source: BoxError = match self {
            LocalError::Sql { source, .. } => Box::new(source),
            LocalError::Io { source, .. } => Box::new(source),
            LocalError::Task(e) => Box::new(e),
        };
        (message, source)
    }
}

pub(crate) use relay_domain::ports::Meaning;

/// What an OS error means to a caller.
pub(crate) fn io_meaning(e: &io::Error) -> Meaning {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Meaning::Denied,
        io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut
        | io::ErrorKind::StorageFull
        | io::ErrorKind::ResourceBusy => Meaning::Temporary,
        _ => Meaning::Other,
    }
}

impl Classified for LocalError {
    fn meaning(&self) -> Meaning {
        LocalError::meaning(self)
    }

    /// The source is the provider's own error (sqlx, io), not this wrapper.
    fn into_failure(self) -> ProviderFailure {
        let meaning = LocalError::meaning(&self);
        let (message, source) = self.into_parts();
        ProviderFailure::new(meaning, message, Some(source))
    }
}
