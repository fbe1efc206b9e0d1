//! The pure domain core of the GIMS Compliance Relay.
//!
//! This crate defines what a trail record is, how it is encoded canonically and chained with
//! HMAC-SHA256 ([`chain`]), how a trail is verified ([`verify`]), the five ports through which the
//! relay reaches the outside world ([`ports`]), and the append service that serializes writes to a
//! trail ([`append`]).
//!
//! **It does no I/O**: no tokio runtime, no database driver, no filesystem, no clock, no
//! randomness. Time and randomness arrive through ports or arguments, so every rule here is
//! testable with plain values, and an integrator can embed the crate in any runtime.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod append;
pub mod canonical;
pub mod chain;
pub mod error;
pub mod export;
pub mod ids;
pub mod keys;
pub mod memory;
pub mod merkle;
pub mod ports;
pub mod record;
pub mod timestamp;
pub mod verify;

pub use append::{AppendError, AppendService, EventDraft};
pub use chain::{GENESIS, checksum_of};
pub use error::ErrorStatus;
pub use ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, IdError, KeyId, Project, Subject,
    TrailId,
};
pub use keys::{KeyRing, TrailKey};
pub use record::{Payload, Record};
pub use timestamp::{TimeLabel, Timestamp};
pub use verify::{ChainVerifier, VerifyFailure, VerifyFailureReason, VerifySummary};
