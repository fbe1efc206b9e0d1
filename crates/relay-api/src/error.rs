//! API errors: one JSON shape, `{"error": {"code", "message"}}`, with the right status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_domain::AppendError;
use relay_domain::ports::{AccountStoreError, NotaryError, RecordStoreError, SecretError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_credentials`, `locked`, `forbidden`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The explanation (never a secret, never a stack of internal causes).
    pub message: String,
    /// Seconds after which a retry may succeed (429 answers carry `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 with `code`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 with `code`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 with `code`: the request is well-formed but cannot be carried out.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 with `Retry-After: secs`.
    pub fn locked(secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "locked",
            message: format!(
                "too many failed attempts; the account is locked for {secs} more seconds"
            ),
            retry_after: Some(secs.max(1)),
        }
    }

    /// 429 `too_many_attempts` with `Retry-After: secs`: the client's address failed too many
    /// logins; the same answer whatever the username.
    pub fn too_many_attempts(secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_attempts",
            message: format!(
                "too many failed logins from this address; try again in {secs} seconds"
            ),
            retry_after: Some(secs.max(1)),
        }
    }

    /// 500 for a failure the client cannot fix; the detail goes to the log, not the client.
    pub fn internal(what: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(error), "{what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what}; see the relay log"),
        )
    }

    /// 503: the audit trail could not be written, so the call was not carried out (fail closed).
    pub fn audit_unavailable(error: &AppendError) -> Self {
        tracing::error!(error = %error_chain(error), "audit event not recorded; call refused");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the audit trail could not be written; nothing was done",
        )
    }
}

pub(crate) use relay_domain::error_chain;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::session_audit::ErrorCode(self.code));
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gims-relay\""),
            );
        }
        response
    }
}

fn unavailable_or_internal(what: &str, temporary: bool, e: &dyn std::error::Error) -> ApiError {
    if temporary {
        tracing::warn!(error = %error_chain(e), "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what}; retry later"),
        )
    } else {
        ApiError::internal(what, e)
    }
}

impl From<RecordStoreError> for ApiError {
    fn from(e: RecordStoreError) -> Self {
        unavailable_or_internal("the record store failed", e.status().is_temporary(), &e)
    }
}

impl From<AccountStoreError> for ApiError {
    fn from(e: AccountStoreError) -> Self {
        unavailable_or_internal("the account store failed", e.status().is_temporary(), &e)
    }
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        unavailable_or_internal("the secret provider failed", e.status().is_temporary(), &e)
    }
}

impl From<relay_domain::ports::ReceiptError> for ApiError {
    fn from(e: relay_domain::ports::ReceiptError) -> Self {
        unavailable_or_internal("the receipt store failed", e.status().is_temporary(), &e)
    }
}

impl From<NotaryError> for ApiError {
    fn from(e: NotaryError) -> Self {
        unavailable_or_internal("the notary failed", e.status().is_temporary(), &e)
    }
}
