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

/// The message of `e` and all its causes, joined with `": "`: the one rendering of an error
/// chain that logs, events and CLI messages use (`relay-runtime`, `relay-api` and the
/// adapters call this one function).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    msg
}

#[cfg(test)]
mod error_chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_joined_in_order() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
