//! Protocol fakes for services that have no emulator. **Test code only**: nothing outside
//! `tests/` uses them, and passing against a fake proves the adapter speaks the documented
//! REST shape, not that Azure behaves as the fake does (see docs/ARCHITECTURE.md, "Azure").
//!
//! [`KeyVaultProtocolFake`] serves, over HTTPS with a certificate made in the test, exactly the
//! calls the adapter makes, in the shape Microsoft documents (Key Vault REST 7.x, Entra ID v2
//! token endpoint):
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials; checks id, secret and scope);
//! - Key Vault's challenge: a request without the bearer token gets `401` and
//!   `WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"`;
//! - `PUT /secrets/{name}` (new version), `GET /secrets/{name}/` (current),
//!   `GET /secrets/{name}/{version}`, `GET /secrets/{name}/versions` (paged with `nextLink`,
//!   newest first, so the adapter must order versions itself);
//! - `404 SecretNotFound` for unknown names and versions, `400 BadParameter` for names Key
//!   Vault would refuse; and, on request, a status answered to every call (outage drills).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The scope a Key Vault token is asked for (from the challenge's `resource`).
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// Versions per page of the version listing (Key Vault's default is 25; small to page).
const PAGE: usize = 2;

#[derive(Clone)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    tags: Option<Value>,
    created: i64,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, Vec<Version>>,
    token: String,
    fail_with: Option<u16>,
    log: Vec<String>,
}

/// A Key Vault + Entra ID token endpoint speaking HTTPS on 127.0.0.1.
pub struct KeyVaultProtocolFake {
    /// `https://127.0.0.1:<port>`: both the vault URL and the authority host.
    pub url: String,
    /// The tenant the token endpoint accepts.
    pub tenant: String,
    /// The client id the token endpoint accepts.
    pub client_id: String,
    /// The client secret the token endpoint accepts.
    pub client_secret: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_file: tempfile::NamedTempFile,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for KeyVaultProtocolFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl KeyVaultProtocolFake {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "relay-azure test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &ca_cert, &ca_key)
                .unwrap();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), ca_cert.pem()).unwrap();

        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let state = Arc::new(Mutex::new(State {
            token: format!("fake-token-{}", random_hex(16)),
            ..State::default()
        }));
        let tenant = "relay-test-tenant".to_owned();
        let client_id = "relay-test-client".to_owned();
        let client_secret = format!("secret-{}", random_hex(8));
        let server = Server {
            url: url.clone(),
            tenant: tenant.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            state: Arc::clone(&state),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let server = server.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        server.serve(tls).await;
                    }
                });
            }
        });
        Self {
            url,
            tenant,
            client_id,
            client_secret,
            ca_file,
            state,
            task,
        }
    }

    /// Answers every later request with `status` and an empty body (`None`: back to normal).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail_with = status;
    }

    /// The requests served so far, as `METHOD /path auth` (auth: `token`, `none` or `bad`).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The Key Vault secret names that exist.
    pub fn names(&self) -> Vec<String> {
        self.state.lock().unwrap().secrets.keys().cloned().collect()
    }

    /// Replaces the current version's value behind the adapter's back (a foreign writer).
    pub fn put_foreign_version(&self, name: &str, value: &str, content_type: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        state
            .secrets
            .entry(name.to_owned())
            .or_default()
            .push(Version {
                id: random_hex(16),
                value: value.to_owned(),
                content_type: content_type.map(str::to_owned),
                tags: None,
                created: now(),
            });
    }
}

#[derive(Clone)]
struct Server {
    url: String,
    tenant: String,
    client_id: String,
    client_secret: String,
    state: Arc<Mutex<State>>,
}

struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            json!({ "error": { "code": code, "message": message } }),
        )
    }
}

fn decode_component(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn valid_vault_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl Server {
    async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(&self, stream: S) {
        let mut stream = BufReader::new(stream);
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut parts = line.split_whitespace();
            let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
                return;
            };
            let (method, target) = (method.to_owned(), target.to_owned());
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if stream.read_line(&mut h).await.unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let request = Request {
                method,
                path: path.to_owned(),
                query: parse_pairs(query),
                headers,
                body,
            };
            let reply = self.handle(&request);
            let mut head = format!(
                "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
                reply.status,
                reply.body.len()
            );
            for (k, v) in &reply.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let stream = stream.get_mut();
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(&reply.body).await.is_err()
                || stream.flush().await.is_err()
            {
                return;
            }
        }
    }

    fn handle(&self, req: &Request) -> Reply {
        let mut state = self.state.lock().unwrap();
        let auth = match req.headers.get("authorization") {
            None => "none",
            Some(v) if *v == format!("Bearer {}", state.token) => "token",
            Some(_) => "bad",
        };
        state
            .log
            .push(format!("{} {} {auth}", req.method, req.path));
        if let Some(status) = state.fail_with {
            return Reply {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        if req.method == "POST" && req.path == format!("/{}/oauth2/v2.0/token", self.tenant) {
            return self.token(&state, req);
        }
        if auth != "token" {
            // Key Vault's challenge: it names the authority and the resource to get a token for.
            let mut reply = Reply::error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
            );
            reply.headers.push((
                "www-authenticate".into(),
                format!(
                    "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
                    self.url, self.tenant
                ),
            ));
            return reply;
        }
        let Some(api_version) = req.query.get("api-version") else {
            return Reply::error(
                400,
                "BadParameter",
                "The 'api-version' query parameter is missing.",
            );
        };
        if !api_version.starts_with("7.") && !api_version.starts_with("2025") {
            return Reply::error(
                400,
                "BadParameter",
                "The specified version is not supported.",
            );
        }
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("PUT", ["secrets", name]) => self.set_secret(&mut state, name, &req.body),
            ("GET", ["secrets", name, ""]) | ("GET", ["secrets", name]) => {
                self.get_secret(&state, name, None)
            }
            ("GET", ["secrets", name, "versions"]) => self.list_versions(&state, name, req),
            ("GET", ["secrets", name, version]) => self.get_secret(&state, name, Some(version)),
            _ => Reply::error(
                400,
                "BadParameter",
                "The request URI is not supported by the fake.",
            ),
        }
    }

    fn token(&self, state: &State, req: &Request) -> Reply {
        let form = parse_pairs(&String::from_utf8_lossy(&req.body));
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials"
            || field("client_id") != self.client_id
            || field("client_secret") != self.client_secret
        {
            return Reply::json(
                401,
                json!({
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                }),
            );
        }
        if field("scope") != VAULT_SCOPE {
            return Reply::json(
                400,
                json!({
                    "error": "invalid_scope",
                    "error_description": format!("AADSTS70011: scope {:?} is not valid.", field("scope")),
                    "error_codes": [70011],
                }),
            );
        }
        Reply::json(
            200,
            json!({
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": state.token,
            }),
        )
    }

    fn bundle(&self, name: &str, v: &Version, with_value: bool) -> Value {
        let mut out = json!({
            "id": format!("{}/secrets/{name}/{}", self.url, v.id),
            "attributes": {
                "enabled": true,
                "created": v.created,
                "updated": v.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
        });
        if with_value {
            out["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            out["contentType"] = json!(ct);
        }
        if let Some(tags) = &v.tags {
            out["tags"] = tags.clone();
        }
        out
    }

    fn not_found(name: &str) -> Reply {
        Reply::error(
            404,
            "SecretNotFound",
            &format!("A secret with (name/id) {name} was not found in this key vault."),
        )
    }

    fn set_secret(&self, state: &mut State, name: &str, body: &[u8]) -> Reply {
        if !valid_vault_name(name) {
            return Reply::error(
                400,
                "BadParameter",
                "The request URI contains an invalid name.",
            );
        }
        let Ok(params) = serde_json::from_slice::<Value>(body) else {
            return Reply::error(400, "BadParameter", "The request body is not JSON.");
        };
        let Some(value) = params.get("value").and_then(Value::as_str) else {
            return Reply::error(400, "BadParameter", "Property 'value' is required.");
        };
        let version = Version {
            id: random_hex(16),
            value: value.to_owned(),
            content_type: params
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_owned),
            tags: params.get("tags").cloned(),
            created: now(),
        };
        let bundle = self.bundle(name, &version, true);
        state
            .secrets
            .entry(name.to_owned())
            .or_default()
            .push(version);
        Reply::json(200, bundle)
    }

    fn get_secret(&self, state: &State, name: &str, version: Option<&str>) -> Reply {
        let Some(versions) = state.secrets.get(name) else {
            return Self::not_found(name);
        };
        let found = match version {
            None => versions.last(),
            Some(id) => versions.iter().find(|v| v.id.eq_ignore_ascii_case(id)),
        };
        match found {
            Some(v) => Reply::json(200, self.bundle(name, v, true)),
            None => Self::not_found(name),
        }
    }

    fn list_versions(&self, state: &State, name: &str, req: &Request) -> Reply {
        let Some(versions) = state.secrets.get(name) else {
            return Self::not_found(name);
        };
        let page = req
            .query
            .get("maxresults")
            .and_then(|m| m.parse().ok())
            .unwrap_or(PAGE)
            .clamp(1, 25);
        let skip: usize = req
            .query
            .get("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let newest_first: Vec<&Version> = versions.iter().rev().collect();
        let items: Vec<Value> = newest_first
            .iter()
            .skip(skip)
            .take(page)
            .map(|v| self.bundle(name, v, false))
            .collect();
        let next = (skip + page < newest_first.len()).then(|| {
            format!(
                "{}/secrets/{name}/versions?api-version={}&$skiptoken={}&maxresults={page}",
                self.url,
                req.query
                    .get("api-version")
                    .map(String::as_str)
                    .unwrap_or(""),
                skip + page
            )
        });
        Reply::json(200, json!({ "value": items, "nextLink": next }))
    }
}
