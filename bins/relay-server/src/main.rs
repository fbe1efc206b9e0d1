//! `relay-server`: the GIMS Compliance Relay's server of record (Postgres + S3-compatible
//! storage). For now it has one subcommand:
//!
//! `relay-server migrate --admin-dsn postgres://owner@db/relay --app-role relay_app`
//!
//! applies the schema through the admin DSN and grants the runtime role SELECT, INSERT only
//! (two-role custody, R1.4). Exit codes: 0 success, 2 failure (the cause chain is printed).
//! The admin DSN can also come from `RELAY_ADMIN_DSN`, which keeps its password out of the
//! process list.

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
                         {} with SELECT, INSERT on event_log",
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
