//! `relay-server`: the GIMS Compliance Relay's server of record (R8, `RELAY_MODE=server`).
//!
//! - `relay-server run [--config FILE]` serves the review API and UI, verified ingest of
//!   forwarded trails (`POST /api/v1/ingest`) and its own `_relay` journal, on the local adapter
//!   (`[storage] provider = "local"`), Postgres + S3 (`"selfhosted"`) or RDS + S3 Object Lock +
//!   Secrets Manager (`"aws"`).
//! - `relay-server verify [--trail ID]` verifies every stored trail with its edge's key.
//! - `relay-server ingest-token --edge ID` creates (or shows) an edge's ingest token.
//! - `relay-server migrate --admin-dsn postgres://owner@db/relay --app-role relay_app` applies
//!   the Postgres schema through the admin DSN and grants the runtime role SELECT, INSERT only
//!   (two-role custody, R1.4). The admin DSN can also come from `RELAY_ADMIN_DSN`.
//!
//!
//! Storage providers are chosen at build time with cargo features: the default build is
//! local only (no database driver for Postgres, no cloud SDK); `--features selfhosted` adds
//! `selfhosted` and `migrate`, `--features aws` adds `aws` (and `migrate`). `relay-server
//! --version` lists the providers compiled in; a configuration naming another one is refused
//! at start-up with the feature to build with.
//!
//! Exit codes: 0 success, 1 a trail is broken (`verify`), 2 failure (the cause chain is printed).

mod config;
mod fleet_cli;
mod storage;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use storage::open_stores;

/// The runtime role `migrate` creates by default (`relay_selfhosted::MigrateConfig`).
const DEFAULT_APP_ROLE: &str = "relay_app";

/// `relay-server <version> (storage providers: local, ...)`.
fn version() -> String {
    format!(
        "{} (storage providers: {})",
        relay_runtime::build_info::LONG_VERSION,
        config::compiled_providers().join(", ")
    )
}

/// The relay's server of record.
#[derive(Debug, Parser)]
#[command(name = "relay-server", about)]
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
    /// Installation and operational qualification (IQ/OQ) of this server on its configured
    /// stores: writes a dated report (Markdown and JSON) into `--out` and records one
    /// QUALIFICATION event in `_relay`. Exit 0 when no check failed, 1 when any did.
    Qualify {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Where the report files go (created if missing).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
        /// The release's SHA256SUMS file: IQ-01 fails unless this binary's SHA-256 is in it.
        #[arg(long, value_name = "FILE")]
        release_sums: Option<std::path::PathBuf>,
        /// JUnit XML of the test run (`cargo nextest run` writes
        /// target/nextest/default/junit.xml): the report's traceability matrix shows each
        /// test's result from it. Without it every test is reported as not run.
        #[arg(long, value_name = "FILE")]
        test_results: Option<std::path::PathBuf>,
    },
    /// Upgrade check (Annex 11 §7.4): `record` every trail's count and head before `migrate`
    /// or a binary replacement (or before `pg_dump`), `compare` after (or on the restored
    /// database); exit 1 on any difference.
    UpgradeCheck {
        /// `record` or `compare`.
        #[arg(value_enum)]
        action: UpgradeCheckAction,
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The state file (`record` writes it and never overwrites; `compare` reads it).
        #[arg(long, value_name = "FILE")]
        state: std::path::PathBuf,
    },
    /// The periodic access review (21 CFR 11.10(d), 11.300(b)): every account with its role,
    /// status, creator, last login, last password change, failed logins since the previous
    /// review, role history from the chained events and flags (the bootstrap second admin among
    /// them), then the review's SHA-256 digest. Read-only. Complete it (ACCESS_REVIEWED) in the
    /// UI or with `POST /api/v1/access-review/complete`; seal it with `POST
    /// /api/v1/access-review/export`.
    AccessReview {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Print the review as JSON instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Issue a one-time enrollment code for an edge (issue 24) and print it once. On the
    /// workstation, `relay-edge enroll --server URL --code CODE` then registers the edge: no
    /// key file copied, no configuration edited, no server restarted. Recorded as
    /// ENROLLMENT_CODE_ISSUED (the code itself is never stored, only its SHA-256).
    EnrollCode {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The edge id (the workstation's `device`).
        #[arg(long)]
        edge: String,
        /// Minutes until the code expires (1 to 10080).
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
    },
    /// Manage enrolled edges: `edge revoke --edge E --reason "…"`.
    Edge {
        #[command(subcommand)]
        action: fleet_cli::EdgeAction,
    },
    /// Every edge's health, the unhealthy first: last batch, local vs stored head, lag in
    /// records and time, clock skew, poisoned or revoked, version (as `GET /api/v1/fleet`).
    Fleet {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Applies the database schema and grants the runtime role SELECT, INSERT only (Postgres:
    /// needs a build with `--features selfhosted` or `--features aws`).
    Migrate {
        /// DSN of the role that owns the schema (never the runtime role).
        #[arg(long, env = "RELAY_ADMIN_DSN", hide_env_values = true)]
        admin_dsn: Option<String>,
        /// The runtime role to create (if missing) and grant.
        #[arg(long, env = "RELAY_APP_ROLE", default_value = DEFAULT_APP_ROLE)]
        app_role: String,
    },
}

/// What `upgrade-check` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UpgradeCheckAction {
    /// Write every trail's count and head into the state file.
    Record,
    /// Compare every trail's count and head with the state file.
    Compare,
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
    // The version names the compiled providers, known only at run time of the build's cfg.
    let version: &'static str = Box::leak(version().into_boxed_str());
    let cli = match Cli::from_arg_matches(&Cli::command().version(version).get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Control characters in field values (names from trails, requests) are escaped.
        .fmt_fields(relay_runtime::log_format::EscapedFields)
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
        Command::UpgradeCheck {
            action,
            config,
            state,
        } => match runtime.block_on(upgrade_check(action, config, state)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                report(e.as_ref());
                ExitCode::from(2)
            }
        },
        Command::Qualify {
            config,
            out,
            release_sums,
            test_results,
        } => match runtime.block_on(qualify(config, out, release_sums, test_results)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                report(e.as_ref());
                ExitCode::from(2)
            }
        },
        Command::EnrollCode {
            config,
            edge,
            ttl_minutes,
        } => fleet_cli::enroll_code(&runtime, config, &edge, ttl_minutes),
        Command::Edge { action } => fleet_cli::edge(&runtime, action),
        Command::Fleet { config, json } => fleet_cli::fleet(&runtime, config, json),
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
        } => migrate_command(&runtime, admin_dsn, app_role),
        Command::AccessReview { config, json } => {
            match runtime.block_on(access_review(config, json)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report(e.as_ref());
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `relay-server migrate`: the Postgres schema through the admin DSN.
#[cfg(any(feature = "selfhosted", feature = "aws"))]
fn migrate_command(
    runtime: &tokio::runtime::Runtime,
    admin_dsn: Option<String>,
    app_role: String,
) -> ExitCode {
    use relay_selfhosted::{MigrateConfig, migrate, redact_dsn};
    let Some(admin_dsn) = admin_dsn else {
        eprintln!("error: relay-server migrate needs --admin-dsn (or RELAY_ADMIN_DSN)");
        return ExitCode::from(2);
    };
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

/// `relay-server migrate` in a build without a Postgres provider.
#[cfg(not(any(feature = "selfhosted", feature = "aws")))]
fn migrate_command(
    _: &tokio::runtime::Runtime,
    _admin_dsn: Option<String>,
    _app_role: String,
) -> ExitCode {
    eprintln!(
        "error: relay-server migrate applies the Postgres schema, and this binary has no \
         Postgres provider (compiled providers: {}); rebuild with `cargo build -p relay-server \
         --features selfhosted` (or `--features aws`)",
        config::compiled_providers().join(", ")
    );
    ExitCode::from(2)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(c: config::ServerConfig) -> Result<(), BoxError> {
    let stores = open_stores(&c).await?;
    let device = relay_domain::Device::new(c.device.clone())?;
    let mut api = relay_api::ApiConfig::new(device.clone());
    api.registration_closed = c.registration_closed;
    api.enrollment_four_eyes = c.enrollment_four_eyes;
    api.review_warm_budget_records = c.review_warm_budget_records;
    c.identity_into(&mut api);
    for weaker in api.weakened_identity_settings() {
        tracing::warn!("IDENTITY SETTING WEAKER THAN THE DEFAULT: {weaker}");
    }
    api.export_retention = relay_api::ExportRetention {
        max_age: std::time::Duration::from_secs(c.export_max_age_hours.saturating_mul(3600)),
        per_user_quota: c.export_quota_per_user,
    };
    let mut edge_trails = std::collections::BTreeMap::new();
    for (edge, trails) in &c.ingest_trails {
        let trails = trails
            .iter()
            .map(|t| relay_domain::TrailId::new(t.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        edge_trails.insert(edge.clone(), trails);
    }
    let mut ingest = relay_api::IngestConfig {
        edges: c.ingest_edges.clone(),
        max_body_bytes: c.ingest_max_batch_bytes,
        edge_trails,
        ..Default::default()
    };
    ingest.clock_skew_threshold = std::time::Duration::from_millis(c.clock_skew_threshold_ms);
    ingest.late_after = std::time::Duration::from_secs(c.late_after_secs);
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
        exports_dir: c.data_dir.join("exports"),
        config: Some(serde_json::to_value(&c)?),
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
    let report = relay_runtime::verify::verify_trails(
        stores.records.as_ref(),
        stores.secrets.as_ref(),
        stores.notary.as_ref(),
        only.as_ref(),
        |_, _| {},
    )
    .await?;
    for line in relay_runtime::verify::report_lines(&report) {
        println!("{line}");
    }
    let mut all_hold = report.all_hold();
    if only.as_ref().is_none_or(relay_domain::TrailId::is_relay) {
        // The account rows against the chained account events of _relay.
        match relay_runtime::account_rows::read(stores.accounts.as_ref(), stores.records.as_ref())
            .await
        {
            relay_runtime::account_rows::AccountRows::Checked(found) => {
                for d in &found {
                    println!("ACCOUNT ROW DISAGREES {d}");
                }
                if found.is_empty() {
                    println!(
                        "OK      account rows: every row agrees with the chained account events of _relay"
                    );
                }
                all_hold &= found.is_empty();
            }
            relay_runtime::account_rows::AccountRows::Unchecked(why) => {
                stores.close().await;
                return Err(format!("cannot check the account rows: {why}").into());
            }
        }
    }
    stores.close().await;
    Ok(all_hold)
}

/// `relay-server access-review`: the review of the configured stores, printed.
async fn access_review(config: Option<std::path::PathBuf>, json: bool) -> Result<(), BoxError> {
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let review = async {
        let accounts = stores.accounts.list().await?;
        let replay =
            relay_domain::access_review::replay_relay_trail(stores.records.as_ref()).await?;
        let now = stores.clock.now().await?;
        // The API's password age (the server has no setting of its own).
        let max_age = relay_api::ApiConfig::new(relay_domain::Device::new("review")?)
            .password_max_age
            .as_micros();
        Ok::<_, BoxError>(relay_domain::access_review::build_review(
            &accounts,
            &replay,
            now.at,
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
    }
    .await;
    stores.close().await;
    let review = review?;
    if json {
        println!("{}", serde_json::to_string_pretty(&review)?);
    } else {
        for line in relay_domain::access_review::review_lines(&review) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `upgrade-check record|compare`: every trail's count and head against a state file.
async fn upgrade_check(
    action: UpgradeCheckAction,
    config: Option<std::path::PathBuf>,
    state_file: std::path::PathBuf,
) -> Result<bool, BoxError> {
    use relay_runtime::custody::{CustodyState, compare, custody_state};
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let state = custody_state(stores.records.as_ref()).await;
    stores.close().await;
    let state = state?;
    match action {
        UpgradeCheckAction::Record => {
            state.write_new(&state_file)?;
            println!(
                "recorded {} trails into {} (relay {} commit {})",
                state.trails.len(),
                state_file.display(),
                state.relay.version,
                state.relay.git_commit
            );
            for line in state.lines() {
                println!("{line}");
            }
            Ok(true)
        }
        UpgradeCheckAction::Compare => {
            let before = CustodyState::read(&state_file)?;
            let differences = compare(&before, &state);
            for d in &differences {
                println!("DIFFERENT  {d}");
            }
            if differences.is_empty() {
                println!(
                    "SAME  {} trails: every count and head equals {}",
                    state.trails.len(),
                    state_file.display()
                );
            }
            Ok(differences.is_empty())
        }
    }
}

/// Runs the IQ/OQ protocol on the configured stores and prints each check's verdict.
async fn qualify(
    config: Option<std::path::PathBuf>,
    out: std::path::PathBuf,
    release_sums: Option<std::path::PathBuf>,
    test_results: Option<std::path::PathBuf>,
) -> Result<bool, BoxError> {
    use relay_node::qualify::{QualifyRequest, ServerInstallation, StoreCustody};
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let store_name = match c.storage.provider {
        config::StorageProvider::Local => format!(
            "sqlite {}",
            relay_node::local::db_path(&c.data_dir).display()
        ),
        _ => format!("{} (Postgres, two-role custody)", stores.provider),
    };
    let custody = StoreCustody::of_store(store_name, stores.records.as_ref()).await;
    let request = QualifyRequest {
        product: "relay-server".into(),
        data_dir: c.data_dir.clone(),
        out_dir: out,
        device: relay_domain::Device::new(c.device.clone())?,
        config: serde_json::to_value(&c)?,
        release_sums,
        test_results,
    };
    let server = ServerInstallation {
        records: stores.records.clone(),
        secrets: stores.secrets.clone(),
        notary: stores.notary.clone(),
        clock: stores.clock.clone(),
        custody,
    };
    let outcome = relay_node::qualify::qualify_server(&request, &server).await?;
    stores.close().await;
    println!("{}", outcome.summary());
    Ok(outcome.report.passed())
}

async fn ingest_token(config: Option<std::path::PathBuf>, edge: &str) -> Result<String, BoxError> {
    let c = config::load(config.as_deref())?;
    let stores = open_stores(&c).await?;
    let token = relay_runtime::server::ingest_token(stores.secrets.as_ref(), edge).await?;
    stores.close().await;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_the_compiled_providers() {
        let v = version();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.contains("storage providers: local"), "{v}");
        assert_eq!(v.contains("aws"), cfg!(feature = "aws"), "{v}");
        assert_eq!(
            v.contains("selfhosted"),
            cfg!(feature = "selfhosted"),
            "{v}"
        );
    }

    #[cfg(any(feature = "selfhosted", feature = "aws"))]
    #[test]
    fn the_default_app_role_is_the_adapters() {
        assert_eq!(
            DEFAULT_APP_ROLE,
            relay_selfhosted::MigrateConfig::DEFAULT_APP_ROLE
        );
    }
}
