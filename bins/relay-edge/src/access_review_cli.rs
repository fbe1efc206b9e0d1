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
    let (review, outcome) = runtime.block_on(
        relay_node::access_review::export_review_data_dir(
            &config.data_dir,
            device,
            max_age,
            &request,
        ),
    )?;
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
    println!(
        "ACCESS REVIEW  generated {}  (_relay up to #{})",
        review.generated_at, review.relay_seq
    );
    match &review.previous_review {
        Some(p) => println!(
            "period since the previous review: {} (by {}, _relay#{})",
            p.at, p.reviewer, p.seq
        ),
        None => println!("period: since installation (no previous review)"),
    }
    println!(
        "{:<20} {:<24} {:<9} {:<9} {:<27} {:<14} {:<27} {:<27} {:>6}  flags",
        "username",
        "printed name",
        "role",
        "status",
        "created at",
        "created by",
        "last login",
        "password changed",
        "failed"
    );
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for a in &review.accounts {
        println!(
            "{:<20} {:<24} {:<9} {:<9} {:<27} {:<14} {:<27} {:<27} {:>6}  {}",
            a.username,
            a.full_name,
            a.role,
            a.status,
            a.created_at,
            or_dash(&a.created_by),
            or_dash(&a.last_login_at),
            or_dash(&a.password_changed_at),
            a.failed_logins,
            a.flags.join(",")
        );
        for change in &a.role_history {
            println!(
                "    role {} -> {} at {} by {}{}{}",
                change.from.as_deref().unwrap_or("(created)"),
                change.to,
                change.at,
                change.by,
                change
                    .change_id
                    .as_ref()
                    .map(|id| format!(
                        " (four-eyes {id}, proposed by {})",
                        change.proposed_by.as_deref().unwrap_or("?")
                    ))
                    .unwrap_or_default(),
                change
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
            );
        }
    }
    println!(
        "failed logins with names that are no account: {}",
        review.failed_logins_unknown_names
    );
    println!("review digest {}", review.digest);
    Ok(())
}
