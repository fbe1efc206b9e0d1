//! Bulk signing (`POST /api/v1/signatures/batch`, issue 25), attacked: one bad target among
//! good ones refuses the whole series and appends nothing, one authentication counts once,
//! separation of duties holds across series, and the happy path appends one SIGNATURE record
//! per target naming its exact checksum, on the real local adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use relay_domain::ports::{RecordStore, TamperAttempt, TamperProbe};
use relay_domain::{Actor, ActorSource, Device, EventDraft, EventKind, Payload, Record};
use serde_json::{Value, json};
use support::{PASSWORD, Relay, trail};

const TRAIL: &str = "nmr-01";

/// A relay with the admin `ada`, the reviewers `labop` (author of every capture), `rita` and
/// `roy`, an operator, an auditor, and `n` captured files in [`TRAIL`].
struct Staffed {
    relay: Relay,
    admin: String,
    rita: String,
    roy: String,
    labop: String,
    records: Vec<Record>,
}

async fn staffed(n: usize) -> Staffed {
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    relay
        .create(&admin, "labop", "Lab Operator", "reviewer")
        .await;
    relay
        .create(&admin, "rita", "Rita Reviewer", "reviewer")
        .await;
    relay
        .create(&admin, "roy", "Roy Approver", "reviewer")
        .await;
    relay
        .create(&admin, "otto", "Otto Operator", "operator")
        .await;
    relay
        .create(&admin, "aud", "Audrey Auditor", "auditor")
        .await;
    let mut records = Vec::new();
    for i in 0..n {
        records.push(relay.capture(TRAIL, &format!("run1/fid{i}")).await);
    }
    let rita = relay.login("rita", PASSWORD).await;
    let roy = relay.login("roy", PASSWORD).await;
    let labop = relay.login("labop", PASSWORD).await;
    Staffed {
        relay,
        admin,
        rita,
        roy,
        labop,
        records,
    }
}

fn hexes(records: &[&Record]) -> Vec<String> {
    records.iter().map(|r| r.checksum.to_hex()).collect()
}

async fn batch(
    relay: &Relay,
    token: &str,
    checksums: Vec<String>,
    meaning: &str,
    password: &str,
) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/signatures/batch",
            Some(token),
            Some(
                json!({"trail_id": TRAIL, "target_checksums": checksums, "meaning": meaning,
                "reason": "batch checked", "password": password}),
            ),
        )
        .await;
    (s, b)
}

async fn single(relay: &Relay, token: &str, record: &Record, meaning: &str) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(token),
            Some(
                json!({"trail_id": TRAIL, "target_checksum": record.checksum.to_hex(),
                "meaning": meaning, "reason": "one by one", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn head(relay: &Relay) -> u64 {
    relay
        .adapters
        .record_store
        .head(&trail(TRAIL))
        .await
        .unwrap()
        .map_or(0, |h| h.seq.get())
}

/// The per-target verdicts of a 409: (seq, ok, code).
fn verdicts(b: &Value) -> Vec<(Option<u64>, bool, Option<String>)> {
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target_seq"].as_u64(),
                r["ok"].as_bool().unwrap(),
                r["code"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn refused_events(relay: &Relay) -> usize {
    relay.records_of("_relay", "SIGNATURE_REFUSED").await.len()
}

// REQ: R4.2
#[tokio::test]
async fn a_series_appends_one_signature_per_target_naming_its_checksum_and_the_chain_verifies() {
    let s = staffed(3).await;
    let targets: Vec<&Record> = s.records.iter().collect();
    let (st, b) = batch(&s.relay, &s.rita, hexes(&targets), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["signed"], 3);
    let sigs = s.relay.records_of(TRAIL, "SIGNATURE").await;
    assert_eq!(sigs.len(), 3);
    for ((result, target), sig) in b["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&targets)
        .zip(&sigs)
    {
        assert_eq!(result["ok"], true);
        assert_eq!(result["target_checksum"], target.checksum.to_hex());
        assert_eq!(result["target_seq"], target.chain_seq.get());
        let m = &result["manifestation"];
        assert_eq!(m["signature_seq"], sig.chain_seq.get());
        assert_eq!(m["signature_checksum"], sig.checksum.to_hex());
        assert_eq!(m["meaning"], "reviewed");
        assert_eq!(m["printed_name"], "Rita Reviewer");
        let p = sig.payload.to_value().unwrap();
        assert_eq!(p["target_checksum"], target.checksum.to_hex());
        assert_eq!(p["target_seq"], target.chain_seq.get());
        assert_eq!(sig.actor.as_str(), "rita");
    }
    // Consecutive records: one atomic group.
    assert_eq!(sigs[1].chain_seq.get(), sigs[0].chain_seq.get() + 1);
    assert_eq!(sigs[2].chain_seq.get(), sigs[0].chain_seq.get() + 2);
    // Another reviewer approves the same series.
    let (st, b) = batch(&s.relay, &s.roy, hexes(&targets), "approved", PASSWORD).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, _, ev) = s
        .relay
        .call(
            Method::GET,
            &format!("/api/v1/events/{TRAIL}/{}", targets[1].chain_seq),
            Some(&s.roy),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ev["review_status"], "approved", "{ev}");
    s.relay.assert_verifies().await;
}

// REQ: R4.2
#[tokio::test]
async fn one_approved_or_rejected_target_refuses_the_series_and_appends_nothing() {
    let s = staffed(4).await;
    let [a, b, c, d] = [&s.records[0], &s.records[1], &s.records[2], &s.records[3]];
    let (st, body) = batch(
        &s.relay,
        &s.rita,
        hexes(&[a, b, c, d]),
        "reviewed",
        PASSWORD,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    single(&s.relay, &s.roy, a, "approved").await;
    single(&s.relay, &s.roy, d, "rejected").await;
    let before = head(&s.relay).await;
    let refused_before = refused_events(&s.relay).await;
    let (st, body) = batch(&s.relay, &s.roy, hexes(&[b, a, c, d]), "approved", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "batch_refused");
    assert_eq!(
        verdicts(&body),
        vec![
            (Some(b.chain_seq.get()), true, None),
            (
                Some(a.chain_seq.get()),
                false,
                Some("already_approved".into())
            ),
            (Some(c.chain_seq.get()), true, None),
            (
                Some(d.chain_seq.get()),
                false,
                Some("rejected_final".into())
            ),
        ]
    );
    assert_eq!(head(&s.relay).await, before, "nothing may be appended");
    // Each refused target is a SIGNATURE_REFUSED event, as for a single signature.
    assert_eq!(refused_events(&s.relay).await, refused_before + 2);
    s.relay.assert_verifies().await;
}

// REQ: R4.2
#[tokio::test]
async fn a_superseded_target_refuses_the_series() {
    let s = staffed(2).await;
    let [a, b] = [&s.records[0], &s.records[1]];
    let (st, body) = batch(&s.relay, &s.rita, hexes(&[a, b]), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // A later capture of a's file supersedes it.
    s.relay
        .appender
        .append(EventDraft {
            trail_id: trail(TRAIL),
            kind: EventKind::file_modified(),
            actor: Some(Actor::new("labop").unwrap()),
            actor_source: ActorSource::OsSession,
            occurred_at: None,
            device: Device::new("test-ws").unwrap(),
            project: None,
            subject: a.subject.clone(),
            payload: Payload::from_value(&json!({"sha256": "cd".repeat(32), "size": 43})).unwrap(),
        })
        .await
        .unwrap();
    let before = head(&s.relay).await;
    let (st, body) = batch(&s.relay, &s.roy, hexes(&[b, a]), "approved", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(verdicts(&body)[1].2.as_deref(), Some("superseded"));
    assert!(verdicts(&body)[0].1);
    assert_eq!(head(&s.relay).await, before);
}

// REQ: R4.2
#[tokio::test]
async fn a_tampered_target_refuses_the_series_and_appends_nothing() {
    let s = staffed(3).await;
    let targets: Vec<&Record> = s.records.iter().collect();
    // The attacker with the database file rewrites record 2's subject past the port.
    let store = &s.relay.adapters.record_store;
    store.drop_append_only_controls().await.unwrap();
    let attempt = store
        .try_rewrite_subject(&trail(TRAIL), targets[1].chain_seq.get(), "forged.dat")
        .await
        .unwrap();
    assert!(matches!(attempt, TamperAttempt::Accepted(1)), "{attempt:?}");
    let before = head(&s.relay).await;
    let (st, body) = batch(&s.relay, &s.rita, hexes(&targets), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let v = verdicts(&body);
    assert_eq!(v[1].2.as_deref(), Some("target_not_intact"), "{body}");
    assert!(v[0].1 && v[2].1, "{body}");
    assert_eq!(head(&s.relay).await, before);
    assert!(s.relay.records_of(TRAIL, "SIGNATURE").await.is_empty());
}

// REQ: R4.1
#[tokio::test]
async fn a_wrong_password_appends_nothing_and_counts_once_towards_the_lockout() {
    let s = staffed(3).await;
    let targets: Vec<&Record> = s.records.iter().collect();
    let before = head(&s.relay).await;
    let failed_before = s.relay.account("rita").await.failed_attempts;
    let (st, body) = batch(
        &s.relay,
        &s.rita,
        hexes(&targets),
        "reviewed",
        "not the password",
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(head(&s.relay).await, before);
    assert_eq!(
        s.relay.account("rita").await.failed_attempts,
        failed_before + 1,
        "one series is one authentication"
    );
    // The same lockout as single signing: after the threshold, 429 even with the right one.
    for _ in 1..5 {
        let (st, _) = batch(
            &s.relay,
            &s.rita,
            hexes(&targets),
            "reviewed",
            "wrong again",
        )
        .await;
        assert!(
            st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
            "{st}"
        );
    }
    let (st, body) = batch(&s.relay, &s.rita, hexes(&targets), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(head(&s.relay).await, before);
}

// REQ: R4.2
#[tokio::test]
async fn duplicates_too_many_none_and_foreign_checksums_are_refused() {
    let s = staffed(2).await;
    let [a, b] = [&s.records[0], &s.records[1]];
    let foreign = s.relay.capture("other-trail", "run9/fid").await;
    let before = head(&s.relay).await;
    let (st, body) = batch(&s.relay, &s.rita, hexes(&[a, b, a]), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "duplicate_target");
    let many: Vec<String> = (0..501u32).map(|i| format!("{i:064x}")).collect();
    let (st, body) = batch(&s.relay, &s.rita, many, "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "too_many_targets");
    let (st, body) = batch(&s.relay, &s.rita, Vec::new(), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (st, body) = batch(
        &s.relay,
        &s.rita,
        vec![a.checksum.to_hex(), "XYZ".into()],
        "reviewed",
        PASSWORD,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // A record of another trail is not in this one: refused by name, nothing signed.
    let (st, body) = batch(
        &s.relay,
        &s.rita,
        hexes(&[a, &foreign]),
        "reviewed",
        PASSWORD,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        verdicts(&body),
        vec![
            (Some(a.chain_seq.get()), true, None),
            (None, false, Some("unknown_target".into())),
        ]
    );
    assert_eq!(head(&s.relay).await, before);
    assert!(
        s.relay
            .records_of("other-trail", "SIGNATURE")
            .await
            .is_empty()
    );
}

// REQ: R4.1
#[tokio::test]
async fn operators_admins_and_auditors_cannot_sign_in_bulk() {
    let s = staffed(2).await;
    let targets: Vec<&Record> = s.records.iter().collect();
    let otto = s.relay.login("otto", PASSWORD).await;
    let aud = s.relay.login("aud", PASSWORD).await;
    for token in [&otto, &aud, &s.admin] {
        let (st, body) = batch(&s.relay, token, hexes(&targets), "reviewed", PASSWORD).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    }
    let (st, _, _) = s
        .relay
        .call(
            Method::POST,
            "/api/v1/signatures/batch",
            None,
            Some(
                json!({"trail_id": TRAIL, "target_checksums": hexes(&targets),
                "meaning": "reviewed", "reason": "x", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(s.relay.records_of(TRAIL, "SIGNATURE").await.is_empty());
}

// REQ: R4.2
#[tokio::test]
async fn the_reviewer_of_a_series_cannot_approve_it_nor_can_its_author() {
    let s = staffed(3).await;
    let targets: Vec<&Record> = s.records.iter().collect();
    let (st, body) = batch(&s.relay, &s.rita, hexes(&targets), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let before = head(&s.relay).await;
    let (st, body) = batch(&s.relay, &s.rita, hexes(&targets), "approved", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        verdicts(&body)
            .iter()
            .all(|v| !v.1 && v.2.as_deref() == Some("approver_is_reviewer")),
        "{body}"
    );
    let (st, body) = batch(&s.relay, &s.labop, hexes(&targets), "approved", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        verdicts(&body)
            .iter()
            .all(|v| v.2.as_deref() == Some("approver_is_author")),
        "{body}"
    );
    // Approval before any review: refused for the unreviewed target only.
    let fresh = s.relay.capture(TRAIL, "run2/fid").await;
    let before2 = head(&s.relay).await;
    assert_eq!(before2, before + 1);
    let (st, body) = batch(
        &s.relay,
        &s.roy,
        hexes(&[targets[0], &fresh]),
        "approved",
        PASSWORD,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(verdicts(&body)[1].2.as_deref(), Some("review_required"));
    assert_eq!(head(&s.relay).await, before2);
    assert_eq!(s.relay.records_of(TRAIL, "SIGNATURE").await.len(), 3);
}

// REQ: R4.2
#[tokio::test]
async fn a_signature_record_cannot_be_a_target_of_a_series() {
    let s = staffed(1).await;
    let a = &s.records[0];
    single(&s.relay, &s.rita, a, "reviewed").await;
    let sig = s.relay.records_of(TRAIL, "SIGNATURE").await.remove(0);
    let (st, body) = batch(&s.relay, &s.roy, hexes(&[&sig]), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(verdicts(&body)[0].2.as_deref(), Some("invalid_target"));
}

// REQ: R11.2
#[tokio::test]
async fn the_openapi_document_gives_every_status_of_the_batch_endpoint() {
    let relay = Relay::start().await;
    let (s, _, doc) = relay
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let op = &doc["paths"]["/api/v1/signatures/batch"]["post"];
    for status in ["201", "401", "403", "409", "422", "429", "503"] {
        assert!(
            op["responses"][status].is_object(),
            "{status} missing: {op}"
        );
    }
    // A 409 is either the per-target verdicts or, on the server of record, the plain error body.
    let refused = &doc["components"]["schemas"]["BatchRefusedBody"];
    let required = refused["required"].as_array().unwrap();
    assert!(required.iter().any(|r| r == "error"), "{refused}");
    assert!(!required.iter().any(|r| r == "results"), "{refused}");
}

// REQ: R4.2
#[tokio::test]
async fn on_the_server_of_record_forwarded_trails_are_never_signed_in_bulk() {
    let relay = Relay::start_server(&["edge-a"]).await;
    let admin = relay.register_admin("ada").await;
    relay
        .create(&admin, "rita", "Rita Reviewer", "reviewer")
        .await;
    let record = relay.capture(TRAIL, "run1/fid").await;
    let rita = relay.login("rita", PASSWORD).await;
    let before = head(&relay).await;
    let (st, body) = batch(&relay, &rita, hexes(&[&record]), "reviewed", PASSWORD).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "replica_read_only");
    assert_eq!(head(&relay).await, before);
}
