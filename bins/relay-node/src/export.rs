//! `relay-edge export` on the local data directory: opens its stores and writes a sealed
//! package with [`relay_runtime::export::export_package`].

use std::path::{Path, PathBuf};

use relay_domain::ports::{RecordStore, SecretError, SecretName, SecretProviderExt, TimeSource};
use relay_runtime::export::{
    ExportError, ExportOutcome, ExportRequest, ExportServices, export_package,
};
use relay_runtime::journal::Journal;

/// Why `relay-edge export` could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirExportError {
    /// There is no relay database in the data directory.
    #[error("no relay data in {0} (relay.db not found); check --data-dir")]
    NoData(PathBuf),
    /// The local adapters could not be opened.
    #[error("cannot open the data directory {path}: {message}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The trail keys could not be loaded.
    #[error("cannot load the trail keys")]
    Keys(#[source] SecretError),
    /// The export itself failed.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Exports from the local data directory `data_dir` (what `relay-edge export` runs). Safe to
/// run while `relay-edge run` is running: the store serializes appends across processes.
pub async fn export_data_dir(
    data_dir: &Path,
    device: relay_domain::Device,
    request: &ExportRequest,
) -> Result<ExportOutcome, DataDirExportError> {
    if !crate::local::has_store(data_dir) {
        return Err(DataDirExportError::NoData(data_dir.to_path_buf()));
    }
    let adapters = relay_local::LocalAdapters::open(data_dir)
        .await
        .map_err(|e| DataDirExportError::Open {
            path: data_dir.to_path_buf(),
            message: relay_domain::error_chain(&e),
        })?;
    let keys = adapters
        .secrets
        .key_ring(&SecretName::trail_hmac())
        .await
        .map_err(DataDirExportError::Keys)?;
    let signing = keys
        .current()
        .cloned()
        .ok_or_else(|| DataDirExportError::Open {
            path: data_dir.to_path_buf(),
            message: "no current trail key".into(),
        })?;
    let store: std::sync::Arc<dyn RecordStore> = adapters.record_store.clone();
    let clock: std::sync::Arc<dyn TimeSource> = adapters.clock.clone();
    let appender = std::sync::Arc::new(relay_domain::AppendService::new(store, clock, signing));
    let journal = Journal::new(appender, relay_runtime::metrics::Metrics::new(), device);
    let services = ExportServices {
        store: adapters.record_store.as_ref(),
        notary: adapters.notary.as_ref(),
        secrets: adapters.secrets.as_ref(),
        keys: &keys,
        clock: adapters.clock.as_ref(),
        journal: &journal,
    };
    let result = export_package(services, request).await;
    adapters.record_store.close().await;
    Ok(result?)
}
