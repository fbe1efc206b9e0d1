//! Secrets Manager failures, converted into [`SecretError`] at the boundary.
//!
//! [`SmError`] keeps the SDK's error, the HTTP status and the service's error code;
//! [`sm_meaning`] decides what a failure *means* to a caller (retry or not, permission, not
//! found, exists) from the code and status, so callers match variants, never messages. No
//! request ever carries a secret in a place an error could echo it: Secrets Manager error
//! messages name the secret, never its value.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use relay_domain::error::BoxError;
use relay_domain::ports::{SecretError, SecretName};
use thiserror::Error;

pub(crate) use relay_domain::ports::Meaning;

/// A Secrets Manager failure inside the adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
#[error("secrets manager: {op} failed{}{}{}",
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
    message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
pub(crate) struct SmError {
    /// What was being done.
    pub op: &'static str,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The service's error code (`ResourceNotFoundException`, ...), when it sent one.
    pub code: Option<String>,
    /// The service's message (names the secret, never its value).
    pub message: Option<String>,
    meaning: Meaning,
    /// The SDK's error.
    #[source]
    pub source: BoxError,
}

impl SmError {
    /// An SDK failure while doing `op`.
    pub(crate) fn op<E>(op: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> SmError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        move |err| {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            let message = err.message().map(str::to_owned);
            let meaning = match &err {
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => Meaning::Temporary,
                SdkError::ServiceError(_) => sm_meaning(status, code.as_deref()),
                _ => Meaning::Other,
            };
            SmError {
                op,
                status,
                code,
                message,
                meaning,
                source: Box::new(err),
            }
        }
    }

    pub(crate) fn meaning(&self) -> Meaning {
        self.meaning
    }

    /// The port error for a failure on secret `name`.
    pub(crate) fn into_secret_error(self, name: &SecretName) -> SecretError {
        match self.meaning {
            Meaning::NotFound => SecretError::NotFound {
                name: name.clone(),
                version: None,
            },
            Meaning::Exists => SecretError::AlreadyExists { name: name.clone() },
            Meaning::Denied => SecretError::PermissionDenied {
                name: name.clone(),
                message: self.to_string(),
                source: Some(Box::new(self)),
            },
            Meaning::Temporary => SecretError::Unavailable {
                message: format!("secret {name}: {self}"),
                source: Some(Box::new(self)),
            },
            Meaning::Other | Meaning::Precondition => SecretError::Other {
                message: format!("secret {name}: {self}"),
                source: Some(Box::new(self)),
            },
        }
    }
}

/// What a Secrets Manager error response means to a caller.
pub(crate) fn sm_meaning(status: Option<u16>, code: Option<&str>) -> Meaning {
    match (status, code) {
        (_, Some("ResourceNotFoundException")) => Meaning::NotFound,
        (_, Some("ResourceExistsException")) => Meaning::Exists,
        (
            _,
            Some(
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
                | "ExpiredTokenException"
                | "DecryptionFailure"
                | "EncryptionFailure",
            ),
        )
        | (Some(401 | 403), _) => Meaning::Denied,
        (
            _,
            Some(
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "InternalServiceError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "RequestTimeout"
                | "RequestTimeoutException",
            ),
        )
        | (Some(429 | 500..=599), _) => Meaning::Temporary,
        _ => Meaning::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_manager_errors_map_to_what_callers_need() {
        assert_eq!(
            sm_meaning(Some(400), Some("ResourceNotFoundException")),
            Meaning::NotFound
        );
        assert_eq!(
            sm_meaning(Some(400), Some("ResourceExistsException")),
            Meaning::Exists
        );
        assert_eq!(
            sm_meaning(Some(400), Some("AccessDeniedException")),
            Meaning::Denied
        );
        assert_eq!(
            sm_meaning(Some(400), Some("DecryptionFailure")),
            Meaning::Denied
        );
        assert_eq!(sm_meaning(Some(403), None), Meaning::Denied);
        assert_eq!(
            sm_meaning(Some(400), Some("ThrottlingException")),
            Meaning::Temporary
        );
        assert_eq!(
            sm_meaning(Some(500), Some("InternalServiceError")),
            Meaning::Temporary
        );
        assert_eq!(sm_meaning(Some(503), None), Meaning::Temporary);
        assert_eq!(
            sm_meaning(Some(400), Some("InvalidRequestException")),
            Meaning::Other
        );
        assert_eq!(
            sm_meaning(Some(400), Some("LimitExceededException")),
            Meaning::Other
        );
    }

    #[test]
    fn port_errors_keep_the_variant_callers_match() {
        let name = SecretName::new("trail-hmac").unwrap();
        let err = |meaning| SmError {
            op: "read secret",
            status: Some(400),
            code: Some("X".into()),
            message: Some("m".into()),
            meaning,
            source: "sdk".into(),
        };
        assert!(matches!(
            err(Meaning::NotFound).into_secret_error(&name),
            SecretError::NotFound { version: None, .. }
        ));
        assert!(matches!(
            err(Meaning::Exists).into_secret_error(&name),
            SecretError::AlreadyExists { .. }
        ));
        assert!(matches!(
            err(Meaning::Denied).into_secret_error(&name),
            SecretError::PermissionDenied { .. }
        ));
        let unavailable = err(Meaning::Temporary).into_secret_error(&name);
        assert_eq!(
            unavailable.status(),
            relay_domain::ErrorStatus::Temporary,
            "{unavailable}"
        );
        assert!(
            unavailable
                .to_string()
                .contains("read secret failed (HTTP 400) (X): m")
        );
        assert!(matches!(
            err(Meaning::Other).into_secret_error(&name),
            SecretError::Other { .. }
        ));
    }
}
