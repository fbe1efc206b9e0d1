//! Test services: Azurite's blob service (a fresh container per test), found through
//! environment variables. A missing service skips the whole test with a printed `SKIP` line,
//! or fails it under `RELAY_REQUIRE_SERVICES=1` (`.ci/services-azurite.sh` starts Azurite).
//!
//! | variable                          | default                                         |
//! |-----------------------------------|-------------------------------------------------|
//! | `RELAY_TEST_AZURE_BLOB_ENDPOINT`  | `http://127.0.0.1:10000/devstoreaccount1`       |
//! | `RELAY_TEST_AZURE_BLOB_SAS`       | an account SAS computed from the account key    |
//! | `RELAY_TEST_AZURE_ACCOUNT_KEY`    | Azurite's published well-known key              |

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use relay_azure::{AzureConfig, AzureCredential, BlobSettings, HttpLimits};
use sha2::Sha256;

/// Azurite's well-known key of `devstoreaccount1` (published in its documentation; it protects
/// nothing).
pub const AZURITE_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test run uses: lowercase letters, digits and `-` (container rules).
pub fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{}-{n}", std::process::id(), nanos % 1_000_000_000)
}

pub fn required() -> bool {
    std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, when services are required, fails.
pub fn unavailable(suite: &str, reason: String) {
    if required() {
        panic!("{suite}: required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP {suite}: {reason}");
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// An account SAS (service `b`, every resource type and permission, http and https) signed with
/// the account key, per the "Create an account SAS" string-to-sign of version 2020-12-06+.
pub fn account_sas(account: &str, key_b64: &str) -> String {
    let (sv, ss, srt, sp, se, spr) = (
        "2021-08-06",
        "b",
        "sco",
        "rwdxylacuptfi",
        "2099-01-01T00:00:00Z",
        "https,http",
    );
    let string_to_sign = format!("{account}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n{spr}\n{sv}\n\n");
    let key = B64.decode(key_b64).expect("account key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={}&spr={}&sig={}",
        enc(se),
        enc(spr),
        enc(&sig)
    )
}

/// Tight limits for tests: a hanging or failing service costs seconds.
pub fn test_limits() -> HttpLimits {
    let mut limits = HttpLimits::default();
    limits.connect_timeout = Duration::from_secs(2);
    limits.attempt_timeout = Duration::from_secs(10);
    limits.operation_timeout = Duration::from_secs(20);
    limits.max_retries = 2;
    limits.initial_backoff = Duration::from_millis(100);
    limits.max_backoff = Duration::from_millis(500);
    limits
}

/// A fresh container on Azurite (or the blob endpoint the environment names).
pub struct AzuriteHarness {
    /// The blob service URL.
    pub endpoint: String,
    /// The SAS every call carries.
    pub sas: String,
    /// The container created for this test.
    pub container: String,
}

impl AzuriteHarness {
    /// Creates a container, or returns `None` (skipped) when the blob service is unreachable.
    pub async fn start(suite: &str) -> Option<Self> {
        let endpoint = var_or(
            "RELAY_TEST_AZURE_BLOB_ENDPOINT",
            "http://127.0.0.1:10000/devstoreaccount1",
        )
        .trim_end_matches('/')
        .to_owned();
        let sas = match std::env::var("RELAY_TEST_AZURE_BLOB_SAS") {
            Ok(sas) if !sas.is_empty() => sas.trim_start_matches('?').to_owned(),
            _ => {
                let account = endpoint.rsplit('/').next().unwrap_or("devstoreaccount1");
                account_sas(
                    account,
                    &var_or("RELAY_TEST_AZURE_ACCOUNT_KEY", AZURITE_ACCOUNT_KEY),
                )
            }
        };
        let container = unique("relay");
        let url = format!("{endpoint}/{container}?restype=container&{sas}");
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        match http
            .put(&url)
            .header("x-ms-version", "2021-08-06")
            .header("content-length", "0")
            .send()
            .await
        {
            Ok(rsp) if rsp.status().as_u16() == 201 => Some(Self {
                endpoint,
                sas,
                container,
            }),
            Ok(rsp) => panic!(
                "{suite}: creating container {container} at {endpoint} answered HTTP {}: {}",
                rsp.status(),
                rsp.text().await.unwrap_or_default()
            ),
            Err(e) => {
                // Without the URL: it carries the SAS.
                let e = e.without_url();
                unavailable(suite, format!("Azurite blob service at {endpoint}: {e}"));
                None
            }
        }
    }

    /// Settings for this container, with the notary and the object store both on it.
    pub fn config(&self, allow_non_worm: bool) -> AzureConfig {
        let mut blob = BlobSettings::new(&self.endpoint);
        blob.sas = Some(self.sas.clone());
        blob.notary_container = Some(self.container.clone());
        blob.object_container = Some(self.container.clone());
        blob.allow_non_worm = allow_non_worm;
        let mut config = AzureConfig::new(AzureCredential::ManagedIdentity { client_id: None });
        config.blob = Some(blob);
        config.limits = test_limits();
        config
    }
}
