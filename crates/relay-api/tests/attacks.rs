//! Every Part 11 access control of the API, attacked: forged tokens, header spoofing, anonymous
//! registration, password guessing, signing by the wrong role, signing what is not there. Each
//! test asserts the exact status and that a refused call leaves every chain unchanged and
//! verifiable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use relay_domain::ports::AccountStore;
use serde_json::{Value, json};
use support::{PASSWORD, Relay, default_config};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn forge(alg: Algorithm, kid: &str, key: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// Signs `header.payload` with HMAC-SHA256 under `key` whatever the header claims.
fn hmac_sign_raw(header: &Value, claims: &Value, key: &[u8]) -> String {
    let msg = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

/// A relay with an admin, a reviewer, an operator and an auditor, and one captured file in
/// each of two trails.
async fn staffed() -> (Relay, String, String) {
    let relay = Relay::start().await;
    relay.capture("nmr-01", "run1/spectrum.fid").await;
    relay.capture("hplc-02", "batch7/chrom.cdf").await;
    let admin = relay.register_admin("ada").await;
    relay
        .create(&admin, "rita", "Rita Reviewer", "reviewer")
        .await;
    relay
        .create(&admin, "otto", "Otto Operator", "operator")
        .await;
    relay
        .create(&admin, "aude", "Aude Auditor", "auditor")
        .await;
    let reviewer = relay.login("rita", PASSWORD).await;
    (relay, admin, reviewer)
}

async fn me(relay: &Relay, token: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await;
    (s, b)
}

// REQ: R2.1
#[tokio::test]
async fn alg_none_token_is_401() {
    let (relay, _, reviewer) = staffed().await;
    assert_eq!(me(&relay, &reviewer).await.0, StatusCode::OK, "control");
    let claims = claims_of(&reviewer);
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let token = format!(
            "{}.{}.",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let (s, b) = me(&relay, &token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "alg {alg}: {b}");
        assert_eq!(b["error"]["code"], "invalid_token");
    }
}

// REQ: R2.1
#[tokio::test]
async fn hs_rs_confusion_and_other_algorithms_are_401() {
    let (relay, _, reviewer) = staffed().await;
    let (kid, key) = relay.token_key().await;
    let claims = claims_of(&reviewer);
    // Control: the same claims, HS256 under the real key, are accepted.
    assert_eq!(
        me(&relay, &forge(Algorithm::HS256, &kid, &key, &claims))
            .await
            .0,
        StatusCode::OK
    );
    // RS256 in the header, HMAC-signed with the server's key as if it were a public key.
    let rs = hmac_sign_raw(
        &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        &claims,
        &key,
    );
    let (s, b) = me(&relay, &rs).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let es = hmac_sign_raw(
        &json!({"alg": "ES256", "typ": "JWT", "kid": kid}),
        &claims,
        &key,
    );
    assert_eq!(me(&relay, &es).await.0, StatusCode::UNAUTHORIZED);
    // Another HMAC algorithm with the right key is still not the pinned one.
    let hs512 = forge(Algorithm::HS512, &kid, &key, &claims);
    assert_eq!(me(&relay, &hs512).await.0, StatusCode::UNAUTHORIZED);
}

// REQ: R2.1
#[tokio::test]
async fn token_signed_with_a_wrong_key_is_401() {
    let (relay, _, reviewer) = staffed().await;
    let (kid, _) = relay.token_key().await;
    let token = forge(Algorithm::HS256, &kid, &[7u8; 32], &claims_of(&reviewer));
    let (s, b) = me(&relay, &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "invalid_token");
}

// REQ: R2.1
#[tokio::test]
async fn expired_token_is_401() {
    let (relay, _, reviewer) = staffed().await;
    let (kid, key) = relay.token_key().await;
    let mut claims = claims_of(&reviewer);
    claims["iat"] = json!(now_secs() - 7200);
    claims["exp"] = json!(now_secs() - 3600);
    let (s, b) = me(&relay, &forge(Algorithm::HS256, &kid, &key, &claims)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "token_expired");
    // Missing required claims are refused too.
    let mut no_exp = claims_of(&reviewer);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        me(&relay, &forge(Algorithm::HS256, &kid, &key, &no_exp))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let mut wrong_aud = claims_of(&reviewer);
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        me(&relay, &forge(Algorithm::HS256, &kid, &key, &wrong_aud))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

// REQ: R2.1, R3.3
#[tokio::test]
async fn tampered_payload_is_401() {
    let (relay, _, reviewer) = staffed().await;
    let mut parts: Vec<String> = reviewer.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(&reviewer);
    claims["sub"] = json!("ada");
    parts[1] = B64.encode(claims.to_string());
    let tampered = parts.join(".");
    let (s, b) = me(&relay, &tampered).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let mut longer = claims_of(&reviewer);
    longer["exp"] = json!(now_secs() + 10 * 365 * 86400);
    parts[1] = B64.encode(longer.to_string());
    assert_eq!(
        me(&relay, &parts.join(".")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

// REQ: R3.3
#[tokio::test]
async fn token_of_a_disabled_account_is_401() {
    let (relay, admin, reviewer) = staffed().await;
    assert_eq!(me(&relay, &reviewer).await.0, StatusCode::OK);
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/rita",
            Some(&admin),
            Some(json!({"disabled": true, "reason": "left the company"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = me(&relay, &reviewer).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // Even a fresh token forged with the real key for that account is refused.
    let (kid, key) = relay.token_key().await;
    let forged = forge(Algorithm::HS256, &kid, &key, &claims_of(&reviewer));
    assert_eq!(me(&relay, &forged).await.0, StatusCode::UNAUTHORIZED);
    // And it cannot log in again.
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let changes = relay.records_of("_relay", "ACCOUNT_CHANGED").await;
    let last = changes.last().unwrap();
    assert_eq!(last.actor.as_str(), "ada");
    assert!(last.payload.as_str().contains("\"disabled\":true"));
}

// REQ: R2.1
#[tokio::test]
async fn x_user_id_header_has_no_effect_on_attribution() {
    let (relay, _, reviewer) = staffed().await;
    let target = relay.records_of("nmr-01", "FILE_CREATED").await.remove(0);
    let spoof = [
        ("x-user-id", "ada"),
        ("x-forwarded-user", "ada"),
        ("x-remote-user", "ada"),
    ];
    // Without a token, the header authenticates nobody.
    let (s, _, _) = relay
        .call_with(Method::GET, "/api/v1/trails", None, None, &spoof)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // With a reviewer's token, the header does not change who acts.
    let (s, _, b) = relay
        .call_with(
            Method::POST,
            "/api/v1/signatures",
            Some(&reviewer),
            Some(
                json!({"trail_id": "nmr-01", "target_checksum": target.checksum.to_hex(),
                "meaning": "reviewed", "reason": "spectrum checked", "password": PASSWORD}),
            ),
            &spoof,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let sig = relay.records_of("nmr-01", "SIGNATURE").await.remove(0);
    assert_eq!(sig.actor.as_str(), "rita");
    assert!(sig.payload.as_str().contains("Rita Reviewer"));
    let (s, _, _) = relay
        .call_with(
            Method::GET,
            "/api/v1/events?trail=nmr-01",
            Some(&reviewer),
            None,
            &spoof,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let access = relay.records_of("_relay", "ACCESS").await;
    let last = access.last().unwrap();
    assert_eq!(last.actor.as_str(), "rita");
    assert_eq!(last.actor_source.as_str(), "token");
    assert!(!access.iter().any(|r| r.actor.as_str() == "ada"));
}

// REQ: R3.2
#[tokio::test]
async fn second_anonymous_registration_is_refused() {
    let relay = Relay::start().await;
    relay.register_admin("ada").await;
    let before = relay.heads().await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "mallory", "full_name": "M", "password": PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "admin_required");
    assert_eq!(
        relay.heads().await,
        before,
        "a refused call appends nothing"
    );
    assert!(
        relay
            .adapters
            .accounts
            .get(&relay_domain::ports::Username::new("mallory").unwrap())
            .await
            .map(|a| a.is_none())
            .unwrap()
    );
    relay.assert_verifies().await;
    let registers = relay.records_of("_relay", "REGISTER").await;
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0].actor.as_str(), "ada");
}

// REQ: R3.2
#[tokio::test]
async fn first_registration_must_be_an_admin_and_closed_registration_refuses_everyone() {
    let relay = Relay::start().await;
    let (s, _, _) = relay
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "rita", "full_name": "R", "password": PASSWORD, "role": "reviewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let admin = relay.register_admin("ada").await;
    // A non-admin cannot create accounts.
    relay
        .create(&admin, "rita", "Rita Reviewer", "reviewer")
        .await;
    let reviewer = relay.login("rita", PASSWORD).await;
    let (s, _, _) = relay
        .call(
            Method::POST,
            "/api/v1/accounts",
            Some(&reviewer),
            Some(
                json!({"username": "eve", "full_name": "E", "password": PASSWORD, "role": "admin"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let mut config = default_config();
    config.registration_closed = true;
    let closed = Relay::open(relay.dir, config).await;
    let admin = closed.login("ada", PASSWORD).await;
    let before = closed.heads().await;
    let (s, _, b) = closed
        .call(
            Method::POST,
            "/api/v1/accounts",
            Some(&admin),
            Some(json!({"username": "new1", "full_name": "N", "password": PASSWORD, "role": "reviewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "registration_closed");
    // Issue 18: the 403 itself is recorded (ACCESS_DENIED in `_relay`), nothing else.
    assert_eq!(
        closed.heads_except_relay().await,
        before
            .into_iter()
            .filter(|h| h.0 != "_relay")
            .collect::<Vec<_>>()
    );
    assert!(
        !closed
            .records_of("_relay", "ACCESS_DENIED")
            .await
            .is_empty()
    );
}

// REQ: R1.6, R3.3
#[tokio::test]
async fn sixth_bad_password_is_429_with_retry_after_and_a_lockout_event() {
    let (relay, _, _) = staffed().await;
    for i in 1..=5 {
        let (s, _, b) = relay
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "rita", "password": format!("wrong guess {i}")})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}: {b}");
    }
    let (s, headers, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": "wrong guess 6"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "Retry-After {retry}");
    assert_eq!(b["error"]["code"], "locked");
    // Even the right password is refused while locked.
    let (s, headers, _) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    let lockouts = relay.records_of("_relay", "LOCKOUT").await;
    assert_eq!(lockouts.len(), 1);
    assert_eq!(
        lockouts[0].subject.as_ref().unwrap().as_str(),
        "account:rita"
    );
    assert!(
        lockouts[0]
            .payload
            .as_str()
            .contains("\"during\":\"login\"")
    );
    assert_eq!(relay.metrics.lockouts.get(), 1);
    assert_eq!(relay.metrics.login_failures.get(), 7);
    relay.assert_verifies().await;

    // The lock survives a restart: it is kept in the account store.
    let reopened = Relay::open(relay.dir, default_config()).await;
    let (s, _, _) = reopened
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

// REQ: R3.3
#[tokio::test]
async fn wrong_signature_passwords_lock_the_account_too() {
    let (relay, _, reviewer) = staffed().await;
    let target = relay.records_of("nmr-01", "FILE_CREATED").await.remove(0);
    let body = |pw: &str| {
        json!({"trail_id": "nmr-01", "target_checksum": target.checksum.to_hex(),
            "meaning": "approved", "reason": "ok", "password": pw})
    };
    let before = relay.records_of("nmr-01", "SIGNATURE").await.len();
    for i in 1..=5 {
        let (s, _, _) = relay
            .call(
                Method::POST,
                "/api/v1/signatures",
                Some(&reviewer),
                Some(body(&format!("bad {i}"))),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let (s, headers, _) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(&reviewer),
            Some(body(PASSWORD)),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(relay.records_of("nmr-01", "SIGNATURE").await.len(), before);
    let lockouts = relay.records_of("_relay", "LOCKOUT").await;
    assert!(
        lockouts[0]
            .payload
            .as_str()
            .contains("\"during\":\"signature\"")
    );
}

async fn sign(
    relay: &Relay,
    token: &str,
    trail: &str,
    checksum: &str,
    password: &str,
) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(token),
            Some(
                json!({"trail_id": trail, "target_checksum": checksum, "meaning": "reviewed",
                "reason": "release", "password": password}),
            ),
        )
        .await;
    (s, b)
}

// REQ: R3.1
#[tokio::test]
async fn auditor_operator_and_admin_signing_is_403() {
    let (relay, admin, _) = staffed().await;
    let target = relay.records_of("nmr-01", "FILE_CREATED").await.remove(0);
    let operator = relay.login("otto", PASSWORD).await;
    let auditor = relay.login("aude", PASSWORD).await;
    let before = relay.heads().await;
    for (who, token) in [
        ("auditor", &auditor),
        ("operator", &operator),
        ("admin", &admin),
    ] {
        let (s, b) = sign(&relay, token, "nmr-01", &target.checksum.to_hex(), PASSWORD).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
    }
    // Issue 18: each 403 is recorded as ACCESS_DENIED in `_relay`; no trail gets a signature.
    assert_eq!(relay.records_of("_relay", "ACCESS_DENIED").await.len(), 3);
    let before: Vec<_> = before.into_iter().filter(|h| h.0 != "_relay").collect();
    assert_eq!(
        relay.heads_except_relay().await,
        before,
        "refused signatures append nothing"
    );
    relay.assert_verifies().await;
}

// REQ: R4.2
#[tokio::test]
async fn signing_a_checksum_from_another_trail_or_a_made_up_one_is_422() {
    let (relay, _, reviewer) = staffed().await;
    let other = relay.records_of("hplc-02", "FILE_CREATED").await.remove(0);
    let before = relay.heads().await;
    let (s, b) = sign(
        &relay,
        &reviewer,
        "nmr-01",
        &other.checksum.to_hex(),
        PASSWORD,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "unknown_target");
    let (s, _) = sign(&relay, &reviewer, "nmr-01", &"ab".repeat(32), PASSWORD).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = sign(&relay, &reviewer, "nmr-01", "not-a-checksum", PASSWORD).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = sign(
        &relay,
        &reviewer,
        "no-such-trail",
        &other.checksum.to_hex(),
        PASSWORD,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A reason is required.
    let (s, _, _) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(&reviewer),
            Some(
                json!({"trail_id": "hplc-02", "target_checksum": other.checksum.to_hex(),
                "meaning": "approved", "reason": "  ", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A meaning outside reviewed|approved|rejected is refused.
    let (s, _, _) = relay
        .call(
            Method::POST,
            "/api/v1/signatures",
            Some(&reviewer),
            Some(
                json!({"trail_id": "hplc-02", "target_checksum": other.checksum.to_hex(),
                "meaning": "authored", "reason": "x", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(relay.heads().await, before);
    relay.assert_verifies().await;
}

// REQ: R4.1
#[tokio::test]
async fn signing_with_a_wrong_password_is_401_and_records_nothing() {
    let (relay, _, reviewer) = staffed().await;
    let target = relay.records_of("nmr-01", "FILE_CREATED").await.remove(0);
    let before = relay.heads().await;
    let (s, b) = sign(
        &relay,
        &reviewer,
        "nmr-01",
        &target.checksum.to_hex(),
        "not my password",
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "invalid_credentials");
    assert_eq!(relay.heads().await, before);
    relay.assert_verifies().await;
}

// REQ: R4.2, R4.3
#[tokio::test]
async fn a_signature_is_a_chained_record_in_the_target_trail_shown_as_a_manifestation() {
    let (relay, _, reviewer) = staffed().await;
    let target = relay.records_of("nmr-01", "FILE_CREATED").await.remove(0);
    let (s, b) = sign(
        &relay,
        &reviewer,
        "nmr-01",
        &target.checksum.to_hex(),
        PASSWORD,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let sig = relay.records_of("nmr-01", "SIGNATURE").await.remove(0);
    assert_eq!(
        sig.prev_checksum,
        relay.records_of("nmr-01", "FILE_CREATED").await[0].checksum
    );
    assert_eq!(sig.subject.as_ref().unwrap().as_str(), "nmr-01#1");
    let payload = sig.payload.to_value().unwrap();
    assert_eq!(payload["target_checksum"], target.checksum.to_hex());
    assert_eq!(payload["meaning"], "reviewed");
    assert_eq!(payload["printed_name"], "Rita Reviewer");
    // One signing time (issue 20): the SIGNATURE record's own, none in the payload.
    assert!(payload.get("signed_at").is_none(), "{payload}");
    let (s, _, detail) = relay
        .call(
            Method::GET,
            "/api/v1/events/nmr-01/1",
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = &detail["signatures"][0];
    assert_eq!(m["printed_name"], "Rita Reviewer");
    assert_eq!(m["meaning"], "reviewed");
    assert_eq!(m["reason"], "release");
    assert_eq!(m["signed_at"], sig.recorded_at.to_canonical());
    let (s, _, page) = relay
        .call(
            Method::GET,
            "/api/v1/events?trail=nmr-01&kind=FILE_CREATED",
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["events"][0]["signatures"][0]["printed_name"],
        "Rita Reviewer"
    );
    // A signature cannot itself be signed, and _relay records cannot be signed.
    let (s, _) = sign(
        &relay,
        &reviewer,
        "nmr-01",
        &sig.checksum.to_hex(),
        PASSWORD,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    relay.assert_verifies().await;
}

// REQ: R3.4
#[tokio::test]
async fn reads_verifies_and_exports_are_access_events() {
    let (relay, _, _) = staffed().await;
    let auditor = relay.login("aude", PASSWORD).await;
    let before = relay.records_of("_relay", "ACCESS").await.len();
    let (s, _, _) = relay
        .call(
            Method::GET,
            "/api/v1/events?trail=nmr-01&q=spectrum",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/verify",
            Some(&auditor),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["all_hold"], true);
    let (s, headers, body) = relay
        .call(
            Method::GET,
            "/api/v1/export?trail=nmr-01&format=csv",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(body.as_str().unwrap().contains("run1/spectrum.fid"));
    let access = relay.records_of("_relay", "ACCESS").await;
    let actions: Vec<String> = access[before..]
        .iter()
        .map(|r| {
            r.payload.to_value().unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(actions, ["read_events", "verify", "export"]);
    assert!(access[before..].iter().all(|r| r.actor.as_str() == "aude"));
}

// REQ: R3.1, R3.2
#[tokio::test]
async fn an_admin_cannot_change_their_own_role_or_disable_themselves() {
    let (relay, admin, _) = staffed().await;
    let before = relay.heads().await;
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/ada",
            Some(&admin),
            Some(json!({"role": "reviewer", "reason": "moved to QA"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _, _) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/ada",
            Some(&admin),
            Some(json!({"disabled": true, "reason": "left the company"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Issue 18: both 403s are recorded as ACCESS_DENIED; nothing else changes.
    let before: Vec<_> = before.into_iter().filter(|h| h.0 != "_relay").collect();
    assert_eq!(relay.heads_except_relay().await, before);
    let denied = relay.records_of("_relay", "ACCESS_DENIED").await;
    assert_eq!(denied.len(), 2);
    let first = denied[0].payload.to_value().unwrap();
    assert_eq!(first["username"], "ada");
    assert_eq!(first["role"], "admin");
    assert_eq!(first["code"], "own_role");
    assert_eq!(first["path"], "/api/v1/accounts/ada");
    assert!(first["session"].as_str().is_some_and(|s| !s.is_empty()));
    // A change without a reason is refused and records nothing (issue 18).
    for body in [
        json!({"role": "auditor"}),
        json!({"role": "auditor", "reason": "  "}),
    ] {
        let (s, _, b) = relay
            .call(
                Method::PATCH,
                "/api/v1/accounts/otto",
                Some(&admin),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["code"], "reason_required");
    }
    let (s, _, b) = relay
        .call(Method::POST, "/api/v1/accounts", Some(&admin),
            Some(json!({"username": "nora", "full_name": "Nora North", "password": support::TEMPORARY_PASSWORD, "role": "operator"})))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")),
        "{b}"
    );
    // Changing someone else's role to one that does not sign is an audited event (granting
    // reviewer or admin needs four eyes: api_edges' process test).
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/otto",
            Some(&admin),
            Some(json!({"role": "auditor", "reason": "moved to QA audit"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "auditor");
    let change = relay
        .records_of("_relay", "ACCOUNT_CHANGED")
        .await
        .pop()
        .unwrap();
    assert!(change.payload.as_str().contains("\"from\":\"operator\""));
    assert_eq!(
        change.payload.to_value().unwrap()["reason"],
        "moved to QA audit",
        "the reason is recorded"
    );
    // Non-admins cannot list or change accounts.
    let reviewer = relay.login("rita", PASSWORD).await;
    let (s, _, _) = relay
        .call(Method::GET, "/api/v1/accounts", Some(&reviewer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

// REQ: R3.2
#[tokio::test]
async fn a_reset_password_must_be_changed_before_login() {
    let (relay, admin, _) = staffed().await;
    // An operator's password an administrator may reset alone; it is temporary.
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/otto",
            Some(&admin),
            Some(json!({"reset_password": "temporary pass 1", "reason": "forgotten, ticket 42"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "otto", "password": "temporary pass 1"})),
        )
        .await;
    // Issue 18: a temporary password logs in for the change only (it was 403
    // `password_expired` before).
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["must_change_password"], true, "{b}");
    let (s, b) = me(&relay, b["token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "password_change_required");
    let (s, _, b) = relay
        .call(Method::POST, "/api/v1/auth/password", None,
            Some(json!({"username": "otto", "old_password": "temporary pass 1", "new_password": "my own new secret"})))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    relay.login("otto", "my own new secret").await;

    // A signer's (reviewer's) password only through four eyes: the finding was an
    // administrator resetting another's password and logging in as them.
    let (s, _, b) = relay
        .call(
            Method::PATCH,
            "/api/v1/accounts/rita",
            Some(&admin),
            Some(json!({"reset_password": "temporary pass 2", "reason": "forgotten, ticket 43"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "four_eyes_required");
    // The second administrator (the one who approved rita's creation) approves.
    let bob = relay.second_admin(&admin).await;
    let (s, _, proposal) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&admin),
            Some(json!({"setting": "account_password_reset", "value": {"username": "rita"}, "reason": "forgotten"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let (s, _, approved) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(&bob),
            Some(json!({"password": PASSWORD, "reason": "verified by phone"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    let temporary = approved["applied"]["temporary_password"].as_str().unwrap();
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": temporary})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["must_change_password"], true, "{b}");
    let (s, _, b) = relay
        .call(Method::POST, "/api/v1/auth/password", None,
            Some(json!({"username": "rita", "old_password": temporary, "new_password": "Quiet Copper Lantern 42"})))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    relay.login("rita", "Quiet Copper Lantern 42").await;
    let changed = relay.records_of("_relay", "ACCOUNT_CHANGED").await;
    let reset = changed
        .iter()
        .map(|r| r.payload.as_str().to_owned())
        .find(|p| p.contains(id))
        .expect("the approved reset is recorded with its change id");
    assert!(reset.contains("password_reset"), "{reset}");
    assert!(
        changed
            .iter()
            .all(|r| !r.payload.as_str().contains(temporary)),
        "the temporary password was recorded"
    );
}

/// `POST /auth/password` for `user` from `old` to `new`: status and body.
async fn change_password(relay: &Relay, user: &str, old: &str, new: &str) -> (StatusCode, Value) {
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/password",
            None,
            Some(json!({"username": user, "old_password": old, "new_password": new})),
        )
        .await;
    (s, b)
}

// REQ: R3.2
#[tokio::test]
async fn weak_named_and_reused_passwords_are_refused_with_what_to_do() {
    // The finding: `aaaaaaaaaa`, `password12` and the username twice were accepted, and the
    // history remembered only the current password.
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    for (password, code) in [
        ("aaaaaaaaaa", "weak_password"),
        ("aaaaaaaaaaaaaaaa", "weak_password"),
        ("password12", "weak_password"),
        ("password1234", "weak_password"),
        ("j.kowalskij.kowalski", "password_contains_name"),
        ("J.Kowalski is the best", "password_contains_name"),
        ("jan kowalski 1234567", "password_contains_name"),
        ("kowalski rules the lab", "password_contains_name"),
    ] {
        let (s, _, b) = relay
            .call(Method::POST, "/api/v1/accounts", Some(&admin),
                Some(json!({"username": "j.kowalski", "full_name": "Jan Kowalski", "password": password, "role": "operator", "reason": "new operator"})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{password}: {b}");
        assert_eq!(b["error"]["code"], code, "{password}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("choose") || message.contains("use a"),
            "{message}"
        );
    }
    assert_eq!(
        relay.records_of("_relay", "REGISTER").await.len(),
        1,
        "nothing created"
    );

    // The owner's own changes: the policy applies, and none of the last 5 passwords comes back.
    let (s, b) = change_password(&relay, "ada", PASSWORD, "ada ada ada ada").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password_contains_name")
        ),
        "{b}"
    );
    let sequence = [
        PASSWORD,
        "Quiet Copper Lantern 42",
        "violet tractor sunrise",
        "marble otter frequency",
        "gentle cobalt harvest",
    ];
    for pair in sequence.windows(2) {
        let (s, b) = change_password(&relay, "ada", pair[0], pair[1]).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let current = sequence[4];
    let (s, b) = change_password(&relay, "ada", current, current).await;
    assert_eq!(b["error"]["code"], "password_unchanged", "{s} {b}");
    for old in &sequence[..4] {
        let (s, b) = change_password(&relay, "ada", current, old).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{old}: {b}");
        assert_eq!(b["error"]["code"], "password_reused", "{old}: {b}");
    }
    // Five passwords later the first one is out of the history.
    let (s, b) = change_password(&relay, "ada", current, "lantern of quiet copper 9").await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = change_password(&relay, "ada", "lantern of quiet copper 9", PASSWORD).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    relay.login("ada", PASSWORD).await;
    assert!(
        relay.account("ada").await.password_history.len() <= 4,
        "history bounded"
    );
    relay.assert_verifies().await;
}

// REQ: R3.2
#[tokio::test]
async fn an_admin_chosen_password_opens_only_the_password_change_until_the_owner_changes_it() {
    // The finding: an administrator-chosen initial password was never forced to change, so
    // the administrator knew a signer's working password and could sign as them.
    let relay = Relay::start().await;
    relay.capture("nmr-01", "run1/spectrum.fid").await;
    let admin = relay.register_admin("ada").await;
    // The self-registered first administrator chose their own password: not temporary.
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (s, &b["must_change_password"]),
        (StatusCode::OK, &json!(false)),
        "{b}"
    );
    let (s, _, b) = relay
        .call(Method::POST, "/api/v1/accounts", Some(&admin),
            Some(json!({"username": "otto", "full_name": "Otto Operator", "password": support::TEMPORARY_PASSWORD, "role": "operator", "reason": "new operator"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        b["password_changed_at"],
        Value::Null,
        "created with a temporary password"
    );
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "otto", "password": support::TEMPORARY_PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["must_change_password"], true, "{b}");
    let temporary = b["token"].as_str().unwrap().to_owned();
    let heads = relay.heads().await;
    for (method, uri) in [
        (Method::GET, "/api/v1/auth/me"),
        (Method::GET, "/api/v1/trails"),
        (Method::GET, "/api/v1/events?trail_id=nmr-01"),
        (Method::GET, "/api/v1/events/nmr-01/1"),
        (Method::POST, "/api/v1/verify"),
        (Method::GET, "/api/v1/changes"),
        (Method::POST, "/api/v1/auth/totp"),
    ] {
        let body = match uri {
            "/api/v1/auth/totp" => Some(json!({"password": support::TEMPORARY_PASSWORD})),
            "/api/v1/verify" => Some(json!({})),
            _ => None,
        };
        let (s, _, b) = relay
            .call(method.clone(), uri, Some(&temporary), body)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {uri}: {b}");
        assert_eq!(
            b["error"]["code"], "password_change_required",
            "{method} {uri}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/auth/password")
        );
    }
    // Nothing was read or written on the temporary session but the refusals' own records.
    let after = relay.heads().await;
    assert_eq!(
        heads.iter().find(|h| h.0 == "nmr-01"),
        after.iter().find(|h| h.0 == "nmr-01"),
        "a temporary session changed a trail"
    );
    // Logout is allowed; the change then makes the account usable.
    let (s, _, b) = relay
        .call(Method::POST, "/api/v1/auth/logout", Some(&temporary), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    relay
        .change_password("otto", support::TEMPORARY_PASSWORD, PASSWORD)
        .await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "otto", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (s, &b["must_change_password"]),
        (StatusCode::OK, &json!(false)),
        "{b}"
    );
    assert_eq!(
        me(&relay, b["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    // The temporary password is now history: it cannot come back.
    let (s, b) = change_password(&relay, "otto", PASSWORD, support::TEMPORARY_PASSWORD).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_reused")),
        "{b}"
    );

    // Configurable: with temporary admin passwords off, the created account works at once.
    let mut config = default_config();
    config.admin_passwords_temporary = false;
    let relaxed = Relay::start_with(config).await;
    let admin = relaxed.register_admin("ada").await;
    let (s, _, b) = relaxed
        .call(Method::POST, "/api/v1/accounts", Some(&admin),
            Some(json!({"username": "otto", "full_name": "Otto Operator", "password": PASSWORD, "role": "operator", "reason": "new operator"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = relaxed.login("otto", PASSWORD).await;
    assert_eq!(me(&relaxed, &token).await.0, StatusCode::OK);
}

// REQ: R3.3
#[tokio::test]
async fn password_expiry_follows_the_configured_age() {
    let mut config = default_config();
    config.password_max_age = Duration::from_millis(300);
    let relay = Relay::start_with(config).await;
    let (s, _, _) = relay
        .call(Method::POST, "/api/v1/auth/register", None,
            Some(json!({"username": "ada", "full_name": "Ada", "password": PASSWORD, "role": "admin"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "password_expired");
}

// REQ: R3.3
#[tokio::test]
async fn an_idle_session_is_closed() {
    let mut config = default_config();
    config.session_idle_timeout = Duration::from_millis(400);
    let relay = Relay::start_with(config).await;
    let admin = relay.register_admin("ada").await;
    assert_eq!(me(&relay, &admin).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (s, b) = me(&relay, &admin).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "session_idle");
    // Logging out closes a session at once.
    let token = relay.login("ada", PASSWORD).await;
    let (s, _, _) = relay
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(me(&relay, &token).await.0, StatusCode::UNAUTHORIZED);
}

// REQ: R3.3, R3.4
#[tokio::test]
async fn expired_sessions_are_recorded_once_whether_presented_or_swept() {
    // The finding: session expiry never reached `_relay`.
    let mut config = default_config();
    config.session_idle_timeout = Duration::from_millis(400);
    let relay = Relay::start_with(config).await;
    let first = relay.register_admin("ada").await;
    let first_session = claims_of(&first)["jti"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Presented after the idle timeout: recorded, with who, role and session.
    let (s, _, b) = relay
        .call_with(
            Method::GET,
            "/api/v1/auth/me",
            Some(&first),
            None,
            &[("user-agent", "inspector/1.0")],
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_idle"))
    );
    assert_eq!(me(&relay, &first).await.0, StatusCode::UNAUTHORIZED);
    let expired = relay.records_of("_relay", "SESSION_EXPIRED").await;
    assert_eq!(
        expired.len(),
        1,
        "recorded once, however often the token comes back"
    );
    let p = expired[0].payload.to_value().unwrap();
    assert_eq!(p["username"], "ada");
    assert_eq!(p["role"], "admin");
    assert_eq!(p["session"], first_session.as_str());
    assert_eq!(p["reason"], "idle_timeout");
    assert_eq!(p["user_agent"], "inspector/1.0");
    // Never presented again: swept when another session opens, and recorded then.
    let second = relay.login("ada", PASSWORD).await;
    let second_session = claims_of(&second)["jti"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(700)).await;
    relay.login("ada", PASSWORD).await;
    let expired = relay.records_of("_relay", "SESSION_EXPIRED").await;
    assert_eq!(expired.len(), 2, "{expired:?}");
    let p = expired[1].payload.to_value().unwrap();
    assert_eq!(p["session"], second_session.as_str());
    assert_eq!(p["reason"], "swept_idle");
    // The last login is shown per account.
    let token = relay.login("ada", PASSWORD).await;
    let (s, _, list) = relay
        .call(Method::GET, "/api/v1/accounts", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(list[0]["last_login_at"].is_string(), "{list}");
    relay.assert_verifies().await;
}

// REQ: R3.3
#[tokio::test]
async fn totp_is_required_once_enrolled() {
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/totp",
            Some(&admin),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let secret = b["secret"].as_str().unwrap().to_owned();
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"]["code"], "totp_required");
    let (s, _, _) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD, "totp": "000000"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let bytes = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();
    let code = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(now_secs());
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD, "totp": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The secret never appears in the trail.
    let changes = relay.records_of("_relay", "ACCOUNT_CHANGED").await;
    assert!(
        changes
            .iter()
            .all(|r| !r.payload.as_str().contains(&b["secret"].to_string()))
    );
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_in_the_error_shape() {
    let relay = Relay::start().await;
    let big = "x".repeat(100 * 1024);
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": big, "password": "p"})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["error"]["code"], "body_too_large");
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "a"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["message"].is_string());
    let (s, _, b) = relay.call(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
}

// REQ: R11.2
#[tokio::test]
async fn the_openapi_document_names_every_endpoint() {
    let relay = Relay::start().await;
    let (s, _, doc) = relay
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/password",
        "/api/v1/trails",
        "/api/v1/events",
        "/api/v1/events/{trail}/{seq}",
        "/api/v1/signatures",
        "/api/v1/accounts",
        "/api/v1/accounts/{username}",
        "/api/v1/verify",
        "/api/v1/export",
        "/api/v1/access-review",
        "/api/v1/access-review/complete",
        "/api/v1/access-review/export",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

// REQ: R3.3
#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let (relay, _, _) = staffed().await;
    let (s1, _, b1) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "whatever123"})),
        )
        .await;
    let (s2, _, b2) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "rita", "password": "whatever123"})),
        )
        .await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!((s1, &b1), (s2, &b2));
    // Secrets never leave the API: no hash in the account list.
    let admin = relay.login("ada", PASSWORD).await;
    let (_, _, list) = relay
        .call(Method::GET, "/api/v1/accounts", Some(&admin), None)
        .await;
    assert!(!list.to_string().contains("argon2"));
    // ada, quinn (the second administrator who approved the reviewer rita), rita, and one more.
    assert_eq!(list.as_array().unwrap().len(), 5);
    // The account exists, so the identical answer above hides which part was wrong.
    assert_eq!(relay.account("rita").await.full_name, "Rita Reviewer");
}

fn totp_code(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(now_secs())
}

// REQ: R10.3
#[tokio::test]
async fn totp_secrets_are_sealed_at_rest_and_one_written_in_clear_by_hand_is_never_used() {
    // The finding: another local user read a plaintext TOTP secret out of relay.db.
    let relay = Relay::start().await;
    let admin = relay.register_admin("ada").await;
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/totp",
            Some(&admin),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let secret = b["secret"].as_str().unwrap().to_owned();
    let stored = relay.account("ada").await.totp_secret.unwrap();
    assert!(stored.expose().starts_with("sealed:v1:"), "stored in clear");
    assert!(!stored.expose().contains(&secret), "stored in clear");
    let login = |code: String| {
        let relay = &relay;
        async move {
            relay
                .call(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"username": "ada", "password": PASSWORD, "totp": code})),
                )
                .await
        }
    };
    let (s, _, b) = login(totp_code(&secret)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Someone with write access to the store replaces it with a secret of their own, in
    // clear: it is never used (a code from it does not log in).
    let own = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let mut tampered = relay.account("ada").await;
    tampered.totp_secret = Some(relay_domain::ports::TotpSecret::new(own.to_owned()));
    relay.adapters.accounts.update(&tampered).await.unwrap();
    let (s, _, b) = login(totp_code(own)).await;
    assert_ne!(s, StatusCode::OK, "{b}");
    // Moving ada's sealed secret onto another account does not open there either.
    relay
        .create(&admin, "bob", "Bob Reviewer", "reviewer")
        .await;
    let mut bob = relay.account("bob").await;
    bob.totp_secret = Some(stored.clone());
    relay.adapters.accounts.update(&bob).await.unwrap();
    let (s, _, b) = relay
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "bob", "password": PASSWORD, "totp": totp_code(&secret)})),
        )
        .await;
    assert_ne!(s, StatusCode::OK, "{b}");

    // A secret enrolled before sealing existed (in clear) is sealed at the next start and
    // keeps working.
    let mut legacy = relay.account("ada").await;
    legacy.totp_secret = Some(relay_domain::ports::TotpSecret::new(secret.clone()));
    relay.adapters.accounts.update(&legacy).await.unwrap();
    let reopened = Relay::open(relay.dir, default_config()).await;
    let sealed = reopened.account("ada").await.totp_secret.unwrap();
    assert!(
        sealed.expose().starts_with("sealed:v1:"),
        "not sealed at start"
    );
    let (s, _, b) = reopened
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": PASSWORD, "totp": totp_code(&secret)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
