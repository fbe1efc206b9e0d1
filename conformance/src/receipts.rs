//! The `ReceiptStore` suite: exact round trips, range queries, first receipt wins, identical
//! retries, invalid ranges, and one winner among concurrent overlapping writes.

use std::sync::Arc;

use relay_domain::ports::{Receipt, ReceiptError, ReceiptStore};
use relay_domain::{Timestamp, TrailId};

use crate::fixtures::{must, unique_trail};

fn ts(micros: i64) -> Timestamp {
    must(
        Timestamp::from_unix_micros(1_700_000_000_000_000 + micros),
        "timestamp",
    )
}

fn receipt(trail: &TrailId, first: u64, last: u64, at: i64, edge: &str) -> Receipt {
    Receipt {
        trail_id: trail.clone(),
        first_seq: first,
        last_seq: last,
        received_at: ts(at),
        edge: edge.to_owned(),
    }
}

/// Runs every rule of the receipt store contract.
pub async fn suite(store: Arc<dyn ReceiptStore>) {
    record_then_read_round_trips_by_range(store.as_ref()).await;
    first_receipt_wins_over_an_overlap(store.as_ref()).await;
    identical_retry_is_acknowledged_once(store.as_ref()).await;
    invalid_ranges_are_refused(store.as_ref()).await;
    concurrent_overlapping_receipts_have_one_winner(store).await;
}

/// Receipts read back exactly (microsecond time, edge), only those of the trail that overlap
/// the asked range, ordered by first seq.
pub async fn record_then_read_round_trips_by_range(store: &dyn ReceiptStore) {
    let t = unique_trail("rcpt");
    let other = unique_trail("rcpt-other");
    let a = receipt(&t, 1, 3, 1, "ws-1");
    let b = receipt(&t, 4, 4, 2_000_001, "ws-1");
    let c = receipt(&t, 5, 9, 7_654_321, "ws-2");
    // Recorded out of order: reads are ordered by first seq whatever the write order.
    for r in [&c, &a, &b] {
        must(store.record(r).await, "record");
    }
    must(
        store.record(&receipt(&other, 1, 9, 5, "ws-9")).await,
        "record other trail",
    );
    assert_eq!(
        must(store.receipts(&t, 1, u64::MAX).await, "read all"),
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        must(store.receipts(&t, 3, 4).await, "read 3..=4"),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        must(store.receipts(&t, 9, 9).await, "read 9"),
        vec![c.clone()]
    );
    assert_eq!(
        must(store.receipts(&t, 10, 20).await, "read past the end"),
        Vec::<Receipt>::new()
    );
    assert_eq!(
        must(
            store
                .receipts(&unique_trail("rcpt-none"), 1, u64::MAX)
                .await,
            "read unknown trail"
        ),
        Vec::<Receipt>::new()
    );
}

/// A receipt overlapping a stored one (even by one seq, even later in time) is refused and
/// stores nothing: the first time of receipt stays.
pub async fn first_receipt_wins_over_an_overlap(store: &dyn ReceiptStore) {
    let t = unique_trail("rcpt-overlap");
    let first = receipt(&t, 10, 20, 100, "ws-1");
    must(store.record(&first).await, "record first");
    for (from, to) in [(10, 20), (5, 10), (20, 25), (12, 13), (1, 30)] {
        let later = receipt(&t, from, to, 900_000_000, "ws-1");
        match store.record(&later).await {
            Err(ReceiptError::Overlap {
                first_seq,
                last_seq,
                ..
            }) => {
                assert_eq!((first_seq, last_seq), (from, to));
            }
            other => panic!("overlap {from}..={to}: expected Overlap, got {other:?}"),
        }
    }
    assert_eq!(
        must(store.receipts(&t, 1, u64::MAX).await, "read"),
        vec![first],
        "a refused receipt stores nothing"
    );
    // Adjacent ranges are not overlaps.
    must(
        store.record(&receipt(&t, 21, 21, 101, "ws-1")).await,
        "adjacent",
    );
    must(
        store.record(&receipt(&t, 9, 9, 99, "ws-1")).await,
        "adjacent below",
    );
    assert_eq!(must(store.receipts(&t, 1, u64::MAX).await, "read").len(), 3);
}

/// Recording the identical receipt again is `Ok` and leaves one receipt.
pub async fn identical_retry_is_acknowledged_once(store: &dyn ReceiptStore) {
    let t = unique_trail("rcpt-retry");
    let r = receipt(&t, 1, 2, 5, "ws-1");
    must(store.record(&r).await, "record");
    must(store.record(&r).await, "identical retry");
    assert_eq!(
        must(store.receipts(&t, 1, 2).await, "read"),
        vec![r.clone()]
    );
    let mut other_edge = r.clone();
    other_edge.edge = "ws-2".into();
    assert!(matches!(
        store.record(&other_edge).await,
        Err(ReceiptError::Overlap { .. })
    ));
}

/// An empty range or one starting at 0 is refused.
pub async fn invalid_ranges_are_refused(store: &dyn ReceiptStore) {
    let t = unique_trail("rcpt-invalid");
    for (first, last) in [(0, 3), (5, 4)] {
        assert!(
            matches!(
                store.record(&receipt(&t, first, last, 1, "ws-1")).await,
                Err(ReceiptError::InvalidRange { .. })
            ),
            "{first}..={last}"
        );
    }
    assert!(must(store.receipts(&t, 0, u64::MAX).await, "read").is_empty());
}

/// Eight writers race overlapping receipts of one trail: exactly one is stored.
pub async fn concurrent_overlapping_receipts_have_one_winner(store: Arc<dyn ReceiptStore>) {
    let t = unique_trail("rcpt-race");
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let store = store.clone();
        let r = receipt(&t, 1, 5 + i as u64, 1000 + i, "ws-1");
        tasks.push(tokio::spawn(async move { store.record(&r).await }));
    }
    let mut won = 0;
    for task in tasks {
        match must(task.await, "join") {
            Ok(()) => won += 1,
            Err(ReceiptError::Overlap { .. }) => {}
            Err(e) => panic!("unexpected error in the race: {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one of the overlapping receipts is stored");
    assert_eq!(must(store.receipts(&t, 1, u64::MAX).await, "read").len(), 1);
}
