//! Inclusion and consistency proofs of RFC 9162 section 2.1.3 and 2.1.4 (the same proofs as
//! RFC 6962 section 2.1.1 and 2.1.2), made from the hashes of perfect subtrees and checked
//! with the RFC's verification algorithms.
//!
//! A perfect subtree is named by `(level, index)`: it holds the `2^level` leaves starting at
//! leaf `index << level`. Level 0 is the leaf hashes. Only perfect subtrees are ever stored
//! (see [`nodes_completed_by`]); every other subtree hash is folded from them, so a proof for
//! any size needs O(log n) stored hashes.

use super::merkle::{node_hash, Hash};

/// A perfect subtree: `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

/// Why an inclusion proof does not verify (RFC 9162 section 2.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {got} hashes; a leaf {index} of a tree of size {size} needs {want}")]
    WrongLength {
        index: u64,
        size: u64,
        got: usize,
        want: usize,
    },
    #[error("the proof leads to another root than the one given")]
    RootMismatch,
}

/// Why a consistency proof does not verify (RFC 9162 section 2.1.4.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyError {
    #[error("tree sizes {from} and {to} cannot be compared: need 0 < from <= to")]
    BadSizes { from: u64, to: u64 },
    #[error("the proof has {got} hashes; sizes {from} to {to} need {want}")]
    WrongLength {
        from: u64,
        to: u64,
        got: usize,
        want: usize,
    },
    #[error("the proof does not lead to the older root")]
    OldRootMismatch,
    #[error("the proof does not lead to the newer root")]
    NewRootMismatch,
}

/// The largest power of two smaller than `n` (n >= 2): RFC 6962's split point.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The hash of leaves `start .. start + len`, folded from perfect subtrees. `start` must be
/// a multiple of the largest power of two not above `len`, which every range RFC 6962's
/// recursion produces is.
fn range_hash<E>(
    start: u64,
    len: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Hash, E> {
    if len.is_power_of_two() {
        let level = len.trailing_zeros();
        return node(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(len);
    let left = range_hash(start, k, node)?;
    let right = range_hash(start + k, len - k, node)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves (RFC 6962 section 2.1), the empty
/// tree's hash for size 0.
pub fn root_from<E>(size: u64, mut node: impl FnMut(NodeId) -> Result<Hash, E>) -> Result<Hash, E> {
    if size == 0 {
        return Ok(super::merkle::empty_root());
    }
    range_hash(0, size, &mut node)
}

/// The inclusion proof of leaf `index` in the tree of size `size`, leaf to root
/// (RFC 9162 section 2.1.3.1, `PATH(m, D[n])`). The caller checks `index < size`.
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut path = Vec::new();
    path_into(index, 0, size, &mut node, &mut path)?;
    Ok(path)
}

fn path_into<E>(
    m: u64,
    start: u64,
    n: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
    out: &mut Vec<Hash>,
) -> Result<(), E> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path_into(m, start, k, node, out)?;
        out.push(range_hash(start + k, n - k, node)?);
    } else {
        path_into(m - k, start + k, n - k, node, out)?;
        out.push(range_hash(start, k, node)?);
    }
    Ok(())
}

/// The consistency proof between the trees of sizes `from` and `to`
/// (RFC 9162 section 2.1.4.1, `PROOF(m, D[n])`); empty when `from == to`. The caller checks
/// `0 < from <= to`.
pub fn consistency_proof<E>(
    from: u64,
    to: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut path = Vec::new();
    if from < to {
        subproof_into(from, 0, to, true, &mut node, &mut path)?;
    }
    Ok(path)
}

fn subproof_into<E>(
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
    out: &mut Vec<Hash>,
) -> Result<(), E> {
    if m == n {
        if !whole {
            out.push(range_hash(start, n, node)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof_into(m, start, k, whole, node, out)?;
        out.push(range_hash(start + k, n - k, node)?);
    } else {
        subproof_into(m - k, start + k, n - k, false, node, out)?;
        out.push(range_hash(start, k, node)?);
    }
    Ok(())
}

/// The perfect subtrees that appending leaf `index` completes, above the leaf itself, with
/// their hashes: `(level 1, index/2)` when `index` is odd, and so on up while the index at
/// each level is odd. `left(id)` gives the stored left sibling at each step. Appending in
/// order and storing these keeps every perfect subtree of the tree stored: one new node per
/// append on average, never more than log2(n).
pub fn nodes_completed_by<E>(
    index: u64,
    leaf: Hash,
    mut left: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<(NodeId, Hash)>, E> {
    let mut out = Vec::new();
    let (mut level, mut i, mut hash) = (0u32, index, leaf);
    while i & 1 == 1 {
        let sibling = left(NodeId {
            level,
            index: i - 1,
        })?;
        hash = node_hash(&sibling, &hash);
        level += 1;
        i >>= 1;
        out.push((NodeId { level, index: i }, hash));
    }
    Ok(out)
}

/// Checks that `leaf` is leaf `index` of the tree of size `size` whose root is `root`
/// (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), InclusionError> {
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let want = inclusion_len(index, size);
    if proof.len() != want {
        return Err(InclusionError::WrongLength {
            index,
            size,
            got: proof.len(),
            want,
        });
    }
    let (mut fn_, mut sn, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if sn == 0 {
            return Err(InclusionError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && r == *root {
        Ok(())
    } else {
        Err(InclusionError::RootMismatch)
    }
}

/// Checks that the tree of size `from` with root `from_root` is a prefix of the tree of size
/// `to` with root `to_root` (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> Result<(), ConsistencyError> {
    if from == 0 || from > to {
        return Err(ConsistencyError::BadSizes { from, to });
    }
    let want = consistency_len(from, to);
    if proof.len() != want {
        return Err(ConsistencyError::WrongLength {
            from,
            to,
            got: proof.len(),
            want,
        });
    }
    if from == to {
        return if from_root == to_root {
            Ok(())
        } else {
            Err(ConsistencyError::NewRootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (from - 1, to - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ConsistencyError::NewRootMismatch);
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
    if fr != *from_root {
        return Err(ConsistencyError::OldRootMismatch);
    }
    if sn != 0 || sr != *to_root {
        return Err(ConsistencyError::NewRootMismatch);
    }
    Ok(())
}

/// How many hashes the inclusion proof of `index` in a tree of `size` has.
fn inclusion_len(index: u64, size: u64) -> usize {
    let mut count = 0;
    let (mut m, mut n) = (index, size);
    while n > 1 {
        let k = split(n);
        if m >= k {
            m -= k;
            n -= k;
        } else {
            n = k;
        }
        count += 1;
    }
    count
}

/// How many hashes the consistency proof from `from` to `to` has.
fn consistency_len(from: u64, to: u64) -> usize {
    if from == to {
        return 0;
    }
    let mut count = 0;
    let (mut m, mut n, mut whole) = (from, to, true);
    while m != n {
        let k = split(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
        count += 1;
    }
    count + usize::from(!whole)
}

/// Perfect-subtree hashes computed from leaves held in memory: for tests, and for a verifier
/// that has every leaf of a bundle.
pub fn node_from_leaves(leaves: &[Hash], id: NodeId) -> Hash {
    let start = (id.index << id.level) as usize;
    let len = 1usize << id.level;
    super::merkle::tree_root(&leaves[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::leaf_hash;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn mem(leaves: &[Hash]) -> impl FnMut(NodeId) -> Result<Hash, Infallible> + '_ {
        move |id| Ok(node_from_leaves(leaves, id))
    }

    fn root(leaves: &[Hash]) -> Hash {
        crate::audit::tree_root(leaves)
    }

    use crate::audit::merkle::tests::ct_leaves;

    fn hexes(path: &[Hash]) -> Vec<String> {
        path.iter().map(hex::encode).collect()
    }

    #[test]
    fn inclusion_proofs_match_the_certificate_transparency_vectors() {
        let l = ct_leaves();
        // (leaf index, tree size, expected path) from the CT/Trillian inclusion vectors.
        let cases: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
        ];
        for (index, size, want) in cases {
            let got = inclusion_proof(index, size, mem(&l)).unwrap();
            assert_eq!(hexes(&got), want, "leaf {index} of {size}");
            let r = root(&l[..size as usize]);
            verify_inclusion(index, size, &l[index as usize], &got, &r).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_the_certificate_transparency_vectors() {
        let l = ct_leaves();
        let cases: [(u64, u64, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (from, to, want) in cases {
            let got = consistency_proof(from, to, mem(&l)).unwrap();
            assert_eq!(hexes(&got), want, "{from} to {to}");
            verify_consistency(
                from,
                to,
                &root(&l[..from as usize]),
                &root(&l[..to as usize]),
                &got,
            )
            .unwrap();
        }
    }

    #[test]
    fn stored_nodes_reproduce_every_root_up_to_300() {
        use std::collections::HashMap;
        let l = leaves(300);
        let mut stored: HashMap<NodeId, Hash> = HashMap::new();
        for (i, leaf) in l.iter().enumerate() {
            let i = i as u64;
            stored.insert(NodeId { level: 0, index: i }, *leaf);
            let new = nodes_completed_by(i, *leaf, |id| Ok::<_, Infallible>(stored[&id])).unwrap();
            assert!(new.len() <= 9);
            stored.extend(new);
            let size = i + 1;
            let from_store = root_from(size, |id| Ok::<_, Infallible>(stored[&id])).unwrap();
            assert_eq!(from_store, root(&l[..size as usize]), "size {size}");
        }
        // Every perfect subtree is there, and nothing else.
        let perfect: u64 = (0..10).map(|lv| 300u64 >> lv).sum();
        assert_eq!(stored.len() as u64, perfect);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let l = leaves(4);
        let r = root(&l);
        assert!(matches!(
            verify_inclusion(4, 4, &l[0], &[], &r),
            Err(InclusionError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            verify_consistency(0, 4, &r, &r, &[]),
            Err(ConsistencyError::BadSizes { .. })
        ));
        assert!(matches!(
            verify_consistency(5, 4, &r, &r, &[]),
            Err(ConsistencyError::BadSizes { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn every_inclusion_proof_verifies_and_any_change_breaks_it(
            size in 1u64..=300, index_seed in any::<u64>(), flip in any::<(usize, u8)>()
        ) {
            let l = leaves(size);
            let index = index_seed % size;
            let r = root(&l);
            let proof = inclusion_proof(index, size, mem(&l)).unwrap();
            prop_assert!(verify_inclusion(index, size, &l[index as usize], &proof, &r).is_ok());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let at = flip.0 % bad.len();
                bad[at][(flip.1 % 32) as usize] ^= 1;
                prop_assert!(verify_inclusion(index, size, &l[index as usize], &bad, &r).is_err());
            }
            if size > 1 {
                let other = (index + 1) % size;
                prop_assert!(verify_inclusion(other, size, &l[index as usize], &proof, &r).is_err());
                let bigger = size + 1;
                let lb = leaves(bigger);
                prop_assert!(
                    verify_inclusion(index, bigger, &l[index as usize], &proof, &root(&lb)).is_err()
                );
            }
        }

        #[test]
        fn every_consistency_proof_verifies_and_any_change_breaks_it(
            to in 1u64..=300, from_seed in any::<u64>(), flip in any::<(usize, u8)>()
        ) {
            let l = leaves(to);
            let from = from_seed % to + 1;
            let (r1, r2) = (root(&l[..from as usize]), root(&l));
            let proof = consistency_proof(from, to, mem(&l)).unwrap();
            prop_assert!(verify_consistency(from, to, &r1, &r2, &proof).is_ok());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let at = flip.0 % bad.len();
                bad[at][(flip.1 % 32) as usize] ^= 1;
                prop_assert!(verify_consistency(from, to, &r1, &r2, &bad).is_err());
                prop_assert!(verify_consistency(from, to, &r2, &r1, &proof).is_err());
            }
            if from < to {
                let wrong = from + 1;
                let rw = root(&l[..wrong as usize]);
                prop_assert!(verify_consistency(wrong, to, &rw, &r2, &proof).is_err());
            }
        }
    }
}
