#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The custody fault test (R8): real `relay-edge` and `relay-server` processes on loopback, with
//! a proxy between them that drops requests, drops answers and duplicates requests. While the
//! edge captures files continuously, the server is SIGKILLed and restarted 5 times and the edge
//! 3 times. At the end the server's trail equals the edge's record for record, `relay-server
//! verify` passes, and every file was captured exactly once (nothing lost, nothing duplicated).

mod common;

use relay_conformance::test_ports::reserve_port;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relay_domain::ports::{RecordStore, RecordStoreExt};
use relay_domain::{Record, TrailId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const EDGE: &str = "ws-fault";

fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relay-server"))
}

/// `relay-edge` next to `relay-server` in the target directory, built if missing.
fn edge_bin() -> PathBuf {
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

struct Paths {
    _root: tempfile::TempDir,
    server_dir: PathBuf,
    server_conf: PathBuf,
    edge_dir: PathBuf,
    edge_conf: PathBuf,
    inbox: PathBuf,
    logs: PathBuf,
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin)
        .args(args)
        .env("RELAY_LOG", "info")
        .env_remove("RELAY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn start_server(p: &Paths) -> Child {
    spawn(
        &server_bin(),
        &["run", "--config", p.server_conf.to_str().unwrap()],
        &p.logs.join("server.log"),
    )
}

fn start_edge(p: &Paths) -> Child {
    spawn(
        &edge_bin(),
        &["run", "--config", p.edge_conf.to_str().unwrap()],
        &p.logs.join("edge.log"),
    )
}

/// The last lines of the edge's and the server's logs, for a failure message (the logs live in
/// a temporary directory that is gone once the test has failed).
fn log_tails(logs: &Path) -> String {
    ["edge.log", "server.log"]
        .iter()
        .map(|name| {
            format!(
                "--- last lines of {name} ---\n{}",
                common::log_tail(&logs.join(name), 60)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn sigterm(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "process exited with {status}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the chaos proxy did.
#[derive(Default)]
struct ProxyStats {
    requests: AtomicU64,
    dropped_requests: AtomicU64,
    dropped_answers: AtomicU64,
    duplicated: AtomicU64,
}

/// Reads one HTTP/1.1 message (head + Content-Length body); `None` when the peer closed.
async fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.truncate(head_end + len);
    Some(buf)
}

/// Sends `request` to the server and returns its answer.
async fn exchange(upstream: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await.ok()?;
    s.write_all(request).await.ok()?;
    read_message(&mut s).await
}

/// Whether to inject a fault of the kind `counter` counts (and counts it): always the first
/// time the kind comes up (of concurrent requests only one claims it), then when the fixed
/// sequence says so. So every kind happens at least once whatever the kills hit.
fn fault(counter: &AtomicU64, by_sequence: bool) -> bool {
    if counter
        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        return true;
    }
    if by_sequence {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    by_sequence
}

/// One request per connection: drop it (10%), forward it and drop the answer (10%), send it
/// twice (15%), or pass it through; the answer is marked `Connection: close`.
async fn chaos_proxy(listener: TcpListener, upstream: SocketAddr, stats: Arc<ProxyStats>) {
    let mut n: u64 = 0;
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        // A fixed pseudo-random sequence keeps runs comparable.
        let roll = (n.wrapping_mul(2_654_435_761) >> 7) % 100;
        let stats = stats.clone();
        tokio::spawn(async move {
            let Some(request) = read_message(&mut client).await else {
                return;
            };
            stats.requests.fetch_add(1, Ordering::Relaxed);
            // Every fault happens at least once whatever the kills hit: the first request is
            // dropped, the first answer the server gives is dropped, the next one is a
            // duplicate; after that the fixed sequence decides.
            if fault(&stats.dropped_requests, roll < 10) {
                return;
            }
            let Some(mut answer) = exchange(upstream, &request).await else {
                return;
            };
            if fault(&stats.dropped_answers, roll < 20) {
                return;
            }
            if fault(&stats.duplicated, roll < 35) {
                match exchange(upstream, &request).await {
                    Some(second) => answer = second,
                    None => return,
                }
            }
            if let Some(i) = answer.windows(2).position(|w| w == b"\r\n") {
                answer.splice(i + 2..i + 2, b"connection: close\r\n".iter().copied());
            }
            if client.write_all(&answer).await.is_ok() {
                client.shutdown().await.ok();
            }
        });
    }
}

async fn trail_records(data_dir: &Path, trail: &str) -> Vec<Record> {
    let store = common::read_only_store(data_dir).await;
    let mut out = Vec::new();
    store
        .for_each_record(&TrailId::new(trail).unwrap(), 1000, |r| {
            out.push(r);
            true
        })
        .await
        .unwrap();
    store.close().await;
    out
}

async fn edge_head_and_acked(data_dir: &Path) -> (u64, u64) {
    let store = common::read_only_store(data_dir).await;
    let trail = TrailId::new(EDGE).unwrap();
    let head = store.head(&trail).await.unwrap().map_or(0, |h| h.seq.get());
    let cursors = relay_local::SqliteForwardCursorStore::new(store.pool().clone());
    let acked = relay_domain::ports::ForwardCursorStore::get(&cursors, &trail)
        .await
        .unwrap()
        .map_or(0, |c| c.acked_seq);
    store.close().await;
    (head, acked)
}

// REQ: R8.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_replica_survives_kills_restarts_and_a_lossy_duplicating_network() {
    let root = tempfile::TempDir::new().unwrap();
    let p = Paths {
        server_dir: root.path().join("server"),
        server_conf: root.path().join("server.toml"),
        edge_dir: root.path().join("edge"),
        edge_conf: root.path().join("edge.toml"),
        inbox: root.path().join("inbox"),
        logs: root.path().join("logs"),
        _root: root,
    };
    for d in [&p.server_dir, &p.edge_dir, &p.inbox, &p.logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let server_port = reserve_port();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let stats = Arc::new(ProxyStats::default());
    let upstream: SocketAddr = format!("127.0.0.1:{server_port}").parse().unwrap();
    tokio::spawn(chaos_proxy(proxy, upstream, stats.clone()));

    std::fs::write(
        &p.server_conf,
        format!(
            "data_dir = {:?}\ndevice = \"server-1\"\nlisten = \"127.0.0.1:{server_port}\"\n\
             ingest_edges = [\"{EDGE}\"]\nnotary_interval_secs = 3600\n[storage]\nprovider = \"local\"\n",
            p.server_dir
        ),
    )
    .unwrap();
    let out = Command::new(server_bin())
        .args([
            "ingest-token",
            "--config",
            p.server_conf.to_str().unwrap(),
            "--edge",
            EDGE,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    std::fs::write(
        &p.edge_conf,
        format!(
            "data_dir = {:?}\nwatch = [{:?}]\ndevice = \"{EDGE}\"\nlisten = \"127.0.0.1:0\"\n\
             settle_ms = 150\nrescan_secs = 1\nforward_url = \"http://127.0.0.1:{proxy_port}\"\n\
             forward_token = \"{token}\"\nforward_batch = 40\n",
            p.edge_dir, p.inbox
        ),
    )
    .unwrap();

    // The edge starts first (it creates its trail key), which is then provisioned on the server.
    let mut edge = start_edge(&p);
    let key = p.edge_dir.join("secrets/trail-hmac.json");
    let start = Instant::now();
    while !key.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "edge key never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(p.server_dir.join("secrets")).unwrap();
        let to = p.server_dir.join(format!("secrets/trail-hmac.{EDGE}.json"));
        std::fs::copy(&key, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut server = start_server(&p);

    // Capture continuously: a new file every 40 ms for the whole chaos phase.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let inbox = p.inbox.clone();
        let written = written.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                i += 1;
                let path = inbox.join(format!("run-{i:05}.dat"));
                tokio::fs::write(&path, format!("sample {i}\n").repeat(8))
                    .await
                    .unwrap();
                written.store(i, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    // 5 server kills and 3 edge kills, interleaved, ~1.5 s apart.
    let plan = [
        "server", "edge", "server", "server", "edge", "server", "edge", "server",
    ];
    for target in plan {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        match target {
            "server" => {
                // A server that could not start (its port taken, say) would otherwise show only
                // as an edge that never catches up.
                if let Some(status) = server.try_wait().unwrap() {
                    panic!(
                        "the server exited on its own ({status})\n{}",
                        log_tails(&p.logs)
                    );
                }
                sigkill(&mut server);
                tokio::time::sleep(Duration::from_millis(700)).await;
                server = start_server(&p);
            }
            _ => {
                sigkill(&mut edge);
                tokio::time::sleep(Duration::from_millis(300)).await;
                edge = start_edge(&p);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    writer.abort();
    // A write in flight when the task was aborted still completes (on tokio's blocking pool),
    // so the inbox, not the counter, says how many files there are.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let files = std::fs::read_dir(&p.inbox).unwrap().count() as u64;
    assert!(files >= written.load(Ordering::SeqCst));
    assert!(files > 200, "only {files} files written");

    // Catch up: every file captured and every record acknowledged by the server, and the trail
    // quiet for longer than a settle window plus a rescan (a write that was in flight when the
    // writer was aborted may land after its file was first captured and add a FILE_MODIFIED).
    let start = Instant::now();
    let mut quiet_since: Option<(u64, Instant)> = None;
    loop {
        let (head, acked) = edge_head_and_acked(&p.edge_dir).await;
        let captured = trail_records(&p.edge_dir, EDGE)
            .await
            .iter()
            .filter(|r| r.kind.as_str() == "FILE_CREATED")
            .count() as u64;
        if captured >= files && head == acked {
            match quiet_since {
                Some((h, since)) if h == head => {
                    if since.elapsed() >= Duration::from_secs(3) {
                        break;
                    }
                }
                _ => quiet_since = Some((head, Instant::now())),
            }
        } else {
            quiet_since = None;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no catch-up: captured {captured}/{files}, head {head}, acked {acked}, server {}\n\
             proxy: {} requests, {} dropped, {} answers dropped, {} duplicated\n{}",
            server
                .try_wait()
                .unwrap()
                .map_or_else(|| "running".to_owned(), |s| format!("exited ({s})")),
            stats.requests.load(Ordering::Relaxed),
            stats.dropped_requests.load(Ordering::Relaxed),
            stats.dropped_answers.load(Ordering::Relaxed),
            stats.duplicated.load(Ordering::Relaxed),
            log_tails(&p.logs)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sigterm(&mut edge);
    sigterm(&mut server);

    let edge_trail = trail_records(&p.edge_dir, EDGE).await;
    let server_trail = trail_records(&p.server_dir, EDGE).await;
    assert_eq!(server_trail.len(), edge_trail.len());
    for (s, e) in server_trail.iter().zip(&edge_trail) {
        assert_eq!(s.chain_seq, e.chain_seq);
        assert_eq!(
            s.checksum, e.checksum,
            "checksum differs at seq {}",
            e.chain_seq
        );
        assert_eq!(s, e, "record differs at seq {}", e.chain_seq);
    }
    // Every file exactly once: nothing lost, nothing duplicated.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in edge_trail
        .iter()
        .filter(|r| r.kind.as_str() == "FILE_CREATED")
    {
        let subject = r
            .subject
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        *seen.entry(subject).or_default() += 1;
    }
    assert_eq!(seen.len() as u64, files, "every file captured");
    assert!(seen.values().all(|&n| n == 1), "a file was captured twice");
    // No poison on the way.
    let relay = trail_records(&p.edge_dir, "_relay").await;
    assert!(relay.iter().all(|r| r.kind.as_str() != "FORWARD_POISONED"));

    let status = Command::new(edge_bin())
        .args([
            "forward",
            "status",
            "--config",
            p.edge_conf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status = String::from_utf8_lossy(&status.stdout);
    let line = status
        .lines()
        .find(|l| l.starts_with(EDGE))
        .unwrap_or_else(|| panic!("no status line for {EDGE}:\n{status}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let n = edge_trail.len().to_string();
    assert_eq!(
        cols[..5],
        [EDGE, n.as_str(), n.as_str(), "0", "in"],
        "{status}"
    );

    let verify = Command::new(server_bin())
        .args(["verify", "--config", p.server_conf.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "relay-server verify failed:\n{report}"
    );
    assert!(
        report.contains(&format!(
            "OK      {EDGE}: {} records verified",
            edge_trail.len()
        )),
        "{report}"
    );

    let s = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "fault test: {files} files, {} records replicated; proxy: {} requests, {} dropped, {} answers dropped, {} duplicated",
        edge_trail.len(),
        s(&stats.requests),
        s(&stats.dropped_requests),
        s(&stats.dropped_answers),
        s(&stats.duplicated)
    );
    assert!(
        s(&stats.dropped_requests) > 0 && s(&stats.dropped_answers) > 0 && s(&stats.duplicated) > 0
    );
}
