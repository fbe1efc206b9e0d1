//! Four-eyes configuration changes, attacked: self-approval, approval after expiry, approval
//! with a wrong password, by a non-admin, twice. Each refusal has its exact status and leaves
//! every chain unchanged; each accepted step is a chained `_relay` event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, Relay, default_config};

/// A relay with two administrators (ada, bob) and an auditor; returns their tokens.
async fn two_admins(relay: &Relay) -> (String, String, String) {
    let ada = relay.register_admin("ada").await;
    relay.create(&ada, "bob", "Bob Admin", "admin").await;
    relay.create(&ada, "aude", "Aude Auditor", "auditor").await;
    let bob = relay.login("bob", PASSWORD).await;
    let aude = relay.login("aude", PASSWORD).await;
    (ada, bob, aude)
}

async fn propose(relay: &Relay, token: &str, setting: &str, value: Value) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(token),
            Some(json!({"setting": setting, "value": value, "reason": "slower NMR probe"})),
        )
        .await;
    (s, b)
}

async fn approve(relay: &Relay, token: &str, id: &str, password: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(token),
            Some(json!({"password": password, "reason": "checked with the lab lead"})),
        )
        .await;
    (s, b)
}

#[tokio::test]
async fn a_second_admin_approves_with_a_signature_and_both_steps_are_chained() {
    let relay = Relay::start().await;
    let (ada, bob, aude) = two_admins(&relay).await;
    let (s, p) = propose(&relay, &ada, "settle_ms", json!(5000)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["state"], "pending");
    let id = p["id"].as_str().unwrap().to_owned();

    // Pending proposals are visible to admins and auditors.
    let (s, _, list) = relay
        .call(Method::GET, "/api/v1/changes", Some(&aude), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "pending");

    let (s, a) = approve(&relay, &bob, &id, PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["state"], "approved");
    assert_eq!(a["decided_by"], "bob");
    assert!(a["takes_effect"].as_str().unwrap().contains("next start"));

    let proposed = relay.records_of("_relay", "CHANGE_PROPOSED").await;
    let approved = relay.records_of("_relay", "CHANGE_APPROVED").await;
    assert_eq!(proposed.len(), 1);
    assert_eq!(approved.len(), 1);
    assert_eq!(proposed[0].actor.as_str(), "ada");
    assert_eq!(approved[0].actor.as_str(), "bob");
    let payload = approved[0].payload.to_value().unwrap();
    assert_eq!(payload["change_id"], id.as_str());
    assert_eq!(payload["setting"], "settle_ms");
    assert_eq!(payload["value"], 5000);
    assert_eq!(payload["reason"], "checked with the lab lead");
    relay.assert_verifies().await;

    // Approving again is a conflict, and records nothing.
    let heads = relay.heads_except_relay().await;
    let (s, b) = approve(&relay, &ada, &id, PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}"); // ada proposed it
    let (s, b) = approve(&relay, &bob, &id, PASSWORD).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "not_pending");
    assert_eq!(relay.heads_except_relay().await, heads);
}

#[tokio::test]
async fn the_same_admin_approving_their_own_proposal_is_403() {
    let relay = Relay::start().await;
    let (ada, _bob, _) = two_admins(&relay).await;
    let (s, p) = propose(&relay, &ada, "registration_closed", json!(false)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap();
    let heads = relay.heads_except_relay().await;
    let (s, b) = approve(&relay, &ada, id, PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "self_approval");
    assert_eq!(
        relay.heads_except_relay().await,
        heads,
        "a refused approval records nothing"
    );
    assert!(
        relay
            .records_of("_relay", "CHANGE_APPROVED")
            .await
            .is_empty()
    );
    let (_, _, list) = relay
        .call(Method::GET, "/api/v1/changes", Some(&ada), None)
        .await;
    assert_eq!(list[0]["state"], "pending");
}

#[tokio::test]
async fn an_expired_proposal_cannot_be_approved() {
    let mut config = default_config();
    config.change_expiry = Duration::from_millis(300);
    let relay = Relay::start_with(config).await;
    let (ada, bob, _) = two_admins(&relay).await;
    let (s, p) = propose(&relay, &ada, "watch", json!(["/srv/other"])).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, _, list) = relay
        .call(Method::GET, "/api/v1/changes", Some(&bob), None)
        .await;
    assert_eq!(list[0]["state"], "expired");
    let heads = relay.heads().await;
    let (s, b) = approve(&relay, &bob, id, PASSWORD).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "expired");
    assert_eq!(relay.heads().await, heads);
}

#[tokio::test]
async fn approval_rechecks_the_password_and_needs_an_admin() {
    let relay = Relay::start().await;
    let (ada, bob, aude) = two_admins(&relay).await;
    let (_, p) = propose(&relay, &ada, "notary_interval_secs", json!(86400)).await;
    let id = p["id"].as_str().unwrap();
    let (s, b) = approve(&relay, &bob, id, "not the password").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, b) = approve(&relay, &aude, id, PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = propose(&relay, &aude, "settle_ms", json!(1)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = approve(&relay, &bob, "cr-doesnotexist", PASSWORD).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // Only the failed password attempt is new (it counts towards lockout, as for signatures);
    // no change event was written.
    assert!(
        relay
            .records_of("_relay", "CHANGE_APPROVED")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bad_settings_and_values_are_422_and_a_rejection_is_chained() {
    let relay = Relay::start().await;
    let (ada, bob, _) = two_admins(&relay).await;
    let (s, b) = propose(&relay, &ada, "colour", json!(1)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_setting");
    let (s, b) = propose(&relay, &ada, "settle_ms", json!("fast")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_value");
    let (_, p) = propose(&relay, &ada, "retention_days", json!(30)).await;
    let id = p["id"].as_str().unwrap();
    let (s, _, r) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/reject"),
            Some(&bob),
            Some(json!({"reason": "retention below the SOP minimum"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "rejected");
    let rejected = relay.records_of("_relay", "CHANGE_REJECTED").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].actor.as_str(), "bob");
    let (s, b) = approve(&relay, &bob, id, PASSWORD).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    relay.assert_verifies().await;
}
