//! `relay-edge forward resume` on the local data directory: opens its stores and runs
//! [`relay_runtime::forward_resume::resume`].

use std::path::Path;

use relay_domain::error_chain;
use relay_domain::{Actor, Device, TrailId};
use relay_runtime::forward_resume::{ResumeError, ResumeOutcome, ResumePorts, resume};
use relay_runtime::forwarder::ForwardSettings;

/// Re-tries the dead-lettered batch of `trail` and, if the server accepts it now, clears the
/// poison and records `FORWARD_RESUMED` with `operator` and `reason`.
pub async fn resume_data_dir_trail(
    data_dir: &Path,
    settings: ForwardSettings,
    device: Device,
    trail: &TrailId,
    operator: &Actor,
    reason: &str,
) -> Result<ResumeOutcome, ResumeError> {
    if reason.trim().is_empty() {
        return Err(ResumeError::NoReason);
    }
    let open = |e: &dyn std::error::Error| ResumeError::Open(error_chain(e));
    if !crate::local::has_store(data_dir) {
        return Err(ResumeError::Open(format!(
            "no relay data in {} (relay.db not found); check --data-dir",
            data_dir.display()
        )));
    }
    let adapters = relay_local::LocalAdapters::open(data_dir)
        .await
        .map_err(|e| open(&e))?;
    let ports = ResumePorts {
        records: adapters.record_store.clone(),
        forward_cursors: adapters.forward_cursors.clone(),
        secrets: adapters.secrets.clone(),
        clock: adapters.clock.clone(),
    };
    let result = resume(&ports, settings, device, trail, operator, reason).await;
    adapters.record_store.close().await;
    result
}
