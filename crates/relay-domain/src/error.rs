//! What every port error shares: whether retrying can help.

/// Whether an operation that failed may succeed if tried again (opendal's `ErrorStatus`).
///
/// The forwarder and the notary scheduler decide on this, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// Trying again will fail the same way (bad input, conflict, permission, corruption).
    Permanent,
    /// The service may recover (unavailable, timeout, lock contention); retry with backoff.
    Temporary,
}

impl ErrorStatus {
    /// Whether a retry may help.
    pub fn is_temporary(self) -> bool {
        self == ErrorStatus::Temporary
    }
}

/// A boxed error from a provider, kept as the `source` of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
