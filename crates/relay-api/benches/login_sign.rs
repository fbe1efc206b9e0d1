//! Server-side latency of login and signing at the default Argon2id cost (m=19 MiB, t=2, p=1),
//! through the in-process router on the real SQLite adapters (no network).
//!
//! `cargo bench -p relay-api --bench login_sign [-- ITERATIONS]` prints a Markdown table (the
//! one in docs/performance.md, "API: login and signing").

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use relay_api::{ApiConfig, ApiMetrics, ApiParts, ApiState};
use relay_domain::ports::{RecordStore, SecretName, SecretProviderExt, TimeSource};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Subject, TrailId,
};
use relay_local::LocalAdapters;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "benchmark password";

async fn call(
    app: &axum::Router,
    uri: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn stats(mut d: Vec<Duration>) -> (f64, f64, f64, f64) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let mean = d.iter().map(|x| ms(*x)).sum::<f64>() / d.len() as f64;
    let p = |q: f64| ms(d[((d.len() - 1) as f64 * q).round() as usize]);
    (p(0.5), p(0.95), ms(d[d.len() - 1]), mean)
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::TempDir::new().unwrap();
        let adapters = LocalAdapters::open(dir.path()).await.unwrap();
        let key = adapters
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .unwrap()
            .to_trail_key()
            .unwrap();
        let store: Arc<dyn RecordStore> = adapters.record_store.clone();
        let clock: Arc<dyn TimeSource> = adapters.clock.clone();
        let appender = Arc::new(AppendService::new(store.clone(), clock, key));
        let mut config = ApiConfig::new(Device::new("bench-ws").unwrap());
        // Many logins and signatures in a row must not lock the account.
        config.lockout_threshold = u32::MAX;
        let state = ApiState::new(ApiParts {
            appender: appender.clone(),
            store,
            accounts: adapters.accounts.clone(),
            secrets: adapters.secrets.clone(),
            notary: adapters.notary.clone(),
            metrics: ApiMetrics::default(),
            config,
        })
        .await
        .unwrap();
        let app = relay_api::router(state);
        let target = appender
            .append(EventDraft {
                trail_id: TrailId::new("bench-01").unwrap(),
                kind: EventKind::file_created(),
                actor: Some(Actor::new("labop").unwrap()),
                actor_source: ActorSource::OsSession,
                occurred_at: None,
                device: Device::new("bench-ws").unwrap(),
                project: None,
                subject: Some(Subject::new("run/spectrum.fid").unwrap()),
                payload: Payload::from_value(&json!({"sha256": "ab".repeat(32), "size": 1})).unwrap(),
            })
            .await
            .unwrap();
        let (s, _) = call(&app, "/api/v1/auth/register", None,
            json!({"username": "ada", "full_name": "Ada", "password": PASSWORD, "role": "admin"})).await;
        assert_eq!(s, StatusCode::CREATED);
        let (_, b) = call(&app, "/api/v1/auth/login", None, json!({"username": "ada", "password": PASSWORD})).await;
        let admin = b["token"].as_str().unwrap().to_owned();
        let (s, _) = call(&app, "/api/v1/accounts", Some(&admin),
            json!({"username": "rita", "full_name": "Rita Reviewer", "password": "temporary harbour violet 17", "role": "reviewer", "reason": "benchmark reviewer"})).await;
        assert_eq!(s, StatusCode::CREATED);
        // An administrator-set password is temporary: the reviewer replaces it first.
        let (s, _) = call(&app, "/api/v1/auth/password", None,
            json!({"username": "rita", "old_password": "temporary harbour violet 17", "new_password": PASSWORD})).await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        let mut login = Vec::with_capacity(iterations);
        let mut token = String::new();
        for _ in 0..iterations {
            let t = Instant::now();
            let (s, b) = call(&app, "/api/v1/auth/login", None, json!({"username": "rita", "password": PASSWORD})).await;
            login.push(t.elapsed());
            assert_eq!(s, StatusCode::OK);
            token = b["token"].as_str().unwrap().to_owned();
        }
        let mut sign = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let t = Instant::now();
            let (s, b) = call(&app, "/api/v1/signatures", Some(&token), json!({
                "trail_id": "bench-01", "target_checksum": target.checksum.to_hex(),
                "meaning": "reviewed", "reason": format!("bench {i}"), "password": PASSWORD})).await;
            sign.push(t.elapsed());
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let hash_only: Vec<Duration> = (0..iterations.min(10))
            .map(|_| {
                let t = Instant::now();
                relay_api::hash_password_blocking(PASSWORD).unwrap();
                t.elapsed()
            })
            .collect();
        println!("{iterations} iterations, Argon2id m=19456 KiB t=2 p=1 (argon2 crate defaults)\n");
        println!("| operation | median | p95 | max | mean |");
        println!("|---|---|---|---|---|");
        for (name, d) in [
            ("POST /api/v1/auth/login (Argon2id verify + token)", login),
            ("POST /api/v1/signatures (Argon2id verify + durable SIGNATURE append)", sign),
            ("baseline: one Argon2id hash, nothing else", hash_only),
        ] {
            let (p50, p95, max, mean) = stats(d);
            println!("| {name} | {p50:.1} ms | {p95:.1} ms | {max:.1} ms | {mean:.1} ms |");
        }
    });
}
