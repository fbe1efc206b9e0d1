//! `relay-edge`: the GIMS Compliance Relay on an instrument workstation.
//!
//! A thin binary: it parses arguments and configuration, builds the local adapters and hands
//! them to `relay-runtime`. Exit codes: 0 success, 1 a trail failed verification, 2 usage,
//! configuration or I/O error.
//!
//! Why this file is long (~880 lines): it is the clap definition of every command with its
//! `--help` text and the dispatch to `relay-node`; no behaviour lives here.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// Doc comments on the CLI types are `--help` text, where `<data-dir>` means a placeholder.
#![allow(rustdoc::invalid_html_tags)]

mod access_review_cli;
mod config;
mod custody_cli;
mod enroll_cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use relay_domain::{Device, Project, TrailId};
use relay_runtime::edge::EdgeSettings;

use crate::config::{CliOverrides, EdgeConfig, LogFormat};

/// Tamper-evident capture of instrument files into an HMAC-chained audit trail.
///
/// `relay-edge run` watches folders and records every completed file (who, when, which
/// workstation, project, path, size, SHA-256) in an append-only trail under the data directory.
/// `relay-edge verify` re-checks every trail. With no configuration at all, the relay keeps its
/// data in ./relay-data and watches ./relay-data/inbox.
///
/// Configuration comes from built-in defaults, then `--config FILE` (TOML), then `RELAY_*`
/// environment variables (e.g. RELAY_DATA_DIR, RELAY_PROJECT, RELAY_SETTLE_MS), then flags.
#[derive(Debug, Parser)]
#[command(name = "relay-edge", version = relay_runtime::build_info::LONG_VERSION, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch folders and capture completed files until SIGINT/SIGTERM.
    ///
    /// On start-up the relay records its posture (version, mode, time source, key id, notary) in
    /// the `_relay` trail, rescans the watched folders for anything missed while it was down,
    /// then captures each file once its size and modification time have been stable for the
    /// settle window. On SIGINT/SIGTERM it stops watching, finishes captures in flight, records
    /// its shutdown and closes the store.
    Run(RunArgs),
    /// Verify every trail (or one): chain links, HMACs, and notary anchors.
    ///
    /// Prints one verdict line per trail. Exit code 0 when all hold, 1 when any is broken (the
    /// first bad chain_seq is named) or the database file itself is damaged (`DAMAGED`, from
    /// SQLite's quick_check), 2 on usage or I/O errors.
    Verify(VerifyArgs),
    /// Write a sealed export package of a trail (R5) for an auditor.
    ///
    /// The package holds records.jsonl (the records exactly as chained), records.csv and/or
    /// records.json (human-readable, with signature manifestations), anchors.json, proofs.jsonl
    /// (partial exports) and manifest.json, sealed with the relay's Ed25519 export key. The
    /// trail is verified first, its head is notarized if no anchor covers it yet, and the export
    /// is recorded as an EXPORT event in the _relay trail. Check it with `relay-verify PACKAGE`.
    Export(ExportArgs),
    /// Enroll this workstation with a server of record, using a one-time code from its admin
    /// (`relay-server enroll-code --edge <this device>` or the Fleet page).
    ///
    /// Sends every version of this edge's trail key over TLS (plain http only to a loopback
    /// address; `--ca-file` for a private CA), stores the ingest token the server returns in
    /// this edge's secret provider (`forward-token`), remembers the server in
    /// <data_dir>/enrollment.json (used when `forward_url` is not configured) and records
    /// ENROLLED in `_relay`. Restart `relay-edge run` to start forwarding. Later key rotations
    /// reach the server by themselves. Exit 0 enrolled, 1 refused by the server, 2 other errors.
    Enroll(EnrollArgs),
    /// Manage the trail HMAC keys (R1.3): `keys list`, `keys rotate`.
    ///
    /// `rotate` adds a new key version with a new key_id and makes it current; every older key
    /// stays in the secret provider, so records signed under it keep verifying. The rotation is
    /// recorded as a KEY_ROTATED event in the _relay trail. A running `relay-edge run` keeps
    /// signing with the key it started with until it is restarted.
    Keys(KeysArgs),
    /// Installation and operational qualification (IQ/OQ) of this installation.
    ///
    /// Checks version, configuration, data directory and secret file permissions, the store's
    /// append-only triggers, the notary's WORM posture, time posture and keys (IQ); runs append,
    /// tamper detection, signature, export + offline verification and a notary round trip in a
    /// scratch copy, and verifies every installed trail read-only (OQ). Writes
    /// qualification-<UTC>.md and .json into --out and records one QUALIFICATION event in _relay.
    /// Exit code 0 when no check failed, 1 when one did, 2 when it could not run.
    Qualify(QualifyArgs),
    /// Edge -> server forwarding (R8): `forward status` prints, per trail, the local head, the
    /// seq the server acknowledged, the lag and the state (active, in sync, POISONED);
    /// `forward resume` clears a poisoned trail once the server accepts its refused batch.
    Forward(ForwardArgs),
    /// Online backup of the data directory (while `run` keeps capturing).
    ///
    /// Writes into --out (created; refused when it exists and is not empty): relay.db as of one
    /// instant (SQLite VACUUM INTO), the notary anchors, and manifest.json with the record count
    /// and head of every trail and the SHA-256 of every file. Keys are NOT copied unless
    /// --include-secrets is given: store such a backup like the keys themselves.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory, verified before it is put in place.
    ///
    /// Refuses a non-empty --data-dir. Checks every file against the manifest, assembles the
    /// data directory beside the target, verifies every trail (chain, HMACs, anchors), compares
    /// counts and heads with the manifest and only then moves it into place; prints the
    /// restored heads. With --anchors-from (the installation's current anchors), reports any
    /// trail the notary anchored beyond the restored head (exit code 1: the restore is older
    /// than the notary). Exit codes: 0 restored, 1 restored but older than the anchors or
    /// verification failed, 2 usage or I/O error.
    Restore(RestoreArgs),
    /// Upgrade check (Annex 11 §7.4): `record` the count and head of every trail before an
    /// upgrade, `compare` after; exit code 1 on any difference.
    ///
    /// Run `record` with the old binary after stopping the relay, replace the binary, run
    /// `compare` with the new one (its schema migration runs first) before starting the relay.
    UpgradeCheck(UpgradeCheckArgs),
    /// The periodic access review (21 CFR 11.10(d), 11.300(b)) an inspector asks for.
    ///
    /// Prints every account with its role, status (enabled, disabled, locked), who created it
    /// and when (and how: first admin, the bootstrap second admin, by an admin, four-eyes),
    /// last login, last password change, failed logins since the previous review, its role
    /// history from the chained REGISTER / ACCOUNT_CHANGED events (with the four-eyes change
    /// and its reason), and flags (bootstrap_second_admin, never_logged_in, password_expired,
    /// temporary_password, locked, disabled, not_chained, row_disagrees_with_trail), then the
    /// review's SHA-256 digest. Read-only, safe while `run` is running.
    ///
    /// With --export DIR, the review is sealed into an export package of the _relay trail
    /// (access_review.json next to the records, listed in the signed manifest) and recorded as
    /// an EXPORT event; check it with `relay-verify DIR`. Completing the review (the reviewer's
    /// signature, ACCESS_REVIEWED) is done in the UI or `POST /api/v1/access-review/complete`.
    /// Exit code 0, or 2 when the data directory cannot be read.
    AccessReview(AccessReviewArgs),
}

#[derive(Debug, Args)]
struct AccessReviewArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Print the review as JSON (the format of access_review.json) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also seal the review into an export package of _relay in this directory (or, with
    /// --zip, this zip file).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// With --export: write one zip file instead of a directory.
    #[arg(long, requires = "export")]
    zip: bool,
}

#[derive(Debug, Args)]
struct BackupArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The backup directory to create.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also copy the secret key files (trail HMAC keys, seal key, tokens). Anyone holding such
    /// a backup can forge records: keep it as protected as the keys.
    #[arg(long)]
    include_secrets: bool,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup directory (written by `relay-edge backup`).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The data directory to restore into (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The secrets directory to verify and run with, for a backup taken without
    /// --include-secrets (e.g. the installation's <data-dir>/secrets or a key escrow copy).
    #[arg(long, value_name = "DIR")]
    secrets_from: Option<PathBuf>,
    /// The installation's current anchors directory (<data-dir>/anchors or a copy of the
    /// notary), to report a restore older than what the notary has seen.
    #[arg(long, value_name = "DIR")]
    anchors_from: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct UpgradeCheckArgs {
    #[command(subcommand)]
    action: UpgradeCheckAction,
}

#[derive(Debug, Subcommand)]
enum UpgradeCheckAction {
    /// Record every trail's count and head into FILE (refuses to overwrite it).
    Record {
        #[command(flatten)]
        common: CommonArgs,
        /// The state file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Compare every trail's count and head with FILE; exit code 1 on any difference.
    Compare {
        #[command(flatten)]
        common: CommonArgs,
        /// The state file written by `record`.
        #[arg(long = "with", value_name = "FILE")]
        with: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ForwardArgs {
    #[command(subcommand)]
    action: ForwardAction,
}

#[derive(Debug, Subcommand)]
enum ForwardAction {
    /// Per trail: local head, server acked seq, lag, state.
    Status {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Clear the poison of a trail after its cause was fixed.
    ///
    /// Sends the dead-lettered batch to the server again (forward_url, forward_token and
    /// forward_ca_file of the configuration). Only if the server now accepts it is the poison
    /// cleared and a FORWARD_RESUMED event recorded in _relay with the OS user running this
    /// command and the reason; a running relay-edge takes the trail up again on its own.
    /// While the server still refuses the batch, nothing changes (exit code 1).
    Resume {
        #[command(flatten)]
        common: CommonArgs,
        /// The poisoned trail.
        #[arg(long, value_name = "ID")]
        trail: String,
        /// Why forwarding may resume (the fix that was made); recorded in the event.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Args)]
struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// List every trail key id, oldest first; the last one is current.
    List(CommonArgs),
    /// Add a new trail key and make it current; older keys stay verifiable.
    Rotate(CommonArgs),
}

#[derive(Debug, Args)]
struct EnrollArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The server of record's base URL, e.g. `https://relay-server.lab:8471`.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The one-time enrollment code (or RELAY_ENROLL_CODE, which keeps it out of the shell
    /// history).
    #[arg(long, env = "RELAY_ENROLL_CODE", hide_env_values = true)]
    code: String,
    /// PEM of a private CA that signed the server's certificate (the OS roots are trusted too).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The package directory to create (or, with --zip, the zip file).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Which human-readable renderings to write.
    #[arg(long, value_enum, default_value = "both")]
    format: ExportFormatArg,
    /// The trail to export. Default: the configured trail or device id.
    #[arg(long, value_name = "ID")]
    trail: Option<String>,
    /// First chain_seq (default 1).
    #[arg(long, value_name = "N")]
    from_seq: Option<u64>,
    /// Last chain_seq (default: the head).
    #[arg(long, value_name = "M")]
    to_seq: Option<u64>,
    /// Only records of this project (a filtered export carries Merkle proofs).
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// Only records of this kind (e.g. FILE_CREATED).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Write one zip file instead of a directory.
    #[arg(long)]
    zip: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormatArg {
    Csv,
    Json,
    Both,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, keys, anchors). Default: ./relay-data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Folder to watch recursively (repeatable). Default: <data-dir>/inbox.
    #[arg(long, value_name = "DIR")]
    watch: Vec<PathBuf>,
    /// Project recorded on captured files.
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// Workstation id. Default: the host name.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Trail captured files go to. Default: the device id.
    #[arg(long, value_name = "ID")]
    trail: Option<String>,
    /// HTTP listener for /healthz and /metrics. Default: 127.0.0.1:8470.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Settle window in milliseconds. Default: 2000.
    #[arg(long, value_name = "MS")]
    settle_ms: Option<u64>,
}

#[derive(Debug, Args)]
struct QualifyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Directory the report files are written to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Workstation id recorded on the QUALIFICATION event. Default: the configured device.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// The release's SHA256SUMS file: IQ-01 fails unless this binary's SHA-256 is listed in it.
    #[arg(long, value_name = "FILE")]
    release_sums: Option<PathBuf>,
    /// JUnit XML of the test run (`cargo nextest run` writes target/nextest/default/junit.xml):
    /// the report's traceability matrix shows each test's result from it. Without it every
    /// test is reported as not run.
    #[arg(long, value_name = "FILE")]
    test_results: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Verify only this trail.
    #[arg(long, value_name = "ID")]
    trail: Option<String>,
}

/// A failure that ends the process with exit code 2.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("invalid {what} {value:?}: {source}")]
    BadValue {
        what: &'static str,
        value: String,
        #[source]
        source: relay_domain::IdError,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Edge(#[from] relay_runtime::edge::EdgeError),
    #[error(transparent)]
    Verify(#[from] relay_node::edge::EdgeVerifyError),
    #[error(transparent)]
    Export(#[from] relay_node::export::DataDirExportError),
    #[error(transparent)]
    Keys(#[from] relay_runtime::keys::KeysError),
    #[error(transparent)]
    Qualify(#[from] relay_node::qualify::QualifyError),
    #[error("cannot describe the configuration: {0}")]
    DescribeConfig(#[source] serde_json::Error),
    #[error(transparent)]
    Backup(#[from] relay_node::backup::BackupError),
    #[error(transparent)]
    CustodyState(#[from] relay_runtime::custody::CustodyStateError),
    #[error(transparent)]
    Resume(#[from] relay_runtime::forward_resume::ResumeError),
    #[error(transparent)]
    AccessReview(#[from] relay_node::access_review::AccessReviewError),
    #[error("cannot render the access review as JSON")]
    ReviewJson(#[source] serde_json::Error),
    #[error("cannot read the forwarding state of {path}")]
    ForwardStatus {
        path: std::path::PathBuf,
        #[source]
        source: relay_runtime::forwarder::ForwardStatusError,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("relay-edge: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    match cli.command {
        Command::Run(args) => {
            let overrides = CliOverrides {
                data_dir: args.common.data_dir,
                watch: args.watch,
                project: args.project,
                device: args.device,
                trail: args.trail,
                listen: args.listen,
                settle_ms: args.settle_ms,
                log_format: args.common.log_format,
            };
            let config = config::load(args.common.config.as_deref(), &overrides)?;
            init_logging(config.log_format);
            let mut settings = edge_settings(&config)?;
            for weaker in settings.api.weakened_identity_settings() {
                tracing::warn!("IDENTITY SETTING WEAKER THAN THE DEFAULT: {weaker}");
            }
            runtime.block_on(async {
                if config.time_source == config::TimeSourceKind::Ntp {
                    let ntp = relay_ntp::NtpTimeSource::start(
                        relay_ntp::NtpConfig::new(config.ntp_servers.clone())
                            .poll_interval(Duration::from_secs(config.ntp_poll_secs))
                            .step_threshold(Duration::from_millis(config.ntp_step_threshold_ms)),
                    )
                    .await;
                    settings.clock = Some(std::sync::Arc::new(ntp));
                }
                let edge = relay_node::edge::start(settings, secret_backend(&config)).await?;
                edge.run_until_signal().await?;
                Ok::<_, CliError>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Forward(ForwardArgs {
            action:
                ForwardAction::Resume {
                    common,
                    trail,
                    reason,
                },
        }) => run_forward_resume(&runtime, common, trail, reason),
        Command::Backup(args) => custody_cli::backup(&runtime, args),
        Command::Restore(args) => custody_cli::restore(&runtime, args),
        Command::UpgradeCheck(args) => custody_cli::upgrade_check(&runtime, args.action),
        Command::Forward(ForwardArgs {
            action: ForwardAction::Status { common },
        }) => {
            let config = load_common(common)?;
            let rows = runtime
                .block_on(relay_node::edge::forward_status_of_data_dir(
                    &config.data_dir,
                ))
                .map_err(|source| CliError::ForwardStatus {
                    path: config.data_dir.clone(),
                    source,
                })?;
            println!(
                "{:<32} {:>12} {:>12} {:>10}  state",
                "trail", "local head", "acked", "lag"
            );
            for r in &rows {
                println!(
                    "{:<32} {:>12} {:>12} {:>10}  {}",
                    r.trail_id.as_str(),
                    r.local_head,
                    r.acked_seq,
                    r.lag,
                    r.state
                );
            }
            if rows.is_empty() {
                println!("no capture trails");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let overrides = CliOverrides {
                data_dir: args.common.data_dir,
                log_format: args.common.log_format,
                ..Default::default()
            };
            let config = config::load(args.common.config.as_deref(), &overrides)?;
            init_logging(config.log_format);
            let trail = args
                .trail
                .map(|t| parse("trail", t, TrailId::new))
                .transpose()?;
            let report = match runtime.block_on(relay_node::edge::verify_data_dir(
                &config.data_dir,
                trail.as_ref(),
            )) {
                Ok(report) => report,
                // A damaged store file is an integrity failure like a broken chain: exit 1.
                Err(relay_node::edge::EdgeVerifyError::Damaged { path, message }) => {
                    println!("DAMAGED {}: {message}", path.display());
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(e.into()),
            };
            for line in relay_runtime::verify::report_lines(&report) {
                println!("{line}");
            }
            // The witnesses: the notary's anchors and, when forwarding is configured, the
            // server of record's heads of this edge's trails.
            let witness = runtime.block_on(relay_node::edge::witness_data_dir(
                &config.data_dir,
                trail.as_ref(),
                forward_settings(&config),
            ))?;
            for line in relay_runtime::witness::lines(&witness) {
                println!("{line}");
            }
            // The account rows against the chained account events of _relay.
            let rows_hold = match &trail {
                Some(t) if !t.is_relay() => true,
                _ => {
                    let (disagreements, unreadable) = runtime.block_on(
                        relay_node::access_review::account_rows_data_dir(&config.data_dir),
                    )?;
                    for d in &disagreements {
                        println!("ACCOUNT ROW DISAGREES {d}");
                    }
                    for (seq, why) in &unreadable {
                        println!("ACCOUNT EVENT UNREADABLE _relay#{seq}: {why}");
                    }
                    if disagreements.is_empty() && unreadable.is_empty() {
                        println!(
                            "OK      account rows: every row agrees with the chained account events of _relay"
                        );
                    }
                    disagreements.is_empty()
                }
            };
            Ok(if report.all_hold() && witness.holds() && rows_hold {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Export(args) => {
            let overrides = CliOverrides {
                data_dir: args.common.data_dir.clone(),
                log_format: args.common.log_format,
                trail: args.trail.clone(),
                ..Default::default()
            };
            let config = config::load(args.common.config.as_deref(), &overrides)?;
            init_logging(config.log_format);
            run_export(&runtime, &config, args)
        }
        Command::Keys(args) => run_keys(&runtime, args.action),
        Command::Enroll(args) => enroll_cli::enroll(&runtime, args),
        Command::Qualify(args) => run_qualify(&runtime, args),
        Command::AccessReview(args) => access_review_cli::access_review(&runtime, args),
    }
}

fn run_export(
    runtime: &tokio::runtime::Runtime,
    config: &EdgeConfig,
    args: ExportArgs,
) -> Result<ExitCode, CliError> {
    use relay_domain::export::{ExportFilter, GeneratedBy};
    use relay_runtime::export::{ExportFormat, ExportRequest};
    let device = parse(
        "device",
        config.device.clone().unwrap_or_else(default_device_id),
        Device::new,
    )?;
    let trail = match &config.trail {
        Some(t) => parse("trail", t.clone(), TrailId::new)?,
        None => parse("trail", device.as_str().to_owned(), TrailId::new)?,
    };
    let seq = |what: &'static str, n: Option<u64>| {
        n.map(|n| parse(what, n.to_string(), |_| relay_domain::ChainSeq::new(n)))
            .transpose()
    };
    let actor = relay_runtime::export::resolve_exporting_user()?;
    let request = ExportRequest {
        trail,
        from_seq: seq("from-seq", args.from_seq)?,
        to_seq: seq("to-seq", args.to_seq)?,
        filter: ExportFilter {
            project: args
                .project
                .map(|p| parse("project", p, Project::new))
                .transpose()?,
            kind: args
                .kind
                .map(|k| parse("kind", k, relay_domain::EventKind::new))
                .transpose()?,
        },
        format: match args.format {
            ExportFormatArg::Csv => ExportFormat::Csv,
            ExportFormatArg::Json => ExportFormat::Json,
            ExportFormatArg::Both => ExportFormat::Both,
        },
        out: args.out,
        zip: args.zip,
        generated_by: GeneratedBy {
            actor,
            actor_source: relay_domain::ActorSource::OsSession,
            device: device.clone(),
        },
        access_review: None,
    };
    let outcome = runtime.block_on(relay_node::export::export_data_dir(
        &config.data_dir,
        device,
        &request,
    ))?;
    let m = &outcome.manifest;
    println!(
        "exported {} records of trail {} (chain_seq {}..={}, head {}) to {}",
        m.records,
        m.trail_id,
        m.range.from_seq,
        m.range.to_seq,
        m.head.seq,
        outcome.path.display()
    );
    println!("seal key fingerprint {}", outcome.fingerprint);
    println!(
        "recorded as EXPORT event _relay#{}{}",
        outcome.event.chain_seq,
        if outcome.anchored_head {
            "; the head was notarized for this export"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_forward_resume(
    runtime: &tokio::runtime::Runtime,
    common: CommonArgs,
    trail: String,
    reason: String,
) -> Result<ExitCode, CliError> {
    let config = load_common(common)?;
    let trail = parse("trail", trail, TrailId::new)?;
    let device = parse(
        "device",
        config.device.clone().unwrap_or_else(default_device_id),
        Device::new,
    )?;
    let Some(url) = config.forward_url.clone() else {
        return Err(CliError::Config(config::ConfigError::Invalid(
            "forward resume needs forward_url: the refused batch is sent to the server again"
                .into(),
        )));
    };
    let mut settings = relay_runtime::forwarder::ForwardSettings::new(
        url,
        device.as_str(),
        config.forward_token.clone().unwrap_or_default(),
    );
    settings.ca_file = config.forward_ca_file.clone();
    let operator = relay_runtime::export::resolve_exporting_user()?;
    use relay_runtime::forward_resume::ResumeError;
    match runtime.block_on(relay_node::forward::resume_data_dir_trail(
        &config.data_dir,
        settings,
        device,
        &trail,
        &operator,
        &reason,
    )) {
        Ok(o) => {
            println!(
                "resumed forwarding of trail {}: the server accepted seq {}..{} (acked {}); \
                 recorded as FORWARD_RESUMED _relay#{} by {}",
                o.trail,
                o.dead_letter.first_seq,
                o.dead_letter.last_seq,
                o.acked_seq,
                o.event_seq,
                operator.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ResumeError::StillRefused { .. } | ResumeError::NotPoisoned(_))) => {
            println!("NOT RESUMED: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

fn run_qualify(runtime: &tokio::runtime::Runtime, args: QualifyArgs) -> Result<ExitCode, CliError> {
    let overrides = CliOverrides {
        data_dir: args.common.data_dir,
        log_format: args.common.log_format,
        device: args.device,
        ..Default::default()
    };
    let config = config::load(args.common.config.as_deref(), &overrides)?;
    init_logging(config.log_format);
    let device = parse(
        "device",
        config.device.clone().unwrap_or_else(default_device_id),
        Device::new,
    )?;
    let request = relay_node::qualify::QualifyRequest {
        product: "relay-edge".into(),
        data_dir: config.data_dir.clone(),
        out_dir: args.out,
        device,
        config: serde_json::to_value(&config).map_err(CliError::DescribeConfig)?,
        release_sums: args.release_sums,
        test_results: args.test_results,
    };
    let outcome = runtime.block_on(relay_node::qualify::qualify_local(&request))?;
    println!("{}", outcome.summary());
    Ok(if outcome.report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_keys(runtime: &tokio::runtime::Runtime, action: KeysAction) -> Result<ExitCode, CliError> {
    let (common, rotate) = match action {
        KeysAction::List(common) => (common, false),
        KeysAction::Rotate(common) => (common, true),
    };
    let config = load_common(common)?;
    if rotate {
        let device = parse(
            "device",
            config.device.clone().unwrap_or_else(default_device_id),
            Device::new,
        )?;
        let actor = relay_runtime::export::resolve_exporting_user()?;
        let outcome = runtime.block_on(relay_node::keys::rotate_data_dir_key(
            &config.data_dir,
            device,
            &actor,
        ))?;
        println!(
            "rotated trail key {} -> {} ({} key ids kept for verification)",
            outcome.previous,
            outcome.current,
            outcome.versions.len()
        );
        println!(
            "recorded as KEY_ROTATED event _relay#{}; a running relay-edge signs with the new key after its next start",
            outcome.event_seq
        );
    } else {
        let ids = runtime.block_on(relay_node::keys::list_data_dir_keys(&config.data_dir))?;
        let last = ids.len().saturating_sub(1);
        for (i, id) in ids.iter().enumerate() {
            println!("{id}{}", if i == last { "  (current)" } else { "" });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse<T>(
    what: &'static str,
    value: String,
    f: impl FnOnce(String) -> Result<T, relay_domain::IdError>,
) -> Result<T, CliError> {
    f(value.clone()).map_err(|source| CliError::BadValue {
        what,
        value,
        source,
    })
}

fn edge_settings(config: &EdgeConfig) -> Result<EdgeSettings, CliError> {
    let device_name = match &config.device {
        Some(d) => d.clone(),
        None => default_device_id(),
    };
    let device = parse("device", device_name, Device::new)?;
    let trail = match &config.trail {
        Some(t) => parse("trail", t.clone(), TrailId::new)?,
        None => parse("trail", device.as_str().to_owned(), TrailId::new)?,
    };
    if trail.is_relay() {
        return Err(CliError::BadValue {
            what: "trail",
            value: trail.to_string(),
            source: relay_domain::IdError::Placeholder {
                what: "trail",
                value: "_relay is reserved".into(),
            },
        });
    }
    let project = config
        .project
        .clone()
        .map(|p| parse("project", p, Project::new))
        .transpose()?;
    let watch = if config.watch.is_empty() {
        vec![config.data_dir.join("inbox")]
    } else {
        config.watch.clone()
    };
    Ok(EdgeSettings {
        data_dir: config.data_dir.clone(),
        watch,
        api: api_config(config, &device),
        device,
        trail,
        project,
        listen: config.listen,
        settle: Duration::from_millis(config.settle_ms),
        rescan: Duration::from_secs(config.rescan_secs),
        rehash: (config.rehash_interval_secs > 0)
            .then(|| Duration::from_secs(config.rehash_interval_secs)),
        notary_interval: Duration::from_secs(config.notary_interval_secs),
        config: Some(serde_json::to_value(config).map_err(|e| {
            CliError::Config(config::ConfigError::Invalid(format!(
                "the configuration cannot be digested: {e}"
            )))
        })?),
        forward: forward_settings(config),
        clock: None,
        tls: match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(relay_runtime::server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        allow_plain_http_on_network: config.allow_plain_http_on_network,
        attribution: attribution_policy(config.attribution),
    })
}

/// The capture attribution policy of the `attribution` setting.
fn attribution_policy(kind: config::AttributionKind) -> relay_runtime::edge::AttributionPolicy {
    use config::AttributionKind as K;
    use relay_runtime::edge::AttributionPolicy as P;
    match kind {
        K::Auto => P::Auto,
        K::ProcessUser => P::ProcessUser,
        K::FileOwner => P::FileOwner,
        K::ConsoleSession => P::ConsoleSession,
    }
}

/// Forwarding to the server of record as configured (`forward_url`); `None` without it. An
/// empty token is read from the secret provider by whoever uses the settings.
/// Without `forward_url`, the server this edge enrolled with (`enrollment.json`), if any.
fn forward_settings(config: &EdgeConfig) -> Option<relay_runtime::forwarder::ForwardSettings> {
    let (url, ca_file) = match &config.forward_url {
        Some(url) => (url.clone(), config.forward_ca_file.clone()),
        None => match relay_runtime::enrollment::EnrollmentRecord::load(&config.data_dir) {
            Ok(Some(enrolled)) => (
                enrolled.server,
                config.forward_ca_file.clone().or(enrolled.ca_file),
            ),
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "the enrollment file is unreadable; not forwarding");
                return None;
            }
        },
    };
    let mut f = relay_runtime::forwarder::ForwardSettings::new(
        url,
        config.device.clone().unwrap_or_else(default_device_id),
        config.forward_token.clone().unwrap_or_default(),
    );
    f.batch = config.forward_batch;
    f.ca_file = ca_file;
    Some(f)
}

/// Where the configuration says keys are kept; the keyring's items are filed under the data
/// directory's absolute path, so two installations on one host never share keys.
fn secret_backend(config: &EdgeConfig) -> relay_local::SecretBackend {
    match config.secret_provider {
        config::SecretProviderKind::File => relay_local::SecretBackend::File,
        config::SecretProviderKind::Keyring => {
            let dir = std::fs::canonicalize(&config.data_dir)
                .or_else(|_| std::path::absolute(&config.data_dir))
                .unwrap_or_else(|_| config.data_dir.clone());
            relay_local::SecretBackend::Keyring {
                namespace: dir.display().to_string(),
            }
        }
    }
}

/// The review API's settings from the configuration.
fn api_config(config: &EdgeConfig, device: &Device) -> relay_api::ApiConfig {
    let mut api = relay_api::ApiConfig::new(device.clone());
    api.registration_closed = config.registration_closed;
    api.lockout_threshold = config.lockout_threshold;
    api.lockout_window = Duration::from_secs(config.lockout_window_secs);
    api.lockout_duration = Duration::from_secs(config.lockout_window_secs);
    api.session_idle_timeout = Duration::from_secs(config.session_idle_secs);
    api.password_max_age = Duration::from_secs(config.password_max_age_days * 24 * 3600);
    api.review_warm_budget_records = config.review_warm_budget_records;
    config.identity_into(&mut api);
    api
}

/// The host name, reduced to the characters a device id allows.
pub(crate) fn default_device_id() -> String {
    let host = whoami::fallible::hostname().unwrap_or_else(|_| "edge".to_owned());
    let cleaned: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.trim_matches('-').is_empty() {
        "edge".to_owned()
    } else {
        cleaned
    }
}

/// Loads the configuration a command's common arguments name (file, environment, `--data-dir`,
/// `--log-format`) and starts logging in its format.
pub(crate) fn load_common(common: CommonArgs) -> Result<config::EdgeConfig, CliError> {
    let overrides = CliOverrides {
        data_dir: common.data_dir,
        log_format: common.log_format,
        ..Default::default()
    };
    let config = config::load(common.config.as_deref(), &overrides)?;
    init_logging(config.log_format);
    Ok(config)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        // Control characters in field values (a file name with a newline) are escaped.
        LogFormat::Human => builder
            .fmt_fields(relay_runtime::log_format::EscapedFields)
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("relay-edge: logging already initialised: {e}");
    }
}
