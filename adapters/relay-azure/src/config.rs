//! Settings of the Azure adapters: the storage account and containers, the Key Vault, how to get
//! Entra ID tokens, and the HTTP limits every call runs under.
//!
//! The crate never reads the environment itself (only binaries do, see docs/ARCHITECTURE.md):
//! [`AzureConfig::from_vars`] takes a lookup function, to which binaries and tests pass
//! `|name| std::env::var(name).ok()`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How the adapters get Entra ID tokens (blob calls without a SAS, every Key Vault call).
#[derive(Clone, PartialEq, Eq)]
pub enum AzureCredential {
    /// The managed identity of the VM, App Service or Container App running the relay; a
    /// user-assigned identity is named by its client id.
    ManagedIdentity {
        /// Client id of a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
    },
    /// Entra Workload Identity on Kubernetes (AKS): a federated service-account token file.
    WorkloadIdentity {
        /// The tenant (directory) id.
        tenant_id: String,
        /// The client id of the federated identity.
        client_id: String,
        /// The projected service-account token (`AZURE_FEDERATED_TOKEN_FILE`).
        token_file: PathBuf,
    },
    /// A service principal with a client secret (CI and live tests outside Azure).
    ClientSecret {
        /// The tenant (directory) id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret. Never logged.
        client_secret: String,
    },
}

impl AzureCredential {
    /// A short name for logs and posture events.
    pub fn kind(&self) -> &'static str {
        match self {
            AzureCredential::ManagedIdentity { .. } => "managed-identity",
            AzureCredential::WorkloadIdentity { .. } => "workload-identity",
            AzureCredential::ClientSecret { .. } => "client-secret",
        }
    }
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredential::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            AzureCredential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Where blobs live: the storage account's blob service and the containers the adapters use.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobSettings {
    /// The blob service URL of the account: `https://<account>.blob.core.windows.net`
    /// (Azurite: `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: String,
    /// A shared access signature (the query string, without `?`) appended to every blob URL
    /// instead of Entra ID tokens. Required for plain `http` (Azurite); never logged.
    pub sas: Option<String>,
    /// The notary's container. It must have version-level immutability support unless
    /// [`Self::allow_non_worm`] is set.
    pub notary_container: Option<String>,
    /// The object store's container (evidence, export packages), if the object store is used.
    pub object_container: Option<String>,
    /// Prepended to every anchor blob name.
    pub anchor_prefix: String,
    /// Prepended to every object blob name.
    pub object_prefix: String,
    /// Prepended to the blob the notary writes at start-up to prove the container locks blobs.
    pub probe_prefix: String,
    /// How long each anchor is locked (Part 11 records: years).
    pub anchor_retention: Duration,
    /// Runs the notary on a container that cannot hold immutable blobs, with a loud warning and
    /// posture `Unenforced`. Never in production.
    pub allow_non_worm: bool,
}

impl BlobSettings {
    /// Default anchor retention: ten years (365-day years).
    pub const DEFAULT_ANCHOR_RETENTION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Blobs at `endpoint`, no container chosen yet, default prefixes and retention.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            sas: None,
            notary_container: None,
            object_container: None,
            anchor_prefix: "anchors/".to_owned(),
            object_prefix: "objects/".to_owned(),
            probe_prefix: "worm-probe/".to_owned(),
            anchor_retention: Self::DEFAULT_ANCHOR_RETENTION,
            allow_non_worm: false,
        }
    }
}

impl fmt::Debug for BlobSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSettings")
            .field("endpoint", &self.endpoint)
            .field("sas", &self.sas.as_ref().map(|_| "<redacted>"))
            .field("notary_container", &self.notary_container)
            .field("object_container", &self.object_container)
            .field("anchor_prefix", &self.anchor_prefix)
            .field("object_prefix", &self.object_prefix)
            .field("probe_prefix", &self.probe_prefix)
            .field("anchor_retention", &self.anchor_retention)
            .field("allow_non_worm", &self.allow_non_worm)
            .finish()
    }
}

/// Where secrets live: a Key Vault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyVaultSettings {
    /// The vault URL: `https://<vault>.vault.azure.net`.
    pub url: String,
    /// Prepended to every Key Vault secret name, so one vault can serve several relays.
    /// Letters, digits and `-` only.
    pub name_prefix: String,
    /// Refuse an authentication challenge naming another domain than the vault's (the SDK's
    /// protection against token theft). Turn off only for a private endpoint with a custom
    /// domain, or a local test server.
    pub verify_challenge_resource: bool,
}

impl KeyVaultSettings {
    /// Secrets in the vault at `url`, named `relay-…`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name_prefix: "relay-".to_owned(),
            verify_challenge_resource: true,
        }
    }
}

/// Limits of every provider call: no call waits forever, and none is retried for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// Connection establishment limit.
    pub connect_timeout: Duration,
    /// Limit of one HTTP attempt, body included.
    pub attempt_timeout: Duration,
    /// Limit of one operation, retries and backoff included.
    pub operation_timeout: Duration,
    /// Retries after the first attempt (on 408, 429, 5xx and transport errors).
    pub max_retries: u32,
    /// The first backoff delay; it doubles per retry, capped at `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest backoff delay.
    pub max_backoff: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(120),
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Everything the Azure adapters need. Build it with [`AzureConfig::new`] and its fields, or
/// from variables with [`AzureConfig::from_vars`].
///
/// ```
/// # use relay_azure::{AzureConfig, AzureCredential, BlobSettings};
/// let mut blob = BlobSettings::new("https://relaylab.blob.core.windows.net");
/// blob.notary_container = Some("anchors".into());
/// let mut config = AzureConfig::new(AzureCredential::ClientSecret {
///     tenant_id: "contoso.onmicrosoft.com".into(),
///     client_id: "00000000-0000-0000-0000-000000000000".into(),
///     client_secret: "s3cret".into(),
/// });
/// config.blob = Some(blob);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureConfig {
    /// Blob storage (object store and notary); `None` when only Key Vault is used.
    pub blob: Option<BlobSettings>,
    /// Key Vault (secrets); `None` when secrets live elsewhere.
    pub key_vault: Option<KeyVaultSettings>,
    /// How to get Entra ID tokens.
    pub credential: AzureCredential,
    /// The Entra ID authority (`https://login.microsoftonline.com` when `None`; sovereign
    /// clouds and test servers set their own). Must be https.
    pub authority_host: Option<String>,
    /// A PEM file of extra CA certificates trusted besides the OS roots (TLS inspection
    /// proxies, private endpoints, test servers).
    pub ca_file: Option<PathBuf>,
    /// Timeouts and retries of every call.
    pub limits: HttpLimits,
}

/// Why variables do not make a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AzureConfigError {
    /// A required variable is missing.
    #[error("{var} is not set: {why}")]
    Missing {
        /// The variable.
        var: String,
        /// What it is needed for.
        why: &'static str,
    },
    /// A variable holds an unusable value.
    #[error("{var} is invalid: {message}")]
    Invalid {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
}

impl AzureConfig {
    /// A configuration with `credential`, no blob storage, no Key Vault and default limits.
    pub fn new(credential: AzureCredential) -> Self {
        Self {
            blob: None,
            key_vault: None,
            credential,
            authority_host: None,
            ca_file: None,
            limits: HttpLimits::default(),
        }
    }

    /// Settings from variables, looked up through `var` (binaries pass `std::env::var`).
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `<prefix>BLOB_ENDPOINT` or `<prefix>STORAGE_ACCOUNT` | the blob service (account name: `https://<account>.blob.core.windows.net`) |
    /// | `<prefix>BLOB_SAS` | a SAS instead of tokens for blob calls (Azurite) |
    /// | `<prefix>NOTARY_CONTAINER`, `<prefix>OBJECT_CONTAINER` | the containers |
    /// | `<prefix>ALLOW_NON_WORM` | `1`/`true`: run the notary without immutable blobs (loud warning) |
    /// | `<prefix>ANCHOR_RETENTION_DAYS` | lock period of each anchor (default 3650) |
    /// | `<prefix>KEY_VAULT_URL`, `<prefix>KEY_VAULT_PREFIX` | the vault and the secret name prefix (default `relay-`) |
    /// | `<prefix>VERIFY_CHALLENGE_RESOURCE` | `0`/`false` for a vault behind a custom domain |
    /// | `<prefix>CREDENTIAL` | `managed-identity`, `workload-identity` or `client-secret`; inferred when unset |
    /// | `<prefix>TENANT_ID`, `<prefix>CLIENT_ID`, `<prefix>CLIENT_SECRET`, `<prefix>FEDERATED_TOKEN_FILE`, `<prefix>AUTHORITY_HOST` | identity; each falls back to the standard `AZURE_*` variable (set by AKS workload identity) |
    /// | `<prefix>CA_FILE` | extra trusted CA certificates (PEM) |
    ///
    /// Without `CREDENTIAL`, a client secret means `client-secret`, a federated token file
    /// means `workload-identity`, and anything else the managed identity.
    pub fn from_vars(
        prefix: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AzureConfigError> {
        let name = |n: &str| format!("{prefix}{n}");
        let get = |n: &str| var(&name(n)).filter(|v| !v.trim().is_empty());
        // Identity variables fall back to the names the Azure tooling (and AKS) use.
        let identity =
            |n: &str| get(n).or_else(|| var(&format!("AZURE_{n}")).filter(|v| !v.is_empty()));
        let flag = |n: &str| -> Result<Option<bool>, AzureConfigError> {
            match get(n).as_deref().map(str::trim) {
                None => Ok(None),
                Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
                Some("0" | "false" | "no" | "off") => Ok(Some(false)),
                Some(other) => Err(AzureConfigError::Invalid {
                    var: name(n),
                    message: format!("{other:?} is not a boolean (1/true or 0/false)"),
                }),
            }
        };
        let required = |n: &str, why: &'static str| {
            identity(n).ok_or_else(|| AzureConfigError::Missing { var: name(n), why })
        };

        let secret = identity("CLIENT_SECRET");
        let token_file = identity("FEDERATED_TOKEN_FILE");
        let kind = match get("CREDENTIAL") {
            Some(kind) => kind.trim().to_ascii_lowercase(),
            None if secret.is_some() => "client-secret".to_owned(),
            None if token_file.is_some() => "workload-identity".to_owned(),
            None => "managed-identity".to_owned(),
        };
        let credential = match kind.as_str() {
            "managed-identity" => AzureCredential::ManagedIdentity {
                client_id: identity("CLIENT_ID"),
            },
            "workload-identity" => AzureCredential::WorkloadIdentity {
                tenant_id: required("TENANT_ID", "workload identity needs the tenant id")?,
                client_id: required("CLIENT_ID", "workload identity needs the client id")?,
                token_file: PathBuf::from(required(
                    "FEDERATED_TOKEN_FILE",
                    "workload identity needs the federated token file",
                )?),
            },
            "client-secret" => AzureCredential::ClientSecret {
                tenant_id: required("TENANT_ID", "a client secret needs the tenant id")?,
                client_id: required("CLIENT_ID", "a client secret needs the client id")?,
                client_secret: required("CLIENT_SECRET", "the client secret credential")?,
            },
            other => {
                return Err(AzureConfigError::Invalid {
                    var: name("CREDENTIAL"),
                    message: format!(
                        "{other:?}: expected managed-identity, workload-identity or client-secret"
                    ),
                });
            }
        };
        let mut config = Self::new(credential);
        config.authority_host = identity("AUTHORITY_HOST");
        config.ca_file = get("CA_FILE").map(PathBuf::from);

        let endpoint = match (get("BLOB_ENDPOINT"), get("STORAGE_ACCOUNT")) {
            (Some(endpoint), _) => Some(endpoint.trim_end_matches('/').to_owned()),
            (None, Some(account)) => {
                Some(format!("https://{}.blob.core.windows.net", account.trim()))
            }
            (None, None) => None,
        };
        if let Some(endpoint) = endpoint {
            let mut blob = BlobSettings::new(endpoint);
            blob.sas = get("BLOB_SAS").map(|s| s.trim_start_matches('?').to_owned());
            blob.notary_container = get("NOTARY_CONTAINER");
            blob.object_container = get("OBJECT_CONTAINER");
            blob.allow_non_worm = flag("ALLOW_NON_WORM")?.unwrap_or(false);
            if let Some(days) = get("ANCHOR_RETENTION_DAYS") {
                let days: u64 = days.trim().parse().ok().filter(|d| *d > 0).ok_or_else(|| {
                    AzureConfigError::Invalid {
                        var: name("ANCHOR_RETENTION_DAYS"),
                        message: format!("{days:?} is not a positive number of days"),
                    }
                })?;
                blob.anchor_retention = Duration::from_secs(days.saturating_mul(24 * 3600));
            }
            config.blob = Some(blob);
        } else if get("NOTARY_CONTAINER").is_some() || get("OBJECT_CONTAINER").is_some() {
            return Err(AzureConfigError::Missing {
                var: name("BLOB_ENDPOINT"),
                why: "a container is configured but no storage account (or STORAGE_ACCOUNT)",
            });
        }

        if let Some(url) = get("KEY_VAULT_URL") {
            let mut vault = KeyVaultSettings::new(url.trim_end_matches('/'));
            if let Some(prefix) = var(&name("KEY_VAULT_PREFIX")) {
                if !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(AzureConfigError::Invalid {
                        var: name("KEY_VAULT_PREFIX"),
                        message: "only ASCII letters, digits and '-' are allowed".into(),
                    });
                }
                vault.name_prefix = prefix;
            }
            if let Some(verify) = flag("VERIFY_CHALLENGE_RESOURCE")? {
                vault.verify_challenge_resource = verify;
            }
            config.key_vault = Some(vault);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn from_vars_reads_storage_vault_and_a_client_secret() {
        let config = AzureConfig::from_vars(
            "T_",
            vars(&[
                ("T_STORAGE_ACCOUNT", "relaylab"),
                ("T_NOTARY_CONTAINER", "anchors"),
                ("T_OBJECT_CONTAINER", "evidence"),
                ("T_ANCHOR_RETENTION_DAYS", "7"),
                ("T_KEY_VAULT_URL", "https://relay-kv.vault.azure.net/"),
                ("T_TENANT_ID", "contoso.onmicrosoft.com"),
                ("T_CLIENT_ID", "app"),
                ("T_CLIENT_SECRET", "s3cret"),
            ]),
        )
        .unwrap();
        let blob = config.blob.as_ref().unwrap();
        assert_eq!(blob.endpoint, "https://relaylab.blob.core.windows.net");
        assert_eq!(blob.notary_container.as_deref(), Some("anchors"));
        assert_eq!(blob.object_container.as_deref(), Some("evidence"));
        assert_eq!(blob.anchor_retention, Duration::from_secs(7 * 24 * 3600));
        assert!(!blob.allow_non_worm);
        let vault = config.key_vault.as_ref().unwrap();
        assert_eq!(vault.url, "https://relay-kv.vault.azure.net");
        assert_eq!(vault.name_prefix, "relay-");
        assert!(vault.verify_challenge_resource);
        assert_eq!(config.credential.kind(), "client-secret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn from_vars_falls_back_to_the_azure_identity_variables() {
        let config = AzureConfig::from_vars(
            "T_",
            vars(&[
                ("T_BLOB_ENDPOINT", "http://127.0.0.1:10000/devstoreaccount1"),
                ("T_BLOB_SAS", "?sv=2021&sig=abc"),
                ("T_ALLOW_NON_WORM", "true"),
                ("AZURE_TENANT_ID", "tenant"),
                ("AZURE_CLIENT_ID", "client"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.credential,
            AzureCredential::WorkloadIdentity {
                tenant_id: "tenant".into(),
                client_id: "client".into(),
                token_file: "/var/run/token".into(),
            }
        );
        let blob = config.blob.unwrap();
        assert_eq!(blob.sas.as_deref(), Some("sv=2021&sig=abc"));
        assert!(blob.allow_non_worm);
        assert!(!format!("{blob:?}").contains("sig=abc"));
        assert!(config.key_vault.is_none());
        let managed = AzureConfig::from_vars("T_", |_| None).unwrap();
        assert_eq!(
            managed.credential,
            AzureCredential::ManagedIdentity { client_id: None }
        );
        assert!(managed.blob.is_none());
    }

    #[test]
    fn from_vars_names_the_variable_that_is_wrong() {
        let missing = AzureConfig::from_vars(
            "T_",
            vars(&[("T_CREDENTIAL", "client-secret"), ("T_CLIENT_ID", "c")]),
        )
        .unwrap_err();
        assert!(matches!(&missing, AzureConfigError::Missing { var, .. } if var == "T_TENANT_ID"));
        let bad = AzureConfig::from_vars(
            "T_",
            vars(&[("T_STORAGE_ACCOUNT", "a"), ("T_ALLOW_NON_WORM", "maybe")]),
        )
        .unwrap_err();
        assert!(matches!(&bad, AzureConfigError::Invalid { var, .. } if var == "T_ALLOW_NON_WORM"));
        let orphan =
            AzureConfig::from_vars("T_", vars(&[("T_NOTARY_CONTAINER", "x")])).unwrap_err();
        assert!(matches!(orphan, AzureConfigError::Missing { .. }));
    }
}
