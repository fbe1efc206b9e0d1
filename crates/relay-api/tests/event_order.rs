//! The event list's newest-first order, totals and exclusions (issue 25): `order`,
//! `before_seq`, `exclude_kind` and `count` on `GET /api/v1/events`, the default (oldest first,
//! no totals) unchanged for API clients, and bad input answered 400, never 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use support::Relay;

const TRAIL: &str = "nmr-order";

/// A relay with an admin and `n` captured files in `TRAIL` (seqs 1..=n).
async fn with_records(n: u64) -> (Relay, String) {
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    for i in 1..=n {
        relay.capture(TRAIL, &format!("run1/file-{i:03}.fid")).await;
    }
    (relay, admin)
}

async fn get(relay: &Relay, token: &str, query: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::GET,
            &format!("/api/v1/events?{query}"),
            Some(token),
            None,
        )
        .await;
    (s, b)
}

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["chain_seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_default_order_is_unchanged_oldest_first_without_totals() {
    let (relay, admin) = with_records(5).await;
    let (s, page) = get(&relay, &admin, &format!("trail={TRAIL}&limit=2")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(seqs(&page), vec![1, 2]);
    assert_eq!(page["next_after_seq"], 2);
    assert!(page.get("total").is_none(), "no total unless asked: {page}");
    assert!(page.get("next_before_seq").is_none());
}

#[tokio::test]
async fn desc_pages_newest_first_to_the_start_of_the_trail() {
    // More records than one store read (500), so the backwards windows join up.
    let (relay, admin) = with_records(1203).await;
    let mut cursor: Option<u64> = None;
    let mut all = Vec::new();
    loop {
        let q = match cursor {
            None => format!("trail={TRAIL}&order=desc&limit=500&count=true"),
            Some(c) => format!("trail={TRAIL}&order=desc&limit=500&count=true&before_seq={c}"),
        };
        let (s, page) = get(&relay, &admin, &q).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 1203);
        assert_eq!(page["offset"].as_u64().unwrap(), all.len() as u64, "{q}");
        assert!(page["next_after_seq"].is_null());
        all.extend(seqs(&page));
        match page["next_before_seq"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<u64> = (1..=1203).rev().collect();
    assert_eq!(all, want);
}

#[tokio::test]
async fn desc_with_a_filter_counts_and_pages_the_matches() {
    let (relay, admin) = with_records(30).await;
    // file-001 .. file-009 and file-010 .. file-019 match "file-01" only for 10..=19.
    let (s, page) = get(
        &relay,
        &admin,
        &format!("trail={TRAIL}&order=desc&limit=4&count=true&q=file-01"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(seqs(&page), vec![19, 18, 17, 16]);
    assert_eq!(page["total"], 10);
    assert_eq!(page["offset"], 0);
    let next = page["next_before_seq"].as_u64().unwrap();
    let (_, page) = get(
        &relay,
        &admin,
        &format!("trail={TRAIL}&order=desc&limit=4&count=true&q=file-01&before_seq={next}"),
    )
    .await;
    assert_eq!(seqs(&page), vec![15, 14, 13, 12]);
    assert_eq!(page["offset"], 4);
    // Ascending with a cursor: the offset counts the matches at or below it.
    let (_, page) = get(
        &relay,
        &admin,
        &format!("trail={TRAIL}&limit=3&count=true&q=file-01&after_seq=12"),
    )
    .await;
    assert_eq!(seqs(&page), vec![13, 14, 15]);
    assert_eq!(
        (page["total"].as_u64(), page["offset"].as_u64()),
        (Some(10), Some(3))
    );
}

#[tokio::test]
async fn exclude_kind_hides_access_events_case_insensitively() {
    let (relay, admin) = with_records(2).await;
    // Every read above is an ACCESS event in _relay; a few more.
    for _ in 0..3 {
        get(&relay, &admin, &format!("trail={TRAIL}")).await;
    }
    let (s, all) = get(
        &relay,
        &admin,
        "trail=_relay&order=desc&limit=500&count=true",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let kinds = |p: &Value| -> Vec<String> {
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(kinds(&all).iter().any(|k| k == "ACCESS"));
    let (s, some) = get(
        &relay,
        &admin,
        "trail=_relay&order=desc&limit=500&count=true&exclude_kind=access,%20login",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{some}");
    let left = kinds(&some);
    assert!(!left.is_empty(), "the registration is left: {some}");
    assert!(
        left.iter().all(|k| k != "ACCESS" && k != "LOGIN"),
        "{left:?}"
    );
    assert_eq!(some["total"].as_u64().unwrap(), left.len() as u64);
    assert!(some["total"].as_u64() < all["total"].as_u64());
}

#[tokio::test]
async fn a_cursor_past_the_head_and_an_empty_trail_answer_empty_pages() {
    let (relay, admin) = with_records(3).await;
    let (s, page) = get(
        &relay,
        &admin,
        &format!("trail={TRAIL}&order=desc&before_seq=9007199254740991&count=true"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(seqs(&page), vec![3, 2, 1]);
    assert_eq!(page["offset"], 0);
    let (s, page) = get(
        &relay,
        &admin,
        &format!("trail={TRAIL}&order=desc&before_seq=1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(seqs(&page).is_empty());
    assert!(page.get("next_before_seq").is_none());
    let (s, page) = get(&relay, &admin, "trail=no-such-trail&order=desc&count=true").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(seqs(&page).is_empty());
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn bad_order_and_cursor_input_is_400_never_500() {
    let (relay, admin) = with_records(2).await;
    for (q, code) in [
        ("order=sideways", "bad_request"),
        ("order=", "bad_request"),
        ("order=desc&after_seq=1", "bad_request"),
        ("order=asc&before_seq=2", "bad_request"),
        ("before_seq=2", "bad_request"),
        ("order=desc&before_seq=0", "out_of_range"),
        ("order=desc&before_seq=9007199254740992", "out_of_range"),
        ("order=desc&before_seq=-1", "out_of_range"),
        ("order=desc&before_seq=abc", "out_of_range"),
        ("count=maybe", "bad_request"),
    ] {
        let (s, body) = get(&relay, &admin, &format!("trail={TRAIL}&{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eq!(body["error"]["code"], code, "{q}: {body}");
    }
}
