//! `relay-verify`: the auditor's offline verifier of sealed export packages.
//!
//! It needs no access to the relay and no secret: it re-checks every digest, the Ed25519 seal,
//! the chain links (and the HMACs when given the trail key file), the Merkle proofs, the
//! renderings, and that the exported head is covered by the notary anchors.
//!
//! Exit codes: 0 everything holds; 1 a check failed (the report names file, row and check);
//! 2 the input is unusable (not a package, unreadable manifest, I/O error, bad arguments).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod package;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use relay_domain::export::{PackageReport, VerifyOptions, verify_package};

use crate::package::{Package, PackageReadError};

/// Verify a GIMS Compliance Relay export package offline.
///
/// `relay-verify PACKAGE` checks a package directory or zip and prints what was checked and
/// the verdict. `relay-verify proof --package P --seq N` proves one record's inclusion in the
/// notarized trail head.
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
    /// The seal key fingerprint you expect (from the relay's `_relay` trail / STARTUP event).
    #[arg(long, value_name = "FP")]
    expect_fingerprint: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Proof(args)) => run_proof(&args),
        None => run_verify(&cli.verify),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
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

fn run_verify(args: &VerifyArgs) -> Result<bool, CliError> {
    let path = args
        .package
        .as_deref()
        .ok_or_else(|| CliError::Usage("no PACKAGE given (see --help)".into()))?;
    let keys = args
        .key_file
        .as_deref()
        .map(package::read_key_file)
        .transpose()?;
    let package = Package::open(path)?;
    let inputs = package.inputs()?;
    let options = VerifyOptions {
        keys: keys.as_ref(),
        expect_fingerprint: args.expect_fingerprint.as_deref(),
    };
    let report = verify_package(inputs, &options)?;
    if args.json {
        println!("{}", report_json(path, &report));
    } else {
        print_report(path, &report, args.expect_fingerprint.is_some());
    }
    Ok(report.holds())
}

fn print_report(path: &Path, report: &PackageReport, pinned: bool) {
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
    println!();
    for p in &report.passed {
        println!("  ok    {:<14} {}", p.check, p.detail);
    }
    for f in &report.findings {
        println!("  FAIL  {f}");
    }
    println!();
    if report.holds() {
        println!(
            "VERDICT: VERIFIED. {} records, sealed by {}.",
            report.records, report.fingerprint
        );
        if !pinned {
            println!(
                "Compare the seal key fingerprint {} with the relay's published one \
                 (STARTUP event in its _relay trail), or pass --expect-fingerprint.",
                report.fingerprint
            );
        }
    } else {
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
}

fn report_json(path: &Path, report: &PackageReport) -> serde_json::Value {
    serde_json::json!({
        "package": path.display().to_string(),
        "verified": report.holds(),
        "trail_id": report.manifest.trail_id,
        "range": report.manifest.range,
        "head": report.manifest.head,
        "records": report.records,
        "hmac_checked": report.hmac_checked,
        "seal_fingerprint": report.fingerprint,
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
