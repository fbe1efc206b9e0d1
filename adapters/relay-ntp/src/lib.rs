//! An NTP-validated [`TimeSource`](relay_domain::ports::TimeSource) (R9).
//!
//! [`NtpTimeSource`] queries the configured servers with SNTP (RFC 4330) at start-up and then
//! periodically. While the last successful check is fresh, instants are the host clock corrected
//! by the measured offset and labelled `ntp:<offset>us`; when no server answers (or the last
//! check went stale) instants are the plain host clock labelled `system`, and the fallback is
//! logged loudly and visible in [`TimeSource::posture`](relay_domain::ports::TimeSource::posture). It never silently mixes the two.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod error;
mod sntp;
mod source;

pub use config::NtpConfig;
pub use error::NtpError;
pub use sntp::{Sample, query};
pub use source::NtpTimeSource;
