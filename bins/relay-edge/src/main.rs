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
    }
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
        device,
        trail,
        project,
        listen: config.listen,
        settle: Duration::from_millis(config.settle_ms),
        rescan: Duration::from_secs(config.rescan_secs),
    })
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
