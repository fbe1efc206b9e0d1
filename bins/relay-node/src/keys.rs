//! `relay-edge keys rotate|list` on the local data directory: opens its stores and runs the
//! key operations of [`relay_runtime::keys`].

use std::path::Path;

use relay_domain::{Actor, Device, KeyId};
use relay_runtime::keys::{KeysError, RotateOutcome, list_keys, rotate_key};

/// Opens the local data directory and rotates its trail key (`relay-edge keys rotate`).
pub async fn rotate_data_dir_key(
    data_dir: &Path,
    device: Device,
    actor: &Actor,
) -> Result<RotateOutcome, KeysError> {
    let adapters = open(data_dir).await?;
    if let Some(fallback) = &adapters.secrets_fallback {
        adapters.record_store.close().await;
        // Rotating the file copy would give the installation keys in two places.
        return Err(KeysError::Open {
            path: data_dir.to_path_buf(),
            message: format!(
                "its keys are kept in the OS keyring, which cannot be used now ({}); refusing \
                 to rotate the stand-in file provider",
                fallback.reason
            ),
        });
    }
    let result = rotate_key(
        adapters.secrets.as_ref(),
        adapters.record_store.clone(),
        adapters.clock.clone(),
        device,
        actor,
    )
    .await;
    adapters.record_store.close().await;
    result
}

/// Opens the local data directory and lists its trail key ids, oldest first.
pub async fn list_data_dir_keys(data_dir: &Path) -> Result<Vec<KeyId>, KeysError> {
    let adapters = open(data_dir).await?;
    let result = list_keys(adapters.secrets.as_ref()).await;
    adapters.record_store.close().await;
    Ok(result?)
}

async fn open(data_dir: &Path) -> Result<relay_local::LocalAdapters, KeysError> {
    if !crate::local::has_store(data_dir) {
        return Err(KeysError::NoData(data_dir.to_path_buf()));
    }
    relay_local::LocalAdapters::open(data_dir)
        .await
        .map_err(|e| KeysError::Open {
            path: data_dir.to_path_buf(),
            message: relay_domain::error_chain(&e),
        })
}
