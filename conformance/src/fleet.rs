//! The `FleetStore` suite: codes are single use (also under concurrent redemption), bound to
//! their edge and refused once expired; enrollment, revocation and re-enrollment read back
//! exactly; reports keep the newest per (edge, trail).

use std::sync::Arc;

use relay_domain::ports::{
    CodeDigest, EdgeReport, EdgeState, EnrollmentCode, FleetError, FleetStore, RedeemRefusal,
};
use relay_domain::{Timestamp, TrailId};

use crate::fixtures::{must, unique, unique_trail};

fn ts(micros: i64) -> Timestamp {
    must(
        Timestamp::from_unix_micros(1_700_000_000_000_000 + micros),
        "timestamp",
    )
}

fn code(text: &str, edge: &str, issued: i64, expires: i64) -> EnrollmentCode {
    EnrollmentCode {
        digest: CodeDigest::of(text),
        edge: edge.to_owned(),
        issued_by: "admin-ann".to_owned(),
        issued_at: ts(issued),
        expires_at: ts(expires),
        used_at: None,
    }
}

fn refusal(result: Result<EnrollmentCode, FleetError>, what: &str) -> RedeemRefusal {
    match result {
        Err(FleetError::Refused(r)) => r,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// Runs every rule of the fleet store contract.
pub async fn suite(store: Arc<dyn FleetStore>) {
    a_code_is_redeemed_once_for_its_own_edge(store.as_ref()).await;
    an_expired_code_is_refused_and_stays_unused(store.as_ref()).await;
    enrollment_revocation_and_re_enrollment_read_back(store.as_ref()).await;
    reports_keep_the_newest_per_edge_and_trail(store.as_ref()).await;
    a_refusal_keeps_the_last_batch_and_a_heartbeat_moves_seen_at(store.as_ref()).await;
    concurrent_redemptions_of_one_code_have_one_winner(store).await;
}

/// A code redeems once, returns what was issued (with its time of use), and is refused for
/// another edge, with another text, and a second time.
pub async fn a_code_is_redeemed_once_for_its_own_edge(store: &dyn FleetStore) {
    let edge = unique("ws-code");
    let text = unique("code-text");
    let issued = code(&text, &edge, 0, 3_600_000_000);
    must(store.issue_code(&issued).await, "issue");
    let other_edge = unique("ws-other");
    assert_eq!(
        refusal(
            store
                .redeem(&CodeDigest::of(&text), &other_edge, ts(10))
                .await,
            "another edge"
        ),
        RedeemRefusal::Unknown
    );
    assert_eq!(
        refusal(
            store
                .redeem(&CodeDigest::of(&format!("{text}x")), &edge, ts(10))
                .await,
            "another text"
        ),
        RedeemRefusal::Unknown
    );
    let redeemed = must(
        store
            .redeem(&CodeDigest::of(&format!("  {text}\n")), &edge, ts(20))
            .await,
        "redeem (surrounding whitespace is not part of the code)",
    );
    assert_eq!(redeemed.edge, edge);
    assert_eq!(redeemed.issued_by, "admin-ann");
    assert_eq!(redeemed.issued_at, issued.issued_at);
    assert_eq!(redeemed.expires_at, issued.expires_at);
    assert_eq!(
        refusal(
            store.redeem(&CodeDigest::of(&text), &edge, ts(30)).await,
            "replay"
        ),
        RedeemRefusal::Used
    );
}

/// At and after `expires_at` a code is refused as expired, and a refused code is not used up
/// by the attempt (an earlier clock still could not redeem it after expiry was seen).
pub async fn an_expired_code_is_refused_and_stays_unused(store: &dyn FleetStore) {
    let edge = unique("ws-exp");
    let text = unique("code-exp");
    must(
        store.issue_code(&code(&text, &edge, 0, 1_000)).await,
        "issue",
    );
    for at in [1_000, 5_000] {
        assert_eq!(
            refusal(
                store.redeem(&CodeDigest::of(&text), &edge, ts(at)).await,
                "expired"
            ),
            RedeemRefusal::Expired
        );
    }
}

/// Enrolling stores the edge with its trails and issuer; revoking marks it revoked with time and
/// admin; enrolling again (a new code) makes it enrolled with the new trails; an edge that never
/// enrolled cannot be revoked.
pub async fn enrollment_revocation_and_re_enrollment_read_back(store: &dyn FleetStore) {
    let edge = unique("ws-enr");
    assert_eq!(must(store.edge(&edge).await, "read unknown"), None);
    let (t1, t2) = (unique_trail("fleet-a"), unique_trail("fleet-b"));
    must(
        store
            .enroll(&edge, std::slice::from_ref(&t1), ts(100), "admin-ann")
            .await,
        "enroll",
    );
    let entry = must(store.edge(&edge).await, "read").expect("enrolled edge");
    assert_eq!(entry.state, EdgeState::Enrolled);
    assert_eq!(entry.trails, vec![t1.clone()]);
    assert_eq!(entry.enrolled_at, ts(100));
    assert_eq!(entry.enrolled_by, "admin-ann");
    assert_eq!(entry.revoked, None);

    must(store.revoke(&edge, ts(200), "admin-bob").await, "revoke");
    let entry = must(store.edge(&edge).await, "read").expect("revoked edge");
    assert_eq!(entry.state, EdgeState::Revoked);
    assert_eq!(entry.revoked, Some((ts(200), "admin-bob".to_owned())));

    let trails = vec![t1.clone(), t2.clone()];
    must(
        store.enroll(&edge, &trails, ts(300), "admin-cy").await,
        "re-enroll",
    );
    let entry = must(store.edge(&edge).await, "read").expect("re-enrolled edge");
    assert_eq!(entry.state, EdgeState::Enrolled);
    let mut got = entry.trails.clone();
    got.sort();
    let mut want = trails;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(entry.enrolled_by, "admin-cy");
    assert_eq!(entry.revoked, None);
    assert!(
        must(store.edges().await, "list")
            .iter()
            .any(|e| e.edge == edge && e.state == EdgeState::Enrolled),
        "the edge is listed"
    );

    let never = unique("ws-never");
    match store.revoke(&never, ts(1), "admin-ann").await {
        Err(FleetError::UnknownEdge { edge }) => assert_eq!(edge, never),
        other => panic!("revoking an unknown edge: {other:?}"),
    }
}

/// The newest report of an (edge, trail) replaces the last one, field for field, and other
/// trails keep theirs.
pub async fn reports_keep_the_newest_per_edge_and_trail(store: &dyn FleetStore) {
    let edge = unique("ws-rep");
    let (t1, t2) = (unique_trail("rep-a"), unique_trail("rep-b"));
    let first = EdgeReport {
        edge: edge.clone(),
        trail: t1.clone(),
        seen_at: ts(10),
        last_batch_at: Some(ts(10)),
        local_head_seq: Some(40),
        local_head_at: Some(ts(9)),
        stored_head_seq: 30,
        stored_head_at: Some(ts(8)),
        skew_ms: Some(-1_500),
        version: Some("relay-edge 1.2.3".into()),
        refused: None,
    };
    let other = EdgeReport {
        trail: t2.clone(),
        local_head_seq: None,
        local_head_at: None,
        stored_head_at: None,
        skew_ms: None,
        version: None,
        last_batch_at: None,
        ..first.clone()
    };
    let newer = EdgeReport {
        seen_at: ts(20),
        last_batch_at: Some(ts(10)),
        local_head_seq: Some(45),
        stored_head_seq: 30,
        refused: Some("bad_hmac".into()),
        ..first.clone()
    };
    for r in [&first, &other, &newer] {
        must(store.report(r).await, "report");
    }
    let mine: Vec<EdgeReport> = must(store.reports().await, "reports")
        .into_iter()
        .filter(|r| r.edge == edge)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    let by_trail = |t: &TrailId| mine.iter().find(|r| &r.trail == t).cloned();
    assert_eq!(by_trail(&t1), Some(newer));
    assert_eq!(by_trail(&t2), Some(other));
}

/// Eight concurrent redemptions of one code: exactly one succeeds, the others are `Used`.
pub async fn concurrent_redemptions_of_one_code_have_one_winner(store: Arc<dyn FleetStore>) {
    let edge = unique("ws-race");
    let text = unique("code-race");
    must(
        store
            .issue_code(&code(&text, &edge, 0, 3_600_000_000))
            .await,
        "issue",
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, edge, text) = (store.clone(), edge.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            store
                .redeem(&CodeDigest::of(&text), &edge, ts(100 + i))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match must(t.await, "join") {
            Ok(_) => won += 1,
            Err(FleetError::Refused(RedeemRefusal::Used)) => {}
            Err(e) => panic!("a racing redemption failed otherwise: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one of eight racing redemptions wins");
}

/// A report without `last_batch_at` / `stored_head_at` (a refused batch) keeps the stored ones;
/// `seen` moves `seen_at` of every report of that edge only.
pub async fn a_refusal_keeps_the_last_batch_and_a_heartbeat_moves_seen_at(store: &dyn FleetStore) {
    let edge = unique("ws-beat");
    let other = unique("ws-other");
    let t = unique_trail("beat");
    let ok = EdgeReport {
        edge: edge.clone(),
        trail: t.clone(),
        seen_at: ts(10),
        last_batch_at: Some(ts(10)),
        local_head_seq: Some(5),
        local_head_at: Some(ts(9)),
        stored_head_seq: 5,
        stored_head_at: Some(ts(9)),
        skew_ms: Some(3),
        version: Some("relay-edge 1".into()),
        refused: None,
    };
    let refused = EdgeReport {
        seen_at: ts(20),
        last_batch_at: None,
        local_head_seq: Some(7),
        stored_head_at: None,
        refused: Some("gap".into()),
        ..ok.clone()
    };
    let bystander = EdgeReport {
        edge: other.clone(),
        ..ok.clone()
    };
    for r in [&ok, &refused, &bystander] {
        must(store.report(r).await, "report");
    }
    must(store.seen(&edge, ts(30)).await, "seen");
    must(
        store.seen(&unique("ws-none"), ts(40)).await,
        "seen without a report",
    );
    let all = must(store.reports().await, "reports");
    let mine = all
        .iter()
        .find(|r| r.edge == edge)
        .expect("the edge's report");
    assert_eq!(mine.seen_at, ts(30), "the heartbeat moved seen_at");
    assert_eq!(
        mine.last_batch_at,
        Some(ts(10)),
        "the refusal kept the last batch"
    );
    assert_eq!(mine.stored_head_at, Some(ts(9)));
    assert_eq!(mine.refused.as_deref(), Some("gap"));
    assert_eq!(mine.local_head_seq, Some(7));
    let theirs = all
        .iter()
        .find(|r| r.edge == other)
        .expect("the other edge's report");
    assert_eq!(theirs.seen_at, ts(10), "another edge's report is untouched");
}
