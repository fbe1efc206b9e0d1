//! The consistency proof vectors of `docs/spec/chain.md` section 5.1: the tree heads and RFC 9162
//! consistency proofs in `docs/spec/consistency-vectors.json` must be exactly what this crate
//! computes, and `docs/spec/verify_vectors.py` checks them with its own implementation.
//!
//! Set `RELAY_WRITE_VECTORS=1` to rewrite the file after a deliberate, versioned change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_domain::Checksum;
use relay_domain::merkle::{consistency_proof, leaf_hash, root_of, verify_consistency};
use serde_json::{Value, json};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/spec/consistency-vectors.json"
);

/// Leaf `i` of every vector tree: the leaf hash of `i` as 8 big-endian bytes.
fn leaves(n: usize) -> Vec<Checksum> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn hexes(proof: &[Checksum]) -> Vec<String> {
    proof.iter().map(Checksum::to_hex).collect()
}

/// Every prefix of trees of 7, 8 and 13 leaves (valid), and three forgeries (invalid): a
/// rewritten old head, a tree that shrank, a tampered proof node.
fn build() -> Value {
    let mut vectors = Vec::new();
    for n in [7usize, 8, 13] {
        let l = leaves(n);
        for m in 0..=n {
            vectors.push(json!({
                "old_size": m, "new_size": n,
                "old_root": root_of(&l[..m]).to_hex(), "new_root": root_of(&l).to_hex(),
                "proof": hexes(&consistency_proof(&l, m)), "valid": true,
            }));
        }
    }
    let l = leaves(13);
    let proof = consistency_proof(&l, 5);
    let mut rewritten = l.clone();
    rewritten[2] = leaf_hash(b"rewritten");
    let mut tampered = proof.clone();
    tampered[1] = leaf_hash(b"tampered");
    for (what, old_size, new_size, old_root, new_root, proof) in [
        (
            "an old record rewritten",
            5,
            13,
            root_of(&rewritten[..5]),
            root_of(&l),
            proof.clone(),
        ),
        (
            "the tree shrank",
            13,
            5,
            root_of(&l),
            root_of(&l[..5]),
            proof.clone(),
        ),
        (
            "a proof node tampered",
            5,
            13,
            root_of(&l[..5]),
            root_of(&l),
            tampered,
        ),
    ] {
        vectors.push(json!({
            "case": what, "old_size": old_size, "new_size": new_size,
            "old_root": old_root.to_hex(), "new_root": new_root.to_hex(),
            "proof": hexes(&proof), "valid": false,
        }));
    }
    json!({
        "description": "RFC 9162 consistency proofs over leaves SHA-256(0x00 || u64_be(i)), i = 0..new_size-1 (docs/spec/chain.md section 5.1)",
        "vectors": vectors,
    })
}

// REQ: R8.3
#[test]
fn consistency_vectors_match_the_published_spec() {
    let computed = build();
    if std::env::var_os("RELAY_WRITE_VECTORS").is_some() {
        std::fs::write(
            VECTORS,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let published: Value = serde_json::from_str(
        &std::fs::read_to_string(VECTORS).expect("docs/spec/consistency-vectors.json"),
    )
    .unwrap();
    assert_eq!(
        published, computed,
        "docs/spec/consistency-vectors.json no longer matches the Merkle code"
    );
    // Each published vector verifies, or is refused, as it says.
    let parse = |v: &Value| Checksum::from_hex(v.as_str().unwrap()).unwrap();
    for v in published["vectors"].as_array().unwrap() {
        let proof: Vec<Checksum> = v["proof"].as_array().unwrap().iter().map(parse).collect();
        let holds = verify_consistency(
            v["old_size"].as_u64().unwrap(),
            v["new_size"].as_u64().unwrap(),
            &parse(&v["old_root"]),
            &parse(&v["new_root"]),
            &proof,
        );
        assert_eq!(holds, v["valid"].as_bool().unwrap(), "{v}");
    }
}
