//! `relay-bench login-flood`: a real `relay-edge` under a flood of bogus logins (issue 18,
//! "login that survives a flood": peak RSS under 256 MiB, legitimate logins still answered).
//!
//! Per scenario the bench starts the release `relay-edge` next to this executable on a fresh
//! data directory (default configuration), registers the first administrator, times a few of
//! its logins with no flood (the baseline), then for `--seconds` keeps `--attackers` bogus
//! logins in flight at once (unknown usernames, wrong passwords; each answered attempt is
//! replaced by a new one) while the administrator logs in again and again from 127.0.0.1. It
//! reports the relay's idle and peak RSS (`VmRSS` before, `VmHWM` after, from
//! `/proc/<pid>/status`), the flood's answers by status and code, what it cost the audit trail
//! (`relay_records_appended_total`), and the legitimate logins' successes and latency. The
//! administrator's address logged in before the flood, so the relay knows it; a newcomer (the
//! same account, each attempt from an address that never logged in: 127.0.0.3, .4, ...) tries
//! too, once a second, and is reported apart.
//!
//! Two scenarios: **many addresses** (each bogus login from its own address in 127.0.0.0/8,
//! which Linux routes to the loopback interface: the per-client failure limit never fills, so
//! every attempt reaches the Argon2 gate, the worst case), and **one address** (every bogus
//! login from 127.0.0.2: past the limit each is refused before any password work, and each
//! refusal is still a `LOGIN_FAILED` record). The bench fails (exit 2) when no legitimate login
//! of a scenario succeeded; the RSS target is checked in the report.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Row;
use crate::api_bench::{Edge, log_in, try_http};
use crate::error::BenchError;

/// The issue's target for the relay's peak RSS during the flood.
pub(crate) const TARGET_PEAK_MIB: f64 = 256.0;
/// The legitimate user's address.
const LEGIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The attacker's address in the one-address scenario.
const ONE_ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Pause between two logins of the legitimate user.
const LEGIT_PAUSE: Duration = Duration::from_millis(200);
/// Pause between two logins of the newcomer.
const NEWCOMER_PAUSE: Duration = Duration::from_secs(1);
/// Logins of the legitimate user timed before the flood.
const BASELINE_LOGINS: usize = 10;
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the bogus logins come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sources {
    /// Each bogus login from its own address of 127.0.0.0/8 (the per-client limit never fills).
    Many,
    /// Every bogus login from 127.0.0.2.
    One,
}

impl Sources {
    fn label(self) -> &'static str {
        match self {
            Sources::Many => "many addresses",
            Sources::One => "one address",
        }
    }

    /// The address of bogus login number `k`.
    fn address(self, k: u64) -> Ipv4Addr {
        match self {
            Sources::One => ONE_ATTACKER,
            Sources::Many => {
                // 127.x.y.z with x in 1..=254, z in 1..=254: never 127.0.0.x (the legitimate
                // user and the one-address attacker), distinct for the first 16.5 M logins.
                let k = k % (254 * 256 * 254);
                let (z, rest) = (k % 254, k / 254);
                let (y, x) = (rest % 256, rest / 256);
                Ipv4Addr::new(127, 1 + x as u8, y as u8, 1 + z as u8)
            }
        }
    }
}

/// What one scenario measured.
struct Outcome {
    idle_mib: f64,
    peak_mib: f64,
    /// Bogus logins answered, by status and error code (status 0: no answer, the I/O error).
    answers: BTreeMap<(u16, String), u64>,
    /// The legitimate user's attempts during the flood: status and latency.
    legit: Vec<(u16, String, Duration)>,
    /// The legitimate user's logins before the flood.
    baseline: Vec<Duration>,
    /// The newcomer's attempts during the flood (each from a new address): status and code.
    newcomer: Vec<(u16, String)>,
    /// Records appended during the flood (`relay_records_appended_total`).
    records_appended: u64,
    /// Logins refused by the per-client limit during the flood.
    client_refusals: u64,
}

/// Runs the flood `seconds` long with `attackers` bogus logins in flight, per scenario.
pub(crate) fn bench_login_flood(
    rt: &tokio::runtime::Runtime,
    attackers: usize,
    seconds: u64,
    scenarios: &[Sources],
    dir: &Path,
) -> Result<Vec<Row>, BenchError> {
    let edge_exe = crate::error::sibling_binary("relay-edge")?;
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (i, &sources) in scenarios.iter().enumerate() {
        let scenario_dir = dir.join(format!("flood-{i}"));
        std::fs::create_dir_all(&scenario_dir).map_err(BenchError::path(
            "cannot create a scenario directory in",
            &scenario_dir,
        ))?;
        let data_dir = scenario_dir.join("data");
        let mut edge = Edge::start(&edge_exe, &scenario_dir, &data_dir);
        eprintln!(
            "login-flood ({}): relay-edge pid {} on {}",
            sources.label(),
            edge.pid(),
            edge.addr
        );
        let outcome = rt.block_on(run_scenario(&edge, sources, attackers, seconds));
        let status = edge.stop().map_err(|e| {
            BenchError::Missing(format!("login-flood: cannot stop relay-edge: {e}"))
        })?;
        if !status.success() {
            return Err(BenchError::Missing(format!(
                "login-flood: relay-edge exited with {status} after the flood:\n{}",
                edge.log_tail()
            )));
        }
        print_outcome(sources, attackers, seconds, &outcome);
        if !outcome.legit.iter().any(|(s, _, _)| *s == 200) {
            failed.push(sources.label());
        }
        rows.extend(rows_of(sources, attackers, seconds, &outcome));
    }
    if !failed.is_empty() {
        crate::print_rows(rows)?;
        return Err(BenchError::Missing(format!(
            "login-flood: no legitimate login succeeded during the flood from {}",
            failed.join(" nor from ")
        )));
    }
    Ok(rows)
}

async fn run_scenario(edge: &Edge, sources: Sources, attackers: usize, seconds: u64) -> Outcome {
    let addr = edge.addr;
    let pid = edge.pid();
    tokio::task::spawn_blocking(move || log_in(addr))
        .await
        .expect("register and log in the bench administrator");
    let mut baseline = Vec::new();
    for _ in 0..BASELINE_LOGINS {
        let t = Instant::now();
        let (status, code) = legit_login(LEGIT, addr).await;
        assert_eq!(
            status, 200,
            "login-flood: a login with no flood answered {status} {code}"
        );
        baseline.push(t.elapsed());
    }
    let before = metrics(addr).await;
    let (idle, _) = memory_of(pid);

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let answers = Arc::new(Mutex::new(BTreeMap::<(u16, String), u64>::new()));
    let mut tasks = Vec::new();
    for _ in 0..attackers {
        let (next, answers) = (next.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let body =
                    format!(r#"{{"username":"ghost-{k}","password":"not the password {k}"}}"#);
                let answer = post(sources.address(k), addr, "/api/v1/auth/login", &body).await;
                let key = match answer {
                    Ok((status, body)) => (status, code_of(&body)),
                    Err(e) => (0, e.kind().to_string()),
                };
                *answers
                    .lock()
                    .expect("no task panics holding the lock")
                    .entry(key)
                    .or_default() += 1;
            }
        }));
    }
    let legit = tokio::spawn(async move {
        let mut attempts = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            let (status, code) = legit_login(LEGIT, addr).await;
            attempts.push((status, code, t.elapsed()));
            tokio::time::sleep(LEGIT_PAUSE).await;
        }
        attempts
    });
    let newcomer = tokio::spawn(async move {
        let mut attempts = Vec::new();
        let mut last = 2u8;
        while Instant::now() < deadline && last < 250 {
            last += 1;
            attempts.push(legit_login(Ipv4Addr::new(127, 0, 0, last), addr).await);
            tokio::time::sleep(NEWCOMER_PAUSE).await;
        }
        attempts
    });
    for t in tasks {
        t.await.expect("an attacker task");
    }
    let legit = legit.await.expect("the legitimate user's task");
    let newcomer = newcomer.await.expect("the newcomer's task");
    let (_, peak) = memory_of(pid);
    let after = metrics(addr).await;
    let answers = Arc::try_unwrap(answers)
        .map(|m| m.into_inner().expect("no task panics holding the lock"))
        .unwrap_or_default();
    Outcome {
        idle_mib: idle,
        peak_mib: peak,
        answers,
        legit,
        baseline,
        newcomer,
        records_appended: after.0.saturating_sub(before.0),
        client_refusals: after.1.saturating_sub(before.1),
    }
}

/// One login of the bench administrator from `source`: status and error code.
async fn legit_login(source: Ipv4Addr, addr: SocketAddr) -> (u16, String) {
    let body = format!(
        r#"{{"username":"{}","password":"{}"}}"#,
        crate::api_bench::USERNAME,
        crate::api_bench::PASSWORD
    );
    match post(source, addr, "/api/v1/auth/login", &body).await {
        Ok((status, body)) => (status, code_of(&body)),
        Err(e) => (0, e.kind().to_string()),
    }
}

/// One `POST` on a new connection from `source` (`Connection: close`): status and body.
async fn post(
    source: Ipv4Addr,
    addr: SocketAddr,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let mut stream = socket.connect(addr).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_owned());
        Ok((status, body))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The error code of an answer body (`""` for a success).
fn code_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `relay_records_appended_total` and `relay_login_client_refusals_total` of the edge.
async fn metrics(addr: SocketAddr) -> (u64, u64) {
    let text = tokio::task::spawn_blocking(move || try_http(addr, "GET", "/metrics", None, ""))
        .await
        .expect("the metrics request")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (
        value("relay_records_appended_total "),
        value("relay_login_client_refusals_total "),
    )
}

/// The relay's resident memory now and its peak (`VmRSS`, `VmHWM`), in MiB.
fn memory_of(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// The `q` quantile (0..=1) of `d`, in milliseconds (NaN when empty).
fn quantile_ms(d: &[Duration], q: f64) -> f64 {
    if d.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<Duration> = d.to_vec();
    v.sort();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

/// `"123 x 401 invalid_credentials, 45 x 503 busy"`, largest first.
fn answer_list(answers: &BTreeMap<(u16, String), u64>) -> String {
    let mut v: Vec<_> = answers.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .map(|((status, code), n)| match status {
            0 => format!("{n} x no answer ({code})"),
            _ => format!("{n} x {status} {code}").trim_end().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_outcome(sources: Sources, attackers: usize, seconds: u64, o: &Outcome) {
    let total: u64 = o.answers.values().sum();
    let legit_ok: Vec<Duration> = o
        .legit
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, d)| *d)
        .collect();
    let all: Vec<Duration> = o.legit.iter().map(|(_, _, d)| *d).collect();
    let legit_answers = count_answers(
        &o.legit
            .iter()
            .map(|(s, c, _)| (*s, c.clone()))
            .collect::<Vec<_>>(),
    );
    eprintln!(
        "login-flood ({}): {attackers} bogus logins in flight for {seconds} s: {total} answered \
         ({:.0}/s): {}",
        sources.label(),
        total as f64 / seconds as f64,
        answer_list(&o.answers)
    );
    eprintln!(
        "login-flood ({}): relay RSS idle {:.1} MiB, peak (VmHWM) {:.1} MiB (target < \
         {TARGET_PEAK_MIB:.0} MiB); {} records appended to the trail during the flood, {} \
         logins refused by the per-client limit",
        sources.label(),
        o.idle_mib,
        o.peak_mib,
        o.records_appended,
        o.client_refusals
    );
    eprintln!(
        "login-flood ({}): legitimate logins during the flood: {} of {} succeeded; answers {}; \
         latency of all attempts p50 {:.1} ms, p99 {:.1} ms; of the successes p50 {:.1} ms, \
         p99 {:.1} ms; before the flood p50 {:.1} ms, p99 {:.1} ms",
        sources.label(),
        legit_ok.len(),
        o.legit.len(),
        answer_list(&legit_answers),
        quantile_ms(&all, 0.5),
        quantile_ms(&all, 0.99),
        quantile_ms(&legit_ok, 0.5),
        quantile_ms(&legit_ok, 0.99),
        quantile_ms(&o.baseline, 0.5),
        quantile_ms(&o.baseline, 0.99),
    );
    eprintln!(
        "login-flood ({}): newcomer (each attempt from a new address): {} of {} succeeded; \
         answers {}",
        sources.label(),
        o.newcomer.iter().filter(|(s, _)| *s == 200).count(),
        o.newcomer.len(),
        answer_list(&count_answers(&o.newcomer)),
    );
}

/// `answers` counted by status and code.
fn count_answers(answers: &[(u16, String)]) -> BTreeMap<(u16, String), u64> {
    let mut counts = BTreeMap::new();
    for (status, code) in answers {
        *counts.entry((*status, code.clone())).or_insert(0) += 1;
    }
    counts
}

fn rows_of(sources: Sources, attackers: usize, seconds: u64, o: &Outcome) -> Vec<Row> {
    let total: u64 = o.answers.values().sum();
    let ok: Vec<Duration> = o
        .legit
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, d)| *d)
        .collect();
    let others = o.legit.len() - ok.len();
    let newcomer_ok = o.newcomer.iter().filter(|(s, _)| *s == 200).count();
    let (memory_path, legit_path) = match sources {
        Sources::Many => (
            "login flood from many addresses: relay peak RSS (MiB)",
            "login flood from many addresses: legitimate logins during it",
        ),
        Sources::One => (
            "login flood from one address: relay peak RSS (MiB)",
            "login flood from one address: legitimate logins during it",
        ),
    };
    vec![
        Row {
            path: memory_path,
            ours: format!(
                "peak RSS {:.1} MiB with {attackers} bogus logins in flight for {seconds} s \
                 ({total} answered: {}; {} records appended)",
                o.peak_mib,
                answer_list(&o.answers),
                o.records_appended
            ),
            baseline: format!("idle RSS {:.1} MiB before the flood", o.idle_mib),
            ratio: format!("+{:.1} MiB", o.peak_mib - o.idle_mib),
        },
        Row {
            path: legit_path,
            ours: format!(
                "**{} of {}** succeeded, p50 {:.1} ms, p99 {:.1} ms{}",
                ok.len(),
                o.legit.len(),
                quantile_ms(&ok, 0.5),
                quantile_ms(&ok, 0.99),
                if others > 0 {
                    let failed: Vec<(u16, String)> = o
                        .legit
                        .iter()
                        .filter(|(s, _, _)| *s != 200)
                        .map(|(s, c, _)| (*s, c.clone()))
                        .collect();
                    format!(
                        " ({others} answered otherwise: {})",
                        answer_list(&count_answers(&failed))
                    )
                } else {
                    String::new()
                }
            ) + &format!(
                "; a newcomer (a new address each time): {newcomer_ok} of {} ({})",
                o.newcomer.len(),
                answer_list(&count_answers(&o.newcomer))
            ),
            baseline: format!(
                "p50 {:.1} ms, p99 {:.1} ms with no flood ({BASELINE_LOGINS} logins)",
                quantile_ms(&o.baseline, 0.5),
                quantile_ms(&o.baseline, 0.99)
            ),
            ratio: format!(
                "{:.1}x the p50",
                quantile_ms(&ok, 0.5) / quantile_ms(&o.baseline, 0.5)
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_addresses_never_use_127_0_0_x_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..200_000 {
            let a = Sources::Many.address(k);
            let [first, second, _, last] = a.octets();
            assert_eq!(first, 127);
            assert_ne!(second, 0, "{a}");
            assert_ne!(last, 0, "{a}");
            assert_ne!(last, 255, "{a}");
            assert!(seen.insert(a), "{a} twice");
        }
        assert_eq!(Sources::One.address(7), ONE_ATTACKER);
    }
}
