//! Approved four-eyes changes on the server of record survive a restart: a revoked ingest token
//! stays refused (401) and the settings the server reads at start-up are applied and listed in
//! its STARTUP posture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use relay_domain::ports::{
    ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState, RecordStore,
};
use relay_domain::{Device, Timestamp, TrailId};
use relay_runtime::server::{ServerRuntime, ServerSettings};
use tempfile::TempDir;

const EDGE: &str = "ws-1";

fn settings(dir: &TempDir) -> ServerSettings {
    ServerSettings {
        device: Device::new("server-1").unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        ingest: relay_api::IngestConfig {
            edges: vec![EDGE.to_owned()],
            ..Default::default()
        },
        api: relay_api::ApiConfig::new(Device::new("server-1").unwrap()),
        notary_interval: Duration::from_secs(3600),
        exports_dir: dir.path().join("exports"),
        config: None,
    }
}

/// A change approved earlier (as the API stores it: proposed by ada, approved by bob).
async fn approved(
    store: &dyn ChangeRequestStore,
    id: &str,
    setting: ChangeSetting,
    value: serde_json::Value,
) {
    let now = Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap();
    let later = Timestamp::from_unix_micros(1_764_000_000_000_000 + 3_600_000_000).unwrap();
    store
        .propose(&ChangeRequest {
            id: id.to_owned(),
            setting,
            value,
            proposer: "ada".into(),
            reason: "test".into(),
            created_at: now,
            expires_at: later,
            state: ChangeState::Pending,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        })
        .await
        .unwrap();
    store
        .decide(
            id,
            &ChangeDecision {
                state: ChangeState::Approved,
                by: "bob".into(),
                at: now,
                reason: "checked".into(),
            },
        )
        .await
        .unwrap();
}

async fn post(url: String, headers: &[(&str, &str)], body: serde_json::Value) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn ingest_status(runtime: &ServerRuntime, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    post(
        format!(
            "http://127.0.0.1:{}/api/v1/ingest",
            runtime.http_addr().port()
        ),
        &[("authorization", auth.as_str()), ("x-relay-edge", EDGE)],
        serde_json::json!({"trail_id": "ws-1", "records": []}),
    )
    .await
}

async fn startup_posture(stores_dir: &TempDir) -> serde_json::Value {
    let local = relay_local::LocalAdapters::open(stores_dir.path())
        .await
        .unwrap();
    let records = local
        .record_store
        .read(&TrailId::relay(), 0, 1000)
        .await
        .unwrap();
    local.record_store.close().await;
    records
        .iter()
        .rev()
        .find(|r| r.kind.as_str() == "STARTUP")
        .unwrap()
        .payload
        .to_value()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_changes_are_applied_at_server_start_and_a_revoked_token_stays_refused() {
    // Control: the issued token authenticates on a server with no approved change.
    let control_dir = TempDir::new().unwrap();
    let stores = relay_node::local::server_stores(control_dir.path())
        .await
        .unwrap();
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), EDGE)
        .await
        .unwrap();
    let runtime = ServerRuntime::start(stores, settings(&control_dir))
        .await
        .unwrap();
    let (status, body) = ingest_status(&runtime, &token).await;
    assert_ne!(status, 401, "the token authenticates: {body}");
    runtime.shutdown().await;

    // The same, after an approved revocation and two approved start-up settings.
    let dir = TempDir::new().unwrap();
    let stores = relay_node::local::server_stores(dir.path()).await.unwrap();
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), EDGE)
        .await
        .unwrap();
    let changes = stores.changes.clone().unwrap();
    approved(
        changes.as_ref(),
        "cr-revoke",
        ChangeSetting::IngestToken,
        serde_json::json!({"source": EDGE, "action": "revoke"}),
    )
    .await;
    approved(
        changes.as_ref(),
        "cr-closed",
        ChangeSetting::RegistrationClosed,
        serde_json::json!(true),
    )
    .await;
    approved(
        changes.as_ref(),
        "cr-interval",
        ChangeSetting::NotaryIntervalSecs,
        serde_json::json!(7200),
    )
    .await;
    let runtime = ServerRuntime::start(stores, settings(&dir)).await.unwrap();
    let (status, body) = ingest_status(&runtime, &token).await;
    assert_eq!(
        status, 401,
        "a revoked edge is refused after a restart: {body}"
    );
    // registration_closed is in effect: even the bootstrap registration is refused.
    let (status, body) = post(
        format!(
            "http://127.0.0.1:{}/api/v1/auth/register",
            runtime.http_addr().port()
        ),
        &[],
        serde_json::json!({"username": "ada", "full_name": "Ada", "password": "correct horse battery", "role": "admin"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    runtime.shutdown().await;

    let posture = startup_posture(&dir).await;
    assert_eq!(
        posture["approved_changes_applied"],
        serde_json::json!(["cr-closed", "cr-interval"])
    );
    assert_eq!(
        posture["ingest"]["revoked_by_approved_change"],
        serde_json::json!([EDGE])
    );
}
