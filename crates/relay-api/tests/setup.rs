//! The first-start answer (issue 25): `GET /api/v1/auth/setup` tells, without a session,
//! whether no account exists yet and whether registering without a session is open; it
//! records nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::*;

async fn setup(relay: &Relay) -> serde_json::Value {
    let (s, _, b) = relay
        .call(Method::GET, "/api/v1/auth/setup", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

#[tokio::test]
async fn a_fresh_relay_is_at_its_first_start_until_an_account_exists() {
    let relay = Relay::start().await;
    let heads = relay.heads().await;
    assert_eq!(
        setup(&relay).await,
        json!({"registration_open": true, "first_account": true})
    );
    // Asked anonymously, and nothing is recorded for it.
    assert_eq!(relay.heads().await, heads);

    relay.register_admin("ada").await;
    assert_eq!(
        setup(&relay).await,
        json!({"registration_open": false, "first_account": false})
    );
}

#[tokio::test]
async fn closed_registration_is_not_open_even_at_the_first_start() {
    let mut config = default_config();
    config.registration_closed = true;
    let relay = Relay::start_with(config).await;
    assert_eq!(
        setup(&relay).await,
        json!({"registration_open": false, "first_account": true})
    );
}
