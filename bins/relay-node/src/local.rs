//! Opening the local provider (SQLite + files) under a data directory, and what only it can
//! say about its files: whether the data directory holds a relay, whether the database file is
//! damaged.

use std::path::{Path, PathBuf};

use relay_domain::error_chain;
use relay_local::{LocalAdapters, LocalConfig, SecretBackend};
use relay_runtime::edge::{EdgeError, EdgePorts};
use relay_runtime::server::{ServerError, ServerStores};

/// The record store's database file of the data directory `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    LocalConfig::new(data_dir).db_path()
}

/// Whether `data_dir` holds a relay's store (commands other than `run` never create one).
pub fn has_store(data_dir: &Path) -> bool {
    db_path(data_dir).is_file()
}

/// The edge's ports over the local adapters.
pub fn edge_ports(adapters: &LocalAdapters) -> EdgePorts {
    EdgePorts {
        provider: "local",
        record_store_kind: "sqlite",
        location: adapters.record_store.path().to_path_buf(),
        records: adapters.record_store.clone(),
        accounts: adapters.accounts.clone(),
        changes: adapters.changes.clone(),
        forward_cursors: adapters.forward_cursors.clone(),
        secrets: adapters.secrets.clone(),
        secrets_fallback: adapters.secrets_fallback.clone(),
        notary: adapters.notary.clone(),
        clock: adapters.clock.clone(),
    }
}

/// Opens the edge's stores under `data_dir` with the configured secret backend and reads the
/// whole database file once, so a damaged store stops the relay at start-up instead of
/// failing on some later read or write.
pub async fn open_edge(data_dir: &Path, secrets: SecretBackend) -> Result<EdgePorts, EdgeError> {
    let adapters =
        LocalAdapters::open_with(LocalConfig::new(data_dir).secret_backend(secrets)).await;
    let adapters = match adapters {
        Ok(adapters) => adapters,
        Err(e) => {
            return Err(damaged_store(data_dir)
                .await
                .unwrap_or_else(|| EdgeError::Open {
                    path: data_dir.to_path_buf(),
                    message: error_chain(&e),
                }));
        }
    };
    check_store_file(&adapters).await?;
    Ok(edge_ports(&adapters))
}

/// Opens the local adapters under `data_dir` (creating what is missing), as a command that is
/// not `run` does once [`has_store`] said there is a relay there.
pub async fn open(data_dir: &Path) -> Result<LocalAdapters, EdgeError> {
    LocalAdapters::open(data_dir)
        .await
        .map_err(|e| EdgeError::Open {
            path: data_dir.to_path_buf(),
            message: error_chain(&e),
        })
}

/// The server of record's stores over the local adapter under `data_dir` (SQLite + files),
/// for a single-box server.
pub async fn server_stores(data_dir: &Path) -> Result<ServerStores, ServerError> {
    let adapters = LocalAdapters::open(data_dir)
        .await
        .map_err(|e| ServerError::Open(error_chain(&e)))?;
    Ok(ServerStores {
        provider: "local",
        records: adapters.record_store.clone(),
        accounts: adapters.accounts.clone(),
        secrets: adapters.secrets.clone(),
        notary: adapters.notary.clone(),
        clock: adapters.clock.clone(),
        changes: Some(adapters.changes.clone()),
        receipts: Some(adapters.receipts.clone()),
        fleet: Some(adapters.fleet.clone()),
    })
}

/// After the store failed to open: a damaged database file explains it better than the open
/// error does (SQLite reports damage as whatever statement first touched it).
pub async fn damaged_store(data_dir: &Path) -> Option<EdgeError> {
    let db = db_path(data_dir);
    if !std::fs::metadata(&db).is_ok_and(|m| m.len() > 0) {
        return None;
    }
    // A store refused for its permissions is not damaged, and probing it would create
    // SQLite's side files with the shared mode the refusal asks to fix.
    let shared = |p: &Path| matches!(relay_local::private_fs::shared_access(p), Ok(Some(_)));
    if shared(data_dir) || shared(&db) {
        return None;
    }
    let file = db.clone();
    let checked = tokio::task::spawn_blocking(move || {
        relay_local::SqliteRecordStore::quick_check_file(&file)
    })
    .await;
    match checked {
        Ok(Err(e)) => Some(EdgeError::Damaged {
            path: db,
            message: error_chain(&e),
        }),
        Ok(Ok(())) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the database file could not be checked");
            None
        }
    }
}

/// Reads the whole database file once (`PRAGMA quick_check`).
pub async fn check_store_file(adapters: &LocalAdapters) -> Result<(), EdgeError> {
    let started = std::time::Instant::now();
    let checked = adapters.record_store.quick_check().await;
    tracing::debug!(
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        ok = checked.is_ok(),
        "store file checked"
    );
    checked.map_err(|e| EdgeError::Damaged {
        path: adapters.record_store.path().to_path_buf(),
        message: error_chain(&e),
    })
}
