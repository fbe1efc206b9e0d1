//! The relay's HTTP surface: `/healthz` and `/metrics` (R11.2). The review API joins it later.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relay_domain::TrailId;
use relay_domain::ports::RecordStore;

use crate::metrics::Metrics;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// The record store whose reachability `/healthz` reports.
    pub store: Arc<dyn RecordStore>,
    /// `local` or `server`.
    pub mode: &'static str,
}

/// The router serving health and metrics.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(state): State<HttpState>) -> Response {
    match state.store.head(&TrailId::relay()).await {
        Ok(head) => axum::Json(serde_json::json!({
            "status": "ok",
            "mode": state.mode,
            "version": crate::VERSION,
            "git_commit": crate::build_info::GIT_COMMIT,
            "build_date": crate::build_info::BUILD_DATE,
            "relay_head_seq": head.map(|h| h.seq.get()),
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: record store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "reason": "record store unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Connections the kernel queues for the listener before it accepts them. The default of
/// std and tokio (128) overflowed under a login flood of 1,000 connections: the SYN of a
/// legitimate client was dropped and retried after 1 s (`relay-bench login-flood`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A TCP listener on `addr` with a [`LISTEN_BACKLOG`]-deep accept queue (capped by the
/// kernel's `net.core.somaxconn`).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's own bind: a restarted relay can take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A bound HTTP listener, ready to serve.
#[derive(Debug)]
pub struct HttpServer {
    listener: tokio::net::TcpListener,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: listen(addr)?,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` resolves, over HTTPS when `tls` is given.
    pub async fn serve(
        self,
        router: Router,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Handlers see the peer address (`ConnectInfo`), for the session audit.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        match tls {
            None => {
                axum::serve(self.listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(acceptor) => {
                // `tap_io` (a no-op here) is what lets axum hand `SocketAddr` to handlers
                // for a listener of ours.
                use axum::serve::ListenerExt;
                axum::serve(
                    crate::tls::TlsListener::new(self.listener, acceptor).tap_io(|_| {}),
                    service,
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
    }
}
