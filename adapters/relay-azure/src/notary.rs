//! `AzureBlobNotary`: anchors as blobs under a locked version-level immutability policy.
//!
//! The notary itself is [`relay_worm::WormNotary`]; this module is its Azure container
//! (`ImmutableContainer`) and the start-up probe of the container's immutability support.

use std::time::Duration;

use async_trait::async_trait;
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientSetImmutabilityPolicyOptions, BlobItem,
    BlockBlobClientUploadOptions, ImmutabilityPolicyMode, ListBlobsIncludeItem,
};
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};
use relay_domain::{Timestamp, TrailId};
use relay_worm::{Listed, LockedBucket, TrailListing, WormNotary};
use time::OffsetDateTime;

use crate::blob::Container;
use crate::error::{AzureError, Meaning, chain};
use crate::http::AzureClients;

/// How long the start-up probe blob is locked: long enough to read the lock back, short
/// enough that the probe can be removed the next day.
const PROBE_LOCK: Duration = Duration::from_secs(24 * 3600);

/// A notary writing each anchor as its own block blob,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json`, under a **locked** version-level
/// immutability policy for the configured retention: nobody, the account owner included, can
/// delete or overwrite that version, or shorten its policy, until it ends.
///
/// - **Refuses to start** ([`NotaryError::NotWorm`]) on a container that cannot hold immutable
///   blobs, unless `allow_non_worm` is set; then it warns loudly and reports `Unenforced`
///   (which the runtime records in the `_relay` start-up posture). The capability is *tried*:
///   the container must report version-level immutability support, and a probe blob under
///   `probe_prefix` must accept a locked policy that reads back as locked. Each start-up on a
///   WORM container therefore leaves one small probe blob, locked for a day.
/// - **Writes once**: every anchor gets a fresh name and the upload carries `If-None-Match: *`
///   and the policy headers, so an anchor never exists unprotected.
/// - **Reads back with proof**: `anchors` lists every *version* of the trail's anchor blobs. A
///   second version of a name (overwritten), a name whose current version is gone (deleted),
///   a blob without a locked policy (when WORM), or content naming another trail is
///   [`NotaryError::InvalidAnchor`].
#[derive(Debug, Clone)]
pub struct AzureBlobNotary {
    notary: WormNotary<ImmutableContainer>,
}

/// The Azure side of the notary: a container with version-level immutability.
#[derive(Debug, Clone)]
struct ImmutableContainer {
    container: Container,
    retention: Duration,
}

impl AzureBlobNotary {
    /// Opens the notary on the configured notary container, probing whether it locks blobs.
    pub async fn open(clients: &AzureClients) -> Result<Self, NotaryError> {
        let other = |message: String| NotaryError::Other {
            message,
            source: None,
        };
        let Some(blob) = &clients.config().blob else {
            return Err(other(
                "no blob storage is configured (blob endpoint)".into(),
            ));
        };
        let Some(name) = &blob.notary_container else {
            return Err(other("no notary container is configured".into()));
        };
        let container = Container::new(clients, &blob.endpoint, blob.sas.as_deref(), name)
            .map_err(|e| NotaryError::Other {
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        let posture = match check_worm(&container, &blob.probe_prefix).await? {
            Ok(()) => {
                tracing::info!(container = %container.display, "notary container locks blobs (version-level immutability)");
                WormPosture::Enforced
            }
            Err(reason) if blob.allow_non_worm => {
                tracing::warn!(
                    container = %container.display,
                    reason = %reason,
                    "NOTARY IS NOT WORM: the container cannot hold immutable blobs and \
                     allow_non_worm is set; anyone with write access can delete or replace \
                     anchors. Never use this in production"
                );
                WormPosture::Unenforced
            }
            Err(reason) => {
                return Err(NotaryError::NotWorm(format!(
                    "container {}: {reason}. Create the container with version-level \
                     immutability support (on an account with blob versioning), or allow a \
                     non-WORM container explicitly (allow_non_worm; never in production)",
                    container.display
                )));
            }
        };
        let bucket = ImmutableContainer {
            container,
            retention: blob.anchor_retention,
        };
        Ok(Self {
            notary: WormNotary::new(bucket, blob.anchor_prefix.clone(), posture),
        })
    }

    /// The container URL (without credentials).
    pub fn container_url(&self) -> &str {
        &self.notary.bucket().container.display
    }

    /// The blob name prefix under which the anchors of `trail` are stored.
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        self.notary.trail_prefix(trail)
    }

    /// The SDK client of the container, for operational tooling and tests that play an
    /// attacker holding the notary's credentials. Using it bypasses every rule of the notary.
    pub fn container_client(&self) -> &BlobContainerClient {
        &self.notary.bucket().container.client
    }
}

/// Whether the container locks blobs: `Ok(Ok(()))` when it does, `Ok(Err(reason))` when it does
/// not, `Err` when the container cannot be used at all (missing, unreachable, access denied).
async fn check_worm(
    container: &Container,
    probe_prefix: &str,
) -> Result<Result<(), String>, NotaryError> {
    let props = container
        .properties()
        .await
        .map_err(|e| match e.meaning() {
            Meaning::NotFound => NotaryError::Other {
                message: format!(
                    "the notary container {} does not exist; create it with version-level \
                 immutability support",
                    container.display
                ),
                source: Some(Box::new(e)),
            },
            _ => NotaryError::from(e),
        })?;
    let probe = probe_lock(container, probe_prefix).await?;
    Ok(match (props.version_level_worm, probe) {
        (true, Ok(())) => Ok(()),
        (false, Ok(())) => Err(
            "a probe blob accepted a locked policy, but the container does not report \
             version-level immutability support (x-ms-immutable-storage-with-versioning-enabled)"
                .to_owned(),
        ),
        (true, Err(why)) => Err(format!(
            "the container reports version-level immutability support, but {why}"
        )),
        (false, Err(why)) => Err(format!(
            "the container has no version-level immutability support \
             (x-ms-immutable-storage-with-versioning-enabled is not true), and {why}"
        )),
    })
}

/// Writes a small probe blob and tries to lock it the way anchors are locked, then reads the
/// lock back. `Err` only when the container refuses even a plain write.
async fn probe_lock(
    container: &Container,
    probe_prefix: &str,
) -> Result<Result<(), String>, NotaryError> {
    let now = OffsetDateTime::now_utc();
    let nonce: u64 = rand::random();
    let name = format!("{probe_prefix}{:012}-{nonce:016x}", now.unix_timestamp());
    container
        .upload(
            "write the immutability probe blob",
            &name,
            b"gims-relay notary probe: checks that this container locks blobs".to_vec(),
            BlockBlobClientUploadOptions::default().if_not_exists(),
        )
        .await?;
    let blob = container.blob(&name);
    let until = whole_seconds(now + PROBE_LOCK);
    let options = BlobClientSetImmutabilityPolicyOptions {
        immutability_policy_mode: Some(ImmutabilityPolicyMode::Locked),
        ..Default::default()
    };
    let locked = container
        .clients
        .call(
            "lock the probe blob (set immutability policy)",
            blob.set_immutability_policy(&until, Some(options)),
        )
        .await;
    if let Err(e) = locked {
        // The probe was never locked: remove it, and say why it could not be locked.
        let removed = container
            .clients
            .call("delete the unlocked probe blob", blob.delete(None))
            .await;
        if let Err(cleanup) = removed {
            tracing::warn!(container = %container.display, blob = %name, error = %cleanup,
                "could not delete the notary's probe blob");
        }
        return Ok(Err(format!(
            "a probe blob could not be locked: {}",
            chain(&e)
        )));
    }
    let props = container
        .clients
        .call("read the probe blob's policy", blob.get_properties(None))
        .await?;
    let mode = props
        .immutability_policy_mode()
        .map_err(AzureError::op("read the probe blob's policy mode"))?;
    let expires = props
        .immutability_policy_expires_on()
        .map_err(AzureError::op("read the probe blob's policy expiry"))?;
    Ok(match (mode, expires) {
        (Some(ImmutabilityPolicyMode::Locked), Some(e)) if e > OffsetDateTime::now_utc() => Ok(()),
        (mode, expires) => Err(format!(
            "a probe blob accepted a lock that does not read back (mode {mode:?}, expiry {expires:?})"
        )),
    })
}

/// `at` rounded up to a whole second (Azure keeps policy dates in seconds).
fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    let rounded = at.replace_nanosecond(0).unwrap_or(at);
    if rounded < at {
        rounded + time::Duration::SECOND
    } else {
        rounded
    }
}

/// A policy date as a domain timestamp.
fn to_timestamp(at: OffsetDateTime) -> Option<Timestamp> {
    let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).ok()?;
    Timestamp::from_unix_micros(micros).ok()
}

#[async_trait]
impl Notary for AzureBlobNotary {
    fn kind(&self) -> &'static str {
        self.notary.kind()
    }

    fn worm_posture(&self) -> WormPosture {
        self.notary.worm_posture()
    }

    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        self.notary.anchor(anchor).await
    }

    async fn anchor_round(&self, anchors: &[Anchor]) -> Result<Vec<AnchorReceipt>, NotaryError> {
        self.notary.anchor_round(anchors).await
    }

    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        self.notary.anchors(trail).await
    }

    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        self.notary.newest_anchor(trail).await
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        self.notary.anchored_trails().await
    }
}

#[async_trait]
impl LockedBucket for ImmutableContainer {
    type Version = BlobItem;

    fn kind(&self) -> &'static str {
        "azure-immutable-blob"
    }

    fn location(&self, name: &str) -> String {
        self.container.blob_url(name)
    }

    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError> {
        let mut options = BlockBlobClientUploadOptions::default().if_not_exists();
        options.blob_content_type = Some("application/json".into());
        let until = (posture == WormPosture::Enforced)
            .then(|| whole_seconds(OffsetDateTime::now_utc() + self.retention));
        if let Some(until) = until {
            options.immutability_policy_mode = Some(ImmutabilityPolicyMode::Locked);
            options.immutability_policy_expiry = Some(until);
        }
        let version = self
            .container
            .upload("put anchor", name, body, options)
            .await?;
        let mut location = self.container.blob_url(name);
        if let Some(version) = version {
            location.push_str("?versionid=");
            location.push_str(&version);
        }
        Ok(AnchorReceipt {
            location,
            retain_until: until.and_then(to_timestamp),
        })
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<BlobItem>>, NotaryError> {
        let items = self
            .container
            .list(
                "list anchor versions",
                prefix,
                vec![
                    ListBlobsIncludeItem::Versions,
                    ListBlobsIncludeItem::ImmutabilityPolicy,
                ],
            )
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                Some(Listed {
                    name: item.name.clone()?,
                    version: item,
                })
            })
            .collect())
    }

    async fn read_version(
        &self,
        name: &str,
        item: &BlobItem,
        posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        // With blob versioning, a deleted anchor stays as a previous version only.
        if item.version_id.is_some() && item.is_current_version != Some(true) {
            return Err(self.invalid(name, &"has no current version: someone deleted this anchor"));
        }
        if posture == WormPosture::Enforced {
            let props = item.properties.as_ref();
            let mode = props.and_then(|p| p.immutability_policy_mode);
            if !matches!(mode, Some(ImmutabilityPolicyMode::Locked)) {
                return Err(self.invalid(
                    name,
                    &format!("not under a locked immutability policy (mode {mode:?})"),
                ));
            }
            match props.and_then(|p| p.immutability_policy_expires_on) {
                None => return Err(self.invalid(name, &"a locked policy without an expiry")),
                Some(until) if until < OffsetDateTime::now_utc() => {
                    // The policy ran its course; the anchor is still evidence, but the store no
                    // longer protects it. Not an error, never silent.
                    tracing::warn!(container = %self.container.display, blob = name,
                        "anchor immutability policy has expired");
                }
                Some(_) => {}
            }
        }
        match self
            .container
            .download("read anchor", name, item.version_id.as_deref())
            .await
        {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.meaning() == Meaning::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
        // Versions, not only current blobs: a trail whose anchors were deleted is still listed,
        // and `anchors` then reports the tampering.
        let items = self
            .container
            .list(
                "list anchored trails",
                prefix,
                vec![ListBlobsIncludeItem::Versions],
            )
            .await?;
        Ok(TrailListing::Names(
            items.into_iter().filter_map(|item| item.name).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_dates_are_whole_seconds_never_earlier() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_075_475_250_000_000).unwrap();
        let rounded = whole_seconds(at);
        assert_eq!(rounded.unix_timestamp(), 1_764_075_476);
        assert_eq!(rounded.nanosecond(), 0);
        let exact = OffsetDateTime::from_unix_timestamp(1_764_075_475).unwrap();
        assert_eq!(whole_seconds(exact), exact);
        assert_eq!(
            to_timestamp(exact).unwrap().unix_micros(),
            1_764_075_475_000_000
        );
    }
}
