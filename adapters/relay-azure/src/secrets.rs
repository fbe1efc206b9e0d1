//! `KeyVaultSecretProvider`: versioned secrets in Azure Key Vault.

use std::collections::HashMap;

use async_trait::async_trait;
use azure_security_keyvault_secrets::models::{
    Secret, SecretClientGetSecretOptions, SecretProperties, SetSecretParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::TryStreamExt;
use rand::RngCore;
use rand::rngs::OsRng;
use relay_domain::KeyId;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretValue};
use zeroize::Zeroizing;

use relay_domain::ports::ProviderFailure;

use crate::error::{AzureError, SetupError};
use crate::http::AzureClients;

/// Bytes of a new secret version: 256 bits.
const SECRET_BYTES: usize = 32;

/// The content type the provider writes; a version with another one was not written by it.
const CONTENT_TYPE: &str = "application/vnd.gims-relay.secret.v1+base64";

/// Tag holding a version's position (1, 2, ...): Key Vault's `created` has whole-second
/// precision and its version listing has no documented order, so "oldest first" needs it.
const SEQ_TAG: &str = "relay-seq";

/// Tag holding the relay's own name of the secret (Key Vault names are escaped).
const NAME_TAG: &str = "relay-name";

/// Longest Key Vault secret name.
const MAX_VAULT_NAME: usize = 127;

/// Secrets in Key Vault, one Key Vault secret per [`SecretName`], one Key Vault version per
/// secret version; the version id (32 hex digits) is the [`KeyId`].
///
/// - **Names**: Key Vault allows only letters, digits and `-`, so a name is stored as
///   `<prefix><escaped>`, where `-` becomes `--`, `.` becomes `-d` and `_` becomes `-u`
///   (`trail-hmac` is `relay-trail--hmac`, `ingest-token.nmr-01` is
///   `relay-ingest--token-dnmr--01`): distinct names never collide.
/// - **Values**: 32 random bytes, base64, content type
///   `application/vnd.gims-relay.secret.v1+base64`; anything else is `Malformed`.
/// - **Versions**: `rotate` writes a new version (Key Vault keeps every old one readable by
///   id), tagged with its position so `versions` is oldest first.
/// - **`create` is check-then-write**: Key Vault has no conditional create, so two processes
///   creating the same secret at the same instant both write a version; both remain readable,
///   and the later one is current. Create secrets from one process (the relay does, at
///   start-up).
/// - Secret bytes never appear in errors, logs or `Debug` output; the decoded bytes are wiped
///   on drop (the SDK's own buffers are not under the adapter's control).
#[derive(Clone)]
pub struct KeyVaultSecretProvider {
    client: std::sync::Arc<SecretClient>,
    clients: AzureClients,
    url: String,
    prefix: String,
}

impl std::fmt::Debug for KeyVaultSecretProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultSecretProvider")
            .field("vault", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSecretProvider {
    /// The provider on the configured vault. Nothing is contacted yet; the first call fetches
    /// a token (Key Vault's challenge tells which scope).
    pub fn open(clients: &AzureClients) -> Result<Self, SetupError> {
        let Some(vault) = &clients.config().key_vault else {
            return Err(SetupError::message(
                "no Key Vault is configured (vault URL)",
            ));
        };
        if !vault
            .name_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(SetupError::message(format!(
                "Key Vault name prefix {:?}: only ASCII letters, digits and '-' are allowed",
                vault.name_prefix
            )));
        }
        let options = SecretClientOptions {
            client_options: clients.client_options(),
            verify_challenge_resource: Some(vault.verify_challenge_resource),
            ..Default::default()
        };
        let client = SecretClient::new(&vault.url, clients.credential(), Some(options))
            .map_err(|e| SetupError::new(&format!("use the Key Vault {}", vault.url), e))?;
        Ok(Self {
            client: std::sync::Arc::new(client),
            clients: clients.clone(),
            url: vault.url.clone(),
            prefix: vault.name_prefix.clone(),
        })
    }

    /// The Key Vault secret name of `name`.
    pub fn vault_name(&self, name: &SecretName) -> String {
        format!("{}{}", self.prefix, escape(name.as_str()))
    }

    fn checked_vault_name(&self, name: &SecretName) -> Result<String, SecretError> {
        let vault_name = self.vault_name(name);
        if vault_name.len() > MAX_VAULT_NAME {
            return Err(SecretError::Other {
                message: format!(
                    "secret {name}: its Key Vault name {vault_name} is longer than \
                     {MAX_VAULT_NAME} characters; use a shorter name or prefix"
                ),
                source: None,
            });
        }
        Ok(vault_name)
    }

    fn fault(&self, name: &SecretName, version: Option<&KeyId>, e: AzureError) -> SecretError {
        ProviderFailure::from(e).on_secret(name, version)
    }

    /// Reads `version` (the current one when `None`) and decodes it.
    async fn read(
        &self,
        name: &SecretName,
        version: Option<&KeyId>,
    ) -> Result<(SecretValue, u64), SecretError> {
        let vault_name = self.checked_vault_name(name)?;
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(|v| v.as_str().to_owned()),
            ..Default::default()
        };
        let secret = self
            .clients
            .call("read secret", async {
                self.client
                    .get_secret(&vault_name, Some(options))
                    .await?
                    .into_model()
            })
            .await
            .map_err(|e| self.fault(name, version, e))?;
        decode(name, secret)
    }

    /// Writes a new version of `name` at position `seq` and returns it.
    async fn write(&self, name: &SecretName, seq: u64) -> Result<SecretValue, SecretError> {
        let vault_name = self.checked_vault_name(name)?;
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretError::Other {
                message: "the OS random generator failed".into(),
                source: Some(Box::new(e)),
            })?;
        let params = SetSecretParameters {
            value: Some(B64.encode(bytes.as_slice())),
            content_type: Some(CONTENT_TYPE.to_owned()),
            tags: Some(HashMap::from([
                (SEQ_TAG.to_owned(), seq.to_string()),
                (NAME_TAG.to_owned(), name.as_str().to_owned()),
            ])),
            ..Default::default()
        };
        let body = params.try_into().map_err(|e| SecretError::Other {
            message: "could not encode the secret request".into(),
            source: Some(Box::new(e)),
        })?;
        let secret = self
            .clients
            .call("write secret", async {
                self.client
                    .set_secret(&vault_name, body, None)
                    .await?
                    .into_model()
            })
            .await
            .map_err(|e| self.fault(name, None, e))?;
        let id = version_of(name, &secret)?;
        Ok(SecretValue::new(id, bytes.to_vec()))
    }
}

/// A secret name as Key Vault allows it: letters and digits kept, `-` → `--`, `.` → `-d`,
/// `_` → `-u`. Injective, since every `-` in the output starts a two-character escape.
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '-' => out.push_str("--"),
            '.' => out.push_str("-d"),
            '_' => out.push_str("-u"),
            c => out.push(c),
        }
    }
    out
}

/// The version id in a Key Vault secret id (`https://<vault>/secrets/<name>/<version>`).
fn version_of(name: &SecretName, secret: &impl ResourceExt) -> Result<KeyId, SecretError> {
    let malformed = |message: String| SecretError::Malformed {
        name: name.clone(),
        message,
    };
    let id = secret
        .resource_id()
        .map_err(|e| malformed(format!("unusable secret id: {e}")))?;
    let version = id
        .version
        .ok_or_else(|| malformed("the secret id has no version".into()))?;
    KeyId::new(version).map_err(|e| malformed(format!("unusable version id: {e}")))
}

/// A version's position from its tag; versions without one sort first.
fn seq_of(tags: Option<&HashMap<String, String>>) -> u64 {
    tags.and_then(|t| t.get(SEQ_TAG))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn decode(name: &SecretName, mut secret: Secret) -> Result<(SecretValue, u64), SecretError> {
    let malformed = |message: &str| SecretError::Malformed {
        name: name.clone(),
        message: message.to_owned(),
    };
    let id = version_of(name, &secret)?;
    if secret.content_type.as_deref() != Some(CONTENT_TYPE) {
        return Err(malformed(
            "not written by the relay (unexpected content type); refusing to use it as a key",
        ));
    }
    let text = Zeroizing::new(secret.value.take().unwrap_or_default());
    let bytes = Zeroizing::new(
        B64.decode(text.as_bytes())
            .map_err(|_| malformed("the value is not base64"))?,
    );
    if bytes.len() != SECRET_BYTES {
        return Err(malformed("the value is not 32 bytes"));
    }
    Ok((
        SecretValue::new(id, bytes.to_vec()),
        seq_of(secret.tags.as_ref()),
    ))
}

/// Whether `id` can be a Key Vault version id (32 hex digits); anything else is not found
/// without asking (and never reaches the URL).
fn is_vault_version(id: &KeyId) -> bool {
    id.as_str().len() == 32 && id.as_str().chars().all(|c| c.is_ascii_hexdigit())
}

#[async_trait]
impl SecretProvider for KeyVaultSecretProvider {
    fn kind(&self) -> &'static str {
        "azure-key-vault"
    }

    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        Ok(self.read(name, None).await?.0)
    }

    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        if !is_vault_version(id) {
            return Err(SecretError::NotFound {
                name: name.clone(),
                version: Some(id.clone()),
            });
        }
        Ok(self.read(name, Some(id)).await?.0)
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        let vault_name = self.checked_vault_name(name)?;
        let listed: Vec<SecretProperties> = self
            .clients
            .call("list secret versions", async {
                self.client
                    .list_secret_properties_versions(&vault_name, None)?
                    .try_collect()
                    .await
            })
            .await
            .map_err(|e| self.fault(name, None, e))?;
        let mut versions = Vec::with_capacity(listed.len());
        for props in &listed {
            let id = version_of(name, props)?;
            let created = props
                .attributes
                .as_ref()
                .and_then(|a| a.created)
                .map_or(0, |t| t.unix_timestamp());
            versions.push((seq_of(props.tags.as_ref()), created, id));
        }
        if versions.is_empty() {
            return Err(SecretError::NotFound {
                name: name.clone(),
                version: None,
            });
        }
        versions.sort();
        Ok(versions.into_iter().map(|(_, _, id)| id).collect())
    }

    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        match self.read(name, None).await {
            Ok(_) => Err(SecretError::AlreadyExists { name: name.clone() }),
            Err(SecretError::NotFound { .. }) => {
                let value = self.write(name, 1).await?;
                tracing::info!(secret = %name, key_id = %value.id(), vault = %self.url, "created secret");
                Ok(value)
            }
            Err(e) => Err(e),
        }
    }

    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let (_, seq) = self.read(name, None).await?;
        let value = self.write(name, seq.saturating_add(1)).await?;
        tracing::info!(secret = %name, key_id = %value.id(), vault = %self.url, "rotated secret");
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names_fit_key_vault_and_never_collide() {
        assert_eq!(escape("trail-hmac"), "trail--hmac");
        assert_eq!(escape("ingest-token.nmr-01"), "ingest--token-dnmr--01");
        assert_eq!(escape("a_b"), "a-ub");
        let names = ["a-d", "a.", "a-.", "a--", "a_", "a-u", "a.d", "ad"];
        let escaped: std::collections::BTreeSet<String> = names.iter().map(|n| escape(n)).collect();
        assert_eq!(escaped.len(), names.len(), "{escaped:?}");
        for e in &escaped {
            assert!(e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
    }

    #[test]
    fn only_hex_ids_of_32_digits_are_vault_versions() {
        assert!(is_vault_version(
            &KeyId::new("0123456789abcdef0123456789ABCDEF").unwrap()
        ));
        assert!(!is_vault_version(
            &KeyId::new("k-0000000000000000").unwrap()
        ));
        assert!(!is_vault_version(
            &KeyId::new("0123456789abcdef0123456789abcdeg").unwrap()
        ));
    }
}
