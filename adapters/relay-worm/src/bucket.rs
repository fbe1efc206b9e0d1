//! `LockedBucket`: what the WORM notary needs from a store that locks objects.

use std::fmt;

use async_trait::async_trait;
use relay_domain::ports::{AnchorReceipt, NotaryError, WormPosture};

/// One listed version of an object: its name and whatever the store needs to read exactly
/// that version back and check its lock (a version id, a generation, the listed properties).
#[derive(Debug, Clone)]
pub struct Listed<V> {
    /// The object name.
    pub name: String,
    /// The store's handle on this version.
    pub version: V,
}

/// What a store answers when asked which trails have anchors.
#[derive(Debug, Clone)]
pub enum TrailListing {
    /// A delimited listing: the folder prefixes directly under the anchor prefix
    /// (`<prefix><trail>/`), from every version, not only current objects.
    Folders(Vec<String>),
    /// A flat listing: the name of every object version under the anchor prefix.
    Names(Vec<String>),
}

/// A bucket (or container) that can hold objects nobody can delete or overwrite: the store
/// behind [`WormNotary`](crate::WormNotary). Implementations are thin: one provider call each,
/// bounded by the adapter's timeouts, with the provider's errors mapped to [`NotaryError`].
///
/// Whether the store really locks objects is decided when the adapter opens it; the notary
/// passes that [`WormPosture`] to every call, and an implementation checks locks only when it is
/// `Enforced`.
#[async_trait]
pub trait LockedBucket: Send + Sync + fmt::Debug {
    /// What a version listing returns for each object version. Its `Debug` text identifies the
    /// version (id, generation, etag), so a cached read is reused only for the same version.
    type Version: Send + Sync + fmt::Debug;

    /// A short name for posture events (`s3-object-lock`, ...).
    fn kind(&self) -> &'static str;

    /// Where the object `name` lives, for messages and receipts (`s3://bucket/name`, a blob
    /// URL, `gs://bucket/name`), never with credentials.
    fn location(&self, name: &str) -> String;

    /// An anchor that is not what the notary wrote: `<location>: <why>`.
    fn invalid(&self, name: &str, why: &dyn fmt::Display) -> NotaryError {
        NotaryError::InvalidAnchor(format!("{}: {why}", self.location(name)))
    }

    /// Writes `body` as the new object `name`, under the store's retention when `posture` is
    /// `Enforced`. Must refuse to replace an existing object (`If-None-Match: *`,
    /// `ifGenerationMatch=0`), so an anchor is never overwritten and never exists unprotected.
    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError>;

    /// Every version of every object under `prefix` (a version listing where the store keeps
    /// versions), so a replaced or hidden anchor shows. A trace of tampering the listing itself
    /// reveals (an S3 delete marker) is [`NotaryError::InvalidAnchor`].
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<Self::Version>>, NotaryError>;

    /// Reads one listed version back after checking that it is still what the notary wrote:
    /// the current version, and, when `posture` is `Enforced`, under the store's lock.
    /// `Ok(None)` when the store no longer has it (listed but cannot be read).
    async fn read_version(
        &self,
        name: &str,
        version: &Self::Version,
        posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError>;

    /// The trails under `prefix`, from every version (a trail whose anchors were hidden is
    /// still listed, so reading its anchors then reports the tampering).
    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError>;
}
