//! `ObjectStore`: blobs addressed by validated keys (evidence, export packages).

use std::fmt;

use async_trait::async_trait;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ports::notary::WormPosture;

/// The longest object key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a string is not a safe object key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ObjectKeyError {
    /// The key is empty.
    #[error("object key must not be empty")]
    Empty,
    /// The key is too long.
    #[error("object key is {0} bytes; at most {MAX_KEY_BYTES} are allowed")]
    TooLong(usize),
    /// The key would escape its namespace or is ambiguous on some filesystem.
    #[error("object key {key:?} is refused: {why}")]
    Unsafe {
        /// The refused key (truncated).
        key: String,
        /// Why.
        why: &'static str,
    },
}

/// A `/`-separated object key that cannot address anything outside its store.
///
/// Refused: leading `/`, empty segments, `.` and `..` segments, backslashes, control
/// characters, drive prefixes like `C:`, and keys over [`MAX_KEY_BYTES`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates a key.
    pub fn new(key: impl Into<String>) -> Result<Self, ObjectKeyError> {
        let key = key.into();
        let unsafe_key = |why| ObjectKeyError::Unsafe {
            key: key.chars().take(80).collect(),
            why,
        };
        if key.is_empty() {
            return Err(ObjectKeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(ObjectKeyError::TooLong(key.len()));
        }
        if key.chars().any(char::is_control) {
            return Err(unsafe_key("control character"));
        }
        if key.contains('\\') {
            return Err(unsafe_key("backslash"));
        }
        if key.starts_with('/') {
            return Err(unsafe_key("absolute path"));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(unsafe_key("empty path segment")),
                "." | ".." => return Err(unsafe_key("relative path segment")),
                s if s.len() >= 2 && s.as_bytes()[1] == b':' => {
                    return Err(unsafe_key("drive prefix"));
                }
                _ => {}
            }
        }
        Ok(Self(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({:?})", self.0)
    }
}

/// How `put` treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with [`ObjectStoreError::AlreadyExists`] if the key exists.
    Create,
}

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
}

/// What an object store can do, checked by the conformance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectStoreCapabilities {
    /// `PutMode::Create` is atomic (no race between check and write).
    pub conditional_put: bool,
    /// Whether stored objects are protected against deletion and overwrite.
    pub worm: WormPosture,
}

impl ObjectStoreCapabilities {
    /// Capabilities with the given flags.
    pub fn new(conditional_put: bool, worm: WormPosture) -> Self {
        Self {
            conditional_put,
            worm,
        }
    }
}

/// Why an object store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObjectStoreError {
    /// No object at this key.
    #[error("object {key} not found")]
    NotFound {
        /// The key.
        key: ObjectKey,
    },
    /// `PutMode::Create` met an existing object.
    #[error("object {key} already exists")]
    AlreadyExists {
        /// The key.
        key: ObjectKey,
    },
    /// The store refused on permission or retention grounds (e.g. a WORM-locked object).
    #[error("permission denied for object {key}: {message}")]
    PermissionDenied {
        /// The key.
        key: ObjectKey,
        /// Why.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store cannot be reached; retry later.
    #[error("object store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other provider failure.
    #[error("object store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl ObjectStoreError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            ObjectStoreError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Blob storage with safe keys.
///
/// # Contract
/// - `put` is atomic: a reader sees the old object or the whole new one, never a part.
/// - `put` with [`PutMode::Create`] fails with `AlreadyExists` if the key exists.
/// - `get`, `head` and `delete` of a missing key fail with `NotFound`.
/// - `list` returns every object whose key starts with `prefix` (all when `None`), sorted by key.
/// - A store whose capabilities claim WORM refuses `delete` and overwrite of stored objects with
///   `PermissionDenied`.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// What the store can do.
    fn capabilities(&self) -> ObjectStoreCapabilities;
    /// Stores `bytes` at `key`.
    async fn put(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<ObjectMeta, ObjectStoreError>;
    /// Reads the whole object.
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, ObjectStoreError>;
    /// Reads the object's metadata.
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, ObjectStoreError>;
    /// Deletes the object.
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError>;
    /// Lists objects under a prefix.
    async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectMeta>, ObjectStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_ambiguous_keys() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "C:/x",
            "a\u{0}b",
            "x/",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ObjectKey::new("a".repeat(MAX_KEY_BYTES + 1)).is_err());
        for good in [
            "a",
            "anchors/nmr-01/0000000001.json",
            "exports/2026/x..y.json",
            "ü/測",
        ] {
            assert!(ObjectKey::new(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
