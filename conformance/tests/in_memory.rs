//! The record store suite against the domain's in-memory store, which every adapter is
//! measured against.

use std::sync::Arc;

use relay_conformance::record_store::{self, AppendOnlyEvidence, RecordStoreProbes};
use relay_domain::memory::{InMemoryAccountStore, InMemoryRecordStore};

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
