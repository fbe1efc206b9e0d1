//! Why an NTP check failed.

/// A failed SNTP exchange.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NtpError {
    /// No server was configured.
    #[error("no NTP server configured")]
    NoServers,
    /// The server name did not resolve or the socket failed.
    #[error("NTP server {server}: {source}")]
    Io {
        /// The server.
        server: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("NTP server {server} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The server.
        server: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The answer is not a usable SNTP reply (wrong mode, unsynchronized, kiss-o'-death, bogus
    /// origin timestamp).
    #[error("NTP server {server} sent an unusable reply: {why}")]
    BadReply {
        /// The server.
        server: String,
        /// What was wrong.
        why: String,
    },
    /// Every configured server failed; the last error is kept.
    #[error("no NTP server answered ({tried} tried)")]
    AllFailed {
        /// How many servers were tried.
        tried: usize,
        /// The last failure.
        #[source]
        last: Box<NtpError>,
    },
}
