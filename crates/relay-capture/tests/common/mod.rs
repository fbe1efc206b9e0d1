//! Shared set-up for the capture integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use relay_capture::{CaptureConfig, CaptureStats};
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::record_store::RecordStore;
use relay_domain::{
    Actor, AppendService, ChainVerifier, Device, KeyId, KeyRing, Record, Timestamp, TrailId,
    TrailKey,
};
use sha2::{Digest, Sha256};

/// Short settle window so the suite stays fast.
pub const SETTLE: Duration = Duration::from_millis(300);
/// Upper bound on every wait.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn trail() -> TrailId {
    TrailId::new("nmr-01").unwrap()
}

pub fn key() -> TrailKey {
    TrailKey::new(KeyId::new("k-test").unwrap(), &[0x42; 32]).unwrap()
}

/// A store and an append service over it, as the relay would wire them.
pub struct Relay {
    pub store: Arc<dyn RecordStore>,
    pub append: Arc<AppendService>,
}

impl Relay {
    pub fn new() -> Self {
        Self::with_store(Arc::new(InMemoryRecordStore::new()))
    }

    pub fn with_store(store: Arc<dyn RecordStore>) -> Self {
        let clock = Arc::new(ManualClock::new(
            Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
        ));
        let append = Arc::new(AppendService::new(store.clone(), clock, key()));
        Self { store, append }
    }

    pub fn config(&self, root: &Path) -> CaptureConfig {
        CaptureConfig::new(
            trail(),
            Device::new("nmr-01").unwrap(),
            Actor::new("labtech").unwrap(),
        )
        .with_root(root)
        .with_settle(SETTLE)
        .with_retry_backoff(Duration::from_millis(100))
    }

    pub async fn records(&self) -> Vec<Record> {
        self.store.read(&trail(), 0, usize::MAX).await.unwrap()
    }

    pub async fn of_kind(&self, kind: &str) -> Vec<Record> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.kind.as_str() == kind)
            .collect()
    }

    /// Verifies the whole trail with the HMAC key and returns its length.
    pub async fn verify(&self) -> u64 {
        let ring = KeyRing::single(key());
        let mut verifier = ChainVerifier::new(trail(), &ring);
        for r in self.records().await {
            verifier.push(&r).unwrap();
        }
        verifier.finish().unwrap().records
    }
}

pub fn field(r: &Record, name: &str) -> serde_json::Value {
    r.payload.to_value().unwrap()[name].clone()
}

pub fn subject(r: &Record) -> String {
    r.subject.as_ref().unwrap().as_str().to_owned()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic, incompressible-looking bytes.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn summary(s: &CaptureStats) -> String {
    format!("{s:?}")
}
