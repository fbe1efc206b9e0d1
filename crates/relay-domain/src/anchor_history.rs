//! Checks a trail's notary anchors against each other, without its records
//! (docs/spec/checkpoint.md, "Anchor format v2"): each version 2 anchor's signed checkpoint
//! states what the anchor states, its frontier yields its tree head, its consistency link names
//! an anchor that is there and the RFC 9162 proof holds (a tree never shrinks), and no two
//! anchors disagree about the same seq. Following the links back from the newest anchor proves
//! every anchor on the way is a prefix of the newest tree: the trail only grew.

use std::collections::BTreeMap;
use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError, ORIGIN_PREFIX, split_note};
use crate::export::{SealKey, SealPublicKey};
use crate::ids::{ChainSeq, Checksum, TrailId};
use crate::merkle::{MerkleAccumulator, consistency_proof_from_frontier, verify_consistency};
use crate::ports::{ANCHOR_VERSION, Anchor, ConsistencyLink};
use crate::timestamp::{TimeLabel, Timestamp};

/// What a relay keeps of a trail's previous anchor to link the next one to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorBase {
    /// The previous anchor's seq.
    pub seq: ChainSeq,
    /// Its tree head.
    pub root: Checksum,
    /// Its frontier.
    pub frontier: Vec<Checksum>,
}

impl AnchorBase {
    /// The base an anchor leaves for the next one (`None` for an anchor without a tree head).
    pub fn of(anchor: &Anchor) -> Option<Self> {
        Some(Self {
            seq: anchor.seq,
            root: anchor.merkle_root?,
            frontier: anchor.frontier.clone(),
        })
    }
}

/// Builds a version 2 anchor of the head `(seq, checksum)` whose tree is `tree` (over records
/// `1..=seq`): its frontier, the consistency link from `base` given the leaves appended since
/// (`None` when there is no base, or it has no frontier), and the checkpoint signed with `seal`.
#[allow(clippy::too_many_arguments)]
pub fn build_anchor(
    trail: &TrailId,
    seq: ChainSeq,
    checksum: Checksum,
    tree: &MerkleAccumulator,
    base: Option<&AnchorBase>,
    leaves_since_base: &[Checksum],
    at: (Timestamp, TimeLabel),
    seal: Option<&SealKey>,
) -> Anchor {
    let consistency = base.and_then(|b| {
        let proof = consistency_proof_from_frontier(b.seq.get(), &b.frontier, leaves_since_base)?;
        Some(ConsistencyLink {
            from_seq: b.seq,
            from_root: b.root,
            proof,
        })
    });
    let mut anchor = Anchor {
        trail_id: trail.clone(),
        seq,
        checksum,
        merkle_root: Some(tree.root()),
        anchored_at: at.0,
        time_source: at.1,
        version: ANCHOR_VERSION,
        frontier: tree.frontier().to_vec(),
        consistency,
        checkpoint: None,
    };
    anchor.checkpoint = seal.map(|key| expected_checkpoint(&anchor).sign(key));
    anchor
}

/// What is wrong with one anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorProblem {
    /// The checkpoint is missing, malformed, not signed by the seal key, or states something
    /// other than the anchor.
    Checkpoint(CheckpointError),
    /// A version 2 anchor carries no checkpoint although the seal key is known.
    Unsigned,
    /// The frontier does not yield the anchor's tree head.
    Frontier,
    /// The consistency link names an anchor (seq, tree head) the notary does not hold:
    /// anchors between were deleted, or this one was forged.
    LinkMissing {
        /// The seq the link names.
        from_seq: ChainSeq,
    },
    /// The consistency proof from the linked anchor does not hold: the tree shrank or was
    /// rewritten between them.
    Inconsistent {
        /// The seq the link names.
        from_seq: ChainSeq,
    },
    /// Another anchor of the same seq holds another tree head: the trail forked.
    Fork {
        /// The other tree head.
        other_root: Checksum,
    },
}

impl fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Checkpoint(e) => write!(f, "{e}"),
            Self::Unsigned => f.write_str("version 2 anchor without a signed checkpoint"),
            Self::Frontier => f.write_str("its frontier does not yield its Merkle root"),
            Self::LinkMissing { from_seq } => write!(
                f,
                "its consistency link names an anchor at chain_seq {from_seq} that the notary does not hold (anchors deleted, or this one forged)"
            ),
            Self::Inconsistent { from_seq } => write!(
                f,
                "the consistency proof from the anchor at chain_seq {from_seq} does not hold: the tree shrank or was rewritten"
            ),
            Self::Fork { other_root } => write!(
                f,
                "another anchor of the same chain_seq holds Merkle root {other_root}: the trail forked"
            ),
        }
    }
}

/// One problem, with the anchor it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorFinding {
    /// The anchor's seq.
    pub seq: ChainSeq,
    /// When it was made (as it says).
    pub anchored_at: String,
    /// What is wrong.
    pub problem: AnchorProblem,
}

impl fmt::Display for AnchorFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "anchor at chain_seq {} ({}): {}",
            self.seq, self.anchored_at, self.problem
        )
    }
}

/// What [`check_anchor_history`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorHistory {
    /// Every problem, by seq.
    pub findings: Vec<AnchorFinding>,
    /// Version 2 anchors checked.
    pub version_2: usize,
    /// Checkpoints whose signature was verified with the seal key.
    pub signatures_verified: usize,
    /// Consistency proofs that held.
    pub proofs_verified: usize,
    /// Anchors proven to be prefixes of the newest anchor's tree by the chain of links from it
    /// (the newest included).
    pub proven_prefixes: usize,
}

impl AnchorHistory {
    /// Whether nothing is wrong.
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks `anchors` of `trail` against each other; `seal` is the key that signs checkpoints
/// when the verifier knows it (without it, checkpoints are still parsed and compared, but
/// their signatures are not checked and a missing checkpoint is not a finding).
pub fn check_anchor_history(
    trail: &TrailId,
    anchors: &[Anchor],
    seal: Option<&SealPublicKey>,
) -> AnchorHistory {
    let mut out = AnchorHistory::default();
    let mut by_seq: BTreeMap<ChainSeq, Vec<&Anchor>> = BTreeMap::new();
    for a in anchors.iter().filter(|a| &a.trail_id == trail) {
        by_seq.entry(a.seq).or_default().push(a);
    }
    let mut findings = Vec::new();
    let mut find = |a: &Anchor, problem: AnchorProblem| {
        findings.push(AnchorFinding {
            seq: a.seq,
            anchored_at: a.anchored_at.to_string(),
            problem,
        });
    };
    for (seq, same) in &by_seq {
        let mut roots = same.iter().filter_map(|a| a.merkle_root);
        if let Some(first) = roots.next()
            && let Some(other) = roots.find(|r| *r != first)
        {
            find(same[0], AnchorProblem::Fork { other_root: other });
        }
        for a in same {
            if a.version < ANCHOR_VERSION {
                continue;
            }
            out.version_2 += 1;
            match (&a.checkpoint, seal) {
                (Some(note), key) => match checkpoint_matches(a, note, key) {
                    Ok(()) => out.signatures_verified += usize::from(key.is_some()),
                    Err(e) => find(a, AnchorProblem::Checkpoint(e)),
                },
                (None, Some(_)) => find(a, AnchorProblem::Unsigned),
                (None, None) => {}
            }
            if !a.frontier.is_empty() {
                let root = MerkleAccumulator::resume(seq.get(), &a.frontier).map(|acc| acc.root());
                if root.is_none() || root != a.merkle_root {
                    find(a, AnchorProblem::Frontier);
                }
            }
            if let Some(link) = &a.consistency {
                let linked = by_seq
                    .get(&link.from_seq)
                    .is_some_and(|l| l.iter().any(|p| p.merkle_root == Some(link.from_root)));
                let holds = a.merkle_root.is_some_and(|root| {
                    verify_consistency(
                        link.from_seq.get(),
                        seq.get(),
                        &link.from_root,
                        &root,
                        &link.proof,
                    )
                });
                if !holds {
                    find(
                        a,
                        AnchorProblem::Inconsistent {
                            from_seq: link.from_seq,
                        },
                    );
                } else if !linked {
                    find(
                        a,
                        AnchorProblem::LinkMissing {
                            from_seq: link.from_seq,
                        },
                    );
                } else {
                    out.proofs_verified += 1;
                }
            }
        }
    }
    // The chain of links back from the newest anchor.
    if let Some(newest) = by_seq.values().next_back().and_then(|l| l.first()) {
        let mut at = *newest;
        out.proven_prefixes = 1;
        while let Some(link) = &at.consistency {
            let Some(prev) = by_seq.get(&link.from_seq).and_then(|l| {
                l.iter()
                    .find(|p| p.merkle_root == Some(link.from_root))
                    .copied()
            }) else {
                break;
            };
            if prev.seq >= at.seq {
                break;
            }
            out.proven_prefixes += 1;
            at = prev;
        }
    }
    findings.sort_by_key(|f| f.seq);
    out.findings = findings;
    out
}

/// Whether `note` is a checkpoint of exactly `anchor` (signed by `seal` when given).
fn checkpoint_matches(
    anchor: &Anchor,
    note: &str,
    seal: Option<&SealPublicKey>,
) -> Result<(), CheckpointError> {
    let cp = match seal {
        Some(key) => Checkpoint::open(note, key)?,
        None => Checkpoint::parse_body(split_note(note)?.0)?,
    };
    let expected = expected_checkpoint(anchor);
    let differs = |field, found: String, expected: String| {
        Err(CheckpointError::Differs {
            field,
            found,
            expected,
        })
    };
    if cp.origin != expected.origin {
        return differs("origin", cp.origin, expected.origin);
    }
    if cp.size != expected.size {
        return differs("size", cp.size.to_string(), expected.size.to_string());
    }
    if cp.root != expected.root {
        return differs("root", cp.root.to_hex(), expected.root.to_hex());
    }
    if cp.head != expected.head {
        return differs("head", cp.head.to_hex(), expected.head.to_hex());
    }
    if cp.time != expected.time {
        return differs("time", cp.time, expected.time);
    }
    Ok(())
}

/// The checkpoint an anchor's fields call for (the root of an anchor without one is all zeros,
/// which no checkpoint matches).
pub fn expected_checkpoint(anchor: &Anchor) -> Checkpoint {
    Checkpoint {
        origin: format!("{ORIGIN_PREFIX}{}", anchor.trail_id),
        size: anchor.seq.get(),
        root: anchor.merkle_root.unwrap_or(Checksum([0; 32])),
        head: anchor.checksum,
        time: anchor.anchored_at.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    struct Fixture {
        trail: TrailId,
        key: SealKey,
        leaves: Vec<Checksum>,
        anchors: Vec<Anchor>,
    }

    /// Anchors after 3, 7 and 12 leaves, each linked to the one before.
    fn fixture() -> Fixture {
        let trail = TrailId::new("ws-01").unwrap();
        let key = SealKey::from_seed(&[9; 32]).unwrap();
        let leaves: Vec<Checksum> = (0..12u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut anchors = Vec::new();
        let mut acc = MerkleAccumulator::new();
        let mut base: Option<AnchorBase> = None;
        for (i, stop) in [3usize, 7, 12].into_iter().enumerate() {
            let from = base.as_ref().map_or(0, |b| b.seq.get() as usize);
            for l in &leaves[from..stop] {
                acc.push_leaf_hash(*l);
            }
            let a = build_anchor(
                &trail,
                ChainSeq::new(stop as u64).unwrap(),
                Checksum([stop as u8; 32]),
                &acc,
                base.as_ref(),
                &leaves[from..stop],
                (
                    Timestamp::from_unix_micros(1_000_000 * (i as i64 + 1)).unwrap(),
                    TimeLabel::System,
                ),
                Some(&key),
            );
            base = AnchorBase::of(&a);
            anchors.push(a);
        }
        Fixture {
            trail,
            key,
            leaves,
            anchors,
        }
    }

    fn problems(f: &Fixture, anchors: &[Anchor]) -> Vec<AnchorProblem> {
        check_anchor_history(&f.trail, anchors, Some(&f.key.public()))
            .findings
            .into_iter()
            .map(|x| x.problem)
            .collect()
    }

    #[test]
    fn linked_signed_anchors_prove_the_trail_only_grew() {
        let f = fixture();
        let h = check_anchor_history(&f.trail, &f.anchors, Some(&f.key.public()));
        assert!(h.holds(), "{:?}", h.findings);
        assert_eq!(
            (
                h.version_2,
                h.signatures_verified,
                h.proofs_verified,
                h.proven_prefixes
            ),
            (3, 3, 2, 3)
        );
        // Survives the JSON a notary stores.
        let json = serde_json::to_string(&f.anchors).unwrap();
        let back: Vec<Anchor> = serde_json::from_str(&json).unwrap();
        assert!(check_anchor_history(&f.trail, &back, Some(&f.key.public())).holds());
    }

    #[test]
    fn an_anchor_that_shrinks_the_tree_fails_its_consistency_check() {
        let f = fixture();
        // Signed with the real key (an attacker on the workstation may hold it), claiming the
        // trail went from 12 records back to 5 with a fresh tree.
        let mut acc = MerkleAccumulator::new();
        for i in 0..5u64 {
            acc.push_leaf_hash(leaf_hash(&(100 + i).to_be_bytes()));
        }
        let mut shrunk = build_anchor(
            &f.trail,
            ChainSeq::new(5).unwrap(),
            Checksum([5; 32]),
            &acc,
            None,
            &[],
            (
                Timestamp::from_unix_micros(9_000_000).unwrap(),
                TimeLabel::System,
            ),
            Some(&f.key),
        );
        shrunk.consistency = Some(ConsistencyLink {
            from_seq: ChainSeq::new(12).unwrap(),
            from_root: f.anchors[2].merkle_root.unwrap(),
            proof: vec![],
        });
        let mut all = f.anchors.clone();
        all.push(shrunk);
        assert_eq!(
            problems(&f, &all),
            vec![AnchorProblem::Inconsistent {
                from_seq: ChainSeq::new(12).unwrap()
            }]
        );
    }

    #[test]
    fn a_deleted_anchor_a_fork_and_a_rewritten_root_are_named() {
        let f = fixture();
        // The middle anchor deleted: the newest one's link names what is gone.
        let without_middle = vec![f.anchors[0].clone(), f.anchors[2].clone()];
        assert_eq!(
            problems(&f, &without_middle),
            vec![AnchorProblem::LinkMissing {
                from_seq: ChainSeq::new(7).unwrap()
            }]
        );
        // A second anchor at seq 7 over a rewritten trail, linked and signed: a fork.
        let mut rewritten = f.leaves.clone();
        rewritten[4] = leaf_hash(b"rewritten");
        let mut acc = MerkleAccumulator::new();
        for l in &rewritten[..7] {
            acc.push_leaf_hash(*l);
        }
        let base = AnchorBase::of(&f.anchors[0]).unwrap();
        let fork = build_anchor(
            &f.trail,
            ChainSeq::new(7).unwrap(),
            Checksum([7; 32]),
            &acc,
            Some(&base),
            &rewritten[3..7],
            (
                Timestamp::from_unix_micros(8_000_000).unwrap(),
                TimeLabel::System,
            ),
            Some(&f.key),
        );
        let mut all = f.anchors.clone();
        all.push(fork);
        assert!(matches!(
            problems(&f, &all)[..],
            [AnchorProblem::Fork { .. }]
        ));
        // A root rewritten in place: the proofs to and from it fail, and so does its
        // checkpoint and frontier.
        let mut edited = f.anchors.clone();
        edited[1].merkle_root = Some(acc.root());
        let p = problems(&f, &edited);
        assert!(p.contains(&AnchorProblem::Frontier), "{p:?}");
        assert!(
            p.contains(&AnchorProblem::Inconsistent {
                from_seq: ChainSeq::new(3).unwrap()
            }),
            "{p:?}"
        );
        assert!(
            p.contains(&AnchorProblem::LinkMissing {
                from_seq: ChainSeq::new(7).unwrap()
            }),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| matches!(
                x,
                AnchorProblem::Checkpoint(CheckpointError::Differs { field: "root", .. })
            )),
            "{p:?}"
        );
    }

    #[test]
    fn checkpoints_must_be_the_seal_keys_and_state_the_anchor() {
        let f = fixture();
        let other = SealKey::from_seed(&[10; 32]).unwrap();
        let mut a = f.anchors.clone();
        a[0].checkpoint = Some(expected_checkpoint(&a[0]).sign(&other));
        a[1].checkpoint = None;
        let mut moved = a[2].clone();
        moved.anchored_at = Timestamp::from_unix_micros(1).unwrap();
        a[2] = moved;
        let p = problems(&f, &a);
        assert!(
            matches!(
                p[0],
                AnchorProblem::Checkpoint(CheckpointError::NoSignature(_))
            ),
            "{p:?}"
        );
        assert_eq!(p[1], AnchorProblem::Unsigned);
        assert!(
            matches!(
                p[2],
                AnchorProblem::Checkpoint(CheckpointError::Differs { field: "time", .. })
            ),
            "{p:?}"
        );
        // Without the key, signatures are not checked, but the content still is.
        let h = check_anchor_history(&f.trail, &a, None);
        assert_eq!(h.signatures_verified, 0);
        assert_eq!(h.findings.len(), 1);
    }

    #[test]
    fn version_1_anchors_still_verify_beside_version_2() {
        let f = fixture();
        let mut old = f.anchors[0].clone();
        old.version = 1;
        old.frontier.clear();
        old.consistency = None;
        old.checkpoint = None;
        let json = serde_json::to_value(&old).unwrap();
        assert!(json.get("version").is_none() && json.get("checkpoint").is_none());
        let all = vec![old, f.anchors[1].clone(), f.anchors[2].clone()];
        let h = check_anchor_history(&f.trail, &all, Some(&f.key.public()));
        assert!(h.holds(), "{:?}", h.findings);
        assert_eq!(h.version_2, 2);
    }
}
