//! Who is on the other end of a request, for the session audit (issue 18): the peer address the
//! listener saw (never a header a client can set) and the `User-Agent` it sent, bounded.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, header};

/// Longest `User-Agent` recorded.
const MAX_USER_AGENT: usize = 200;

/// The client of a request as recorded in session events.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    /// The peer address, when the listener provides it (`ConnectInfo`); absent in-process.
    pub(crate) address: Option<String>,
    /// The peer address as an address, for the per-client login limit.
    pub(crate) ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to [`MAX_USER_AGENT`] characters.
    pub(crate) user_agent: Option<String>,
}

impl ClientInfo {
    /// The members of a session event payload.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({"client": self.address, "user_agent": self.user_agent})
    }
}

impl ClientInfo {
    /// The client of a request with `headers` and `extensions`.
    pub(crate) fn of(headers: &HeaderMap, extensions: &Extensions) -> Self {
        let ip = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let address = ip.map(|ip| ip.to_string());
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT).collect());
        Self {
            address,
            ip,
            user_agent,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers, &parts.extensions))
    }
}
