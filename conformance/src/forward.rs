//! The `ForwardCursorStore` suite: unknown trails, monotonic acks, sticky poison, ordered lists.

use relay_domain::TrailId;
use relay_domain::ports::{DeadLetter, ForwardCursorStore, ForwardState};

use crate::fixtures::{must, unique};

fn trail(tag: &str) -> TrailId {
    must(TrailId::new(unique(tag)), "trail id")
}

fn dead_letter() -> DeadLetter {
    DeadLetter {
        first_seq: 4,
        last_seq: 9,
        status: 422,
        reason: "conflict: chain_seq 4".into(),
    }
}

/// Runs every rule of the forward cursor contract.
pub async fn suite(store: &dyn ForwardCursorStore) {
    unknown_trail_has_no_cursor(store).await;
    acks_only_move_forward(store).await;
    poison_is_sticky_until_resumed(store).await;
    list_is_ordered_by_trail(store).await;
}

/// `get` of a trail never written is `None`.
pub async fn unknown_trail_has_no_cursor(store: &dyn ForwardCursorStore) {
    let t = trail("fwd-none");
    assert_eq!(must(store.get(&t).await, "get"), None);
}

/// `set_acked` is monotonic: a lower or equal seq leaves the cursor unchanged.
pub async fn acks_only_move_forward(store: &dyn ForwardCursorStore) {
    let t = trail("fwd-ack");
    must(store.set_acked(&t, 7).await, "ack 7");
    must(store.set_acked(&t, 3).await, "ack 3");
    let c = must(store.get(&t).await, "get");
    let c = c.unwrap_or_else(|| panic!("cursor of {t} missing after set_acked"));
    assert_eq!(c.acked_seq, 7, "a lower ack must not move the cursor back");
    assert_eq!(c.state, ForwardState::Active);
    must(store.set_acked(&t, 12).await, "ack 12");
    let c = must(store.get(&t).await, "get");
    assert_eq!(c.map(|c| c.acked_seq), Some(12));
}

/// Poison keeps the acked seq and the dead letter, survives acks, and only `resume` clears it.
pub async fn poison_is_sticky_until_resumed(store: &dyn ForwardCursorStore) {
    let t = trail("fwd-poison");
    must(store.set_acked(&t, 3).await, "ack 3");
    must(store.set_poisoned(&t, &dead_letter()).await, "poison");
    must(store.set_acked(&t, 5).await, "ack 5");
    let c = must(store.get(&t).await, "get");
    let c = c.unwrap_or_else(|| panic!("cursor of {t} missing"));
    assert_eq!(c.acked_seq, 5);
    assert_eq!(c.state, ForwardState::Poisoned(dead_letter()));
    assert!(c.is_poisoned());
    must(store.resume(&t).await, "resume");
    let c = must(store.get(&t).await, "get");
    let c = c.unwrap_or_else(|| panic!("cursor of {t} missing"));
    assert_eq!(c.state, ForwardState::Active);
    assert_eq!(c.acked_seq, 5);
    // Poisoning a trail never acked creates its cursor at 0.
    let fresh = trail("fwd-poison-fresh");
    must(store.set_poisoned(&fresh, &dead_letter()).await, "poison");
    let c = must(store.get(&fresh).await, "get");
    assert_eq!(c.map(|c| (c.acked_seq, c.is_poisoned())), Some((0, true)));
}

/// `list` holds every cursor written, ordered by trail id.
pub async fn list_is_ordered_by_trail(store: &dyn ForwardCursorStore) {
    let a = trail("fwd-list-a");
    let b = trail("fwd-list-b");
    must(store.set_acked(&b, 2).await, "ack b");
    must(store.set_acked(&a, 1).await, "ack a");
    let all = must(store.list().await, "list");
    let ids: Vec<&TrailId> = all.iter().map(|c| &c.trail_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "list must be ordered by trail id");
    assert!(all.iter().any(|c| c.trail_id == a && c.acked_seq == 1));
    assert!(all.iter().any(|c| c.trail_id == b && c.acked_seq == 2));
}
