//! Trail key rotation and listing over the secret provider (R1.3): what `relay-edge keys` runs
//! (its data-directory entry points are in `relay-node`).
//!
//! Rotation adds a new version to the `trail-hmac` secret and makes it current; every older
//! version stays in the provider, so records signed under it keep verifying. The rotation is
//! recorded as a `KEY_ROTATED` event in `_relay`, the first record signed with the new key. A
//! running relay keeps signing with the key it started with until its next start.

use std::path::PathBuf;
use std::sync::Arc;

use relay_domain::ports::{
    RecordStore, SecretError, SecretName, SecretProvider, SecretProviderExt, TimeSource,
};
use relay_domain::{Actor, AppendError, AppendService, ChainSeq, Device, EventKind, KeyId};

use crate::journal::Journal;

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotateOutcome {
    /// The key that was current before.
    pub previous: KeyId,
    /// The new current key.
    pub current: KeyId,
    /// Every key id of the trail secret after the rotation, oldest first.
    pub versions: Vec<KeyId>,
    /// The `_relay` seq of the `KEY_ROTATED` event.
    pub event_seq: ChainSeq,
}

/// Why a key operation on a data directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
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
    /// The secret provider failed.
    #[error("trail key operation failed")]
    Secret(#[from] SecretError),
    /// The new key is unusable.
    #[error("the new trail key is unusable: {0}")]
    BadKey(String),
    /// The rotation happened but could not be recorded in `_relay`.
    #[error(
        "the key was rotated to {current} but the KEY_ROTATED event could not be recorded; \
         the next start-up posture event names the new key"
    )]
    Record {
        /// The new key.
        current: KeyId,
        /// The append failure.
        #[source]
        source: AppendError,
    },
}

/// Every trail key id of `provider`, oldest first, and the current one.
pub async fn list_keys(provider: &dyn SecretProvider) -> Result<Vec<KeyId>, SecretError> {
    provider.versions(&SecretName::trail_hmac()).await
}

/// Rotates the trail key of `provider` and records it through an append service over `store`.
pub async fn rotate_key(
    provider: &dyn SecretProvider,
    store: Arc<dyn RecordStore>,
    clock: Arc<dyn TimeSource>,
    device: Device,
    actor: &Actor,
) -> Result<RotateOutcome, KeysError> {
    let name = SecretName::trail_hmac();
    let previous = provider.current_or_create(&name).await?.id().clone();
    let new = provider.rotate(&name).await?;
    let key = new
        .to_trail_key()
        .map_err(|e| KeysError::BadKey(e.to_string()))?;
    let current = key.id().clone();
    let versions = provider.versions(&name).await?;
    tracing::info!(previous = %previous, current = %current, provider = provider.kind(), "trail key rotated");
    let appender = Arc::new(AppendService::new(store, clock, key));
    let journal = Journal::new(appender, crate::metrics::Metrics::new(), device);
    let event = journal
        .record(
            EventKind::key_rotated(),
            None,
            serde_json::json!({
                "secret": name.as_str(),
                "previous_key_id": previous.as_str(),
                "key_id": current.as_str(),
                "versions": versions.iter().map(KeyId::as_str).collect::<Vec<_>>(),
                "provider": provider.kind(),
                "by": actor.as_str(),
            }),
        )
        .await
        .map_err(|source| KeysError::Record {
            current: current.clone(),
            source,
        })?;
    Ok(RotateOutcome {
        previous,
        current,
        versions,
        event_seq: event.chain_seq,
    })
}
