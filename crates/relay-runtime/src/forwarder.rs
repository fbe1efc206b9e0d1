//! The edge forwarder (R8.2, R8.4): every capture trail is sent, in order, in batches of whole
//! records, to the server of record's `POST /api/v1/ingest`.
//!
//! Progress is a durable cursor per trail ([`ForwardCursorStore`]), advanced only after the server
//! acknowledged a batch, so a restart (even after SIGKILL) resumes exactly after the last
//! acknowledged record; a batch sent again is acknowledged by the server as already present.
//! 401/403/408/429/5xx and network errors are retried with capped exponential backoff and jitter;
//! any other 4xx is a poison: the batch is dead-lettered in the cursor, a `FORWARD_POISONED`
//! event is recorded, and forwarding of that trail halts (it never skips a record).
//!
//! The edge's own `_relay` trail is not forwarded: the server keeps its own `_relay` (R1.6).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::http::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use relay_domain::ports::{
    DeadLetter, ForwardCursor, ForwardCursorError, ForwardCursorStore, RecordStore,
    RecordStoreError,
};
use relay_domain::{EventKind, Record, TrailId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::forward_ahead;
use crate::journal::Journal;

/// How the forwarder reaches the server.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    /// The server's base URL (`https://server:8471`, or `http://127.0.0.1:…` on loopback only).
    pub url: String,
    /// This edge's id, sent as `X-Relay-Edge`.
    pub edge_id: String,
    /// The bearer token (never logged).
    pub token: String,
    /// Records per batch.
    pub batch: usize,
    /// An extra CA certificate (PEM) trusted for the server, e.g. a self-signed one.
    pub ca_file: Option<PathBuf>,
    /// First retry delay; doubles up to [`Self::max_backoff`].
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How often an idle trail is checked for new records (and new trails discovered).
    pub poll: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// An idle trail tells the server it is alive this often (`GET /api/v1/ingest/heads`), so
    /// the fleet view does not show an idle instrument as silent.
    pub heartbeat: Duration,
}

impl ForwardSettings {
    /// The defaults for `url`, `edge_id`, `token`: batches of 500, backoff 250 ms .. 30 s.
    pub fn new(
        url: impl Into<String>,
        edge_id: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            edge_id: edge_id.into(),
            token: token.into(),
            batch: 500,
            ca_file: None,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(60),
        }
    }
}

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardStartError {
    /// The URL is malformed, or plain HTTP to a host that is not loopback.
    #[error("forward_url {url}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("forward_ca_file {path}: {message}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// TLS could not be configured.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The ingest token is missing.
    #[error("ingest token: {0}")]
    Token(String),
}

/// How one send ended.
#[derive(Debug)]
pub(crate) enum SendOutcome {
    /// The server stored the batch up to this seq.
    Acked(u64),
    /// Temporary: retry after a backoff.
    Retry(String),
    /// Refused for good.
    Poison { status: u16, reason: String },
    /// Refused because the server lacks the key a record names (`unknown_key`): registering
    /// the edge's key versions may fix it.
    UnknownKey { reason: String },
}

/// The version this edge reports to the server (`X-Relay-Version`).
pub const EDGE_VERSION: &str = concat!("relay-edge ", env!("CARGO_PKG_VERSION"));

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The forwarder of one edge: a supervisor discovering trails and one task per trail.
#[derive(Debug)]
pub struct Forwarder {
    inner: Arc<ForwarderInner>,
}

#[derive(Debug)]
struct ForwarderInner {
    settings: ForwardSettings,
    endpoint: Uri,
    client: HttpClient,
    store: Arc<dyn RecordStore>,
    cursors: Arc<dyn ForwardCursorStore>,
    journal: Journal,
    /// The edge's secrets, to register new trail key versions with the server (issue 24).
    secrets: Option<Arc<dyn relay_domain::ports::SecretProvider>>,
}

/// The running forwarder; [`ForwarderHandle::shutdown`] stops every trail task.
#[derive(Debug)]
pub struct ForwarderHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ForwarderHandle {
    /// Stops forwarding (a batch in flight is abandoned; its cursor is not advanced).
    pub async fn shutdown(self) {
        if self.stop.send(true).is_err() {
            tracing::debug!("forwarder already stopped");
        }
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "forwarder task failed");
        }
    }
}

/// Builds the rustls client configuration: the OS roots plus an optional extra CA.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, ForwardStartError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken OS root is skipped (as browsers do); the server's own CA comes from ca_file.
        if let Err(e) = roots.add(cert) {
            tracing::debug!(error = %e, "skipping an unusable OS root certificate");
        }
    }
    if let Some(path) = ca_file {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let err = |message: String| ForwardStartError::Ca {
            path: path.clone(),
            message,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
            let cert = cert.map_err(|e| err(e.to_string()))?;
            roots.add(cert).map_err(|e| err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(err("holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardStartError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The ingest endpoint of `settings.url` and an HTTPS client trusting the system roots and
/// `settings.ca_file`.
pub(crate) fn client_for(
    settings: &ForwardSettings,
) -> Result<(Uri, HttpClient), ForwardStartError> {
    let endpoint = endpoint(&settings.url)?;
    let tls = tls_config(settings.ca_file.as_ref())?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok((
        endpoint,
        Client::builder(TokioExecutor::new()).build(connector),
    ))
}

/// Asks the server of record for the heads it holds of this edge's trails
/// (`GET /api/v1/ingest/heads`, authenticated with the ingest token): what the server
/// witnesses. The error says why the server could not be asked or answered unusably.
pub async fn witnessed_heads(
    settings: &ForwardSettings,
) -> Result<Vec<relay_api::WitnessedHead>, String> {
    let (endpoint, client) = client_for(settings).map_err(|e| e.to_string())?;
    let uri: Uri = format!("{endpoint}/heads")
        .parse()
        .map_err(|e| format!("heads URL: {e}"))?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", settings.token))
        .header(relay_api::EDGE_HEADER, settings.edge_id.as_str())
        .body(Full::new(Bytes::new()))
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
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_slice::<relay_api::WitnessedHeads>(&bytes)
        .map(|h| h.heads)
        .map_err(|e| format!("unreadable answer: {e}"))
}

fn endpoint(url: &str) -> Result<Uri, ForwardStartError> {
    let err = |message: &str| ForwardStartError::Url {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    let base: Uri = url.parse().map_err(|_| err("not a URL"))?;
    let host = base.host().ok_or_else(|| err("has no host"))?;
    match base.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(err(
                    "plain http is allowed only to a loopback address; use https",
                ));
            }
        }
        _ => return Err(err("must start with https:// (or http:// on loopback)")),
    }
    let path = base.path().trim_end_matches('/');
    format!(
        "{}://{}{}/api/v1/ingest",
        base.scheme_str().unwrap_or("https"),
        base.authority().map(|a| a.as_str()).unwrap_or(host),
        path
    )
    .parse()
    .map_err(|_| err("cannot build the ingest URL"))
}

impl Forwarder {
    /// Prepares a forwarder of every capture trail in `store` to the server in `settings`.
    pub fn new(
        settings: ForwardSettings,
        store: Arc<dyn RecordStore>,
        cursors: Arc<dyn ForwardCursorStore>,
        journal: Journal,
    ) -> Result<Self, ForwardStartError> {
        let (endpoint, client) = client_for(&settings)?;
        Ok(Self {
            inner: Arc::new(ForwarderInner {
                settings,
                endpoint,
                client,
                store,
                cursors,
                journal,
                secrets: None,
            }),
        })
    }

    /// Registers the edge's trail key versions with the server (proven under the version
    /// before each) when a trail starts forwarding and whenever the server answers
    /// `unknown_key`, so a key rotation never halts forwarding (issue 24).
    pub fn with_key_registration(
        mut self,
        secrets: Arc<dyn relay_domain::ports::SecretProvider>,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.secrets = Some(secrets);
        }
        self
    }

    /// The settings it forwards with.
    pub(crate) fn settings(&self) -> ForwardSettings {
        self.inner.settings.clone()
    }

    /// Sends `records` of `trail` once, without touching any cursor (`forward resume` re-tries
    /// the dead-lettered batch with it).
    pub(crate) async fn send_once(&self, trail: &TrailId, records: &[Record]) -> SendOutcome {
        send(&self.inner, trail, records).await
    }

    /// Starts the supervisor, which starts one task per capture trail as trails appear.
    pub fn spawn(self) -> ForwarderHandle {
        let (stop, stopped) = watch::channel(false);
        let inner = self.inner;
        let task = tokio::spawn(async move { supervise(inner, stopped).await });
        ForwarderHandle { stop, task }
    }
}

/// Sleeps `d`, returning early (true) when asked to stop.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

async fn supervise(inner: Arc<ForwarderInner>, mut stop: watch::Receiver<bool>) {
    let mut tasks: HashMap<TrailId, JoinHandle<()>> = HashMap::new();
    loop {
        match inner.store.trails().await {
            Ok(trails) => {
                for (trail, _) in trails {
                    if trail.is_relay() {
                        continue;
                    }
                    if let Some(task) = tasks.get(&trail) {
                        // A task ends only on a poison; `forward resume` clears it, after which
                        // the trail is taken up again without a restart.
                        if !task.is_finished() || !resumed(&inner, &trail).await {
                            continue;
                        }
                        tracing::info!(trail = %trail, "poison cleared; forwarding resumes");
                    } else {
                        tracing::info!(trail = %trail, "forwarding trail");
                    }
                    tasks.insert(
                        trail.clone(),
                        tokio::spawn(forward_trail(inner.clone(), trail, stop.clone())),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "forwarder: cannot list trails; retrying"),
        }
        if sleep_or_stop(inner.settings.poll, &mut stop).await {
            break;
        }
    }
    for (_, task) in tasks {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "forwarder trail task failed");
        }
    }
}

/// Whether the cursor of `trail` is readable and no longer poisoned.
async fn resumed(inner: &ForwarderInner, trail: &TrailId) -> bool {
    match inner.cursors.get(trail).await {
        Ok(c) => c.is_none_or(|c| !c.is_poisoned()),
        Err(e) => {
            tracing::warn!(trail = %trail, error = %e, "forwarder: cannot read the cursor");
            false
        }
    }
}

fn backoff(settings: &ForwardSettings, attempt: u32) -> Duration {
    let base = settings
        .min_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(settings.max_backoff);
    // Full jitter over the upper half, so many edges restarting together do not stampede.
    let half = base / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis().max(1));
    half + Duration::from_millis(u64::try_from(jitter).unwrap_or(0))
}

async fn forward_trail(
    inner: Arc<ForwarderInner>,
    trail: TrailId,
    mut stop: watch::Receiver<bool>,
) {
    let settings = &inner.settings;
    let mut attempt: u32 = 0;
    let mut outage: Option<crate::forward_outage::ForwardOutage> = None;
    // Keys first: a version made by `keys rotate` reaches the server before records signed
    // with it. A server without the endpoint (older) or an unenrolled edge just logs.
    let mut keys_registered = register_keys(&inner, &trail).await;
    let mut last_contact = std::time::Instant::now();
    let mut ahead: Option<forward_ahead::Batch> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let cursor = match inner.cursors.get(&trail).await {
            Ok(c) => c.unwrap_or_else(|| ForwardCursor::start(trail.clone())),
            Err(e) => {
                tracing::warn!(trail = %trail, error = %e, "forwarder: cannot read the cursor");
                attempt = attempt.saturating_add(1);
                if sleep_or_stop(backoff(settings, attempt), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if cursor.is_poisoned() {
            tracing::error!(trail = %trail, acked = cursor.acked_seq,
                "forwarding of this trail is halted (poisoned); see FORWARD_POISONED");
            return;
        }
        let ready = match ahead.take() {
            Some(batch) if batch.after == cursor.acked_seq => Ok(Some(batch)),
            _ => {
                forward_ahead::read_batch(
                    inner.store.as_ref(),
                    &trail,
                    cursor.acked_seq,
                    settings.batch,
                )
                .await
            }
        };
        let batch = match ready {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                if last_contact.elapsed() >= settings.heartbeat {
                    last_contact = std::time::Instant::now();
                    if let Err(why) = witnessed_heads(settings).await {
                        tracing::debug!(trail = %trail, reason = %why, "heartbeat to the server failed");
                    }
                }
                if sleep_or_stop(settings.poll, &mut stop).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(trail = %trail, error = %e, "forwarder: cannot read records");
                attempt = attempt.saturating_add(1);
                if sleep_or_stop(backoff(settings, attempt), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let (first_seq, last_seq) = batch.seqs();
        // The next batch is read and encoded while this one is in flight; it is sent only
        // after this one is acknowledged, and only if it starts at the cursor then.
        let next = forward_ahead::ReadAhead::start(
            inner.store.clone(),
            trail.clone(),
            last_seq,
            settings.batch,
        );
        let outcome = match &batch.body {
            Ok(body) => tokio::select! {
                o = send_encoded(&inner, &trail, body.clone()) => o,
                _ = stop.changed() => return,
            },
            Err(why) => SendOutcome::Retry(why.clone()),
        };
        match outcome {
            SendOutcome::Acked(seq) if (first_seq..=last_seq).contains(&seq) => {
                attempt = 0;
                last_contact = std::time::Instant::now();
                if let Some(o) = outage.take() {
                    outage = o.end(&inner.journal, inner.store.as_ref(), seq).await;
                }
                if let Err(e) = advance(&inner, &trail, seq).await {
                    tracing::warn!(trail = %trail, error = %e, "forwarder: cannot store the cursor; the batch will be re-sent");
                } else if seq == last_seq {
                    ahead = next.finish(&trail).await;
                }
            }
            SendOutcome::Acked(seq) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(trail = %trail, seq, first_seq, last_seq,
                    "forwarder: server acknowledged a seq outside the batch; retrying");
                if sleep_or_stop(backoff(settings, attempt), &mut stop).await {
                    return;
                }
            }
            SendOutcome::Retry(why) => {
                match outage.as_mut() {
                    Some(o) => o.failed_attempts += 1,
                    None => {
                        outage = Some(
                            crate::forward_outage::ForwardOutage::begin(
                                &inner.journal,
                                inner.store.as_ref(),
                                &trail,
                                cursor.acked_seq,
                                &why,
                            )
                            .await,
                        );
                    }
                }
                attempt = attempt.saturating_add(1);
                let delay = backoff(settings, attempt);
                inner.journal.metrics().forward_retries.inc();
                tracing::warn!(trail = %trail, first_seq, last_seq, attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = %why, "forward failed; retrying");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
            }
            SendOutcome::UnknownKey { reason } if !keys_registered => {
                tracing::warn!(trail = %trail, first_seq, reason = %reason,
                    "the server lacks a key of this batch; registering the edge's key versions");
                keys_registered = register_keys(&inner, &trail).await;
                if !keys_registered {
                    attempt = attempt.saturating_add(1);
                    if sleep_or_stop(backoff(settings, attempt), &mut stop).await {
                        return;
                    }
                }
            }
            SendOutcome::UnknownKey { reason } => {
                poison(&inner, &trail, first_seq, last_seq, 422, reason).await;
                return;
            }
            SendOutcome::Poison { status, reason } => {
                poison(&inner, &trail, first_seq, last_seq, status, reason).await;
                return;
            }
        }
    }
}

/// Registers the edge's key versions of `trail` with the server; true when the server holds
/// them all now. Failures are logged and counted, never fatal: the batch itself says whether
/// the server can verify it.
async fn register_keys(inner: &ForwarderInner, trail: &TrailId) -> bool {
    let Some(secrets) = &inner.secrets else {
        return false;
    };
    match crate::enrollment::register_keys(&inner.settings, secrets.as_ref(), trail).await {
        Ok(added) => {
            if !added.is_empty() {
                tracing::info!(trail = %trail, added = ?added, "registered new trail key versions with the server");
            }
            true
        }
        Err(why) => {
            inner.journal.metrics().forward_retries.inc();
            tracing::warn!(trail = %trail, reason = %why, "could not register the trail key versions with the server");
            false
        }
    }
}

async fn advance(
    inner: &ForwarderInner,
    trail: &TrailId,
    seq: u64,
) -> Result<(), ForwardCursorError> {
    inner.cursors.set_acked(trail, seq).await?;
    inner.journal.metrics().batches_forwarded.inc();
    tracing::debug!(trail = %trail, acked = seq, "forwarded");
    Ok(())
}

async fn poison(
    inner: &ForwarderInner,
    trail: &TrailId,
    first_seq: u64,
    last_seq: u64,
    status: u16,
    reason: String,
) {
    let dead = DeadLetter {
        first_seq,
        last_seq,
        status,
        reason: reason.clone(),
    };
    inner.journal.metrics().forward_poisoned.inc();
    tracing::error!(trail = %trail, first_seq, last_seq, status, reason = %reason,
        "server refused a batch for good; forwarding of this trail is halted");
    // The cursor first: the halt must survive a restart even if the event cannot be written.
    let mut stored = inner.cursors.set_poisoned(trail, &dead).await;
    if stored.is_err() {
        stored = inner.cursors.set_poisoned(trail, &dead).await;
    }
    if let Err(e) = &stored {
        tracing::error!(trail = %trail, error = %e, "the poisoned cursor could not be stored; the batch will be re-sent after a restart");
    }
    let payload = serde_json::json!({
        "trail": trail.as_str(),
        "first_seq": first_seq,
        "last_seq": last_seq,
        "status": status,
        "reason": reason,
        "server": inner.endpoint.to_string(),
        "dead_letter_stored": stored.is_ok(),
    });
    if let Err(e) = inner
        .journal
        .record(EventKind::forward_poisoned(), None, payload)
        .await
    {
        // The journal logged and counted it.
        tracing::error!(trail = %trail, error = %e, "FORWARD_POISONED event not recorded");
    }
}

async fn send(inner: &ForwarderInner, trail: &TrailId, records: &[Record]) -> SendOutcome {
    match forward_ahead::encode_batch(trail, records) {
        Ok(body) => send_encoded(inner, trail, body).await,
        Err(why) => SendOutcome::Retry(why),
    }
}

/// Sends one encoded batch of `trail` and classifies the answer.
async fn send_encoded(inner: &ForwarderInner, trail: &TrailId, body: Bytes) -> SendOutcome {
    let request = Request::builder()
        .method(Method::POST)
        .uri(inner.endpoint.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", inner.settings.token),
        )
        .header(relay_api::EDGE_HEADER, inner.settings.edge_id.as_str())
        .header(relay_api::EDGE_VERSION_HEADER, EDGE_VERSION);
    // The local head as the fleet view shows it (best effort: a read failure omits it).
    let request = match local_head(inner, trail).await {
        Some(value) => request.header(relay_api::EDGE_HEAD_HEADER, value),
        None => request,
    };
    // The server measures clock skew from this send time, never from the records' age.
    let request = match inner.journal.appender().clock().now().await {
        Ok(t) => request.header(relay_api::SENT_AT_HEADER, t.at.to_canonical()),
        Err(e) => {
            tracing::warn!(error = %e, "no send time for the batch; the server will not measure skew");
            request
        }
    };
    let request = request.body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return SendOutcome::Retry(format!("cannot build the request: {e}")),
    };
    let response = match tokio::time::timeout(
        inner.settings.request_timeout,
        inner.client.request(request),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return SendOutcome::Retry(format!("network: {}", relay_domain::error_chain(&e)));
        }
        Err(_) => return SendOutcome::Retry("request timed out".into()),
    };
    let status = response.status();
    let bytes = match tokio::time::timeout(
        inner.settings.request_timeout,
        response.into_body().collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => return SendOutcome::Retry(format!("reading the answer: {e}")),
        Err(_) => return SendOutcome::Retry("reading the answer timed out".into()),
    };
    classify(status, &bytes)
}

/// The trail's local head as `<seq>@<recorded_at>` ([`relay_api::EDGE_HEAD_HEADER`]).
async fn local_head(inner: &ForwarderInner, trail: &TrailId) -> Option<String> {
    let head = inner.store.head(trail).await.ok()??;
    let seq = head.seq.get();
    let record = inner.store.read(trail, seq - 1, 1).await.ok()?;
    let at = record.first()?.recorded_at;
    Some(format!("{seq}@{}", at.to_canonical()))
}

/// What a server answer means to the forwarder (R8.4).
fn classify(status: StatusCode, body: &[u8]) -> SendOutcome {
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    if status == StatusCode::OK {
        return match serde_json::from_slice::<relay_api::IngestResponse>(body) {
            Ok(ack) => SendOutcome::Acked(ack.acked_seq),
            Err(e) => SendOutcome::Retry(format!("unreadable acknowledgement: {e}")),
        };
    }
    let retry = matches!(
        status,
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
    ) || status.is_server_error()
        || !status.is_client_error();
    if retry {
        SendOutcome::Retry(format!("HTTP {status}: {text}"))
    } else if status == StatusCode::UNPROCESSABLE_ENTITY
        && serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/code")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            })
            .as_deref()
            == Some("unknown_key")
    {
        SendOutcome::UnknownKey { reason: text }
    } else {
        SendOutcome::Poison {
            status: status.as_u16(),
            reason: text,
        }
    }
}

/// One line of `relay-edge forward status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    /// The trail.
    pub trail_id: TrailId,
    /// The local head seq (0: empty).
    pub local_head: u64,
    /// The highest seq the server acknowledged.
    pub acked_seq: u64,
    /// Records not yet acknowledged.
    pub lag: u64,
    /// `active`, `in sync` or `POISONED (...)`.
    pub state: String,
}

/// The forwarding state of every capture trail of `store`.
pub async fn forward_status(
    store: &dyn RecordStore,
    cursors: &dyn ForwardCursorStore,
) -> Result<Vec<ForwardStatus>, ForwardStatusError> {
    let mut out = Vec::new();
    for (trail, head) in store.trails().await? {
        if trail.is_relay() {
            continue;
        }
        let cursor = cursors
            .get(&trail)
            .await?
            .unwrap_or_else(|| ForwardCursor::start(trail.clone()));
        let local_head = head.seq.get();
        let lag = local_head.saturating_sub(cursor.acked_seq);
        let state = match &cursor.state {
            relay_domain::ports::ForwardState::Poisoned(d) => format!(
                "POISONED (seq {}..{} refused with HTTP {}: {})",
                d.first_seq, d.last_seq, d.status, d.reason
            ),
            _ if lag == 0 => "in sync".to_owned(),
            _ => "active".to_owned(),
        };
        out.push(ForwardStatus {
            trail_id: trail,
            local_head,
            acked_seq: cursor.acked_seq,
            lag,
            state,
        });
    }
    Ok(out)
}

/// Why the forwarding status could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardStatusError {
    /// The record store failed.
    #[error("cannot read the record store")]
    Store(#[from] RecordStoreError),
    /// The cursor store failed.
    #[error("cannot read the forward cursors")]
    Cursors(#[from] ForwardCursorError),
    /// The data directory could not be opened.
    #[error("cannot open the data directory: {0}")]
    Open(String),
}

/// The name of the edge's secret holding its ingest token, when `forward_token` is not set.
pub const FORWARD_TOKEN_SECRET: &str = "forward-token";

/// Reads the edge's ingest token from its secret provider (lower-case hex of the secret).
pub async fn load_forward_token(
    secrets: &dyn relay_domain::ports::SecretProvider,
) -> Result<String, ForwardStartError> {
    let name = relay_domain::ports::SecretName::new(FORWARD_TOKEN_SECRET)
        .map_err(|e| ForwardStartError::Token(e.to_string()))?;
    let secret = secrets.current(&name).await.map_err(|e| {
        ForwardStartError::Token(format!(
            "no forward_token configured and the secret {FORWARD_TOKEN_SECRET} cannot be read: {e}"
        ))
    })?;
    Ok(relay_api::token_text(&secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R8.4
    #[test]
    fn answers_are_classified_as_the_contract_says() {
        for s in [401u16, 403, 408, 429, 500, 502, 503, 504] {
            let st = StatusCode::from_u16(s).unwrap();
            assert!(matches!(classify(st, b"{}"), SendOutcome::Retry(_)), "{s}");
        }
        for s in [400u16, 404, 409, 413, 422] {
            let st = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(classify(st, b"{}"), SendOutcome::Poison { status, .. } if status == s),
                "{s}"
            );
        }
        let ok = br#"{"trail_id":"t","acked_seq":7,"head_seq":7,"head_checksum":"00","appended":1,"already_present":0}"#;
        assert!(matches!(
            classify(StatusCode::OK, ok),
            SendOutcome::Acked(7)
        ));
        assert!(matches!(
            classify(StatusCode::OK, b"garbage"),
            SendOutcome::Retry(_)
        ));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(endpoint("http://127.0.0.1:8471").is_ok());
        assert!(endpoint("http://localhost:1").is_ok());
        assert!(endpoint("http://[::1]:1").is_ok());
        assert!(endpoint("http://server.lab:8471").is_err());
        assert_eq!(
            endpoint("https://server.lab:8471/").unwrap().to_string(),
            "https://server.lab:8471/api/v1/ingest"
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let s = ForwardSettings::new("http://127.0.0.1:1", "e", "t");
        for attempt in 0..40 {
            let d = backoff(&s, attempt);
            assert!(d <= s.max_backoff, "{d:?}");
        }
        assert!(backoff(&s, 1) >= s.min_backoff);
    }
}
