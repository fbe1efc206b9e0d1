//! Test services: a fresh bucket per test on the Cloud Storage emulator (gcp-storage-emulator,
//! started by `.ci/services-gcs.sh`), found through an environment variable. A missing
//! emulator skips the whole test with a printed `SKIP` line, or fails it under
//! `RELAY_REQUIRE_SERVICES=1`.
//!
//! | variable                   | default                  |
//! |----------------------------|--------------------------|
//! | `RELAY_TEST_GCS_ENDPOINT`  | `http://127.0.0.1:9023`  |

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_gcp::{GcpAuth, GcpClient, GcpConnection};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Every test body runs under this limit, so a hung service fails the test instead of the run.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Runs a test body under [`TEST_LIMIT`].
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_LIMIT, body).await.is_err() {
        panic!("test did not finish within {TEST_LIMIT:?}");
    }
}

/// A name unique to this process and call, valid as a bucket name.
pub fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{}-{n}", std::process::id(), nanos % 1_000_000_000)
}

fn required() -> bool {
    std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, when services are required, fails.
pub fn unavailable(suite: &str, reason: String) {
    if required() {
        panic!("{suite}: required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP {suite}: {reason}");
}

/// The emulator's URL.
pub fn gcs_endpoint() -> String {
    std::env::var("RELAY_TEST_GCS_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:9023".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Short limits for tests: a dead service fails fast, a slow 8 MiB upload still fits.
pub fn test_connection(storage_endpoint: &str, secret_manager_endpoint: &str) -> GcpConnection {
    GcpConnection {
        project: Some("relay-test".to_owned()),
        auth: GcpAuth::Anonymous,
        storage_endpoint: storage_endpoint.to_owned(),
        secret_manager_endpoint: secret_manager_endpoint.to_owned(),
        ..GcpConnection::new()
    }
    .timeouts(
        Duration::from_secs(3),
        Duration::from_secs(30),
        Duration::from_secs(60),
    )
    .max_attempts(3)
}

/// A fresh bucket on the emulator.
pub struct GcsHarness {
    /// The client, built as production builds it (anonymous: the emulator has no auth).
    pub client: GcpClient,
    /// A bucket created for this test.
    pub bucket: String,
    /// The emulator's URL.
    pub endpoint: String,
    http: reqwest::Client,
}

impl GcsHarness {
    /// A new bucket, with a retention policy of `retention_secs` when given (the emulator
    /// stores it but never locks or enforces it), or `None` (skipped) when the emulator is
    /// unreachable.
    pub async fn start(suite: &str, retention_secs: Option<u64>) -> Option<Self> {
        let endpoint = gcs_endpoint();
        let client = GcpClient::new(&test_connection(&endpoint, "http://127.0.0.1:1"))
            .await
            .expect("anonymous client");
        // Built after the client, which installs the process's rustls provider.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let bucket = unique("relay-test");
        let created = http
            .post(format!("{endpoint}/storage/v1/b?project=relay-test"))
            .json(&serde_json::json!({ "name": bucket }))
            .send()
            .await;
        match created {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => panic!(
                "GCS emulator at {endpoint}: create bucket answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ),
            Err(e) => {
                unavailable(suite, format!("GCS emulator at {endpoint}: {e}"));
                return None;
            }
        }
        let harness = Self {
            client,
            bucket,
            endpoint,
            http,
        };
        if let Some(secs) = retention_secs {
            harness
                .patch_bucket(serde_json::json!({
                    "retentionPolicy": { "retentionPeriod": secs.to_string() }
                }))
                .await;
        }
        Some(harness)
    }

    /// Patches the bucket's metadata through the JSON API, as an operator would.
    pub async fn patch_bucket(&self, body: serde_json::Value) {
        let resp = self
            .http
            .patch(format!("{}/storage/v1/b/{}", self.endpoint, self.bucket))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "patch bucket: {}",
            resp.status()
        );
    }

    /// The bucket's metadata as the emulator reports it.
    pub async fn bucket_metadata(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/storage/v1/b/{}", self.endpoint, self.bucket))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Names of every object in the bucket under `prefix`, read around the adapter.
    pub async fn object_names(&self, prefix: &str) -> Vec<String> {
        let listing: serde_json::Value = self
            .http
            .get(format!("{}/storage/v1/b/{}/o", self.endpoint, self.bucket))
            .query(&[("prefix", prefix)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listing["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|o| o["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}
