//! The edge side of enrollment and key registration (issue 24).
//!
//! - [`enroll`]: `relay-edge enroll --server URL --code CODE` presents the admin's one-time code
//!   with every version of the edge's trail key (`POST /api/v1/enroll`, TLS except to a
//!   loopback address), stores the ingest token it gets back in the edge's secret provider
//!   (`forward-token`), remembers the server in `<data_dir>/enrollment.json` and records
//!   `ENROLLED` in the edge's `_relay`.
//! - [`register_keys`]: the forwarder sends the trail key versions the server may lack, each
//!   proven under the version before it (`POST /api/v1/ingest/keys`), so forwarding never halts
//!   after `relay-edge keys rotate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::http::{Method, Request, StatusCode, Uri, header};
use relay_api::{EnrollRequest, EnrollResponse, KeyVersion, RegisterKeysRequest};
use relay_domain::ports::{
    RecordStore, SecretError, SecretName, SecretProvider, SecretProviderExt, SecretValue,
    TimeSource,
};
use relay_domain::{Actor, AppendService, Device, EventKind, TrailId, TrailKey};
use serde::{Deserialize, Serialize};

use crate::forwarder::{FORWARD_TOKEN_SECRET, ForwardSettings, ForwardStartError};
use crate::journal::Journal;

/// The file in the data directory that remembers which server the edge enrolled with.
pub const ENROLLMENT_FILE: &str = "enrollment.json";

/// What `enrollment.json` holds: where to forward when `forward_url` is not configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRecord {
    /// The server's base URL.
    pub server: String,
    /// The private CA trusted for it, if any.
    pub ca_file: Option<PathBuf>,
    /// The edge id it enrolled as.
    pub edge: String,
    /// The trails it forwards.
    pub trails: Vec<String>,
    /// When (edge clock, canonical UTC).
    pub enrolled_at: String,
    /// The server's device id.
    pub server_device: String,
}

impl EnrollmentRecord {
    /// Reads `<data_dir>/enrollment.json`; `Ok(None)` when the edge never enrolled.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, String> {
        let path = data_dir.join(ENROLLMENT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn save(&self, data_dir: &Path) -> Result<(), String> {
        let path = data_dir.join(ENROLLMENT_FILE);
        let tmp = data_dir.join(format!("{ENROLLMENT_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The server URL or CA file is unusable.
    #[error("--server / --ca-file: {0}")]
    Setup(String),
    /// The edge's trail key could not be read.
    #[error("the edge's trail key: {0}")]
    Keys(#[source] SecretError),
    /// The server could not be reached or answered unusably.
    #[error("server: {0}")]
    Network(String),
    /// The server refused.
    #[error("the server refused the enrollment (HTTP {status}, {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code (`enrollment_refused`, `trail_taken`, …).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The token could not be stored in the edge's secret provider.
    #[error("cannot store the ingest token (secret {FORWARD_TOKEN_SECRET})")]
    Token(#[source] SecretError),
    /// The enrollment file could not be written.
    #[error("cannot write {ENROLLMENT_FILE}: {0}")]
    File(String),
    /// `ENROLLED` could not be recorded in `_relay` (the enrollment itself holds).
    #[error("enrolled, but the ENROLLED event could not be recorded")]
    Record(#[source] relay_domain::AppendError),
}

/// The edge's trail key versions, oldest first (created on first use).
async fn key_versions(secrets: &dyn SecretProvider) -> Result<Vec<TrailKey>, SecretError> {
    let name = SecretName::trail_hmac();
    secrets.current_or_create(&name).await?;
    let mut keys = Vec::new();
    for id in secrets.versions(&name).await? {
        let v = secrets.version(&name, &id).await?;
        keys.push(v.to_trail_key().map_err(|e| SecretError::Malformed {
            name: name.clone(),
            message: e.to_string(),
        })?);
    }
    Ok(keys)
}

fn wire(key: &TrailKey, proof: Option<String>) -> KeyVersion {
    KeyVersion {
        id: key.id().as_str().to_owned(),
        secret_hex: hex::encode(key.expose_secret()),
        proof_hex: proof,
    }
}

/// Key versions with each one's proof under the version before it, for `edge`'s `trail`.
fn proven(keys: &[TrailKey], edge: &str, trail: &TrailId) -> Vec<KeyVersion> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let proof = i
                .checked_sub(1)
                .map(|p| keys[p].registration_proof(edge, trail.as_str(), k).to_hex());
            wire(k, proof)
        })
        .collect()
}

fn sibling(endpoint: &Uri, path: &str) -> Result<Uri, String> {
    let base = endpoint.to_string();
    let base = base.trim_end_matches("/ingest");
    format!("{base}{path}")
        .parse()
        .map_err(|e| format!("URL: {e}"))
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

async fn post_json(
    settings: &ForwardSettings,
    path: &str,
    body: Vec<u8>,
    authenticated: bool,
) -> Result<(StatusCode, Bytes), String> {
    let (endpoint, client) = crate::forwarder::client_for(settings).map_err(|e| e.to_string())?;
    let uri = sibling(&endpoint, path)?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            relay_api::EDGE_VERSION_HEADER,
            crate::forwarder::EDGE_VERSION,
        );
    if authenticated {
        request = request
            .header(header::AUTHORIZATION, format!("Bearer {}", settings.token))
            .header(relay_api::EDGE_HEADER, settings.edge_id.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = tokio::time::timeout(settings.request_timeout, client.request(request))
        .await
        .map_err(|_| "the server did not answer in time".to_owned())?
        .map_err(|e| format!("network: {}", relay_domain::error_chain(&e)))?;
    let status = response.status();
    let bytes = tokio::time::timeout(settings.request_timeout, response.into_body().collect())
        .await
        .map_err(|_| "reading the answer timed out".to_owned())?
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

/// What [`enroll`] needs besides the code.
#[derive(Debug, Clone)]
pub struct EnrollTarget {
    /// The server's base URL (`https://server:8471`).
    pub server: String,
    /// A private CA's PEM trusted for the server.
    pub ca_file: Option<PathBuf>,
    /// This edge's id (its device).
    pub edge: String,
    /// The capture trails it forwards.
    pub trails: Vec<TrailId>,
    /// The data directory (for `enrollment.json`).
    pub data_dir: PathBuf,
    /// Timeout of the request.
    pub timeout: Duration,
}

/// The edge's local stores [`enroll`] writes to.
#[derive(Debug, Clone)]
pub struct EdgeStores {
    /// Its secret provider (trail key, and where the token goes).
    pub secrets: Arc<dyn SecretProvider>,
    /// Its record store (`ENROLLED` goes into `_relay`).
    pub records: Arc<dyn RecordStore>,
    /// Its clock.
    pub clock: Arc<dyn TimeSource>,
    /// Its device id.
    pub device: Device,
}

/// Checks the server URL (https, or http to a loopback address) and the CA file before anything
/// is opened or sent; returns the settings to reach the server with.
pub fn check_target(target: &EnrollTarget) -> Result<ForwardSettings, EnrollError> {
    let mut settings = ForwardSettings::new(target.server.clone(), target.edge.clone(), "");
    settings.ca_file = target.ca_file.clone();
    settings.request_timeout = target.timeout;
    crate::forwarder::client_for(&settings).map_err(|e| {
        EnrollError::Setup(match e {
            ForwardStartError::Url { url, message } => format!("{url}: {message}"),
            ForwardStartError::Ca { path, message } => format!("{}: {message}", path.display()),
            other => other.to_string(),
        })
    })?;
    Ok(settings)
}

/// Enrolls this edge with a one-time code (see the module doc).
pub async fn enroll(
    target: &EnrollTarget,
    code: &str,
    stores: &EdgeStores,
    actor: &Actor,
) -> Result<(EnrollResponse, EnrollmentRecord), EnrollError> {
    let settings = check_target(target)?;
    let keys = key_versions(stores.secrets.as_ref())
        .await
        .map_err(EnrollError::Keys)?;
    let request = EnrollRequest {
        edge: target.edge.clone(),
        code: code.trim().to_owned(),
        trails: target
            .trails
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        keys: keys.iter().map(|k| wire(k, None)).collect(),
        version: Some(crate::forwarder::EDGE_VERSION.to_owned()),
    };
    let body = serde_json::to_vec(&request).map_err(|e| EnrollError::Network(e.to_string()))?;
    let (status, bytes) = post_json(&settings, "/enroll", body, false)
        .await
        .map_err(EnrollError::Network)?;
    if status != StatusCode::OK {
        let answer = serde_json::from_slice::<ErrorAnswer>(&bytes)
            .map(|a| a.error)
            .unwrap_or_else(|_| ErrorDetail {
                code: "unknown".into(),
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            });
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            code: answer.code,
            message: answer.message,
        });
    }
    let answer: EnrollResponse = serde_json::from_slice(&bytes)
        .map_err(|e| EnrollError::Network(format!("unreadable answer: {e}")))?;
    let token = hex::decode(&answer.token)
        .map_err(|_| EnrollError::Network("the token is not hex".into()))?;
    let name = SecretName::new(FORWARD_TOKEN_SECRET).map_err(|e| {
        EnrollError::Token(SecretError::Other {
            message: e.to_string(),
            source: None,
        })
    })?;
    let value = SecretValue::new(TrailKey::fingerprint_id(&token), token);
    stores
        .secrets
        .import(&name, std::slice::from_ref(&value))
        .await
        .map_err(EnrollError::Token)?;
    let now = stores
        .clock
        .now()
        .await
        .map(|t| t.at.to_canonical())
        .unwrap_or_default();
    let record = EnrollmentRecord {
        server: target.server.clone(),
        ca_file: target.ca_file.clone(),
        edge: answer.edge.clone(),
        trails: answer.trails.clone(),
        enrolled_at: now,
        server_device: answer.server.clone(),
    };
    record.save(&target.data_dir).map_err(EnrollError::File)?;
    let key = keys.last().cloned().ok_or_else(|| {
        EnrollError::Keys(SecretError::NotFound {
            name: SecretName::trail_hmac(),
            version: None,
        })
    })?;
    let appender = Arc::new(AppendService::new(
        stores.records.clone(),
        stores.clock.clone(),
        key,
    ));
    let journal = Journal::new(
        appender,
        crate::metrics::Metrics::new(),
        stores.device.clone(),
    );
    journal
        .record_by(
            EventKind::enrolled(),
            Some(actor.clone()),
            relay_domain::ActorSource::OsSession,
            None,
            serde_json::json!({
                "server": target.server,
                "server_device": answer.server,
                "edge": answer.edge,
                "trails": answer.trails,
                "key_ids": answer.key_ids,
                "code_issued_by": answer.enrolled_by,
                "token_secret": FORWARD_TOKEN_SECRET,
            }),
        )
        .await
        .map_err(EnrollError::Record)?;
    Ok((answer, record))
}

/// Registers every version of the edge's trail key for `trail` with the server (each proven
/// under the one before it). Returns the key ids the server added.
pub async fn register_keys(
    settings: &ForwardSettings,
    secrets: &dyn SecretProvider,
    trail: &TrailId,
) -> Result<Vec<String>, String> {
    let keys = key_versions(secrets)
        .await
        .map_err(|e| format!("the edge's trail key: {e}"))?;
    let request = RegisterKeysRequest {
        trail_id: trail.as_str().to_owned(),
        keys: proven(&keys, &settings.edge_id, trail),
    };
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let (status, bytes) = post_json(settings, "/ingest/keys", body, true).await?;
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_slice::<relay_api::RegisterKeysResponse>(&bytes)
        .map(|r| r.added)
        .map_err(|e| format!("unreadable answer: {e}"))
}
