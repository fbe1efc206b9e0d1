//! `AzureBlobObjectStore`: objects as block blobs in one container (evidence, export packages).

use async_trait::async_trait;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlockBlobClientUploadOptions,
};
use relay_domain::ports::{
    ObjectKey, ObjectMeta, ObjectStore, ObjectStoreCapabilities, ObjectStoreError, PutMode,
    WormPosture,
};

use crate::blob::Container;
use relay_domain::ports::ProviderFailure;

use crate::error::{AzureError, Meaning, SetupError};
use crate::http::AzureClients;

/// An object store on a blob container: key `a/b` is the block blob `<prefix>a/b`.
///
/// - **Atomic puts**: an object is one Put Blob request; Azure makes a blob visible only when
///   the upload completed.
/// - **`PutMode::Create` is atomic** (`conditional_put`): the upload carries `If-None-Match: *`,
///   so the service itself refuses it when the blob exists (409 `BlobAlreadyExists`).
/// - **Not WORM**: `delete` and overwrite work (on an account with versioning, previous
///   versions are kept by Azure). Anchors, which must be immutable, go to the
///   [`AzureBlobNotary`](crate::AzureBlobNotary).
#[derive(Debug, Clone)]
pub struct AzureBlobObjectStore {
    container: Container,
    prefix: String,
}

impl AzureBlobObjectStore {
    /// Opens the store on the configured object container and checks it can be reached.
    pub async fn open(clients: &AzureClients) -> Result<Self, ObjectStoreError> {
        let setup = |message: String| ObjectStoreError::Other {
            message,
            source: None,
        };
        let Some(blob) = &clients.config().blob else {
            return Err(setup(
                "no blob storage is configured (blob endpoint)".into(),
            ));
        };
        let Some(name) = &blob.object_container else {
            return Err(setup("no object container is configured".into()));
        };
        let container = Container::new(clients, &blob.endpoint, blob.sas.as_deref(), name)
            .map_err(setup_error)?;
        container
            .properties()
            .await
            .map_err(|e| match e.meaning() {
                Meaning::NotFound => setup(format!(
                    "the object container {} does not exist; create it first",
                    container.display
                )),
                _ => e.into(),
            })?;
        Ok(Self {
            container,
            prefix: blob.object_prefix.clone(),
        })
    }

    /// The container URL (without credentials).
    pub fn container_url(&self) -> &str {
        &self.container.display
    }

    /// The blob name of an object key.
    pub fn blob_name(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    fn fault(&self, key: &ObjectKey, e: AzureError) -> ObjectStoreError {
        ProviderFailure::from(e).on_object(key)
    }
}

fn setup_error(e: SetupError) -> ObjectStoreError {
    ObjectStoreError::Other {
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl ObjectStore for AzureBlobObjectStore {
    fn capabilities(&self) -> ObjectStoreCapabilities {
        ObjectStoreCapabilities::new(true, WormPosture::Unenforced)
    }

    async fn put(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<ObjectMeta, ObjectStoreError> {
        let size = bytes.len() as u64;
        let mut options = BlockBlobClientUploadOptions::default();
        if mode == PutMode::Create {
            options = options.if_not_exists();
        }
        match self
            .container
            .upload("put object", &self.blob_name(key), bytes, options)
            .await
        {
            Ok(_) => Ok(ObjectMeta {
                key: key.clone(),
                size,
            }),
            Err(e) if e.meaning() == Meaning::Precondition && mode == PutMode::Create => {
                Err(ObjectStoreError::AlreadyExists { key: key.clone() })
            }
            Err(e) => Err(self.fault(key, e)),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, ObjectStoreError> {
        self.container
            .download("get object", &self.blob_name(key), None)
            .await
            .map_err(|e| self.fault(key, e))
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, ObjectStoreError> {
        let blob = self.container.blob(&self.blob_name(key));
        let rsp = self
            .container
            .clients
            .call("head object", blob.get_properties(None))
            .await
            .map_err(|e| self.fault(key, e))?;
        let size = rsp
            .content_length()
            .map_err(|e| self.fault(key, AzureError::op("read the object's size")(e)))?
            .unwrap_or(0);
        Ok(ObjectMeta {
            key: key.clone(),
            size,
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        let blob = self.container.blob(&self.blob_name(key));
        self.container
            .clients
            .call("delete object", blob.delete(None))
            .await
            .map_err(|e| self.fault(key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let full_prefix = format!("{}{}", self.prefix, prefix.unwrap_or(""));
        let items = self
            .container
            .list("list objects", &full_prefix, Vec::new())
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(name) = item.name.as_deref() else {
                continue;
            };
            let Some(rest) = name.strip_prefix(&self.prefix) else {
                continue;
            };
            let Ok(key) = ObjectKey::new(rest) else {
                tracing::warn!(container = %self.container.display, blob = %name,
                    "skipping a blob whose name is not a valid object key");
                continue;
            };
            let size = item
                .properties
                .as_ref()
                .and_then(|p| p.content_length)
                .unwrap_or(0);
            out.push(ObjectMeta { key, size });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
