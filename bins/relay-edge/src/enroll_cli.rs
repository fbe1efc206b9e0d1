//! `relay-edge enroll`: parse, then [`relay_node::enroll::enroll_data_dir`]; print what happened
//! and what to do next.

use std::process::ExitCode;
use std::time::Duration;

use relay_domain::{Device, TrailId};
use relay_runtime::enrollment::{EnrollError, EnrollTarget};

use crate::{CliError, EnrollArgs, default_device_id, load_common, parse, secret_backend};

pub(crate) fn enroll(
    runtime: &tokio::runtime::Runtime,
    args: EnrollArgs,
) -> Result<ExitCode, CliError> {
    let config = load_common(args.common)?;
    let device = parse(
        "device",
        config.device.clone().unwrap_or_else(default_device_id),
        Device::new,
    )?;
    let trail = match &config.trail {
        Some(t) => parse("trail", t.clone(), TrailId::new)?,
        None => parse("trail", device.as_str().to_owned(), TrailId::new)?,
    };
    let actor = relay_runtime::export::resolve_exporting_user()?;
    let target = EnrollTarget {
        server: args.server.trim_end_matches('/').to_owned(),
        ca_file: args.ca_file,
        edge: device.as_str().to_owned(),
        trails: vec![trail],
        data_dir: config.data_dir.clone(),
        timeout: Duration::from_secs(30),
    };
    let outcome = runtime.block_on(relay_node::enroll::enroll_data_dir(
        &target,
        &args.code,
        secret_backend(&config),
        device,
        &actor,
    ));
    match outcome {
        Ok((answer, record)) => {
            println!(
                "enrolled edge {} with server {} ({}); code issued by {}",
                answer.edge, record.server, answer.server, answer.enrolled_by
            );
            println!(
                "trails: {}; key ids held by the server: {}",
                answer.trails.join(", "),
                answer.key_ids.join(", ")
            );
            println!(
                "the ingest token is stored in this edge's secret provider (forward-token); \
                 restart `relay-edge run` to start forwarding"
            );
            if config
                .forward_url
                .as_deref()
                .is_some_and(|u| u.trim_end_matches('/') != record.server)
            {
                eprintln!(
                    "warning: forward_url in the configuration ({}) differs from the enrolled \
                     server; the configuration wins",
                    config.forward_url.as_deref().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(relay_node::enroll::EnrollCliError::Enroll(e @ EnrollError::Refused { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("relay-edge: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            Ok(ExitCode::from(2))
        }
    }
}
