//! The edge on its local data directory: `relay-edge run`, `verify` and `forward status`.

use std::path::{Path, PathBuf};

use relay_domain::TrailId;
use relay_domain::error_chain;
use relay_domain::ports::{Notary, RecordStore, SecretProvider};
use relay_local::SecretBackend;
use relay_runtime::edge::{EdgeError, EdgeRuntime, EdgeSettings};
use relay_runtime::forwarder::{ForwardSettings, ForwardStatus, ForwardStatusError};
use relay_runtime::verify::{VerifyReport, VerifyRunError, verify_trails};
use relay_runtime::witness::WitnessReport;

use crate::local;

/// Starts the edge on the local provider under `settings.data_dir`, keeping keys where
/// `secrets` says (files, or the OS keyring with a loud fallback to files).
pub async fn start(
    settings: EdgeSettings,
    secrets: SecretBackend,
) -> Result<EdgeRuntime, EdgeError> {
    let data_dir = settings.data_dir.clone();
    EdgeRuntime::start(settings, || local::open_edge(&data_dir, secrets)).await
}

/// Verifies every trail (or `only`) of the data directory; one verdict per trail.
pub async fn verify_data_dir(
    data_dir: &Path,
    only: Option<&TrailId>,
) -> Result<VerifyReport, EdgeVerifyError> {
    if !local::has_store(data_dir) {
        return Err(EdgeVerifyError::NoData(data_dir.to_path_buf()));
    }
    let adapters = match local::open(data_dir).await {
        Ok(adapters) => adapters,
        Err(e) => {
            return Err(match local::damaged_store(data_dir).await {
                Some(EdgeError::Damaged { path, message }) => {
                    EdgeVerifyError::Damaged { path, message }
                }
                _ => EdgeVerifyError::Open(e),
            });
        }
    };
    if let Err(e) = local::check_store_file(&adapters).await {
        return Err(match e {
            EdgeError::Damaged { path, message } => EdgeVerifyError::Damaged { path, message },
            other => EdgeVerifyError::Open(other),
        });
    }
    let secrets: &dyn SecretProvider = adapters.secrets.as_ref();
    let notary: &dyn Notary = adapters.notary.as_ref();
    let report = verify_trails(
        adapters.record_store.as_ref(),
        secrets,
        notary,
        only,
        |trail, n| {
            const EVERY: u64 = 256 * 1024;
            if n >= EVERY && n % EVERY < relay_domain::verify::VERIFY_PAGE as u64 {
                tracing::info!(trail = %trail, records = n, "verifying");
            }
        },
    )
    .await;
    RecordStore::close(adapters.record_store.as_ref()).await;
    Ok(report?)
}

/// Why `verify` could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeVerifyError {
    /// There is no relay database in the data directory.
    #[error("no relay data in {0} (relay.db not found); check --data-dir")]
    NoData(PathBuf),
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(EdgeError),
    /// The database file is damaged: nothing in it can be trusted to verify (exit code 1, as
    /// for a broken trail).
    #[error("{message}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite found.
        message: String,
    },
    /// Verification could not run.
    #[error(transparent)]
    Run(#[from] VerifyRunError),
}

/// The forwarding state of every capture trail of the data directory (`forward status`).
pub async fn forward_status_of_data_dir(
    data_dir: &Path,
) -> Result<Vec<ForwardStatus>, ForwardStatusError> {
    let adapters = relay_local::LocalAdapters::open(data_dir)
        .await
        .map_err(|e| ForwardStatusError::Open(error_chain(&e)))?;
    let rows = relay_runtime::forwarder::forward_status(
        adapters.record_store.as_ref(),
        adapters.forward_cursors.as_ref(),
    )
    .await;
    RecordStore::close(adapters.record_store.as_ref()).await;
    rows
}

/// The witness section of `verify` for the data directory: every trail (or `only`) compared
/// with the notary's anchors and, when `forward` is set, with the heads the server of record
/// holds (asked with the edge's ingest token, from `forward` or the secret provider).
pub async fn witness_data_dir(
    data_dir: &Path,
    only: Option<&TrailId>,
    forward: Option<ForwardSettings>,
) -> Result<WitnessReport, EdgeVerifyError> {
    if !local::has_store(data_dir) {
        return Err(EdgeVerifyError::NoData(data_dir.to_path_buf()));
    }
    let adapters = local::open(data_dir).await.map_err(EdgeVerifyError::Open)?;
    let server = match forward {
        None => None,
        Some(mut settings) => {
            let url = settings.url.clone();
            if settings.token.is_empty() {
                match relay_runtime::forwarder::load_forward_token(adapters.secrets.as_ref()).await
                {
                    Ok(token) => settings.token = token,
                    Err(e) => {
                        return finish(&adapters, only, Some((url, Err(e.to_string())))).await;
                    }
                }
            }
            let heads = relay_runtime::forwarder::witnessed_heads(&settings).await;
            Some((url, heads))
        }
    };
    finish(&adapters, only, server).await
}

async fn finish(
    adapters: &relay_local::LocalAdapters,
    only: Option<&TrailId>,
    server: Option<(String, Result<Vec<relay_api::WitnessedHead>, String>)>,
) -> Result<WitnessReport, EdgeVerifyError> {
    let report = relay_runtime::witness::check(
        adapters.record_store.as_ref(),
        adapters.notary.as_ref(),
        only,
        server,
    )
    .await;
    RecordStore::close(adapters.record_store.as_ref()).await;
    report.map_err(|message| {
        EdgeVerifyError::Open(EdgeError::Open {
            path: adapters.record_store.path().to_path_buf(),
            message,
        })
    })
}
