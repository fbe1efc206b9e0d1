//! `relay-edge enroll` over the local data directory (issue 24): opens the edge's stores with
//! its configured secret backend (creating the data directory and trail key on a fresh
//! workstation, as `run` would), then enrolls it ([`relay_runtime::enrollment::enroll`]).

use std::path::Path;
use std::sync::Arc;

use relay_api::EnrollResponse;
use relay_domain::Actor;
use relay_local::{LocalAdapters, LocalConfig, SecretBackend};
use relay_runtime::enrollment::{EdgeStores, EnrollError, EnrollTarget, EnrollmentRecord};

/// Why `relay-edge enroll` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollCliError {
    /// The data directory could not be opened.
    #[error("cannot open the data directory {path}: {message}")]
    Open {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// The keys are in the OS keyring, which cannot be used now.
    #[error("its keys are kept in the OS keyring, which cannot be used now ({0})")]
    Keyring(String),
    /// Enrollment failed.
    #[error(transparent)]
    Enroll(#[from] EnrollError),
}

/// Enrolls the edge whose data directory is `target.data_dir`.
pub async fn enroll_data_dir(
    target: &EnrollTarget,
    code: &str,
    secrets: SecretBackend,
    device: relay_domain::Device,
    actor: &Actor,
) -> Result<(EnrollResponse, EnrollmentRecord), EnrollCliError> {
    // A bad URL or CA file is reported before the data directory is touched.
    relay_runtime::enrollment::check_target(target)?;
    let dir: &Path = &target.data_dir;
    let adapters = LocalAdapters::open_with(LocalConfig::new(dir).secret_backend(secrets))
        .await
        .map_err(|e| EnrollCliError::Open {
            path: dir.to_path_buf(),
            message: relay_domain::error_chain(&e),
        })?;
    if let Some(fallback) = &adapters.secrets_fallback {
        adapters.record_store.close().await;
        return Err(EnrollCliError::Keyring(fallback.reason.clone()));
    }
    let stores = EdgeStores {
        secrets: adapters.secrets.clone(),
        records: adapters.record_store.clone(),
        clock: Arc::clone(&adapters.clock) as Arc<dyn relay_domain::ports::TimeSource>,
        device,
    };
    let result = relay_runtime::enrollment::enroll(target, code, &stores, actor).await;
    adapters.record_store.close().await;
    Ok(result?)
}
