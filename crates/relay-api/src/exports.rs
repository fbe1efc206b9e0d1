//! `POST /api/v1/exports` and `GET /api/v1/exports/{name}`: sealed export packages (R5) through
//! the API. The package is built by the process's [`SealedExporter`] (the runtime's exporter,
//! the same code as `relay-edge export`), which records the `EXPORT` event; the API adds the
//! caller's verified identity and serves the zip back.

use async_trait::async_trait;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_domain::{Actor, ChainSeq, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::events::parse_trail;
use crate::extract::ApiJson;
use crate::state::ApiState;

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedExportBody {
    /// The trail.
    pub trail_id: String,
    /// `csv`, `json` or `both` (default).
    pub format: Option<String>,
    /// First seq (default 1).
    pub from_seq: Option<u64>,
    /// Last seq (default: the head).
    pub to_seq: Option<u64>,
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
    /// No such package.
    #[error("no such export package")]
    NotFound,
    /// The export failed (store, notary, journal or disk).
    #[error("export failed: {0}")]
    Failed(String),
}

/// Builds and serves sealed packages; implemented by the runtime.
#[async_trait]
pub trait SealedExporter: Send + Sync + std::fmt::Debug {
    /// Builds a sealed zip package for `job` and records its `EXPORT` event.
    async fn export(&self, job: SealedExportJob) -> Result<SealedExportView, SealedExportError>;
    /// The bytes of a package this exporter made.
    async fn open(&self, package: &str) -> Result<Vec<u8>, SealedExportError>;
}

fn map_error(e: SealedExportError) -> ApiError {
    match e {
        SealedExportError::Invalid(m) => ApiError::unprocessable("invalid_export", m),
        SealedExportError::NotFound => ApiError::not_found("no such export package"),
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

fn exporter(state: &ApiState) -> Result<std::sync::Arc<dyn SealedExporter>, ApiError> {
    state.sealed_exporter().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "exports_disabled",
            "sealed exports are not enabled on this relay",
        )
    })
}

/// Builds a sealed export package (any role; the export is an `EXPORT` event).
#[utoipa::path(post, path = "/api/v1/exports", tag = "records", request_body = SealedExportBody,
    responses(
        (status = 201, description = "The sealed package was written", body = SealedExportView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such trail", body = ErrorBody),
        (status = 422, description = "Bad range or format", body = ErrorBody),
        (status = 503, description = "Sealed exports not enabled", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(body): ApiJson<SealedExportBody>,
) -> Result<(StatusCode, Json<SealedExportView>), ApiError> {
    let exporter = exporter(&state)?;
    let trail = parse_trail(&body.trail_id)?;
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
        from_seq: seq(body.from_seq, "from_seq")?,
        to_seq: seq(body.to_seq, "to_seq")?,
        requested_by: Actor::new(user.username().as_str())
            .map_err(|e| ApiError::bad_request(format!("account name unusable as actor: {e}")))?,
    };
    let view = exporter.export(job).await.map_err(map_error)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Downloads a sealed package (any role).
#[utoipa::path(get, path = "/api/v1/exports/{package}", tag = "records",
    params(("package" = String, Path, description = "The package file name")),
    responses(
        (status = 200, description = "The zip package", content_type = "application/zip"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such package", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn download(
    State(state): State<ApiState>,
    _user: AuthUser,
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
    let bytes = exporter.open(&package).await.map_err(map_error)?;
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
