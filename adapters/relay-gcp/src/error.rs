//! The adapter's own error, converted into the port errors at the boundary.
//!
//! Adapter code works with [`GcpError`], which keeps the provider's error, the HTTP status and
//! the Google error reason; [`GcpError::meaning`] decides what a failure *means* to a caller of
//! a port (retry or not, permission, not found), so callers never parse messages.

use relay_domain::error::BoxError;
use relay_domain::ports::Classified;
use thiserror::Error;

pub(crate) use relay_domain::ports::Meaning;

/// A Google Cloud failure inside the adapter, before it is given a port's meaning.
#[derive(Debug, Error)]
#[error("{service}: {op} failed{}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
pub(crate) struct GcpError {
    /// `cloud storage` or `secret manager`.
    pub service: &'static str,
    /// What was being done.
    pub op: &'static str,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The Google error reason or status (`retentionPolicyNotMet`, `NOT_FOUND`, ...).
    pub reason: Option<String>,
    meaning: Meaning,
    /// The client's error.
    #[source]
    pub source: Option<BoxError>,
}

impl GcpError {
    /// A failure of `op` with an explicit meaning.
    pub(crate) fn new(
        service: &'static str,
        op: &'static str,
        status: Option<u16>,
        reason: Option<String>,
        source: Option<BoxError>,
    ) -> Self {
        let meaning = status_meaning(status, reason.as_deref());
        Self {
            service,
            op,
            status,
            reason,
            meaning,
            source,
        }
    }

    /// A Cloud Storage client failure while doing `op`.
    pub(crate) fn storage(op: &'static str) -> impl FnOnce(gcloud_storage::http::Error) -> Self {
        use gcloud_storage::http::Error as E;
        move |err| {
            let (status, reason, meaning) = match &err {
                E::Response(r) => {
                    let reason = r.errors.first().map(|e| e.reason.clone());
                    let meaning = status_meaning(Some(r.code), reason.as_deref());
                    (Some(r.code), reason, meaning)
                }
                E::HttpClient(e) | E::RawResponse(e, _) => {
                    let status = e.status().map(|s| s.as_u16());
                    (status, None, reqwest_meaning(e))
                }
                // A failed token request is usually the metadata server or the token endpoint
                // being unreachable; a bad key file is caught when the client is built.
                E::TokenSource(_) | E::HttpMiddleware(_) => (None, None, Meaning::Temporary),
                E::InvalidRangeHeader(_) => (None, None, Meaning::Other),
            };
            Self {
                service: "cloud storage",
                op,
                status,
                reason,
                meaning,
                source: Some(Box::new(err)),
            }
        }
    }

    /// A transport failure of a hand-built request (Secret Manager).
    pub(crate) fn transport(service: &'static str, op: &'static str, e: reqwest::Error) -> Self {
        Self {
            service,
            op,
            status: e.status().map(|s| s.as_u16()),
            reason: None,
            meaning: reqwest_meaning(&e),
            source: Some(Box::new(e)),
        }
    }

    /// An attempt that did not finish within its time limit.
    pub(crate) fn timed_out(service: &'static str, op: &'static str, what: String) -> Self {
        Self {
            service,
            op,
            status: None,
            reason: Some(what),
            meaning: Meaning::Temporary,
            source: None,
        }
    }

    /// What the failure means to a caller.
    pub(crate) fn meaning(&self) -> Meaning {
        self.meaning
    }
}

fn reqwest_meaning(e: &reqwest::Error) -> Meaning {
    if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
        return Meaning::Temporary;
    }
    match e.status() {
        Some(s) => status_meaning(Some(s.as_u16()), None),
        // A response that could not be decoded is permanent: retrying reads the same bytes.
        None if e.is_decode() => Meaning::Other,
        None => Meaning::Temporary,
    }
}

/// What an HTTP status and Google error reason mean to a caller (Cloud Storage JSON API and
/// Secret Manager REST use the same statuses; reasons refine them).
pub(crate) fn status_meaning(status: Option<u16>, reason: Option<&str>) -> Meaning {
    match (status, reason) {
        (_, Some("retentionPolicyNotMet" | "forbidden" | "PERMISSION_DENIED"))
        | (Some(401 | 403), _) => Meaning::Denied,
        (_, Some("notFound" | "NOT_FOUND")) | (Some(404), _) => Meaning::NotFound,
        (_, Some("conditionNotMet")) | (Some(412), _) => Meaning::Precondition,
        (_, Some("ALREADY_EXISTS")) => Meaning::Exists,
        (_, Some("rateLimitExceeded" | "backendError" | "UNAVAILABLE" | "RESOURCE_EXHAUSTED"))
        | (Some(408 | 429 | 500..=599), _) => Meaning::Temporary,
        // 409 on a Cloud Storage write is a concurrent mutation of the same object (retry);
        // Secret Manager's 409 carries ALREADY_EXISTS, matched above.
        (Some(409), _) => Meaning::Temporary,
        _ => Meaning::Other,
    }
}

impl Classified for GcpError {
    fn meaning(&self) -> Meaning {
        self.meaning
    }
}

#[cfg(test)]
mod tests {
    use relay_domain::ports::{NotaryError, SecretError};

    use super::*;

    #[test]
    fn statuses_and_reasons_map_to_what_callers_need() {
        assert_eq!(status_meaning(Some(404), None), Meaning::NotFound);
        assert_eq!(status_meaning(Some(412), None), Meaning::Precondition);
        assert_eq!(
            status_meaning(Some(403), Some("retentionPolicyNotMet")),
            Meaning::Denied
        );
        assert_eq!(status_meaning(Some(401), None), Meaning::Denied);
        assert_eq!(
            status_meaning(Some(409), Some("ALREADY_EXISTS")),
            Meaning::Exists
        );
        assert_eq!(status_meaning(Some(409), None), Meaning::Temporary);
        assert_eq!(status_meaning(Some(429), None), Meaning::Temporary);
        assert_eq!(status_meaning(Some(503), None), Meaning::Temporary);
        assert_eq!(status_meaning(Some(400), Some("invalid")), Meaning::Other);
        assert_eq!(status_meaning(None, None), Meaning::Other);
    }

    #[test]
    fn only_temporary_failures_become_unavailable() {
        let e = GcpError::new("cloud storage", "get", Some(503), None, None);
        assert!(matches!(
            NotaryError::from(e),
            NotaryError::Unavailable { .. }
        ));
        let e = GcpError::new("cloud storage", "get", Some(403), None, None);
        assert!(matches!(
            NotaryError::from(e),
            NotaryError::PermissionDenied { .. }
        ));
        let e = GcpError::new("secret manager", "access", Some(400), None, None);
        assert!(matches!(SecretError::from(e), SecretError::Other { .. }));
    }
}
