//! `POST /api/v1/exports` and `GET /api/v1/exports/{name}`: sealed export packages (R5) through
//! the API. The package is built by the process's [`SealedExporter`] (the runtime's exporter,
//! the same code as `relay-edge export`), which records the `EXPORT` event with the verified
//! caller as its actor, and serves the zip back.
//!
//! **Who may.** Creating a package and downloading one follow the same rule as
//! `GET /api/v1/export` ([`crate::authz::may_export`]): reviewers, administrators and
//! auditors, for any trail. A package may be downloaded by any account whose role may export
//! the package's trail *now*, not only by its creator (packages are evidence handed from QA to
//! auditors); every download is an `ACCESS` event naming the downloader, written before the
//! bytes are sent. A creator later demoted to operator can no longer download.
//!
//! **Retention.** The exporter keeps packages for a configured maximum age and refuses a new
//! one (429 `export_quota`) while its requester already holds the configured number;
//! expired packages are removed (a `SYSTEM` `EXPORT_PACKAGES_REMOVED` event in `_relay`) before
//! every export and download.

use async_trait::async_trait;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_domain::{Actor, ChainSeq, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::authz::require_export;
use crate::error::{ApiError, ErrorBody};
use crate::events::parse_trail;
use crate::extract::{ApiJson, MAX_API_INTEGER, NumParam};
use crate::state::ApiState;

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedExportBody {
    /// The trail.
    pub trail_id: String,
    /// `csv`, `json` or `both` (default).
    pub format: Option<String>,
    /// First seq (default 1), 1 to 2^53 - 1; outside: 400 `out_of_range`.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 9007199254740991_u64)]
    pub(crate) from_seq: Option<NumParam>,
    /// Last seq (default: the head), 1 to 2^53 - 1; outside: 400 `out_of_range`.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 9007199254740991_u64)]
    pub(crate) to_seq: Option<NumParam>,
}

/// An export job handed to the exporter, with the caller resolved by the API.
#[derive(Debug, Clone)]
pub struct SealedExportJob {
    /// The trail.
    pub trail: TrailId,
    /// `csv`, `json` or `both`.
    pub format: String,
    /// First seq.
    pub from_seq: Option<ChainSeq>,
    /// Last seq.
    pub to_seq: Option<ChainSeq>,
    /// The verified caller.
    pub requested_by: Actor,
    /// The access review to seal into the package as `access_review.json` (a whole export of
    /// `_relay` only; `POST /api/v1/access-review/export`).
    pub access_review: Option<Vec<u8>>,
}

/// What an export produced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SealedExportView {
    /// The zip's file name; download it from `/api/v1/exports/{package}`.
    pub package: String,
    /// Records exported.
    pub records: u64,
    /// The trail head the package proves against.
    pub head_seq: u64,
    /// Its checksum.
    pub head_checksum: String,
    /// SHA-256 of the sealed manifest.
    pub manifest_sha256: String,
    /// The seal key's fingerprint (compare with the `_relay` STARTUP event).
    pub seal_fingerprint: String,
}

/// Why an export could not be made or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedExportError {
    /// The request is unusable (bad range, empty trail, unknown format).
    #[error("{0}")]
    Invalid(String),
    /// No such package (or it expired and was removed).
    #[error("no such export package")]
    NotFound,
    /// The requester already holds as many packages as the quota allows.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The export failed (store, notary, journal or disk).
    #[error("export failed: {0}")]
    Failed(String),
}

/// A package as served: its bytes and what the API needs to decide who may have them.
#[derive(Debug, Clone)]
pub struct SealedPackage {
    /// The zip.
    pub bytes: Vec<u8>,
    /// The trail it exports.
    pub trail: TrailId,
    /// Who asked for it.
    pub requested_by: String,
}

/// Builds and serves sealed packages; implemented by the runtime.
#[async_trait]
pub trait SealedExporter: Send + Sync + std::fmt::Debug {
    /// Builds a sealed zip package for `job` and records its `EXPORT` event (actor: the
    /// job's `requested_by`); refuses with [`SealedExportError::QuotaExceeded`] when the
    /// requester holds the most packages allowed.
    async fn export(&self, job: SealedExportJob) -> Result<SealedExportView, SealedExportError>;
    /// A package this exporter made and still keeps (expired ones are
    /// [`NotFound`](SealedExportError::NotFound)).
    async fn open(&self, package: &str) -> Result<SealedPackage, SealedExportError>;
}

pub(crate) fn map_error(e: SealedExportError) -> ApiError {
    match e {
        SealedExportError::Invalid(m) => ApiError::unprocessable("invalid_export", m),
        SealedExportError::NotFound => ApiError::not_found("no such export package"),
        SealedExportError::QuotaExceeded(m) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "export_quota", m)
        }
        SealedExportError::Failed(m) => {
            tracing::error!(error = %m, "sealed export failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                "the export failed; see the relay's log",
            )
        }
    }
}

pub(crate) fn exporter(state: &ApiState) -> Result<std::sync::Arc<dyn SealedExporter>, ApiError> {
    state.sealed_exporter().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "exports_disabled",
            "sealed exports are not enabled on this relay",
        )
    })
}

/// Builds a sealed export package (reviewer, admin, auditor: the rule of `GET /export`); the
/// export is an `EXPORT` event whose actor is the caller.
#[utoipa::path(post, path = "/api/v1/exports", tag = "records", request_body = SealedExportBody,
    responses(
        (status = 201, description = "The sealed package was written", body = SealedExportView),
        (status = 400, description = "Malformed body, or a seq out of range (`out_of_range`)", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Role may not export this trail", body = ErrorBody),
        (status = 404, description = "No such trail", body = ErrorBody),
        (status = 422, description = "Bad range or format", body = ErrorBody),
        (status = 429, description = "The caller holds the most packages allowed (`export_quota`)", body = ErrorBody),
        (status = 503, description = "Sealed exports not enabled", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(body): ApiJson<SealedExportBody>,
) -> Result<(StatusCode, Json<SealedExportView>), ApiError> {
    let trail = parse_trail(&body.trail_id)?;
    require_export(&user, &trail)?;
    let from_seq = NumParam::opt_within(body.from_seq.as_ref(), "from_seq", 1, MAX_API_INTEGER)?;
    let to_seq = NumParam::opt_within(body.to_seq.as_ref(), "to_seq", 1, MAX_API_INTEGER)?;
    let exporter = exporter(&state)?;
    let format = body.format.unwrap_or_else(|| "both".to_owned());
    if !matches!(format.as_str(), "csv" | "json" | "both") {
        return Err(ApiError::unprocessable(
            "invalid_export",
            "format must be csv, json or both",
        ));
    }
    let seq = |n: Option<u64>, what: &str| {
        n.map(|n| {
            ChainSeq::new(n).map_err(|_| {
                ApiError::unprocessable("invalid_export", format!("{what} must be >= 1"))
            })
        })
        .transpose()
    };
    let job = SealedExportJob {
        trail,
        format,
        from_seq: seq(from_seq, "from_seq")?,
        to_seq: seq(to_seq, "to_seq")?,
        requested_by: Actor::new(user.username().as_str())
            .map_err(|e| ApiError::bad_request(format!("account name unusable as actor: {e}")))?,
        access_review: None,
    };
    let view = exporter.export(job).await.map_err(map_error)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Downloads a sealed package: any account whose role may export the package's trail (the
/// rule of `POST /exports`), not only its creator; logged as `ACCESS` before the bytes go out.
#[utoipa::path(get, path = "/api/v1/exports/{package}", tag = "records",
    params(("package" = String, Path, description = "The package file name")),
    responses(
        (status = 200, description = "The zip package", content_type = "application/zip"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Role may not export the package's trail", body = ErrorBody),
        (status = 404, description = "No such package (or it expired)", body = ErrorBody),
        (status = 503, description = "Sealed exports not enabled, or the audit trail cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn download(
    State(state): State<ApiState>,
    user: AuthUser,
    Path(package): Path<String>,
) -> Result<Response, ApiError> {
    let exporter = exporter(&state)?;
    let valid = package.ends_with(".zip")
        && package.len() <= 200
        && !package.starts_with('.')
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiError::not_found("no such export package"));
    }
    let opened = exporter.open(&package).await.map_err(map_error)?;
    require_export(&user, &opened.trail)?;
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "download_export",
                "package": package,
                "trail": opened.trail.as_str(),
                "requested_by": opened.requested_by,
                "bytes": opened.bytes.len(),
            }),
        )
        .await?;
    let bytes = opened.bytes;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{package}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
