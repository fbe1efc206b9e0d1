//! Process helpers shared by the fault-injection and scale-out harnesses of `relay-server`:
//! binaries, ports, child processes that are killed when a test fails, configuration files,
//! reading trails back, the S3 endpoint and the skip-or-fail rule for absent services.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use relay_conformance::test_ports::reserve_port;
use relay_domain::ports::{RecordStore, RecordStoreExt};
use relay_domain::{Record, TrailId};

pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relay-server"))
}

/// `relay-edge` next to `relay-server` in the target directory, built if missing.
pub fn edge_bin() -> PathBuf {
    let path = server_bin().with_file_name("relay-edge");
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "relay-edge"])
            .status()
            .unwrap();
        assert!(status.success(), "building relay-edge failed");
    }
    path
}

/// The last `lines` lines of the log file `path` (empty when it cannot be read), for failure
/// messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails under `RELAY_REQUIRE_SERVICES=1`, otherwise prints why the test is skipped.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// A child process (relay-edge or relay-server) with its command line kept for restarts;
/// SIGKILLed when dropped, so a failing test leaves nothing running.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn new(name: &str, bin: PathBuf, args: &[&str], log: &Path) -> Self {
        Self {
            name: name.to_owned(),
            bin,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            envs: Vec::new(),
            log: log.to_owned(),
            child: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .env("RELAY_LOG", "info")
            .env_remove("RELAY_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 25)
    }

    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and a clean exit within 30 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status}; log {}",
                    self.name,
                    self.log.display()
                );
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                child.kill().ok();
                child.wait().ok();
                panic!("{} did not stop within 30 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

/// A counter or gauge from `GET /metrics` on 127.0.0.1:`port` (Prometheus text).
pub fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every record of `trail` in an edge's (or a local server's) data directory.
pub async fn local_records(data_dir: &Path, trail: &str) -> Vec<Record> {
    let store = read_only_store(data_dir).await;
    let out = all_records(&store, trail).await;
    store.close().await;
    out
}

/// Opens the store of an edge's (or a local server's) data directory read-only: a running
/// relay's appends neither wait for it nor make it fail with "database is locked" (a
/// read-write open migrates under SQLite's write lock, which a busy relay can hold longer
/// than the busy timeout).
pub async fn read_only_store(data_dir: &Path) -> relay_local::SqliteRecordStore {
    // A relay that is starting has created relay.db but may not have committed its schema
    // yet (version 0): wait for that condition, not for a time.
    let db = data_dir.join("relay.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match relay_local::SqliteRecordStore::open_read_only(
            &db,
            std::time::Duration::from_secs(30),
        )
        .await
        {
            Ok(store) => return store,
            Err(e)
                if e.to_string().contains("schema version 0")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot read {}: {e}", db.display()),
        }
    }
}

/// Every record of `trail` in `store`.
pub async fn all_records(store: &dyn RecordStore, trail: &str) -> Vec<Record> {
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

/// The edge's head of `trail` and the seq the server acknowledged.
pub async fn edge_head_and_acked(data_dir: &Path, trail: &str) -> (u64, u64) {
    let store = read_only_store(data_dir).await;
    let trail = TrailId::new(trail).unwrap();
    let head = store.head(&trail).await.unwrap().map_or(0, |h| h.seq.get());
    let cursors = relay_local::SqliteForwardCursorStore::new(store.pool().clone());
    let acked = relay_domain::ports::ForwardCursorStore::get(&cursors, &trail)
        .await
        .unwrap()
        .map_or(0, |c| c.acked_seq);
    store.close().await;
    (head, acked)
}

/// Subjects of the `FILE_CREATED` records with how often each was recorded.
pub fn captures(trail: &[Record]) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in trail.iter().filter(|r| r.kind.as_str() == "FILE_CREATED") {
        let subject = r
            .subject
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        *seen.entry(subject).or_insert(0) += 1;
    }
    seen
}

/// Waits until `path` exists.
pub async fn wait_for_file(path: &Path, timeout: Duration) {
    let start = Instant::now();
    while !path.is_file() {
        assert!(
            start.elapsed() < timeout,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Copies a secret file with owner-only permissions (the provider refuses anything wider).
pub fn copy_secret(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = to.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// An edge configuration forwarding to `forward_url`.
pub fn write_edge_config(
    path: &Path,
    edge: &str,
    data_dir: &Path,
    inbox: &Path,
    forward_url: &str,
    token: &str,
    batch: usize,
) {
    std::fs::write(
        path,
        format!(
            "data_dir = {data_dir:?}\nwatch = [{inbox:?}]\ndevice = \"{edge}\"\nlisten = \"127.0.0.1:0\"\n\
             settle_ms = 150\nrescan_secs = 1\nforward_url = \"{forward_url}\"\n\
             forward_token = \"{token}\"\nforward_batch = {batch}\n"
        ),
    )
    .unwrap();
}

/// Writes one small file into `inbox` every `every` until [`finish`](Self::finish)ed.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<u64>,
}

impl Writer {
    pub fn start(inbox: PathBuf, prefix: &'static str, every: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let mut written = 0u64;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                written += 1;
                tokio::fs::write(
                    inbox.join(format!("{prefix}-{written:05}.dat")),
                    format!("{prefix} sample {written}\n").repeat(6),
                )
                .await
                .unwrap();
                tokio::time::sleep(every).await;
            }
            written
        });
        Self { stop, handle }
    }

    /// Stops writing; how many files were written, each completely.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.await.unwrap()
    }
}

/// The S3 endpoint of the self-hosted tests (moto on 127.0.0.1:5000 unless told otherwise).
#[cfg(feature = "selfhosted")]
pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

#[cfg(feature = "selfhosted")]
impl S3Env {
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Self {
            endpoint: var("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000"),
            access_key: var("RELAY_TEST_S3_ACCESS_KEY", "test"),
            secret_key: var("RELAY_TEST_S3_SECRET", "test"),
            region: var("RELAY_TEST_S3_REGION", "us-east-1"),
        }
    }

    /// The variables `relay-server` reads for its S3 client.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RELAY_S3_ENDPOINT", self.endpoint.clone()),
            ("RELAY_S3_ACCESS_KEY", self.access_key.clone()),
            ("RELAY_S3_SECRET_KEY", self.secret_key.clone()),
            ("RELAY_S3_REGION", self.region.clone()),
            ("RELAY_S3_PATH_STYLE", "1".to_owned()),
        ]
    }

    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
    }

    /// Creates a bucket with Object Lock; `Err` says why the endpoint is unusable.
    pub async fn create_locked_bucket(&self, bucket: &str) -> Result<(), String> {
        let vars = self.vars();
        let config = relay_selfhosted::S3Config::from_vars("RELAY_S3_", |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        });
        let client = relay_selfhosted::S3Client::new(&config).await;
        match tokio::time::timeout(
            Duration::from_secs(10),
            client
                .sdk()
                .create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(true)
                .send(),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            other => Err(format!("S3 endpoint {} unusable: {other:?}", self.endpoint)),
        }
    }
}

/// A name suffix unique to this process and moment.
pub fn unique_suffix() -> String {
    format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    )
}

/// `relay-server ingest-token` for `edge`: the token printed on stdout.
pub fn ingest_token(server_conf: &Path, edge: &str, envs: &[(&'static str, String)]) -> String {
    let out = Command::new(server_bin())
        .args([
            "ingest-token",
            "--config",
            server_conf.to_str().unwrap(),
            "--edge",
            edge,
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ingest-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    token
}

/// `relay-server verify`: the report; asserts exit code 0.
pub fn server_verify(server_conf: &Path, envs: &[(&'static str, String)]) -> String {
    let out = Command::new(server_bin())
        .args(["verify", "--config", server_conf.to_str().unwrap()])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "relay-server verify failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// `relay-edge verify` of an edge's data directory: asserts exit code 0.
pub fn edge_verify(edge_conf: &Path) -> String {
    let out = Command::new(edge_bin())
        .args(["verify", "--config", edge_conf.to_str().unwrap()])
        .env("RELAY_LOG", "error")
        .env_remove("RELAY_DATA_DIR")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "relay-edge verify failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// One JSON request to the API on 127.0.0.1:`port` (HTTP/1.1, `Connection: close`): the status
/// and the decoded body (`Value::Null` when empty or not JSON).
pub fn http_json(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    match json_exchange(port, method, path, token, body, Duration::from_secs(10)) {
        Ok(answer) => answer,
        // Closed before a status line: status 0, as a caller polling a starting process expects.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => (0, serde_json::Value::Null),
        Err(e) => panic!("{method} {path} on port {port}: {e}"),
    }
}

/// [`http_json`] that returns the I/O error instead of panicking: `ConnectionRefused` when
/// nothing listens (the request was not sent), `UnexpectedEof` when the connection closed
/// before a status line arrived (a process killed mid-request).
pub fn try_http_json(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    json_exchange(port, method, path, token, body, Duration::from_secs(60))
}

/// One JSON exchange, waiting at most `timeout` for each read.
fn json_exchange(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> std::io::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("no status line in {head:?}"),
            )
        })?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = match chunked {
        true => dechunk(body),
        false => body.to_owned(),
    };
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    ))
}

/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Creates database `db` through the admin connection, runs `relay-server migrate` on it with
/// runtime role `role`, and returns the runtime role's DSN (SELECT and INSERT only).
pub async fn migrated_database(
    admin: &mut sqlx::PgConnection,
    admin_options: &sqlx::postgres::PgConnectOptions,
    db: &str,
    role: &str,
) -> String {
    use sqlx::{ConnectOptions, Executor};
    admin
        .execute(format!("CREATE DATABASE \"{db}\"").as_str())
        .await
        .unwrap();
    let owner_dsn = admin_options
        .clone()
        .database(db)
        .to_url_lossy()
        .to_string();
    let migrated = Command::new(server_bin())
        .args(["migrate", "--admin-dsn", &owner_dsn, "--app-role", role])
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    format!(
        "postgres://{role}@{}:{}/{db}",
        admin_options.get_host(),
        admin_options.get_port()
    )
}

/// Waits until the server on 127.0.0.1:`port` answers `/healthz` with 200 (30 s at most,
/// failing at once with its log if the process exits).
pub fn wait_healthy(port: u16, server: &mut Proc) {
    let start = std::time::Instant::now();
    while !(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        && http_json(port, "GET", "/healthz", None, None).0 == 200)
    {
        assert!(
            server.running(),
            "relay-server exited: {}",
            server.log_tail()
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "relay-server never became healthy: {}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A real `relay-edge` forwarding to a real `relay-server` on the local provider, both running:
/// the server's ingest token issued for the edge, the edge's trail key provisioned on the
/// server, the server healthy.
pub struct ForwardingPair {
    /// Holds every directory and log.
    pub root: tempfile::TempDir,
    /// The server's data directory.
    pub server_dir: PathBuf,
    /// The edge's data directory.
    pub edge_dir: PathBuf,
    /// The edge's watched folder.
    pub inbox: PathBuf,
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The server's configuration file.
    pub server_conf: PathBuf,
    /// The edge's configuration file.
    pub edge_conf: PathBuf,
    /// The edge process.
    pub edge: Proc,
    /// The server process.
    pub server: Proc,
}

impl ForwardingPair {
    /// Starts the pair for edge `edge`; `server_extra` and `edge_extra` are TOML lines added to
    /// each configuration (the server's before its `[storage]` table). The server never anchors
    /// on an interval (`notary_interval_secs = 3600`).
    pub async fn start(
        edge: &str,
        server_device: &str,
        server_extra: &str,
        edge_extra: &str,
    ) -> Self {
        let root = tempfile::TempDir::new().unwrap();
        let server_dir = root.path().join("server");
        let edge_dir = root.path().join("edge");
        let inbox = root.path().join("inbox");
        for d in [&server_dir, &edge_dir, &inbox] {
            std::fs::create_dir_all(d).unwrap();
        }
        let port = reserve_port();
        let server_conf = root.path().join("server.toml");
        std::fs::write(
            &server_conf,
            format!(
                "data_dir = {server_dir:?}\ndevice = \"{server_device}\"\nlisten = \"127.0.0.1:{port}\"\n\
                 ingest_edges = [\"{edge}\"]\nnotary_interval_secs = 3600\n{server_extra}\
                 [storage]\nprovider = \"local\"\n"
            ),
        )
        .unwrap();
        let token = ingest_token(&server_conf, edge, &[]);
        let edge_conf = root.path().join("edge.toml");
        write_edge_config(
            &edge_conf,
            edge,
            &edge_dir,
            &inbox,
            &format!("http://127.0.0.1:{port}"),
            &token,
            50,
        );
        // The edge gets a reserved port of its own: on `127.0.0.1:0` the OS could hand it the
        // server's reserved port (not bound yet), and the edge would forward to itself.
        let mut edge_port = reserve_port();
        while edge_port == port {
            edge_port = reserve_port();
        }
        let mut text = std::fs::read_to_string(&edge_conf).unwrap().replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{edge_port}\""),
        );
        text.push_str(edge_extra);
        std::fs::write(&edge_conf, text).unwrap();
        let mut edge_proc = Proc::new(
            "relay-edge",
            edge_bin(),
            &["run", "--config", edge_conf.to_str().unwrap()],
            &root.path().join("edge.log"),
        );
        edge_proc.start();
        // The edge creates its trail key on first start; it is provisioned on the server.
        let key = edge_dir.join("secrets/trail-hmac.json");
        wait_for_file(&key, Duration::from_secs(30)).await;
        copy_secret(
            &key,
            &server_dir.join(format!("secrets/trail-hmac.{edge}.json")),
        );
        let mut server = Proc::new(
            "relay-server",
            server_bin(),
            &["run", "--config", server_conf.to_str().unwrap()],
            &root.path().join("server.log"),
        );
        server.start();
        wait_healthy(port, &mut server);
        Self {
            root,
            server_dir,
            edge_dir,
            inbox,
            port,
            server_conf,
            edge_conf,
            edge: edge_proc,
            server,
        }
    }
}

/// Creates `user` (printed name `full_name`) with a privileged `role` the way issue 18 demands:
/// `proposer` proposes an `account_create` change, `approver` (another administrator, whose
/// password is `approver_password`) approves it, and the owner replaces the temporary password
/// the approval shows with `password`. Panics with the answer on any refusal.
#[allow(clippy::too_many_arguments)]
pub fn create_with_four_eyes(
    port: u16,
    proposer: &str,
    approver: &str,
    approver_password: &str,
    user: &str,
    full_name: &str,
    role: &str,
    password: &str,
) {
    let (status, v) = http_json(
        port,
        "POST",
        "/api/v1/changes",
        Some(proposer),
        Some(&serde_json::json!({"setting": "account_create",
            "value": {"username": user, "full_name": full_name, "role": role},
            "reason": format!("new {role} {user}")})),
    );
    assert_eq!(status, 201, "proposal of {user}: {v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (status, v) = http_json(
        port,
        "POST",
        &format!("/api/v1/changes/{id}/approve"),
        Some(approver),
        Some(
            &serde_json::json!({"password": approver_password, "reason": "second administrator approves"}),
        ),
    );
    assert_eq!(status, 200, "approval of {user}: {v}");
    let temporary = v["applied"]["temporary_password"].as_str().unwrap();
    let (status, v) = http_json(
        port,
        "POST",
        "/api/v1/auth/password",
        None,
        Some(
            &serde_json::json!({"username": user, "old_password": temporary, "new_password": password}),
        ),
    );
    assert_eq!(status, 204, "first password change of {user}: {v}");
}

/// `n` `FILE_CREATED` records of `trail` chained with a fresh key kept in `edge_dir` (as an
/// edge would, appended in groups of 500), and the key file to provision on the server as
/// `trail-hmac.<trail>`.
pub async fn forwarded_trail(edge_dir: &Path, trail: &str, n: usize) -> (Vec<Record>, PathBuf) {
    use relay_domain::ports::{SecretName, SecretProviderExt};
    use relay_domain::{
        ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Subject,
    };
    let adapters = relay_local::LocalAdapters::open(edge_dir).await.unwrap();
    let key = adapters
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .unwrap()
        .to_trail_key()
        .unwrap();
    let appender = AppendService::new(adapters.record_store.clone(), adapters.clock.clone(), key);
    let drafts: Vec<EventDraft> = (0..n)
        .map(|i| EventDraft {
            trail_id: TrailId::new(trail).unwrap(),
            kind: EventKind::file_created(),
            actor: relay_domain::Actor::new("lab-user").ok(),
            actor_source: ActorSource::OsSession,
            occurred_at: None,
            device: Device::new(trail).unwrap(),
            project: None,
            subject: Subject::new(format!("run/{i}.fid")).ok(),
            payload: Payload::from_value(&serde_json::json!({"size": i})).unwrap(),
        })
        .collect();
    for group in drafts.chunks(500) {
        appender.append_group(group.to_vec()).await.unwrap();
    }
    adapters.record_store.close().await;
    (
        local_records(edge_dir, trail).await,
        edge_dir.join("secrets/trail-hmac.json"),
    )
}

/// `POST /api/v1/ingest` of `records` of `trail` as edge `edge` with its ingest `token`: the
/// status and the decoded body.
pub fn ingest_batch(
    port: u16,
    edge: &str,
    token: &str,
    trail: &str,
    records: &[Record],
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let body =
        serde_json::to_vec(&serde_json::json!({"trail_id": trail, "records": records})).unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-Relay-Edge: {edge}\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The edge's API port, read from its `relay-edge running` log line (it listens on port 0, so
/// no other test can take its port between a reservation and the bind).
pub fn edge_port(edge: &mut Proc, log: &Path) -> u16 {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("relay-edge running")) {
            let at = line
                .find("127.0.0.1:")
                .expect("the running line names its address");
            let digits: String = line[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().unwrap();
        }
        assert!(edge.running(), "relay-edge exited: {}", edge.log_tail());
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "relay-edge never ran: {}",
            edge.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers the bootstrap admin `username` on a fresh relay (answered 201).
pub fn register_admin(port: u16, username: &str, full_name: &str, password: &str) {
    let (s, v) = http_json(
        port,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(
            &serde_json::json!({"username": username, "full_name": full_name,
            "password": password, "role": "admin"}),
        ),
    );
    assert_eq!(s, 201, "register {username}: {v}");
}

/// Logs `username` in; its session token.
pub fn login(port: u16, username: &str, password: &str) -> String {
    let (s, v) = http_json(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&serde_json::json!({"username": username, "password": password})),
    );
    assert_eq!(s, 200, "login {username}: {v}");
    v["token"].as_str().unwrap().to_owned()
}
