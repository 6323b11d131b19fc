//! Ruby Dalli's `Dalli::Ring` (and Rails' `:mem_cache_store`, which builds
//! a Dalli client), bit for bit: `shared/spec/placement-clients.md` A.1.
//!
//! Each server `host:port` (the host as written) gets
//! `floor(n × 160 × weight / Σweight)` points, the first four bytes of
//! `SHA1("host:port:j")` read big-endian; a key's hash is its CRC-32, and
//! its server the one of the last point at or below it, wrapping to the
//! last point. The namespace (`namespace: "app"` stores `app:key`) and the
//! truncation of keys over 250 characters are part of the key as stored,
//! so the stored key is hashed whole. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{Continuum, Tie};
use super::hashes::crc32;
use super::{Family, Key, Server};
use sha1::{Digest, Sha1};

/// Dalli's `POINTS_PER_SERVER`.
const POINTS_PER_SERVER: u64 = 160;

/// Dalli's name of a server: `host:port`, an IPv6 host without brackets.
fn name(s: &Server) -> String {
    format!("{}:{}", s.host, s.port)
}

/// The ring of one list. (With one server Dalli builds none: it owns all.)
pub fn ring(list: &[Server]) -> Continuum {
    let n = list.len() as u64;
    let total: u64 = list.iter().map(|s| u64::from(s.weight)).sum();
    let mut points = Vec::new();
    for (i, s) in list.iter().enumerate() {
        // Ruby: ((n * 160 * weight) / Float(total)).floor, in doubles.
        let count = ((n * POINTS_PER_SERVER * u64::from(s.weight)) as f64 / total as f64).floor() as u64;
        let name = name(s);
        for j in 0..count {
            let d: [u8; 20] = Sha1::digest(format!("{name}:{j}").as_bytes()).into();
            let [a, b, c, e, ..] = d;
            points.push((u32::from_be_bytes([a, b, c, e]), i as u32));
        }
    }
    // Ruby's sort_by is not stable: which of two equal points comes last
    // is unspecified (never seen with real names). The first listed wins.
    Continuum::new(points, list.len(), Tie::FirstListed)
}

/// Dalli over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dalli {
    old: Continuum,
    new: Continuum,
}

impl Dalli {
    pub fn new(old: &[Server], new: &[Server]) -> Dalli {
        Dalli { old: ring(old), new: ring(new) }
    }
}

impl Family for Dalli {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = crc32(key.bytes);
        Some((self.old.at_or_before(h)?, self.new.at_or_before(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::tests::{owner_in, servers};

    fn owner(list: &[&str], key: &[u8]) -> usize {
        owner_in(&Dalli::new(&servers(list), &servers(list)), key)
    }

    #[test]
    fn the_spec_vectors() {
        assert_eq!(crc32(b"foo"), 0x8c736521);
        let d = Sha1::digest(b"127.0.0.1:30021:0");
        assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 0x6765c233);
        let three = ["127.0.0.1:30021", "127.0.0.1:30022", "127.0.0.1:30023"];
        assert_eq!(owner(&three, b"foo"), 1);
        assert_eq!(owner(&three, b"user:42"), 0);
        let weighted = ["127.0.0.1:30021:1", "127.0.0.1:30022:2", "127.0.0.1:30023:3", "127.0.0.1:30024:4"];
        assert_eq!(owner(&weighted, "café".as_bytes()), 1);
        assert_eq!(owner(&weighted, b"user:42"), 3);
        let default_port = ["127.0.0.2:11211", "127.0.0.3:11211", "127.0.0.4:11211", "127.0.0.5:11211"];
        assert_eq!(owner(&default_port, b"foo"), 3);
        assert_eq!(owner(&default_port, "k".repeat(250).as_bytes()), 2);
    }

    #[test]
    fn point_counts_follow_the_weights() {
        let count = |list: &[&str]| {
            let ring = ring(&servers(list));
            (0..list.len()).map(|i| ring.points().iter().filter(|p| p.1 == i as u32).count()).collect::<Vec<_>>()
        };
        assert_eq!(count(&["a:1", "b:1", "c:1"]), [160, 160, 160]);
        assert_eq!(count(&["a:1:1", "b:1:2", "c:1:3", "d:1:4"]), [64, 128, 192, 256]);
    }

    #[test]
    fn the_traps_of_the_spec_are_not_fallen_into() {
        // The floor, not ketama's ceiling: a hash between two points goes
        // to the lower one; below the first point, to the last.
        let ring = ring(&servers(&["127.0.0.1:30021", "127.0.0.1:30022", "127.0.0.1:30023"]));
        let (v0, s0) = ring.points()[0];
        let (v1, _) = ring.points()[1];
        assert_eq!(ring.at_or_before(v1 - 1), Some(s0 as usize));
        assert_eq!(ring.at_or_before(v0 - 1), Some(ring.points().last().unwrap().1 as usize));
        // A name with its weight, or a host without its port, is not Dalli's.
        let with_port = owner(&["127.0.0.2:11211", "127.0.0.3:11211"], b"x");
        let moved = (0..2000)
            .filter(|i| {
                let key = format!("key:{i}");
                owner(&["127.0.0.2:11211:1", "127.0.0.3:11211:1"], key.as_bytes())
                    != owner(&["127.0.0.2:11211", "127.0.0.3:11211"], key.as_bytes())
            })
            .count();
        assert_eq!(moved, 0, "a weight of 1 written or not is the same server");
        assert!(with_port < 2);
    }
}
