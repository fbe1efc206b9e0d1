//! `S3ObjectStore`: objects in an S3-compatible bucket (evidence, export packages).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use relay_domain::ports::{
    ObjectKey, ObjectMeta, ObjectStore, ObjectStoreCapabilities, ObjectStoreError, PutMode,
    WormPosture,
};

use crate::config::S3ObjectStoreOptions;
use relay_domain::ports::ProviderFailure;

use crate::error::{Meaning, S3Error};
use crate::s3::{S3Client, content_md5, retain_until};

/// An object store on an S3-compatible bucket: key `a/b` is the object `<prefix>a/b`.
///
/// - **Atomic puts**: S3 makes an object visible only when its upload completed.
/// - **`PutMode::Create` is atomic** (`conditional_put`): the upload carries
///   `If-None-Match: *`, so the store itself refuses it when the key exists (HTTP 412).
/// - **WORM when configured with a retention**: every object is written with Object Lock
///   retention in COMPLIANCE mode. `delete` then targets the object's exact version, which the
///   store refuses until the retention ends; a put to an existing key also carries
///   `If-None-Match: *`, so the store never gets a second version that would hide the first.
///   Both are `PermissionDenied`. Without a retention the store is not WORM: `delete` removes
///   the object (on a versioned bucket it leaves a delete marker).
/// - **SSE-KMS when configured**: every put names the KMS key (`sse_kms_key_id`).
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: S3Client,
    bucket: String,
    prefix: String,
    retention: Option<std::time::Duration>,
    sse_kms_key_id: Option<String>,
}

impl S3ObjectStore {
    /// Opens the store: checks the bucket is reachable, and when a retention is configured,
    /// that it has Object Lock enabled (refused otherwise: the WORM claim would be false).
    pub async fn open(
        client: &S3Client,
        options: S3ObjectStoreOptions,
    ) -> Result<Self, ObjectStoreError> {
        client.check_bucket(&options.bucket).await?;
        if options.retention.is_some() && !client.object_lock_enabled(&options.bucket).await? {
            return Err(ObjectStoreError::Other {
                message: format!(
                    "bucket {} has no Object Lock, so objects cannot be retained; create it \
                     with Object Lock enabled or configure no retention",
                    options.bucket
                ),
                source: None,
            });
        }
        Ok(Self {
            client: client.clone(),
            bucket: options.bucket,
            prefix: options.prefix,
            retention: options.retention,
            sse_kms_key_id: options.sse_kms_key_id,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 key of an object key.
    pub fn s3_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    fn fault(&self, key: &ObjectKey, e: S3Error) -> ObjectStoreError {
        ProviderFailure::from(e).on_object(key)
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    fn capabilities(&self) -> ObjectStoreCapabilities {
        let worm = if self.retention.is_some() {
            WormPosture::Enforced
        } else {
            WormPosture::Unenforced
        };
        ObjectStoreCapabilities::new(true, worm)
    }

    async fn put(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<ObjectMeta, ObjectStoreError> {
        let size = bytes.len() as u64;
        let mut req = self
            .client
            .sdk()
            .put_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .content_md5(content_md5(&bytes))
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .body(ByteStream::from(bytes));
        if mode == PutMode::Create || self.retention.is_some() {
            req = req.if_none_match("*");
        }
        if let Some(period) = self.retention {
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(retain_until(period));
        }
        if let Some(kms_key) = &self.sse_kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key);
        }
        match req.send().await.map_err(S3Error::op("put object")) {
            Ok(_) => Ok(ObjectMeta {
                key: key.clone(),
                size,
            }),
            Err(e) if e.meaning() == Meaning::Precondition => match mode {
                PutMode::Create => Err(ObjectStoreError::AlreadyExists { key: key.clone() }),
                PutMode::Overwrite => Err(ObjectStoreError::PermissionDenied {
                    key: key.clone(),
                    message: "the object is under Object Lock retention; a WORM store never \
                              replaces it"
                        .into(),
                    source: Some(Box::new(e)),
                }),
            },
            Err(e) => Err(self.fault(key, e)),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, ObjectStoreError> {
        let out = self
            .client
            .sdk()
            .get_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await
            .map_err(|e| self.fault(key, S3Error::op("get object")(e)))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ObjectStoreError::from(S3Error::body("read object body", e)))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, ObjectStoreError> {
        let out = self
            .client
            .sdk()
            .head_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await
            .map_err(|e| self.fault(key, S3Error::op("head object")(e)))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        // S3 answers a delete of a missing key with success; the port says NotFound.
        let head = self
            .client
            .sdk()
            .head_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await
            .map_err(|e| self.fault(key, S3Error::op("head object")(e)))?;
        let mut req = self
            .client
            .sdk()
            .delete_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key));
        if self.retention.is_some() {
            // Deleting the exact version is what retention forbids; a versionless delete would
            // only add a delete marker and hide the object.
            req = req.set_version_id(head.version_id().map(str::to_owned));
        }
        req.send()
            .await
            .map_err(|e| self.fault(key, S3Error::op("delete object")(e)))?;
        Ok(())
    }

    async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let full_prefix = format!("{}{}", self.prefix, prefix.unwrap_or(""));
        let mut pages = self
            .client
            .sdk()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full_prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(S3Error::op("list objects"))?;
            for object in page.contents() {
                let Some(s3_key) = object.key() else { continue };
                let Some(rest) = s3_key.strip_prefix(&self.prefix) else {
                    continue;
                };
                let Ok(key) = ObjectKey::new(rest) else {
                    tracing::warn!(bucket = %self.bucket, key = %s3_key, "skipping an object whose key is not a valid object key");
                    continue;
                };
                out.push(ObjectMeta {
                    key,
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
