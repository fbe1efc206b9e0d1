//! `S3Notary`: anchors as Object Lock objects (COMPLIANCE mode) in an S3-compatible bucket.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};

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
    client: S3Client,
    bucket: String,
    prefix: String,
    retention: Duration,
    posture: WormPosture,
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
        Ok(Self {
            client: client.clone(),
            bucket: options.bucket,
            prefix: options.prefix,
            retention: options.retention,
            posture,
            sse_kms_key_id: options.sse_kms_key_id,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix under which the anchors of `trail` are stored.
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        format!("{}{}/", self.prefix, trail.as_str())
    }

    fn invalid(&self, key: &str, why: impl std::fmt::Display) -> NotaryError {
        NotaryError::InvalidAnchor(format!("s3://{}/{key}: {why}", self.bucket))
    }

    /// Reads one version of an anchor object and checks its retention and content.
    async fn read_anchor(
        &self,
        trail: &TrailId,
        key: &str,
        version: Option<&str>,
    ) -> Result<Anchor, NotaryError> {
        let out = self
            .client
            .sdk()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                let e = S3Error::op("get anchor")(e);
                if e.meaning() == Meaning::NotFound {
                    self.invalid(key, "listed but cannot be read")
                } else {
                    e.into()
                }
            })?;
        if self.posture == WormPosture::Enforced {
            if out.object_lock_mode() != Some(&ObjectLockMode::Compliance) {
                return Err(self.invalid(
                    key,
                    format!(
                        "not under COMPLIANCE retention (mode {:?})",
                        out.object_lock_mode().map(ObjectLockMode::as_str)
                    ),
                ));
            }
            let Some(until) = out.object_lock_retain_until_date() else {
                return Err(self.invalid(key, "COMPLIANCE mode without a retain-until date"));
            };
            if is_past(until) {
                // The retention policy ran its course; the anchor is still evidence, but the
                // store no longer protects it. Not an error, never silent.
                tracing::warn!(bucket = %self.bucket, key, "anchor retention has expired");
            }
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| NotaryError::from(S3Error::body("read anchor body", e)))?;
        let anchor: Anchor = serde_json::from_slice(&body.into_bytes())
            .map_err(|e| self.invalid(key, format!("not an anchor: {e}")))?;
        if anchor.trail_id != *trail {
            return Err(self.invalid(key, format!("holds an anchor of trail {}", anchor.trail_id)));
        }
        Ok(anchor)
    }
}

#[async_trait]
impl Notary for S3Notary {
    fn kind(&self) -> &'static str {
        "s3-object-lock"
    }

    fn worm_posture(&self) -> WormPosture {
        self.posture
    }

    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        let body = serde_json::to_vec(anchor).map_err(|e| NotaryError::Other {
            message: "could not encode the anchor".into(),
            source: Some(Box::new(e)),
        })?;
        let nonce: u64 = rand::random();
        let key = format!(
            "{}{:020}-{:020}-{nonce:016x}.json",
            self.trail_prefix(&anchor.trail_id),
            anchor.seq.get(),
            anchor.anchored_at.unix_micros()
        );
        let mut req = self
            .client
            .sdk()
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .content_md5(content_md5(&body))
            .if_none_match("*")
            .body(ByteStream::from(body));
        let until = (self.posture == WormPosture::Enforced).then(|| retain_until(self.retention));
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
        tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), key = %key, "anchored");
        let version = out.version_id().unwrap_or("null");
        Ok(AnchorReceipt {
            location: format!("s3://{}/{key}?versionId={version}", self.bucket),
            retain_until: until.as_ref().and_then(to_timestamp),
        })
    }

    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        let prefix = self.trail_prefix(trail);
        // Every version and delete marker, so a hidden or replaced anchor cannot go unnoticed.
        let mut versions: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .sdk()
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(S3Error::op("list anchor versions"))?;
            if let Some(marker) = page.delete_markers().first() {
                let key = marker.key().unwrap_or("?");
                return Err(self.invalid(
                    key,
                    "has a delete marker: someone tried to delete this anchor",
                ));
            }
            for v in page.versions() {
                if let Some(key) = v.key() {
                    versions
                        .entry(key.to_owned())
                        .or_default()
                        .push(v.version_id().map(str::to_owned));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        let mut out = Vec::with_capacity(versions.len());
        for (key, ids) in &versions {
            if ids.len() > 1 {
                return Err(self.invalid(
                    key,
                    format!(
                        "has {} versions; the notary writes each anchor once, so it was \
                         overwritten",
                        ids.len()
                    ),
                ));
            }
            let version = ids
                .first()
                .and_then(|v| v.as_deref())
                .filter(|v| *v != "null");
            out.push(self.read_anchor(trail, key, version).await?);
        }
        out.sort_by(|a, b| {
            (a.seq, a.anchored_at.unix_micros()).cmp(&(b.seq, b.anchored_at.unix_micros()))
        });
        Ok(out)
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        // Versions, not current objects: a trail whose anchors were hidden behind delete
        // markers is still listed, and `anchors` then reports the tampering.
        let mut trails = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .sdk()
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .delimiter("/")
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(S3Error::op("list anchored trails"))?;
            for p in page.common_prefixes() {
                let Some(name) = p
                    .prefix()
                    .and_then(|p| p.strip_prefix(&self.prefix))
                    .and_then(|p| p.strip_suffix('/'))
                else {
                    continue;
                };
                match TrailId::new(name) {
                    Ok(trail) => trails.push(trail),
                    Err(e) => {
                        return Err(NotaryError::InvalidAnchor(format!(
                            "s3://{}/{}{name}/ is not a trail's anchor folder: {e}",
                            self.bucket, self.prefix
                        )));
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        trails.sort();
        trails.dedup();
        Ok(trails)
    }
}
