//! `relay-bench ui-trail`: stores a large, realistic capture trail in a relay data directory
//! for the review UI's scale test (issue 25: first page, last page and filtered searches over
//! 100,000 records, `e2e/browser/scale.test.mjs`).
//!
//! The records are chained and signed with the data directory's own trail key (created here,
//! as a relay would create it) and appended through the real SQLite record store in batches of
//! 4096, so `relay-server` or `relay-edge` started on the directory afterwards serves and
//! verifies them like records it captured itself. The mix: 1,000 run folders of 100 files
//! (`2026-run0001/spectrum-0001.fid`, …), four operators, three projects, a `FILE_MODIFIED`
//! every 10th record, a `FILE_DELETED` every 97th, one second apart.

use std::path::Path;

use relay_domain::chain::checksum_with_buf;
use relay_domain::ports::{RecordStore, SecretName, SecretProviderExt};
use relay_domain::{
    Actor, ActorSource, ChainSeq, Device, EventKind, GENESIS, Payload, Project, Record, Subject,
    TimeLabel, Timestamp, TrailId,
};
use relay_local::LocalAdapters;

/// Files per run folder.
const PER_RUN: usize = 100;
/// The operators, in turn.
pub(crate) const ACTORS: [&str; 4] = ["nmr-operator", "ada", "grace", "hplc-bot"];
/// The projects, in turn by run.
pub(crate) const PROJECTS: [&str; 3] = ["PRJ-42", "PRJ-7", "STABILITY-2026"];

/// The `i`-th record (0-based) of `trail`, without its chain fields.
fn record(trail: &TrailId, i: usize) -> Record {
    let run = i / PER_RUN;
    let kind = if i % 97 == 96 {
        EventKind::file_deleted()
    } else if i % 10 == 9 {
        EventKind::file_modified()
    } else {
        EventKind::file_created()
    };
    let at = Timestamp::from_unix_micros(1_764_000_000_000_000 + i as i64 * 1_000_000).unwrap();
    let subject = format!("2026-run{:04}/spectrum-{:04}.fid", run + 1, i % PER_RUN + 1);
    let mut payload = serde_json::json!({
        "sha256": format!("{:064x}", i + 1), "size": (i % 977 + 1) * 4096, "root": "/data/nmr",
        "mtime": at.to_canonical(), "process_user": "relay",
    });
    if kind == EventKind::file_modified() {
        payload["previous_sha256"] = serde_json::json!(format!("{:064x}", i));
    }
    Record {
        actor: Actor::new(ACTORS[i % ACTORS.len()]).unwrap(),
        actor_source: ActorSource::OsSession,
        chain_seq: ChainSeq::new(i as u64 + 1).unwrap(),
        device: Device::new("nmr-01").unwrap(),
        key_id: relay_domain::KeyId::new("placeholder").unwrap(),
        kind,
        occurred_at: at,
        payload: Payload::from_value(&payload).unwrap(),
        prev_checksum: GENESIS,
        project: Some(Project::new(PROJECTS[run % PROJECTS.len()]).unwrap()),
        recorded_at: at,
        subject: Some(Subject::new(subject).unwrap()),
        time_source: TimeLabel::System,
        trail_id: trail.clone(),
        checksum: GENESIS,
    }
}

/// Appends `n` records to `trail` in `data_dir` (created if missing); the trail must be new.
pub(crate) async fn build(data_dir: &Path, trail: &str, n: usize) -> Result<(), String> {
    let trail = TrailId::new(trail).map_err(|e| format!("ui-trail: --trail: {e}"))?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("ui-trail: create {}: {e}", data_dir.display()))?;
    let adapters = LocalAdapters::open(data_dir)
        .await
        .map_err(|e| format!("ui-trail: open {}: {e}", data_dir.display()))?;
    if adapters
        .record_store
        .head(&trail)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!("ui-trail: trail {trail} already has records"));
    }
    let key = adapters
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .map_err(|e| format!("ui-trail: trail key: {e}"))?
        .to_trail_key()
        .map_err(|e| format!("ui-trail: trail key: {e}"))?;
    let (mut prev, mut buf) = (GENESIS, Vec::new());
    let mut batch = Vec::with_capacity(4096);
    for i in 0..n {
        let mut r = record(&trail, i);
        r.key_id = key.id().clone();
        r.prev_checksum = prev;
        r.checksum = checksum_with_buf(&r, &key, &mut buf);
        prev = r.checksum;
        batch.push(r);
        if batch.len() == 4096 || i + 1 == n {
            adapters
                .record_store
                .append(&batch)
                .await
                .map_err(|e| format!("ui-trail: append: {e}"))?;
            batch.clear();
        }
    }
    adapters.record_store.close().await;
    Ok(())
}
