//! The export's prepared pages (issue 23): the rows, leaves and HMAC verdicts computed ahead of
//! the ordered pass, on any number of threads, are exactly those of the record-by-record path
//! (`serde_json` for `records.jsonl`, the render functions for CSV / JSON, `push` for the
//! verdict), including on tampered records and hostile text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::executor::block_on;
use proptest::prelude::*;
use relay_domain::export::{PreparedPage, Renderings, SignatureIndex};
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::merkle::record_leaf_hash;
use relay_domain::{
    Actor, ActorSource, AppendService, ChainVerifier, Device, EventDraft, EventKind, KeyId,
    KeyRing, Payload, Project, Record, Subject, Timestamp, TrailId, TrailKey,
};

fn key() -> TrailKey {
    TrailKey::new(KeyId::new("k-a").unwrap(), &[7; 32]).unwrap()
}

fn trail() -> TrailId {
    TrailId::new("nmr-01").unwrap()
}

/// `n` records: captures with hostile subjects and projects, and every 7th a SIGNATURE of the
/// record before it (so rows carry signature cells).
fn records(n: usize) -> Vec<Record> {
    let store = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap(),
    ));
    let svc = AppendService::new(store, clock, key());
    let hostile = [
        "plain",
        "a,b \"q\"",
        "=SUM(1)",
        "ünï \u{1F600}",
        "line\nbreak",
        "tab\tx|y\\z",
    ];
    block_on(async {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let signature = i % 7 == 6;
            let text = hostile[i % hostile.len()];
            let payload = if signature {
                let target = out.last().unwrap();
                serde_json::json!({"target_checksum": target.checksum.to_hex(),
                    "printed_name": format!("Rita {text}"), "meaning": "reviewed",
                    "reason": format!("ok; {text} | \\")})
            } else {
                serde_json::json!({"size": i, "sha256": "ab", "note": text})
            };
            let draft = EventDraft {
                trail_id: trail(),
                kind: if signature {
                    EventKind::signature()
                } else {
                    EventKind::file_created()
                },
                actor: Some(Actor::new("alice").unwrap()),
                actor_source: ActorSource::OsSession,
                occurred_at: None,
                device: Device::new("nmr-01").unwrap(),
                project: (i % 3 == 0).then(|| Project::new(format!("p-{}", i % 5)).unwrap()),
                subject: Some(Subject::new(format!("run/{i}/{text}.fid")).unwrap()),
                payload: Payload::from_value(&payload).unwrap(),
            };
            out.push(svc.append(draft).await.unwrap());
        }
        out
    })
}

fn expected_csv(record: &Record, signatures: &SignatureIndex) -> Vec<u8> {
    let mut out = Vec::new();
    relay_domain::export::render::write_csv_prefix(record, &mut out);
    relay_domain::export::render::write_csv_signatures(signatures.on(&record.checksum), &mut out);
    out
}

fn expected_json(record: &Record, signatures: &SignatureIndex) -> Vec<u8> {
    let mut out = Vec::new();
    relay_domain::export::render::write_json_prefix(record, &mut out);
    relay_domain::export::render::write_json_signatures(signatures.on(&record.checksum), &mut out);
    out
}

// REQ: R5.1
#[test]
fn a_prepared_page_renders_every_row_as_the_record_by_record_path_on_any_thread_count() {
    let records = records(700);
    let mut signatures = SignatureIndex::new();
    for r in &records {
        signatures.observe(r);
    }
    assert!(!signatures.is_empty());
    let ring = KeyRing::single(key());
    let verifier = ChainVerifier::new(trail(), &ring);
    let both = Renderings {
        csv: true,
        json: true,
    };
    let selected = |r: &Record| !r.chain_seq.get().is_multiple_of(3);
    let mut page = PreparedPage::new();
    for threads in [8, 1, 2, 3, 8] {
        // One page value refilled for every thread count: nothing of the last fill remains.
        page.prepare(&verifier, &records, &signatures, both, &selected, threads);
        let rows: Vec<_> = page.rows().collect();
        assert_eq!(rows.len(), records.len(), "{threads} threads");
        for (record, row) in records.iter().zip(&rows) {
            assert_eq!(row.leaf, record_leaf_hash(record, &mut Vec::new()));
            if !selected(record) {
                assert!(row.jsonl.is_empty() && row.csv.is_empty() && row.json.is_empty());
                continue;
            }
            let mut jsonl = serde_json::to_vec(record).unwrap();
            jsonl.push(b'\n');
            assert_eq!(row.jsonl, jsonl.as_slice(), "seq {}", record.chain_seq);
            assert_eq!(row.csv, expected_csv(record, &signatures).as_slice());
            assert_eq!(row.json, expected_json(record, &signatures).as_slice());
        }
    }
    // Only the renderings asked for are written.
    let jsonl_only = Renderings {
        csv: false,
        json: false,
    };
    page.prepare(
        &verifier,
        &records[..10],
        &signatures,
        jsonl_only,
        &|_| true,
        2,
    );
    assert_eq!(page.rows().count(), 10);
    assert!(
        page.rows()
            .all(|row| row.csv.is_empty() && row.json.is_empty() && !row.jsonl.is_empty())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A tampered byte, a wrong key or a broken link anywhere in the page: the prepared
    /// verdicts name the same first bad record, for the same reason, as `push` record by record.
    // REQ: R1.3
    #[test]
    fn prepared_verdicts_name_the_same_first_bad_record_as_push(
        at in 0usize..300,
        how in 0u8..4,
        threads in 1usize..5,
    ) {
        let mut records = records(300);
        match how {
            0 => records[at].payload = Payload::from_stored("{\"x\":1}".into()),
            1 => records[at].key_id = KeyId::new("k-unknown").unwrap(),
            2 => records[at].checksum.0[at % 32] ^= 1,
            _ => records[at].prev_checksum.0[0] ^= 0x80,
        }
        let ring = KeyRing::single(key());
        let mut sequential = ChainVerifier::new(trail(), &ring);
        let expected = records.iter().try_for_each(|r| sequential.push(r));
        prop_assert!(expected.is_err());
        let mut v = ChainVerifier::new(trail(), &ring);
        let none = SignatureIndex::new();
        let renderings = Renderings { csv: false, json: false };
        let mut page = PreparedPage::new();
        page.prepare(&v, &records, &none, renderings, &|_| true, threads);
        let got = records
            .iter()
            .zip(page.rows())
            .try_for_each(|(r, row)| v.push_prepared(r, &row));
        prop_assert_eq!(got, expected);
    }
}
