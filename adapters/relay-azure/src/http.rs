//! The one HTTP stack under every SDK client: reqwest on rustls + ring (no aws-lc or OpenSSL),
//! the OS roots plus an optional private CA, an explicit per-attempt timeout, a bounded retry
//! policy, and an operation deadline around every call.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::config::{AzureConfig, AzureCredential, HttpLimits};
use crate::error::{AzureError, SetupError};

/// The shared pieces every adapter of one configuration uses: SDK client options (transport,
/// retries, cloud) and the Entra ID credential, built once.
#[derive(Clone)]
pub struct AzureClients {
    options: ClientOptions,
    credential: Arc<dyn TokenCredential>,
    credential_kind: &'static str,
    limits: HttpLimits,
    config: AzureConfig,
}

impl std::fmt::Debug for AzureClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureClients")
            .field("credential", &self.credential_kind)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AzureClients {
    /// Builds the HTTP client and the credential `config` describes. Nothing is contacted yet:
    /// tokens are fetched on first use.
    pub fn new(config: &AzureConfig) -> Result<Self, SetupError> {
        let limits = config.limits;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(config.ca_file.as_deref())?)
            .connect_timeout(limits.connect_timeout)
            // The whole attempt, body included: a stalled download cannot hang a call.
            .timeout(limits.attempt_timeout)
            // Azure REST APIs do not redirect; following one could send a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SetupError::new("build the HTTP client", e))?;
        let cloud = match &config.authority_host {
            None => CloudConfiguration::AzurePublic,
            Some(host) => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = host.trim_end_matches('/').to_owned();
                CloudConfiguration::Custom(custom)
            }
        };
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: retry_options(&limits),
            // Always explicit, so the SDK never falls back to reading AZURE_AUTHORITY_HOST.
            cloud: Some(Arc::new(cloud)),
            ..Default::default()
        };
        let credential = credential(&config.credential, &options)?;
        Ok(Self {
            options,
            credential,
            credential_kind: config.credential.kind(),
            limits,
            config: config.clone(),
        })
    }

    /// The configuration these clients were built from.
    pub fn config(&self) -> &AzureConfig {
        &self.config
    }

    /// The SDK client options: transport, retry policy, cloud.
    pub(crate) fn client_options(&self) -> ClientOptions {
        self.options.clone()
    }

    /// The Entra ID credential.
    pub(crate) fn credential(&self) -> Arc<dyn TokenCredential> {
        Arc::clone(&self.credential)
    }

    /// Which credential kind is used.
    pub fn credential_kind(&self) -> &'static str {
        self.credential_kind
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// Runs one SDK call under the operation deadline (retries and backoff included).
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = azure_core::Result<T>>,
    ) -> Result<T, AzureError> {
        deadline(op, self.limits.operation_timeout, fut).await
    }
}

/// Runs `fut` under `limit`; an overrun is a temporary failure naming the operation.
pub(crate) async fn deadline<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = azure_core::Result<T>>,
) -> Result<T, AzureError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(AzureError::op(op)),
        Err(_) => Err(AzureError::timed_out(op, limit)),
    }
}

/// Exponential backoff from `initial_backoff`, at most `max_retries` retries, and never past
/// the operation deadline (the SDK's default retries 8 times and can take minutes).
fn retry_options(limits: &HttpLimits) -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: to_time(limits.initial_backoff),
        max_delay: to_time(limits.max_backoff),
        max_retries: limits.max_retries,
        max_total_elapsed: to_time(limits.operation_timeout),
    })
}

fn to_time(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::try_from(d).unwrap_or(azure_core::time::Duration::MAX)
}

fn credential(
    credential: &AzureCredential,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, SetupError> {
    let fail = |e| SetupError::new("build the Entra ID credential", e);
    Ok(match credential {
        AzureCredential::ManagedIdentity { client_id } => {
            let o = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: options.clone(),
            };
            let c: Arc<dyn TokenCredential> =
                ManagedIdentityCredential::new(Some(o)).map_err(fail)?;
            c
        }
        AzureCredential::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            let o = WorkloadIdentityCredentialOptions {
                tenant_id: Some(tenant_id.clone()),
                client_id: Some(client_id.clone()),
                token_file_path: Some(token_file.clone()),
                credential_options: ClientAssertionCredentialOptions {
                    client_options: options.clone(),
                },
            };
            let c: Arc<dyn TokenCredential> =
                WorkloadIdentityCredential::new(Some(o)).map_err(fail)?;
            c
        }
        AzureCredential::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            let o = ClientSecretCredentialOptions {
                client_options: options.clone(),
            };
            let c: Arc<dyn TokenCredential> = ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(client_secret.clone()),
                Some(o),
            )
            .map_err(fail)?;
            c
        }
    })
}

/// rustls with ring, the OS roots, and the certificates of `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken OS root is skipped (as browsers do); a private CA comes from ca_file.
        if let Err(e) = roots.add(cert) {
            tracing::debug!(error = %e, "skipping an unusable OS root certificate");
        }
    }
    if let Some(path) = ca_file {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let what = format!("read the CA file {}", path.display());
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| SetupError::new(&what, e))? {
            let cert = cert.map_err(|e| SetupError::new(&what, e))?;
            roots.add(cert).map_err(|e| SetupError::new(&what, e))?;
            added += 1;
        }
        if added == 0 {
            return Err(SetupError::message(format!(
                "the CA file {} holds no certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::new("configure TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadline_turns_a_hanging_call_into_a_temporary_error() {
        let started = std::time::Instant::now();
        let err = deadline::<()>("hang", Duration::from_millis(50), std::future::pending())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.meaning(), crate::error::Meaning::Temporary);
        assert!(err.to_string().contains("hang"), "{err}");
    }

    #[test]
    fn builds_clients_without_contacting_anything() {
        let clients = AzureClients::new(&AzureConfig::new(AzureCredential::ClientSecret {
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            client_secret: "s3cret".into(),
        }))
        .unwrap();
        assert_eq!(clients.credential_kind(), "client-secret");
        assert!(!format!("{clients:?}").contains("s3cret"));
        let missing = AzureConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..AzureConfig::new(AzureCredential::ManagedIdentity { client_id: None })
        };
        assert!(AzureClients::new(&missing).is_err());
    }
}
