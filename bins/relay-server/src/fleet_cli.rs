//! `relay-server enroll-code`, `relay-server edge revoke` and `relay-server fleet` (issue 24):
//! parse, open the configured stores, call [`relay_runtime::fleet_admin`], print.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::config;
use crate::storage::open_stores;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `relay-server edge …`.
#[derive(Debug, Subcommand)]
pub enum EdgeAction {
    /// Revoke an enrolled edge: its ingest is refused at once by every server on this
    /// database, its token gets a fresh version, and an EDGE_REVOKED event names you and the
    /// reason. Only enrolling again with a new code undoes it.
    Revoke {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The edge id.
        #[arg(long)]
        edge: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
}

fn os_actor() -> Result<relay_domain::Actor, BoxError> {
    Ok(relay_runtime::export::resolve_exporting_user()?)
}

fn device(c: &config::ServerConfig) -> Result<relay_domain::Device, BoxError> {
    Ok(relay_domain::Device::new(c.device.clone())?)
}

/// `relay-server enroll-code --edge E [--ttl-minutes N]`: prints the code and how to use it.
pub fn enroll_code(
    runtime: &tokio::runtime::Runtime,
    config: Option<PathBuf>,
    edge: &str,
    ttl_minutes: u64,
) -> ExitCode {
    let result: Result<_, BoxError> = runtime.block_on(async {
        let c = config::load(config.as_deref())?;
        if c.enrollment_four_eyes {
            return Err(
                "enrollment_four_eyes is set: propose an `enrollment_code` change \
                        ({\"edge\": \"...\"}) in the UI or at /api/v1/changes; its approver \
                        receives the code"
                    .into(),
            );
        }
        let stores = open_stores(&c).await?;
        let issued = relay_runtime::fleet_admin::issue_code(
            &stores,
            device(&c)?,
            edge,
            Duration::from_secs(ttl_minutes.saturating_mul(60)),
            &os_actor()?,
        )
        .await;
        stores.close().await;
        Ok(issued?)
    });
    match result {
        Ok(code) => {
            println!("{}", code.code);
            eprintln!(
                "one-time enrollment code for edge {edge}, valid until {} (UTC)\n\
                 on the workstation: relay-edge enroll --server https://<this server> --code {}",
                code.expires_at, code.code
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.as_ref()),
    }
}

/// `relay-server edge revoke`.
pub fn edge(runtime: &tokio::runtime::Runtime, action: EdgeAction) -> ExitCode {
    let EdgeAction::Revoke {
        config,
        edge,
        reason,
    } = action;
    let result: Result<(), BoxError> = runtime.block_on(async {
        let c = config::load(config.as_deref())?;
        let stores = open_stores(&c).await?;
        let done =
            relay_runtime::fleet_admin::revoke(&stores, device(&c)?, &edge, &reason, &os_actor()?)
                .await;
        stores.close().await;
        Ok(done?)
    });
    match result {
        Ok(()) => {
            println!("edge {edge} revoked: its ingest is refused from now on");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.as_ref()),
    }
}

/// `relay-server fleet [--json]`: every edge, the unhealthy first.
pub fn fleet(runtime: &tokio::runtime::Runtime, config: Option<PathBuf>, json: bool) -> ExitCode {
    let result: Result<_, BoxError> = runtime.block_on(async {
        let c = config::load(config.as_deref())?;
        let stores = open_stores(&c).await?;
        let view = relay_runtime::fleet_admin::view(
            &stores,
            &c.ingest_edges,
            Duration::from_millis(c.clock_skew_threshold_ms),
        )
        .await;
        stores.close().await;
        Ok(view?)
    });
    match result {
        Ok(view) if json => match serde_json::to_string_pretty(&view) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Ok(view) => {
            println!(
                "{:<24} {:<11} {:<10} {:>9} {:>9} {:>9}  last seen / problems",
                "EDGE", "STATUS", "STATE", "LAG", "LAG s", "SKEW ms"
            );
            for e in &view.edges {
                println!(
                    "{:<24} {:<11} {:<10} {:>9} {:>9} {:>9}  {} {}",
                    e.edge,
                    e.status,
                    e.state,
                    e.lag_records,
                    e.lag_seconds.map_or("-".into(), |s| format!("{s:.0}")),
                    e.clock_skew_ms.map_or("-".into(), |s| s.to_string()),
                    e.last_seen_at.as_deref().unwrap_or("never"),
                    e.problems.join("; ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.as_ref()),
    }
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    crate::report(e);
    ExitCode::from(2)
}
