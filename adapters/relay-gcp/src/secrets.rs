//! `SecretManagerProvider`: named, versioned secrets in Google Secret Manager (REST v1).

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use rand::rngs::OsRng;
use relay_domain::KeyId;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretValue};
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::client::GcpClient;
use crate::config::SecretManagerOptions;
use relay_domain::ports::ProviderFailure;

use crate::error::{GcpError, Meaning};

const SERVICE: &str = "secret manager";
/// Bytes of a new secret (256 bits).
const SECRET_BYTES: usize = 32;
/// Longest secret id Secret Manager accepts.
const MAX_SECRET_ID: usize = 255;
/// Longest key id the domain accepts.
const MAX_KEY_ID: usize = 128;

/// Secrets in Secret Manager, one Secret Manager *secret* per relay secret and one *version*
/// per rotation.
///
/// - **Names**: relay secret `trail-hmac` is the secret `projects/<project>/secrets/<prefix>trail-hmac`.
///   Secret Manager ids allow no `.`, so `.` is stored as `_2e` and `_` as `_5f`
///   (`ingest-token.nmr-01` -> `relay-ingest-token_2enmr-01`), which keeps the mapping one-to-one.
/// - **Key ids**: version `n` of secret `name` has key id `<name>.v<n>` (names too long for
///   that are shortened with a hash of the full name). Versions are immutable and never
///   renumbered, so a key id stays resolvable for as long as its version is not destroyed;
///   `rotate` adds a version (a new key id) and older ones stay readable.
/// - **create** makes the secret (automatic replication) and its first version of 256 random
///   bits; `AlreadyExists` when the secret exists and has a version. A secret left without
///   versions by an interrupted create is completed instead.
/// - Destroying or disabling a version in the console makes it unreadable: verification of the
///   records it signed then fails loudly, it never skips them.
#[derive(Debug, Clone)]
pub struct SecretManagerProvider {
    client: GcpClient,
    project: String,
    prefix: String,
}

#[derive(Deserialize)]
struct SecretVersionResource {
    name: String,
}

#[derive(Deserialize)]
struct AccessResponse {
    name: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListVersionsResponse {
    #[serde(default)]
    versions: Vec<SecretVersionResource>,
    next_page_token: Option<String>,
}

impl SecretManagerProvider {
    /// A provider for the secrets of the client's project (configured, or the credentials'
    /// project). Nothing is called yet.
    pub fn new(client: &GcpClient, options: SecretManagerOptions) -> Result<Self, SecretError> {
        let Some(project) = client.project().map(str::to_owned) else {
            return Err(SecretError::Other {
                message: "no Google Cloud project for Secret Manager: configure one (PROJECT) or \
                          use credentials that name one"
                    .into(),
                source: None,
            });
        };
        if let Some(c) = options
            .prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(SecretError::Other {
                message: format!(
                    "secret id prefix {:?} holds {c:?}; Secret Manager ids allow ASCII letters, \
                     digits, '-' and '_'",
                    options.prefix
                ),
                source: None,
            });
        }
        Ok(Self {
            client: client.clone(),
            project,
            prefix: options.prefix,
        })
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The Secret Manager secret id of a relay secret.
    pub fn secret_id(&self, name: &SecretName) -> String {
        secret_id(&self.prefix, name)
    }

    fn secret_path(&self, name: &SecretName) -> Result<String, SecretError> {
        let id = self.secret_id(name);
        if id.len() > MAX_SECRET_ID {
            return Err(SecretError::Other {
                message: format!(
                    "secret {name} maps to a Secret Manager id of {} characters; at most \
                     {MAX_SECRET_ID} are allowed",
                    id.len()
                ),
                source: None,
            });
        }
        Ok(format!("projects/{}/secrets/{id}", self.project))
    }

    fn fault(&self, name: &SecretName, version: Option<&KeyId>, e: GcpError) -> SecretError {
        ProviderFailure::from(e).on_secret(name, version)
    }

    /// Reads version `version` (a number or `latest`) of `name`.
    async fn access(
        &self,
        name: &SecretName,
        version: &str,
        asked: Option<&KeyId>,
    ) -> Result<SecretValue, SecretError> {
        let path = format!("{}/versions/{version}:access", self.secret_path(name)?);
        let resp: AccessResponse = self
            .client
            .call(SERVICE, "access a secret version", || {
                self.client.secret_manager_request(
                    "access a secret version",
                    Method::GET,
                    &path,
                    &[],
                    None,
                )
            })
            .await
            .map_err(|e| self.fault(name, asked, e))?;
        let number = version_number(&resp.name).ok_or_else(|| SecretError::Malformed {
            name: name.clone(),
            message: format!(
                "Secret Manager answered with an odd version name {:?}",
                resp.name
            ),
        })?;
        let data = Zeroizing::new(resp.payload.data);
        let bytes = B64
            .decode(data.as_bytes())
            .map_err(|e| SecretError::Malformed {
                name: name.clone(),
                message: format!("version {number} is not base64: {e}"),
            })?;
        Ok(SecretValue::new(key_id(name, number), bytes))
    }

    /// Adds a version of 256 random bits to `name`.
    async fn add_version(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretError::Unavailable {
                message: "the OS random number generator failed".into(),
                source: Some(Box::new(e)),
            })?;
        // The request body copies the secret into buffers this crate cannot wipe (serde_json,
        // reqwest); the value handed back is wiped on drop.
        let body = serde_json::json!({ "payload": { "data": B64.encode(&*bytes) } });
        let path = format!("{}:addVersion", self.secret_path(name)?);
        let resp: SecretVersionResource = self
            .client
            .call(SERVICE, "add a secret version", || {
                self.client.secret_manager_request(
                    "add a secret version",
                    Method::POST,
                    &path,
                    &[],
                    Some(&body),
                )
            })
            .await
            .map_err(|e| self.fault(name, None, e))?;
        let number = version_number(&resp.name).ok_or_else(|| SecretError::Malformed {
            name: name.clone(),
            message: format!(
                "Secret Manager answered with an odd version name {:?}",
                resp.name
            ),
        })?;
        Ok(SecretValue::new(key_id(name, number), bytes.to_vec()))
    }

    /// Every version number of `name`, oldest first.
    async fn version_numbers(&self, name: &SecretName) -> Result<Vec<u64>, SecretError> {
        let path = format!("{}/versions", self.secret_path(name)?);
        let mut numbers = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("pageSize", "100")];
            if let Some(token) = page_token.as_deref() {
                query.push(("pageToken", token));
            }
            let page: ListVersionsResponse = self
                .client
                .call(SERVICE, "list secret versions", || {
                    self.client.secret_manager_request(
                        "list secret versions",
                        Method::GET,
                        &path,
                        &query,
                        None,
                    )
                })
                .await
                .map_err(|e| self.fault(name, None, e))?;
            for v in &page.versions {
                numbers.push(
                    version_number(&v.name).ok_or_else(|| SecretError::Malformed {
                        name: name.clone(),
                        message: format!("Secret Manager listed an odd version name {:?}", v.name),
                    })?,
                );
            }
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => break,
            }
        }
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }
}

/// `prefix` and `name` with `.` written `_2e` and `_` written `_5f` (Secret Manager ids allow
/// neither `.` nor an unescaped mapping that stays one-to-one).
fn secret_id(prefix: &str, name: &SecretName) -> String {
    let mut id = prefix.to_owned();
    for c in name.as_str().chars() {
        match c {
            '.' => id.push_str("_2e"),
            '_' => id.push_str("_5f"),
            c => id.push(c),
        }
    }
    id
}

/// The number at the end of `projects/<p>/secrets/<id>/versions/<n>`.
fn version_number(resource: &str) -> Option<u64> {
    let (_, n) = resource.rsplit_once("/versions/")?;
    n.parse().ok().filter(|n| *n > 0)
}

/// The key id of version `number` of `name`: `<name>.v<n>`, or for names too long for that,
/// the name shortened and followed by 16 hex digits of its SHA-256, so distinct names never
/// share key ids.
pub(crate) fn key_id(name: &SecretName, number: u64) -> KeyId {
    let suffix = format!(".v{number}");
    let plain = format!("{}{suffix}", name.as_str());
    let id = if plain.len() <= MAX_KEY_ID {
        plain
    } else {
        let digest = hex::encode(&Sha256::digest(name.as_str().as_bytes())[..8]);
        let keep = MAX_KEY_ID - suffix.len() - digest.len() - 1;
        // Secret names are ASCII, so any byte index is a character boundary.
        format!("{}-{digest}{suffix}", &name.as_str()[..keep])
    };
    // Built from a valid secret name (a subset of key id characters), a '.', 'v', '-', digits
    // and hex, within the length limit.
    KeyId::new(id).unwrap_or_else(|_| unreachable!("secret-version key ids are valid"))
}

/// The version number a key id of `name` names, if it is one of `name`'s key ids.
fn number_of(name: &SecretName, id: &KeyId) -> Option<u64> {
    let (_, n) = id.as_str().rsplit_once(".v")?;
    let number: u64 = n.parse().ok()?;
    (key_id(name, number) == *id).then_some(number)
}

#[async_trait]
impl SecretProvider for SecretManagerProvider {
    fn kind(&self) -> &'static str {
        "gcp-secret-manager"
    }

    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        self.access(name, "latest", None).await
    }

    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        let Some(number) = number_of(name, id) else {
            return Err(SecretError::NotFound {
                name: name.clone(),
                version: Some(id.clone()),
            });
        };
        self.access(name, &number.to_string(), Some(id)).await
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        let numbers = self.version_numbers(name).await?;
        if numbers.is_empty() {
            return Err(SecretError::NotFound {
                name: name.clone(),
                version: None,
            });
        }
        Ok(numbers.into_iter().map(|n| key_id(name, n)).collect())
    }

    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let path = format!("projects/{}/secrets", self.project);
        let secret_id = self.secret_id(name);
        self.secret_path(name)?;
        let body = serde_json::json!({
            "replication": { "automatic": {} },
            "labels": { "managed-by": "gims-relay" },
        });
        let query = [("secretId", secret_id.as_str())];
        let created: Result<serde_json::Value, GcpError> = self
            .client
            .call(SERVICE, "create a secret", || {
                self.client.secret_manager_request(
                    "create a secret",
                    Method::POST,
                    &path,
                    &query,
                    Some(&body),
                )
            })
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.meaning() == Meaning::Exists => {
                // The secret exists. With a version, it is a plain AlreadyExists; without one,
                // a create was interrupted between its two calls (or a retried create met its
                // own first attempt): finish it.
                if !self.version_numbers(name).await?.is_empty() {
                    return Err(SecretError::AlreadyExists { name: name.clone() });
                }
                tracing::warn!(secret = %name, "secret exists without a version; completing an interrupted create");
            }
            Err(e) => return Err(self.fault(name, None, e)),
        }
        let value = self.add_version(name).await?;
        tracing::info!(secret = %name, key_id = %value.id(), "created secret");
        Ok(value)
    }

    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let value = self.add_version(name).await?;
        tracing::info!(secret = %name, key_id = %value.id(), "rotated secret");
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn key_ids_name_the_secret_and_version_and_parse_back() {
        let n = name("trail-hmac");
        let id = key_id(&n, 3);
        assert_eq!(id.as_str(), "trail-hmac.v3");
        assert_eq!(number_of(&n, &id), Some(3));
        assert_eq!(
            number_of(&name("other"), &id),
            None,
            "not another secret's id"
        );
        assert_eq!(
            number_of(&n, &KeyId::new("k-0000000000000000").unwrap()),
            None
        );
        let dotted = name("ingest-token.nmr-01");
        assert_eq!(number_of(&dotted, &key_id(&dotted, 12)), Some(12));
    }

    #[test]
    fn long_names_get_distinct_valid_key_ids() {
        let a = name(&format!("{}a", "x".repeat(127)));
        let b = name(&format!("{}b", "x".repeat(127)));
        let (ia, ib) = (key_id(&a, 1), key_id(&b, 1));
        assert!(ia.as_str().len() <= MAX_KEY_ID);
        assert_ne!(ia, ib);
        assert_eq!(number_of(&a, &ia), Some(1));
        assert_eq!(number_of(&b, &ia), None);
    }

    #[test]
    fn secret_ids_escape_dots_and_underscores_one_to_one() {
        assert_eq!(secret_id("relay-", &name("trail-hmac")), "relay-trail-hmac");
        assert_eq!(
            secret_id("relay-", &name("ingest-token.nmr-01")),
            "relay-ingest-token_2enmr-01"
        );
        // Without escaping '_', these two would collide.
        assert_ne!(secret_id("", &name("a.b")), secret_id("", &name("a_2eb")));
        assert_eq!(secret_id("", &name("a_2eb")), "a_5f2eb");
    }

    #[test]
    fn version_numbers_come_from_resource_names() {
        assert_eq!(
            version_number("projects/123/secrets/relay-x/versions/7"),
            Some(7)
        );
        assert_eq!(
            version_number("projects/123/secrets/relay-x/versions/latest"),
            None
        );
        assert_eq!(version_number("projects/123/secrets/relay-x"), None);
    }
}
