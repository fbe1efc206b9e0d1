#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Edge -> server custody in-process (R8): a real server runtime (local stores, HTTP or HTTPS on
//! loopback) and the edge forwarder over real sockets. Replication is record-for-record; re-sends
//! are acknowledged; a bad HMAC, a gap and a conflicting re-send are each refused with 422,
//! dead-lettered, halt the trail with a FORWARD_POISONED event, and leave the server trail a
//! valid prefix.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_domain::memory::{InMemoryForwardCursorStore, InMemoryRecordStore};
use relay_domain::ports::{
    ForwardCursorStore, ForwardState, RecordStore, RecordStoreExt, SecretName, SecretProviderExt,
    TimeSource,
};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Record, TrailId,
};
use relay_local::{FileSecretProvider, LocalAdapters, SystemTimeSource};
use relay_runtime::forwarder::{ForwardSettings, Forwarder, forward_status};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::server::{ServerRuntime, ServerSettings, TlsFiles};
use tempfile::TempDir;

const EDGE: &str = "ws-1";
const TRAIL: &str = "ws-1";

struct Server {
    dir: TempDir,
    runtime: Option<ServerRuntime>,
    url: String,
    token: String,
}

/// Starts a server on loopback, with `edge_key_dir`'s trail key provisioned as `trail-hmac.ws-1`.
async fn start_server(edge_secrets: &Path, tls: Option<TlsFiles>) -> Server {
    let dir = TempDir::new().unwrap();
    let stores = relay_node::local::server_stores(dir.path()).await.unwrap();
    provision_trail_key(edge_secrets, &dir.path().join("secrets"), TRAIL);
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), EDGE)
        .await
        .unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let settings = ServerSettings {
        device: Device::new("server-1").unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls,
        ingest: relay_api::IngestConfig {
            edges: vec![EDGE.to_owned()],
            ..Default::default()
        },
        api: relay_api::ApiConfig::new(Device::new("server-1").unwrap()),
        notary_interval: Duration::from_secs(3600),
        exports_dir: dir.path().join("exports"),
        config: None,
    };
    let runtime = ServerRuntime::start(stores, settings).await.unwrap();
    let url = format!("{scheme}://localhost:{}", runtime.http_addr().port());
    Server {
        dir,
        runtime: Some(runtime),
        url,
        token,
    }
}

/// Copies the edge's key file into the server's secrets as `trail-hmac.<trail>` (operations.md).
fn provision_trail_key(edge_secrets: &Path, server_secrets: &Path, trail: &str) {
    use std::os::unix::fs::PermissionsExt;
    let to = server_secrets.join(format!("trail-hmac.{trail}.json"));
    std::fs::copy(edge_secrets.join("trail-hmac.json"), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Server {
    async fn stores(&self) -> LocalAdapters {
        LocalAdapters::open(self.dir.path()).await.unwrap()
    }

    async fn stop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown().await;
        }
    }
}

/// The edge's key (a file secret provider in `dir/secrets`) and an append service on `store`.
async fn edge_appender(dir: &Path, store: Arc<dyn RecordStore>) -> Arc<AppendService> {
    let secrets = FileSecretProvider::open(dir.join("secrets")).unwrap();
    let key = secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .unwrap()
        .to_trail_key()
        .unwrap();
    let clock: Arc<dyn TimeSource> = Arc::new(SystemTimeSource::new());
    Arc::new(AppendService::new(store, clock, key))
}

fn draft(trail: &str, n: u64) -> EventDraft {
    EventDraft {
        trail_id: TrailId::new(trail).unwrap(),
        kind: EventKind::file_created(),
        actor: Some(Actor::new("analyst").unwrap()),
        actor_source: ActorSource::OsSession,
        occurred_at: None,
        device: Device::new(EDGE).unwrap(),
        project: None,
        subject: None,
        payload: Payload::from_value(&serde_json::json!({ "n": n, "sha256": "ab".repeat(32) }))
            .unwrap(),
    }
}

async fn append_n(appender: &AppendService, trail: &str, from: u64, n: u64) {
    for i in from..from + n {
        appender.append(draft(trail, i)).await.unwrap();
    }
}

async fn all(store: &dyn RecordStore, trail: &str) -> Vec<Record> {
    let mut out = Vec::new();
    store
        .for_each_record(&TrailId::new(trail).unwrap(), 1000, |r| {
            out.push(r);
            true
        })
        .await
        .unwrap();
    out
}

fn settings(server: &Server, batch: usize) -> ForwardSettings {
    let mut s = ForwardSettings::new(server.url.clone(), EDGE, server.token.clone());
    s.batch = batch;
    s.poll = Duration::from_millis(50);
    s.min_backoff = Duration::from_millis(20);
    s.max_backoff = Duration::from_millis(200);
    s
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// REQ: R1.6, R8.1, R8.2, R8.3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_trail_is_a_record_for_record_replica_and_resends_are_acknowledged() {
    let edge_dir = TempDir::new().unwrap();
    let edge = LocalAdapters::open(edge_dir.path()).await.unwrap();
    let store: Arc<dyn RecordStore> = edge.record_store.clone();
    let appender = edge_appender(edge_dir.path(), store.clone()).await;
    let journal = Journal::new(appender.clone(), Metrics::new(), Device::new(EDGE).unwrap());
    append_n(&appender, TRAIL, 1, 1203).await;
    journal.system("test", serde_json::json!({})).await.unwrap();

    let mut server = start_server(&edge_dir.path().join("secrets"), None).await;
    let handle = Forwarder::new(
        settings(&server, 500),
        store.clone(),
        edge.forward_cursors.clone(),
        journal.clone(),
    )
    .unwrap()
    .spawn();
    let cursors = edge.forward_cursors.clone();
    let trail = TrailId::new(TRAIL).unwrap();
    wait_for("1203 acked", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(1203)
    })
    .await;
    // Capture continues while forwarding runs.
    append_n(&appender, TRAIL, 1204, 20).await;
    wait_for("1223 acked", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(1223)
    })
    .await;
    handle.shutdown().await;

    let server_stores = server.stores().await;
    let edge_records = all(store.as_ref(), TRAIL).await;
    let server_records = all(server_stores.record_store.as_ref(), TRAIL).await;
    assert_eq!(edge_records.len(), 1223);
    assert_eq!(
        server_records, edge_records,
        "server trail must equal the edge's, record for record"
    );
    // The edge's _relay is not forwarded; the server's _relay is its own.
    let server_relay = all(server_stores.record_store.as_ref(), "_relay").await;
    assert!(server_relay.iter().all(|r| r.device.as_str() == "server-1"));

    let status = forward_status(store.as_ref(), cursors.as_ref())
        .await
        .unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].local_head, status[0].acked_seq, status[0].lag),
        (1223, 1223, 0)
    );
    assert_eq!(status[0].state, "in sync");

    // A forwarder that lost its cursor re-sends everything: acknowledged, nothing duplicated.
    let fresh_cursors: Arc<dyn ForwardCursorStore> = Arc::new(InMemoryForwardCursorStore::new());
    let handle = Forwarder::new(
        settings(&server, 300),
        store.clone(),
        fresh_cursors.clone(),
        journal,
    )
    .unwrap()
    .spawn();
    wait_for("re-send acked", Duration::from_secs(30), async || {
        fresh_cursors
            .get(&trail)
            .await
            .unwrap()
            .map(|c| c.acked_seq)
            == Some(1223)
    })
    .await;
    handle.shutdown().await;
    assert_eq!(
        all(server_stores.record_store.as_ref(), TRAIL).await,
        edge_records
    );

    // The server verifies the forwarded trail with the edge's key.
    let verdicts = relay_runtime::verify::verify_trails(
        server_stores.record_store.as_ref(),
        server_stores.secrets.as_ref(),
        server_stores.notary.as_ref(),
        None,
        |_, _| {},
    )
    .await
    .unwrap()
    .verdicts;
    assert_eq!(verdicts.len(), 2);
    for v in &verdicts {
        assert!(v.verdict.is_ok(), "{}: {:?}", v.trail_id, v.verdict);
    }

    // The server's sealed exporter (POST /api/v1/exports) exports a forwarded trail, checking
    // every HMAC with the edge's key as it goes.
    use relay_api::SealedExporter;
    let server_journal = server.runtime.as_ref().unwrap().journal().clone();
    let exporter = relay_runtime::export::DirExporter::new(
        server.dir.path().join("exports"),
        server_stores.record_store.clone(),
        server_stores.notary.clone(),
        server_stores.secrets.clone(),
        server_stores.clock.clone(),
        server_journal,
        Device::new("server-1").unwrap(),
    );
    let view = exporter
        .export(relay_api::SealedExportJob {
            trail: trail.clone(),
            format: "csv".into(),
            from_seq: None,
            to_seq: None,
            requested_by: Actor::new("auditor").unwrap(),
            access_review: None,
        })
        .await
        .unwrap();
    assert_eq!(view.records, 1223);
    assert_eq!(view.head_seq, 1223);
    assert_eq!(
        view.head_checksum,
        edge_records.last().unwrap().checksum.to_hex()
    );
    assert!(
        exporter
            .open(&view.package)
            .await
            .unwrap()
            .bytes
            .starts_with(b"PK")
    );

    server_stores.record_store.close().await;
    server.stop().await;
}

/// An edge whose trail store is in memory, so a test can hold records a SQLite store would refuse.
struct FakeEdge {
    _dir: TempDir,
    store: Arc<InMemoryRecordStore>,
    cursors: Arc<InMemoryForwardCursorStore>,
    journal: Journal,
    appender: Arc<AppendService>,
}

async fn fake_edge() -> FakeEdge {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(InMemoryRecordStore::new());
    let appender = edge_appender(dir.path(), store.clone()).await;
    let journal = Journal::new(appender.clone(), Metrics::new(), Device::new(EDGE).unwrap());
    FakeEdge {
        _dir: dir,
        store,
        cursors: Arc::new(InMemoryForwardCursorStore::new()),
        journal,
        appender,
    }
}

impl FakeEdge {
    fn secrets(&self) -> std::path::PathBuf {
        self._dir.path().join("secrets")
    }

    /// Starts the real forwarder of this edge's stores with `s`.
    fn forward(&self, s: ForwardSettings) -> relay_runtime::forwarder::ForwarderHandle {
        Forwarder::new(
            s,
            self.store.clone(),
            self.cursors.clone(),
            self.journal.clone(),
        )
        .unwrap()
        .spawn()
    }
}

/// Forwards `edge` to `server` until the trail is poisoned; checks the dead letter, the event and
/// the halt; returns the dead letter's status and reason.
async fn expect_poison(edge: &FakeEdge, server: &Server, batch: usize) -> (u64, u64, u16, String) {
    let trail = TrailId::new(TRAIL).unwrap();
    let handle = edge.forward(settings(server, batch));
    let cursors = edge.cursors.clone();
    wait_for("poison", Duration::from_secs(30), async || {
        cursors
            .get(&trail)
            .await
            .unwrap()
            .is_some_and(|c| c.is_poisoned())
    })
    .await;
    // Halted: the server trail does not move any more, whatever the edge holds.
    let server_stores = server.stores().await;
    let head_then = server_stores.record_store.head(&trail).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        server_stores.record_store.head(&trail).await.unwrap(),
        head_then
    );
    handle.shutdown().await;

    let c = edge.cursors.get(&trail).await.unwrap().unwrap();
    let ForwardState::Poisoned(dead) = c.state else {
        panic!("not poisoned: {c:?}")
    };
    assert_eq!(dead.status, 422);
    // The edge recorded FORWARD_POISONED in its _relay, naming the batch.
    let relay = all(edge.store.as_ref(), "_relay").await;
    let poisoned: Vec<_> = relay
        .iter()
        .filter(|r| r.kind.as_str() == "FORWARD_POISONED")
        .collect();
    assert_eq!(poisoned.len(), 1, "exactly one FORWARD_POISONED event");
    let p = poisoned[0].payload.to_value().unwrap();
    assert_eq!(p["first_seq"], dead.first_seq);
    assert_eq!(p["status"], 422);

    // The server trail is still a valid prefix of what it accepted.
    let verdicts = relay_runtime::verify::verify_trails(
        server_stores.record_store.as_ref(),
        server_stores.secrets.as_ref(),
        server_stores.notary.as_ref(),
        None,
        |_, _| {},
    )
    .await
    .unwrap()
    .verdicts;
    for v in &verdicts {
        assert!(v.verdict.is_ok(), "{}: {:?}", v.trail_id, v.verdict);
    }
    // The refusal is one of the server's own events too (INGEST_REFUSED in its _relay).
    let server_relay = all(server_stores.record_store.as_ref(), "_relay").await;
    assert!(server_relay.iter().any(|r| {
        r.payload.to_value().unwrap()["event"] == "INGEST_REFUSED"
            && r.actor_source == ActorSource::Service
            && r.actor.as_str() == "edge:ws-1"
    }));
    server_stores.record_store.close().await;
    (c.acked_seq, dead.first_seq, dead.status, dead.reason)
}

// REQ: R8.3, R8.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_record_is_refused_422_dead_lettered_and_halts_the_trail() {
    let edge = fake_edge().await;
    let honest = InMemoryRecordStore::new();
    let honest: Arc<dyn RecordStore> = Arc::new(honest);
    let tmp = edge_appender(edge._dir.path(), honest.clone()).await;
    append_n(&tmp, TRAIL, 1, 10).await;
    let mut records = all(honest.as_ref(), TRAIL).await;
    // Seq 7's payload is altered, its checksum kept: links still hold, the HMAC does not.
    records[6].payload = Payload::from_value(&serde_json::json!({"n": 999})).unwrap();
    edge.store.append(&records).await.unwrap();

    let mut server = start_server(&edge.secrets(), None).await;
    let (acked, first, status, reason) = expect_poison(&edge, &server, 5).await;
    assert_eq!((acked, first, status), (5, 6, 422));
    assert!(
        reason.contains("bad_hmac") && reason.contains("chain_seq 7"),
        "{reason}"
    );
    let s = server.stores().await;
    assert_eq!(
        all(s.record_store.as_ref(), TRAIL).await,
        records[..5].to_vec()
    );
    s.record_store.close().await;
    server.stop().await;
}

// REQ: R8.3, R8.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_is_refused_422_dead_lettered_and_halts_the_trail() {
    let edge = fake_edge().await;
    append_n(&edge.appender, TRAIL, 1, 12).await;
    let mut server = start_server(&edge.secrets(), None).await;
    // The server accepts 1..5, then the edge's cursor claims 8 (e.g. a restored edge database):
    // the next batch starts at 9, leaving a gap on the server.
    let trail = TrailId::new(TRAIL).unwrap();
    let records = all(edge.store.as_ref(), TRAIL).await;
    let s = server.stores().await;
    s.record_store.append(&records[..5]).await.unwrap();
    s.record_store.close().await;
    edge.cursors.set_acked(&trail, 8).await.unwrap();
    let (acked, first, status, reason) = expect_poison(&edge, &server, 500).await;
    assert_eq!((acked, first, status), (8, 9, 422));
    assert!(
        reason.contains("\"gap\"") && reason.contains("chain_seq 9"),
        "{reason}"
    );
    let s = server.stores().await;
    assert_eq!(
        all(s.record_store.as_ref(), TRAIL).await,
        records[..5].to_vec()
    );
    s.record_store.close().await;
    server.stop().await;
}

// REQ: R8.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_resend_is_refused_422_dead_lettered_and_halts_the_trail() {
    let edge = fake_edge().await;
    // The server holds another history of the same trail (same key), e.g. an edge reinstalled
    // with its old key whose trail restarted at seq 1.
    let other: Arc<dyn RecordStore> = Arc::new(InMemoryRecordStore::new());
    let other_appender = edge_appender(edge._dir.path(), other.clone()).await;
    append_n(&other_appender, TRAIL, 100, 6).await;
    append_n(&edge.appender, TRAIL, 1, 10).await;
    let mut server = start_server(&edge.secrets(), None).await;
    let theirs = all(other.as_ref(), TRAIL).await;
    let s = server.stores().await;
    s.record_store.append(&theirs).await.unwrap();
    s.record_store.close().await;
    let (acked, first, status, reason) = expect_poison(&edge, &server, 500).await;
    assert_eq!((acked, first, status), (0, 1, 422));
    assert!(
        reason.contains("conflict") && reason.contains("chain_seq 1"),
        "{reason}"
    );
    let s = server.stores().await;
    assert_eq!(all(s.record_store.as_ref(), TRAIL).await, theirs);
    s.record_store.close().await;
    server.stop().await;
}

// REQ: R8.3, R8.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_retried_never_poisoned_and_nothing_is_stored() {
    let edge = fake_edge().await;
    append_n(&edge.appender, TRAIL, 1, 3).await;
    let mut server = start_server(&edge.secrets(), None).await;
    let mut s = settings(&server, 500);
    s.token = "00".repeat(32);
    let metrics = edge.journal.metrics().clone();
    let handle = edge.forward(s);
    wait_for("retries", Duration::from_secs(10), async || {
        metrics.render().contains("relay_forward_retries_total 3")
    })
    .await;
    handle.shutdown().await;
    let trail = TrailId::new(TRAIL).unwrap();
    let c = edge.cursors.get(&trail).await.unwrap();
    assert!(c.is_none_or(|c| c.acked_seq == 0 && !c.is_poisoned()));
    let st = server.stores().await;
    assert_eq!(st.record_store.head(&trail).await.unwrap(), None);
    st.record_store.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_over_https_to_a_server_with_a_self_signed_ca() {
    let edge = fake_edge().await;
    append_n(&edge.appender, TRAIL, 1, 25).await;
    let pki = TempDir::new().unwrap();
    let ca = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "relay test CA");
    let ca_cert = ca_params.self_signed(&ca).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca_cert, &ca).unwrap();
    std::fs::write(pki.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(pki.path().join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(pki.path().join("server.key"), leaf_key.serialize_pem()).unwrap();

    let mut server = start_server(
        &edge.secrets(),
        Some(TlsFiles {
            cert: pki.path().join("server.pem"),
            key: pki.path().join("server.key"),
        }),
    )
    .await;
    assert!(server.url.starts_with("https://localhost:"));
    let mut s = settings(&server, 10);
    s.ca_file = Some(pki.path().join("ca.pem"));
    let handle = edge.forward(s);
    let trail = TrailId::new(TRAIL).unwrap();
    let cursors = edge.cursors.clone();
    wait_for("25 acked over https", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(25)
    })
    .await;
    handle.shutdown().await;
    let st = server.stores().await;
    assert_eq!(
        all(st.record_store.as_ref(), TRAIL).await,
        all(edge.store.as_ref(), TRAIL).await
    );
    st.record_store.close().await;

    // Without the CA the server is not trusted: retried, never poisoned, nothing acked.
    let edge2 = fake_edge().await;
    append_n(&edge2.appender, TRAIL, 1, 2).await;
    let metrics = edge2.journal.metrics().clone();
    let handle = edge2.forward(settings(&server, 10));
    wait_for("TLS retries", Duration::from_secs(10), async || {
        metrics.render().contains("relay_forward_retries_total 2")
    })
    .await;
    handle.shutdown().await;
    assert!(edge2.cursors.get(&trail).await.unwrap().is_none());
    server.stop().await;
}

/// The edge's clock in these tests: the system clock moved by a settable offset. Unlike a frozen
/// manual clock it keeps running, so the send time of a batch is as far from the server's clock
/// as the offset says however long the test takes.
#[derive(Debug)]
struct OffsetClock {
    offset_micros: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    /// The system clock moved by `seconds` (negative: behind).
    fn shifted(seconds: i64) -> Self {
        Self {
            offset_micros: std::sync::atomic::AtomicI64::new(seconds * 1_000_000),
        }
    }

    fn set_in_sync(&self) {
        self.offset_micros
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An edge's trail key, store, appender and journal, its records timed by `clock`.
async fn edge_on_clock(
    dir: &Path,
    clock: Arc<OffsetClock>,
) -> (Arc<InMemoryRecordStore>, Arc<AppendService>, Journal) {
    let store = Arc::new(InMemoryRecordStore::new());
    let secrets = FileSecretProvider::open(dir.join("secrets")).unwrap();
    let key = secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .unwrap()
        .to_trail_key()
        .unwrap();
    let appender = Arc::new(AppendService::new(store.clone(), clock, key));
    let journal = Journal::new(appender.clone(), Metrics::new(), Device::new(EDGE).unwrap());
    (store, appender, journal)
}

#[async_trait::async_trait]
impl TimeSource for OffsetClock {
    async fn now(
        &self,
    ) -> Result<relay_domain::ports::TimedInstant, relay_domain::ports::TimeSourceError> {
        let mut now = SystemTimeSource::new().now().await?;
        let offset = self.offset_micros.load(std::sync::atomic::Ordering::SeqCst);
        now.at = relay_domain::Timestamp::from_unix_micros(now.at.unix_micros() + offset)
            .map_err(|e| relay_domain::ports::TimeSourceError::OutOfRange(e.to_string()))?;
        Ok(now)
    }

    fn posture(&self) -> relay_domain::ports::TimePosture {
        SystemTimeSource::new().posture()
    }
}

// REQ: R1.6, R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_clock_ahead_of_the_server_raises_one_clock_skew_event_per_minute() {
    let dir = TempDir::new().unwrap();
    // The edge's clock runs 10 s ahead of the server's.
    let (store, appender, journal) =
        edge_on_clock(dir.path(), Arc::new(OffsetClock::shifted(10))).await;
    append_n(&appender, TRAIL, 1, 4).await;
    let mut server = start_server(&dir.path().join("secrets"), None).await;
    let cursors = Arc::new(InMemoryForwardCursorStore::new());
    // Batches of 2: two ingests within the minute, one event.
    let handle = Forwarder::new(
        settings(&server, 2),
        store.clone(),
        cursors.clone(),
        journal,
    )
    .unwrap()
    .spawn();
    let trail = TrailId::new(TRAIL).unwrap();
    wait_for("4 acked", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(4)
    })
    .await;
    handle.shutdown().await;
    let s = server.stores().await;
    let skew: Vec<Record> = all(s.record_store.as_ref(), "_relay")
        .await
        .into_iter()
        .filter(|r| r.kind.as_str() == "CLOCK_SKEW")
        .collect();
    assert_eq!(skew.len(), 1, "one CLOCK_SKEW per edge per minute");
    let p = skew[0].payload.to_value().unwrap();
    assert_eq!(p["edge"], EDGE);
    assert_eq!(p["threshold_ms"], 2000);
    // The offset less the batch's time in transit (send time to the server's reading).
    let ms = p["skew_ms"].as_i64().unwrap();
    assert!((7_000..=10_000).contains(&ms), "{ms}");
    assert_eq!(skew[0].actor_source, ActorSource::Service);
    // The forwarded trail itself is untouched by the server's events.
    assert_eq!(
        all(s.record_store.as_ref(), TRAIL).await,
        all(store.as_ref(), TRAIL).await
    );
    s.record_store.close().await;
    server.stop().await;
}

// REQ: R8.5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_in_sync_with_the_server_raises_no_clock_skew() {
    let edge = fake_edge().await;
    append_n(&edge.appender, TRAIL, 1, 3).await;
    let mut server = start_server(&edge.secrets(), None).await;
    let handle = edge.forward(settings(&server, 500));
    let trail = TrailId::new(TRAIL).unwrap();
    let cursors = edge.cursors.clone();
    wait_for("3 acked", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(3)
    })
    .await;
    handle.shutdown().await;
    let s = server.stores().await;
    let relay = all(s.record_store.as_ref(), "_relay").await;
    assert!(relay.iter().all(|r| r.kind.as_str() != "CLOCK_SKEW"));
    // The server's posture event records the ingest settings.
    let startup = relay.iter().find(|r| r.kind.as_str() == "STARTUP").unwrap();
    let p = startup.payload.to_value().unwrap();
    assert_eq!(p["mode"], "server");
    assert_eq!(p["ingest"]["edges"][0], EDGE);
    s.record_store.close().await;
    server.stop().await;
}

/// The server of record is down while the edge forwards: the edge records `FORWARD_OUTAGE`
/// start and end, the backlog (recorded 30 s before it is sent) is delivered in order, and the
/// server raises no `CLOCK_SKEW`: skew is measured from the batch's send time, not the records'
/// age (issue 21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_after_a_server_outage_is_recorded_as_an_outage_and_raises_no_clock_skew() {
    let dir = TempDir::new().unwrap();
    // Six records recorded 30 s ago; from then on the edge's clock is in sync.
    let clock = Arc::new(OffsetClock::shifted(-30));
    let (store, appender, journal) = edge_on_clock(dir.path(), clock.clone()).await;
    append_n(&appender, TRAIL, 1, 6).await;
    clock.set_in_sync();

    // The server's stores and token exist; its listener is not up yet.
    let server_dir = TempDir::new().unwrap();
    let stores = relay_node::local::server_stores(server_dir.path())
        .await
        .unwrap();
    provision_trail_key(
        &dir.path().join("secrets"),
        &server_dir.path().join("secrets"),
        TRAIL,
    );
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), EDGE)
        .await
        .unwrap();
    // A port outside the ephemeral range: no client connection takes it before the server binds.
    let port = relay_conformance::test_ports::reserve_port();
    let mut s = ForwardSettings::new(format!("http://localhost:{port}"), EDGE, token);
    s.batch = 2;
    s.poll = Duration::from_millis(50);
    s.min_backoff = Duration::from_millis(20);
    s.max_backoff = Duration::from_millis(200);
    let cursors = Arc::new(InMemoryForwardCursorStore::new());
    let handle = Forwarder::new(s, store.clone(), cursors.clone(), journal)
        .unwrap()
        .spawn();
    let outage_events = async |store: &InMemoryRecordStore| -> Vec<serde_json::Value> {
        all(store, "_relay")
            .await
            .into_iter()
            .map(|r| r.payload.to_value().unwrap())
            .filter(|p| p["event"] == "FORWARD_OUTAGE")
            .collect()
    };
    let edge_store = store.clone();
    wait_for(
        "FORWARD_OUTAGE start",
        Duration::from_secs(30),
        async || !outage_events(&edge_store).await.is_empty(),
    )
    .await;

    let settings = ServerSettings {
        device: Device::new("server-1").unwrap(),
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        tls: None,
        ingest: relay_api::IngestConfig {
            edges: vec![EDGE.to_owned()],
            ..Default::default()
        },
        api: relay_api::ApiConfig::new(Device::new("server-1").unwrap()),
        notary_interval: Duration::from_secs(3600),
        exports_dir: server_dir.path().join("exports"),
        config: None,
    };
    let runtime = ServerRuntime::start(stores, settings).await.unwrap();
    let trail = TrailId::new(TRAIL).unwrap();
    wait_for("6 acked", Duration::from_secs(30), async || {
        cursors.get(&trail).await.unwrap().map(|c| c.acked_seq) == Some(6)
    })
    .await;
    handle.shutdown().await;
    runtime.shutdown().await;

    let events = outage_events(&store).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["phase"], "start");
    assert_eq!(events[0]["records_queued"], 6);
    assert_eq!(events[0]["acked_seq"], 0);
    assert_eq!(events[1]["phase"], "end");
    assert!(events[1]["failed_attempts"].as_u64().unwrap() >= 1);
    let s = LocalAdapters::open(server_dir.path()).await.unwrap();
    let server_relay = all(s.record_store.as_ref(), "_relay").await;
    assert!(
        server_relay.iter().all(|r| r.kind.as_str() != "CLOCK_SKEW"),
        "a late backlog is not clock skew"
    );
    assert_eq!(
        all(s.record_store.as_ref(), TRAIL).await,
        all(store.as_ref(), TRAIL).await
    );
    s.record_store.close().await;
}

/// What the scripted server saw of each request: the batch's first and last seq.
type Seen = Arc<std::sync::Mutex<Vec<(u64, u64)>>>;

/// A scripted ingest endpoint: answers the first request by acknowledging only the batch's
/// first five records, the second with 503, and every later one by acknowledging the whole
/// batch; records every batch's seqs in `seen`.
async fn scripted_server(seen: Seen) -> String {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/api/v1/ingest",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let seqs: Vec<u64> = batch["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["chain_seq"].as_u64().unwrap())
                    .collect();
                let (first, last) = (seqs[0], *seqs.last().unwrap());
                let nth = {
                    let mut seen = seen.lock().unwrap();
                    seen.push((first, last));
                    seen.len()
                };
                let acked = match nth {
                    1 => first + 4,
                    2 => return (StatusCode::SERVICE_UNAVAILABLE, "try later".to_owned()),
                    _ => last,
                };
                let ack = relay_api::IngestResponse {
                    trail_id: TRAIL.to_owned(),
                    acked_seq: acked,
                    head_seq: acked,
                    head_checksum: "00".repeat(32),
                    appended: acked - first + 1,
                    already_present: 0,
                };
                (StatusCode::OK, serde_json::to_string(&ack).unwrap())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{}", addr.port())
}

// REQ: R8.2, R8.4
/// The forwarder reads the next batch ahead while one is in flight. Whatever the server
/// answers, every request still starts right after the last acknowledged record: a partial
/// acknowledgement and a 503 each make the forwarder send from its cursor again, never the
/// batch it had read ahead, and the cursor ends at the trail's head with no record skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_read_ahead_are_sent_only_from_the_acknowledged_cursor() {
    let edge = fake_edge().await;
    append_n(&edge.appender, TRAIL, 1, 45).await;
    let seen: Seen = Arc::default();
    let url = scripted_server(seen.clone()).await;
    let mut s = ForwardSettings::new(url, EDGE, "00".repeat(32));
    s.batch = 10;
    s.poll = Duration::from_millis(20);
    s.min_backoff = Duration::from_millis(10);
    s.max_backoff = Duration::from_millis(20);
    let handle = edge.forward(s);
    let trail = TrailId::new(TRAIL).unwrap();
    wait_for(
        "the whole trail acknowledged",
        Duration::from_secs(20),
        async || {
            edge.cursors
                .get(&trail)
                .await
                .unwrap()
                .is_some_and(|c| c.acked_seq == 45)
        },
    )
    .await;
    handle.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    // 1..10 acknowledged up to 5; 6..15 answered 503; then whole batches from 6 on.
    assert_eq!(
        seen,
        vec![(1, 10), (6, 15), (6, 15), (16, 25), (26, 35), (36, 45)],
        "every batch starts right after the acknowledged cursor"
    );
}
