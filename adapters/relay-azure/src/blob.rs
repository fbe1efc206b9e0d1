//! One blob container as the adapters use it: an SDK container client on the shared HTTP stack,
//! authenticated by a SAS in the URL or by Entra ID tokens, plus the few calls both the object
//! store and the notary make.

use std::num::NonZero;

use azure_core::http::{RequestContent, Url};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobContainerClientGetPropertiesResultHeaders,
    BlobContainerClientListBlobsOptions, BlobItem, BlockBlobClientUploadOptions,
    ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt;

use crate::error::{AzureError, SetupError};
use crate::http::AzureClients;

/// Objects up to this size are uploaded and downloaded in one request, so a conditional or
/// locked upload is one atomic call (Put Blob accepts up to 5000 MiB).
const SINGLE_SHOT_BYTES: usize = 256 * 1024 * 1024;

/// A container reached through the shared clients.
#[derive(Clone)]
pub(crate) struct Container {
    pub(crate) clients: AzureClients,
    pub(crate) client: std::sync::Arc<BlobContainerClient>,
    /// The container URL without credentials, for receipts and messages.
    pub(crate) display: String,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// What `get_properties` of a container tells the notary.
pub(crate) struct ContainerProperties {
    /// `x-ms-immutable-storage-with-versioning-enabled: true`.
    pub(crate) version_level_worm: bool,
}

impl Container {
    /// The container `name` of the account at `endpoint`, with the SAS when one is configured
    /// (which also allows plain http, as Azurite needs) or Entra ID tokens otherwise (https
    /// only: the SDK refuses to send a token in the clear).
    pub(crate) fn new(
        clients: &AzureClients,
        endpoint: &str,
        sas: Option<&str>,
        name: &str,
    ) -> Result<Self, SetupError> {
        let bad = |why: String| SetupError::message(format!("blob endpoint {endpoint:?}: {why}"));
        let mut url = Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
        if url.query().is_some() {
            return Err(bad(
                "must not carry a query; configure the SAS separately".into()
            ));
        }
        url.path_segments_mut()
            .map_err(|()| bad("is not a base URL".into()))?
            .pop_if_empty()
            .push(name);
        let display = url.to_string();
        let options = BlobContainerClientOptions {
            client_options: clients.client_options(),
            ..Default::default()
        };
        let client = match sas {
            Some(sas) => {
                url.set_query(Some(sas.trim_start_matches('?')));
                BlobContainerClient::new(url, None, Some(options))
            }
            None => BlobContainerClient::new(url, Some(clients.credential()), Some(options)),
        }
        .map_err(|e| SetupError::new(&format!("use the container {display}"), e))?;
        Ok(Self {
            clients: clients.clone(),
            client: std::sync::Arc::new(client),
            display,
        })
    }

    /// A client of the blob `name`.
    pub(crate) fn blob(&self, name: &str) -> BlobClient {
        self.client.blob_client(name)
    }

    /// Where blob `name` is, without credentials.
    pub(crate) fn blob_url(&self, name: &str) -> String {
        format!("{}/{name}", self.display)
    }

    /// Checks the container exists and reads what the notary needs to know about it.
    pub(crate) async fn properties(&self) -> Result<ContainerProperties, AzureError> {
        let rsp = self
            .clients
            .call(
                "read the container's properties",
                self.client.get_properties(None),
            )
            .await?;
        let version_level_worm = rsp
            .is_immutable_storage_with_versioning_enabled()
            .map_err(AzureError::op("read the container's immutability header"))?
            .unwrap_or(false);
        Ok(ContainerProperties { version_level_worm })
    }

    /// Uploads `bytes` as blob `name` in one request, with `options` (conditions, immutability
    /// policy).
    pub(crate) async fn upload(
        &self,
        op: &'static str,
        name: &str,
        bytes: Vec<u8>,
        mut options: BlockBlobClientUploadOptions<'_>,
    ) -> Result<Option<String>, AzureError> {
        options.partition_size = NonZero::new(SINGLE_SHOT_BYTES as u64);
        options.parallel = NonZero::new(1);
        let blob = self.blob(name).block_blob_client();
        let rsp = self
            .clients
            .call(op, blob.upload(RequestContent::from(bytes), Some(options)))
            .await?;
        Ok(rsp.version_id)
    }

    /// Reads the whole blob `name` (a specific version when given).
    pub(crate) async fn download(
        &self,
        op: &'static str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, AzureError> {
        let blob = match version {
            Some(v) => self
                .blob(name)
                .with_version(v)
                .map_err(AzureError::op(op))?,
            None => self.blob(name),
        };
        let options = BlobClientDownloadOptions {
            parallel: NonZero::new(1),
            partition_size: NonZero::new(SINGLE_SHOT_BYTES),
            ..Default::default()
        };
        self.clients
            .call(op, async {
                let rsp = blob.download(Some(options)).await?;
                rsp.body.collect().await
            })
            .await
            .map(|bytes| bytes.to_vec())
    }

    /// Every blob whose name starts with `prefix`, all pages; versions and immutability
    /// policies too when asked.
    pub(crate) async fn list(
        &self,
        op: &'static str,
        prefix: &str,
        include: Vec<ListBlobsIncludeItem>,
    ) -> Result<Vec<BlobItem>, AzureError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            include: (!include.is_empty()).then_some(include),
            ..Default::default()
        };
        let pager = self
            .client
            .list_blobs(Some(options))
            .map_err(AzureError::op(op))?;
        self.clients.call(op, pager.try_collect::<Vec<_>>()).await
    }
}
