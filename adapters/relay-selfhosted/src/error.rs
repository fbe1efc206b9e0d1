//! The adapter's own errors, converted into the port errors at the boundary.
//!
//! Adapter code works with [`PgError`] and [`S3Error`], which keep the provider's error and what
//! was being done; [`PgError::meaning`] and [`S3Error::meaning`] decide what a failure *means*
//! to a caller of a port (retry or not, permission, not found), from SQLSTATEs and S3 error
//! codes, so callers never parse messages.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use relay_domain::error::BoxError;
use relay_domain::ports::{Classified, ProviderFailure};
use thiserror::Error;

/// SQLSTATEs the adapter gives a meaning to (Postgres appendix A).
pub(crate) mod sqlstate {
    /// `unique_violation`: another writer stored that (trail_id, chain_seq).
    pub const UNIQUE_VIOLATION: &str = "23505";
    /// `insufficient_privilege`: the role lacks the grant (two-role custody).
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// `raise_exception`: the append-only trigger.
    pub const RAISE_EXCEPTION: &str = "P0001";
    /// `undefined_table`: the schema was never migrated.
    pub const UNDEFINED_TABLE: &str = "42P01";
}

pub(crate) use relay_domain::ports::Meaning;

/// A Postgres failure inside the adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
#[error("postgres: {op} failed")]
pub(crate) struct PgError {
    /// What was being done.
    pub op: &'static str,
    /// The driver's error.
    #[source]
    pub source: sqlx::Error,
}

impl PgError {
    /// A Postgres failure while doing `op`.
    pub(crate) fn op(op: &'static str) -> impl FnOnce(sqlx::Error) -> PgError {
        move |source| PgError { op, source }
    }

    /// The SQLSTATE, when the server reported one.
    pub(crate) fn sqlstate(&self) -> Option<String> {
        match &self.source {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    pub(crate) fn meaning(&self) -> Meaning {
        match &self.source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_) => Meaning::Temporary,
            sqlx::Error::Database(_) => sqlstate_meaning(self.sqlstate().as_deref().unwrap_or("")),
            _ => Meaning::Other,
        }
    }
}

/// What a SQLSTATE means to a caller.
pub(crate) fn sqlstate_meaning(code: &str) -> Meaning {
    match code {
        sqlstate::INSUFFICIENT_PRIVILEGE | sqlstate::RAISE_EXCEPTION => Meaning::Denied,
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled
        // (statement or lock timeout), admin/crash shutdown, cannot_connect_now.
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" => Meaning::Temporary,
        // connection_exception, insufficient_resources, operator intervention.
        c if c.starts_with("08") || c.starts_with("53") => Meaning::Temporary,
        // invalid_authorization_specification (bad password, no such role).
        c if c.starts_with("28") => Meaning::Denied,
        _ => Meaning::Other,
    }
}

impl Classified for PgError {
    fn meaning(&self) -> Meaning {
        PgError::meaning(self)
    }

    /// The message names the SQLSTATE, when there is one; the source is the driver's error.
    fn into_failure(self) -> ProviderFailure {
        let meaning = PgError::meaning(&self);
        let message = match self.sqlstate() {
            Some(code) => format!("{self} (SQLSTATE {code})"),
            None => self.to_string(),
        };
        ProviderFailure::new(meaning, message, Some(Box::new(self.source)))
    }
}

/// An S3 failure inside the adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
#[error("s3: {op} failed{}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub(crate) struct S3Error {
    /// What was being done.
    pub op: &'static str,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The S3 error code (`AccessDenied`, `NoSuchKey`, ...), when the service sent one.
    pub code: Option<String>,
    meaning: Meaning,
    /// The SDK's error.
    #[source]
    pub source: BoxError,
}

impl S3Error {
    /// An SDK failure while doing `op`.
    pub(crate) fn op<E>(op: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        move |err| {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            let meaning = match &err {
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => Meaning::Temporary,
                SdkError::ServiceError(_) => s3_meaning(status, code.as_deref()),
                _ => Meaning::Other,
            };
            S3Error {
                op,
                status,
                code,
                meaning,
                source: Box::new(err),
            }
        }
    }

    /// A failure reading a response body.
    pub(crate) fn body(op: &'static str, source: impl Into<BoxError>) -> S3Error {
        S3Error {
            op,
            status: None,
            code: None,
            meaning: Meaning::Temporary,
            source: source.into(),
        }
    }

    pub(crate) fn meaning(&self) -> Meaning {
        self.meaning
    }
}

/// What an S3 error response means to a caller.
pub(crate) fn s3_meaning(status: Option<u16>, code: Option<&str>) -> Meaning {
    match (status, code) {
        (_, Some("NoSuchKey" | "NotFound" | "NoSuchVersion")) | (Some(404), _) => {
            Meaning::NotFound
        }
        (_, Some("PreconditionFailed")) | (Some(412), _) => Meaning::Precondition,
        (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"))
        | (Some(403), _) => Meaning::Denied,
        (_, Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"))
        // 409 ConditionalRequestConflict: a concurrent conditional write; retry.
        | (Some(409 | 429 | 500..=599), _) => Meaning::Temporary,
        _ => Meaning::Other,
    }
}

impl Classified for S3Error {
    fn meaning(&self) -> Meaning {
        self.meaning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_what_callers_need() {
        assert_eq!(sqlstate_meaning("42501"), Meaning::Denied);
        assert_eq!(sqlstate_meaning("P0001"), Meaning::Denied);
        assert_eq!(sqlstate_meaning("28P01"), Meaning::Denied);
        assert_eq!(sqlstate_meaning("55P03"), Meaning::Temporary);
        assert_eq!(sqlstate_meaning("08006"), Meaning::Temporary);
        assert_eq!(sqlstate_meaning("53300"), Meaning::Temporary);
        assert_eq!(sqlstate_meaning("23505"), Meaning::Other);
    }

    #[test]
    fn s3_errors_map_to_what_callers_need() {
        assert_eq!(s3_meaning(Some(404), None), Meaning::NotFound);
        assert_eq!(s3_meaning(Some(400), Some("NoSuchKey")), Meaning::NotFound);
        assert_eq!(s3_meaning(Some(412), None), Meaning::Precondition);
        assert_eq!(s3_meaning(Some(403), None), Meaning::Denied);
        assert_eq!(s3_meaning(Some(400), Some("AccessDenied")), Meaning::Denied);
        assert_eq!(s3_meaning(Some(503), Some("SlowDown")), Meaning::Temporary);
        assert_eq!(
            s3_meaning(Some(400), Some("InvalidRequest")),
            Meaning::Other
        );
    }
}
