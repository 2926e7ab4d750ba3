//! Merkle trees hashed as RFC 9162 §2.1 does: leaf = SHA-256(0x00 ‖ data),
//! node = SHA-256(0x01 ‖ left ‖ right), split at the largest power of two below n.
//! Used for the manifest's file-list root and the audit log.

use sha2::{Digest, Sha256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// Hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root over leaf hashes (the empty tree's root is SHA-256 of nothing).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Largest power of two strictly below n (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Inclusion proof (RFC 9162 §2.1.3.1) for leaf `index` of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut p = inclusion_proof(&leaves[..k], index);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(&leaves[k..], index - k);
        p.push(root(&leaves[..k]));
        p
    }
}

/// A tree whose subtree roots are computed once: the root and many inclusion proofs
/// over the same leaves cost O(n + m log n) instead of O(n) per proof.
pub struct Tree<'a> {
    leaves: &'a [Hash],
    memo: std::collections::HashMap<(usize, usize), Hash>,
}

impl<'a> Tree<'a> {
    /// A tree over these leaf hashes.
    pub fn new(leaves: &'a [Hash]) -> Tree<'a> {
        Tree {
            leaves,
            memo: Default::default(),
        }
    }

    fn sub(&mut self, start: usize, end: usize) -> Hash {
        match end - start {
            0 => Sha256::digest([]).into(),
            1 => self.leaves[start],
            n => {
                if let Some(h) = self.memo.get(&(start, end)) {
                    return *h;
                }
                let k = split(n);
                let (l, r) = (self.sub(start, start + k), self.sub(start + k, end));
                let h = node_hash(&l, &r);
                self.memo.insert((start, end), h);
                h
            }
        }
    }

    /// The root (as [`root`]).
    pub fn root(&mut self) -> Hash {
        self.sub(0, self.leaves.len())
    }

    /// The consistency proof from the first `m` leaves to all of them (as
    /// [`consistency_proof`]), from memoised subtree roots.
    pub fn consistency_proof(&mut self, m: usize) -> Vec<Hash> {
        if m == 0 || m >= self.leaves.len() {
            return Vec::new();
        }
        self.subproof(m, 0, self.leaves.len(), true)
    }

    fn subproof(&mut self, m: usize, start: usize, end: usize, complete: bool) -> Vec<Hash> {
        let n = end - start;
        if m == n {
            return if complete {
                Vec::new()
            } else {
                vec![self.sub(start, end)]
            };
        }
        let k = split(n);
        if m <= k {
            let mut p = self.subproof(m, start, start + k, complete);
            p.push(self.sub(start + k, end));
            p
        } else {
            let mut p = self.subproof(m - k, start + k, end, false);
            p.push(self.sub(start, start + k));
            p
        }
    }

    /// The inclusion proof of leaf `index` (as [`inclusion_proof`]).
    pub fn inclusion_proof(&mut self, index: usize) -> Vec<Hash> {
        let (mut start, mut end) = (0, self.leaves.len());
        if end <= 1 || index >= end {
            return Vec::new();
        }
        let mut path = Vec::new();
        while end - start > 1 {
            let k = split(end - start);
            if index < start + k {
                path.push(self.sub(start + k, end));
                end = start + k;
            } else {
                path.push(self.sub(start, start + k));
                start += k;
            }
        }
        path.reverse();
        path
    }
}

/// The compact state of a tree of `size` leaves: the roots of the maximal perfect
/// subtrees that make it up, left to right, one per set bit of `size`, largest first
/// (the "frontier" of RFC 9162 logs). Enough to append leaves, give the new root and
/// prove the inclusion of the appended leaves, without the earlier leaves: an append
/// costs O(appended + log size) hashes instead of O(size).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    /// Leaves in the tree.
    pub size: u64,
    /// Roots of its maximal perfect subtrees, left to right.
    pub blocks: Vec<Hash>,
}

/// The (start, end) leaf ranges of the maximal perfect subtrees of a tree of `n` leaves.
fn blocks_of(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bit = if n == 0 {
        0
    } else {
        1usize << (usize::BITS - 1 - n.leading_zeros())
    };
    while bit > 0 {
        if n & bit != 0 {
            out.push((start, start + bit));
            start += bit;
        }
        bit >>= 1;
    }
    out
}

/// Subtree roots over an old tree (known only by its frontier) followed by new leaves.
struct Extended<'a> {
    old: Vec<((usize, usize), Hash)>,
    m: usize,
    new: Tree<'a>,
}

impl Extended<'_> {
    /// Root of leaves `start..end`; None when the range would need an old leaf that the
    /// frontier does not give (never for the ranges RFC 9162's recursion visits when
    /// proving an appended leaf or building the new frontier).
    fn sub(&mut self, start: usize, end: usize) -> Option<Hash> {
        if end <= self.m {
            return self
                .old
                .iter()
                .find(|(r, _)| *r == (start, end))
                .map(|(_, h)| *h);
        }
        if start >= self.m {
            return Some(self.new.sub(start - self.m, end - self.m));
        }
        let k = split(end - start);
        Some(node_hash(
            &self.sub(start, start + k)?,
            &self.sub(start + k, end)?,
        ))
    }
}

impl Frontier {
    /// The frontier of a tree over these leaves.
    pub fn of(leaves: &[Hash]) -> Frontier {
        let mut tree = Tree::new(leaves);
        Frontier {
            size: leaves.len() as u64,
            blocks: blocks_of(leaves.len())
                .into_iter()
                .map(|(s, e)| tree.sub(s, e))
                .collect(),
        }
    }

    /// The tree's root (as [`root`] over its leaves).
    pub fn root(&self) -> Hash {
        let mut blocks = self.blocks.iter().rev();
        let Some(last) = blocks.next() else {
            return Sha256::digest([]).into();
        };
        blocks.fold(*last, |acc, b| node_hash(b, &acc))
    }

    /// Append leaves: the new frontier, its root, and the inclusion proof of each
    /// appended leaf in the new tree (as [`inclusion_proof`]). None when the frontier
    /// is malformed (wrong number of blocks for its size).
    pub fn append(&self, leaves: &[Hash]) -> Option<(Frontier, Hash, Vec<Vec<Hash>>)> {
        let m = usize::try_from(self.size).ok()?;
        let ranges = blocks_of(m);
        if ranges.len() != self.blocks.len() {
            return None;
        }
        let mut ext = Extended {
            old: ranges
                .into_iter()
                .zip(self.blocks.iter().copied())
                .collect(),
            m,
            new: Tree::new(leaves),
        };
        let n = m + leaves.len();
        let blocks = blocks_of(n)
            .into_iter()
            .map(|(s, e)| ext.sub(s, e))
            .collect::<Option<Vec<_>>>()?;
        let next = Frontier {
            size: n as u64,
            blocks,
        };
        let root = next.root();
        let mut proofs = Vec::with_capacity(leaves.len());
        for index in m..n {
            let (mut start, mut end) = (0, n);
            let mut path = Vec::new();
            while end - start > 1 {
                let k = split(end - start);
                if index < start + k {
                    path.push(ext.sub(start + k, end)?);
                    end = start + k;
                } else {
                    path.push(ext.sub(start, start + k)?);
                    start += k;
                }
            }
            path.reverse();
            proofs.push(path);
        }
        Some((next, root, proofs))
    }
}

/// Verify an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: usize,
    size: usize,
    proof: &[Hash],
    expected_root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
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
    sn == 0 && &r == expected_root
}

/// Consistency proof (RFC 9162 §2.1.4.1) that the tree of the first `m` leaves is a
/// prefix of the tree of all `leaves`. Empty when `m == 0` or `m >= leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], complete);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2) between a tree of `first_size`
/// leaves with root `first_root` and one of `second_size` leaves with `second_root`.
/// Equal sizes need an empty proof and equal roots; an empty first tree is consistent
/// with anything (and needs an empty proof).
pub fn verify_consistency(
    first_size: usize,
    second_size: usize,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> bool {
    if first_size > second_size {
        return false;
    }
    if first_size == second_size {
        return proof.is_empty() && first_root == second_root;
    }
    if first_size == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first_size.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first_size - 1, second_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &fr == first_root && &sr == second_root
}

/// Lower-case hex.
pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoised_tree_gives_the_same_root_and_proofs() {
        for n in 0..40usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let mut t = Tree::new(&leaves);
            assert_eq!(t.root(), root(&leaves), "root of {n}");
            for m in 0..=n {
                assert_eq!(
                    t.consistency_proof(m),
                    consistency_proof(&leaves, m),
                    "{m} of {n}"
                );
            }
            for i in 0..n {
                let p = t.inclusion_proof(i);
                assert_eq!(p, inclusion_proof(&leaves, i), "proof {i} of {n}");
                assert!(verify_inclusion(&leaves[i], i, n, &p, &root(&leaves)));
            }
        }
    }

    #[test]
    fn appending_through_the_frontier_matches_the_whole_tree() {
        let leaves: Vec<Hash> = (0..70usize).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        for m in 0..40usize {
            let f = Frontier::of(&leaves[..m]);
            assert_eq!(f.root(), root(&leaves[..m]), "root of {m}");
            for n in m..(m + 30).min(70) {
                let (next, r, proofs) = f.append(&leaves[m..n]).unwrap();
                assert_eq!(r, root(&leaves[..n]), "root of {m}+{}", n - m);
                assert_eq!(
                    next,
                    Frontier::of(&leaves[..n]),
                    "frontier of {m}+{}",
                    n - m
                );
                for (j, p) in proofs.iter().enumerate() {
                    assert_eq!(
                        *p,
                        inclusion_proof(&leaves[..n], m + j),
                        "proof {} of {n}",
                        m + j
                    );
                }
            }
        }
        let broken = Frontier {
            size: 3,
            blocks: vec![leaves[0]],
        };
        assert!(broken.append(&leaves[..1]).is_none());
    }

    #[test]
    fn empty_tree_root_is_rfc_value() {
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_proofs_verify_for_every_leaf_and_size() {
        for n in 1..20usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let r = root(&leaves);
            for i in 0..n {
                let proof = inclusion_proof(&leaves, i);
                assert!(
                    verify_inclusion(&leaves[i], i, n, &proof, &r),
                    "n={n} i={i}"
                );
                let wrong = leaf_hash(b"x");
                assert!(!verify_inclusion(&wrong, i, n, &proof, &r));
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_for_every_pair_of_sizes() {
        let all: Vec<Hash> = (0..40u8).map(|i| leaf_hash(&[i])).collect();
        for n in 1..all.len() {
            let second = root(&all[..n]);
            for m in 1..=n {
                let first = root(&all[..m]);
                let proof = consistency_proof(&all[..n], m);
                assert!(
                    verify_consistency(m, n, &proof, &first, &second),
                    "m={m} n={n}"
                );
                // A wrong old root, a wrong new root, or a dropped or
                // extra proof element must all fail.
                let bad = leaf_hash(b"bad");
                assert!(
                    !verify_consistency(m, n, &proof, &bad, &second),
                    "m={m} n={n}"
                );
                if m < n {
                    assert!(
                        !verify_consistency(m, n, &proof, &first, &bad),
                        "m={m} n={n}"
                    );
                    assert!(
                        !verify_consistency(m, n, &proof[..proof.len() - 1], &first, &second),
                        "m={m} n={n}"
                    );
                    let mut longer = proof.clone();
                    longer.push(bad);
                    assert!(
                        !verify_consistency(m, n, &longer, &first, &second),
                        "m={m} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn consistency_detects_a_changed_prefix() {
        let mut all: Vec<Hash> = (0..9u8).map(|i| leaf_hash(&[i])).collect();
        let first = root(&all[..5]);
        all[2] = leaf_hash(b"altered");
        let proof = consistency_proof(&all, 5);
        assert!(!verify_consistency(5, 9, &proof, &first, &root(&all)));
    }

    #[test]
    fn rfc_reference_proof_shape() {
        // RFC 9162 §2.1.5: the consistency proof between the tree of 3 leaves and of 7
        // leaves is [c, d, g, l] = [leaf 2, leaf 3, node(0,1), root(4..7)].
        let d: Vec<Hash> = (0..7u8).map(|i| leaf_hash(&[i])).collect();
        let p = consistency_proof(&d, 3);
        assert_eq!(p, vec![d[2], d[3], node_hash(&d[0], &d[1]), root(&d[4..])]);
        // Between 4 and 7: [l] = [root(4..7)].
        assert_eq!(consistency_proof(&d, 4), vec![root(&d[4..])]);
        // Between 6 and 7: [i, j, k] = [node(4,5), leaf 6, root(0..4)].
        assert_eq!(
            consistency_proof(&d, 6),
            vec![node_hash(&d[4], &d[5]), d[6], root(&d[..4])]
        );
    }
}
