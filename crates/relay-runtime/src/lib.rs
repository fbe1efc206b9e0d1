//! The relay's application layer: what the `relay-edge` (and later `relay-server`) binaries run.
//!
//! It wires adapters into the domain's services on a tokio runtime, writes the relay's own
//! events to the reserved `_relay` trail ([`journal`]), counts failures for Prometheus
//! ([`metrics`]), serves HTTP ([`http`]) and runs the edge's capture loop ([`edge`]).
//!
//! It holds no provider code (that lives in `adapters/`) and no chain rules (those live in
//! `relay-domain`); it reads no configuration files or environment (only binaries do).

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod account_rows;
pub mod append_only;
pub mod build_info;
pub mod clock_watch;
pub mod config_guard;
pub mod custody;
pub mod edge;
pub mod enrollment;
pub mod export;
pub mod fleet_admin;
pub mod fleet_metrics;
mod forward_ahead;
pub mod forward_outage;
pub mod forward_resume;
pub mod forwarder;
pub mod http;
pub mod journal;
pub mod keys;
pub mod listen;
pub mod log_format;
pub mod metrics;
pub mod notary_scheduler;
pub mod run_history;
mod running;
pub mod server;
pub mod tls;
pub mod traceability;
pub mod verify;
pub mod witness;

/// The relay's version, written into posture events and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
