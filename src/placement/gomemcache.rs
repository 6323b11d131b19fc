//! Go's `github.com/bradfitz/gomemcache` `ServerList` (the selector
//! `memcache.New` builds), bit for bit: `shared/spec/placement-clients.md`
//! B.2. `crc32(key) mod n` over the list as given; a server listed twice
//! has two slots (the list is not deduplicated). Host names never enter
//! the hash. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::hashes::crc32;
use super::modula::Modula;
use super::{Family, Key};

/// The key bytes gomemcache hashes (its `keyBufPool` buffer); memcached's
/// keys are at most 250, so all of them in practice.
const HASHED: usize = 256;

/// gomemcache over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gomemcache {
    old: Modula,
    new: Modula,
}

impl Gomemcache {
    pub fn new(old: usize, new: usize) -> Gomemcache {
        Gomemcache { old: Modula::plain(old), new: Modula::plain(new) }
    }
}

impl Family for Gomemcache {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = crc32(key.bytes.get(..HASHED).unwrap_or(key.bytes));
        Some((self.old.owner(h)?, self.new.owner(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vectors() {
        let g = Gomemcache::new(3, 4);
        let rows: [(&str, (usize, usize)); 5] =
            [("a", (0, 3)), ("foo", (2, 1)), ("user:1000", (0, 3)), ("café", (2, 1)), ("😀", (1, 0))];
        for (key, want) in rows {
            assert_eq!(g.owners(&Key { bytes: key.as_bytes(), digest: None }, &mut Vec::new()), Some(want), "{key}");
        }
    }

    #[test]
    fn a_repeated_entry_is_a_slot_of_its_own() {
        // a,b,b,c,c,c: six slots, whatever the names.
        let g = Gomemcache::new(6, 6);
        let (slot, _) = g.owners(&Key { bytes: b"foo", digest: None }, &mut Vec::new()).unwrap();
        assert_eq!(slot, (crc32(b"foo") % 6) as usize);
    }
}
