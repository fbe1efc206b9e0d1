//! `backup`, `restore` and `upgrade-check`: argument handling and printing around
//! `relay_runtime::backup` and `relay_runtime::custody`.

use std::process::ExitCode;

use crate::config;
use crate::{BackupArgs, CliError, RestoreArgs, UpgradeCheckAction, init_logging, load_common};

pub(crate) fn backup(
    runtime: &tokio::runtime::Runtime,
    args: BackupArgs,
) -> Result<ExitCode, CliError> {
    let config = load_common(args.common)?;
    if args.include_secrets {
        eprintln!(
            "relay-edge: WARNING: --include-secrets copies the trail HMAC keys, the export seal key \
             and the tokens into {}. Anyone who holds this backup can forge records that verify. \
             Keep it encrypted and as protected as the keys themselves.",
            args.out.display()
        );
    }
    let outcome = runtime.block_on(relay_node::backup::backup_data_dir(
        &config.data_dir,
        &args.out,
        args.include_secrets,
    ))?;
    let m = &outcome.manifest;
    println!(
        "backup of {} written to {} ({} files{})",
        config.data_dir.display(),
        outcome.dir.display(),
        m.files.len(),
        if m.includes_secrets {
            ", INCLUDING SECRETS"
        } else {
            ", without secrets"
        }
    );
    for line in m.state.lines() {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn restore(
    runtime: &tokio::runtime::Runtime,
    args: RestoreArgs,
) -> Result<ExitCode, CliError> {
    init_logging(config::LogFormat::Human);
    let result = runtime.block_on(relay_node::backup::restore_data_dir(
        &args.from,
        &args.data_dir,
        args.secrets_from.as_deref(),
        args.anchors_from.as_deref(),
    ));
    let outcome = match result {
        Ok(o) => o,
        Err(e @ relay_node::backup::BackupError::Unverified { .. }) => {
            println!("NOT RESTORED: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "restored {} (backup of {} taken {}) into {}; every trail verified, heads equal the manifest:",
        args.from.display(),
        outcome.manifest.source,
        outcome.manifest.created_at,
        outcome.data_dir.display()
    );
    for line in outcome.restored.lines() {
        println!("{line}");
    }
    if outcome.older_than_anchors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for o in &outcome.older_than_anchors {
        println!(
            "OLDER THAN THE NOTARY  {}: restored head {}, but an anchor of {} names seq {}: \
             records {}..={} are not in this backup",
            o.trail,
            o.restored_seq,
            o.anchored_at,
            o.anchored_seq,
            o.restored_seq + 1,
            o.anchored_seq
        );
    }
    Ok(ExitCode::from(1))
}

pub(crate) fn upgrade_check(
    runtime: &tokio::runtime::Runtime,
    action: UpgradeCheckAction,
) -> Result<ExitCode, CliError> {
    use relay_runtime::custody::{CustodyState, compare};
    match action {
        UpgradeCheckAction::Record { common, out } => {
            let config = load_common(common)?;
            let state =
                runtime.block_on(relay_node::backup::state_of_data_dir(&config.data_dir))?;
            state.write_new(&out)?;
            println!(
                "recorded {} trails of {} into {} (relay {} commit {})",
                state.trails.len(),
                config.data_dir.display(),
                out.display(),
                state.relay.version,
                state.relay.git_commit
            );
            for line in state.lines() {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        UpgradeCheckAction::Compare { common, with } => {
            let config = load_common(common)?;
            let before = CustodyState::read(&with)?;
            let state =
                runtime.block_on(relay_node::backup::state_of_data_dir(&config.data_dir))?;
            println!(
                "before: relay {} commit {}; now: relay {} commit {}",
                before.relay.version,
                before.relay.git_commit,
                state.relay.version,
                state.relay.git_commit
            );
            let differences = compare(&before, &state);
            if differences.is_empty() {
                println!(
                    "SAME  {} trails: every count and head equals {}",
                    state.trails.len(),
                    with.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for d in &differences {
                println!("DIFFERENT  {d}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
