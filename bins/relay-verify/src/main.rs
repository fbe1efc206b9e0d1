//! `relay-verify`: the auditor's offline verifier of sealed export packages.
//!
//! It needs no access to the relay and no secret: it re-checks every digest, the Ed25519 seal,
//! the chain links (and the HMACs when given the trail key file), the Merkle proofs, the
//! renderings, and that the exported head is covered by the notary anchors.
//!
//! Exit codes: 0 every check held and the seal key is pinned (`--expect-fingerprint` or
//! `--trust-file`); 1 a check failed (the report names file, row and check), including a seal key
//! that is not a pinned one; 2 the input is unusable (not a package, unreadable manifest or trust
//! file, I/O error, bad arguments); 3 every check held but no pin was given, so the package is
//! intact but its origin is not established (anyone can seal with a key of their own).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod package;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use relay_domain::export::{
    Origin, PackageReport, PinnedKey, Verdict, VerifyOptions, parse_trust_file, verify_package,
};

use crate::package::{Package, PackageReadError};

/// Verify a GIMS Compliance Relay export package offline.
///
/// `relay-verify PACKAGE --trust-file FILE` checks a package directory or zip and prints what was
/// checked and the verdict. `relay-verify proof --package P --seq N` proves one record's
/// inclusion in the notarized trail head.
///
/// Exit codes: 0 VERIFIED (every check held and the seal key is pinned); 1 NOT VERIFIED (a check
/// failed, or the seal key is not a pinned one); 2 unusable input; 3 INTACT, ORIGIN NOT PINNED
/// (every check held but no --expect-fingerprint / --trust-file was given).
#[derive(Debug, Parser)]
#[command(
    name = "relay-verify",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    verify: VerifyArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prove that the record with chain_seq N is included in the trail head's Merkle tree.
    Proof(ProofArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The package: a directory or a .zip file.
    #[arg(value_name = "PACKAGE")]
    package: Option<PathBuf>,
    /// The trail key file (the relay's `secrets/trail-hmac.json`), to recompute every HMAC.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Pin the seal key: its fingerprint (32 hex) or public key (64 hex), from the relay's
    /// `_relay` trail STARTUP event (`export_seal`). Repeatable.
    #[arg(long, value_name = "FP")]
    expect_fingerprint: Vec<String>,
    /// Pin the seal keys listed in a trust file (`gims-relay-trust-v1`: the format line, then
    /// one fingerprint or public key per line with an optional label; `#` comments). Repeatable.
    #[arg(long, value_name = "FILE")]
    trust_file: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Threads for checking records (parsing, canonical layout, hashes, HMACs, renderings);
    /// the report is the same for any number. Default: the machine's cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
}

#[derive(Debug, Args)]
struct ProofArgs {
    /// The package: a directory or a .zip file.
    #[arg(long, value_name = "P")]
    package: PathBuf,
    /// The record's chain_seq.
    #[arg(long, value_name = "N")]
    seq: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Unusable input: exit code 2.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Read(#[from] PackageReadError),
    #[error(transparent)]
    Package(#[from] relay_domain::export::PackageError),
    #[error("trust file {path}: {source}")]
    Trust {
        path: PathBuf,
        source: relay_domain::export::TrustError,
    },
    #[error("cannot read trust file {path}")]
    TrustIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--expect-fingerprint: {0}")]
    Pin(relay_domain::export::TrustError),
}

/// What a run concluded, mapped to the exit code.
enum Outcome {
    Verified,
    Failed,
    IntactUnpinned,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Proof(args)) => run_proof(&args).map(|included| match included {
            true => Outcome::Verified,
            false => Outcome::Failed,
        }),
        None => run_verify(&cli.verify),
    };
    match result {
        Ok(Outcome::Verified) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::IntactUnpinned) => ExitCode::from(3),
        Err(e) => {
            eprintln!("relay-verify: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(2)
        }
    }
}

fn read_pins(args: &VerifyArgs) -> Result<Vec<PinnedKey>, CliError> {
    let mut pins = Vec::new();
    for fp in &args.expect_fingerprint {
        pins.push(PinnedKey::parse(fp, "--expect-fingerprint").map_err(CliError::Pin)?);
    }
    for path in &args.trust_file {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(
                        f,
                        relay_domain::export::trust::MAX_TRUST_FILE_BYTES as u64 + 1,
                    ),
                    &mut bytes,
                )
            })
            .map_err(|source| CliError::TrustIo {
                path: path.clone(),
                source,
            })?;
        pins.extend(parse_trust_file(&bytes).map_err(|source| CliError::Trust {
            path: path.clone(),
            source,
        })?);
    }
    Ok(pins)
}

fn run_verify(args: &VerifyArgs) -> Result<Outcome, CliError> {
    let path = args
        .package
        .as_deref()
        .ok_or_else(|| CliError::Usage("no PACKAGE given (see --help)".into()))?;
    let keys = args
        .key_file
        .as_deref()
        .map(package::read_key_file)
        .transpose()?;
    let pins = read_pins(args)?;
    let package = Package::open(path)?;
    let inputs = package.inputs()?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    let options = VerifyOptions {
        keys: keys.as_ref(),
        expect_fingerprint: None,
        threads,
    };
    let mut report = verify_package(inputs, &options)?;
    report.pin(&pins);
    if args.json {
        println!("{}", report_json(path, &report));
    } else {
        print_report(path, &report);
    }
    Ok(match report.verdict() {
        Verdict::Verified => Outcome::Verified,
        Verdict::IntactUnpinned => Outcome::IntactUnpinned,
        Verdict::NotVerified => Outcome::Failed,
    })
}

fn print_report(path: &Path, report: &PackageReport) {
    let m = &report.manifest;
    println!("Package   {}", path.display());
    println!(
        "Trail     {}  chain_seq {}..={}  head {} ({})",
        m.trail_id, m.range.from_seq, m.range.to_seq, m.head.seq, m.head.checksum
    );
    let filter = match (&m.filter.project, &m.filter.kind) {
        (None, None) => "none".to_owned(),
        (p, k) => format!(
            "project={} kind={}",
            p.as_ref().map_or("*", |p| p.as_str()),
            k.as_ref().map_or("*", |k| k.as_str())
        ),
    };
    println!("Filter    {filter}");
    println!(
        "Generated {} ({}) by {} ({}) on {}, relay {}",
        m.generated_at,
        m.time_source,
        m.generated_by.actor,
        m.generated_by.actor_source,
        m.generated_by.device,
        m.relay_version
    );
    println!("Seal key  {}", report.fingerprint);
    println!(
        "Records   {} read, {} in the manifest; HMACs {}",
        report.records,
        m.records,
        if report.hmac_checked {
            "recomputed with the trail key"
        } else {
            "not checked (no --key-file): links, Merkle tree and anchors only"
        }
    );
    if let Some(r) = &report.receipts {
        println!(
            "Receipts  {} records with a time of receipt on the server of record; {} received \
             late{}",
            r.receipts,
            r.late,
            r.late_after_secs
                .map(|t| format!(" (more than {t} s after they were recorded)"))
                .unwrap_or_default()
        );
    }
    println!();
    for p in &report.passed {
        println!("  ok    {:<14} {}", p.check, p.detail);
    }
    for f in &report.findings {
        println!("  FAIL  {f}");
    }
    println!();
    match (report.verdict(), &report.origin) {
        (Verdict::Verified, Origin::Pinned(pin)) => println!(
            "VERDICT: VERIFIED. {} records, sealed by the pinned key {pin}.",
            report.records
        ),
        (Verdict::Verified | Verdict::IntactUnpinned, _) => {
            println!(
                "VERDICT: INTACT, ORIGIN NOT PINNED. {} records; every check held, but the seal \
                 key {} is not pinned, and anyone can seal a package with a key of their own.",
                report.records, report.fingerprint
            );
            println!(
                "Pin the relay's published seal key (STARTUP event of its _relay trail, \
                 `export_seal`): --expect-fingerprint FP or --trust-file FILE (exit 3 until then)."
            );
        }
        (Verdict::NotVerified, _) => print_failed(report),
    }
}

fn print_failed(report: &PackageReport) {
    println!(
        "VERDICT: NOT VERIFIED. {} check(s) failed; the first: {}",
        report.findings.len(),
        report
            .findings
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
}

fn report_json(path: &Path, report: &PackageReport) -> serde_json::Value {
    serde_json::json!({
        "package": path.display().to_string(),
        "verified": report.verdict() == Verdict::Verified,
        "intact": report.holds(),
        "verdict": match report.verdict() {
            Verdict::Verified => "verified",
            Verdict::IntactUnpinned => "intact_origin_not_pinned",
            Verdict::NotVerified => "not_verified",
        },
        "pinned_by": match &report.origin {
            Origin::Pinned(pin) => Some(pin.as_str()),
            Origin::Unpinned => None,
        },
        "trail_id": report.manifest.trail_id,
        "range": report.manifest.range,
        "head": report.manifest.head,
        "records": report.records,
        "hmac_checked": report.hmac_checked,
        "receipts": report.receipts.map(|r| serde_json::json!({
            "records": r.receipts, "late": r.late, "late_after_secs": r.late_after_secs,
        })),
        "seal_fingerprint": report.fingerprint,
        "seal_public_key": report.seal_public_key,
        "passed": report.passed.iter().map(|p| serde_json::json!({"check": p.check, "detail": p.detail})).collect::<Vec<_>>(),
        "failures": report.findings.iter().map(|f| serde_json::json!({
            "file": f.file, "row": f.row, "seq": f.seq, "check": f.check, "detail": f.detail,
        })).collect::<Vec<_>>(),
    })
}

fn run_proof(args: &ProofArgs) -> Result<bool, CliError> {
    let package = Package::open(&args.package)?;
    let outcome = package::prove_one(&package, args.seq)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "seq": args.seq,
                "included": outcome.included,
                "leaf_hash": outcome.leaf.map(|l| l.to_hex()),
                "tree_size": outcome.tree_size,
                "root": outcome.root.to_hex(),
                "path_length": outcome.path_length,
                "detail": outcome.detail,
            })
        );
    } else if outcome.included {
        println!(
            "INCLUDED: chain_seq {} (leaf {}) is in the tree of {} records with root {} ({} hashes on the audit path); {}",
            args.seq,
            outcome.leaf.map(|l| l.to_hex()).unwrap_or_default(),
            outcome.tree_size,
            outcome.root,
            outcome.path_length,
            outcome.detail
        );
    } else {
        println!("NOT PROVEN: chain_seq {}: {}", args.seq, outcome.detail);
    }
    Ok(outcome.included)
}
