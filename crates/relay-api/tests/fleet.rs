#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks on enrollment, key registration and revocation (issue 24), through the real router
//! over the local adapters: replayed and foreign codes, a flood of guesses, a stolen token
//! without the previous key, a trail taken over by another edge, a key id swapped for other
//! bytes, a revoked token, and the fleet view's figures.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use relay_domain::memory::InMemoryRecordStore;
use relay_domain::ports::{RecordStore, TimeSource};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Record, Subject,
    TrailKey,
};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

fn key(byte: u8) -> TrailKey {
    let bytes = [byte; 32];
    TrailKey::new(TrailKey::fingerprint_id(&bytes), &bytes).unwrap()
}

fn wire(k: &TrailKey) -> Value {
    json!({"id": k.id().as_str(), "secret_hex": hex::encode(k.expose_secret())})
}

/// `n` captures of trail `trail` signed with `key`, continuing `store` (the edge's own trail).
async fn edge_records(
    relay: &Relay,
    store: &Arc<InMemoryRecordStore>,
    trail: &str,
    key: TrailKey,
    n: usize,
) -> Vec<Record> {
    let clock: Arc<dyn TimeSource> = relay.adapters.clock.clone();
    let appender = AppendService::new(store.clone() as Arc<dyn RecordStore>, clock, key);
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            appender
                .append(EventDraft {
                    trail_id: support::trail(trail),
                    kind: EventKind::file_created(),
                    actor: Some(Actor::new("labop").unwrap()),
                    actor_source: ActorSource::OsSession,
                    occurred_at: None,
                    device: Device::new(trail).unwrap(),
                    project: None,
                    subject: Some(Subject::new(format!("run/{i}.fid")).unwrap()),
                    payload: Payload::from_value(&json!({"sha256": "cd".repeat(32), "size": i}))
                        .unwrap(),
                })
                .await
                .unwrap(),
        );
    }
    out
}

/// A request from client address `from` (as the listener would report it).
async fn call_from(
    relay: &Relay,
    from: &str,
    uri: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from(body.to_string())).unwrap();
    let addr: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = relay.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn issue(relay: &Relay, admin: &str, edge: &str) -> String {
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/codes",
            Some(admin),
            Some(json!({"edge": edge})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["code"].as_str().unwrap().to_owned()
}

async fn enroll(relay: &Relay, edge: &str, code: &str, keys: &[&TrailKey]) -> (StatusCode, Value) {
    call_from(
        relay,
        "192.0.2.10:5000",
        "/api/v1/enroll",
        json!({"edge": edge, "code": code, "trails": [edge],
               "keys": keys.iter().map(|k| wire(k)).collect::<Vec<_>>()}),
        &[],
    )
    .await
}

async fn ingest(
    relay: &Relay,
    edge: &str,
    token: &str,
    trail: &str,
    records: &[Record],
    local_head: Option<&str>,
) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str()), ("x-relay-edge", edge)];
    if let Some(h) = local_head {
        headers.push(("x-relay-edge-head", h));
    }
    let (s, _, v) = relay
        .call_with(
            Method::POST,
            "/api/v1/ingest",
            None,
            Some(json!({"trail_id": trail, "records": records})),
            &headers,
        )
        .await;
    (s, v)
}

async fn register_keys(relay: &Relay, edge: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let (s, _, v) = relay
        .call_with(
            Method::POST,
            "/api/v1/ingest/keys",
            None,
            Some(body),
            &[("authorization", auth.as_str()), ("x-relay-edge", edge)],
        )
        .await;
    (s, v)
}

async fn relay_events(relay: &Relay, kind: &str) -> Vec<Value> {
    relay
        .records_of("_relay", kind)
        .await
        .iter()
        .map(|r| r.payload.to_value().unwrap())
        .collect()
}

// REQ: R8.3
#[tokio::test]
async fn a_code_enrolls_its_own_edge_once_and_guessing_is_rate_limited() {
    let relay = Relay::start_fleet_server().await;
    let admin = relay.register_admin("ada").await;
    relay
        .create(&admin, "olga", "Olga Operator", "operator")
        .await;
    let olga = relay.login("olga", PASSWORD).await;
    // Only an admin issues codes.
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/codes",
            Some(&olga),
            Some(json!({"edge": "ws-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/codes",
            Some(&admin),
            Some(json!({"edge": "ws-1", "ttl_minutes": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let code = issue(&relay, &admin, "ws-1").await;
    let k1 = key(1);
    // Another edge presenting it: refused, and the code stays good.
    let (s, v) = enroll(&relay, "ws-2", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token"].as_str().unwrap().len(), 64);
    assert_eq!(v["enrolled_by"], "ada");
    assert_eq!(v["key_ids"], json!([k1.id().as_str()]));
    // Replayed: refused.
    let (s, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );

    // A flood of guesses from one address: 429 once it failed 10 times (the replay above and
    // the foreign edge count too), before any code is looked up; another address still gets
    // an honest 401.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (s, _) = enroll(&relay, "ws-1", &format!("{i:032x}"), &[&k1]).await;
        statuses.push(s.as_u16());
    }
    assert_eq!(&statuses[..8], &[401; 8], "{statuses:?}");
    assert_eq!(&statuses[8..], &[429; 4], "{statuses:?}");
    let (s, v) = call_from(
        &relay,
        "198.51.100.7:5000",
        "/api/v1/enroll",
        json!({"edge": "ws-1", "code": "0".repeat(32), "trails": ["ws-1"], "keys": [wire(&k1)]}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // On the record: who issued, who enrolled with whose code, every refusal; never a code.
    let issued = relay.records_of("_relay", "ENROLLMENT_CODE_ISSUED").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].actor.as_str(), "ada");
    assert!(
        !issued[0]
            .payload
            .to_value()
            .unwrap()
            .to_string()
            .contains(&code)
    );
    let enrolled = relay_events(&relay, "ENROLLED").await;
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0]["code_issued_by"], "ada");
    let refused: Vec<Value> = relay_events(&relay, "SYSTEM")
        .await
        .into_iter()
        .filter(|p| p["event"] == "ENROLLMENT_REFUSED")
        .collect();
    assert_eq!(refused.len(), 11, "{refused:?}");
    relay.assert_verifies().await;
}

// REQ: R8.3, R8.4
#[tokio::test]
async fn a_rotated_key_is_accepted_only_with_a_proof_under_the_previous_key() {
    let relay = Relay::start_fleet_server().await;
    let admin = relay.register_admin("ada").await;
    let code = issue(&relay, &admin, "ws-1").await;
    let (k1, k2) = (key(1), key(2));
    let (s, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let edge_store = Arc::new(InMemoryRecordStore::new());
    let first = edge_records(&relay, &edge_store, "ws-1", k1.clone(), 3).await;
    let (s, v) = ingest(&relay, "ws-1", &token, "ws-1", &first, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Records under the rotated key: the server cannot verify them yet.
    let rotated = edge_records(&relay, &edge_store, "ws-1", k2.clone(), 2).await;
    let (s, v) = ingest(&relay, "ws-1", &token, "ws-1", &rotated, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "unknown_key");

    // A thief with the token but not the previous key: no proof, a proof under another key,
    // or a proof for another trail are all refused, and nothing is added.
    let forged = key(9).registration_proof("ws-1", "ws-1", &k2).to_hex();
    let other_trail = k1.registration_proof("ws-1", "ws-9", &k2).to_hex();
    for proof in [None, Some(forged), Some(other_trail)] {
        let mut second = wire(&k2);
        if let Some(p) = proof {
            second["proof_hex"] = json!(p);
        }
        let (s, v) = register_keys(
            &relay,
            "ws-1",
            &token,
            json!({"trail_id": "ws-1", "keys": [wire(&k1), second]}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["code"], "bad_proof", "{v}");
    }
    // Starting from a key the server does not hold proves nothing.
    let mut chained = wire(&k2);
    chained["proof_hex"] = json!(key(9).registration_proof("ws-1", "ws-1", &k2).to_hex());
    let (s, v) = register_keys(
        &relay,
        "ws-1",
        &token,
        json!({"trail_id": "ws-1", "keys": [wire(&key(9)), chained]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "unknown_key", "{v}");
    // Without the token, nothing is looked at.
    let (s, _) = register_keys(&relay, "ws-1", &"0".repeat(64), json!({})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The holder of k1 proves k2: added once, then ingest continues where it stopped.
    let mut second = wire(&k2);
    second["proof_hex"] = json!(k1.registration_proof("ws-1", "ws-1", &k2).to_hex());
    let body = json!({"trail_id": "ws-1", "keys": [wire(&k1), second]});
    let (s, v) = register_keys(&relay, "ws-1", &token, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["added"], json!([k2.id().as_str()]));
    let (s, v) = register_keys(&relay, "ws-1", &token, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["added"], json!([]), "a repeat adds nothing");
    let (s, v) = ingest(&relay, "ws-1", &token, "ws-1", &rotated, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["acked_seq"], 5);

    let registered = relay_events(&relay, "KEY_REGISTERED").await;
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(registered[0]["key_id"], k2.id().as_str());
    assert_eq!(registered[0]["proven_under"], k1.id().as_str());
    let refusals = relay_events(&relay, "SYSTEM")
        .await
        .into_iter()
        .filter(|p| p["event"] == "KEY_REGISTRATION_REFUSED")
        .count();
    assert_eq!(refusals, 3);
}

// REQ: R8.3
#[tokio::test]
async fn revocation_is_immediate_and_only_a_new_code_undoes_it() {
    let relay = Relay::start_fleet_server().await;
    let admin = relay.register_admin("ada").await;
    let k1 = key(1);
    let code = issue(&relay, &admin, "ws-1").await;
    let (_, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    let old_token = v["token"].as_str().unwrap().to_owned();
    let edge_store = Arc::new(InMemoryRecordStore::new());
    let batch = edge_records(&relay, &edge_store, "ws-1", k1.clone(), 4).await;
    let (s, v) = ingest(
        &relay,
        "ws-1",
        &old_token,
        "ws-1",
        &batch[..2],
        Some("4@2099-01-01T00:00:00.000000Z"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The fleet view: stored head 2 of a reported local head 4.
    let (s, _, view) = relay
        .call(Method::GET, "/api/v1/fleet", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    let e = &view["edges"][0];
    assert_eq!(e["edge"], "ws-1");
    assert_eq!(e["trails"][0]["stored_head_seq"], 2, "{e}");
    assert_eq!(e["trails"][0]["local_head_seq"], 4, "{e}");
    assert_eq!(e["lag_records"], 2, "{e}");
    assert_eq!(e["status"], "lagging", "{e}");

    // Revoking needs a reason; then the token is refused at once.
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/edges/ws-1/revoke",
            Some(&admin),
            Some(json!({"reason": "  "})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/edges/ws-1/revoke",
            Some(&admin),
            Some(json!({"reason": "stolen laptop"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "revoked");
    let (s, _) = ingest(&relay, "ws-1", &old_token, "ws-1", &batch[2..], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/edges/ws-404/revoke",
            Some(&admin),
            Some(json!({"reason": "typo"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // A new code re-enrolls it with a fresh token; the old one stays dead.
    let code = issue(&relay, &admin, "ws-1").await;
    let (s, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_token = v["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);
    let (s, _) = ingest(&relay, "ws-1", &old_token, "ws-1", &batch[2..], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = ingest(&relay, "ws-1", &new_token, "ws-1", &batch[2..], None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let revoked = relay.records_of("_relay", "EDGE_REVOKED").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor.as_str(), "ada");
    assert_eq!(
        revoked[0].payload.to_value().unwrap()["reason"],
        "stolen laptop"
    );
}

// REQ: R8.3
#[tokio::test]
async fn an_edge_cannot_take_another_edges_trail_or_swap_a_key_id() {
    let relay = Relay::start_fleet_server().await;
    let admin = relay.register_admin("ada").await;
    let k1 = key(1);
    let code = issue(&relay, &admin, "ws-1").await;
    let (s, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // ws-2 asks for ws-1's trail: refused, nothing imported.
    let code = issue(&relay, &admin, "ws-2").await;
    let (s, v) = call_from(
        &relay,
        "192.0.2.20:5000",
        "/api/v1/enroll",
        json!({"edge": "ws-2", "code": code, "trails": ["ws-1"], "keys": [wire(&key(2))]}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "trail_taken");

    // Re-enrolling ws-1 with other bytes under k1's id: refused, the stored key unchanged.
    let code = issue(&relay, &admin, "ws-1").await;
    let swapped = json!({"id": k1.id().as_str(), "secret_hex": hex::encode([3u8; 32])});
    let (s, v) = call_from(
        &relay,
        "192.0.2.30:5000",
        "/api/v1/enroll",
        json!({"edge": "ws-1", "code": code, "trails": ["ws-1"], "keys": [swapped]}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "key_conflict");
    let held = relay_domain::ports::SecretProviderExt::key_ring(
        relay.adapters.secrets.as_ref(),
        &relay_api::trail_key_secret(&support::trail("ws-1")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        held.get(k1.id()).unwrap().expose_secret(),
        k1.expose_secret()
    );
    // An edge without enrollment or configuration is just unknown.
    let (s, _) = ingest(&relay, "ws-3", &"0".repeat(64), "ws-3", &[], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

// REQ: R8.3
#[tokio::test]
async fn with_enrollment_four_eyes_a_code_needs_a_second_administrator() {
    let mut config = default_config();
    config.enrollment_four_eyes = true;
    let relay = Relay::start_fleet_server_with(config).await;
    let ada = relay.register_admin("ada").await;
    let quinn = relay.second_admin(&ada).await;
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/fleet/codes",
            Some(&ada),
            Some(json!({"edge": "ws-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "four_eyes_required");
    // A bad edge id is refused at proposal.
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&ada),
            Some(json!({"setting": "enrollment_code", "value": {"edge": "ws 1"}, "reason": "new NMR"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _, v) = relay
        .call(
            Method::POST,
            "/api/v1/changes",
            Some(&ada),
            Some(
                json!({"setting": "enrollment_code", "value": {"edge": "ws-1", "ttl_minutes": 30},
                        "reason": "new NMR workstation"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The proposer cannot approve it.
    let (s, _, v) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(&ada),
            Some(json!({"password": PASSWORD, "reason": "me again"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _, v) = relay
        .call(
            Method::POST,
            &format!("/api/v1/changes/{id}/approve"),
            Some(&quinn),
            Some(json!({"password": PASSWORD, "reason": "checked the asset register"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let code = v["applied"]["code"].as_str().unwrap().to_owned();
    let (s, v) = enroll(&relay, "ws-1", &code, &[&key(1)]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let approver = v["enrolled_by"].as_str().unwrap().to_owned();
    assert_ne!(approver, "ada", "the code is the approver's: {v}");
    let issued = relay_events(&relay, "ENROLLMENT_CODE_ISSUED").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["change_id"], id.as_str());
    assert_eq!(issued[0]["proposer"], "ada");
    assert!(
        !issued[0].to_string().contains(&code),
        "the code is never recorded"
    );
}

// REQ: R8.5
#[tokio::test]
async fn an_idle_edge_heartbeat_moves_last_seen_but_not_last_batch() {
    let relay = Relay::start_fleet_server().await;
    let admin = relay.register_admin("ada").await;
    let k1 = key(1);
    let code = issue(&relay, &admin, "ws-1").await;
    let (_, v) = enroll(&relay, "ws-1", &code, &[&k1]).await;
    let token = v["token"].as_str().unwrap().to_owned();
    let edge_store = Arc::new(InMemoryRecordStore::new());
    let batch = edge_records(&relay, &edge_store, "ws-1", k1.clone(), 2).await;
    let (s, v) = ingest(&relay, "ws-1", &token, "ws-1", &batch, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let before = fleet_first(&relay, &admin).await;
    let auth = format!("Bearer {token}");
    let (s, _, v) = relay
        .call_with(
            Method::GET,
            "/api/v1/ingest/heads",
            None,
            None,
            &[("authorization", auth.as_str()), ("x-relay-edge", "ws-1")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let after = fleet_first(&relay, &admin).await;
    assert!(
        after["last_seen_at"].as_str().unwrap() > before["last_seen_at"].as_str().unwrap(),
        "{before} -> {after}"
    );
    assert_eq!(after["last_batch_at"], before["last_batch_at"]);
    assert_eq!(after["trails"][0]["stored_head_seq"], 2);
}

async fn fleet_first(relay: &Relay, admin: &str) -> Value {
    let (s, _, v) = relay
        .call(Method::GET, "/api/v1/fleet", Some(admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["edges"][0].clone()
}
