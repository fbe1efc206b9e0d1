//! The edge listener's transport posture: HTTPS with `tls_cert`/`tls_key`, plain HTTP on a
//! loopback address, or plain HTTP on a network address only when explicitly allowed.
//!
//! The review API carries passwords and session tokens; served over plain HTTP on a network
//! interface they cross the network readable. The edge therefore refuses to start that way
//! unless `allow_plain_http_on_network = true` says a TLS-terminating proxy or an isolated
//! network stands in, and STARTUP records which posture was chosen.

use std::net::SocketAddr;

use crate::server::TlsFiles;

/// Plain HTTP on a network address without the explicit allowance.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to serve the review API over plain HTTP on the network address {addr}: passwords \
     and session tokens would cross the network readable. Configure tls_cert and tls_key, listen \
     on a loopback address (127.0.0.1), or set allow_plain_http_on_network = true when a TLS \
     proxy or an isolated network protects the traffic"
)]
pub struct PlainHttpRefused {
    /// The configured listener address.
    pub addr: SocketAddr,
}

/// Checks the listener posture; the JSON is the `listener` field of STARTUP.
pub fn listener_posture(
    addr: SocketAddr,
    tls: Option<&TlsFiles>,
    allow_plain_http_on_network: bool,
) -> Result<serde_json::Value, PlainHttpRefused> {
    let loopback = addr.ip().is_loopback();
    let transport = match (tls, loopback) {
        (Some(_), _) => "https",
        (None, true) => "http_loopback",
        (None, false) if allow_plain_http_on_network => "http_on_network_allowed",
        (None, false) => return Err(PlainHttpRefused { addr }),
    };
    if transport == "http_on_network_allowed" {
        tracing::warn!(addr = %addr,
            "the review API is served over PLAIN HTTP on a network address \
             (allow_plain_http_on_network = true): passwords and tokens are readable on the wire \
             unless a TLS proxy or an isolated network protects them");
    }
    Ok(serde_json::json!({
        "addr": addr.to_string(),
        "transport": transport,
        "tls": tls.is_some(),
        "tls_cert": tls.map(|t| t.cert.display().to_string()),
        "loopback": loopback,
        "allow_plain_http_on_network": allow_plain_http_on_network,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_on_a_network_address_unless_allowed() {
        let any: SocketAddr = "0.0.0.0:8470".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8470".parse().unwrap();
        let tls = TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        };
        assert!(listener_posture(any, None, false).is_err());
        assert_eq!(
            listener_posture(any, None, true).unwrap()["transport"],
            "http_on_network_allowed"
        );
        assert_eq!(
            listener_posture(lo, None, false).unwrap()["transport"],
            "http_loopback"
        );
        assert_eq!(
            listener_posture(any, Some(&tls), false).unwrap()["transport"],
            "https"
        );
        assert!(listener_posture("[::]:1".parse().unwrap(), None, false).is_err());
        assert!(listener_posture("[::1]:1".parse().unwrap(), None, false).is_ok());
    }
}
