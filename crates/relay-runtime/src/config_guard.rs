//! Configuration governance at start-up: approved four-eyes changes are applied over the
//! configuration, and edits made behind the relay's back are detected (config drift).
//!
//! The binary hands over its effective configuration as JSON. Its canonical form (keys sorted,
//! no whitespace) is hashed with SHA-256 and compared with the last approved configuration kept
//! in the [`ChangeRequestStore`]:
//! - none stored yet (first start): the configuration becomes the baseline, recorded as a
//!   `CONFIG_BASELINE` SYSTEM event;
//! - equal: nothing to record;
//! - different: a `CONFIG_DRIFT` SYSTEM event names the changed keys and both digests, the
//!   start-up posture carries `config_drift`, and the relay keeps running. The baseline is *not*
//!   moved: drift is reported at every start until two administrators accept the new
//!   configuration with an approved `config_baseline` change whose value is the new digest.

use relay_domain::ports::{
    ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState, ChangeStoreError,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::journal::Journal;

/// What start-up found about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPosture {
    /// First start: the configuration was recorded as the baseline.
    Baseline {
        /// Its digest.
        digest: String,
    },
    /// The configuration is the approved one.
    Approved {
        /// Its digest.
        digest: String,
    },
    /// The configuration differs from the approved one.
    Drift {
        /// The current digest.
        digest: String,
        /// The approved digest.
        approved: String,
        /// The top-level keys that differ.
        changed: Vec<String>,
    },
}

impl ConfigPosture {
    /// The posture as JSON for the `STARTUP` event.
    pub fn to_json(&self) -> Value {
        match self {
            ConfigPosture::Baseline { digest } => {
                serde_json::json!({"state": "baseline", "digest": digest})
            }
            ConfigPosture::Approved { digest } => {
                serde_json::json!({"state": "approved", "digest": digest})
            }
            ConfigPosture::Drift {
                digest,
                approved,
                changed,
            } => serde_json::json!({
                "state": "drift", "digest": digest, "approved_digest": approved, "changed": changed,
            }),
        }
    }
}

/// Why configuration governance failed; the relay does not start unrecorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigGuardError {
    /// The change store failed.
    #[error("cannot read or store the approved configuration")]
    Store(#[from] ChangeStoreError),
    /// The drift or baseline event could not be recorded.
    #[error("cannot record the configuration event")]
    Record(#[from] relay_domain::AppendError),
    /// The stored baseline is not JSON.
    #[error("the stored approved configuration is unreadable: {0}")]
    Corrupt(String),
}

/// A copy of `config` with the value of every key naming a credential (`token`, `secret`,
/// `password`, `dsn`: a connection string may carry a password) replaced by the digest of that
/// value: drift in a credential is still detected, and no credential is ever written into the
/// trail.
pub fn redact_credentials(config: &Value) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let v = if !v.is_null()
                        && ["token", "secret", "password", "dsn"]
                            .iter()
                            .any(|w| lower.contains(w))
                    {
                        Value::String(format!("redacted:{}", digest_of(&canonical_json(v))))
                    } else {
                        redact_credentials(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_credentials).collect()),
        other => other.clone(),
    }
}

/// Canonical JSON: object keys sorted, no whitespace (stable whatever the map implementation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256:` and the hex SHA-256 of the canonical JSON.
pub fn digest_of(canonical: &str) -> String {
    let d = Sha256::digest(canonical.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The top-level keys whose values differ between two configurations, sorted.
pub fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Approved changes, oldest first.
pub async fn approved_changes(
    changes: &dyn ChangeRequestStore,
) -> Result<Vec<ChangeRequest>, ChangeStoreError> {
    let mut all = changes.list(100_000).await?;
    all.retain(|r| r.state == ChangeState::Approved);
    all.reverse();
    Ok(all)
}

/// What start-up found, and what it still has to record (after the `STARTUP` event, so a
/// session's first `_relay` record stays its posture).
#[derive(Debug, Clone)]
pub struct ConfigAssessment {
    /// The posture, for the `STARTUP` event.
    pub posture: ConfigPosture,
    event: Option<(&'static str, Value)>,
    new_baseline: Option<String>,
}

impl ConfigAssessment {
    /// Records the `CONFIG_BASELINE` / `CONFIG_DRIFT` event, then stores a new baseline if any.
    pub async fn record(
        self,
        changes: &dyn ChangeRequestStore,
        journal: &Journal,
    ) -> Result<ConfigPosture, ConfigGuardError> {
        if let Some((what, payload)) = self.event {
            journal.system(what, payload).await?;
        }
        if let Some(canonical) = &self.new_baseline {
            changes.set_config_baseline(canonical).await?;
        }
        Ok(self.posture)
    }
}

/// Compares `config` with the approved configuration; nothing is written until
/// [`ConfigAssessment::record`].
pub async fn assess_config(
    changes: &dyn ChangeRequestStore,
    config: &Value,
) -> Result<ConfigAssessment, ConfigGuardError> {
    let redacted = redact_credentials(config);
    let config = &redacted;
    let canonical = canonical_json(config);
    let digest = digest_of(&canonical);
    let Some(approved_text) = changes.config_baseline().await? else {
        return Ok(ConfigAssessment {
            posture: ConfigPosture::Baseline {
                digest: digest.clone(),
            },
            event: Some((
                "CONFIG_BASELINE",
                serde_json::json!({ "digest": digest, "config": config }),
            )),
            new_baseline: Some(canonical),
        });
    };
    let approved_digest = digest_of(&approved_text);
    if approved_digest == digest {
        return Ok(ConfigAssessment {
            posture: ConfigPosture::Approved { digest },
            event: None,
            new_baseline: None,
        });
    }
    let approved: Value = serde_json::from_str(&approved_text)
        .map_err(|e| ConfigGuardError::Corrupt(e.to_string()))?;
    // Two administrators may have accepted exactly this configuration.
    let accepted = approved_changes(changes).await?.iter().any(|r| {
        r.setting == ChangeSetting::ConfigBaseline && r.value.as_str() == Some(digest.as_str())
    });
    let changed = changed_keys(&approved, config);
    if accepted {
        return Ok(ConfigAssessment {
            posture: ConfigPosture::Approved {
                digest: digest.clone(),
            },
            event: Some((
                "CONFIG_BASELINE",
                serde_json::json!({
                    "digest": digest, "previous_digest": approved_digest, "changed": changed,
                    "config": config, "accepted_by": "approved config_baseline change",
                }),
            )),
            new_baseline: Some(canonical),
        });
    }
    tracing::warn!(
        digest = %digest, approved = %approved_digest, changed = ?changed,
        "CONFIG DRIFT: the configuration differs from the last approved one (edited behind the \
         relay's back?); recorded as CONFIG_DRIFT. Accept it with an approved config_baseline change."
    );
    let pick = |from: &Value| -> serde_json::Map<String, Value> {
        changed
            .iter()
            .map(|k| (k.clone(), from.get(k).cloned().unwrap_or(Value::Null)))
            .collect()
    };
    let payload = serde_json::json!({
        "digest": digest,
        "approved_digest": approved_digest,
        "changed": changed,
        "approved": pick(&approved),
        "current": pick(config),
    });
    Ok(ConfigAssessment {
        posture: ConfigPosture::Drift {
            digest,
            approved: approved_digest,
            changed,
        },
        event: Some(("CONFIG_DRIFT", payload)),
        new_baseline: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "x"}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn credentials_are_replaced_by_their_digest() {
        let v = serde_json::json!({"forward_token": "s3cret", "settle_ms": 5, "nested": {"api_password": "x"}});
        let r = redact_credentials(&v);
        assert!(!r.to_string().contains("s3cret"));
        assert!(
            r["forward_token"]
                .as_str()
                .unwrap()
                .starts_with("redacted:sha256:")
        );
        assert_eq!(r["settle_ms"], 5);
        assert_ne!(r["nested"]["api_password"], "x");
        let other = redact_credentials(&serde_json::json!({"forward_token": "other"}));
        assert_ne!(other["forward_token"], r["forward_token"]);
    }

    #[test]
    fn changed_keys_names_added_removed_and_edited_keys() {
        let a = serde_json::json!({"settle_ms": 2000, "watch": ["/a"], "gone": 1});
        let b = serde_json::json!({"settle_ms": 10, "watch": ["/a"], "new": 2});
        assert_eq!(changed_keys(&a, &b), vec!["gone", "new", "settle_ms"]);
    }
}
