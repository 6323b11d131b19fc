//! Key → vbucket hashing and the 128-slot ring, exactly as Clearwater's
//! `MemcachedStore` clients compute them. A one-slot difference sends keys
//! to the wrong node, so this file is a wire contract, pinned by the vectors
//! in `shared/spec/cluster.md`.

use md5::{Digest, Md5};

/// Number of vbuckets (ring slots).
pub const VBUCKETS: usize = 128;

/// The vbucket of a key: the first byte of its MD5 digest, masked to 0..128.
pub fn vbucket(key: &[u8]) -> u8 {
    vbucket_of(&key_digest(key))
}

/// A key's MD5 digest: its vbucket, and (for the resync) its identity.
pub fn key_digest(key: &[u8]) -> [u8; 16] {
    Md5::digest(key).into()
}

/// The vbucket of a key given its digest.
pub fn vbucket_of(digest: &[u8; 16]) -> u8 {
    digest[0] & 0x7f
}

/// A ring over `n` nodes: `ring[slot]` is the node index owning that slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    nodes: usize,
    slots: Vec<usize>,
}

impl Ring {
    /// Builds the ring for `n` nodes from scratch, growing one node at a time.
    pub fn new(n: usize) -> Ring {
        if n == 0 {
            return Ring { nodes: 0, slots: Vec::new() };
        }
        let mut slots = vec![0usize; VBUCKETS];
        let mut counts = vec![0usize; n];
        counts[0] = VBUCKETS;
        for new_node in 1..n {
            let replace = VBUCKETS / (new_node + 1);
            for i in 0..replace {
                // Most-loaded existing node; ties go to the highest index.
                let mut best = 0;
                for node in 0..new_node {
                    if counts[node] >= counts[best] {
                        best = node;
                    }
                }
                let owned = counts[best];
                let nth = i % owned;
                let slot = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, owner)| **owner == best)
                    .nth(nth)
                    .map(|(slot, _)| slot)
                    .expect("a node with the most slots owns at least nth+1 of them");
                slots[slot] = new_node;
                counts[best] -= 1;
                counts[new_node] += 1;
            }
        }
        Ring { nodes: n, slots }
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The owner of each slot (empty for a ring of no nodes).
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// The `r` replicas for `slot`, primary first: distinct nodes found walking
    /// forward from `slot`, padded with the slot's owner when there are fewer
    /// than `r` nodes.
    pub fn get_nodes(&self, slot: usize, r: usize) -> Vec<usize> {
        if self.nodes == 0 {
            return Vec::new();
        }
        let wanted = r.min(self.nodes);
        let mut found: Vec<usize> = Vec::with_capacity(r);
        for step in 0..VBUCKETS {
            if found.len() == wanted {
                break;
            }
            let node = self.slots[(slot + step) % VBUCKETS];
            if !found.contains(&node) {
                found.push(node);
            }
        }
        while found.len() < r {
            found.push(self.slots[slot]);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digits(ring: &Ring) -> String {
        ring.slots().iter().map(|n| char::from_digit(*n as u32, 10).unwrap()).collect()
    }

    #[test]
    fn vbucket_vectors_from_the_spec() {
        assert_eq!(vbucket(b"astaire\\\\tag"), 13);
        assert_eq!(vbucket(b"reg\\\\sip:alice@example.com"), 2);
        assert_eq!(vbucket(b"impi\\\\+8888@example.com"), 69);
        assert_eq!(vbucket(b"a"), 12);
        assert_eq!(vbucket(b""), 84);
    }

    #[test]
    fn ring_vectors_from_the_spec() {
        assert_eq!(digits(&Ring::new(1)), "0".repeat(128));
        assert_eq!(
            digits(&Ring::new(2)),
            "10101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010"
        );
        assert_eq!(
            digits(&Ring::new(3)),
            "20121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121010"
        );
        assert_eq!(
            digits(&Ring::new(4)),
            "20321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321310"
        );
    }

    #[test]
    fn get_nodes_pads_with_the_owner() {
        let one = Ring::new(1);
        assert_eq!(one.get_nodes(5, 2), [0, 0]);
        assert!(Ring::new(0).get_nodes(5, 2).is_empty());
        let three = Ring::new(3);
        // slot 127 is node 0, wrapping to slot 0 (node 2).
        assert_eq!(three.get_nodes(127, 2), [0, 2]);
    }

    proptest! {
        #[test]
        fn growing_a_ring_never_moves_a_slot_between_existing_nodes(n in 1usize..40) {
            let before = Ring::new(n);
            let after = Ring::new(n + 1);
            for slot in 0..VBUCKETS {
                let b = before.slots()[slot];
                let a = after.slots()[slot];
                prop_assert!(a == b || a == n, "slot {} moved from {} to {}", slot, b, a);
            }
        }

        #[test]
        fn replicas_are_distinct_with_two_or_more_nodes(n in 2usize..60, slot in 0usize..VBUCKETS) {
            let nodes = Ring::new(n).get_nodes(slot, 2);
            prop_assert_eq!(nodes.len(), 2);
            prop_assert_ne!(nodes[0], nodes[1]);
        }
    }
}
