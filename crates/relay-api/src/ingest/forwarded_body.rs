//! The fast path of an ingest body: the exact form a relay's forwarder writes, read without
//! `serde` (issue 23, item 4). Anything else takes the `serde` path, which decides.

use relay_domain::TrailId;

use super::IngestRequest;

/// The body as a relay's forwarder writes it (`{"trail_id":…,"records":[…]}`, no space, every
/// record in its canonical layout), read directly: the same request `serde` reads from it,
/// without `serde`'s cost per field. `None`: not known, and the caller parses with `serde`,
/// which decides and words any fault (see [`relay_domain::record::read_canonical_array`]).
pub(super) fn read_forwarded_body(bytes: &[u8]) -> Option<IngestRequest> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix("{\"trail_id\":\"")?;
    let trail_end = rest.find(['"', '\\'])?;
    let trail = &rest[..trail_end];
    let rest = rest[trail_end..].strip_prefix("\",\"records\":")?;
    // A trail id is a slug (letters, digits, '_', '-', '.'): `TrailId::new` refuses the rest.
    let trail_id = TrailId::new(trail).ok()?;
    let (records, end) = relay_domain::record::read_canonical_array(text, text.len() - rest.len())?;
    (&text[end..] == "}").then_some(IngestRequest { trail_id, records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_domain::memory::InMemoryRecordStore;
    use relay_domain::ports::TimeSource;
    use relay_domain::{
        Actor, ActorSource, AppendService, Device, EventDraft, EventKind, Payload, Record, TrailKey,
    };
    use std::sync::Arc;

    /// Three chained records of `trail` as a relay appends them.
    async fn chain(trail: &str, subject: Option<&str>) -> Vec<Record> {
        let store = Arc::new(InMemoryRecordStore::new());
        let clock: Arc<dyn TimeSource> = Arc::new(relay_domain::memory::ManualClock::new(
            relay_domain::Timestamp::from_unix_micros(1_764_075_475_123_456).unwrap(),
        ));
        let key = TrailKey::new(
            relay_domain::KeyId::new("k-0000000000000001").unwrap(),
            &[7; 32],
        )
        .unwrap();
        let appender = AppendService::new(store, clock, key);
        let mut out = Vec::new();
        for n in 0..3 {
            out.push(
                appender
                    .append(EventDraft {
                        trail_id: TrailId::new(trail).unwrap(),
                        kind: EventKind::file_created(),
                        actor: Some(Actor::new("analyst").unwrap()),
                        actor_source: ActorSource::OsSession,
                        occurred_at: None,
                        device: Device::new("ws-1").unwrap(),
                        project: None,
                        subject: subject.map(|s| relay_domain::Subject::new(s).unwrap()),
                        payload: Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
                    })
                    .await
                    .unwrap(),
            );
        }
        out
    }

    /// The body the forwarder sends (`relay_runtime::forward_ahead::encode_batch`).
    fn forwarded(trail: &str, records: &[Record]) -> String {
        serde_json::to_string(&serde_json::json!({ "trail_id": trail, "records": records }))
            .unwrap()
    }

    #[tokio::test]
    async fn a_forwarded_body_reads_directly_as_serde_reads_it() {
        let records = chain("nmr-1", Some("run/1.fid")).await;
        let body = format!(
            "{{\"trail_id\":\"nmr-1\",\"records\":{}}}",
            serde_json::to_string(&records).unwrap()
        );
        let direct = read_forwarded_body(body.as_bytes()).expect("read directly");
        let by_serde: IngestRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(direct.trail_id, by_serde.trail_id);
        assert_eq!(direct.records, by_serde.records);
        assert_eq!(direct.records, records);
    }

    #[tokio::test]
    async fn any_other_form_is_left_to_serde() {
        let records = chain("nmr-1", Some("run/1.fid")).await;
        let body = format!(
            "{{\"trail_id\":\"nmr-1\",\"records\":{}}}",
            serde_json::to_string(&records).unwrap()
        );
        let escaped = chain("nmr-1", Some("line\nbreak")).await;
        for other in [
            format!("{body} "),
            body.replacen("{\"trail_id\"", "{ \"trail_id\"", 1),
            body.replacen("\"nmr-1\",\"records\"", "\"nmr-1\", \"records\"", 1),
            body.replacen("\"trail_id\":\"nmr-1\"", "\"trail_id\":\"nmr\\u002d1\"", 1),
            body.replacen("\"trail_id\":\"nmr-1\"", "\"trail_id\":\"bad trail\"", 1),
            body.replacen("}]}", "}],\"extra\":1}", 1),
            // The fields the other way round: valid JSON, serde's to judge.
            format!(
                "{{\"records\":{},\"trail_id\":\"nmr-1\"}}",
                serde_json::to_string(&records).unwrap()
            ),
            forwarded("nmr-1", &escaped),
        ] {
            assert_ne!(other, body);
            assert!(read_forwarded_body(other.as_bytes()).is_none(), "{other}");
        }
        let mut not_utf8 = body.into_bytes();
        not_utf8[30] = 0xff;
        assert!(read_forwarded_body(&not_utf8).is_none());
    }
}
