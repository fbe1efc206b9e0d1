//! What a provider failure means to a caller of a port, and the port error it becomes.
//!
//! Every adapter classifies its provider's failures (SQLSTATEs, HTTP statuses, S3, Azure and
//! Google error codes, OS errors) into a [`Meaning`]; [`ProviderFailure`] then turns that into
//! the port's error the same way for every adapter, so callers match variants and
//! [`ErrorStatus`](crate::ErrorStatus), never message text.

use crate::error::BoxError;
use crate::ids::KeyId;
use crate::ports::{
    AccountStoreError, ChangeStoreError, ForwardCursorError, NotaryError, ObjectKey,
    ObjectStoreError, ReceiptError, RecordStoreError, SecretError, SecretName,
};

/// What a provider failure means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Retrying may help (connection lost, timeout, lock contention, throttling, 5xx).
    Temporary,
    /// Refused on permission, authentication or retention grounds.
    Denied,
    /// The object, bucket, container, secret or version does not exist.
    NotFound,
    /// A conditional request failed (`If-None-Match: *` or `ifGenerationMatch=0` met an
    /// existing object).
    Precondition,
    /// The resource a create names already exists (a secret).
    Exists,
    /// Anything else; permanent.
    Other,
}

/// A provider failure with its [`Meaning`], ready to become a port's error.
///
/// `Temporary` becomes the port's `Unavailable` and `Denied` its `PermissionDenied` where that
/// variant needs nothing more (notary, record store); anything else becomes `Other`. Errors that
/// name an object or a secret are built by [`on_object`](Self::on_object) and
/// [`on_secret`](Self::on_secret), where the name is known.
#[derive(Debug)]
pub struct ProviderFailure {
    /// What the failure means.
    pub meaning: Meaning,
    /// What failed, for the port error's message.
    pub message: String,
    /// The provider's error.
    pub source: Option<BoxError>,
}

impl ProviderFailure {
    /// A failure with an explicit message and source.
    pub fn new(meaning: Meaning, message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            meaning,
            message: message.into(),
            source,
        }
    }

    /// The adapter's own `error`, whose text is the message and which is kept as the source.
    pub fn of(meaning: Meaning, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            meaning,
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// The object store error for a failure on `key`: `NotFound` and `PermissionDenied` name
    /// the key; the rest as [`ObjectStoreError::from`].
    pub fn on_object(self, key: &ObjectKey) -> ObjectStoreError {
        match self.meaning {
            Meaning::NotFound => ObjectStoreError::NotFound { key: key.clone() },
            Meaning::Denied => ObjectStoreError::PermissionDenied {
                key: key.clone(),
                message: self.message,
                source: self.source,
            },
            _ => self.into(),
        }
    }

    /// The secret error for a failure on `name` (at `version`, when one was asked for):
    /// `NotFound` and `PermissionDenied` name the secret; the rest as [`SecretError::from`].
    pub fn on_secret(self, name: &SecretName, version: Option<&KeyId>) -> SecretError {
        match self.meaning {
            Meaning::NotFound => SecretError::NotFound {
                name: name.clone(),
                version: version.cloned(),
            },
            Meaning::Denied => SecretError::PermissionDenied {
                name: name.clone(),
                message: self.message,
                source: self.source,
            },
            _ => self.into(),
        }
    }
}

/// An adapter's own error that knows what it means to a caller. Every port error converts from
/// it (`?` works in any port method), through [`ProviderFailure`].
pub trait Classified: std::error::Error + Send + Sync + Sized + 'static {
    /// What the failure means to a caller.
    fn meaning(&self) -> Meaning;

    /// The failure as a port error carries it: by default this error's text as the message and
    /// the error itself as the source.
    fn into_failure(self) -> ProviderFailure {
        ProviderFailure::of(self.meaning(), self)
    }
}

impl<E: Classified> From<E> for ProviderFailure {
    fn from(e: E) -> Self {
        e.into_failure()
    }
}

impl<E: Classified> From<E> for NotaryError {
    fn from(e: E) -> Self {
        e.into_failure().into()
    }
}

impl<E: Classified> From<E> for RecordStoreError {
    fn from(e: E) -> Self {
        e.into_failure().into()
    }
}

impl From<ProviderFailure> for NotaryError {
    fn from(f: ProviderFailure) -> Self {
        let ProviderFailure {
            meaning,
            message,
            source,
        } = f;
        match meaning {
            Meaning::Temporary => NotaryError::Unavailable { message, source },
            Meaning::Denied => NotaryError::PermissionDenied { message, source },
            _ => NotaryError::Other { message, source },
        }
    }
}

impl From<ProviderFailure> for RecordStoreError {
    fn from(f: ProviderFailure) -> Self {
        let ProviderFailure {
            meaning,
            message,
            source,
        } = f;
        match meaning {
            Meaning::Temporary => RecordStoreError::Unavailable { message, source },
            Meaning::Denied => RecordStoreError::PermissionDenied { message, source },
            _ => RecordStoreError::Other { message, source },
        }
    }
}

/// `From<ProviderFailure>` for ports whose only provider-failure variants are `Unavailable`
/// (for `Temporary`) and `Other` (for anything else): their other variants name what failed
/// (a key, a secret, an account) and are built where that is known, e.g. by
/// [`ProviderFailure::on_object`] and [`ProviderFailure::on_secret`].
macro_rules! unavailable_or_other {
    ($($port:ident),+ $(,)?) => {$(
        impl<E: Classified> From<E> for $port {
            fn from(e: E) -> Self {
                e.into_failure().into()
            }
        }

        impl From<ProviderFailure> for $port {
            fn from(f: ProviderFailure) -> Self {
                let ProviderFailure {
                    meaning,
                    message,
                    source,
                } = f;
                match meaning {
                    Meaning::Temporary => $port::Unavailable { message, source },
                    _ => $port::Other { message, source },
                }
            }
        }
    )+};
}

unavailable_or_other!(
    ObjectStoreError,
    SecretError,
    ChangeStoreError,
    ReceiptError,
    AccountStoreError,
    ForwardCursorError,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorStatus;

    fn failure(meaning: Meaning) -> ProviderFailure {
        ProviderFailure::of(
            meaning,
            std::io::Error::other("s3: put anchor failed (HTTP 503)"),
        )
    }

    #[test]
    fn only_temporary_failures_are_retried() {
        for meaning in [
            Meaning::Temporary,
            Meaning::Denied,
            Meaning::NotFound,
            Meaning::Precondition,
            Meaning::Exists,
            Meaning::Other,
        ] {
            let expected = if meaning == Meaning::Temporary {
                ErrorStatus::Temporary
            } else {
                ErrorStatus::Permanent
            };
            assert_eq!(NotaryError::from(failure(meaning)).status(), expected);
            assert_eq!(RecordStoreError::from(failure(meaning)).status(), expected);
            assert_eq!(ObjectStoreError::from(failure(meaning)).status(), expected);
            assert_eq!(SecretError::from(failure(meaning)).status(), expected);
        }
    }

    #[test]
    fn each_port_keeps_the_variant_callers_match() {
        let e = NotaryError::from(failure(Meaning::Denied));
        assert!(
            matches!(&e, NotaryError::PermissionDenied { message, source: Some(_) }
            if message == "s3: put anchor failed (HTTP 503)"),
            "{e:?}"
        );
        assert!(matches!(
            RecordStoreError::from(failure(Meaning::Denied)),
            RecordStoreError::PermissionDenied { .. }
        ));
        assert!(matches!(
            ObjectStoreError::from(failure(Meaning::Denied)),
            ObjectStoreError::Other { .. }
        ));
        assert!(matches!(
            SecretError::from(failure(Meaning::NotFound)),
            SecretError::Other { .. }
        ));

        let key = ObjectKey::new("exports/a.zip").unwrap();
        assert!(matches!(
            failure(Meaning::NotFound).on_object(&key),
            ObjectStoreError::NotFound { key: k } if k == key
        ));
        assert!(matches!(
            failure(Meaning::Denied).on_object(&key),
            ObjectStoreError::PermissionDenied { .. }
        ));
        assert!(matches!(
            failure(Meaning::Temporary).on_object(&key),
            ObjectStoreError::Unavailable { .. }
        ));

        let name = SecretName::new("trail-hmac").unwrap();
        let version = KeyId::new("3").unwrap();
        assert!(matches!(
            failure(Meaning::NotFound).on_secret(&name, Some(&version)),
            SecretError::NotFound { version: Some(v), .. } if v == version
        ));
        assert!(matches!(
            failure(Meaning::Denied).on_secret(&name, None),
            SecretError::PermissionDenied { .. }
        ));
        assert!(matches!(
            failure(Meaning::Exists).on_secret(&name, None),
            SecretError::Other { .. }
        ));
    }
}
