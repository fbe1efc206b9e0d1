//! `relay-server`: the GIMS Compliance Relay's server of record (R8, `RELAY_MODE=server`).
//!
//! - `relay-server run [--config FILE]` serves the review API and UI, verified ingest of
//!   forwarded trails (`POST /api/v1/ingest`) and its own `_relay` journal, on the local adapter
//!   (`[storage] provider = "local"`) or Postgres + S3 (`"selfhosted"`).
//! - `relay-server verify [--trail ID]` verifies every stored trail with its edge's key.
//! - `relay-server ingest-token --edge ID` creates (or shows) an edge's ingest token.
//! - `relay-server migrate --admin-dsn postgres://owner@db/relay --app-role relay_app` applies
//!   the Postgres schema through the admin DSN and grants the runtime role SELECT, INSERT only
//!   (two-role custody, R1.4). The admin DSN can also come from `RELAY_ADMIN_DSN`.
//!
//! Exit codes: 0 success, 1 a trail is broken (`verify`), 2 failure (the cause chain is printed).

mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use relay_selfhosted::{MigrateConfig, migrate, redact_dsn};

/// The relay's server of record.
#[derive(Debug, Parser)]
#[command(name = "relay-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, UI and ingest until SIGINT/SIGTERM.
    Run {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
    /// Verify every trail (or one): links, HMACs (each forwarded trail with its edge's key),
    /// notary anchors. Exit 0 when all hold, 1 when any is broken.
    Verify {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Only this trail.
        #[arg(long)]
        trail: Option<String>,
    },
    /// Create (first call) or show the ingest token of an edge; give it to the edge's operator
    /// as `forward_token` (or its `forward-token` secret).
    IngestToken {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The edge id (its `device`).
        #[arg(long)]
        edge: String,
    },
    /// Applies the database schema and grants the runtime role SELECT, INSERT only.
    Migrate {
        /// DSN of the role that owns the schema (never the runtime role).
        #[arg(long, env = "RELAY_ADMIN_DSN", hide_env_values = true)]
        admin_dsn: String,
        /// The runtime role to create (if missing) and grant.
        #[arg(long, env = "RELAY_APP_ROLE", default_value = MigrateConfig::DEFAULT_APP_ROLE)]
        app_role: String,
    },
}

/// Prints `error` and every cause below it.
fn report(error: &dyn std::error::Error) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(&e);
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run { config } => {
            match config::load(config.as_deref()).map_err(|e| e.to_string()) {
                Ok(c) => match runtime.block_on(run(c)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        report(e.as_ref());
                        ExitCode::from(2)
                    }
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Verify { config, trail } => match runtime.block_on(verify(config, trail)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                report(e.as_ref());
                ExitCode::from(2)
            }
        },
        Command::IngestToken { config, edge } => {
            match runtime.block_on(ingest_token(config, &edge)) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    report(e.as_ref());
                    ExitCode::from(2)
                }
            }
        }
        Command::Migrate {
            admin_dsn,
            app_role,
        } => {
            let target = redact_dsn(&admin_dsn);
            let config = MigrateConfig::new(admin_dsn).app_role(app_role);
            match runtime.block_on(migrate(&config)) {
                Ok(done) => {
                    println!(
                        "migrated {target}: schema version {} (applied {:?}); runtime role {} \
                         {} with SELECT, INSERT on event_log (SELECT, INSERT, UPDATE on accounts)",
                        done.schema_version,
                        done.applied,
                        done.app_role,
                        if done.role_created {
                            "created"
                        } else {
                            "granted"
                        },
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    report(&e);
                    ExitCode::from(2)
                }
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stores the configuration names.
async fn open_stores(
    c: &config::ServerConfig,
) -> Result<relay_runtime::server::ServerStores, BoxError> {
    let mut stores = match c.storage.provider {
        config::StorageProvider::Local => {
            relay_runtime::server::ServerStores::local(&c.data_dir).await?
        }
        config::StorageProvider::Selfhosted => {
            use std::sync::Arc;
            let (Some(dsn), Some(bucket)) = (&c.storage.pg_dsn, &c.storage.s3_bucket) else {
                return Err(
                    "storage.provider = \"selfhosted\" needs storage.pg_dsn and storage.s3_bucket"
                        .into(),
                );
            };
            let pg = Arc::new(
                relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(
                    dsn.clone(),
                ))
                .await?,
            );
            let accounts = Arc::new(relay_selfhosted::PgAccountStore::new(pg.pool().clone()));
            // Keys and tokens: files under data_dir/secrets (0600), as on the edge.
            let secrets = Arc::new(relay_local::FileSecretProvider::open(
                c.data_dir.join("secrets"),
            )?);
            let s3 = relay_selfhosted::S3Config::from_vars("RELAY_S3_", |k| std::env::var(k).ok());
            let client = relay_selfhosted::S3Client::new(&s3).await;
            let notary = Arc::new(
                relay_selfhosted::S3Notary::open(
                    &client,
                    relay_selfhosted::S3NotaryOptions::new(bucket.clone()),
                )
                .await?,
            );
            relay_runtime::server::ServerStores {
                provider: "selfhosted",
                records: pg,
                accounts,
                secrets,
                notary,
                clock: Arc::new(relay_local::SystemTimeSource::new()),
                local: None,
            }
        }
    };
    if c.time_source == config::TimeSourceKind::Ntp {
        let ntp =
            relay_ntp::NtpTimeSource::start(relay_ntp::NtpConfig::new(c.ntp_servers.clone())).await;
        stores.clock = std::sync::Arc::new(ntp);
    }
    Ok(stores)
}

async fn run(c: config::ServerConfig) -> Result<(), BoxError> {
    let stores = open_stores(&c).await?;
    let device = relay_domain::Device::new(c.device.clone())?;
    let mut api = relay_api::ApiConfig::new(device.clone());
    api.registration_closed = c.registration_closed;
    let mut ingest = relay_api::IngestConfig {
        edges: c.ingest_edges.clone(),
        ..Default::default()
    };
    ingest.clock_skew_threshold = std::time::Duration::from_millis(c.clock_skew_threshold_ms);
    let settings = relay_runtime::server::ServerSettings {
        device,
        listen: c.listen,
        tls: match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some(relay_runtime::server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        ingest,
        api,
        notary_interval: std::time::Duration::from_secs(c.notary_interval_secs),
    };
    let server = relay_runtime::server::ServerRuntime::start(stores, settings).await?;
    server.run_until_signal().await?;
    Ok(())
}

async fn verify(
    config: Option<std::path::PathBuf>,
    trail: Option<String>,
) -> Result<bool, BoxError> {
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let only = trail.map(relay_domain::TrailId::new).transpose()?;
    let verdicts = relay_runtime::verify::verify_trails(
        stores.records.as_ref(),
        stores.secrets.as_ref(),
        stores.notary.as_ref(),
        only.as_ref(),
        |_, _| {},
    )
    .await?;
    let mut all_hold = true;
    for v in &verdicts {
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
    if let Some(local) = &stores.local {
        local.record_store.close().await;
    }
    Ok(all_hold)
}

async fn ingest_token(config: Option<std::path::PathBuf>, edge: &str) -> Result<String, BoxError> {
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), edge).await?;
    if let Some(local) = &stores.local {
        local.record_store.close().await;
    }
    Ok(token)
}
