//! PHP's pecl `memcache` extension (3.x to 8.x), bit for bit:
//! `shared/spec/placement-clients.md` A.3.
//! - `memcache.hash_strategy=consistent`, the default (`pecl-memcache`):
//!   `weight × 160` points per server, the hash of `"host:port-i"` (the
//!   host exactly as given to `addServer`, the port always written); the
//!   ring is sampled into 1024 buckets, bucket b holding the server of the
//!   first point at or above `b × (0xffffffff / 1024)`; a key goes to the
//!   bucket its hash modulo 1024 names. No search on the key's hash.
//! - `hash_strategy=standard` (`pecl-memcache-standard`): each server
//!   `weight` times in a table; a key goes to slot
//!   `max(1, (hash >> 16) & 0x7fff) mod` the table's length.
//!
//! The hash is `memcache.hash_function`: `crc32` (the default, the
//! standard CRC-32) or `fnv` (FNV-1a over signed bytes). The key hashed
//! is the key stored (prefix, truncation and `_` for blanks included).
//! Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{Continuum, Tie};
use super::hashes::KeyHash;
use super::modula::Modula;
use super::{Family, Key, Server};

/// `MMC_CONSISTENT_POINTS`.
const POINTS: u32 = 160;
/// `MMC_CONSISTENT_BUCKETS`.
const BUCKETS: u32 = 1024;

/// The names `memcache.hash_function` takes, and their hashes.
pub const HASHES: [(&str, KeyHash); 2] = [("crc32", KeyHash::Crc32), ("fnv", KeyHash::Fnv1a_32)];

/// The consistent strategy's 1024 buckets over one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    servers: usize,
    bucket: Vec<u32>,
}

impl Buckets {
    pub fn new(list: &[Server], hash: KeyHash) -> Buckets {
        let mut points = Vec::new();
        for (i, s) in list.iter().enumerate() {
            for p in 0..s.weight.saturating_mul(POINTS) {
                points.push((hash.hash(format!("{}:{}-{p}", s.host, s.port).as_bytes(), None), i as u32));
            }
        }
        // qsort is not stable: of two equal points the first listed is kept.
        let ring = Continuum::new(points, list.len(), Tie::FirstListed);
        let step = u32::MAX / BUCKETS;
        let bucket = (0..BUCKETS).filter_map(|b| ring.at_or_after(step * b).map(|s| s as u32)).collect();
        Buckets { servers: list.len(), bucket }
    }

    fn owner(&self, h: u32) -> Option<usize> {
        match self.servers {
            0 => None,
            1 => Some(0),
            _ => self.bucket.get((h % BUCKETS) as usize).map(|s| *s as usize),
        }
    }
}

/// The standard strategy's table over one list: each server `weight` times.
fn standard_table(list: &[Server]) -> Modula {
    Modula::repeated(&list.iter().map(|s| s.weight).collect::<Vec<_>>())
}

/// pecl memcache over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeclMemcache {
    Consistent { hash: KeyHash, old: Buckets, new: Buckets },
    Standard { hash: KeyHash, old: Modula, new: Modula },
}

impl PeclMemcache {
    pub fn consistent(old: &[Server], new: &[Server], hash: KeyHash) -> PeclMemcache {
        PeclMemcache::Consistent { hash, old: Buckets::new(old, hash), new: Buckets::new(new, hash) }
    }

    pub fn standard(old: &[Server], new: &[Server], hash: KeyHash) -> PeclMemcache {
        PeclMemcache::Standard { hash, old: standard_table(old), new: standard_table(new) }
    }
}

impl Family for PeclMemcache {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        match self {
            PeclMemcache::Consistent { hash, old, new } => {
                let h = hash.hash(key.bytes, None);
                Some((old.owner(h)?, new.owner(h)?))
            }
            PeclMemcache::Standard { hash, old, new } => {
                let h = (hash.hash(key.bytes, None) >> 16) & 0x7fff;
                let h = h.max(1);
                // One server takes all (the table's first slot).
                let one = |m: &Modula| if m.servers() == 1 { Some(0) } else { m.owner(h) };
                Some((one(old)?, one(new)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::tests::{owner_in, servers};

    fn consistent(list: &[&str], key: &str, hash: KeyHash) -> usize {
        owner_in(&PeclMemcache::consistent(&servers(list), &servers(list), hash), key.as_bytes())
    }

    fn standard(list: &[&str], key: &str) -> usize {
        owner_in(&PeclMemcache::standard(&servers(list), &servers(list), KeyHash::Crc32), key.as_bytes())
    }

    const THREE: [&str; 3] = ["127.0.0.1:30041", "127.0.0.1:30042", "127.0.0.1:30043"];

    #[test]
    fn the_consistent_vectors() {
        assert_eq!(KeyHash::Crc32.hash(b"foo", None) % 1024, 289);
        assert_eq!(KeyHash::Crc32.hash(b"127.0.0.1:30041-0", None), 0x9259fe0e);
        assert_eq!(consistent(&THREE, "foo", KeyHash::Crc32), 0);
        assert_eq!(consistent(&THREE, "user:42", KeyHash::Crc32), 1);
        assert_eq!(consistent(&THREE, "café", KeyHash::Crc32), 2);
        let weighted = ["127.0.0.1:30041:1", "127.0.0.1:30042:2", "127.0.0.1:30043:3", "127.0.0.1:30044:4"];
        assert_eq!(consistent(&weighted, "日本😀", KeyHash::Crc32), 3);
        let default_port = ["127.0.0.2:11211", "127.0.0.3:11211", "127.0.0.4:11211", "127.0.0.5:11211"];
        assert_eq!(consistent(&default_port, "café", KeyHash::Crc32), 1);
        assert_eq!(KeyHash::Fnv1a_32.hash("café".as_bytes(), None), 0x7572c049);
        assert_eq!(consistent(&THREE, "café", KeyHash::Fnv1a_32), 2);
    }

    #[test]
    fn the_standard_vectors() {
        assert_eq!((KeyHash::Crc32.hash(b"foo", None) >> 16) & 0x7fff, 3187);
        assert_eq!(standard(&THREE, "foo"), 1);
        assert_eq!(standard(&THREE, "user:42"), 1);
        assert_eq!(standard(&THREE, "café"), 2);
        assert_eq!(standard(&THREE, "日本😀"), 0);
        let weighted = ["127.0.0.1:30041:1", "127.0.0.1:30042:2", "127.0.0.1:30043:3", "127.0.0.1:30044:4"];
        assert_eq!(standard(&weighted, "foo"), 3);
    }

    #[test]
    fn weights_multiply_the_points() {
        let b = Buckets::new(&servers(&["a:1:1", "b:1:3"]), KeyHash::Crc32);
        let second = b.bucket.iter().filter(|s| **s == 1).count();
        assert!((650..880).contains(&second), "about three quarters of 1024: {second}");
    }

    #[test]
    fn one_server_takes_everything() {
        assert_eq!(consistent(&["a:1"], "x", KeyHash::Crc32), 0);
        assert_eq!(standard(&["a:1:5"], "x"), 0);
    }
}
