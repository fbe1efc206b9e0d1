//! The signing workflow's separation of author and approver, its installation policy, and the
//! API's human-readable CSV export of review status and escaped signatures (issue 20), on the
//! real local adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use relay_domain::workflow::WorkflowPolicy;
use serde_json::{Value, json};
use support::{PASSWORD, Relay, default_config};

/// A relay with an admin and the reviewers `labop` (the capture's author: `Relay::capture`
/// attributes captures to `labop`) and `rita`; one captured file.
async fn staffed(policy: WorkflowPolicy) -> (Relay, String, String, relay_domain::Record) {
    let mut config = default_config();
    config.signing_workflow = policy;
    let relay = Relay::start_with(config).await;
    let admin = relay.register_admin("ada").await;
    relay
        .create(&admin, "labop", "Lab Operator", "reviewer")
        .await;
    relay
        .create(&admin, "rita", "Rita Reviewer", "reviewer")
        .await;
    let record = relay.capture("nmr-01", "run1/fid").await;
    let labop = relay.login("labop", PASSWORD).await;
    let rita = relay.login("rita", PASSWORD).await;
    (relay, labop, rita, record)
}

async fn sign(
    relay: &Relay,
    token: &str,
    record: &relay_domain::Record,
    meaning: &str,
    reason: &str,
) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(token),
            Some(
                json!({"trail_id": "nmr-01", "target_checksum": record.checksum.to_hex(),
                "meaning": meaning, "reason": reason, "password": PASSWORD}),
            ),
        )
        .await;
    (s, b)
}

// REQ: R4.2
#[tokio::test]
async fn the_author_of_a_capture_cannot_approve_it_and_a_relaxed_policy_allows_it() {
    let (relay, labop, rita, record) = staffed(WorkflowPolicy::STRICT).await;
    let (s, b) = sign(&relay, &rita, &record, "reviewed", "checked").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = sign(&relay, &labop, &record, "approved", "mine").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "approver_is_author");
    let refused = relay.records_of("_relay", "SIGNATURE_REFUSED").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor.as_str(), "labop");
    assert!(refused[0].payload.as_str().contains("approver_is_author"));
    relay.assert_verifies().await;

    // An installation whose approved policy switches the rules off signs in any order.
    let (relay, labop, _, record) = staffed(WorkflowPolicy::RELAXED).await;
    let (s, b) = sign(&relay, &labop, &record, "approved", "mine, relaxed").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // ... but an approved record stays final.
    let (s, b) = sign(&relay, &labop, &record, "rejected", "changed my mind").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "already_approved");
}

// REQ: R4.3, R5.1
#[tokio::test]
async fn the_csv_view_carries_the_review_status_and_signatures_that_split_back() {
    let (relay, _, rita, record) = staffed(WorkflowPolicy::STRICT).await;
    let reason = "baseline; phase | corrected \\ \"ok\"";
    let (s, b) = sign(&relay, &rita, &record, "reviewed", reason).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _, body) = relay
        .call(
            Method::GET,
            "/api/v1/export?trail=nmr-01&format=csv&kind=FILE_CREATED",
            Some(&rita),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = body.as_str().unwrap();
    let mut reader = csv_rows(text);
    let header = reader.remove(0);
    let row = reader.remove(0);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(row[col("review_status")], "reviewed");
    let fields = relay_domain::export::parse_signatures_cell(&row[col("signatures")]).unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0][0], "Rita Reviewer");
    assert_eq!(fields[0][1], "rita");
    assert_eq!(fields[0][3], "reviewed");
    assert_eq!(fields[0][4], reason, "the reason splits back exactly");
}

/// RFC 4180 rows of `text` (quoted cells with doubled quotes; the API quotes every cell).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
