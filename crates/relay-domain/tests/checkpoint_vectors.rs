//! The checkpoint vectors of `docs/spec/checkpoint.md`: the signed notes in
//! `docs/spec/checkpoint-vectors.json` must be exactly what this crate produces, each opens (or
//! is refused) as it says, and `docs/spec/verify_vectors.py` checks them with its own Ed25519.
//!
//! Set `RELAY_WRITE_VECTORS=1` to rewrite the file after a deliberate, versioned change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_domain::Checksum;
use relay_domain::checkpoint::{Checkpoint, ORIGIN_PREFIX, verifier_key};
use relay_domain::export::{SealKey, SealPublicKey};
use relay_domain::merkle::{leaf_hash, root_of};
use serde_json::{Value, json};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/spec/checkpoint-vectors.json"
);

fn vector(name: &str, seed: [u8; 32], cp: &Checkpoint, note: String, valid: bool) -> Value {
    let key = SealKey::from_seed(&seed).unwrap();
    json!({
        "name": name,
        "seed": hex::encode(seed),
        "public_key": key.public().to_hex(),
        "trail": cp.origin.strip_prefix(ORIGIN_PREFIX).unwrap(),
        "size": cp.size,
        "root": cp.root.to_hex(),
        "head": cp.head.to_hex(),
        "time": cp.time,
        "note": note,
        "verifier_key": verifier_key(&key.public()),
        "valid": valid,
    })
}

fn build() -> Value {
    let leaves: Vec<Checksum> = (0..13u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let seed_a = [0x42; 32];
    let seed_b: [u8; 32] = core::array::from_fn(|i| i as u8);
    let a = SealKey::from_seed(&seed_a).unwrap();
    let b = SealKey::from_seed(&seed_b).unwrap();
    let cp = |trail: &str, size: usize, head: u8, time: &str| Checkpoint {
        origin: format!("{ORIGIN_PREFIX}{trail}"),
        size: size as u64,
        root: root_of(&leaves[..size]),
        head: Checksum([head; 32]),
        time: time.to_owned(),
    };
    let first = cp("ws-01", 7, 0x11, "2026-12-04T20:00:00.000000Z");
    let second = cp("_relay", 13, 0x22, "2026-12-04T20:00:30.123456Z");
    let note_a = first.sign(&a);
    let mut flipped = note_a.clone().into_bytes();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    json!({
        "format": "gims-relay-checkpoint-vectors-v1",
        "description": "C2SP signed-note checkpoints of trail heads signed with the export seal key (docs/spec/checkpoint.md); tree heads over leaves SHA-256(0x00 || u64_be(i))",
        "vectors": [
            vector("a trail head", seed_a, &first, note_a.clone(), true),
            vector("the system trail, another key", seed_b, &second, second.sign(&b), true),
            vector("the size edited after signing", seed_a, &first, note_a.replacen("\n7\n", "\n6\n", 1), false),
            vector("a signature byte changed", seed_a, &first, String::from_utf8(flipped).unwrap(), false),
            vector("signed by another key under this key's name", seed_a, &first,
                first.sign(&b).replace(&relay_domain::checkpoint::key_name(&b.public()), &relay_domain::checkpoint::key_name(&a.public())), false),
        ],
    })
}

// REQ: R7.1
#[test]
fn checkpoint_vectors_match_the_published_spec() {
    let computed = build();
    if std::env::var_os("RELAY_WRITE_VECTORS").is_some() {
        std::fs::write(
            VECTORS,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let published: Value = serde_json::from_str(
        &std::fs::read_to_string(VECTORS).expect("docs/spec/checkpoint-vectors.json"),
    )
    .unwrap();
    assert_eq!(
        published, computed,
        "docs/spec/checkpoint-vectors.json no longer matches the checkpoint code"
    );
    for v in published["vectors"].as_array().unwrap() {
        let public = SealPublicKey::from_hex(v["public_key"].as_str().unwrap()).unwrap();
        let opened = Checkpoint::open(v["note"].as_str().unwrap(), &public);
        assert_eq!(opened.is_ok(), v["valid"].as_bool().unwrap(), "{v}");
    }
}
