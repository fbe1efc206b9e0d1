//! Approved four-eyes changes take effect where the running relay owns the setting: an
//! account's role at once (the user's next request has the new role), an edge's ingest token at
//! once on the server of record (a revoked token is refused with 401), and a setting the relay
//! does not own is refused at proposal instead of being approved and silently ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, Relay};

async fn propose(relay: &Relay, token: &str, setting: &str, value: Value) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(token),
            Some(json!({"setting": setting, "value": value, "reason": "lab lead asked"})),
        )
        .await;
    (s, b)
}

async fn approve(relay: &Relay, token: &str, id: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(token),
            Some(json!({"password": PASSWORD, "reason": "checked"})),
        )
        .await;
    (s, b)
}

/// ada and bob (admins) and rita (reviewer), with their tokens.
async fn staff(relay: &Relay) -> (String, String, String) {
    let ada = relay.register_admin("ada").await;
    relay.create(&ada, "bob", "Bob Admin", "admin").await;
    relay
        .create(&ada, "rita", "Rita Reviewer", "reviewer")
        .await;
    let bob = relay.login("bob", PASSWORD).await;
    let rita = relay.login("rita", PASSWORD).await;
    (ada, bob, rita)
}

async fn can_list_accounts(relay: &Relay, token: &str) -> StatusCode {
    relay
        .call(Method::GET, "/api/v1/accounts", Some(token), None)
        .await
        .0
}

// REQ: R3.1, R3.2
#[tokio::test]
async fn an_approved_role_change_is_in_effect_on_the_users_next_request() {
    let relay = Relay::start().await;
    let (ada, bob, rita) = staff(&relay).await;
    assert_eq!(
        can_list_accounts(&relay, &rita).await,
        StatusCode::FORBIDDEN
    );

    // Granting the admin role directly is refused: it needs a second administrator.
    let heads = relay.heads_except_relay().await;
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/rita",
            Some(&ada),
            Some(json!({"role": "admin", "reason": "needs admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "four_eyes_required");
    assert_eq!(relay.heads_except_relay().await, heads);

    let (s, p) = propose(
        &relay,
        &ada,
        "account_role",
        json!({"username": "rita", "role": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert!(
        p["takes_effect"].as_str().unwrap().contains("at once"),
        "{p}"
    );
    let id = p["id"].as_str().unwrap().to_owned();
    // Proposed is not approved: rita is still a reviewer.
    assert_eq!(
        can_list_accounts(&relay, &rita).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        relay.account("rita").await.role,
        relay_domain::ports::Role::Reviewer
    );

    let (s, a) = approve(&relay, &bob, &id).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["state"], "approved");
    assert_eq!(a["applied"]["role"], "admin");
    assert_eq!(a["applied"]["previous_role"], "reviewer");
    assert!(
        a["takes_effect"].as_str().unwrap().contains("in effect"),
        "{a}"
    );

    // Her session is the same; her next request has the new role.
    assert_eq!(can_list_accounts(&relay, &rita).await, StatusCode::OK);
    assert_eq!(
        relay.account("rita").await.role,
        relay_domain::ports::Role::Admin
    );
    // The effect is its own chained event, after the approval, naming the change.
    let approved = relay.records_of("_relay", "CHANGE_APPROVED").await;
    let changed = relay.records_of("_relay", "ACCOUNT_CHANGED").await;
    let last = changed.last().unwrap();
    assert!(last.chain_seq > approved[0].chain_seq);
    assert_eq!(last.actor.as_str(), "bob");
    let payload = last.payload.to_value().unwrap();
    assert_eq!(payload["change_id"], id.as_str());
    assert_eq!(payload["changes"]["role"]["from"], "reviewer");
    assert_eq!(payload["changes"]["role"]["to"], "admin");
    relay.assert_verifies().await;

    // And back: a demotion approved by another admin takes effect just as fast.
    let (_, p) = propose(
        &relay,
        &bob,
        "account_role",
        json!({"username": "rita", "role": "reviewer"}),
    )
    .await;
    let (s, a) = approve(&relay, &ada, p["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        can_list_accounts(&relay, &rita).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_admin_cannot_approve_a_change_of_their_own_role_and_unknown_accounts_are_refused() {
    let relay = Relay::start().await;
    let (ada, bob, _) = staff(&relay).await;
    let (s, b) = propose(
        &relay,
        &ada,
        "account_role",
        json!({"username": "nobody", "role": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = propose(
        &relay,
        &ada,
        "account_role",
        json!({"username": "rita", "role": "overlord"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // ada proposes to demote bob; bob approving it himself would be his own say over his role.
    let (s, p) = propose(
        &relay,
        &ada,
        "account_role",
        json!({"username": "bob", "role": "reviewer"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let heads = relay.heads_except_relay().await;
    let (s, b) = approve(&relay, &bob, p["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "own_role");
    assert_eq!(
        relay.heads_except_relay().await,
        heads,
        "a refused approval records nothing"
    );
    assert_eq!(
        relay.account("bob").await.role,
        relay_domain::ports::Role::Admin
    );
}

#[tokio::test]
async fn a_setting_this_relay_does_not_own_cannot_be_proposed() {
    // Not a server of record: ingest tokens are not this relay's to issue.
    let relay = Relay::start().await;
    let (ada, _, _) = staff(&relay).await;
    let heads = relay.heads().await;
    let (s, b) = propose(
        &relay,
        &ada,
        "ingest_token",
        json!({"source": "ws-1", "action": "revoke"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "not_applicable");
    assert_eq!(relay.heads().await, heads);
}

/// Posts an empty batch as `edge` with `token`; authentication runs before anything else.
async fn ingest_as(relay: &Relay, edge: &str, token: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call_with(
            Method::POST,
            "/api/v1/ingest",
            Some(token),
            Some(json!({"trail_id": "ws-1-trail", "records": []})),
            &[("x-relay-edge", edge)],
        )
        .await;
    (s, b)
}

async fn current_token(relay: &Relay, edge: &str) -> String {
    let name = relay_api::ingest_token_secret(edge).unwrap();
    relay_api::token_text(&relay.adapters.secrets.current(&name).await.unwrap())
}

// REQ: R8.3
#[tokio::test]
async fn a_revoked_ingest_token_is_refused_with_401_and_an_issued_one_is_accepted() {
    let relay = Relay::start_server(&["ws-1"]).await;
    let (ada, bob, _) = staff(&relay).await;

    // Issue: the edge's token exists only once the change is approved.
    let (s, p) = propose(
        &relay,
        &ada,
        "ingest_token",
        json!({"source": "ws-1", "action": "issue"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, b) = ingest_as(&relay, "ws-1", &"00".repeat(32)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no token yet: {b}");
    let (s, a) = approve(&relay, &bob, p["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["applied"]["action"], "issued");
    let first = current_token(&relay, "ws-1").await;
    assert!(
        !a.to_string().contains(&first),
        "the API never shows a token"
    );
    let (s, b) = ingest_as(&relay, "ws-1", &first).await;
    assert_ne!(
        s,
        StatusCode::UNAUTHORIZED,
        "an issued token authenticates: {b}"
    );

    // Revoke: the same token is refused at once, and so is anything else the edge presents.
    let (_, p) = propose(
        &relay,
        &bob,
        "ingest_token",
        json!({"source": "ws-1", "action": "revoke"}),
    )
    .await;
    let (s, a) = approve(&relay, &ada, p["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["applied"]["action"], "revoked");
    let (s, b) = ingest_as(&relay, "ws-1", &first).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let replaced = current_token(&relay, "ws-1").await;
    assert_ne!(replaced, first, "revocation replaces the secret");
    let (s, _) = ingest_as(&relay, "ws-1", &replaced).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a revoked edge is refused whatever it presents"
    );
    let events = relay.records_of("_relay", "SYSTEM").await;
    // The refused ingest calls are SYSTEM `INGEST_REFUSED` events too; the token changes are
    // the ones naming a change.
    let kinds: Vec<String> = events
        .iter()
        .map(|r| r.payload.to_value().unwrap())
        .filter(|p| p.get("change_id").is_some())
        .map(|p| p["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["INGEST_TOKEN_ISSUED", "INGEST_TOKEN_REVOKED"]);
    assert!(
        events.iter().all(|r| !r.payload.as_str().contains(&first)),
        "no token text in the trail"
    );

    // Issue again: a fresh token nobody has seen; the revoked one stays dead.
    let (_, p) = propose(
        &relay,
        &ada,
        "ingest_token",
        json!({"source": "ws-1", "action": "issue"}),
    )
    .await;
    let (s, a) = approve(&relay, &bob, p["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let second = current_token(&relay, "ws-1").await;
    assert_ne!(second, first);
    assert_ne!(second, replaced);
    let (s, _) = ingest_as(&relay, "ws-1", &first).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = ingest_as(&relay, "ws-1", &second).await;
    assert_ne!(s, StatusCode::UNAUTHORIZED, "{b}");
    relay.assert_verifies().await;
}
