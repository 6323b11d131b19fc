//! The modula table the positional clients share: a key's hash modulo the
//! table's length picks a slot, and the slot names a server by its index
//! in the list. Plain (each server once: spymemcached's default,
//! libmemcached's modula, gomemcache, memjs) or with each server as many
//! times as its weight (twemproxy's `modula`, pecl memcache's `standard`).
//! Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

/// Slots of server indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modula {
    slots: Vec<u32>,
    servers: usize,
}

impl Modula {
    /// Each of `n` servers once, in list order.
    pub fn plain(n: usize) -> Modula {
        Modula { slots: (0..n as u32).collect(), servers: n }
    }

    /// Each server as many times as its weight, in list order.
    pub fn repeated(weights: &[u32]) -> Modula {
        let slots = weights.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i as u32, *w as usize)).collect();
        Modula { slots, servers: weights.len() }
    }

    /// The server of slot `h mod len`; `None` for an empty table.
    pub fn owner(&self, h: u32) -> Option<usize> {
        let len = u32::try_from(self.slots.len()).ok()?;
        self.slots.get(h.checked_rem(len)? as usize).map(|s| *s as usize)
    }

    pub fn servers(&self) -> usize {
        self.servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_repeat_each_server_by_its_weight() {
        let m = Modula::repeated(&[1, 3, 2]);
        assert_eq!((0..7).map(|h| m.owner(h).unwrap()).collect::<Vec<_>>(), [0, 1, 1, 1, 2, 2, 0]);
        assert_eq!(Modula::plain(3).owner(u32::MAX), Some(0));
        assert_eq!(Modula::plain(0).owner(5), None);
    }
}
