//! Cloud Storage calls shared by the object store and the notary, each one bounded and
//! retried through [`GcpClient::call`](crate::GcpClient).

use gcloud_storage::http::buckets::Bucket;
use gcloud_storage::http::buckets::get::GetBucketRequest;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};
use relay_domain::Timestamp;

use crate::client::GcpClient;
use crate::error::GcpError;

pub(crate) const SERVICE: &str = "cloud storage";

/// What a bucket's retention policy guarantees, as read from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Seconds every object is retained after its creation (0: no policy).
    pub period_secs: u64,
    /// Whether the policy is locked: it can then never be removed or shortened.
    pub locked: bool,
}

impl Retention {
    pub(crate) fn of(bucket: &Bucket) -> Option<Self> {
        bucket.retention_policy.as_ref().map(|p| Retention {
            period_secs: p.retention_period,
            locked: p.is_locked == Some(true),
        })
    }
}

/// One page of a listing: objects and, with a delimiter, the "folders".
pub(crate) struct Listing {
    pub objects: Vec<Object>,
    pub prefixes: Vec<String>,
}

impl GcpClient {
    pub(crate) async fn get_bucket(&self, bucket: &str) -> Result<Bucket, GcpError> {
        let req = GetBucketRequest {
            bucket: bucket.to_owned(),
            ..Default::default()
        };
        self.call(SERVICE, "read the bucket's metadata", || async {
            self.storage()
                .get_bucket(&req)
                .await
                .map_err(GcpError::storage("read the bucket's metadata"))
        })
        .await
    }

    /// Uploads `bytes` to `name`; `if_generation_match = Some(0)` makes the upload succeed only
    /// if no live object has that name (HTTP 412 otherwise). Returns the stored object and the
    /// number of attempts made.
    pub(crate) async fn upload(
        &self,
        op: &'static str,
        bucket: &str,
        name: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
        if_generation_match: Option<i64>,
    ) -> (Result<Object, GcpError>, u32) {
        let req = UploadObjectRequest {
            bucket: bucket.to_owned(),
            if_generation_match,
            ..Default::default()
        };
        // Multipart (metadata + bytes in one request), not a media upload: the emulator drops
        // the connection on an empty media upload, and both are plain JSON API uploads.
        let upload_type = UploadType::Multipart(Box::new(Object {
            name: name.to_owned(),
            content_type: Some(content_type.to_owned()),
            ..Default::default()
        }));
        self.call_counted(SERVICE, op, || async {
            self.storage()
                .upload_object(&req, bytes.clone(), &upload_type)
                .await
                .map_err(GcpError::storage(op))
        })
        .await
    }

    pub(crate) async fn download(
        &self,
        op: &'static str,
        bucket: &str,
        name: &str,
        generation: Option<i64>,
    ) -> Result<Vec<u8>, GcpError> {
        let req = GetObjectRequest {
            bucket: bucket.to_owned(),
            object: name.to_owned(),
            generation,
            ..Default::default()
        };
        self.call(SERVICE, op, || async {
            self.storage()
                .download_object(&req, &Range::default())
                .await
                .map_err(GcpError::storage(op))
        })
        .await
    }

    pub(crate) async fn object_metadata(
        &self,
        op: &'static str,
        bucket: &str,
        name: &str,
    ) -> Result<Object, GcpError> {
        let req = GetObjectRequest {
            bucket: bucket.to_owned(),
            object: name.to_owned(),
            ..Default::default()
        };
        self.call(SERVICE, op, || async {
            self.storage()
                .get_object(&req)
                .await
                .map_err(GcpError::storage(op))
        })
        .await
    }

    pub(crate) async fn delete(
        &self,
        op: &'static str,
        bucket: &str,
        name: &str,
        generation: Option<i64>,
    ) -> (Result<(), GcpError>, u32) {
        let req = DeleteObjectRequest {
            bucket: bucket.to_owned(),
            object: name.to_owned(),
            generation,
            ..Default::default()
        };
        self.call_counted(SERVICE, op, || async {
            self.storage()
                .delete_object(&req)
                .await
                .map_err(GcpError::storage(op))
        })
        .await
    }

    /// Every object under `prefix` (every page), and the common prefixes when `delimiter` is
    /// set.
    pub(crate) async fn list_all(
        &self,
        op: &'static str,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Listing, GcpError> {
        let mut out = Listing {
            objects: Vec::new(),
            prefixes: Vec::new(),
        };
        let mut page_token: Option<String> = None;
        loop {
            let req = ListObjectsRequest {
                bucket: bucket.to_owned(),
                prefix: Some(prefix.to_owned()),
                delimiter: delimiter.map(str::to_owned),
                page_token: page_token.take(),
                max_results: Some(1000),
                ..Default::default()
            };
            let page = self
                .call(SERVICE, op, || async {
                    self.storage()
                        .list_objects(&req)
                        .await
                        .map_err(GcpError::storage(op))
                })
                .await?;
            out.objects.extend(page.items.unwrap_or_default());
            out.prefixes.extend(page.prefixes.unwrap_or_default());
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// A Cloud Storage time as a domain timestamp (microsecond precision), if it is in range.
pub(crate) fn to_timestamp(at: time::OffsetDateTime) -> Option<Timestamp> {
    let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).ok()?;
    Timestamp::from_unix_micros(micros).ok()
}

/// An object's size, which the API sends as a signed number.
pub(crate) fn size_of(object: &Object) -> u64 {
    u64::try_from(object.size).unwrap_or(0)
}
