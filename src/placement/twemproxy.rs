//! twemproxy (nutcracker 0.5.0) pools, bit for bit:
//! `shared/spec/placement-clients.md` B.1 and `placement.md` §3.
//!
//! A pool sorts its servers by name (length first, then bytes) and every
//! index it computes is into that order; the name is the entry's `name`
//! field, else the host alone on port 11211, else `host:port` as typed.
//! `distribution: ketama` (the default) is libmemcached's weighted ring
//! over those names, always with MD5 points whatever the `hash:`;
//! `distribution: modula` is a table of each server `weight` times. The key
//! hash is `hash:` (12 functions, `fnv1a_64` by default), over the part of
//! the key between the `hash_tag` characters when there is one. A pool of
//! one server takes every key. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{md5_points, Continuum, Tie};
use super::hashes::KeyHash;
use super::modula::Modula;
use super::{Family, Key, LayoutError, Server};

/// The names of `hash:`, and their functions.
pub const HASHES: [(&str, KeyHash); 12] = [
    ("one_at_a_time", KeyHash::OneAtATime),
    ("md5", KeyHash::Md5),
    ("crc16", KeyHash::Crc16),
    ("crc32", KeyHash::Crc32High15),
    ("crc32a", KeyHash::Crc32),
    ("fnv1_64", KeyHash::Fnv1_64),
    ("fnv1a_64", KeyHash::Fnv1a_64),
    ("fnv1_32", KeyHash::Fnv1_32),
    ("fnv1a_32", KeyHash::Fnv1a_32),
    ("hsieh", KeyHash::Hsieh),
    ("murmur", KeyHash::Murmur),
    ("jenkins", KeyHash::Jenkins),
];

/// `CONF_DEFAULT_HASH`.
pub const DEFAULT_HASH: KeyHash = KeyHash::Fnv1a_64;

/// twemproxy's `distribution:` (`random` places nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    #[default]
    Ketama,
    Modula,
}

impl Distribution {
    pub const NAMES: [(&'static str, Distribution); 2] =
        [("ketama", Distribution::Ketama), ("modula", Distribution::Modula)];
}

/// The name twemproxy hashes for an entry.
pub fn name(s: &Server) -> String {
    match &s.label {
        Some(label) => label.clone(),
        None if s.port == 11211 => s.host.clone(),
        None => format!("{}:{}", s.host, s.port),
    }
}

/// One pool: its table over the servers sorted by name, and each sorted
/// index's position in the list as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    table: Table,
    listed: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Table {
    Ring(Continuum),
    Modula(Modula),
}

impl Pool {
    pub fn new(list: &[Server], distribution: Distribution) -> Result<Pool, LayoutError> {
        let mut sorted: Vec<(String, usize)> = list.iter().enumerate().map(|(i, s)| (name(s), i)).collect();
        sorted.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes())));
        if let Some(w) = sorted.windows(2).find(|w| matches!(w, [(a, _), (b, _)] if a == b)) {
            let entries: Vec<String> =
                w.iter().filter_map(|(_, i)| list.get(*i)).map(|s| format!("line {}: {}", s.line, s.name)).collect();
            let shared = w.first().map(|(n, _)| n.as_str()).unwrap_or_default();
            return Err(LayoutError(format!(
                "{} share the name {shared:?}: twemproxy refuses a pool whose servers share a name",
                entries.join(" and ")
            )));
        }
        let weight = |i: &usize| list.get(*i).map_or(1, |s| s.weight);
        let table = match distribution {
            Distribution::Ketama => {
                let weights: Vec<u32> = sorted.iter().map(|(_, i)| weight(i)).collect();
                let mut points = Vec::new();
                for (((name, _), count), at) in sorted.iter().zip(super::ketama::point_counts(&weights)).zip(0u32..) {
                    md5_points(name.as_bytes(), count, at, &mut points);
                }
                // qsort: of two equal points either may come first.
                Table::Ring(Continuum::new(points, list.len(), Tie::FirstListed))
            }
            Distribution::Modula => {
                Table::Modula(Modula::repeated(&sorted.iter().map(|(_, i)| weight(i)).collect::<Vec<_>>()))
            }
        };
        Ok(Pool { table, listed: sorted.iter().map(|(_, i)| *i as u32).collect() })
    }

    /// The listed index of the server for key hash `h`.
    fn owner(&self, h: u32) -> Option<usize> {
        let sorted = match self.listed.len() {
            0 => return None,
            1 => 0,
            _ => match &self.table {
                Table::Ring(ring) => ring.at_or_after(h)?,
                Table::Modula(table) => table.owner(h)?,
            },
        };
        self.listed.get(sorted).map(|i| *i as usize)
    }
}

/// The part of `key` a `hash_tag` of `tag` keeps: from after the first
/// `tag[0]` to before the next `tag[1]`, if that is not empty; else all.
pub fn tagged(key: &[u8], tag: [u8; 2]) -> &[u8] {
    let [open, close] = tag;
    let Some(start) = key.iter().position(|b| *b == open) else { return key };
    let inner = key.get(start + 1..).unwrap_or_default();
    match inner.iter().position(|b| *b == close) {
        Some(end) if end > 0 => inner.get(..end).unwrap_or(key),
        _ => key,
    }
}

/// A twemproxy pool under the old list and under the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Twemproxy {
    hash: KeyHash,
    tag: Option<[u8; 2]>,
    old: Pool,
    new: Pool,
}

impl Twemproxy {
    pub fn new(
        old: &[Server],
        new: &[Server],
        hash: KeyHash,
        distribution: Distribution,
        tag: Option<[u8; 2]>,
    ) -> Result<Twemproxy, LayoutError> {
        Ok(Twemproxy { hash, tag, old: Pool::new(old, distribution)?, new: Pool::new(new, distribution)? })
    }
}

impl Family for Twemproxy {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let hashed = match self.tag {
            Some(tag) => tagged(key.bytes, tag),
            None => key.bytes,
        };
        // The dump's MD5 is of the whole key.
        let digest = key.digest.filter(|_| hashed.len() == key.bytes.len());
        let h = if hashed.is_empty() { 0 } else { self.hash.hash(hashed, digest) };
        Some((self.old.owner(h)?, self.new.owner(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::tests::{owner_in, servers};

    fn pool(list: &[&str], hash: KeyHash, distribution: Distribution, tag: Option<[u8; 2]>) -> Twemproxy {
        Twemproxy::new(&servers(list), &servers(list), hash, distribution, tag).unwrap()
    }

    fn owner(list: &[&str], key: &[u8]) -> usize {
        owner_in(&pool(list, DEFAULT_HASH, Distribution::Ketama, None), key)
    }

    const THREE: [&str; 3] = ["127.0.0.1:31001:1", "127.0.0.1:31002:1", "127.0.0.1:31003:1"];
    const FOUR: [&str; 4] = ["127.0.0.1:31001:1", "127.0.0.1:31002:1", "127.0.0.1:31003:1", "127.0.0.1:31004:1"];

    #[test]
    fn the_default_vectors() {
        assert_eq!(crate::placement::hashes::fnv1a_64(b"apple"), 1488911807);
        let rows: [(&[u8], usize, usize); 5] =
            [(b"a", 1, 1), (b"foo", 2, 2), (b"user:1000", 1, 1), ("café".as_bytes(), 0, 0), (b"\xff", 0, 3)];
        for (key, o3, o4) in rows {
            assert_eq!(owner(&THREE, key), o3, "{key:?} 3");
            assert_eq!(owner(&FOUR, key), o4, "{key:?} 4");
        }
    }

    #[test]
    fn the_modula_vectors_index_the_list_as_configured() {
        let list = ["127.0.0.1:31003:1", "127.0.0.1:31001:1", "127.0.0.1:31004:1", "127.0.0.1:31002:1"];
        let p = pool(&list, DEFAULT_HASH, Distribution::Modula, None);
        let rows: [(&[u8], usize); 4] = [(b"a", 1), (b"foo", 2), (b"user:1000", 3), (b"\xff", 0)];
        for (key, want) in rows {
            assert_eq!(owner_in(&p, key), want, "{key:?}");
        }
    }

    #[test]
    fn the_weighted_vectors() {
        let list = ["127.0.0.1:31001:1", "127.0.0.1:31002:2", "127.0.0.1:31003:3"];
        assert_eq!(owner(&list, b"a"), 2);
        assert_eq!(owner(&list, b"user:1000"), 1);
        assert_eq!(owner(&list, "café".as_bytes()), 1);
    }

    #[test]
    fn names_sort_by_length_first_and_a_name_field_replaces_the_address() {
        let p = Pool::new(&servers(&["h:1:1 zz", "h:2:1 a", "h:3:1 mmm"]), Distribution::Modula).unwrap();
        assert_eq!(p.listed, [1, 0, 2], "a, zz, mmm");
        assert_eq!(name(&servers(&["127.0.0.1:11211:1"])[0]), "127.0.0.1");
        assert_eq!(name(&servers(&["127.0.0.1:31001:1"])[0]), "127.0.0.1:31001");
        // A name field of 127.0.0.1 on another port hashes like port 11211.
        let named = pool(
            &["127.0.0.1:31001:1 127.0.0.2", "127.0.0.1:31002:1 127.0.0.3"],
            DEFAULT_HASH,
            Distribution::Ketama,
            None,
        );
        let plain = pool(&["127.0.0.2:11211:1", "127.0.0.3:11211:1"], DEFAULT_HASH, Distribution::Ketama, None);
        for i in 0..500 {
            let key = format!("k{i}");
            assert_eq!(owner_in(&named, key.as_bytes()), owner_in(&plain, key.as_bytes()), "{key}");
        }
        let e = Pool::new(&servers(&["h:1:1 x", "h:2:1 x"]), Distribution::Ketama).unwrap_err();
        assert!(e.0.contains("line 1: h:1 and line 1: h:2 share the name \"x\""), "{e}");
    }

    #[test]
    fn a_hash_tag_hashes_the_part_between() {
        let tag = Some(*b"{}");
        assert_eq!(tagged(b"user:{42}:name", *b"{}"), b"42");
        assert_eq!(tagged(b"user:{}:x", *b"{}"), b"user:{}:x", "an empty tag is the whole key");
        assert_eq!(tagged(b"user:{42", *b"{}"), b"user:{42");
        assert_eq!(tagged(b"a:b:c", *b"::"), b"b");
        let p = pool(&FOUR, DEFAULT_HASH, Distribution::Ketama, tag);
        for i in 0..300 {
            let (a, b) = (format!("x{{{i}}}y"), format!("other{{{i}}}"));
            assert_eq!(owner_in(&p, a.as_bytes()), owner_in(&p, b.as_bytes()), "{a} {b}");
        }
    }

    #[test]
    fn the_ring_is_md5_whatever_the_key_hash() {
        // hash: md5 places exactly as libmemcached's weighted ketama.
        let list = ["127.0.0.1:21211:1", "127.0.0.1:21212:1", "127.0.0.1:21213:1"];
        let p = pool(&list, KeyHash::Md5, Distribution::Ketama, None);
        let k = crate::placement::ketama::Ketama::new(&servers(&list), &servers(&list)).unwrap();
        for i in 0..2000 {
            let key = format!("key:{i}");
            assert_eq!(owner_in(&p, key.as_bytes()), owner_in(&k, key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn every_hash_places_every_key_somewhere_and_differently() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, hash) in HASHES {
            let p = pool(&FOUR, hash, Distribution::Ketama, None);
            let owners: Vec<usize> = (0..64).map(|i| owner_in(&p, format!("k{i}").as_bytes())).collect();
            assert!(owners.iter().all(|o| *o < 4), "{name}");
            seen.insert(owners);
        }
        assert_eq!(seen.len(), HASHES.len(), "each hash places keys its own way");
    }
}
