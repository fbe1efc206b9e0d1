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
    buf.extend_from_slice(&record.checksum.0);
    leaf_hash(buf)
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
    }
}
