//! A **protocol fake** of Google Secret Manager's REST API v1, served on 127.0.0.1 inside the
//! test process. It implements only the four calls the adapter makes, with the documented
//! request and response shapes (https://cloud.google.com/secret-manager/docs/reference/rest):
//!
//! | call                 | request                                                          |
//! |----------------------|------------------------------------------------------------------|
//! | `secrets.create`     | `POST /v1/projects/{p}/secrets?secretId={id}` `{"replication": {"automatic": {}}}` |
//! | `secrets.addVersion` | `POST /v1/projects/{p}/secrets/{id}:addVersion` `{"payload": {"data": base64}}` |
//! | `versions.access`    | `GET /v1/projects/{p}/secrets/{id}/versions/{n or latest}:access` |
//! | `versions.list`      | `GET /v1/projects/{p}/secrets/{id}/versions?pageSize=&pageToken=` (newest first) |
//!
//! Like the real service, resource names in answers carry the project *number*, version
//! numbers start at 1 per secret, lists are newest first and paginated, and errors are
//! `{"error": {"code", "message", "status"}}` with `NOT_FOUND`, `ALREADY_EXISTS`,
//! `INVALID_ARGUMENT`. Faults can be injected (statuses, delays) to test retries and timeouts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// The project number the fake reports in resource names.
pub const PROJECT_NUMBER: &str = "424242424242";

#[derive(Default)]
struct Secret {
    versions: Vec<String>,
}

#[derive(Default)]
struct Inner {
    secrets: BTreeMap<String, Secret>,
    /// Statuses to answer the next requests with, before any state change.
    faults: Vec<u16>,
    /// How long to wait before answering each request.
    delay: Option<Duration>,
    /// Every request seen: `METHOD path?query`.
    log: Vec<String>,
    /// Largest page `versions.list` returns, whatever `pageSize` asks.
    max_page: usize,
}

/// A running fake; dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeSecretManager {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl FakeSecretManager {
    /// Starts the fake on a free local port.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            max_page: 2,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            inner,
            endpoint: format!("http://{addr}"),
        }
    }

    /// Answers the next requests with these statuses (one each), changing nothing.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().faults = statuses.to_vec();
    }

    /// Waits this long before every answer (`None`: answer at once).
    pub fn delay(&self, delay: Option<Duration>) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<String> {
        self.inner.lock().unwrap().log.clone()
    }

    /// The secret ids stored.
    pub fn secret_ids(&self) -> Vec<String> {
        self.inner.lock().unwrap().secrets.keys().cloned().collect()
    }

    /// The number of versions of secret `id`.
    pub fn version_count(&self, id: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .secrets
            .get(id)
            .map_or(0, |s| s.versions.len())
    }

    /// Creates secret `id` with no version, as an interrupted create leaves it.
    pub fn create_empty(&self, id: &str) {
        self.inner
            .lock()
            .unwrap()
            .secrets
            .insert(id.to_owned(), Secret::default());
    }
}

fn error(code: StatusCode, status: &str, message: String) -> Response {
    (
        code,
        axum::Json(
            json!({ "error": { "code": code.as_u16(), "message": message, "status": status } }),
        ),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn valid_secret_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn version_name(id: &str, n: usize) -> String {
    format!("projects/{PROJECT_NUMBER}/secrets/{id}/versions/{n}")
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (delay, fault) = {
        let mut s = inner.lock().unwrap();
        s.log.push(format!("{method} {uri}"));
        let fault = (!s.faults.is_empty()).then(|| s.faults.remove(0));
        (s.delay, fault)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = fault {
        let code = StatusCode::from_u16(code).unwrap();
        let status = match code.as_u16() {
            403 => "PERMISSION_DENIED",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        return error(code, status, "injected fault".into());
    }
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        );
    };
    let Some((_project, rest)) = rest.split_once('/') else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        );
    };
    let mut s = inner.lock().unwrap();
    match (method, rest) {
        // secrets.create
        (Method::POST, "secrets") => {
            let Some(id) = query_param(&uri, "secretId") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "secretId is required".into(),
                );
            };
            if !valid_secret_id(&id) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("invalid secret id {id:?}"),
                );
            }
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if req.get("replication").is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "replication is required".into(),
                );
            }
            if s.secrets.contains_key(&id) {
                return error(
                    StatusCode::CONFLICT,
                    "ALREADY_EXISTS",
                    format!("Secret [projects/{PROJECT_NUMBER}/secrets/{id}] already exists."),
                );
            }
            s.secrets.insert(id.clone(), Secret::default());
            ok(json!({
                "name": format!("projects/{PROJECT_NUMBER}/secrets/{id}"),
                "replication": req["replication"],
                "createTime": "2026-11-25T00:00:00Z",
            }))
        }
        (method, rest) => {
            let Some(rest) = rest.strip_prefix("secrets/") else {
                return error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!("no route {path}"),
                );
            };
            // secrets.addVersion
            if let Some(id) = rest.strip_suffix(":addVersion") {
                if method != Method::POST {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "INVALID_ARGUMENT",
                        "POST only".into(),
                    );
                }
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let Some(data) = req["payload"]["data"].as_str() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_ARGUMENT",
                        "payload.data is required".into(),
                    );
                };
                if B64.decode(data).is_err() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_ARGUMENT",
                        "payload.data is not base64".into(),
                    );
                }
                let Some(secret) = s.secrets.get_mut(id) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("Secret [{id}] not found or has no versions."),
                    );
                };
                secret.versions.push(data.to_owned());
                let n = secret.versions.len();
                return ok(
                    json!({ "name": version_name(id, n), "state": "ENABLED", "createTime": "2026-11-25T00:00:00Z" }),
                );
            }
            if method != Method::GET {
                return error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!("no route {method} {path}"),
                );
            }
            // versions.list
            if let Some(id) = rest.strip_suffix("/versions") {
                let Some(secret) = s.secrets.get(id) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("Secret [{id}] not found."),
                    );
                };
                let asked: usize = query_param(&uri, "pageSize")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(25);
                let page = asked.clamp(1, s.max_page);
                let start: usize = query_param(&uri, "pageToken")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let newest_first: Vec<usize> = (1..=secret.versions.len()).rev().collect();
                let items: Vec<Value> = newest_first
                    .iter()
                    .skip(start)
                    .take(page)
                    .map(|n| json!({ "name": version_name(id, *n), "state": "ENABLED" }))
                    .collect();
                let mut answer = json!({ "versions": items, "totalSize": newest_first.len() });
                if start + page < newest_first.len() {
                    answer["nextPageToken"] = json!((start + page).to_string());
                }
                return ok(answer);
            }
            // versions.access
            if let Some(rest) = rest.strip_suffix(":access")
                && let Some((id, version)) = rest.split_once("/versions/")
            {
                let Some(secret) = s.secrets.get(id) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("Secret [{id}] not found or has no versions."),
                    );
                };
                let n = if version == "latest" {
                    secret.versions.len()
                } else {
                    match version.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "INVALID_ARGUMENT",
                                format!("bad version {version:?}"),
                            );
                        }
                    }
                };
                let Some(data) = n.checked_sub(1).and_then(|i| secret.versions.get(i)) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("Secret Version [{id}/{version}] not found."),
                    );
                };
                return ok(json!({ "name": version_name(id, n), "payload": { "data": data } }));
            }
            error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no route {path}"),
            )
        }
    }
}
