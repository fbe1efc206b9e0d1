//! A failed append never counts as a capture: the file stays pending and is retried, and a
//! digest already computed is appended before shutdown returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use relay_capture::Capture;
use relay_domain::memory::InMemoryRecordStore;
use relay_domain::ports::record_store::{
    AppendReceipt, Head, RecordStore, RecordStoreCapabilities, RecordStoreError,
};
use relay_domain::{Record, TrailId};

/// An in-memory store whose appends fail while `outage` is set.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemoryRecordStore,
    outage: AtomicBool,
}

#[async_trait]
impl RecordStore for FlakyStore {
    fn capabilities(&self) -> RecordStoreCapabilities {
        self.inner.capabilities()
    }
    async fn append_only_enforcement(
        &self,
    ) -> Result<relay_domain::ports::AppendOnlyEnforcement, relay_domain::ports::RecordStoreError>
    {
        self.inner.append_only_enforcement().await
    }

    async fn append(&self, records: &[Record]) -> Result<AppendReceipt, RecordStoreError> {
        if self.outage.load(Ordering::SeqCst) {
            return Err(RecordStoreError::Unavailable {
                message: "injected outage".into(),
                source: None,
            });
        }
        self.inner.append(records).await
    }

    async fn head(&self, trail: &TrailId) -> Result<Option<Head>, RecordStoreError> {
        self.inner.head(trail).await
    }

    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        self.inner.read(trail, after, limit).await
    }

    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError> {
        self.inner.trails().await
    }
}

// REQ: R6.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_append_is_retried_and_never_counted_as_captured() {
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    store.outage.store(true, Ordering::SeqCst);
    let relay = Relay::with_store(store.clone());
    let capture = Capture::start(relay.config(root.path()), relay.append.clone())
        .await
        .unwrap();
    fs::write(root.path().join("fid"), b"free induction decay").unwrap();

    let during = capture
        .wait_until(|s| s.append_errors >= 2, WAIT)
        .await
        .unwrap();
    assert_eq!(during.captured, 0);
    assert!(
        during.pending + during.in_flight >= 1,
        "{}",
        summary(&during)
    );
    assert!(relay.records().await.is_empty());

    store.outage.store(false, Ordering::SeqCst);
    capture.wait_until(|s| s.captured == 1, WAIT).await.unwrap();
    capture.wait_idle(WAIT).await.unwrap();
    tokio::time::sleep(SETTLE * 3).await;
    let stats = capture.shutdown().await.unwrap();
    assert_eq!(stats.captured, 1, "{}", summary(&stats));

    let created = relay.of_kind("FILE_CREATED").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        field(&created[0], "sha256"),
        sha256_hex(b"free induction decay")
    );
    assert_eq!(relay.verify().await, 1);
}

// REQ: R11.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_file_is_appended_before_shutdown_returns() {
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    store.outage.store(true, Ordering::SeqCst);
    let relay = Relay::with_store(store.clone());
    // No retry would come before shutdown on its own.
    let config = relay
        .config(root.path())
        .with_retry_backoff(Duration::from_secs(600));
    let capture = Capture::start(config, relay.append.clone()).await.unwrap();
    fs::write(root.path().join("acqus"), b"##TITLE= parameters").unwrap();
    capture
        .wait_until(|s| s.append_errors == 1 && s.in_flight == 0, WAIT)
        .await
        .unwrap();
    assert!(relay.records().await.is_empty());

    store.outage.store(false, Ordering::SeqCst);
    let stats = tokio::time::timeout(WAIT, capture.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.captured, 1, "{}", summary(&stats));
    let created = relay.of_kind("FILE_CREATED").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        field(&created[0], "sha256"),
        sha256_hex(b"##TITLE= parameters")
    );
}
