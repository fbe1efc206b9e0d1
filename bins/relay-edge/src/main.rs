//! `relay-edge`: the GIMS Compliance Relay on an instrument workstation.
//!
//! A thin binary: it parses arguments and configuration, builds the local adapters and hands
//! them to `relay-runtime`. Exit codes: 0 success, 1 a trail failed verification, 2 usage,
//! configuration or I/O error.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use relay_domain::{Device, Project, TrailId};
use relay_runtime::edge::{EdgeRuntime, EdgeSettings};

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
#[command(name = "relay-edge", version, about, long_about)]
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
    /// first bad chain_seq is named), 2 on usage or I/O errors.
    Verify(VerifyArgs),
    /// Write a sealed export package of a trail (R5) for an auditor.
    ///
    /// The package holds records.jsonl (the records exactly as chained), records.csv and/or
    /// records.json (human-readable, with signature manifestations), anchors.json, proofs.jsonl
    /// (partial exports) and manifest.json, sealed with the relay's Ed25519 export key. The
    /// trail is verified first, its head is notarized if no anchor covers it yet, and the export
    /// is recorded as an EXPORT event in the _relay trail. Check it with `relay-verify PACKAGE`.
    Export(ExportArgs),
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
    Verify(#[from] relay_runtime::edge::EdgeVerifyError),
    #[error(transparent)]
    Export(#[from] relay_runtime::export::DataDirExportError),
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
            let settings = edge_settings(&config)?;
            runtime.block_on(async {
                let edge = EdgeRuntime::start(settings).await?;
                edge.run_until_signal().await?;
                Ok::<_, CliError>(())
            })?;
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
            let verdicts = runtime.block_on(relay_runtime::edge::verify_data_dir(
                &config.data_dir,
                trail.as_ref(),
            ))?;
            Ok(if print_verdicts(&verdicts) {
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
    };
    let outcome = runtime.block_on(relay_runtime::export::export_data_dir(
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

/// Prints one line per trail; true when every trail holds.
fn print_verdicts(verdicts: &[relay_runtime::verify::TrailVerdict]) -> bool {
    let mut all_hold = true;
    for v in verdicts {
        match &v.verdict {
            Ok(s) => {
                let head = s
                    .head
                    .map(|(seq, c)| format!("head {seq} {c}"))
                    .unwrap_or_else(|| "empty".into());
                println!(
                    "OK      {}: {} records verified ({}), {} anchor(s) checked",
                    v.trail_id, s.records, head, s.anchors_checked
                );
            }
            Err(f) => {
                all_hold = false;
                println!(
                    "BROKEN  {}: first bad chain_seq {}: {}",
                    v.trail_id, f.seq, f.reason
                );
            }
        }
    }
    if verdicts.is_empty() {
        println!("no trails to verify");
    }
    all_hold
}

fn parse<T>(
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
        notary_interval: Duration::from_secs(config.notary_interval_secs),
    })
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
    api
}

/// The host name, reduced to the characters a device id allows.
fn default_device_id() -> String {
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("relay-edge: logging already initialised: {e}");
    }
}
