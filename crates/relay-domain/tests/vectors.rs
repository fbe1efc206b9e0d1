//! The chain test vectors of `docs/spec/chain.md`: the canonical bytes and checksums in
//! `docs/spec/chain-vectors.json` must be exactly what this crate computes.
//!
//! Set `RELAY_WRITE_VECTORS=1` to rewrite the file after a deliberate, versioned format change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_domain::canonical::canonical_bytes;
use relay_domain::chain::checksum_of;
use relay_domain::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, GENESIS, KeyId, Payload, Project,
    Record, Subject, TimeLabel, Timestamp, TrailId, TrailKey,
};
use serde_json::json;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/spec/chain-vectors.json"
);

fn key(byte_start: u8, id: &str) -> (Vec<u8>, TrailKey) {
    let bytes: Vec<u8> = (0..32).map(|i| byte_start.wrapping_add(i)).collect();
    let key = TrailKey::new(KeyId::new(id).unwrap(), &bytes).unwrap();
    (bytes, key)
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_canonical(s).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn record(
    trail: &str,
    seq: u64,
    prev: Checksum,
    kind: &str,
    actor: &str,
    source: ActorSource,
    at: &str,
    label: TimeLabel,
    project: Option<&str>,
    subject: Option<&str>,
    payload: serde_json::Value,
    key: &TrailKey,
) -> Record {
    let mut r = Record {
        actor: Actor::new(actor).unwrap(),
        actor_source: source,
        chain_seq: ChainSeq::new(seq).unwrap(),
        device: Device::new("nmr-01").unwrap(),
        key_id: key.id().clone(),
        kind: EventKind::new(kind).unwrap(),
        occurred_at: ts(at),
        payload: Payload::from_value(&payload).unwrap(),
        prev_checksum: prev,
        project: project.map(|p| Project::new(p).unwrap()),
        recorded_at: ts(at),
        subject: subject.map(|s| Subject::new(s).unwrap()),
        time_source: label,
        trail_id: TrailId::new(trail).unwrap(),
        checksum: GENESIS,
    };
    r.checksum = checksum_of(&r, key);
    r
}

fn build() -> Vec<(Vec<u8>, Record)> {
    let (k1_bytes, k1) = key(0x00, "k-test-0001");
    let (k2_bytes, k2) = key(0x80, "k-test-0002");
    let v1 = record(
        "nmr-01",
        1,
        GENESIS,
        "FILE_CREATED",
        "alice",
        ActorSource::OsSession,
        "2026-11-25T09:00:00.000000Z",
        TimeLabel::System,
        Some("PRJ-42"),
        Some("2026/run1/fid"),
        json!({"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "size": 0, "root": "/data/nmr", "mtime": "2026-11-25T08:59:58.500000Z"}),
        &k1,
    );
    let v2 = record(
        "nmr-01",
        2,
        v1.checksum,
        "FILE_CREATED",
        "Zoë Ångström",
        ActorSource::OsSession,
        "2026-11-25T09:00:01.250000Z",
        TimeLabel::System,
        None,
        Some("Proben/Größe µ/測定.fid"),
        json!({"size": 1048576, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "root": "/data/nmr", "mtime": "2026-11-25T09:00:00.000001Z"}),
        &k1,
    );
    let v3 = record(
        "nmr-01",
        3,
        v2.checksum,
        "CAPTURE_FAILED",
        "alice",
        ActorSource::OsSession,
        "2026-11-25T09:00:02.000000Z",
        TimeLabel::System,
        Some("PRJ-42"),
        Some("odd \"name\"\\\tline\nbreak\u{1}.txt"),
        json!({"reason": "vanished mid-hash", "detail": {"z": [3, 2.5, -1e-7, true, null], "a": "\u{2028}"}}),
        &k1,
    );
    let v4 = record(
        "_relay",
        1,
        GENESIS,
        "STARTUP",
        "relay",
        ActorSource::System,
        "2026-11-25T08:59:00.000000Z",
        TimeLabel::Validated {
            offset_micros: -1250,
        },
        None,
        None,
        json!({"version": "0.1.0", "mode": "local", "notary": "filesystem", "worm": "unenforced"}),
        &k1,
    );
    // The key rotated between records 3 and 4 of trail nmr-01.
    let v5 = record(
        "nmr-01",
        4,
        v3.checksum,
        "SIGNATURE",
        "bob",
        ActorSource::Token,
        "2026-11-26T10:15:30.999999Z",
        TimeLabel::Validated { offset_micros: 310 },
        Some("PRJ-42"),
        Some("nmr-01#2"),
        json!({"meaning": "approved", "reason": "Spectrum matches reference", "target_checksum": v2.checksum.to_hex(), "printed_name": "Bob Builder"}),
        &k2,
    );
    // Captures by a relay running as the service account `relay` (uid 998): attributed to the
    // file's owner, to the console session's user, and to nobody (the service identity).
    let v6 = record(
        "nmr-01",
        5,
        v5.checksum,
        "FILE_CREATED",
        "alice",
        ActorSource::FileOwner,
        "2026-11-26T10:20:00.000000Z",
        TimeLabel::System,
        Some("PRJ-42"),
        Some("2026/run2/fid"),
        json!({"sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "size": 3, "root": "/data/nmr", "mtime": "2026-11-26T10:19:58.000000000Z", "owner": "alice", "owner_uid": 1001, "process_user": "relay", "process_uid": 998}),
        &k2,
    );
    let v7 = record(
        "nmr-01",
        6,
        v6.checksum,
        "FILE_CREATED",
        "bob",
        ActorSource::ConsoleSession,
        "2026-11-26T10:21:00.000000Z",
        TimeLabel::System,
        Some("PRJ-42"),
        Some("2026/run2/acqus"),
        json!({"sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", "size": 3, "root": "/data/nmr", "mtime": "2026-11-26T10:20:59.000000000Z", "owner": "nmr-daemon", "owner_uid": 990, "process_user": "relay", "process_uid": 998}),
        &k2,
    );
    let v8 = record(
        "nmr-01",
        7,
        v7.checksum,
        "FILE_CREATED",
        "relay",
        ActorSource::Service,
        "2026-11-26T10:22:00.000000Z",
        TimeLabel::System,
        Some("PRJ-42"),
        Some("2026/run2/pdata"),
        json!({"sha256": "baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096", "size": 3, "root": "/data/nmr", "mtime": "2026-11-26T10:21:59.000000000Z", "owner": null, "owner_uid": 4242, "process_user": "relay", "process_uid": 998, "unattributed": true}),
        &k2,
    );
    vec![
        (k1_bytes.clone(), v1),
        (k1_bytes.clone(), v2),
        (k1_bytes.clone(), v3),
        (k1_bytes, v4),
        (k2_bytes.clone(), v5),
        (k2_bytes.clone(), v6),
        (k2_bytes.clone(), v7),
        (k2_bytes, v8),
    ]
}

fn to_json(vectors: &[(Vec<u8>, Record)]) -> serde_json::Value {
    let items: Vec<_> = vectors
        .iter()
        .map(|(key, r)| {
            json!({
                "key_hex": hex::encode(key),
                "record": r,
                "canonical_bytes_utf8": String::from_utf8(canonical_bytes(r)).unwrap(),
                "expected_checksum": r.checksum.to_hex(),
            })
        })
        .collect();
    json!({ "format": "gims-relay chain v1", "vectors": items })
}

// REQ: R1.2, R11.5
#[test]
fn chain_vectors_match_the_published_spec() {
    let computed = to_json(&build());
    if std::env::var_os("RELAY_WRITE_VECTORS").is_some() {
        std::fs::write(
            VECTORS,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(VECTORS).expect("docs/spec/chain-vectors.json"),
    )
    .unwrap();
    assert_eq!(
        published, computed,
        "docs/spec/chain-vectors.json no longer matches the chain code"
    );
    assert!(published["vectors"].as_array().unwrap().len() >= 5);
}

// REQ: R1.1, R1.2
#[test]
fn published_records_parse_and_reproduce_their_checksums() {
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    for v in published["vectors"].as_array().unwrap() {
        let record: Record = serde_json::from_value(v["record"].clone()).unwrap();
        let key_bytes = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
        let key = TrailKey::new(record.key_id.clone(), &key_bytes).unwrap();
        assert_eq!(
            String::from_utf8(canonical_bytes(&record)).unwrap(),
            v["canonical_bytes_utf8"].as_str().unwrap()
        );
        assert_eq!(
            checksum_of(&record, &key).to_hex(),
            v["expected_checksum"].as_str().unwrap()
        );
        assert_eq!(
            record.checksum.to_hex(),
            v["expected_checksum"].as_str().unwrap()
        );
    }
}

// REQ: R11.5
#[test]
fn chain_spec_document_shows_every_published_vector() {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/spec/chain.md"
    ))
    .unwrap();
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    for v in published["vectors"].as_array().unwrap() {
        let checksum = v["expected_checksum"].as_str().unwrap();
        let bytes = v["canonical_bytes_utf8"].as_str().unwrap();
        assert!(
            spec.contains(checksum),
            "docs/spec/chain.md lacks vector checksum {checksum}"
        );
        assert!(
            spec.contains(bytes.trim_start_matches("gims-relay:event:v1\n")),
            "docs/spec/chain.md lacks the bytes of {checksum}"
        );
    }
}
