//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing over trail records.
//!
//! Leaf hash: `SHA-256(0x00 || leaf)`; node hash: `SHA-256(0x01 || left || right)`. A record's
//! leaf input is its canonical bytes followed by its 32-byte checksum, so the tree binds each
//! record's full content without needing the trail key.

use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;
use crate::ids::Checksum;
use crate::record::Record;

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Checksum {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Checksum(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Checksum, right: &Checksum) -> Checksum {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Checksum(h.finalize().into())
}

/// The leaf hash of a record: canonical bytes then checksum.
pub fn record_leaf_hash(record: &Record, buf: &mut Vec<u8>) -> Checksum {
    buf.clear();
    write_canonical(record, buf);
    canonical_leaf_hash(buf, &record.checksum)
}

/// The leaf hash of a record whose canonical bytes are already encoded, `SHA-256(0x00 ||
/// canonical || checksum)`: what [`record_leaf_hash`] computes, for callers that hold the
/// encoding (the export's preparation, the package verifier's line reader).
pub fn canonical_leaf_hash(canonical: &[u8], checksum: &Checksum) -> Checksum {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(canonical);
    h.update(checksum.0);
    Checksum(h.finalize().into())
}

/// The root of an empty tree: `SHA-256("")`.
pub fn empty_root() -> Checksum {
    Checksum(Sha256::digest([]).into())
}

/// Builds the RFC 9162 tree head incrementally in O(log n) memory.
#[derive(Debug, Clone, Default)]
pub struct MerkleAccumulator {
    // Roots of perfect subtrees, largest first; `sizes[i]` is the leaf count of `roots[i]`.
    roots: Vec<Checksum>,
    sizes: Vec<u64>,
    leaves: u64,
}

impl MerkleAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next leaf (already leaf-hashed).
    pub fn push_leaf_hash(&mut self, leaf: Checksum) {
        self.roots.push(leaf);
        self.sizes.push(1);
        self.leaves += 1;
        while self.sizes.len() >= 2 {
            let n = self.sizes.len();
            if self.sizes[n - 1] != self.sizes[n - 2] {
                break;
            }
            let right = self.roots.pop().unwrap_or_else(|| unreachable!("len >= 2"));
            let left = self.roots.pop().unwrap_or_else(|| unreachable!("len >= 2"));
            let size = self.sizes.pop().unwrap_or(0) * 2;
            self.sizes.pop();
            self.roots.push(node_hash(&left, &right));
            self.sizes.push(size);
        }
    }

    /// How many leaves were added.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    /// Whether no leaf was added.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// The frontier: the heads of the perfect subtrees over all leaves so far, largest
    /// (leftmost) first, one per set bit of [`len`](Self::len). With the length, it is all an
    /// accumulator needs to continue ([`resume`](Self::resume)).
    pub fn frontier(&self) -> &[Checksum] {
        &self.roots
    }

    /// An accumulator over `size` leaves whose frontier is `frontier` (as
    /// [`frontier`](Self::frontier) returned it), ready for the next leaf. `None` when the
    /// frontier does not have one node per set bit of `size`.
    pub fn resume(size: u64, frontier: &[Checksum]) -> Option<Self> {
        let ranges = frontier_ranges(size);
        if ranges.len() != frontier.len() {
            return None;
        }
        Some(Self {
            roots: frontier.to_vec(),
            sizes: ranges.iter().map(|(a, b)| b - a).collect(),
            leaves: size,
        })
    }

    /// The tree head over all leaves so far (RFC 9162 MTH).
    pub fn root(&self) -> Checksum {
        // MTH folds the perfect subtrees right to left: the rightmost, smallest ones join first.
        let mut iter = self.roots.iter().rev();
        let Some(first) = iter.next() else {
            return empty_root();
        };
        iter.fold(*first, |acc, left| node_hash(left, &acc))
    }
}

/// The RFC 9162 tree head of a list of leaf hashes (reference recursion, for tests and proofs).
pub fn root_of(leaves: &[Checksum]) -> Checksum {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n >= 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The audit path proving leaf `index` is in the tree over `leaves` (RFC 9162 PATH).
pub fn inclusion_proof(leaves: &[Checksum], index: usize) -> Vec<Checksum> {
    fn path(leaves: &[Checksum], m: usize, out: &mut Vec<Checksum>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            path(&leaves[..k], m, out);
            out.push(root_of(&leaves[k..]));
        } else {
            path(&leaves[k..], m - k, out);
            out.push(root_of(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    if index < leaves.len() {
        path(leaves, index, &mut out);
    }
    out
}

/// Checks an RFC 9162 inclusion proof (the verification algorithm of section 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Checksum,
    index: u64,
    tree_size: u64,
    proof: &[Checksum],
    root: &Checksum,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r.ct_eq(root)
}

/// The proof that the tree over the first `old_size` of `leaves` is a prefix of the tree over
/// all of them (RFC 9162 section 2.1.4.1, `PROOF(m, D[n])`): the trail only grew between two
/// tree heads. Empty when `old_size` is 0, equals the whole length, or exceeds it (nothing to
/// prove, or nothing provable).
pub fn consistency_proof(leaves: &[Checksum], old_size: usize) -> Vec<Checksum> {
    let mut out = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        let node = &mut |start: u64, end: u64| Some(root_of(&leaves[start as usize..end as usize]));
        subproof(
            old_size as u64,
            0,
            leaves.len() as u64,
            true,
            node,
            &mut out,
        );
    }
    out
}

/// The same proof as [`consistency_proof`], made from what a relay keeps between two anchors:
/// the old tree's frontier (its perfect subtrees, largest first, as
/// [`MerkleAccumulator::frontier`] returns them) and only the leaves appended since. Every node
/// of an RFC 9162 consistency proof is either a perfect subtree of the old tree that is one of
/// its frontier nodes, or a subtree made only of new leaves, so the records before the old
/// anchor are never read again. `None` when `old_frontier` does not fit `old_size`.
pub fn consistency_proof_from_frontier(
    old_size: u64,
    old_frontier: &[Checksum],
    new_leaves: &[Checksum],
) -> Option<Vec<Checksum>> {
    let ranges = frontier_ranges(old_size);
    if ranges.len() != old_frontier.len() {
        return None;
    }
    let new_size = old_size.checked_add(new_leaves.len() as u64)?;
    let mut out = Vec::new();
    if old_size == 0 || new_leaves.is_empty() {
        return Some(out);
    }
    let node = |start: u64, end: u64| {
        if start >= old_size {
            let (a, b) = ((start - old_size) as usize, (end - old_size) as usize);
            Some(root_of(new_leaves.get(a..b)?))
        } else {
            ranges
                .iter()
                .position(|r| *r == (start, end))
                .map(|i| old_frontier[i])
        }
    };
    let mut complete = true;
    let mut checked = |start: u64, end: u64| {
        let n = node(start, end);
        complete &= n.is_some();
        n
    };
    subproof(old_size, 0, new_size, true, &mut checked, &mut out);
    complete.then_some(out)
}

/// The leaf ranges `[start, end)` of the perfect subtrees that make up a tree of `size`
/// leaves, largest (leftmost) first: one per set bit of `size`.
fn frontier_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = 0;
    for bit in (0..64).rev() {
        let width = 1u64 << bit;
        if size & width != 0 {
            out.push((start, start + width));
            start += width;
        }
    }
    out
}

/// `SUBPROOF(m, D[start..end], b)` of RFC 9162 section 2.1.4.1, over absolute leaf ranges;
/// `node(start, end)` gives the head of a subtree. A node it cannot give is left out (the
/// caller notices through its own bookkeeping).
fn subproof(
    m: u64,
    start: u64,
    end: u64,
    whole_old_tree: bool,
    node: &mut dyn FnMut(u64, u64) -> Option<Checksum>,
    out: &mut Vec<Checksum>,
) {
    let n = end - start;
    if m == n {
        if !whole_old_tree {
            out.extend(node(start, end));
        }
        return;
    }
    let k = split_point(n as usize) as u64;
    if m <= k {
        subproof(m, start, start + k, whole_old_tree, node, out);
        out.extend(node(start + k, end));
    } else {
        subproof(m - k, start + k, end, false, node, out);
        out.extend(node(start, start + k));
    }
}

/// Checks an RFC 9162 consistency proof (section 2.1.4.2): that the tree of `old_size` leaves
/// with head `old_root` is a prefix of the tree of `new_size` leaves with head `new_root`. A
/// tree never shrinks: `old_size > new_size` is false. Two equal sizes are consistent only with
/// equal heads and an empty proof; the empty tree is a prefix of every tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Checksum,
    new_root: &Checksum,
    proof: &[Checksum],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root.ct_eq(new_root);
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    // An old tree that is a perfect subtree of the new one is its own first proof node.
    let path: Vec<Checksum> = if old_size.is_power_of_two() {
        std::iter::once(*old_root)
            .chain(proof.iter().copied())
            .collect()
    } else {
        proof.to_vec()
    };
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr.ct_eq(old_root) && sr.ct_eq(new_root)
}

/// A whole RFC 9162 tree kept level by level, for producing many inclusion proofs quickly.
///
/// Level 0 holds the leaf hashes; each level above pairs neighbours left to right and carries an
/// unpaired last node up unchanged, which yields exactly the RFC 9162 tree (largest power of two
/// on the left). Memory is about `2 * 32 * n` bytes; each proof costs O(log n).
#[derive(Debug, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Checksum>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (already leaf-hashed).
    pub fn from_leaves(leaves: Vec<Checksum>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above: Vec<Checksum> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// How many leaves the tree has.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if any.
    pub fn leaf(&self, index: u64) -> Option<Checksum> {
        let i = usize::try_from(index).ok()?;
        self.levels.first().and_then(|l| l.get(i)).copied()
    }

    /// The tree head (RFC 9162 MTH).
    pub fn root(&self) -> Checksum {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => empty_root(),
        }
    }

    /// The audit path of leaf `index`, bottom to top (RFC 9162 PATH); empty when out of range.
    pub fn inclusion_proof(&self, index: u64) -> Vec<Checksum> {
        let mut out = Vec::new();
        let Ok(mut i) = usize::try_from(index) else {
            return out;
        };
        if index >= self.len() {
            return out;
        }
        for level in &self.levels[..self.levels.len().saturating_sub(1)] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                out.push(level[sibling]);
            }
            i >>= 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Checksum> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn empty_and_single_leaf_roots() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(1);
        assert_eq!(root_of(&l), l[0]);
    }

    proptest! {
        #[test]
        fn accumulator_matches_reference_and_proofs_verify(n in 1usize..70, pick in 0usize..70) {
            let l = leaves(n);
            let mut acc = MerkleAccumulator::new();
            for h in &l { acc.push_leaf_hash(*h); }
            let root = root_of(&l);
            prop_assert_eq!(acc.root(), root);
            let i = pick % n;
            let proof = inclusion_proof(&l, i);
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &proof, &root));
            let other = leaf_hash(b"not in the tree");
            prop_assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &root));
            if n > 1 {
                prop_assert!(!verify_inclusion(&l[i], ((i + 1) % n) as u64, n as u64, &proof, &root));
            }
            let tree = MerkleTree::from_leaves(l.clone());
            prop_assert_eq!(tree.root(), root);
            prop_assert_eq!(tree.len(), n as u64);
            prop_assert_eq!(tree.inclusion_proof(i as u64), proof);
        }

        /// Every prefix of a tree is proven consistent with it, and the proof holds for no
        /// other pair of heads or sizes: a rewritten old leaf, a swapped head, a tree that
        /// shrank, or a tampered proof node are all refused (issue 19).
        #[test]
        fn consistency_proofs_verify_and_catch_rewrites(n in 1usize..70, pick in 0usize..70, flip in 0usize..16) {
            let l = leaves(n);
            let m = pick % (n + 1);
            let (old_root, new_root) = (root_of(&l[..m]), root_of(&l));
            let proof = consistency_proof(&l, m);
            prop_assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof));
            // A tree never shrinks.
            if m < n {
                prop_assert!(!verify_consistency(n as u64, m as u64, &new_root, &old_root, &proof));
            }
            if m > 0 && m < n {
                // The old head rewritten (one old leaf changed): no proof makes it a prefix.
                let mut rewritten = l.clone();
                rewritten[flip % m] = leaf_hash(b"rewritten");
                let forged_old = root_of(&rewritten[..m]);
                prop_assert!(!verify_consistency(m as u64, n as u64, &forged_old, &new_root, &proof));
                // The new head of a tree whose old part was rewritten.
                let forged_new = root_of(&rewritten);
                prop_assert!(!verify_consistency(m as u64, n as u64, &old_root, &forged_new, &proof));
                // Any tampered proof node, or a proof claimed for another old size.
                if !proof.is_empty() {
                    let mut tampered = proof.clone();
                    let at = flip % tampered.len();
                    tampered[at] = leaf_hash(b"tampered");
                    prop_assert!(!verify_consistency(m as u64, n as u64, &old_root, &new_root, &tampered));
                    let mut short = proof.clone();
                    short.pop();
                    prop_assert!(!verify_consistency(m as u64, n as u64, &old_root, &new_root, &short));
                }
                if m + 1 < n {
                    prop_assert!(!verify_consistency((m + 1) as u64, n as u64, &old_root, &new_root, &proof));
                }
            }
        }
    }

    proptest! {
        /// A relay that kept only the old frontier and the leaves since makes exactly the
        /// proof of the whole-tree reference, and an accumulator resumed from a frontier
        /// reaches the same heads as one that saw every leaf.
        #[test]
        fn proofs_from_the_frontier_match_the_reference(n in 0usize..90, pick in 0usize..90) {
            let l = leaves(n);
            let m = pick % (n + 1);
            let mut old = MerkleAccumulator::new();
            for h in &l[..m] { old.push_leaf_hash(*h); }
            let proof = consistency_proof_from_frontier(m as u64, old.frontier(), &l[m..]);
            prop_assert_eq!(proof, Some(consistency_proof(&l, m)));
            let mut resumed = MerkleAccumulator::resume(m as u64, old.frontier()).unwrap();
            for h in &l[m..] { resumed.push_leaf_hash(*h); }
            prop_assert_eq!(resumed.root(), root_of(&l));
            prop_assert_eq!(resumed.len(), n as u64);
            // A frontier that does not fit its size is refused, never misused.
            if m > 0 {
                let mut wrong = old.frontier().to_vec();
                wrong.push(leaf_hash(b"extra"));
                prop_assert!(MerkleAccumulator::resume(m as u64, &wrong).is_none());
                prop_assert!(consistency_proof_from_frontier(m as u64, &wrong, &l[m..]).is_none());
            }
        }
    }

    /// RFC 9162's example tree of 7 leaves (section 2.1.5): the consistency proofs it lists,
    /// by the nodes they name.
    #[test]
    fn consistency_proofs_name_the_rfc_example_nodes() {
        let l = leaves(7);
        let h = |range: std::ops::Range<usize>| root_of(&l[range]);
        // The proof between hash0 (3 leaves) and hash (7 leaves) is [c, d, g, l].
        assert_eq!(
            consistency_proof(&l, 3),
            vec![h(2..3), h(3..4), h(0..2), h(4..7)]
        );
        // Between hash1 (4 leaves) and hash: [l] (the old tree is a perfect subtree).
        assert_eq!(consistency_proof(&l, 4), vec![h(4..7)]);
        // Between hash2 (6 leaves) and hash: [i, j, k].
        assert_eq!(consistency_proof(&l, 6), vec![h(4..6), h(6..7), h(0..4)]);
        for m in 0..=7 {
            assert!(verify_consistency(
                m as u64,
                7,
                &h(0..m),
                &h(0..7),
                &consistency_proof(&l, m)
            ));
        }
    }
}
