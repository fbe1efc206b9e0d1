//! The integrator-facing public API of `relay-domain`, pinned: every item an embedder relies on
//! is named here with its signature (function-pointer coercions, trait-object and type
//! assertions), so removing, renaming or changing one fails to compile. A deliberate API change
//! edits this file in the same commit, which makes it visible in review (the role
//! `cargo semver-checks` would play, without its build cost).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use relay_domain::append::MAX_GROUP_COMMIT;
use relay_domain::export::{Seal, SealError, SealKey, SealPublicKey};
use relay_domain::memory::{
    InMemoryAccountStore, InMemoryChangeRequestStore, InMemoryNotary, InMemoryObjectStore,
    InMemoryRecordStore, InMemorySecretProvider, ManualClock, SeedSource,
};
use relay_domain::ports::{
    AccountStore, ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState,
    ChangeStoreError, Notary, NotaryError, ObjectStore, ObjectStoreError, RecordStore,
    RecordStoreError, SecretError, SecretName, SecretProvider, SecretProviderExt, SecretValue,
    TimeSource,
};
use relay_domain::verify::{StoredVerdict, verify_stored_trail};

use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, ChainSeq, ChainVerifier, Checksum, Device,
    ErrorStatus, EventDraft, EventKind, GENESIS, IdError, KeyId, KeyRing, Payload, Project, Record,
    Subject, TimeLabel, Timestamp, TrailId, TrailKey, VerifyFailure, VerifyFailureReason,
    VerifySummary, checksum_of,
};

/// Compile-time only: each line fails to build when the item's shape changes.
#[allow(dead_code, clippy::type_complexity)]
fn signatures() {
    // Identifiers and values.
    let _ = |s: String| -> Result<TrailId, IdError> { TrailId::new(s) };
    let _: fn() -> TrailId = TrailId::relay;
    let _ = |s: String| -> Result<KeyId, IdError> { KeyId::new(s) };
    let _ = |s: String| -> Result<EventKind, IdError> { EventKind::new(s) };
    let _ = |s: String| -> Result<Actor, IdError> { Actor::new(s) };
    let _ = |s: String| -> Result<Device, IdError> { Device::new(s) };
    let _ = |s: String| -> Result<Project, IdError> { Project::new(s) };
    let _ = |s: String| -> Result<Subject, IdError> { Subject::new(s) };
    let _: fn(&str) -> Result<Timestamp, _> = Timestamp::parse_canonical;
    let _: fn(Timestamp) -> String = Timestamp::to_canonical;
    let _: fn(&serde_json::Value) -> Result<Payload, _> = Payload::from_value;
    let _: Checksum = GENESIS;
    let _: usize = MAX_GROUP_COMMIT;
    let _: fn(ChainSeq) -> u64 = ChainSeq::get;

    // Keys.
    let _: fn(KeyId, &[u8]) -> Result<TrailKey, relay_domain::keys::KeyError> = TrailKey::new;
    let _: fn(&[u8]) -> KeyId = TrailKey::fingerprint_id;
    let _: fn(TrailKey) -> KeyRing = KeyRing::single;
    let _: fn(&mut KeyRing, TrailKey) = KeyRing::insert;
    let _: fn(&mut KeyRing, TrailKey) = KeyRing::insert_current;
    let _: fn(&Record, &TrailKey) -> Checksum = checksum_of;

    // Append service.
    let _: fn(Arc<dyn RecordStore>, Arc<dyn TimeSource>, TrailKey) -> AppendService =
        AppendService::new;
    let _: fn(&AppendService, TrailKey) = AppendService::set_signing_key;
    let _: fn(&AppendService) -> KeyId = AppendService::signing_key_id;

    // Verifier.
    fn verifier_shape(ring: &KeyRing, r: &Record) -> Result<VerifySummary, VerifyFailure> {
        let mut v: ChainVerifier<'_> = ChainVerifier::new(TrailId::relay(), ring);
        v.push(r)?;
        v.finish()
    }
    let _: Option<StoredVerdict> = None;
    // A streaming verifier over any store (async; named so its removal fails to compile).
    async fn stored_shape(store: &dyn RecordStore, ring: &KeyRing) -> Option<StoredVerdict> {
        verify_stored_trail(store, ring, &TrailId::relay(), &[], |_: u64| {})
            .await
            .ok()
    }

    // Export sealing.
    let _: fn(&[u8]) -> Result<SealKey, SealError> = SealKey::from_seed;
    let _: fn(&SealKey) -> SealPublicKey = SealKey::public;
    let _: fn(&SealKey, &[u8]) -> Seal = SealKey::seal;
    let _: fn(&SealPublicKey) -> String = SealPublicKey::fingerprint;

    // Secrets.
    let _: fn(KeyId, Vec<u8>) -> SecretValue = SecretValue::new;
    let _: fn(&SecretValue, &[u8]) -> bool = SecretValue::ct_matches;
    let _: fn() -> SecretName = SecretName::trail_hmac;
    let _: fn(SeedSource) -> InMemorySecretProvider = InMemorySecretProvider::with_seed_source;

    // In-memory adapters.
    let _: fn() -> InMemoryRecordStore = InMemoryRecordStore::new;
    let _: fn() -> InMemoryAccountStore = InMemoryAccountStore::new;
    let _: fn() -> InMemoryObjectStore = InMemoryObjectStore::new;
    let _: fn() -> InMemoryNotary = InMemoryNotary::new;
    let _: fn() -> InMemoryChangeRequestStore = InMemoryChangeRequestStore::new;
    let _: fn(Timestamp) -> ManualClock = ManualClock::new;

    // Four-eyes changes.
    let _: fn(&ChangeRequest, Timestamp) -> bool = ChangeRequest::is_expired;
    let _: fn(ChangeSetting, &serde_json::Value) -> Result<(), String> = ChangeSetting::check_value;
    let _: [ChangeSetting; 14] = ChangeSetting::ALL;
}

/// The ports stay object-safe and implemented by the in-memory adapters.
// REQ: R10.1
#[test]
fn ports_are_object_safe_and_the_in_memory_adapters_implement_them() {
    let _: Arc<dyn RecordStore> = Arc::new(InMemoryRecordStore::new());
    let _: Arc<dyn AccountStore> = Arc::new(InMemoryAccountStore::new());
    let _: Arc<dyn ObjectStore> = Arc::new(InMemoryObjectStore::new());
    let _: Arc<dyn relay_domain::ports::FleetStore> =
        Arc::new(relay_domain::memory::InMemoryFleetStore::new());
    let _: Arc<dyn Notary> = Arc::new(InMemoryNotary::new());
    let _: Arc<dyn ChangeRequestStore> = Arc::new(InMemoryChangeRequestStore::new());
    let secrets: Arc<dyn SecretProvider> =
        Arc::new(InMemorySecretProvider::with_seed_source(Box::new(|| {
            [9u8; 32]
        })));
    let _: Arc<dyn TimeSource> = Arc::new(ManualClock::new(
        Timestamp::parse_canonical("2026-01-01T00:00:00.000000Z").unwrap(),
    ));
    fn ext<T: SecretProviderExt + ?Sized>(_: &T) {}
    ext(secrets.as_ref());
}

/// Error enums keep the variants callers match on, and say whether to retry.
#[test]
fn error_variants_callers_match_on_exist() {
    fn status_of(e: &SecretError) -> ErrorStatus {
        e.status()
    }
    let e = SecretError::NotFound {
        name: SecretName::trail_hmac(),
        version: None,
    };
    assert_eq!(status_of(&e), ErrorStatus::Permanent);
    let _ = |e: &RecordStoreError| e.status();
    let _ = |e: &ObjectStoreError| e.status();
    let _ = |e: &NotaryError| e.status();
    let c = ChangeStoreError::NotFound("x".into());
    assert_eq!(c.status(), ErrorStatus::Permanent);
    let _ = |e: &AppendError| matches!(e, AppendError::NoActor { .. } | AppendError::Store { .. });
    let _ = |e: &AppendError| matches!(e, AppendError::InvalidGroup { .. });
    let _ = |r: &VerifyFailureReason| r.to_string();
    let _ = |s: ChangeState| s.as_str();
    let _: Option<ChangeDecision> = None;
    let _: Option<(ActorSource, TimeLabel, EventDraft)> = None;
}
