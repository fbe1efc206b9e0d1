//! An integrator's service that appends its own events to a trail and verifies them, using the
//! in-memory adapters (swap in `relay-local` or `relay-selfhosted` stores for durability).
//!
//! `cargo run -p relay-domain --example append_and_verify`

use std::sync::Arc;

use futures::executor::block_on;
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::RecordStore;
use relay_domain::verify::verify_stored_trail;
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, KeyId, KeyRing, Payload,
    Subject, Timestamp, TrailId, TrailKey,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production the key comes from a SecretProvider; here, 32 fixed bytes.
    let key = TrailKey::new(KeyId::new("k-example")?, &[7u8; 32])?;
    let store = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::parse_canonical(
        "2026-11-25T09:00:00.000000Z",
    )?));
    let service = AppendService::new(store.clone(), clock, key.clone());
    let trail = TrailId::new("lims-bridge")?;

    block_on(async {
        for (i, sample) in ["S-001", "S-002", "S-003"].iter().enumerate() {
            let record = service
                .append(EventDraft {
                    trail_id: trail.clone(),
                    kind: EventKind::new("SAMPLE_REGISTERED")?,
                    actor: Some(Actor::new("lims-service")?),
                    actor_source: ActorSource::Service,
                    occurred_at: None,
                    device: Device::new("lims-01")?,
                    project: None,
                    subject: Some(Subject::new(*sample)?),
                    payload: Payload::from_value(
                        &serde_json::json!({ "sample": sample, "position": i }),
                    )?,
                })
                .await?;
            println!(
                "appended {} seq {} checksum {}",
                record.trail_id, record.chain_seq, record.checksum
            );
        }
        let verdict =
            verify_stored_trail(store.as_ref(), &KeyRing::single(key), &trail, &[], |_| {}).await?;
        match verdict {
            Ok(summary) => println!(
                "trail {} holds: {} records verified",
                summary.trail_id, summary.records
            ),
            Err(failure) => println!("trail broken: {failure}"),
        }
        let head = store.head(&trail).await?;
        println!("head: {head:?}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
