//! `SecretsManagerProvider`: the relay's versioned secrets in AWS Secrets Manager.
//!
//! # Layout
//!
//! Relay secret `name` is the Secrets Manager secret `<prefix><name>` (default prefix
//! `gims-relay/`, e.g. `gims-relay/trail-hmac`, `gims-relay/ingest-token.nmr-01`). Its current
//! value (`AWSCURRENT`) is a JSON document holding **every** key version, oldest first:
//!
//! ```json
//! {"format":"gims-relay-secret-v1","versions":[{"id":"k-…","secret_hex":"…"},{"id":"k-…","secret_hex":"…"}]}
//! ```
//!
//! That is byte for byte the format of `relay-local`'s `FileSecretProvider` files, so an edge's
//! key file is imported with `aws secretsmanager create-secret --name gims-relay/trail-hmac.<edge>
//! --secret-string file://secrets/trail-hmac.json` and keeps its key ids. Key ids are
//! [`TrailKey::fingerprint_id`] of the bytes, as on the edge.
//!
//! **Rotation** (`rotate`) reads the current document, appends a new random 256-bit version and
//! writes the whole list as a new Secrets Manager version (`PutSecretValue`), which Secrets
//! Manager makes `AWSCURRENT`. So every rotation is one Secrets Manager version, the new
//! version's key id is recorded inside the value, and every older key id stays resolvable
//! from the current value alone (R1.3).
//!
//! Why the key id lives in the value and not in a staging label, and why old Secrets Manager
//! versions are never read: on real AWS a secret can carry at most 20 staging labels across
//! all its versions, and versions without a label are deprecated and removed once a secret has
//! more than 100 of them. Labels per key id would cap rotations at ~18; reading deprecated
//! versions would lose keys after ~100. Only `CreateSecret`, `DescribeSecret`,
//! `GetSecretValue` (AWSCURRENT) and `PutSecretValue` are used, which behave the same on AWS,
//! LocalStack and moto. A document of 64 KiB (the Secrets Manager limit) holds ~600 versions.
//!
//! **Concurrent rotations** cannot lose a key: the new version's `ClientRequestToken` (which
//! becomes its version id) is derived from the version id that was read. Two rotations from the
//! same version use the same token with different values, so Secrets Manager refuses the second
//! (`ResourceExistsException`, its idempotency rule); that one re-reads and retries, a bounded
//! number of times. A retried request of the SDK resends the same token and value, which
//! Secrets Manager treats as the same request.
//!
//! **Operators must not move `AWSCURRENT` back** (console "restore previous version"): the
//! older document lacks the newer keys, and records signed with them would stop verifying
//! until the newest version is made current again.
//!
//! A secret created beforehand without a value (Terraform, with its KMS key and resource
//! policy) is adopted by `create`: its first value is written with `PutSecretValue`.
//!
//! # Limits
//!
//! Every call is bounded by the SDK client's timeouts and retry settings (see
//! [`crate::AwsConfig`]). Secret bytes are never logged or shown in errors or `Debug`; the
//! adapter's own copies (decoded documents, JSON text) are wiped on drop, the SDK's request and
//! response buffers are not under its control. The provider compares no secret bytes itself;
//! callers compare credentials with [`SecretValue::ct_matches`] (constant time).

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use rand::RngCore;
use rand::rngs::OsRng;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretValue, merge_imported};
use relay_domain::{KeyId, TrailKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Meaning, SmError};

/// Bytes of a new secret version: 256 bits.
const SECRET_BYTES: usize = 32;

/// Tag of the stored document; the same as `relay-local`'s secret files.
const FORMAT: &str = "gims-relay-secret-v1";

/// How often a rotation that lost a race re-reads and tries again.
const MAX_ROTATION_RACES: usize = 4;

/// The stored document: every version, oldest first.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct StoredSecret {
    format: String,
    versions: Vec<StoredVersion>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct StoredVersion {
    id: String,
    secret_hex: String,
}

/// The current document of a secret, decoded, with the Secrets Manager version it came from.
struct Current {
    version_id: String,
    values: Vec<SecretValue>,
}

/// Settings of a [`SecretsManagerProvider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsManagerOptions {
    /// Prepended to every relay secret name to form the Secrets Manager name.
    pub prefix: String,
    /// KMS key (id, ARN or alias) that encrypts secrets the provider creates; `None`: the
    /// account's `aws/secretsmanager` key.
    pub kms_key_id: Option<String>,
}

impl Default for SecretsManagerOptions {
    fn default() -> Self {
        Self {
            prefix: crate::AwsConfig::DEFAULT_SECRETS_PREFIX.to_owned(),
            kms_key_id: None,
        }
    }
}

/// A [`SecretProvider`] on AWS Secrets Manager; see the module documentation for the layout.
///
/// - `create`: `CreateSecret` with the first version; `AlreadyExists` if the secret has a value.
/// - `rotate`: a new Secrets Manager version holding every key, the new one last (current).
/// - `current`, `version`, `versions`: one `GetSecretValue` of `AWSCURRENT` each.
/// - Errors: `NotFound` for a missing secret or version id, `PermissionDenied` for IAM or KMS
///   refusals, `Unavailable` for timeouts, throttling and 5xx (retry later), `Malformed` for a
///   value that is not a relay secret document.
#[derive(Clone)]
pub struct SecretsManagerProvider {
    client: Client,
    prefix: String,
    kms_key_id: Option<String>,
}

impl std::fmt::Debug for SecretsManagerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerProvider")
            .field("prefix", &self.prefix)
            .field("kms_key_id", &self.kms_key_id)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerProvider {
    /// A provider on a configured Secrets Manager client. [`crate::open`] builds the client with
    /// the adapter's timeouts and attempts; use this to bring a client of your own.
    pub fn new(client: Client, options: SecretsManagerOptions) -> Self {
        Self {
            client,
            prefix: options.prefix,
            kms_key_id: options.kms_key_id,
        }
    }

    /// The SDK client, for operational tooling and tests. Using it bypasses every rule here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The Secrets Manager name of relay secret `name`.
    pub fn secret_id(&self, name: &SecretName) -> String {
        format!("{}{}", self.prefix, name.as_str())
    }

    fn malformed(name: &SecretName, message: impl Into<String>) -> SecretError {
        SecretError::Malformed {
            name: name.clone(),
            message: message.into(),
        }
    }

    /// Reads and decodes the current document of `name`.
    async fn read(&self, name: &SecretName) -> Result<Current, SecretError> {
        let mut out = self
            .client
            .get_secret_value()
            .secret_id(self.secret_id(name))
            .send()
            .await
            .map_err(|e| SmError::op("read secret")(e).into_secret_error(name))?;
        let version_id = out.version_id.take().unwrap_or_default();
        let Some(text) = out.secret_string.take().map(Zeroizing::new) else {
            return Err(Self::malformed(
                name,
                "the current version has no SecretString (a binary secret is not a relay secret)",
            ));
        };
        let values = decode(name, &text)?;
        Ok(Current { version_id, values })
    }

    /// Writes `values` as the new current document of an existing secret, as the version
    /// `token`.
    async fn put(
        &self,
        name: &SecretName,
        token: String,
        values: &[SecretValue],
    ) -> Result<(), SmError> {
        let document = encode(values);
        self.client
            .put_secret_value()
            .secret_id(self.secret_id(name))
            .client_request_token(token)
            .secret_string(document.as_str())
            .send()
            .await
            .map_err(SmError::op("write a new secret version"))?;
        Ok(())
    }

    /// `create` met an existing secret: adopt it when it has no value yet (created beforehand
    /// by Terraform or an operator), refuse otherwise.
    async fn adopt_empty(
        &self,
        name: &SecretName,
        first: &SecretValue,
    ) -> Result<SecretValue, SecretError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(self.secret_id(name))
            .send()
            .await
            .map_err(|e| SmError::op("describe secret")(e).into_secret_error(name))?;
        let has_current = described.version_ids_to_stages().is_some_and(|versions| {
            versions
                .values()
                .any(|stages| stages.iter().any(|s| s == "AWSCURRENT"))
        });
        if has_current {
            return Err(SecretError::AlreadyExists { name: name.clone() });
        }
        if described.deleted_date().is_some() {
            return Err(SecretError::Other {
                message: format!(
                    "secret {} is scheduled for deletion; restore it (aws secretsmanager \
                     restore-secret) or choose another secrets prefix",
                    self.secret_id(name)
                ),
                source: None,
            });
        }
        let arn = described.arn().unwrap_or_default().to_owned();
        let token = version_token("first", &format!("{arn}\0{}", self.secret_id(name)));
        match self.put(name, token, std::slice::from_ref(first)).await {
            Ok(()) => {
                tracing::info!(secret = %self.secret_id(name), key_id = %first.id(), "adopted a secret that had no value");
                Ok(first.clone())
            }
            // Another process adopted it first.
            Err(e) if e.meaning() == Meaning::Exists => {
                Err(SecretError::AlreadyExists { name: name.clone() })
            }
            Err(e) => Err(e.into_secret_error(name)),
        }
    }
}

/// A new random version with its fingerprint id.
fn new_version() -> SecretValue {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    SecretValue::new(TrailKey::fingerprint_id(bytes.as_ref()), bytes.to_vec())
}

/// A new random version whose id is not among `existing` (a clash would need a 64-bit
/// fingerprint collision; checked anyway, since ids must stay unique).
fn new_version_besides(existing: &[SecretValue]) -> SecretValue {
    loop {
        let candidate = new_version();
        if existing.iter().all(|v| v.id() != candidate.id()) {
            return candidate;
        }
    }
}

/// A UUID-shaped `ClientRequestToken` (36 characters; Secrets Manager wants 32 to 64) derived
/// from `purpose` and `basis`, so racing writers from the same basis collide.
fn version_token(purpose: &str, basis: &str) -> String {
    let digest = Sha256::digest(format!("gims-relay {purpose}\0{basis}").as_bytes());
    let h = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The JSON document of `values` (wiped on drop).
fn encode(values: &[SecretValue]) -> Zeroizing<String> {
    let stored = StoredSecret {
        format: FORMAT.to_owned(),
        versions: values
            .iter()
            .map(|v| StoredVersion {
                id: v.id().as_str().to_owned(),
                secret_hex: hex::encode(v.expose()),
            })
            .collect(),
    };
    // Serializing strings into a String cannot fail.
    Zeroizing::new(serde_json::to_string(&stored).unwrap_or_default())
}

/// Decodes a stored document. Error messages never quote the document.
fn decode(name: &SecretName, text: &str) -> Result<Vec<SecretValue>, SecretError> {
    let malformed = |m: String| SecretsManagerProvider::malformed(name, m);
    let stored: StoredSecret = serde_json::from_str(text).map_err(|e| {
        // The position and class only: serde's message could quote part of a key.
        malformed(format!(
            "not a {FORMAT} document ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if stored.format != FORMAT {
        return Err(malformed(format!(
            "unknown format tag (expected {FORMAT}); written by a newer relay?"
        )));
    }
    if stored.versions.is_empty() {
        return Err(malformed("the document holds no version".into()));
    }
    let mut seen = BTreeSet::new();
    let mut values = Vec::with_capacity(stored.versions.len());
    for (i, v) in stored.versions.iter().enumerate() {
        let id = KeyId::new(v.id.clone())
            .map_err(|e| malformed(format!("version {} has a bad id: {e}", i + 1)))?;
        if !seen.insert(id.clone()) {
            return Err(malformed(format!("version id {id} appears twice")));
        }
        let bytes = hex::decode(&v.secret_hex)
            .map_err(|_| malformed(format!("version {id} is not hex")))?;
        if bytes.is_empty() {
            return Err(malformed(format!("version {id} is empty")));
        }
        values.push(SecretValue::new(id, bytes));
    }
    Ok(values)
}

#[async_trait]
impl SecretProvider for SecretsManagerProvider {
    fn kind(&self) -> &'static str {
        "aws-secrets-manager"
    }

    async fn current(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let mut current = self.read(name).await?;
        current
            .values
            .pop()
            .ok_or_else(|| Self::malformed(name, "the document holds no version"))
    }

    async fn version(&self, name: &SecretName, id: &KeyId) -> Result<SecretValue, SecretError> {
        let current = self.read(name).await?;
        current
            .values
            .into_iter()
            .find(|v| v.id() == id)
            .ok_or_else(|| SecretError::NotFound {
                name: name.clone(),
                version: Some(id.clone()),
            })
    }

    async fn versions(&self, name: &SecretName) -> Result<Vec<KeyId>, SecretError> {
        let current = self.read(name).await?;
        Ok(current.values.iter().map(|v| v.id().clone()).collect())
    }

    async fn create(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        let first = new_version();
        let document = encode(std::slice::from_ref(&first));
        let result = self
            .client
            .create_secret()
            .name(self.secret_id(name))
            .description(format!(
                "GIMS relay secret {name}: every key version ({FORMAT}); written by the relay, \
                 never roll AWSCURRENT back"
            ))
            .set_kms_key_id(self.kms_key_id.clone())
            .secret_string(document.as_str())
            .send()
            .await;
        match result.map_err(SmError::op("create secret")) {
            Ok(_) => {
                tracing::info!(secret = %self.secret_id(name), key_id = %first.id(), "created secret");
                Ok(first)
            }
            Err(e) if e.meaning() == Meaning::Exists => self.adopt_empty(name, &first).await,
            Err(e) => Err(e.into_secret_error(name)),
        }
    }

    async fn import(
        &self,
        name: &SecretName,
        versions: &[SecretValue],
    ) -> Result<Vec<KeyId>, SecretError> {
        for _ in 0..MAX_ROTATION_RACES {
            let current = match self.read(name).await {
                Ok(c) => Some(c),
                Err(SecretError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            let stored = current.as_ref().map(|c| c.values.as_slice()).unwrap_or(&[]);
            let (merged, added) = merge_imported(name, stored, versions)?;
            if added.is_empty() {
                return Ok(added);
            }
            let written = match &current {
                Some(c) => {
                    let basis = format!(
                        "{}\0{}",
                        c.version_id,
                        added
                            .iter()
                            .map(KeyId::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    self.put(name, version_token("import", &basis), &merged)
                        .await
                }
                None => self
                    .client
                    .create_secret()
                    .name(self.secret_id(name))
                    .description(format!(
                        "GIMS relay secret {name}: every key version ({FORMAT}); written by the \
                         relay, never roll AWSCURRENT back"
                    ))
                    .set_kms_key_id(self.kms_key_id.clone())
                    .secret_string(encode(&merged).as_str())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(SmError::op("create secret")),
            };
            match written {
                Ok(()) => {
                    tracing::info!(secret = %self.secret_id(name), added = added.len(), versions = merged.len(), "imported secret versions");
                    return Ok(added);
                }
                Err(e) if e.meaning() == Meaning::Exists => {
                    tracing::debug!(secret = %self.secret_id(name), "lost an import race; retrying");
                }
                Err(e) => return Err(e.into_secret_error(name)),
            }
        }
        Err(SecretError::Unavailable {
            message: format!(
                "secret {name}: {MAX_ROTATION_RACES} imports in a row met a concurrent write"
            ),
            source: None,
        })
    }

    async fn rotate(&self, name: &SecretName) -> Result<SecretValue, SecretError> {
        for _ in 0..MAX_ROTATION_RACES {
            let Current {
                version_id,
                mut values,
            } = self.read(name).await?;
            let next = new_version_besides(&values);
            values.push(next.clone());
            let token = version_token("rotate", &version_id);
            match self.put(name, token, &values).await {
                Ok(()) => {
                    tracing::info!(secret = %self.secret_id(name), key_id = %next.id(), versions = values.len(), "rotated secret");
                    return Ok(next);
                }
                Err(e) if e.meaning() == Meaning::Exists => {
                    // Another rotation from the same version won; rotate on top of it.
                    tracing::debug!(secret = %self.secret_id(name), "lost a rotation race; retrying");
                }
                Err(e) => return Err(e.into_secret_error(name)),
            }
        }
        Err(SecretError::Unavailable {
            message: format!(
                "secret {name}: {MAX_ROTATION_RACES} rotations in a row met a concurrent \
                 rotation (or AWSCURRENT was moved back by hand to an already rotated version)"
            ),
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> SecretName {
        SecretName::new("trail-hmac").unwrap()
    }

    #[test]
    fn documents_round_trip_in_the_file_providers_format() {
        let a = new_version();
        let b = new_version_besides(std::slice::from_ref(&a));
        assert_eq!(a.expose().len(), 32);
        assert_eq!(a.id(), &TrailKey::fingerprint_id(a.expose()));
        let text = encode(&[a.clone(), b.clone()]);
        assert!(text.starts_with(r#"{"format":"gims-relay-secret-v1","versions":[{"id":"k-"#));
        let back = decode(&name(), &text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].id(), a.id());
        assert!(back[0].ct_matches(a.expose()));
        assert!(back[1].ct_matches(b.expose()));
    }

    #[test]
    fn malformed_documents_are_refused_without_quoting_them() {
        let secretish = "deadbeefcafe0123456789";
        for bad in [
            format!(
                r#"{{"format":"gims-relay-secret-v1","versions":[{{"id":"k-1","secret_hex":{secretish}}}]}}"#
            ),
            format!(
                r#"{{"format":"other","versions":[{{"id":"k-1","secret_hex":"{secretish}"}}]}}"#
            ),
            r#"{"format":"gims-relay-secret-v1","versions":[]}"#.to_owned(),
            format!(
                r#"{{"format":"gims-relay-secret-v1","versions":[{{"id":"k-1","secret_hex":"{secretish}"}},{{"id":"k-1","secret_hex":"00"}}]}}"#
            ),
            format!(
                r#"{{"format":"gims-relay-secret-v1","versions":[{{"id":"k 1","secret_hex":"{secretish}"}}]}}"#
            ),
            r#"{"format":"gims-relay-secret-v1","versions":[{"id":"k-1","secret_hex":"zz"}]}"#
                .to_owned(),
            secretish.to_owned(),
        ] {
            match decode(&name(), &bad) {
                Err(e @ SecretError::Malformed { .. }) => {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains(secretish), "{shown}");
                }
                other => panic!("{bad} must be Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn version_tokens_are_deterministic_uuid_shaped_and_distinct() {
        let t = version_token("rotate", "a1b2c3d4-0000-0000-0000-000000000000");
        assert_eq!(t.len(), 36);
        assert_eq!(t.matches('-').count(), 4);
        assert_eq!(
            t,
            version_token("rotate", "a1b2c3d4-0000-0000-0000-000000000000")
        );
        assert_ne!(
            t,
            version_token("rotate", "a1b2c3d4-0000-0000-0000-000000000001")
        );
        assert_ne!(
            t,
            version_token("first", "a1b2c3d4-0000-0000-0000-000000000000")
        );
    }
}
