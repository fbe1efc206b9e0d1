//! Integrator example (b): a bridge that reads a relay server's review API and re-verifies a
//! trail independently.
//!
//! It logs in to `/api/v1/auth/login`, pages through `GET /api/v1/events?trail=…`, rebuilds
//! each record exactly as chained (every field the checksum covers is in the API's answer) and
//! runs `relay_domain::ChainVerifier` over them with the trail keys it was given. It trusts
//! nothing the relay says about validity: the verdict is computed here, from the records and
//! the keys alone.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;

use relay_domain::{
    ChainVerifier, KeyId, KeyRing, Record, TrailId, TrailKey, VerifyFailure, VerifySummary,
};

/// Why the bridge could not reach a verdict (as opposed to finding a broken trail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The relay answered with an error or could not be reached.
    #[error("relay API call {what} failed: {message}")]
    Http {
        /// The call.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The relay's answer was not the expected shape.
    #[error("unexpected answer from {what}: {message}")]
    Shape {
        /// The call.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The key file is unreadable or malformed.
    #[error("key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// An identifier was invalid.
    #[error(transparent)]
    Id(#[from] relay_domain::IdError),
}

/// Reads a relay trail key file (`secrets/trail-hmac.json`: every version, oldest first) into a
/// key ring, independently of the relay's own code.
pub fn key_ring_from_file(path: &Path) -> Result<KeyRing, BridgeError> {
    let err = |message: String| BridgeError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let file: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| err(format!("not JSON: {e}")))?;
    let versions = file["versions"]
        .as_array()
        .ok_or_else(|| err("no versions array".into()))?;
    let mut ring = KeyRing::default();
    for (i, v) in versions.iter().enumerate() {
        let id = v["id"]
            .as_str()
            .ok_or_else(|| err(format!("version {} has no id", i + 1)))?;
        let bytes = hex::decode(v["secret_hex"].as_str().unwrap_or_default())
            .map_err(|_| err(format!("version {id}: secret_hex is not hex")))?;
        let key = TrailKey::new(KeyId::new(id)?, &bytes).map_err(|e| err(e.to_string()))?;
        if i + 1 == versions.len() {
            ring.insert_current(key);
        } else {
            ring.insert(key);
        }
    }
    Ok(ring)
}

/// A logged-in client of a relay's review API.
#[derive(Debug)]
pub struct RelayClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

fn http_error(what: &'static str) -> impl FnOnce(ureq::Error) -> BridgeError {
    move |e| BridgeError::Http {
        what,
        message: match e {
            ureq::Error::Status(code, resp) => {
                format!("HTTP {code}: {}", resp.into_string().unwrap_or_default())
            }
            other => other.to_string(),
        },
    }
}

impl RelayClient {
    /// Logs in to the relay at `base` (e.g. `http://127.0.0.1:8470`).
    pub fn login(base: &str, username: &str, password: &str) -> Result<Self, BridgeError> {
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(30))
            .build();
        let base = base.trim_end_matches('/').to_owned();
        let answer: serde_json::Value = agent
            .post(&format!("{base}/api/v1/auth/login"))
            .send_json(serde_json::json!({"username": username, "password": password}))
            .map_err(http_error("login"))?
            .into_json()
            .map_err(|e| BridgeError::Shape {
                what: "login",
                message: e.to_string(),
            })?;
        let token = answer["token"]
            .as_str()
            .ok_or_else(|| BridgeError::Shape {
                what: "login",
                message: "no token".into(),
            })?
            .to_owned();
        Ok(Self { base, token, agent })
    }

    /// Every record of `trail`, in seq order, rebuilt exactly as chained.
    pub fn records(&self, trail: &TrailId) -> Result<Vec<Record>, BridgeError> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let page: serde_json::Value = self
                .agent
                .get(&format!("{}/api/v1/events", self.base))
                .query("trail", trail.as_str())
                .query("after_seq", &after.to_string())
                .query("limit", "500")
                .set("authorization", &format!("Bearer {}", self.token))
                .call()
                .map_err(http_error("events"))?
                .into_json()
                .map_err(|e| BridgeError::Shape {
                    what: "events",
                    message: e.to_string(),
                })?;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            for mut event in events {
                // The view adds what is shown with a record but not chained (its signatures, and
                // on a server of record its time of receipt); the chained record is the rest.
                if let Some(obj) = event.as_object_mut() {
                    for shown in VIEW_ONLY_FIELDS {
                        obj.remove(*shown);
                    }
                }
                let record: Record =
                    serde_json::from_value(event).map_err(|e| BridgeError::Shape {
                        what: "events",
                        message: format!("a record could not be rebuilt: {e}"),
                    })?;
                out.push(record);
            }
            match page["next_after_seq"].as_u64() {
                Some(next) if next > after => after = next,
                _ => return Ok(out),
            }
        }
    }
}

/// Members of an `/api/v1/events` record view that are shown with the record but are not part
/// of it (not chained): its signatures and review status, and the server of record's time of
/// receipt.
pub const VIEW_ONLY_FIELDS: &[&str] = &[
    "signatures",
    "review_status",
    "superseded_by",
    "received_at",
    "received_after_ms",
    "late",
    "late_after_secs",
];

/// Re-verifies `records` of `trail` with `keys`: the first broken seq and why, or a summary.
pub fn reverify(
    trail: &TrailId,
    keys: &KeyRing,
    records: &[Record],
) -> Result<VerifySummary, VerifyFailure> {
    let mut verifier = ChainVerifier::new(trail.clone(), keys);
    for r in records {
        verifier.push(r)?;
    }
    verifier.finish()
}
