//! The review UI's filters and pickers (issue 25): `project` and `folder` on
//! `GET /api/v1/events` (with totals from the per-trail tally matching a pass over the trail),
//! `GET /api/v1/trails/{trail}/facets` (distinct actors, projects and top-level run folders
//! with counts, capped, logged as ACCESS), pages cut short by `max_scan` answering the cursor
//! to continue from, and bad input answered 400, never 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use relay_domain::{Actor, ActorSource, Device, EventDraft, EventKind, Payload, Project, Subject};
use serde_json::{Value, json};
use support::{Relay, default_config, trail};

const TRAIL: &str = "nmr-filters";

/// Appends a file record of `kind` by `actor` in `project` about `subject`.
async fn file(relay: &Relay, kind: EventKind, actor: &str, project: Option<&str>, subject: &str) {
    relay
        .appender
        .append(EventDraft {
            trail_id: trail(TRAIL),
            kind,
            actor: Some(Actor::new(actor).unwrap()),
            actor_source: ActorSource::OsSession,
            occurred_at: None,
            device: Device::new("test-ws").unwrap(),
            project: project.map(|p| Project::new(p).unwrap()),
            subject: Some(Subject::new(subject).unwrap()),
            payload: Payload::from_value(&json!({"sha256": "ab".repeat(32), "size": 42})).unwrap(),
        })
        .await
        .unwrap();
}

/// 30 records: runs `run1` (12 files, PRJ-A, ada) and `run10` (9 files, PRJ-B, grace), 6
/// modifications in `run1/sub` by ada (PRJ-A), 3 files at the root without a project (labop).
async fn with_mix() -> (Relay, String) {
    with_mix_config(default_config()).await
}

async fn with_mix_config(config: relay_api::ApiConfig) -> (Relay, String) {
    let relay = Relay::start_with(config).await;
    let admin = relay.register_admin("rosa").await;
    for i in 0..12 {
        file(
            &relay,
            EventKind::file_created(),
            "ada",
            Some("PRJ-A"),
            &format!("run1/f{i}.fid"),
        )
        .await;
        if i < 9 {
            file(
                &relay,
                EventKind::file_created(),
                "grace",
                Some("PRJ-B"),
                &format!("run10/f{i}.fid"),
            )
            .await;
        }
    }
    for i in 0..6 {
        file(
            &relay,
            EventKind::file_modified(),
            "ada",
            Some("PRJ-A"),
            &format!("run1/sub/g{i}.fid"),
        )
        .await;
    }
    for i in 0..3 {
        file(
            &relay,
            EventKind::file_created(),
            "labop",
            None,
            &format!("root-{i}.fid"),
        )
        .await;
    }
    (relay, admin)
}

async fn get(relay: &Relay, token: &str, uri: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay.call(Method::GET, uri, Some(token), None).await;
    (s, b)
}

fn subjects(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect()
}

// REQ: R11.1, R11.2
#[tokio::test]
async fn project_and_folder_filters_select_exactly_and_count_like_a_full_pass() {
    let (relay, admin) = with_mix().await;
    let cases: [(&str, u64); 9] = [
        ("project=PRJ-A", 18),
        ("project=PRJ-B", 9),
        ("project=PRJ", 0),
        ("folder=run1", 18),
        ("folder=run1/", 18),
        ("folder=run1/sub", 6),
        ("folder=run10", 9),
        ("folder=run", 0),
        ("project=PRJ-A&kind=FILE_MODIFIED&actor=ada&folder=run1", 6),
    ];
    for (filter, want) in cases {
        for order in ["asc", "desc"] {
            let uri =
                format!("/api/v1/events?trail={TRAIL}&{filter}&order={order}&limit=500&count=true");
            let (s, page) = get(&relay, &admin, &uri).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {page}");
            assert_eq!(page["total"], want, "{uri}: {page}");
            assert_eq!(
                page["events"].as_array().unwrap().len() as u64,
                want,
                "{uri}"
            );
            assert_eq!(page["offset"], 0, "{uri}");
        }
    }
    // `run1` does not take `run10`'s records; a nested folder does not take its parent's.
    let (_, page) = get(
        &relay,
        &admin,
        &format!("/api/v1/events?trail={TRAIL}&folder=run1&limit=500"),
    )
    .await;
    assert!(
        subjects(&page).iter().all(|s| s.starts_with("run1/")),
        "{page}"
    );
    let (_, page) = get(
        &relay,
        &admin,
        &format!("/api/v1/events?trail={TRAIL}&folder=run1/sub&limit=500"),
    )
    .await;
    assert!(
        subjects(&page).iter().all(|s| s.starts_with("run1/sub/")),
        "{page}"
    );
    // Offsets of later pages (read from the shorter side of the cursor) agree with paging.
    for order in ["asc", "desc"] {
        let mut cursor = String::new();
        let mut seen = 0u64;
        loop {
            let uri = format!(
                "/api/v1/events?trail={TRAIL}&project=PRJ-A&order={order}&limit=4&count=true{cursor}"
            );
            let (s, page) = get(&relay, &admin, &uri).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            assert_eq!(page["total"], 18, "{uri}");
            assert_eq!(page["offset"], seen, "{uri}");
            seen += page["events"].as_array().unwrap().len() as u64;
            let next = if order == "asc" {
                &page["next_after_seq"]
            } else {
                &page["next_before_seq"]
            };
            match next.as_u64() {
                Some(n) if order == "asc" => cursor = format!("&after_seq={n}"),
                Some(n) => cursor = format!("&before_seq={n}"),
                None => break,
            }
        }
        assert_eq!(seen, 18);
    }
}

// REQ: R11.1, R3.4
#[tokio::test]
async fn facets_answer_actors_projects_and_run_folders_with_counts_and_are_logged() {
    let (relay, admin) = with_mix().await;
    let before = relay.records_of("_relay", "ACCESS").await.len();
    let (s, f) = get(&relay, &admin, &format!("/api/v1/trails/{TRAIL}/facets")).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["trail_id"], TRAIL);
    assert_eq!(f["records"], 30);
    assert_eq!(f["complete"], true);
    assert_eq!(
        f["actors"],
        json!({"values": [{"value": "ada", "count": 18}, {"value": "grace", "count": 9}, {"value": "labop", "count": 3}], "more": 0})
    );
    assert_eq!(
        f["projects"],
        json!({"values": [{"value": "PRJ-A", "count": 18}, {"value": "PRJ-B", "count": 9}], "more": 0})
    );
    assert_eq!(
        f["folders"],
        json!({"values": [{"value": "run1", "count": 18}, {"value": "run10", "count": 9}], "more": 0})
    );
    // Capped lists say how many more there are.
    let (s, f) = get(
        &relay,
        &admin,
        &format!("/api/v1/trails/{TRAIL}/facets?limit=1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(
        f["actors"],
        json!({"values": [{"value": "ada", "count": 18}], "more": 2})
    );
    // Kept incrementally: a new record is counted at the next read.
    file(
        &relay,
        EventKind::file_created(),
        "grace",
        Some("PRJ-C"),
        "run99/x.fid",
    )
    .await;
    let (_, f) = get(&relay, &admin, &format!("/api/v1/trails/{TRAIL}/facets")).await;
    assert_eq!(f["records"], 31);
    assert!(
        f["projects"]["values"]
            .as_array()
            .unwrap()
            .contains(&json!({"value": "PRJ-C", "count": 1})),
        "{f}"
    );
    // Each read is an ACCESS event naming the trail.
    let access = relay.records_of("_relay", "ACCESS").await;
    let reads: Vec<_> = access[before..]
        .iter()
        .filter(|r| r.payload.as_str().contains("read_facets"))
        .collect();
    assert_eq!(reads.len(), 3);
    assert!(
        reads
            .iter()
            .all(|r| r.payload.as_str().contains(TRAIL) && r.actor.as_str() == "rosa")
    );
}

// REQ: R11.2
#[tokio::test]
async fn bad_filter_and_facet_input_is_400_not_500() {
    let (relay, admin) = with_mix().await;
    for filter in [
        "folder=/data/run1",
        "folder=run1/../secret",
        "folder=./run1",
        "folder=run1//x",
        "folder=run1%5Cx",
        "folder=%2F",
        "project=%01bad",
    ] {
        let uri = format!("/api/v1/events?trail={TRAIL}&{filter}");
        let (s, body) = get(&relay, &admin, &uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let field = filter.split('=').next().unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{uri}: {body}"
        );
    }
    for (uri, want) in [
        (
            format!("/api/v1/trails/{TRAIL}/facets?limit=0"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/trails/{TRAIL}/facets?limit=1001"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/trails/{TRAIL}/facets?limit=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/trails/Not%20a%20trail/facets".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/trails/no-such-trail/facets".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, body) = get(&relay, &admin, &uri).await;
        assert_eq!(s, want, "{uri}: {body}");
    }
    let (s, _, _) = relay
        .call(
            Method::GET,
            &format!("/api/v1/trails/{TRAIL}/facets"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The OpenAPI document names the endpoint with every status it answers.
    let (_, _, doc) = relay
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let op = &doc["paths"]["/api/v1/trails/{trail}/facets"]["get"];
    for status in ["200", "400", "401", "404", "503"] {
        assert!(
            op["responses"].get(status).is_some(),
            "facets {status} documented: {op}"
        );
    }
    let params = doc["paths"]["/api/v1/events"]["get"]["parameters"].to_string();
    assert!(
        params.contains("\"project\"") && params.contains("\"folder\""),
        "{params}"
    );
}

// REQ: R11.1
#[tokio::test]
async fn a_page_cut_short_by_max_scan_answers_how_far_it_searched() {
    let mut config = default_config();
    config.max_scan = 10;
    let (relay, admin) = with_mix_config(config).await;
    // "root-" matches only the last three records (28..=30); newest first finds them at once,
    // oldest first stops after 10 records with none found and the cursor to continue.
    let (s, page) = get(
        &relay,
        &admin,
        &format!("/api/v1/events?trail={TRAIL}&q=root-&order=asc&limit=50"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["scanned"], 10);
    assert_eq!(page["next_after_seq"], 10);
    let mut found = Vec::new();
    let mut after = 0;
    let mut reads = 0;
    loop {
        reads += 1;
        let (_, page) = get(
            &relay,
            &admin,
            &format!("/api/v1/events?trail={TRAIL}&q=root-&order=asc&limit=50&after_seq={after}"),
        )
        .await;
        found.extend(subjects(&page));
        match page["next_after_seq"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(found, ["root-0.fid", "root-1.fid", "root-2.fid"]);
    assert_eq!(reads, 4, "30 records in scans of 10, then the end");
    let (_, page) = get(
        &relay,
        &admin,
        &format!("/api/v1/events?trail={TRAIL}&q=root-&order=desc&limit=50&before_seq=28"),
    )
    .await;
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["scanned"], 10);
    assert_eq!(page["next_before_seq"], 18, "scanned #27 down to #18");
}
