//! `relay-bench export`: a sealed export of an N-record SQLite trail, then the offline verifier
//! on the package as a child process, with its wall time and peak RSS (VmHWM, polled from
//! /proc while it runs). Baselines: reading the same trail from the store, and `sha256sum`-like
//! hashing of the package bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_domain::export::{ExportFilter, GeneratedBy};
use relay_domain::ports::{RecordStore, RecordStoreExt, TimeSource};
use relay_domain::{Actor, ActorSource, AppendService, Device, KeyRing};
use relay_local::{FileSecretProvider, FsNotary, SystemTimeSource};
use relay_runtime::export::{ExportFormat, ExportRequest, ExportServices, export_package};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use sha2::{Digest, Sha256};

use super::cpu::{cpu_note, cpu_seconds};
use super::{Row, chain_of, fmt_rate, key, open_store, rate, trail};

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Peak RSS (VmHWM, KiB) of a running process; `None` once it is gone.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(crate) fn bench_export(
    rt: &tokio::runtime::Runtime,
    n: usize,
    format: &str,
    dir: &Path,
) -> Vec<Row> {
    let format = match format {
        "csv" => ExportFormat::Csv,
        "json" => ExportFormat::Json,
        _ => ExportFormat::Both,
    };
    eprintln!("export: storing {n} chained records in SQLite");
    let store = rt.block_on(open_store(dir, "export.db"));
    let records = chain_of(&trail(), n);
    rt.block_on(async {
        for batch in records.chunks(4096) {
            store.append(batch).await.unwrap();
        }
    });
    drop(records);

    // Baseline: reading the trail back page by page (what any export must do at least once).
    let t = Instant::now();
    let read = rt
        .block_on(store.for_each_record(&trail(), 4096, |_| true))
        .unwrap();
    let read_time = t.elapsed();
    assert_eq!(read, n as u64);

    let notary = FsNotary::open(dir.join("anchors")).unwrap();
    let secrets = FileSecretProvider::open(dir.join("secrets")).unwrap();
    let clock = SystemTimeSource::new();
    let store_dyn: Arc<dyn RecordStore> = store.clone();
    let clock_dyn: Arc<dyn TimeSource> = Arc::new(SystemTimeSource::new());
    let journal = Journal::new(
        Arc::new(AppendService::new(store_dyn, clock_dyn, key())),
        Metrics::new(),
        Device::new("bench").unwrap(),
    );
    let keys = KeyRing::single(key());
    let out = dir.join("package");
    let request = ExportRequest {
        trail: trail(),
        from_seq: None,
        to_seq: None,
        filter: ExportFilter::default(),
        format,
        out: out.clone(),
        zip: false,
        generated_by: GeneratedBy {
            actor: Actor::new("bench").unwrap(),
            actor_source: ActorSource::System,
            device: Device::new("bench").unwrap(),
        },
        access_review: None,
    };
    eprintln!("export: sealing the package");
    let cpu_before = cpu_seconds(false);
    let t = Instant::now();
    let outcome = rt
        .block_on(export_package(
            ExportServices {
                store: store.as_ref(),
                notary: &notary,
                secrets: &secrets,
                keys: &keys,
                clock: &clock,
                journal: &journal,
            },
            &request,
        ))
        .unwrap();
    let export_time = t.elapsed();
    let export_cpu = cpu_seconds(false) - cpu_before;
    assert_eq!(outcome.manifest.records, n as u64);
    let bytes = dir_bytes(&out);

    // Baseline for the verifier: SHA-256 of every package byte (the least it must do).
    let t = Instant::now();
    for e in std::fs::read_dir(&out).unwrap() {
        let mut h = Sha256::new();
        let mut f = std::fs::File::open(e.unwrap().path()).unwrap();
        std::io::copy(&mut f, &mut h).unwrap();
        std::hint::black_box(h.finalize());
    }
    let hash_time = t.elapsed();

    let mut rows = vec![Row {
        path: "sealed export, SQLite to package (records/s)",
        ours: format!(
            "{} ({n} records, {:.1} s, {:.0} MB written, {})",
            fmt_rate(rate(n, export_time), "rec/s"),
            export_time.as_secs_f64(),
            bytes as f64 / 1e6,
            cpu_note(export_cpu, export_time)
        ),
        baseline: format!(
            "{} reading the trail once ({:.1} s)",
            fmt_rate(rate(n, read_time), "rec/s"),
            read_time.as_secs_f64()
        ),
        ratio: format!(
            "{:.0}%",
            100.0 * read_time.as_secs_f64() / export_time.as_secs_f64()
        ),
    }];

    let verifier = std::env::current_exe()
        .unwrap()
        .with_file_name("relay-verify");
    if !verifier.is_file() {
        eprintln!(
            "export: {} not found; build it with `cargo build --release -p relay-verify`",
            verifier.display()
        );
        return rows;
    }
    eprintln!("export: relay-verify {}", out.display());
    let cpu_before = cpu_seconds(true);
    let (verify_time, peak) = run_verifier(&verifier, &out, &outcome.fingerprint, None);
    let verify_cpu = cpu_seconds(true) - cpu_before;
    eprintln!("export: relay-verify --threads 1 {}", out.display());
    let (one_time, one_peak) = run_verifier(&verifier, &out, &outcome.fingerprint, Some(1));
    rows.push(Row {
        path: "relay-verify of that package (records/s, peak RSS)",
        ours: format!(
            "{} ({:.1} s, peak RSS {:.1} MiB, {})",
            fmt_rate(rate(n, verify_time), "rec/s"),
            verify_time.as_secs_f64(),
            peak as f64 / 1024.0,
            cpu_note(verify_cpu, verify_time)
        ),
        baseline: format!(
            "{:.1} s SHA-256 of the {:.0} MB package",
            hash_time.as_secs_f64(),
            bytes as f64 / 1e6
        ),
        ratio: format!(
            "{:.0}%",
            100.0 * hash_time.as_secs_f64() / verify_time.as_secs_f64()
        ),
    });
    // For profiling relay-verify afterwards: RELAY_BENCH_KEEP_PACKAGE=<new dir> keeps the
    // package there (same file system as --dir).
    if let Some(keep) = std::env::var_os("RELAY_BENCH_KEEP_PACKAGE") {
        match std::fs::rename(&out, &keep) {
            Ok(()) => eprintln!("export: package kept in {}", keep.to_string_lossy()),
            Err(e) => eprintln!(
                "export: cannot keep the package in {}: {e}",
                keep.to_string_lossy()
            ),
        }
    }
    rows.push(Row {
        path: "relay-verify of that package on one thread (--threads 1)",
        ours: format!(
            "{} ({:.1} s, peak RSS {:.1} MiB)",
            fmt_rate(rate(n, one_time), "rec/s"),
            one_time.as_secs_f64(),
            one_peak as f64 / 1024.0
        ),
        baseline: format!(
            "{:.1} s with every core ({} threads)",
            verify_time.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        ),
        ratio: format!(
            "{:.2}x faster with every core",
            one_time.as_secs_f64() / verify_time.as_secs_f64()
        ),
    });
    rows
}

/// Runs `relay-verify` on the package at `out` (pinned to `fingerprint`, on `threads` or the
/// default), asserting it says VERIFIED; returns its wall time and peak RSS in KiB (VmHWM
/// polled every 5 ms).
fn run_verifier(
    verifier: &std::path::Path,
    out: &std::path::Path,
    fingerprint: &str,
    threads: Option<usize>,
) -> (Duration, u64) {
    let t = Instant::now();
    let mut command = std::process::Command::new(verifier);
    command.arg(out).args(["--expect-fingerprint", fingerprint]);
    if let Some(n) = threads {
        command.args(["--threads", &n.to_string()]);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0u64;
    loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out_put = child.wait_with_output().unwrap();
    let elapsed = t.elapsed();
    let stdout = String::from_utf8_lossy(&out_put.stdout);
    assert!(out_put.status.success(), "relay-verify failed:\n{stdout}");
    assert!(stdout.contains("VERDICT: VERIFIED"), "{stdout}");
    (elapsed, peak)
}
