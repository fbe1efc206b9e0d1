//! `GcsObjectStore`: objects in a Cloud Storage bucket (evidence, export packages).

use async_trait::async_trait;
use relay_domain::ports::{
    ObjectKey, ObjectMeta, ObjectStore, ObjectStoreCapabilities, ObjectStoreError, PutMode,
    WormPosture,
};

use crate::client::GcpClient;
use crate::config::GcsObjectStoreOptions;
use relay_domain::ports::ProviderFailure;

use crate::error::{GcpError, Meaning};
use crate::storage::{Retention, size_of};

/// An object store on a Cloud Storage bucket: key `a/b` is the object `<prefix>a/b`.
///
/// - **Atomic puts**: Cloud Storage makes an object visible only when its upload completed.
/// - **`PutMode::Create` is atomic** (`conditional_put`) where the service enforces
///   preconditions: the upload carries `ifGenerationMatch=0`, so the service itself refuses it
///   when the key exists (HTTP 412). [`GcsObjectStore::open`] *checks* that the endpoint
///   enforces preconditions (an upload with an impossible precondition must be refused, which
///   writes nothing on Cloud Storage); an endpoint that ignores them (the storage emulator)
///   is reported with `conditional_put: false`, and `Create` then checks for the object first
///   (not atomic), with a warning.
/// - **WORM when the bucket's retention policy is locked**: Cloud Storage then refuses to
///   delete or replace an object younger than the period (HTTP 403 `retentionPolicyNotMet`),
///   mapped to `PermissionDenied`. Any other bucket is `Unenforced`.
#[derive(Debug, Clone)]
pub struct GcsObjectStore {
    client: GcpClient,
    bucket: String,
    prefix: String,
    worm: WormPosture,
    conditional_put: bool,
}

impl GcsObjectStore {
    /// Opens the store: reads the bucket's metadata (it must exist and be readable with these
    /// credentials) and checks that the endpoint enforces upload preconditions.
    pub async fn open(
        client: &GcpClient,
        options: GcsObjectStoreOptions,
    ) -> Result<Self, ObjectStoreError> {
        let bucket = client
            .get_bucket(&options.bucket)
            .await
            .map_err(|e| bucket_error(&options.bucket, e))?;
        let worm = match Retention::of(&bucket) {
            Some(r) if r.locked && r.period_secs > 0 => WormPosture::Enforced,
            _ => WormPosture::Unenforced,
        };
        let mut store = Self {
            client: client.clone(),
            bucket: options.bucket,
            prefix: options.prefix,
            worm,
            conditional_put: true,
        };
        store.conditional_put = store.preconditions_enforced().await?;
        if !store.conditional_put {
            tracing::warn!(
                bucket = %store.bucket,
                endpoint = %client.connection().storage_endpoint,
                "the storage endpoint ignores upload preconditions (an emulator?): PutMode::Create \
                 checks for the object first and is NOT atomic against concurrent writers"
            );
        }
        Ok(store)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The Cloud Storage object name of an object key.
    pub fn object_name(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Uploads to a fresh name with `ifGenerationMatch=1`, which no new object can satisfy:
    /// Cloud Storage refuses it (412) and stores nothing. An endpoint that stores it ignores
    /// preconditions; the probe object is then removed again.
    async fn preconditions_enforced(&self) -> Result<bool, ObjectStoreError> {
        let nonce: u64 = rand::random();
        let probe = format!("{}.relay-precondition-probe-{nonce:016x}", self.prefix);
        let op = "probe upload preconditions";
        match self
            .client
            .upload(op, &self.bucket, &probe, Vec::new(), "text/plain", Some(1))
            .await
            .0
        {
            // Refused as it must be: 412, or 404 from a service that reports the missing
            // generation as such (the bucket itself was read a moment ago). Nothing was written.
            Err(e) if matches!(e.meaning(), Meaning::Precondition | Meaning::NotFound) => Ok(true),
            Err(e) => Err(e.into()),
            Ok(_) => {
                self.client
                    .delete("remove the precondition probe", &self.bucket, &probe, None)
                    .await
                    .0?;
                Ok(false)
            }
        }
    }

    fn fault(&self, key: &ObjectKey, e: GcpError) -> ObjectStoreError {
        ProviderFailure::from(e).on_object(key)
    }
}

/// A failure to read the bucket at start-up, with a message that says which bucket.
fn bucket_error(bucket: &str, e: GcpError) -> ObjectStoreError {
    match e.meaning() {
        Meaning::NotFound => ObjectStoreError::Other {
            message: format!("bucket {bucket} does not exist"),
            source: Some(Box::new(e)),
        },
        Meaning::Denied => ObjectStoreError::Other {
            message: format!(
                "cannot read bucket {bucket}'s metadata (the relay's identity needs \
                 storage.buckets.get)"
            ),
            source: Some(Box::new(e)),
        },
        _ => e.into(),
    }
}

#[async_trait]
impl ObjectStore for GcsObjectStore {
    fn capabilities(&self) -> ObjectStoreCapabilities {
        ObjectStoreCapabilities::new(self.conditional_put, self.worm)
    }

    async fn put(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<ObjectMeta, ObjectStoreError> {
        let name = self.object_name(key);
        let size = bytes.len() as u64;
        if mode == PutMode::Create && !self.conditional_put {
            match self
                .client
                .object_metadata("head object", &self.bucket, &name)
                .await
            {
                Ok(_) => return Err(ObjectStoreError::AlreadyExists { key: key.clone() }),
                Err(e) if e.meaning() == Meaning::NotFound => {}
                Err(e) => return Err(self.fault(key, e)),
            }
        }
        let precondition = (mode == PutMode::Create).then_some(0);
        let expected = (mode == PutMode::Create).then(|| bytes.clone());
        let (result, attempts) = self
            .client
            .upload(
                "put object",
                &self.bucket,
                &name,
                bytes,
                "application/octet-stream",
                precondition,
            )
            .await;
        match result {
            Ok(_) => Ok(ObjectMeta {
                key: key.clone(),
                size,
            }),
            Err(e) if e.meaning() == Meaning::Precondition => {
                // A retried create may meet the object its own earlier attempt stored (the
                // answer was lost): the same bytes mean the create succeeded.
                if attempts > 1
                    && let Some(expected) = expected
                    && self
                        .client
                        .download("read back a retried create", &self.bucket, &name, None)
                        .await
                        .is_ok_and(|stored| stored == expected)
                {
                    return Ok(ObjectMeta {
                        key: key.clone(),
                        size,
                    });
                }
                Err(ObjectStoreError::AlreadyExists { key: key.clone() })
            }
            Err(e) => Err(self.fault(key, e)),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, ObjectStoreError> {
        self.client
            .download("get object", &self.bucket, &self.object_name(key), None)
            .await
            .map_err(|e| self.fault(key, e))
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, ObjectStoreError> {
        let object = self
            .client
            .object_metadata("head object", &self.bucket, &self.object_name(key))
            .await
            .map_err(|e| self.fault(key, e))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: size_of(&object),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        let (result, attempts) = self
            .client
            .delete("delete object", &self.bucket, &self.object_name(key), None)
            .await;
        match result {
            // A retried delete may find the object its own earlier attempt removed.
            Err(e) if e.meaning() == Meaning::NotFound && attempts > 1 => Ok(()),
            Err(e) => Err(self.fault(key, e)),
            Ok(()) => Ok(()),
        }
    }

    async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let full_prefix = format!("{}{}", self.prefix, prefix.unwrap_or(""));
        let listing = self
            .client
            .list_all("list objects", &self.bucket, &full_prefix, None)
            .await?;
        let mut out = Vec::with_capacity(listing.objects.len());
        for object in &listing.objects {
            let Some(rest) = object.name.strip_prefix(&self.prefix) else {
                continue;
            };
            let Ok(key) = ObjectKey::new(rest) else {
                tracing::warn!(bucket = %self.bucket, object = %object.name,
                    "skipping an object whose name is not a valid object key");
                continue;
            };
            out.push(ObjectMeta {
                key,
                size: size_of(object),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
