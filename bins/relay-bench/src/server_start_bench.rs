//! `relay-bench server-start`: the whole `relay-server run` process restarted on a Postgres
//! trail of a few records and of many (issue 19, item 4: "server start and first ingest with 10
//! million stored records vs 10 thousand; start time within 2x of the small case").
//!
//! Each case: a throw-away database (migrated, runtime role with SELECT and INSERT only), a fresh
//! S3 bucket with Object Lock (moto unless `RELAY_TEST_S3_ENDPOINT` says otherwise), `n` chained
//! records of the edge trail `ws-bench` appended in batches of 1000 through `PgRecordStore`, and
//! a server data directory holding that trail's key and the edge's ingest token. A first start
//! (not timed) replays the trail and anchors it; after it stopped, three timed restarts each
//! measure the spawn to the first `/healthz` 200, to the 200 of one ingest batch of 10 new
//! records (continuing the trail), and to the notary's first anchor covering them; the rows
//! show the median of the three. Server logs are kept in a directory printed at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_domain::ports::{Notary, RecordStore};
use relay_domain::{Checksum, GENESIS, TrailId};
use relay_local::FileSecretProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::BenchError;
use crate::{Row, bench_db, chain_from, key};

/// The forwarded trail, named like its edge (so bound to it without `edge_trails`).
const EDGE: &str = "ws-bench";
/// Records of the ingest batch sent after each restart.
const INGESTED: usize = 10;
/// Timed restarts per case (each metric is their median).
const RESTARTS: usize = 3;

/// The S3 endpoint the server and the bench use (moto on 127.0.0.1:5000 unless told otherwise,
/// through the same `RELAY_TEST_S3_*` variables as the server's tests).
struct S3Env {
    endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
}

impl S3Env {
    /// From `RELAY_TEST_S3_ENDPOINT`, `_ACCESS_KEY`, `_SECRET`, `_REGION`, or moto's defaults.
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Self {
            endpoint: var("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000"),
            access_key: var("RELAY_TEST_S3_ACCESS_KEY", "test"),
            secret_key: var("RELAY_TEST_S3_SECRET", "test"),
            region: var("RELAY_TEST_S3_REGION", "us-east-1"),
        }
    }

    /// The variables `relay-server` reads for its S3 client.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RELAY_S3_ENDPOINT", self.endpoint.clone()),
            ("RELAY_S3_ACCESS_KEY", self.access_key.clone()),
            ("RELAY_S3_SECRET_KEY", self.secret_key.clone()),
            ("RELAY_S3_REGION", self.region.clone()),
            ("RELAY_S3_PATH_STYLE", "1".to_owned()),
        ]
    }

    /// A client configured as the server configures its own.
    async fn client(&self) -> relay_selfhosted::S3Client {
        let vars = self.vars();
        let config = relay_selfhosted::S3Config::from_vars("RELAY_S3_", |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        });
        relay_selfhosted::S3Client::new(&config).await
    }

    /// Creates `bucket` with Object Lock; an unusable endpoint says how to start moto.
    async fn create_locked_bucket(
        &self,
        client: &relay_selfhosted::S3Client,
        bucket: &str,
    ) -> Result<(), BenchError> {
        let created = tokio::time::timeout(
            Duration::from_secs(10),
            client
                .sdk()
                .create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(true)
                .send(),
        )
        .await;
        match created {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BenchError::Missing(format!(
                "server-start: the S3 endpoint {} cannot create a bucket with Object Lock ({}); \
                 start moto with `bash .ci/services.sh` (or point RELAY_TEST_S3_ENDPOINT at an \
                 S3 with Object Lock)",
                self.endpoint,
                error_chain(&e)
            ))),
            Err(_) => Err(BenchError::Missing(format!(
                "server-start: the S3 endpoint {} did not answer within 10 s; start moto with \
                 `bash .ci/services.sh` (or point RELAY_TEST_S3_ENDPOINT at an S3 with Object \
                 Lock)",
                self.endpoint
            ))),
        }
    }
}

/// What a timed restart measured (or the median of a case's), each from the spawn.
struct Restart {
    /// To the first `/healthz` 200.
    healthy: Duration,
    /// To the 200 of the first ingest batch.
    ingested: Duration,
    /// To the notary's first anchor covering the ingested records.
    anchored: Duration,
}

/// Runs the restart rows for trails of `small` and `large` records, with the `relay-server` at
/// `server_bin` (default: next to this executable).
pub(crate) async fn bench_server_start(
    admin_dsn: &str,
    small: usize,
    large: usize,
    server_bin: Option<&Path>,
) -> Result<Vec<Row>, BenchError> {
    if small == 0 || large == 0 {
        return Err(BenchError::Usage(
            "server-start: --small and --large must be at least 1".into(),
        ));
    }
    let exe = server_exe(server_bin)?;
    let logs =
        std::env::temp_dir().join(format!("relay-bench-server-start-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(BenchError::path(
        "cannot create the server log directory",
        &logs,
    ))?;
    let s3 = S3Env::from_env();
    let mut measured = Vec::new();
    for n in [small, large] {
        let r = case(admin_dsn, &exe, &s3, &logs, n).await?;
        eprintln!(
            "server-start: {n} records: healthy {:.3} s, first ingest acknowledged {:.3} s, \
             first anchor of it {:.3} s after the spawn",
            r.healthy.as_secs_f64(),
            r.ingested.as_secs_f64(),
            r.anchored.as_secs_f64()
        );
        measured.push(r);
    }
    eprintln!("server-start: server logs kept in {}", logs.display());
    let (s, l) = (&measured[0], &measured[1]);
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let row = |what: &str, large_d: Duration, small_d: Duration| Row {
        path: leak(format!(
            "relay-server restart to {what}, Postgres, {} vs {} records",
            thousands(large),
            thousands(small)
        )),
        ours: format!("{:.3} s", large_d.as_secs_f64()),
        baseline: format!(
            "{:.3} s with {} records (target: within 2x)",
            small_d.as_secs_f64(),
            thousands(small)
        ),
        ratio: format!(
            "{:.1}x",
            large_d.as_secs_f64() / small_d.as_secs_f64().max(1e-9)
        ),
    };
    Ok(vec![
        row("healthy", l.healthy, s.healthy),
        row("first ingest acknowledged", l.ingested, s.ingested),
        row(
            "first anchor of the ingested records",
            l.anchored,
            s.anchored,
        ),
    ])
}

/// `n` with thousands separators (10,000,000).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The server binary: `--server-bin`, or `relay-server` next to this executable.
fn server_exe(given: Option<&Path>) -> Result<PathBuf, BenchError> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| BenchError::Missing(format!("cannot locate relay-bench itself: {e}")))?
            .with_file_name("relay-server"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::Missing(format!(
            "server-start: {} not found; build it with the self-hosted provider first: \
             `cargo build -p relay-server --features selfhosted` (add --release for release \
             timings, next to a release relay-bench), or pass --server-bin",
            path.display()
        )))
    }
}

/// One case: bucket, database and data directory for `n` records, the untimed first start and
/// the timed restart. The database is dropped whatever happened.
async fn case(
    admin_dsn: &str,
    exe: &Path,
    s3: &S3Env,
    logs: &Path,
    n: usize,
) -> Result<Restart, BenchError> {
    let client = s3.client().await;
    let bucket = format!(
        "relay-srvstart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() % 1_000_000_000_000)
    );
    s3.create_locked_bucket(&client, &bucket).await?;
    let bench_db = bench_db::BenchDb::create(admin_dsn, "srvstart").await?;
    let result = measure(&bench_db.app_dsn, exe, s3, &client, &bucket, logs, n).await;
    bench_db.drop_all().await;
    result
}

/// Loads the trail, provisions the data directory, runs the first start and the timed restart.
async fn measure(
    app_dsn: &str,
    exe: &Path,
    s3: &S3Env,
    client: &relay_selfhosted::S3Client,
    bucket: &str,
    logs: &Path,
    n: usize,
) -> Result<Restart, BenchError> {
    let trail = TrailId::new(EDGE).map_err(|e| BenchError::Usage(e.to_string()))?;
    let head = load_trail(app_dsn, &trail, n).await?;
    let notary = relay_selfhosted::S3Notary::open(
        client,
        relay_selfhosted::S3NotaryOptions::new(bucket.to_owned()),
    )
    .await
    .map_err(|e| BenchError::Missing(format!("server-start: cannot open the notary: {e}")))?;

    let dir = tempfile::tempdir().map_err(BenchError::path(
        "cannot create a scratch directory in",
        &std::env::temp_dir(),
    ))?;
    let data_dir = dir.path().join("server");
    let token = provision(&data_dir, &trail).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::Missing(format!("server-start: no free port: {e}")))?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = dir.path().join("server.toml");
    let toml_str = |p: &Path| format!("{:?}", p.display().to_string());
    std::fs::write(
        &config,
        format!(
            "data_dir = {}\ndevice = \"server-bench\"\nlisten = \"{addr}\"\n\
             ingest_edges = [\"{EDGE}\"]\nnotary_interval_secs = 1\n[storage]\n\
             provider = \"selfhosted\"\npg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\n",
            toml_str(&data_dir)
        ),
    )
    .map_err(BenchError::path("cannot write the server config", &config))?;
    let envs = s3.vars();

    // The first start replays the trail from seq 1 (no anchor yet) and anchors its head.
    eprintln!("server-start: {n} records: first start (replays the trail; not timed)");
    let t = Instant::now();
    let log = logs.join(format!("{n}-first-start.log"));
    let mut server = Server::spawn(exe, &config, &envs, &log)?;
    server.wait_healthy(addr, n).await?;
    eprintln!(
        "server-start: first start healthy after {:.1} s; waiting for the anchor of seq {n}",
        t.elapsed().as_secs_f64()
    );
    wait_anchor(&notary, &trail, n as u64, &mut server, n).await?;
    eprintln!(
        "server-start: first start anchored seq {n} after {:.1} s; stopping it",
        t.elapsed().as_secs_f64()
    );
    server.stop()?;

    // The timed restarts; each metric is the median of RESTARTS.
    let mut runs = Vec::new();
    let mut head = head;
    for k in 0..RESTARTS {
        let after = n + k * INGESTED;
        let batch = chain_from(&trail, after, head, INGESTED);
        head = batch.last().map_or(head, |r| r.checksum);
        let log = logs.join(format!("{n}-restart-{}.log", k + 1));
        let r = restart(
            exe, &config, &envs, &log, addr, &token, &notary, batch, after,
        )
        .await?;
        eprintln!(
            "server-start: {n} records, restart {}: healthy {:.3} s, ingest acknowledged {:.3} s, \
             anchored {:.3} s",
            k + 1,
            r.healthy.as_secs_f64(),
            r.ingested.as_secs_f64(),
            r.anchored.as_secs_f64()
        );
        runs.push(r);
    }
    let median = |f: fn(&Restart) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    Ok(Restart {
        healthy: median(|r| r.healthy),
        ingested: median(|r| r.ingested),
        anchored: median(|r| r.anchored),
    })
}

/// One timed restart: spawn, first `/healthz` 200, `batch` (records `after`+1..) ingested,
/// the notary's anchor covering it; then SIGTERM.
#[allow(clippy::too_many_arguments)]
async fn restart(
    exe: &Path,
    config: &Path,
    envs: &[(&'static str, String)],
    log: &Path,
    addr: SocketAddr,
    token: &str,
    notary: &relay_selfhosted::S3Notary,
    batch: Vec<relay_domain::Record>,
    after: usize,
) -> Result<Restart, BenchError> {
    let trail = batch[0].trail_id.clone();
    let last = (after + batch.len()) as u64;
    let body = serde_json::to_vec(&relay_api::IngestRequest {
        trail_id: trail.clone(),
        records: batch,
    })
    .map_err(|e| BenchError::Missing(format!("server-start: cannot encode the batch: {e}")))?;
    let t0 = Instant::now();
    let mut server = Server::spawn(exe, config, envs, log)?;
    server.wait_healthy(addr, after).await?;
    let healthy = t0.elapsed();
    let (status, answer) = http(
        addr,
        "POST",
        "/api/v1/ingest",
        &[
            ("Authorization", &format!("Bearer {token}")),
            (relay_api::EDGE_HEADER, EDGE),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await
    .map_err(|e| BenchError::Missing(format!("server-start: POST /api/v1/ingest: {e}")))?;
    let ingested = t0.elapsed();
    let acked = serde_json::from_str::<relay_api::IngestResponse>(&answer)
        .map(|r| r.acked_seq)
        .unwrap_or(0);
    if status != 200 || acked != last {
        return Err(BenchError::Missing(format!(
            "server-start: the ingest batch was answered {status}: {answer}\n{}",
            server.log_tail()
        )));
    }
    wait_anchor(notary, &trail, last, &mut server, 0).await?;
    let anchored = t0.elapsed();
    server.stop()?;
    Ok(Restart {
        healthy,
        ingested,
        anchored,
    })
}

/// Appends `n` chained records of `trail` in batches of 1000 as the runtime role; the head's
/// checksum.
async fn load_trail(app_dsn: &str, trail: &TrailId, n: usize) -> Result<Checksum, BenchError> {
    let store = relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(app_dsn))
        .await
        .map_err(|e| BenchError::Missing(format!("cannot open the bench store: {e}")))?;
    let t = Instant::now();
    let (mut done, mut head) = (0usize, GENESIS);
    while done < n {
        let part = chain_from(trail, done, head, (n - done).min(1000));
        store
            .append(&part)
            .await
            .map_err(|e| BenchError::Missing(format!("server-start: loading the trail: {e}")))?;
        done += part.len();
        head = part.last().map_or(head, |r| r.checksum);
        if done % 1_000_000 == 0 {
            eprintln!(
                "server-start: {done} of {n} records loaded ({:.0} s)",
                t.elapsed().as_secs_f64()
            );
        }
    }
    store.close().await;
    eprintln!(
        "server-start: {n} records loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(head)
}

/// The server's data directory: the trail's key as `secrets/trail-hmac.<trail>.json` (0600, as
/// an operator provisions an edge's key) and the edge's ingest token; the token's bearer text.
async fn provision(data_dir: &Path, trail: &TrailId) -> Result<String, BenchError> {
    use std::os::unix::fs::PermissionsExt;
    let secrets_dir = data_dir.join("secrets");
    let secrets = FileSecretProvider::open(&secrets_dir).map_err(|e| {
        BenchError::Missing(format!(
            "server-start: cannot open {}: {e}",
            secrets_dir.display()
        ))
    })?;
    let k = key();
    let file = serde_json::json!({
        "format": "gims-relay-secret-v1",
        "versions": [{ "id": k.id().as_str(), "secret_hex": hex_of(k.expose_secret()) }],
    });
    let key_path = secrets_dir.join(format!("trail-hmac.{}.json", trail.as_str()));
    std::fs::write(&key_path, file.to_string())
        .and_then(|()| std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)))
        .map_err(BenchError::path("cannot write the trail key", &key_path))?;
    relay_runtime::server::ingest_token(&secrets, EDGE)
        .await
        .map_err(|e| BenchError::Missing(format!("server-start: no ingest token: {e}")))
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Lower-case hex of `bytes`.
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until the notary holds an anchor of `trail` at seq `seq` or later, failing when the
/// server exits or after a limit that grows with `replayed` (records the server replays first).
async fn wait_anchor(
    notary: &relay_selfhosted::S3Notary,
    trail: &TrailId,
    seq: u64,
    server: &mut Server,
    replayed: usize,
) -> Result<(), BenchError> {
    let limit = Duration::from_secs(300 + replayed as u64 / 2000);
    let (t, mut said) = (Instant::now(), Instant::now());
    let mut last = String::from("none yet");
    loop {
        match notary.newest_anchor(trail).await {
            Ok(Some(a)) if a.seq.get() >= seq => return Ok(()),
            Ok(Some(a)) => last = format!("seq {}", a.seq.get()),
            Ok(None) => {}
            Err(e) => last = format!("read failed: {e}"),
        }
        server.check_running()?;
        if t.elapsed() > limit {
            return Err(BenchError::Missing(format!(
                "server-start: no anchor of {trail} at seq {seq} after {} s (newest: {last})\n{}",
                limit.as_secs(),
                server.log_tail()
            )));
        }
        if said.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "server-start: waiting for the anchor of seq {seq}: {:.0} s, newest {last}",
                t.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `relay-server run`; killed when dropped (a failed bench leaves nothing running).
struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Spawns `exe run --config config` with `envs` and no other `RELAY_*` variable than
    /// `RELAY_LOG` (default `info`), its output appended to `log`.
    fn spawn(
        exe: &Path,
        config: &Path,
        envs: &[(&'static str, String)],
        log: &Path,
    ) -> Result<Self, BenchError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(BenchError::path("cannot open the server log", log))?;
        let err = file
            .try_clone()
            .map_err(BenchError::path("cannot open the server log", log))?;
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        // Only the config file and the S3 variables configure this server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RELAY_") && k != "RELAY_LOG" {
                cmd.env_remove(k);
            }
        }
        if std::env::var_os("RELAY_LOG").is_none() {
            cmd.env("RELAY_LOG", "info");
        }
        cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::Missing(format!("cannot start {}: {e}", exe.display())))?;
        Ok(Self {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Fails (with the log's tail) when the server has exited.
    fn check_running(&mut self) -> Result<(), BenchError> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => e.to_string(),
            None => "stopped".to_owned(),
        };
        Err(BenchError::Missing(format!(
            "server-start: relay-server exited ({status}):\n{}",
            self.log_tail()
        )))
    }

    /// Polls `GET /healthz` every 10 ms until it answers 200 (a limit that grows with `n`).
    async fn wait_healthy(&mut self, addr: SocketAddr, n: usize) -> Result<(), BenchError> {
        let limit = Duration::from_secs(120 + n as u64 / 5000);
        let t = Instant::now();
        loop {
            if let Ok((200, _)) = http(addr, "GET", "/healthz", &[], &[]).await {
                return Ok(());
            }
            self.check_running()?;
            if t.elapsed() > limit {
                return Err(BenchError::Missing(format!(
                    "server-start: relay-server not healthy on {addr} after {} s:\n{}",
                    limit.as_secs(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(25)..].join("\n")
        )
    }

    /// SIGTERM, and a clean exit within 120 s (then SIGKILL and an error).
    fn stop(&mut self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            child.kill().ok();
            child.wait().ok();
            return Err(BenchError::Missing(
                "server-start: `kill -TERM` failed; relay-server was killed".into(),
            ));
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(BenchError::Missing(format!(
                        "server-start: relay-server exited with {status} after SIGTERM:\n{}",
                        self.log_tail()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(BenchError::Missing(format!(
                        "server-start: waiting for relay-server: {e}"
                    )));
                }
            }
        }
        child.kill().ok();
        child.wait().ok();
        Err(BenchError::Missing(format!(
            "server-start: relay-server ignored SIGTERM for 120 s and was killed:\n{}",
            self.log_tail()
        )))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

/// One HTTP/1.1 request on loopback (`Connection: close`, 60 s at most): the status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 60 s"))??;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}
