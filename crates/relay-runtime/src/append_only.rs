//! The record store's append-only enforcement (R1.4), checked at every start.
//!
//! The store's triggers and grants are what make `event_log` refuse UPDATE and DELETE; an
//! attacker with access to the database can drop them. Every start reads them through the
//! [`RecordStore::append_only_enforcement`] port and records the result in the `STARTUP`
//! posture (`append_only`). When a control is missing, the relay also records a `SYSTEM` event
//! (`APPEND_ONLY_ENFORCEMENT_MISSING`), logs an error and sets the
//! `relay_append_only_missing` gauge, and keeps running: capture goes on (new records are
//! still chained and forwarded), and `verify` fails until the controls are restored.

use relay_domain::ports::{AppendOnlyEnforcement, RecordStore};

use crate::journal::Journal;

/// The `SYSTEM` event recorded when a start finds append-only enforcement missing.
pub const MISSING_EVENT: &str = "APPEND_ONLY_ENFORCEMENT_MISSING";

/// Reads the store's enforcement; a store that cannot say is reported as missing it.
pub async fn read(store: &dyn RecordStore) -> AppendOnlyEnforcement {
    match store.append_only_enforcement().await {
        Ok(e) => e,
        Err(e) => AppendOnlyEnforcement {
            mechanism: format!("{store:?}"),
            present: Vec::new(),
            missing: vec![format!(
                "the append-only controls could not be read: {}",
                relay_domain::error_chain(&e)
            )],
        },
    }
}

/// The `append_only` section of the `STARTUP` posture.
pub fn posture(e: &AppendOnlyEnforcement) -> serde_json::Value {
    serde_json::json!({
        "enforced": e.holds(),
        "mechanism": e.mechanism,
        "present": e.present,
        "missing": e.missing,
    })
}

/// Makes missing enforcement loud: error log, gauge, and (after the `STARTUP` event) a `SYSTEM`
/// event. Returns the journal's error if the event could not be recorded.
pub async fn report(
    e: &AppendOnlyEnforcement,
    journal: &Journal,
) -> Result<(), relay_domain::AppendError> {
    let missing = i64::try_from(e.missing.len()).unwrap_or(i64::MAX);
    journal.metrics().append_only_missing.set(missing);
    if e.holds() {
        return Ok(());
    }
    tracing::error!(
        mechanism = %e.mechanism,
        missing = %e.missing.join("; "),
        "APPEND-ONLY ENFORCEMENT IS MISSING: the record store no longer refuses edits or \
         deletions; `verify` fails until it is restored (see docs/operations.md)"
    );
    journal
        .system(
            MISSING_EVENT,
            serde_json::json!({
                "mechanism": e.mechanism,
                "missing": e.missing,
                "present": e.present,
            }),
        )
        .await
        .map(|_| ())
}
