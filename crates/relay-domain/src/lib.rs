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
//!
//! # Embedding
//!
//! An integrator needs four things: an [`AppendService`] over a [`ports::RecordStore`] and a
//! [`ports::TimeSource`], a [`TrailKey`] (from a [`ports::SecretProvider`]), and the
//! [`ChainVerifier`] (or [`verify::verify_stored_trail`]) to check a trail. The [`memory`]
//! module has a real in-memory implementation of every port for tests and examples; swap in an
//! adapter crate for durability. See `docs/embedding.md`.
//!
//! ```
//! use std::sync::Arc;
//! use relay_domain::memory::{InMemoryRecordStore, ManualClock};
//! use relay_domain::verify::verify_stored_trail;
//! use relay_domain::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = TrailKey::new(KeyId::new("k-doc")?, &[7u8; 32])?;
//! let store = Arc::new(InMemoryRecordStore::new());
//! let clock = Arc::new(ManualClock::new(Timestamp::parse_canonical("2026-01-01T00:00:00.000000Z")?));
//! let service = AppendService::new(store.clone(), clock, key.clone());
//! let trail = TrailId::new("lims")?;
//! futures::executor::block_on(async {
//!     let record = service
//!         .append(EventDraft {
//!             trail_id: trail.clone(),
//!             kind: EventKind::new("SAMPLE_REGISTERED")?,
//!             actor: Some(Actor::new("lims-service")?),
//!             actor_source: ActorSource::Service,
//!             occurred_at: None,
//!             device: Device::new("lims-01")?,
//!             project: None,
//!             subject: Some(Subject::new("S-001")?),
//!             payload: Payload::from_value(&serde_json::json!({"sample": "S-001"}))?,
//!         })
//!         .await?;
//!     assert_eq!(record.chain_seq.get(), 1);
//!     let verdict = verify_stored_trail(store.as_ref(), &KeyRing::single(key), &trail, &[], |_| {}).await?;
//!     assert_eq!(verdict?.records, 1);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access_review;
pub mod anchor_history;
pub mod append;
pub mod canonical;
pub mod canonical_check;
pub mod chain;
pub mod checkpoint;
pub mod columns;
pub mod error;
pub mod export;
pub mod ids;
pub mod keys;
pub mod memory;
pub mod merkle;
pub mod ports;
pub mod record;
mod serde_str;
pub mod timestamp;
pub mod verify;
pub mod workflow;

pub use append::{AppendError, AppendService, EventDraft};
pub use chain::{GENESIS, checksum_of};
pub use error::{ErrorStatus, error_chain};
pub use ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, IdError, KeyId, Project, Subject,
    TrailId,
};
pub use keys::{KeyRing, TrailKey};
pub use record::{Payload, Record};
pub use timestamp::{TimeLabel, Timestamp};
pub use verify::{ChainVerifier, VerifyFailure, VerifyFailureReason, VerifySummary};
