//! libmemcached's default placement: `MEMCACHED_DISTRIBUTION_MODULA` with
//! the one-at-a-time key hash (php-memcached without
//! `OPT_LIBKETAMA_COMPATIBLE`, pylibmc without `ketama`), bit for bit:
//! `shared/spec/placement-clients.md` A.4. Only the number of servers and
//! their order count: `one_at_a_time(key) mod n`, the key's bytes read
//! signed as x86-64 builds read them. A namespace (php-memcached's
//! `OPT_PREFIX_KEY`) is stored but not hashed: `--key-prefix`. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::hashes::one_at_a_time;
use super::modula::Modula;
use super::{Family, Key};

/// libmemcached's modula over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libmemcached {
    old: Modula,
    new: Modula,
}

impl Libmemcached {
    pub fn new(old: usize, new: usize) -> Libmemcached {
        Libmemcached { old: Modula::plain(old), new: Modula::plain(new) }
    }
}

impl Family for Libmemcached {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        // With one server libmemcached hashes nothing: it takes all, as
        // h mod 1 gives.
        let h = one_at_a_time(key.bytes);
        Some((self.old.owner(h)?, self.new.owner(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vectors() {
        let owners = |key: &[u8]| Libmemcached::new(3, 4).owners(&Key { bytes: key, digest: None }, &mut Vec::new());
        let rows: [(&[u8], u32, (usize, usize)); 5] = [
            (b"foo", 0x238678dd, (0, 1)),
            (b"user:42", 0x303f6fea, (0, 2)),
            ("café".as_bytes(), 0xd99c709e, (1, 2)),
            ("日本😀".as_bytes(), 0x17228e50, (0, 0)),
            (&[b'k'; 250], 0x64ea6c90, (1, 0)),
        ];
        for (key, h, want) in rows {
            assert_eq!(one_at_a_time(key), h, "{}", String::from_utf8_lossy(key));
            assert_eq!(owners(key), Some(want), "{}", String::from_utf8_lossy(key));
        }
    }
}
