//! Conformance suites every adapter of the relay's ports must pass (R10.2).
//!
//! Like arrow-rs `object_store`'s integration tests, each suite is a plain `async fn` taking the
//! adapter: [`record_store::suite`], [`object_store::suite`], [`secrets::suite`],
//! [`notary::suite`], [`time_source::suite`], [`accounts::suite`], [`forward::suite`], [`changes::suite`], [`receipts::suite`], [`fleet::suite`]. A suite is made of smaller `pub async fn`s whose
//! names state the rule they check, so a failure points at the rule; an adapter's
//! `tests/conformance.rs` calls every suite, and may call single rules while debugging.
//!
//! Suites check what an adapter *claims* in its capabilities instead of skipping: a record store
//! claiming `append_only_enforced` must hand over its [`relay_domain::ports::TamperProbe`] (or say why the
//! claim holds by construction), and the suite tries to break it. Every run uses fresh trail ids,
//! key prefixes and secret names ([`fixtures::unique`]), so suites can run against a shared real
//! service.
//!
//! Suites panic on the first broken rule (they are test code). They need a tokio runtime,
//! multi-threaded for the concurrency checks to mean anything. This crate must not be a
//! dependency of anything but tests.

pub mod accounts;
pub mod changes;
pub mod fixtures;
pub mod fleet;
pub mod forward;
pub mod notary;
pub mod object_store;
pub mod receipts;
pub mod record_store;
pub mod secrets;
pub mod test_ports;
pub mod time_source;

/// What a tamper attempt made through a backend's side door did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperOutcome {
    /// The backend accepted the change: append-only or WORM is not enforced.
    Applied,
    /// The backend refused, with its message (trigger text, SQLSTATE, retention error).
    Refused(String),
}
