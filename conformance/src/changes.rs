//! The `ChangeRequestStore` suite: proposals, compare-and-set decisions, listing order, and the
//! configuration baseline.

use std::sync::Arc;

use relay_domain::Timestamp;
use relay_domain::ports::{
    ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState, ChangeStoreError,
};

use crate::fixtures::unique;

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_700_000_000_000_000 + micros).expect("a valid timestamp")
}

fn request(id: &str, n: i64) -> ChangeRequest {
    ChangeRequest {
        id: id.to_owned(),
        setting: ChangeSetting::SettleMs,
        value: serde_json::json!(5000 + n),
        proposer: "alice".into(),
        reason: format!("slower instrument {n}"),
        created_at: ts(n),
        expires_at: ts(n + 3_600_000_000),
        state: ChangeState::Pending,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    }
}

fn decision(state: ChangeState, by: &str) -> ChangeDecision {
    ChangeDecision {
        state,
        by: by.into(),
        at: ts(10),
        reason: "checked".into(),
    }
}

/// Runs every rule.
pub async fn suite(store: Arc<dyn ChangeRequestStore>) {
    propose_then_get_round_trips(store.as_ref()).await;
    duplicate_id_is_already_exists(store.as_ref()).await;
    decide_moves_pending_once_and_only_once(store.as_ref()).await;
    concurrent_decisions_have_one_winner(store.clone()).await;
    list_is_newest_first(store.as_ref()).await;
    config_baseline_is_replaced(store.as_ref()).await;
}

/// A proposal reads back exactly.
pub async fn propose_then_get_round_trips(store: &dyn ChangeRequestStore) {
    let r = request(&unique("cr"), 1);
    store.propose(&r).await.expect("propose");
    assert_eq!(store.get(&r.id).await.expect("get"), r);
    assert!(matches!(
        store.get(&unique("missing")).await,
        Err(ChangeStoreError::NotFound(_))
    ));
}

/// A second proposal with the same id is refused and leaves the first.
pub async fn duplicate_id_is_already_exists(store: &dyn ChangeRequestStore) {
    let r = request(&unique("cr"), 2);
    store.propose(&r).await.expect("propose");
    let mut other = r.clone();
    other.reason = "another".into();
    assert!(matches!(
        store.propose(&other).await,
        Err(ChangeStoreError::AlreadyExists(_))
    ));
    assert_eq!(store.get(&r.id).await.expect("get").reason, r.reason);
}

/// A pending request is decided once; a second decision is `NotPending` and changes nothing.
pub async fn decide_moves_pending_once_and_only_once(store: &dyn ChangeRequestStore) {
    let r = request(&unique("cr"), 3);
    store.propose(&r).await.expect("propose");
    let decided = store
        .decide(&r.id, &decision(ChangeState::Approved, "bob"))
        .await
        .expect("decide");
    assert_eq!(decided.state, ChangeState::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("bob"));
    assert_eq!(store.get(&r.id).await.expect("get"), decided);
    assert!(matches!(
        store
            .decide(&r.id, &decision(ChangeState::Rejected, "carol"))
            .await,
        Err(ChangeStoreError::NotPending {
            state: "approved",
            ..
        })
    ));
    assert_eq!(store.get(&r.id).await.expect("get"), decided);
    assert!(matches!(
        store
            .decide(&unique("missing"), &decision(ChangeState::Approved, "bob"))
            .await,
        Err(ChangeStoreError::NotFound(_))
    ));
}

/// Of several concurrent decisions on one request exactly one wins.
pub async fn concurrent_decisions_have_one_winner(store: Arc<dyn ChangeRequestStore>) {
    let r = request(&unique("cr"), 4);
    store.propose(&r).await.expect("propose");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let id = r.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .decide(&id, &decision(ChangeState::Approved, &format!("admin{i}")))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => wins += 1,
            Err(ChangeStoreError::NotPending { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent decision may win");
}

/// `list` returns the newest proposals first and honours the limit.
pub async fn list_is_newest_first(store: &dyn ChangeRequestStore) {
    let a = request(&unique("cr"), 5);
    let b = request(&unique("cr"), 6);
    store.propose(&a).await.expect("propose");
    store.propose(&b).await.expect("propose");
    let listed = store.list(2).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, b.id);
    assert_eq!(listed[1].id, a.id);
}

/// The configuration baseline is set and replaced.
pub async fn config_baseline_is_replaced(store: &dyn ChangeRequestStore) {
    store
        .set_config_baseline("{\"settle_ms\":1}")
        .await
        .expect("set");
    store
        .set_config_baseline("{\"settle_ms\":2}")
        .await
        .expect("replace");
    assert_eq!(
        store.config_baseline().await.expect("get").as_deref(),
        Some("{\"settle_ms\":2}")
    );
}
