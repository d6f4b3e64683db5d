//! The Merkle tree hash of RFC 6962 section 2.1 (also RFC 9162 section 2.1.1): interior nodes
//! are `SHA-256(0x01 || left || right)`, the split at the largest power of two smaller than
//! n, and the empty tree hashes to `SHA-256("")`.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The root of the tree over these leaf hashes, in order.
pub fn tree_root(leaves: &[Hash]) -> Hash {
    let mut hasher = TreeHasher::default();
    for leaf in leaves {
        hasher.push(*leaf);
    }
    hasher.root()
}

/// Computes the root incrementally, keeping O(log n) hashes: push leaves in order, ask for
/// the root at any time. This is how `audit verify` reads a log of millions of entries
/// without holding it in memory.
#[derive(Debug, Default, Clone)]
pub struct TreeHasher {
    /// Roots of perfect subtrees, largest first; `stack[i].1` is the subtree's leaf count.
    stack: Vec<(Hash, u64)>,
    size: u64,
}

impl TreeHasher {
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (leaf, 1u64);
        while let Some(&(top, count)) = self.stack.last() {
            if count != node.1 {
                break;
            }
            self.stack.pop();
            node = (node_hash(&top, &node.0), count * 2);
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree of all leaves pushed so far. Folding the perfect subtrees from
    /// the right gives exactly RFC 6962's split at the largest power of two.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(mut acc, _)) = iter.next() else {
            return empty_root();
        };
        for (left, _) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::leaf_hash;
    use proptest::prelude::*;

    /// RFC 6962's definition, written recursively, as the reference.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// The 8 leaves used by RFC 6962 implementations' tests (Go's sumdb, Trillian):
    /// "", 0x00, 0x10, 0x2021, 0x3031, 0x40414243, 0x5051525354555657, 0x606162…6f.
    pub(crate) fn ct_leaves() -> Vec<Hash> {
        let inputs: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        inputs.iter().map(|i| leaf_hash(i)).collect()
    }

    #[test]
    fn known_roots_from_the_certificate_transparency_test_vectors() {
        let leaves = ct_leaves();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, want) in expected.iter().enumerate() {
            assert_eq!(
                hex::encode(tree_root(&leaves[..=n])),
                *want,
                "root of {} leaves",
                n + 1
            );
        }
        assert_eq!(
            hex::encode(tree_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest! {
        #[test]
        fn incremental_root_equals_the_recursive_definition(n in 0usize..70) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            prop_assert_eq!(tree_root(&leaves), reference_root(&leaves));
        }
    }
}
