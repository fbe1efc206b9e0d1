//! The four-eyes settings as the change form reads them (issue 25):
//! `GET /api/v1/changes/settings` answers every setting with its form, bounds and the value this
//! relay runs with, to administrators only, recorded as `ACCESS`; bad input is 400 and other
//! roles 403. The proposal keeps validating: the read only describes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

async fn settings(relay: &Relay, token: &str, query: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::GET,
            &format!("/api/v1/changes/settings{query}"),
            Some(token),
            None,
        )
        .await;
    (s, b)
}

fn find<'a>(all: &'a Value, name: &str) -> &'a Value {
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["setting"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {all}"))
}

// REQ: R3.4, R11.1, R11.2
#[tokio::test]
async fn an_admin_reads_every_setting_with_its_form_bounds_and_current_value() {
    let mut config = default_config();
    config.signing_workflow = relay_domain::workflow::WorkflowPolicy::RELAXED;
    let relay = Relay::start_with(config).await;
    let ada = relay.register_admin("ada").await;
    let before = relay.records_of("_relay", "ACCESS").await.len();
    let (s, all) = settings(&relay, &ada, "").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    // Every setting of ChangeSetting, in its stable order.
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["setting"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 14, "{names:?}");
    assert_eq!(names[0], "watch");
    let settle = find(&all, "settle_ms");
    assert_eq!(settle["kind"], "integer");
    assert_eq!(settle["unit"], "ms");
    assert_eq!(settle["min"], 1);
    assert_eq!(settle["max"], 9_007_199_254_740_991_u64);
    assert_eq!(settle["applies"], "at_restart");
    assert_eq!(settle["expected"], "a whole number of at least 1");
    // The API test harness has no runtime to report the capture settings: said, not guessed.
    assert!(settle["current"].is_null());
    assert!(
        settle["current_note"]
            .as_str()
            .unwrap()
            .contains("not reported")
    );
    // What the API itself runs with is reported.
    let reg = find(&all, "registration_closed");
    assert_eq!(reg["kind"], "boolean");
    assert_eq!(reg["current"], false);
    let wf = find(&all, "signing_workflow");
    assert_eq!(wf["kind"], "workflow");
    assert_eq!(wf["options"], json!(["strict", "relaxed"]));
    assert_eq!(wf["current"]["review_before_approval"], false);
    assert_eq!(wf["current"]["no_repeated_meaning"], false);
    let role = find(&all, "account_role");
    assert_eq!(
        role["options"],
        json!(["operator", "reviewer", "admin", "auditor"])
    );
    assert!(role["current"].is_null());
    assert!(role["current_note"].as_str().unwrap().contains("account"));
    assert_eq!(role["applies"], "now");
    // A relay without ingest cannot issue tokens: said per setting.
    assert_eq!(find(&all, "ingest_token")["applies"], "not_here");
    let code = find(&all, "enrollment_code");
    assert_eq!(
        (code["unit"].clone(), code["max"].clone()),
        (json!("min"), json!(10080))
    );
    // The read is an ACCESS event naming the reader.
    let access = relay.records_of("_relay", "ACCESS").await;
    assert_eq!(access.len(), before + 1);
    let last = access.last().unwrap();
    assert_eq!(last.actor.as_str(), "ada");
    assert_eq!(
        last.payload.to_value().unwrap()["action"],
        "read_change_settings"
    );
    relay.assert_verifies().await;
}

// REQ: R3.2, R11.2
#[tokio::test]
async fn one_setting_with_its_pending_proposals() {
    let relay = Relay::start().await;
    let ada = relay.register_admin("ada").await;
    let (s, _, p) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&ada),
            Some(json!({"setting": "settle_ms", "value": 5000, "reason": "slow NMR probe"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, one) = settings(&relay, &ada, "?setting=settle_ms").await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["pending"], json!([p["id"]]));
    let (_, other) = settings(&relay, &ada, "?setting=retention_days").await;
    assert_eq!(other[0]["pending"], json!([]));
}

// REQ: R3.1, R11.2
#[tokio::test]
async fn bad_input_is_400_and_other_roles_are_refused() {
    let relay = Relay::start().await;
    let ada = relay.register_admin("ada").await;
    for (query, why) in [
        ("?setting=nope", "unknown setting"),
        ("?setting=", "empty setting"),
        ("?colour=red", "unknown parameter"),
    ] {
        let (s, b) = settings(&relay, &ada, query).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{why}: {b}");
        assert_eq!(b["error"]["code"], "bad_request", "{why}: {b}");
    }
    for (name, role) in [
        ("aude", "auditor"),
        ("rita", "reviewer"),
        ("otto", "operator"),
    ] {
        relay
            .create(&ada, name, &format!("{name} Person"), role)
            .await;
        let token = relay.login(name, PASSWORD).await;
        let (s, b) = settings(&relay, &token, "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}: {b}");
    }
    let (s, _, b) = relay
        .call(Method::GET, "/api/v1/changes/settings", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // Documented in the OpenAPI document with every status it answers.
    let (_, _, doc) = relay
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let op = &doc["paths"]["/api/v1/changes/settings"]["get"];
    for status in ["200", "400", "401", "403", "503"] {
        assert!(op["responses"][status].is_object(), "{status} missing");
    }
}
