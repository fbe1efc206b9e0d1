//! Verification of every stored trail against its keys and notary anchors.

use relay_domain::TrailId;
use relay_domain::ports::{
    Notary, NotaryError, RecordStore, RecordStoreError, SecretError, SecretName, SecretProviderExt,
};
use relay_domain::verify::{StoredVerdict, verify_stored_trail};

/// The verdict on one trail.
#[derive(Debug)]
pub struct TrailVerdict {
    /// The trail.
    pub trail_id: TrailId,
    /// Whether it holds, and if not, the first bad seq and why.
    pub verdict: StoredVerdict,
}

/// Why verification could not run at all (as opposed to finding a broken trail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyRunError {
    /// The record store could not be read.
    #[error("cannot read the record store")]
    Store(#[from] RecordStoreError),
    /// The trail keys could not be loaded.
    #[error("cannot load the trail keys")]
    Secrets(#[from] SecretError),
    /// The notary's anchors could not be read.
    #[error("cannot read the notary anchors")]
    Notary(#[from] NotaryError),
    /// The trail asked for does not exist.
    #[error("trail {0} does not exist in this store")]
    NoSuchTrail(TrailId),
}

/// The key ring of a trail forwarded to a server of record: its edge's keys
/// (`trail-hmac.<trail>`), or `None` when the trail is the process's own (checked with its
/// own `trail-hmac` keys).
pub async fn forwarded_key_ring(
    secrets: &dyn relay_domain::ports::SecretProvider,
    trail_id: &TrailId,
) -> Result<Option<relay_domain::KeyRing>, SecretError> {
    match relay_api::trail_key_secret(trail_id) {
        Ok(name) if !trail_id.is_relay() => match secrets.key_ring(&name).await {
            Ok(ring) => Ok(Some(ring)),
            Err(SecretError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    }
}

/// The keys `trail_id` is checked with: its edge's ([`forwarded_key_ring`]) on a server of
/// record, else the process's own `trail-hmac` keys.
pub async fn trail_key_ring(
    secrets: &dyn relay_domain::ports::SecretProvider,
    trail_id: &TrailId,
) -> Result<relay_domain::KeyRing, SecretError> {
    match forwarded_key_ring(secrets, trail_id).await? {
        Some(ring) => Ok(ring),
        None => secrets.key_ring(&SecretName::trail_hmac()).await,
    }
}

/// Verifies `only` (or every trail), calling `progress(trail, records_checked)` as it goes.
pub async fn verify_trails(
    store: &dyn RecordStore,
    secrets: &dyn relay_domain::ports::SecretProvider,
    notary: &dyn Notary,
    only: Option<&TrailId>,
    mut progress: impl FnMut(&TrailId, u64) + Send,
) -> Result<Vec<TrailVerdict>, VerifyRunError> {
    let keys = secrets.key_ring(&SecretName::trail_hmac()).await?;
    let mut trails: Vec<TrailId> = store.trails().await?.into_iter().map(|(t, _)| t).collect();
    // A trail deleted from the store entirely is still known to the notary: verify it too, so
    // its anchors report the truncation instead of the trail silently vanishing.
    for anchored in notary.anchored_trails().await? {
        if !trails.contains(&anchored) {
            trails.push(anchored);
        }
    }
    trails.sort();
    if let Some(only) = only {
        if !trails.contains(only) {
            return Err(VerifyRunError::NoSuchTrail(only.clone()));
        }
        trails = vec![only.clone()];
    }
    let mut out = Vec::with_capacity(trails.len());
    for trail_id in trails {
        let anchors = notary.anchors(&trail_id).await?;
        let forwarded = forwarded_key_ring(secrets, &trail_id).await?;
        let keys = forwarded.as_ref().unwrap_or(&keys);
        let verdict =
            verify_stored_trail(store, keys, &trail_id, &anchors, |n| progress(&trail_id, n))
                .await?;
        out.push(TrailVerdict { trail_id, verdict });
    }
    Ok(out)
}
