//! The adapter's own errors, converted into the port errors at the boundary.
//!
//! Adapter code works with [`AzureError`], which keeps the SDK's error, what was being done, the
//! HTTP status and the service's error code (`BlobNotFound`, `SecretNotFound`, ...);
//! [`AzureError::meaning`] decides what a failure *means* to a caller of a port (retry or not,
//! permission, not found), from statuses and codes, so callers never parse messages.

use std::time::Duration;

use azure_core::error::ErrorKind;
use relay_domain::error::BoxError;
use relay_domain::ports::Classified;
use thiserror::Error;

pub(crate) use relay_domain::ports::Meaning;

/// An SDK failure inside the adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
#[error("azure: {op} failed{}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub(crate) struct AzureError {
    /// What was being done.
    pub op: &'static str,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    meaning: Meaning,
    /// The SDK's error.
    #[source]
    pub source: BoxError,
}

impl AzureError {
    /// An SDK failure while doing `op`.
    pub(crate) fn op(op: &'static str) -> impl FnOnce(azure_core::Error) -> AzureError {
        move |err| {
            let (status, code, meaning) = match err.kind() {
                ErrorKind::HttpResponse {
                    status, error_code, ..
                } => {
                    let status = u16::from(*status);
                    let code = error_code.clone().filter(|c| !c.is_empty());
                    (
                        Some(status),
                        code.clone(),
                        meaning_of(status, code.as_deref()),
                    )
                }
                ErrorKind::Io | ErrorKind::Connection => (None, None, Meaning::Temporary),
                // Tokens: a wrong client id or secret, or no identity on this host.
                ErrorKind::Credential => (None, None, Meaning::Denied),
                _ => (None, None, Meaning::Other),
            };
            AzureError {
                op,
                status,
                code,
                meaning,
                // As text with SAS signatures removed: transport errors quote the request URL,
                // and a SAS in it is a credential.
                source: redact_sas(&chain(&err)).into(),
            }
        }
    }

    /// `op` ran past its deadline.
    pub(crate) fn timed_out(op: &'static str, limit: Duration) -> AzureError {
        AzureError {
            op,
            status: None,
            code: None,
            meaning: Meaning::Temporary,
            source: format!(
                "no answer within {} ms (retries included)",
                limit.as_millis()
            )
            .into(),
        }
    }

    pub(crate) fn meaning(&self) -> Meaning {
        self.meaning
    }
}

/// What an Azure error response (Blob Storage or Key Vault) means to a caller.
pub(crate) fn meaning_of(status: u16, code: Option<&str>) -> Meaning {
    match (status, code) {
        (_, Some("BlobNotFound" | "ContainerNotFound" | "SecretNotFound" | "ResourceNotFound"))
        | (404, _) => Meaning::NotFound,
        (_, Some("BlobAlreadyExists" | "ConditionNotMet")) | (412, _) => Meaning::Precondition,
        // A locked or unexpired immutability policy refuses delete and overwrite.
        (
            _,
            Some(
                "BlobImmutableDueToPolicy"
                | "BlobImmutableDueToLegalHold"
                | "ImmutabilityPolicyDeleteOnLockedPolicy"
                | "ContainerImmutableDueToPolicy",
            ),
        )
        | (
            _,
            Some(
                "AuthorizationFailure"
                | "AuthenticationFailed"
                | "AuthorizationPermissionMismatch"
                | "AuthorizationResourceTypeMismatch"
                | "Forbidden",
            ),
        )
        | (401 | 403, _) => Meaning::Denied,
        (_, Some("ServerBusy" | "InternalError" | "OperationTimedOut" | "Throttled"))
        | (408 | 429 | 500..=599, _) => Meaning::Temporary,
        _ => Meaning::Other,
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// `text` with the value of every `sig=` (a SAS signature) replaced.
pub(crate) fn redact_sas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("REDACTED");
        rest = &rest[at + 4..];
        let end = rest
            .find(|c: char| matches!(c, '&' | ')' | '"' | '\'' | '>') || c.is_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl Classified for AzureError {
    fn meaning(&self) -> Meaning {
        self.meaning
    }
}

/// Why the adapters could not be set up (bad CA file, unusable credential settings, a URL that
/// does not parse). Nothing was contacted.
#[derive(Debug, Error)]
#[error("azure adapter setup: {message}")]
pub struct SetupError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl SetupError {
    pub(crate) fn new(what: &str, source: impl Into<BoxError>) -> Self {
        Self {
            message: format!("cannot {what}"),
            source: Some(source.into()),
        }
    }

    pub(crate) fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_never_reach_error_text() {
        let text = "error sending request for url (http://h/c/b?sv=1&sig=abc%2Bdef%3D&se=2) \
                    and https://h/x?sig=zzz";
        let redacted = redact_sas(text);
        assert!(
            !redacted.contains("abc") && !redacted.contains("zzz"),
            "{redacted}"
        );
        assert!(redacted.contains("sig=REDACTED&se=2)"), "{redacted}");
        assert_eq!(redact_sas("no signature"), "no signature");
        let err = AzureError::op("probe")(azure_core::Error::with_message(
            ErrorKind::Io,
            "failed: http://127.0.0.1/c?sp=r&sig=s3cret",
        ));
        assert_eq!(err.meaning(), Meaning::Temporary);
        assert!(!format!("{err:?} {}", err.source).contains("s3cret"));
    }

    #[test]
    fn azure_errors_map_to_what_callers_need() {
        assert_eq!(meaning_of(404, Some("BlobNotFound")), Meaning::NotFound);
        assert_eq!(meaning_of(404, Some("SecretNotFound")), Meaning::NotFound);
        assert_eq!(meaning_of(404, None), Meaning::NotFound);
        assert_eq!(
            meaning_of(409, Some("BlobAlreadyExists")),
            Meaning::Precondition
        );
        assert_eq!(
            meaning_of(412, Some("ConditionNotMet")),
            Meaning::Precondition
        );
        assert_eq!(
            meaning_of(409, Some("BlobImmutableDueToPolicy")),
            Meaning::Denied
        );
        assert_eq!(
            meaning_of(403, Some("AuthorizationFailure")),
            Meaning::Denied
        );
        assert_eq!(meaning_of(401, None), Meaning::Denied);
        assert_eq!(meaning_of(503, Some("ServerBusy")), Meaning::Temporary);
        // Azurite's answer to the immutability-policy call: 500, empty body, no code.
        assert_eq!(meaning_of(500, None), Meaning::Temporary);
        assert_eq!(meaning_of(429, None), Meaning::Temporary);
        assert_eq!(meaning_of(400, Some("InvalidHeaderValue")), Meaning::Other);
        assert_eq!(meaning_of(409, Some("Conflict")), Meaning::Other);
    }
}
