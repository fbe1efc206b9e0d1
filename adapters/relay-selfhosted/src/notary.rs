//! `S3Notary`: anchors as Object Lock objects (COMPLIANCE mode) in an S3-compatible bucket.
//!
//! The notary itself is [`relay_worm::WormNotary`]; this module is its S3 bucket
//! (`ObjectLockBucket`) and the start-up check of the bucket's Object Lock configuration.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};
use relay_worm::{Listed, LockedBucket, TrailListing, WormNotary};

use crate::config::S3NotaryOptions;
use crate::error::{Meaning, S3Error};
use crate::s3::{S3Client, content_md5, is_past, retain_until, to_timestamp};

/// A notary writing each anchor as its own object,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json`, locked in COMPLIANCE mode for the
/// configured retention: nobody, the bucket owner and the root account included, can delete
/// the version or shorten its retention until it ends.
///
/// - **Refuses to start** against a bucket without Object Lock ([`NotaryError::NotWorm`]),
///   unless `allow_unlocked_bucket`; then it warns loudly and reports `Unenforced`.
/// - **Writes once**: every anchor gets a fresh key and the upload carries
///   `If-None-Match: *`; the notary never writes a key twice.
/// - **Reads back with proof**: `anchors` lists every *version* of the trail's anchor keys.
///   A delete marker, a second version of a key, an object without COMPLIANCE retention, or an
///   object whose content names another trail is [`NotaryError::InvalidAnchor`]: someone
///   tried to hide or replace an anchor.
/// - **SSE-KMS when configured**: every anchor put names the KMS key (`sse_kms_key_id`).
#[derive(Debug, Clone)]
pub struct S3Notary {
    notary: WormNotary<ObjectLockBucket>,
}

/// The S3 side of the notary: an Object Lock bucket.
#[derive(Debug, Clone)]
struct ObjectLockBucket {
    client: S3Client,
    bucket: String,
    retention: Duration,
    sse_kms_key_id: Option<String>,
}

impl S3Notary {
    /// Opens the notary, checking the bucket's Object Lock configuration.
    pub async fn open(client: &S3Client, options: S3NotaryOptions) -> Result<Self, NotaryError> {
        client.check_bucket(&options.bucket).await?;
        let locked = client.object_lock_enabled(&options.bucket).await?;
        let posture = if locked {
            WormPosture::Enforced
        } else if options.allow_unlocked_bucket {
            tracing::warn!(
                bucket = %options.bucket,
                "NOTARY IS NOT WORM: bucket has no Object Lock and allow_unlocked_bucket is set; \
                 anyone with write access can delete or replace anchors"
            );
            WormPosture::Unenforced
        } else {
            return Err(NotaryError::NotWorm(format!(
                "bucket {} has no Object Lock; create it with Object Lock enabled \
                 (ObjectLockEnabledForBucket=true), or allow an unlocked bucket explicitly \
                 (never in production)",
                options.bucket
            )));
        };
        let bucket = ObjectLockBucket {
            client: client.clone(),
            bucket: options.bucket,
            retention: options.retention,
            sse_kms_key_id: options.sse_kms_key_id,
        };
        Ok(Self {
            notary: WormNotary::new(bucket, options.prefix, posture),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.notary.bucket().bucket
    }

    /// The key prefix under which the anchors of `trail` are stored.
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        self.notary.trail_prefix(trail)
    }

    /// The key prefix under which rounds are stored (`<prefix>~rounds/`).
    pub fn rounds_prefix(&self) -> String {
        self.notary.rounds_prefix()
    }
}

#[async_trait]
impl Notary for S3Notary {
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

/// One page of a version listing: the keys and version ids, or the common prefixes.
struct VersionPage {
    versions: Vec<Listed<Option<String>>>,
    prefixes: Vec<String>,
}

impl ObjectLockBucket {
    /// Every page of a version listing under `prefix` (with `delimiter`, the common prefixes).
    /// A delete marker is refused: someone tried to delete an anchor.
    async fn list_all_versions(
        &self,
        op: &'static str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<VersionPage, NotaryError> {
        let mut all = VersionPage {
            versions: Vec::new(),
            prefixes: Vec::new(),
        };
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .sdk()
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(S3Error::op(op))?;
            if delimiter.is_none()
                && let Some(marker) = page.delete_markers().first()
            {
                let key = marker.key().unwrap_or("?");
                return Err(self.invalid(
                    key,
                    &"has a delete marker: someone tried to delete this anchor",
                ));
            }
            for v in page.versions() {
                if let Some(key) = v.key() {
                    all.versions.push(Listed {
                        name: key.to_owned(),
                        version: v.version_id().map(str::to_owned),
                    });
                }
            }
            all.prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(all)
    }
}

#[async_trait]
impl LockedBucket for ObjectLockBucket {
    type Version = Option<String>;

    fn kind(&self) -> &'static str {
        "s3-object-lock"
    }

    fn location(&self, name: &str) -> String {
        format!("s3://{}/{name}", self.bucket)
    }

    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError> {
        let mut req = self
            .client
            .sdk()
            .put_object()
            .bucket(&self.bucket)
            .key(name)
            .content_type("application/json")
            .content_md5(content_md5(&body))
            .if_none_match("*")
            .body(ByteStream::from(body));
        let until = (posture == WormPosture::Enforced).then(|| retain_until(self.retention));
        if let Some(until) = until {
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(until);
        }
        if let Some(kms_key) = &self.sse_kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key);
        }
        let out = req.send().await.map_err(S3Error::op("put anchor"))?;
        let version = out.version_id().unwrap_or("null");
        Ok(AnchorReceipt {
            location: format!("s3://{}/{name}?versionId={version}", self.bucket),
            retain_until: until.as_ref().and_then(to_timestamp),
        })
    }

    async fn list_versions(
        &self,
        prefix: &str,
    ) -> Result<Vec<Listed<Option<String>>>, NotaryError> {
        // Every version and delete marker, so a hidden or replaced anchor cannot go unnoticed.
        Ok(self
            .list_all_versions("list anchor versions", prefix, None)
            .await?
            .versions)
    }

    async fn read_version(
        &self,
        name: &str,
        version: &Option<String>,
        posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        let version = version.as_deref().filter(|v| *v != "null");
        let result = self
            .client
            .sdk()
            .get_object()
            .bucket(&self.bucket)
            .key(name)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(S3Error::op("get anchor"));
        let out = match result {
            Ok(out) => out,
            Err(e) if e.meaning() == Meaning::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if posture == WormPosture::Enforced {
            if out.object_lock_mode() != Some(&ObjectLockMode::Compliance) {
                return Err(self.invalid(
                    name,
                    &format!(
                        "not under COMPLIANCE retention (mode {:?})",
                        out.object_lock_mode().map(ObjectLockMode::as_str)
                    ),
                ));
            }
            let Some(until) = out.object_lock_retain_until_date() else {
                return Err(self.invalid(name, &"COMPLIANCE mode without a retain-until date"));
            };
            if is_past(until) {
                // The retention policy ran its course; the anchor is still evidence, but the
                // store no longer protects it. Not an error, never silent.
                tracing::warn!(bucket = %self.bucket, key = name, "anchor retention has expired");
            }
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| NotaryError::from(S3Error::body("read anchor body", e)))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
        // Versions, not current objects: a trail whose anchors were hidden behind delete
        // markers is still listed, and `anchors` then reports the tampering.
        let page = self
            .list_all_versions("list anchored trails", prefix, Some("/"))
            .await?;
        Ok(TrailListing::Folders(page.prefixes))
    }
}
