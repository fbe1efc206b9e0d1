//! `relay-edge access-review`: prints the periodic access review of the data directory (a
//! table, or `--json`) and, with `--export DIR`, seals it into an export package of `_relay`.

use std::process::ExitCode;
use std::time::Duration;

use relay_domain::access_review::AccessReview;
use relay_domain::{Device, TrailId};

use crate::{AccessReviewArgs, CliError, default_device_id, load_common, parse};

pub(crate) fn access_review(
    runtime: &tokio::runtime::Runtime,
    args: AccessReviewArgs,
) -> Result<ExitCode, CliError> {
    let config = load_common(args.common)?;
    let max_age = Duration::from_secs(config.password_max_age_days.saturating_mul(24 * 3600));
    let Some(out) = args.export else {
        let review = runtime.block_on(relay_node::access_review::review_data_dir(
            &config.data_dir,
            max_age,
        ))?;
        print_review(&review, args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    use relay_domain::export::{ExportFilter, GeneratedBy};
    use relay_runtime::export::{ExportFormat, ExportRequest};
    let device = parse(
        "device",
        config.device.clone().unwrap_or_else(default_device_id),
        Device::new,
    )?;
    let actor = relay_runtime::export::resolve_exporting_user()?;
    let request = ExportRequest {
        trail: TrailId::relay(),
        from_seq: None,
        to_seq: None,
        filter: ExportFilter::default(),
        format: ExportFormat::Both,
        out,
        zip: args.zip,
        generated_by: GeneratedBy {
            actor,
            actor_source: relay_domain::ActorSource::OsSession,
            device: device.clone(),
        },
        access_review: None,
    };
    eprintln!("relay-edge: building the access review and sealing it with _relay ...");
    let (review, outcome) = runtime.block_on(relay_node::access_review::export_review_data_dir(
        &config.data_dir,
        device,
        max_age,
        &request,
    ))?;
    print_review(&review, args.json)?;
    eprintln!(
        "sealed access review of {} accounts (digest {}) with {} _relay records (head {}) to {}",
        review.accounts.len(),
        review.digest,
        outcome.manifest.records,
        outcome.manifest.head.seq,
        outcome.path.display()
    );
    eprintln!("seal key fingerprint {}", outcome.fingerprint);
    eprintln!(
        "recorded as EXPORT event _relay#{}; check the package with `relay-verify {}`",
        outcome.event.chain_seq,
        outcome.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_review(review: &AccessReview, json: bool) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(review).map_err(CliError::ReviewJson)?;
        println!("{text}");
        return Ok(());
    }
    for line in relay_domain::access_review::review_lines(review) {
        println!("{line}");
    }
    Ok(())
}
