//! The record store suite against the domain's in-memory store, which every adapter is
//! measured against.

use std::sync::Arc;

use relay_conformance::record_store::{self, AppendOnlyEvidence, RecordStoreProbes};
use relay_domain::memory::{InMemoryAccountStore, InMemoryRecordStore};

// REQ: R1.1, R10.1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_record_store_passes_the_record_store_suite() {
    let store = Arc::new(InMemoryRecordStore::new());
    record_store::suite(
        store,
        RecordStoreProbes {
            append_only: AppendOnlyEvidence::ByConstruction(
                "records live in a private map of the process; nothing else can reach them",
            ),
            second_handle: None,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_account_store_passes_the_account_store_suite() {
    relay_conformance::accounts::suite(Arc::new(InMemoryAccountStore::new())).await;
}

#[tokio::test]
async fn in_memory_forward_cursor_store_passes_the_forward_suite() {
    relay_conformance::forward::suite(&relay_domain::memory::InMemoryForwardCursorStore::new())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_change_request_store_passes_the_change_suite() {
    relay_conformance::changes::suite(Arc::new(
        relay_domain::memory::InMemoryChangeRequestStore::new(),
    ))
    .await;
}

// REQ: R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_receipt_store_passes_the_receipt_suite() {
    relay_conformance::receipts::suite(Arc::new(relay_domain::memory::InMemoryReceiptStore::new()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_object_store_passes_the_object_store_suite() {
    relay_conformance::object_store::suite(Arc::new(
        relay_domain::memory::InMemoryObjectStore::new(),
    ))
    .await;
}

#[tokio::test]
async fn in_memory_notary_passes_the_notary_suite() {
    relay_conformance::notary::suite(&relay_domain::memory::InMemoryNotary::new(), None).await;
}

/// A deterministic, never-repeating seed source for tests (SplitMix64 expanded to 32 bytes).
fn counter_seeds() -> relay_domain::memory::SeedSource {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    Box::new(move || {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out
    })
}

#[tokio::test]
async fn in_memory_secret_provider_passes_the_secrets_suite() {
    let provider = relay_domain::memory::InMemorySecretProvider::with_seed_source(counter_seeds());
    relay_conformance::secrets::suite(&provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_fleet_store_passes_the_fleet_suite() {
    relay_conformance::fleet::suite(Arc::new(relay_domain::memory::InMemoryFleetStore::new()))
        .await;
}
