//! The body of `POST /api/v1/ingest` (relay-api `ingest.rs`), driven through the real axum route
//! with an authenticated edge, on a fresh in-memory server per input. The body is whatever an
//! edge (or someone holding its token) sends.
//!
//! Properties: never a 5xx (the in-memory ports do not fail, so a 5xx is a bug); a 200 stored the
//! whole batch as a trail that verifies from seq 1 with the trail's keys and acknowledges the
//! batch's last seq, and an identical re-send is acknowledged with nothing appended; any refusal
//! stored nothing in a forwarded trail.
//!
//! Trail keys: every trail's secret `trail-hmac.<trail>` holds the seed keys (spec vectors and
//! package seeds), except trails whose name starts with `unprovisioned` (403).
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use relay_api::{
    IngestConfig, IngestMetrics, IngestParts, IngestResponse, IngestState, ingest_router,
};
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::{RecordStore, SecretError, SecretName, SecretProvider, SecretValue};
use relay_domain::verify::verify_stored_trail;
use relay_domain::{AppendService, Device, KeyId, Timestamp, TrailId};
use relay_fuzz::{SEED_KEYS, call, debug, runtime, seed_ring, spec_key};

const EDGE: &str = "edge-1";
const TOKEN: [u8; 16] = [0xab; 16];

/// Fixed secrets: the edge's ingest token and the seed trail keys.
#[derive(Debug)]
struct FixedSecrets;

impl FixedSecrets {
    fn all(name: &SecretName) -> Result<Vec<SecretValue>, SecretError> {
        let not_found = || SecretError::NotFound {
            name: name.clone(),
            version: None,
        };
        let n = name.as_str();
        if n == format!("ingest-token.{EDGE}") {
            let id = KeyId::new("ingest-1").map_err(|_| not_found())?;
            return Ok(vec![SecretValue::new(id, TOKEN.to_vec())]);
        }
        match n.strip_prefix("trail-hmac.") {
            Some(trail) if !trail.starts_with("unprovisioned") => {
                let mut out = Vec::new();
                for (id, hex_key) in SEED_KEYS {
                    let id = KeyId::new(id).map_err(|_| not_found())?;
                    let bytes = hex::decode(hex_key).map_err(|_| not_found())?;
                    out.push(SecretValue::new(id, bytes));
                }
                Ok(out)
            }
            _ => Err(not_found()),
        }
    }
}

#[async_trait]
impl SecretProvider for FixedSecrets {
    fn kind(&self) -> &'static str {
        "fuzz-fixed"
    }
    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        Self::all(name)?.pop().ok_or(SecretError::NotFound {
            name: name.clone(),
            version: None,
        })
    }
    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        Self::all(name)?
            .into_iter()
            .find(|v| v.id() == id)
            .ok_or(SecretError::NotFound {
                name: name.clone(),
                version: Some(id.clone()),
            })
    }
    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        Ok(Self::all(name)?.iter().map(|v| v.id().clone()).collect())
    }
    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        Err(SecretError::AlreadyExists { name: name.clone() })
    }
    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.current(name).await
    }
}

fn request(body: &[u8]) -> Request<Body> {
    Request::post("/api/v1/ingest")
        .header("content-type", "application/json")
        .header("x-relay-edge", EDGE)
        .header("authorization", format!("Bearer {}", hex::encode(TOKEN)))
        .body(Body::from(body.to_vec()))
        .expect("a valid request")
}

/// The trail an input's `trail_id` names, if it names a valid one.
fn named_trail(data: &[u8]) -> Option<TrailId> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    TrailId::new(value.get("trail_id")?.as_str()?).ok()
}

async fn forwarded_heads(store: &InMemoryRecordStore) -> Vec<(TrailId, u64)> {
    store
        .trails()
        .await
        .expect("in-memory trails")
        .into_iter()
        .filter(|(t, _)| !t.is_relay())
        .map(|(t, h)| (t, h.seq.get()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let store = Arc::new(InMemoryRecordStore::new());
        let start = Timestamp::parse_canonical("2026-11-25T09:00:05.000000Z").expect("valid");
        let clock = Arc::new(ManualClock::new(start));
        let appender = Arc::new(AppendService::new(store.clone(), clock, spec_key()));
        let state = IngestState::new(IngestParts {
            appender,
            store: store.clone(),
            secrets: Arc::new(FixedSecrets),
            device: Device::new("fuzz-server").expect("valid"),
            metrics: IngestMetrics::default(),
            config: IngestConfig {
                edges: vec![EDGE.to_owned()],
                clock_skew_threshold: Duration::from_secs(2),
                clock_skew_interval: Duration::from_secs(60),
                max_body_bytes: 1024 * 1024,
                // The edge may forward whichever trail the input names, so every path behind
                // the trail binding is reached.
                edge_trails: named_trail(data)
                    .map(|t| std::collections::BTreeMap::from([(EDGE.to_owned(), vec![t])]))
                    .unwrap_or_default(),
                late_after: Duration::from_secs(900),
            },
        });
        let app = ingest_router(state);
        let (status, body) = call(&app, request(data)).await;
        if debug() {
            eprintln!("ingest_batch: {status} {}", String::from_utf8_lossy(&body));
        }
        assert!(
            !status.is_server_error(),
            "ingest answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if status != StatusCode::OK {
            assert_eq!(
                forwarded_heads(&store).await,
                vec![],
                "a refused batch stored records"
            );
            return;
        }
        let ack: IngestResponse =
            serde_json::from_slice(&body).expect("a 200 is an IngestResponse");
        let batch: relay_api::IngestRequest =
            serde_json::from_slice(data).expect("a stored batch was a valid request");
        let last = batch.records.last().expect("a stored batch is not empty");
        assert_eq!(ack.acked_seq, last.chain_seq.get());
        assert_eq!(ack.appended, batch.records.len() as u64);
        let trail = batch.trail_id.clone();
        let verdict = verify_stored_trail(store.as_ref(), seed_ring(), &trail, &[], |_| {})
            .await
            .expect("in-memory reads");
        let summary = verdict.expect("an ingested trail verifies");
        assert_eq!(summary.records, last.chain_seq.get());
        // An identical re-send is acknowledged, nothing appended.
        let (status, body) = call(&app, request(data)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let again: IngestResponse = serde_json::from_slice(&body).expect("an IngestResponse");
        assert_eq!((again.appended, again.already_present), (0, ack.appended));
    });
});
