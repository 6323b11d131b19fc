//! npm `memcached` (3rd-Eden) and its `hashring` in ketama compatibility,
//! bit for bit: `shared/spec/placement-clients.md` B.3a.
//!
//! Each server gets `floor(weight / Σweight × 40 × n)` MD5 digests (in
//! JavaScript doubles, left to right) of `"name-i"`, four little-endian
//! points each, where the name is the host alone on port 11211 and the
//! entry as written otherwise; the points are sorted stably. A key's hash
//! is the first word of the MD5 of its UTF-8 (the bytes stored), and its
//! server the one of the first point at or above it, wrapping. The
//! namespace is part of the key stored and hashed. Pure.
//!
//! Two of the client's own quirks cannot be undone from the stored key,
//! and a resync cannot place such keys where the client looks for them: a
//! key longer than 250 characters is stored as its MD5 in hex but hashed
//! as written, and a `$` pattern in a key changes what is stored
//! (`String.replace`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{md5_points, Continuum, Tie};
use super::{Family, Key, Server};

/// hashring's `vnode count`.
const VNODES: f64 = 40.0;

/// The name hashring hashes for a server.
fn point_name(s: &Server) -> &str {
    if s.port == 11211 {
        &s.host
    } else {
        &s.name
    }
}

/// hashring's ring over one list.
pub fn ring(list: &[Server]) -> Continuum {
    let n = list.len() as f64;
    let total: f64 = list.iter().map(|s| f64::from(s.weight)).sum();
    let mut points = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let digests = (f64::from(s.weight) / total * VNODES * n).floor() as u32;
        md5_points(point_name(s).as_bytes(), digests.saturating_mul(4), i as u32, &mut points);
    }
    // A stable sort by value: of equal points the first listed stays first,
    // and the lower bound finds it.
    Continuum::new(points, list.len(), Tie::FirstListed)
}

/// node-memcached over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMemcached {
    old: Continuum,
    new: Continuum,
}

impl NodeMemcached {
    pub fn new(old: &[Server], new: &[Server]) -> NodeMemcached {
        NodeMemcached { old: ring(old), new: ring(new) }
    }
}

impl Family for NodeMemcached {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = key.md5_le32();
        Some((self.old.at_or_after(h)?, self.new.at_or_after(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::tests::{owner_in, servers};

    fn owner(list: &[&str], key: &str) -> usize {
        owner_in(&NodeMemcached::new(&servers(list), &servers(list)), key.as_bytes())
    }

    #[test]
    fn the_spec_vectors() {
        let three = ["127.0.0.1:31011", "127.0.0.1:31012", "127.0.0.1:31013"];
        let four = ["127.0.0.1:31011", "127.0.0.1:31012", "127.0.0.1:31013", "127.0.0.1:31014"];
        let named = ["localhost:31011", "localhost:31012", "localhost:31013"];
        let rows: [(&str, [usize; 3]); 5] = [
            ("a", [0, 3, 0]),
            ("foo", [0, 3, 1]),
            ("user:1000", [0, 0, 1]),
            ("日本語キー", [0, 3, 2]),
            ("😀", [2, 2, 1]),
        ];
        for (key, [o3, o4, ol]) in rows {
            assert_eq!(owner(&three, key), o3, "{key} 3");
            assert_eq!(owner(&four, key), o4, "{key} 4");
            assert_eq!(owner(&named, key), ol, "{key} localhost");
        }
        let weighted = ["127.0.0.1:31011:1", "127.0.0.1:31012:2", "127.0.0.1:31013:3"];
        assert_eq!(owner(&weighted, "café"), 2);
        assert_eq!(owner(&weighted, "😀"), 2);
        assert_eq!(owner(&weighted, "a"), 0);
    }

    #[test]
    fn port_11211_is_left_out_of_the_point_names() {
        // The same as libmemcached's ring for equal weights and ports 11211.
        let list = servers(&["127.0.0.2:11211", "127.0.0.3:11211", "127.0.0.4:11211"]);
        let ketama = crate::placement::ketama::Ketama::new(&list, &list).unwrap();
        let node = NodeMemcached::new(&list, &list);
        for i in 0..2000 {
            let key = format!("key:{i}");
            assert_eq!(owner_in(&node, key.as_bytes()), owner_in(&ketama, key.as_bytes()), "{key}");
        }
    }
}
