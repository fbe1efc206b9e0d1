//! `GcsNotary`: anchors as objects in a Cloud Storage bucket whose retention policy is locked.
//!
//! The notary itself is [`relay_worm::WormNotary`]; this module is its Cloud Storage bucket
//! (`RetentionBucket`) and the start-up assessment of the bucket's retention policy.

use std::time::Duration;

use async_trait::async_trait;
use gcloud_storage::http::objects::Object;
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};
use relay_worm::{Listed, LockedBucket, TrailListing, WormNotary};

use crate::client::GcpClient;
use crate::config::GcsNotaryOptions;
use crate::error::Meaning;
use crate::storage::{Retention, to_timestamp};

/// A notary writing each anchor as its own object,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json`, in a bucket with a **locked retention
/// policy**: Cloud Storage refuses to delete or replace any object younger than the retention
/// period, for everyone including project owners, and a locked policy can never be removed or
/// shortened (Cloud Storage "Bucket Lock").
///
/// - **Refuses to start** ([`NotaryError::NotWorm`]) when the bucket has no retention policy,
///   an unlocked one, or one shorter than `min_retention`, unless `allow_non_worm`; then it
///   warns loudly and reports `Unenforced`, which the runtime writes into the `_relay` trail's
///   start-up posture.
/// - **Writes once**: every anchor gets a fresh name and the upload carries
///   `ifGenerationMatch=0`; the notary never writes a name twice.
/// - **Reads back with proof**: under an enforced posture every anchor object must carry a
///   `retentionExpirationTime` (it is under the bucket's retention), and its content must name
///   the trail it is filed under; anything else is [`NotaryError::InvalidAnchor`].
#[derive(Debug, Clone)]
pub struct GcsNotary {
    notary: WormNotary<RetentionBucket>,
}

/// The Cloud Storage side of the notary: a bucket with a locked retention policy.
#[derive(Debug, Clone)]
struct RetentionBucket {
    client: GcpClient,
    bucket: String,
}

/// Decides the notary's posture from the bucket's retention policy: `Enforced` only for a
/// locked policy of at least `min`; otherwise `NotWorm`, or `Unenforced` when allowed.
pub(crate) fn assess_retention(
    bucket: &str,
    retention: Option<Retention>,
    min: Duration,
    allow_non_worm: bool,
) -> Result<WormPosture, NotaryError> {
    let problem = match retention {
        None => "has no retention policy".to_owned(),
        Some(r) if r.period_secs == 0 => "has no retention policy".to_owned(),
        Some(r) if !r.locked => format!(
            "has a retention policy of {} but it is not locked, so anyone with \
             storage.buckets.update can remove it and then delete anchors",
            human(r.period_secs)
        ),
        Some(r) if r.period_secs < min.as_secs() => format!(
            "has a locked retention policy of only {}; at least {} is required",
            human(r.period_secs),
            human(min.as_secs())
        ),
        Some(_) => return Ok(WormPosture::Enforced),
    };
    if allow_non_worm {
        tracing::warn!(
            bucket,
            problem = %problem,
            "NOTARY IS NOT WORM: allow_non_worm is set; anyone with write access to the bucket can \
             delete or replace anchors. Never use this in regulated production"
        );
        return Ok(WormPosture::Unenforced);
    }
    Err(NotaryError::NotWorm(format!(
        "bucket {bucket} {problem}; set a retention policy of at least {} on it and lock it \
         (gcloud storage buckets update gs://{bucket} --retention-period=... then \
         --lock-retention-period), or allow a non-WORM bucket explicitly (never in production)",
        human(min.as_secs())
    )))
}

/// A period in days (or seconds when shorter than a day), for messages.
fn human(secs: u64) -> String {
    if secs >= 86_400 && secs.is_multiple_of(86_400) {
        format!("{} days", secs / 86_400)
    } else {
        format!("{secs} s")
    }
}

impl GcsNotary {
    /// Opens the notary, checking the bucket's retention policy (see the type's docs).
    pub async fn open(client: &GcpClient, options: GcsNotaryOptions) -> Result<Self, NotaryError> {
        let bucket = client.get_bucket(&options.bucket).await.map_err(|e| {
            if e.meaning() == Meaning::NotFound {
                NotaryError::Other {
                    message: format!("bucket {} does not exist", options.bucket),
                    source: Some(Box::new(e)),
                }
            } else {
                e.into()
            }
        })?;
        let posture = assess_retention(
            &options.bucket,
            Retention::of(&bucket),
            options.min_retention,
            options.allow_non_worm,
        )?;
        let bucket = RetentionBucket {
            client: client.clone(),
            bucket: options.bucket,
        };
        Ok(Self {
            notary: WormNotary::new(bucket, options.prefix, posture),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.notary.bucket().bucket
    }

    /// The name prefix under which the anchors of `trail` are stored.
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        self.notary.trail_prefix(trail)
    }
}

#[async_trait]
impl Notary for GcsNotary {
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
impl LockedBucket for RetentionBucket {
    type Version = Object;

    fn kind(&self) -> &'static str {
        "gcs-retention-lock"
    }

    fn location(&self, name: &str) -> String {
        format!("gs://{}/{name}", self.bucket)
    }

    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError> {
        let (result, attempts) = self
            .client
            .upload(
                "put anchor",
                &self.bucket,
                name,
                body.clone(),
                "application/json",
                Some(0),
            )
            .await;
        let object = match result {
            Ok(object) => object,
            // The name is fresh, so only our own earlier attempt (whose answer was lost) can
            // have stored it: accept it when it holds exactly this anchor.
            Err(e) if e.meaning() == Meaning::Precondition && attempts > 1 => {
                let stored = self
                    .client
                    .download("read back a retried anchor", &self.bucket, name, None)
                    .await?;
                if stored != body {
                    return Err(self.invalid(name, &"exists with other content"));
                }
                self.client
                    .object_metadata("read back a retried anchor", &self.bucket, name)
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        let retain_until = match posture {
            WormPosture::Enforced => object.retention_expiration_time.and_then(to_timestamp),
            _ => None,
        };
        Ok(AnchorReceipt {
            location: format!("gs://{}/{name}#{}", self.bucket, object.generation),
            retain_until,
        })
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<Object>>, NotaryError> {
        let listing = self
            .client
            .list_all("list anchors", &self.bucket, prefix, None)
            .await?;
        Ok(listing
            .objects
            .into_iter()
            .map(|object| Listed {
                name: object.name.clone(),
                version: object,
            })
            .collect())
    }

    async fn read_version(
        &self,
        name: &str,
        object: &Object,
        posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        if posture == WormPosture::Enforced && object.retention_expiration_time.is_none() {
            return Err(self.invalid(
                name,
                &"is not under the bucket's retention policy (no retentionExpirationTime)",
            ));
        }
        match self
            .client
            .download("get anchor", &self.bucket, name, Some(object.generation))
            .await
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.meaning() == Meaning::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
        let listing = self
            .client
            .list_all("list anchored trails", &self.bucket, prefix, Some("/"))
            .await?;
        Ok(TrailListing::Folders(listing.prefixes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: u64 = 365 * 86_400;

    fn locked(period_secs: u64) -> Option<Retention> {
        Some(Retention {
            period_secs,
            locked: true,
        })
    }

    #[test]
    fn only_a_locked_policy_of_the_minimum_period_is_worm() {
        let min = Duration::from_secs(10 * YEAR);
        assert_eq!(
            assess_retention("b", locked(10 * YEAR), min, false).unwrap(),
            WormPosture::Enforced
        );
        assert_eq!(
            assess_retention("b", locked(20 * YEAR), min, false).unwrap(),
            WormPosture::Enforced
        );
        for (retention, why) in [
            (None, "has no retention policy"),
            (locked(0), "has no retention policy"),
            (
                Some(Retention {
                    period_secs: 20 * YEAR,
                    locked: false,
                }),
                "not locked",
            ),
            (locked(YEAR), "only 365 days"),
        ] {
            match assess_retention("lab-anchors", retention, min, false) {
                Err(NotaryError::NotWorm(msg)) => {
                    assert!(msg.contains(why), "{msg:?} should say {why:?}");
                    assert!(msg.contains("lab-anchors"), "{msg:?} names the bucket");
                    assert!(msg.contains("3650 days"), "{msg:?} names the minimum");
                }
                other => panic!("{retention:?} must be refused, got {other:?}"),
            }
            assert_eq!(
                assess_retention("lab-anchors", retention, min, true).unwrap(),
                WormPosture::Unenforced,
                "the override runs {retention:?} as Unenforced, never Enforced"
            );
        }
    }

    #[test]
    fn periods_read_as_days() {
        assert_eq!(human(86_400 * 3650), "3650 days");
        assert_eq!(human(90), "90 s");
    }
}
