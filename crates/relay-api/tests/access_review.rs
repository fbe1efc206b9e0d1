//! The periodic access review (issue 18, 21 CFR 11.10(d), 11.300(b)) attacked from outside, as an
//! inspector and an insider would: who may read it, what completing it takes, what it shows
//! after a four-eyes role change, and what its `ACCESS_REVIEWED` signature attests.
//!
//! Before: there was no review at all; an inspector asking "who had which role when, who
//! created this account, who never logged in" got a list of rows without history, and nothing
//! recorded that anyone ever looked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, Relay};

/// ada (first admin), bob (the bootstrap second admin), rita (reviewer), otto (operator),
/// audrey (auditor), with their tokens.
struct Staff {
    ada: String,
    bob: String,
    rita: String,
    otto: String,
    audrey: String,
}

async fn staff(relay: &Relay) -> Staff {
    let ada = relay.register_admin("ada").await;
    relay.create(&ada, "bob", "Bob Admin", "admin").await;
    relay
        .create(&ada, "rita", "Rita Reviewer", "reviewer")
        .await;
    relay
        .create(&ada, "otto", "Otto Operator", "operator")
        .await;
    relay
        .create(&ada, "audrey", "Audrey Auditor", "auditor")
        .await;
    Staff {
        bob: relay.login("bob", PASSWORD).await,
        rita: relay.login("rita", PASSWORD).await,
        otto: relay.login("otto", PASSWORD).await,
        audrey: relay.login("audrey", PASSWORD).await,
        ada,
    }
}

async fn review(relay: &Relay, token: &str) -> Value {
    let (s, _, b) = relay
        .call(Method::GET, "/api/v1/access-review", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

fn row<'a>(review: &'a Value, username: &str) -> &'a Value {
    review["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == username)
        .unwrap_or_else(|| panic!("{username} is not in the review: {review}"))
}

async fn complete(relay: &Relay, token: &str, body: Value) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/access-review/complete",
            Some(token),
            Some(body),
        )
        .await;
    (s, b)
}

// REQ: R3.1, R3.2
#[tokio::test]
async fn operators_and_reviewers_may_neither_read_nor_complete_nor_export_the_review() {
    let relay = Relay::start().await;
    let staff = staff(&relay).await;
    for token in [&staff.otto, &staff.rita] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/access-review", None),
            (
                Method::POST,
                "/api/v1/access-review/complete",
                Some(json!({"password": PASSWORD, "reason": "quarterly review"})),
            ),
            (Method::POST, "/api/v1/access-review/export", None),
        ] {
            let (s, _, b) = relay.call(method, path, Some(token), body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        }
    }
    assert!(
        relay
            .records_of("_relay", "ACCESS_REVIEWED")
            .await
            .is_empty(),
        "a refused completion records nothing"
    );
    // Anonymous callers get 401.
    let (s, _, _) = relay
        .call(Method::GET, "/api/v1/access-review", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

// REQ: R3.2, R3.4, R4.1
#[tokio::test]
async fn completing_the_review_takes_a_reason_and_the_right_password_and_records_its_digest() {
    let relay = Relay::start().await;
    let staff = staff(&relay).await;
    let read = review(&relay, &staff.audrey).await;
    let digest = read["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);

    // No reason: 422, nothing recorded.
    let (s, b) = complete(
        &relay,
        &staff.audrey,
        json!({"password": PASSWORD, "review_digest": digest}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "reason_required");
    let (s, b) = complete(
        &relay,
        &staff.audrey,
        json!({"password": PASSWORD, "reason": "   ", "review_digest": digest}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Wrong password: 401, nothing recorded, and the session stays open.
    let heads = relay.heads().await;
    let (s, b) = complete(
        &relay,
        &staff.audrey,
        json!({"password": "not the password at all", "reason": "quarterly review"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(
        relay
            .records_of("_relay", "ACCESS_REVIEWED")
            .await
            .is_empty()
    );
    assert_eq!(
        relay.heads_except_relay().await,
        heads
            .into_iter()
            .filter(|h| h.0 != "_relay")
            .collect::<Vec<_>>()
    );

    // A review that changed since it was read (the failed password is counted on audrey's
    // row) is refused with 409: the signature attests only what the reviewer saw.
    let (s, b) = complete(
        &relay,
        &staff.audrey,
        json!({"password": PASSWORD, "reason": "quarterly review", "review_digest": digest}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "review_changed");
    assert!(
        relay
            .records_of("_relay", "ACCESS_REVIEWED")
            .await
            .is_empty()
    );

    // Read again, then sign: 201 and an ACCESS_REVIEWED event carrying that digest.
    let read = review(&relay, &staff.audrey).await;
    let digest = read["digest"].as_str().unwrap().to_owned();
    let (s, b) = complete(
        &relay,
        &staff.audrey,
        json!({"password": PASSWORD, "reason": "Q4 review: all accounts justified", "review_digest": digest}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["review_digest"], digest.as_str());
    let events = relay.records_of("_relay", "ACCESS_REVIEWED").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.actor.as_str(), "audrey");
    assert_eq!(event.chain_seq.get(), b["seq"].as_u64().unwrap());
    let payload = event.payload.to_value().unwrap();
    assert_eq!(payload["review_digest"], digest.as_str());
    assert_eq!(payload["reason"], "Q4 review: all accounts justified");
    assert_eq!(payload["printed_name"], "Audrey Auditor");
    assert_eq!(payload["role"], "auditor");
    assert_eq!(payload["accounts"], 5);

    // The next review starts its period at this one and names it.
    let next = review(&relay, &staff.ada).await;
    assert_eq!(next["previous_review"]["seq"], event.chain_seq.get());
    assert_eq!(next["previous_review"]["reviewer"], "audrey");
    assert_eq!(next["previous_review"]["review_digest"], digest.as_str());
    assert_eq!(
        next["period_from"].as_str().unwrap(),
        event.recorded_at.to_canonical()
    );
    relay.assert_verifies().await;
}

// REQ: R3.2
#[tokio::test]
async fn the_review_shows_a_four_eyes_role_change_and_flags_the_bootstrap_second_admin() {
    let relay = Relay::start().await;
    let staff = staff(&relay).await;
    // ada proposes making rita an auditor; bob approves.
    let (s, _, p) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&staff.ada),
            Some(json!({"setting": "account_role", "value": {"username": "rita", "role": "auditor"}, "reason": "moved to QA audit"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let (s, _, a) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(&staff.bob),
            Some(json!({"password": PASSWORD, "reason": "confirmed with QA head"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    // One failed login typed as RITA, one with a name that is no account.
    for name in ["RITA", "mallory"] {
        let (s, _, _) = relay
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": name, "password": "wrong wrong wrong"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    let r = review(&relay, &staff.ada).await;
    let rita = row(&r, "rita");
    assert_eq!(rita["role"], "auditor");
    let history = rita["role_history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{rita}");
    assert_eq!(history[0]["from"], Value::Null);
    assert_eq!(history[0]["to"], "reviewer");
    // A reviewer signs: created by a four-eyes change ada proposed and bob approved.
    assert_eq!(history[0]["by"], "bob");
    assert_eq!(history[0]["proposed_by"], "ada");
    assert_eq!(history[1]["from"], "reviewer");
    assert_eq!(history[1]["to"], "auditor");
    assert_eq!(history[1]["by"], "bob", "the approver carried it out");
    assert_eq!(history[1]["proposed_by"], "ada");
    assert_eq!(history[1]["change_id"], id.as_str());
    assert_eq!(history[1]["reason"], "moved to QA audit");
    assert_eq!(
        rita["created_by"], "bob",
        "the approver carried out the creation"
    );
    assert_eq!(rita["creation"], "four_eyes", "{rita}");
    assert_eq!(rita["failed_logins"], 1);
    assert_eq!(r["failed_logins_unknown_names"], 1);

    let bob = row(&r, "bob");
    assert_eq!(bob["creation"], "second_admin_bootstrap");
    assert!(
        bob["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("bootstrap_second_admin")),
        "{bob}"
    );
    assert_eq!(
        bob["creation_reason"],
        "a second administrator for four-eyes"
    );
    let ada = row(&r, "ada");
    assert_eq!(ada["creation"], "first_admin");
    assert!(
        !ada["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("bootstrap_second_admin"))
    );
    // Every row agrees with the trail here.
    for a in r["accounts"].as_array().unwrap() {
        assert!(
            !a["flags"]
                .as_array()
                .unwrap()
                .contains(&json!("row_disagrees_with_trail")),
            "{a}"
        );
    }
    // Reading the review is itself an ACCESS event.
    let access = relay.records_of("_relay", "ACCESS").await;
    assert!(access.iter().any(|r| {
        r.actor.as_str() == "ada" && r.payload.to_value().unwrap()["action"] == "access_review"
    }));
}

// REQ: R11.2
#[tokio::test]
async fn the_sealed_review_export_answers_503_where_sealed_exports_are_not_enabled() {
    let relay = Relay::start().await;
    let staff = staff(&relay).await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/access-review/export",
            Some(&staff.audrey),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "exports_disabled");
}
