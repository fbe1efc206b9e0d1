//! Time of receipt on the server of record (issue 21): every newly ingested record gets the
//! server's time of receipt, outside the chained bytes; a re-send never replaces it; the API,
//! its exports and the record view show it with the late flag and the threshold used; and a
//! receipt that cannot be stored is acknowledged but never silent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::{Receipt, ReceiptError, ReceiptStore, SecretProviderExt, TimeSource};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Record, Subject,
    Timestamp, TrailId,
};
use serde_json::{Value, json};
use support::*;

const EDGE: &str = "ws-1";
const LATE_AFTER: Duration = Duration::from_secs(900);

/// An edge of `relay`: its own store and manual clock, chaining with the key provisioned on the
/// server as `trail-hmac.ws-1`, and its ingest token.
struct Edge {
    store: Arc<InMemoryRecordStore>,
    clock: Arc<ManualClock>,
    appender: AppendService,
    token: String,
}

async fn edge_of(relay: &Relay) -> Edge {
    let secrets = &relay.adapters.secrets;
    let key = secrets
        .current_or_create(&relay_api::trail_key_secret(&trail(EDGE)).unwrap())
        .await
        .unwrap()
        .to_trail_key()
        .unwrap();
    let token = relay_api::token_text(
        &secrets
            .current_or_create(&relay_api::ingest_token_secret(EDGE).unwrap())
            .await
            .unwrap(),
    );
    let store = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_unix_micros(1_000_000).unwrap(),
    ));
    let appender = AppendService::new(store.clone(), clock.clone(), key);
    Edge {
        store,
        clock,
        appender,
        token,
    }
}

async fn server_now(relay: &Relay) -> Timestamp {
    relay.adapters.clock.now().await.unwrap().at
}

impl Edge {
    /// Captures `n` files recorded at `at` (the edge's clock).
    async fn capture(&self, n: usize, at: Timestamp, tag: &str) -> Vec<Record> {
        self.clock.set(at);
        let mut out = Vec::new();
        for i in 0..n {
            out.push(
                self.appender
                    .append(EventDraft {
                        trail_id: trail(EDGE),
                        kind: EventKind::file_created(),
                        actor: Some(Actor::new("labop").unwrap()),
                        actor_source: ActorSource::OsSession,
                        occurred_at: None,
                        device: Device::new(EDGE).unwrap(),
                        project: None,
                        subject: Some(Subject::new(format!("{tag}-{i}.fid")).unwrap()),
                        payload: Payload::from_value(&json!({"n": i})).unwrap(),
                    })
                    .await
                    .unwrap(),
            );
        }
        out
    }

    async fn ingest(&self, relay: &Relay, records: &[Record]) -> (StatusCode, Value) {
        let (s, _, b) = relay
            .call_with(
                Method::POST,
                "/api/v1/ingest",
                Some(&self.token),
                Some(json!({"trail_id": EDGE, "records": records})),
                &[("x-relay-edge", EDGE)],
            )
            .await;
        (s, b)
    }
}

fn micros_ago(now: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_unix_micros(now.unix_micros() - secs * 1_000_000).unwrap()
}

async fn events(relay: &Relay, token: &str, trail_id: &str) -> Vec<Value> {
    let (s, _, b) = relay
        .call(
            Method::GET,
            &format!("/api/v1/events?trail={trail_id}&limit=500"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["events"].as_array().unwrap().clone()
}

// REQ: R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_records_show_their_time_of_receipt_and_late_ones_are_flagged_outside_the_chain() {
    let relay = Relay::start_server_with_receipts(&[EDGE], LATE_AFTER, None).await;
    let admin = relay.register_admin("ada").await;
    let edge = edge_of(&relay).await;
    let now = server_now(&relay).await;
    // Two records recorded an hour ago (the server was down), one recorded just now.
    let backlog = edge.capture(2, micros_ago(now, 3600), "backlog").await;
    let (s, b) = edge.ingest(&relay, &backlog).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["appended"], 2);
    let prompt = edge.capture(1, server_now(&relay).await, "prompt").await;
    let (s, b) = edge.ingest(&relay, &prompt).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let first_view = events(&relay, &admin, EDGE).await;
    assert_eq!(first_view.len(), 3);
    for e in &first_view[..2] {
        assert_eq!(e["late"], true, "{e}");
        assert_eq!(e["late_after_secs"], 900);
        assert!(e["received_after_ms"].as_i64().unwrap() >= 3_600_000, "{e}");
        let received = Timestamp::parse_canonical(e["received_at"].as_str().unwrap()).unwrap();
        assert!(received >= now, "{e}");
    }
    assert_eq!(first_view[2]["late"], false, "{}", first_view[2]);
    assert!(first_view[2]["received_at"].is_string());

    // A re-send (whole, and overlapping the head then continuing) never replaces a receipt:
    // only the newly stored record gets one.
    let more = edge
        .capture(1, micros_ago(server_now(&relay).await, 1800), "more")
        .await;
    let mut resend = backlog.clone();
    resend.extend(prompt.clone());
    let (s, b) = edge.ingest(&relay, &resend).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["appended"].as_u64(), b["already_present"].as_u64()),
        (Some(0), Some(3))
    );
    resend.extend(more.clone());
    let (s, b) = edge.ingest(&relay, &resend).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["appended"].as_u64(), b["already_present"].as_u64()),
        (Some(1), Some(3))
    );
    let second_view = events(&relay, &admin, EDGE).await;
    for (before, after) in first_view.iter().zip(&second_view) {
        assert_eq!(
            before["received_at"], after["received_at"],
            "the first receipt stays"
        );
    }
    assert_eq!(second_view[3]["late"], true, "{}", second_view[3]);
    let stored = relay
        .adapters
        .receipts
        .receipts(&trail(EDGE), 1, u64::MAX)
        .await
        .unwrap();
    let ranges: Vec<(u64, u64, &str)> = stored
        .iter()
        .map(|r| (r.first_seq, r.last_seq, r.edge.as_str()))
        .collect();
    assert_eq!(ranges, [(1, 2, EDGE), (3, 3, EDGE), (4, 4, EDGE)]);

    // One record read on its own says the same.
    let (s, _, one) = relay
        .call(Method::GET, "/api/v1/events/ws-1/1", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["late"], true);
    assert_eq!(one["received_at"], second_view[0]["received_at"]);

    // Exports carry it: JSON per record, CSV in three more columns.
    let (s, _, json_export) = relay
        .call(
            Method::GET,
            "/api/v1/export?trail=ws-1&format=json",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_export["records"][0]["late"], true);
    assert_eq!(json_export["records"][2]["late"], false);
    let (s, _, csv) = relay
        .call(
            Method::GET,
            "/api/v1/export?trail=ws-1&format=csv",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with(",signatures,received_at,late,late_after_secs,review_status,superseded_by")
    );
    let row1 = lines.next().unwrap();
    assert!(
        row1.contains(&format!(
            ",{},\"true\",\"900\",",
            csv_quoted(second_view[0]["received_at"].as_str().unwrap())
        )),
        "{row1}"
    );

    // The server's own `_relay` records are not forwarded: no receipt, no late flag.
    let own = events(&relay, &admin, "_relay").await;
    assert!(!own.is_empty());
    assert!(
        own.iter()
            .all(|e| e["received_at"].is_null() && e["late"].is_null())
    );

    // Receipts live outside the chain: the server's trail is the edge's, byte for byte.
    let server_trail = relay_domain::ports::RecordStore::read(
        relay.adapters.record_store.as_ref(),
        &trail(EDGE),
        0,
        100,
    )
    .await
    .unwrap();
    let edge_trail =
        relay_domain::ports::RecordStore::read(edge.store.as_ref(), &trail(EDGE), 0, 100)
            .await
            .unwrap();
    assert_eq!(server_trail, edge_trail);
}

fn csv_quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// A receipt store that is down.
#[derive(Debug)]
struct DownReceipts;

#[async_trait]
impl ReceiptStore for DownReceipts {
    async fn record(&self, _: &Receipt) -> Result<(), ReceiptError> {
        Err(ReceiptError::Unavailable {
            message: "receipt store offline (test)".into(),
            source: None,
        })
    }

    async fn receipts(&self, _: &TrailId, _: u64, _: u64) -> Result<Vec<Receipt>, ReceiptError> {
        Ok(Vec::new())
    }
}

// REQ: R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_cannot_be_stored_is_acknowledged_shown_as_unknown_and_recorded_as_a_system_event()
 {
    let relay =
        Relay::start_server_with_receipts(&[EDGE], LATE_AFTER, Some(Arc::new(DownReceipts))).await;
    let admin = relay.register_admin("ada").await;
    let edge = edge_of(&relay).await;
    let records = edge
        .capture(2, micros_ago(server_now(&relay).await, 3600), "lost")
        .await;
    // The records are stored and acknowledged: refusing would only make the edge re-send
    // records the server holds, which get no receipt.
    let (s, b) = edge.ingest(&relay, &records).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["appended"], 2);
    let shown = events(&relay, &admin, EDGE).await;
    for e in &shown {
        assert!(e["received_at"].is_null(), "unknown, never made up: {e}");
        assert!(e["late"].is_null(), "{e}");
        assert_eq!(e["late_after_secs"], 900);
    }
    // Never silent: a SYSTEM event keeps the time of receipt in the server's own chain.
    let system: Vec<Value> = relay
        .records_of("_relay", "SYSTEM")
        .await
        .iter()
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p["event"] == "RECEIPT_NOT_RECORDED")
        .collect();
    assert_eq!(system.len(), 1, "{system:?}");
    assert_eq!(system[0]["trail"], EDGE);
    assert_eq!(
        (
            system[0]["first_seq"].as_u64(),
            system[0]["last_seq"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(system[0]["received_at"].is_string(), "{}", system[0]);
    assert!(
        system[0]["reason"].as_str().unwrap().contains("offline"),
        "{}",
        system[0]
    );
}

// REQ: R8.5
#[tokio::test]
async fn an_edge_shows_no_receipt_fields() {
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    relay.capture("lims", "run/1.fid").await;
    let shown = events(&relay, &admin, "lims").await;
    assert_eq!(shown.len(), 1);
    for field in [
        "received_at",
        "received_after_ms",
        "late",
        "late_after_secs",
    ] {
        assert!(shown[0][field].is_null(), "{field}: {}", shown[0]);
    }
}
