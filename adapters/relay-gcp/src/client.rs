//! The Google Cloud client shared by every adapter of the crate: one HTTP client (rustls on
//! ring), one token source, and the bounded-retry loop every provider call goes through.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gcloud_storage::client::google_cloud_auth;
use gcloud_storage::client::{Client as StorageClient, ClientConfig};
use rand::Rng;
use relay_domain::error::BoxError;
use serde::de::DeserializeOwned;
use thiserror::Error;
use token_source::{TokenSource, TokenSourceProvider};
use tokio::time::Instant;

use crate::config::{GcpAuth, GcpConnection};
use crate::error::{GcpError, Meaning};

/// OAuth scope of every call: Cloud Storage and Secret Manager are both covered by it, and IAM
/// roles on the buckets and secrets decide what the relay may actually do.
const SCOPES: [&str; 1] = ["https://www.googleapis.com/auth/cloud-platform"];

/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why the client (or an adapter built on it) could not be opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GcpClientError {
    /// Credentials could not be found or loaded (Application Default Credentials, key file).
    #[error("google cloud credentials unavailable: {message}")]
    Credentials {
        /// What failed and how to fix it.
        message: String,
        /// The auth library's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The HTTP client could not be built (TLS roots, settings).
    #[error("could not build the HTTP client: {message}")]
    Http {
        /// What failed.
        message: String,
        /// reqwest's error.
        #[source]
        source: Option<BoxError>,
    },
}

/// A connection to Google Cloud, shared (cheaply cloned) by [`GcsObjectStore`](crate::GcsObjectStore),
/// [`GcsNotary`](crate::GcsNotary) and [`SecretManagerProvider`](crate::SecretManagerProvider).
///
/// Every provider call runs with the connection's limits: an explicit timeout per attempt
/// (also set on the HTTP client), at most `max_attempts` attempts with jittered exponential
/// backoff for temporary failures only (timeouts, connection errors, 408, 429, 5xx), and an
/// overall deadline per operation.
#[derive(Clone)]
pub struct GcpClient {
    inner: Arc<Inner>,
}

struct Inner {
    storage: StorageClient,
    http: reqwest::Client,
    token: Option<Arc<dyn TokenSource>>,
    project: Option<String>,
    connection: GcpConnection,
}

impl fmt::Debug for GcpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.connection;
        f.debug_struct("GcpClient")
            .field("storage_endpoint", &c.storage_endpoint)
            .field("secret_manager_endpoint", &c.secret_manager_endpoint)
            .field("auth", &c.auth)
            .field("project", &self.inner.project)
            .finish()
    }
}

/// Makes ring the process-wide rustls provider unless one is installed already: reqwest is
/// built without a bundled provider (no aws-lc C build), and the auth library builds its own
/// clients, which take the process default.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_some() {
        return;
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        // Another thread installed a provider between the check and here: a provider is set,
        // which is all reqwest needs.
        tracing::debug!("a rustls crypto provider was installed concurrently; using it");
    }
}

fn credentials_error(what: &str) -> impl FnOnce(google_cloud_auth::error::Error) -> GcpClientError {
    let message = what.to_owned();
    move |e| GcpClientError::Credentials {
        message,
        source: Some(Box::new(e)),
    }
}

impl GcpClient {
    /// Builds the client: loads credentials as `connection.auth` says (which may ask the
    /// metadata server, bounded by the operation timeout). No Google API is called yet.
    pub async fn new(connection: &GcpConnection) -> Result<Self, GcpClientError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(connection.connect_timeout)
            .timeout(connection.attempt_timeout)
            .build()
            .map_err(|e| GcpClientError::Http {
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        let auth_config = google_cloud_auth::project::Config::default().with_scopes(&SCOPES);
        let limit = connection.operation_timeout;
        let timed_out = || GcpClientError::Credentials {
            message: format!("no credentials within {limit:?} (metadata server unreachable?)"),
            source: None,
        };
        let provider = match &connection.auth {
            GcpAuth::Anonymous => None,
            GcpAuth::ApplicationDefault => Some(
                tokio::time::timeout(
                    limit,
                    google_cloud_auth::token::DefaultTokenSourceProvider::new(auth_config),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(credentials_error(
                    "Application Default Credentials not found; set GOOGLE_APPLICATION_CREDENTIALS, \
                     run on a Google Cloud runtime with a service account, or configure a key file",
                ))?,
            ),
            GcpAuth::CredentialsFile(path) => {
                let file = google_cloud_auth::credentials::CredentialsFile::new_from_file(
                    path.to_string_lossy().into_owned(),
                )
                .await
                .map_err(credentials_error(&format!(
                    "cannot read the credentials file {}",
                    path.display()
                )))?;
                Some(
                    tokio::time::timeout(
                        limit,
                        google_cloud_auth::token::DefaultTokenSourceProvider::new_with_credentials(
                            auth_config,
                            Box::new(file),
                        ),
                    )
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(credentials_error("cannot use the credentials file"))?,
                )
            }
        };
        let project = connection
            .project
            .clone()
            .or_else(|| provider.as_ref().and_then(|p| p.project_id.clone()));
        let token = provider.as_ref().map(|p| p.token_source());
        let mut storage_config = ClientConfig {
            http: Some(reqwest_middleware::ClientBuilder::new(http.clone()).build()),
            storage_endpoint: connection.storage_endpoint.trim_end_matches('/').to_owned(),
            project_id: project.clone(),
            ..ClientConfig::default()
        };
        storage_config = match provider {
            Some(p) => ClientConfig {
                token_source_provider: Some(Box::new(p)),
                ..storage_config
            },
            None => storage_config.anonymous(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                storage: StorageClient::new(storage_config),
                http,
                token,
                project,
                connection: connection.clone(),
            }),
        })
    }

    /// The Cloud Storage client, for operational tooling and tests that play an attacker
    /// holding the bucket's credentials. Using it bypasses every rule of the adapters.
    pub fn storage(&self) -> &StorageClient {
        &self.inner.storage
    }

    /// The project of the secrets (configured, or the credentials' project).
    pub fn project(&self) -> Option<&str> {
        self.inner.project.as_deref()
    }

    /// The connection settings.
    pub fn connection(&self) -> &GcpConnection {
        &self.inner.connection
    }

    /// Runs `attempt` under the connection's limits (see the type's docs) and says how many
    /// attempts were made, so a caller can tell "my own earlier attempt already succeeded"
    /// from a genuine conflict.
    pub(crate) async fn call_counted<T, F, Fut>(
        &self,
        service: &'static str,
        op: &'static str,
        mut attempt: F,
    ) -> (Result<T, GcpError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GcpError>>,
    {
        let c = &self.inner.connection;
        let deadline = Instant::now() + c.operation_timeout;
        let mut n = 0;
        loop {
            n += 1;
            let limit = c
                .attempt_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let result = match tokio::time::timeout(limit, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(GcpError::timed_out(
                    service,
                    op,
                    format!("attempt {n} got no answer within {limit:?}"),
                )),
            };
            match result {
                Err(e) if e.meaning() == Meaning::Temporary && n < c.max_attempts => {
                    let delay = backoff(n);
                    if Instant::now() + delay >= deadline {
                        return (Err(e), n);
                    }
                    tracing::debug!(service, op, attempt = n, error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return (other, n),
            }
        }
    }

    /// [`Self::call_counted`] without the count.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        service: &'static str,
        op: &'static str,
        attempt: F,
    ) -> Result<T, GcpError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GcpError>>,
    {
        self.call_counted(service, op, attempt).await.0
    }

    /// One Secret Manager REST request (`v1/<path>`), authenticated, with its error body
    /// decoded into a [`GcpError`]. Not retried: callers wrap it in [`Self::call`].
    pub(crate) async fn secret_manager_request<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, GcpError> {
        const SERVICE: &str = "secret manager";
        let url = format!(
            "{}/v1/{path}",
            self.inner
                .connection
                .secret_manager_endpoint
                .trim_end_matches('/')
        );
        let mut req = self.inner.http.request(method, url).query(query);
        if let Some(ts) = &self.inner.token {
            let token = ts.token().await.map_err(|e| {
                GcpError::new(
                    SERVICE,
                    "obtain an access token",
                    None,
                    Some("TOKEN".into()),
                    Some(e),
                )
            })?;
            req = req.header(reqwest::header::AUTHORIZATION, token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| GcpError::transport(SERVICE, op, e))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json::<T>()
                .await
                .map_err(|e| GcpError::transport(SERVICE, op, e));
        }
        // Google's REST error body: {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}.
        let text = match resp.text().await {
            Ok(text) => text,
            Err(e) => format!("(error body unreadable: {e})"),
        };
        let (reason, message) = match serde_json::from_str::<GoogleErrorBody>(&text) {
            Ok(GoogleErrorBody { error }) => (error.status, error.message),
            // Not Google's error shape (a proxy, a load balancer): keep the start of the body.
            Err(_) => (None, text.chars().take(300).collect()),
        };
        Err(GcpError::new(
            SERVICE,
            op,
            Some(status.as_u16()),
            reason,
            Some(message.into()),
        ))
    }
}

#[derive(serde::Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(serde::Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    status: Option<String>,
}

/// The delay before attempt `n + 1`: exponential from [`FIRST_BACKOFF`], capped, with full
/// jitter in its upper half so concurrent relays do not retry in lockstep.
fn backoff(n: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << n.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    let half = capped / 2;
    half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for n in 1..40 {
            let d = backoff(n);
            assert!(d <= MAX_BACKOFF, "attempt {n}: {d:?}");
            assert!(d >= FIRST_BACKOFF / 2, "attempt {n}: {d:?}");
        }
        assert!(backoff(1) <= FIRST_BACKOFF);
        assert!(backoff(6) >= MAX_BACKOFF / 2);
    }

    #[tokio::test]
    async fn retries_temporary_failures_a_bounded_number_of_times() {
        let connection = GcpConnection::new()
            .timeouts(
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(10),
            )
            .max_attempts(3);
        let client = GcpClient::new(&GcpConnection {
            auth: GcpAuth::Anonymous,
            ..connection
        })
        .await
        .unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let (result, attempts) = client
            .call_counted("test", "op", || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err::<(), _>(GcpError::new("test", "op", Some(503), None, None))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, 3);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 3);
        // Permanent failures are not retried.
        let (result, attempts) = client
            .call_counted("test", "op", || async {
                Err::<(), _>(GcpError::new("test", "op", Some(403), None, None))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_is_cut_at_the_attempt_timeout() {
        let connection = GcpConnection {
            auth: GcpAuth::Anonymous,
            ..GcpConnection::new()
        }
        .timeouts(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .max_attempts(2);
        let client = GcpClient::new(&connection).await.unwrap();
        let started = std::time::Instant::now();
        let (result, attempts) = client
            .call_counted("test", "op", || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, GcpError>(())
            })
            .await;
        let e = result.unwrap_err();
        assert_eq!(e.meaning(), Meaning::Temporary);
        assert_eq!(attempts, 2);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
