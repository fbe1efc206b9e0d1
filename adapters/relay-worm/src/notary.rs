//! `WormNotary`: the one `Notary` over a [`LockedBucket`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};

use crate::bucket::{LockedBucket, TrailListing};
use crate::name::{AnchorName, decode_anchor, encode_anchor};

/// A notary writing each anchor as its own object,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json` ([`AnchorName`]), in a [`LockedBucket`].
///
/// - **Writes once**: every anchor gets a fresh name and the bucket refuses to replace an
///   object; the notary never writes a name twice.
/// - **Reads back with proof**: `anchors` lists every version of the trail's anchor objects. A
///   name with more than one version (overwritten), a version the bucket finds unlocked or not
///   current, a listed object that cannot be read, or content that is not an anchor of the
///   trail it is filed under is [`NotaryError::InvalidAnchor`].
/// - **States its posture**: the adapter decides at start-up whether the bucket locks objects
///   and refuses to run otherwise unless explicitly allowed; the notary reports that posture
///   and checks locks on read-back only when it is `Enforced`.
#[derive(Debug, Clone)]
pub struct WormNotary<B> {
    bucket: B,
    prefix: String,
    posture: WormPosture,
}

impl<B: LockedBucket> WormNotary<B> {
    /// A notary storing anchors under `prefix` in `bucket`, whose lock the adapter has assessed
    /// as `posture`.
    pub fn new(bucket: B, prefix: impl Into<String>, posture: WormPosture) -> Self {
        Self {
            bucket,
            prefix: prefix.into(),
            posture,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &B {
        &self.bucket
    }

    /// The name prefix under which the anchors of `trail` are stored (`<prefix><trail>/`).
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        format!("{}{}/", self.prefix, trail.as_str())
    }

    fn decode(&self, trail: &TrailId, name: &str, bytes: &[u8]) -> Result<Anchor, NotaryError> {
        decode_anchor(trail, bytes).map_err(|why| self.bucket.invalid(name, &why))
    }

    fn folder_error(&self, location: &str, e: impl std::fmt::Display) -> NotaryError {
        NotaryError::InvalidAnchor(format!("{location} is not a trail's anchor folder: {e}"))
    }
}

#[async_trait]
impl<B: LockedBucket> Notary for WormNotary<B> {
    fn kind(&self) -> &'static str {
        self.bucket.kind()
    }

    fn worm_posture(&self) -> WormPosture {
        self.posture
    }

    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        let body = encode_anchor(anchor)?;
        let name = AnchorName::new(anchor, rand::random())
            .object_name(&self.trail_prefix(&anchor.trail_id));
        let receipt = self.bucket.put_new(&name, body, self.posture).await?;
        tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), object = %name, "anchored");
        Ok(receipt)
    }

    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        let listed = self.bucket.list_versions(&self.trail_prefix(trail)).await?;
        // Every version, so a hidden or replaced anchor cannot go unnoticed.
        let mut by_name: BTreeMap<String, Vec<B::Version>> = BTreeMap::new();
        for item in listed {
            by_name.entry(item.name).or_default().push(item.version);
        }
        let mut out = Vec::with_capacity(by_name.len());
        for (name, versions) in &by_name {
            let [version] = versions.as_slice() else {
                return Err(self.bucket.invalid(
                    name,
                    &format!(
                        "has {} versions; the notary writes each anchor once, so it was \
                         overwritten",
                        versions.len()
                    ),
                ));
            };
            let Some(bytes) = self
                .bucket
                .read_version(name, version, self.posture)
                .await?
            else {
                return Err(self.bucket.invalid(name, &"listed but cannot be read"));
            };
            out.push(self.decode(trail, name, &bytes)?);
        }
        out.sort_by(|a, b| {
            (a.seq, a.anchored_at.unix_micros()).cmp(&(b.seq, b.anchored_at.unix_micros()))
        });
        Ok(out)
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        let mut trails = Vec::new();
        match self.bucket.list_trails(&self.prefix).await? {
            TrailListing::Folders(folders) => {
                for p in &folders {
                    let Some(name) = p
                        .strip_prefix(&self.prefix)
                        .and_then(|p| p.strip_suffix('/'))
                    else {
                        continue;
                    };
                    let trail = TrailId::new(name)
                        .map_err(|e| self.folder_error(&self.bucket.location(p), e))?;
                    trails.push(trail);
                }
            }
            TrailListing::Names(names) => {
                for name in &names {
                    let Some((folder, _)) = name
                        .strip_prefix(&self.prefix)
                        .and_then(|rest| rest.split_once('/'))
                    else {
                        return Err(self
                            .bucket
                            .invalid(name, &"is not inside a trail's anchor folder"));
                    };
                    let trail = TrailId::new(folder).map_err(|e| {
                        self.bucket.invalid(
                            name,
                            &format!("{folder:?} is not a trail's anchor folder: {e}"),
                        )
                    })?;
                    trails.push(trail);
                }
            }
        }
        trails.sort();
        trails.dedup();
        Ok(trails)
    }
}
