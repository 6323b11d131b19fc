//! npm `memjs` (memcachier), bit for bit: `shared/spec/placement-clients.md`
//! B.3b. Java's `String.hashCode` over the UTF-16 code units of the key
//! (a JavaScript string; the server stores its UTF-8), then JavaScript's
//! `Math.abs`, whose result for -2^31 is 2^31 (Rust's `i32::abs` would
//! overflow), modulo the number of servers. A server listed twice has two
//! slots; names never enter the hash. Bytes that are not UTF-8 were never
//! written by memjs and belong to no server. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::hashes::java_hash_code;
use super::modula::Modula;
use super::{Family, Key};

/// memjs over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memjs {
    old: Modula,
    new: Modula,
}

impl Memjs {
    pub fn new(old: usize, new: usize) -> Memjs {
        Memjs { old: Modula::plain(old), new: Modula::plain(new) }
    }
}

/// memjs's `hashCode`: `Math.abs` of the Java hash.
pub fn hash_code(key: &[u8]) -> Option<u32> {
    java_hash_code(key).map(i32::unsigned_abs)
}

impl Family for Memjs {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = hash_code(key.bytes)?;
        Some((self.old.owner(h)?, self.new.owner(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vectors() {
        let m = Memjs::new(3, 4);
        let rows: [(&str, (usize, usize)); 6] = [
            ("a", (1, 1)),
            ("foo", (0, 2)),
            ("user:1000", (1, 2)),
            ("café", (0, 1)),
            ("😀", (1, 3)),
            ("polygenelubricants", (2, 0)),
        ];
        for (key, want) in rows {
            assert_eq!(m.owners(&Key { bytes: key.as_bytes(), digest: None }, &mut Vec::new()), Some(want), "{key}");
        }
        // A negative hashCode is made positive, not read unsigned:
        // hashCode("user:42") = 0xf73a5c8d = -147170163 → 147170163,
        // which is 0 mod 3 and 3 mod 4 (read unsigned: 1 and 1).
        assert_eq!(m.owners(&Key { bytes: b"user:42", digest: None }, &mut Vec::new()), Some((0, 3)));
        assert_eq!(hash_code(b"polygenelubricants"), Some(1 << 31));
        assert_eq!(hash_code(b"GydZG_"), Some(1 << 31));
    }

    #[test]
    fn not_utf8_is_no_ones() {
        assert_eq!(Memjs::new(3, 4).owners(&Key { bytes: b"caf\xe9", digest: None }, &mut Vec::new()), None);
    }
}
