//! The memcached proxy's default pool distribution: XXH3-64 of the key
//! (seed 0, or the XXH3 of the pool's `seed` option), then jump consistent
//! hashing over the pool's backends by position. `shared/spec/placement.md`
//! §5; memcached 1.6.14 and later. Pure.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The hash seed of a pool: 0, or the XXH3 of its `seed = "<string>"`.
pub fn pool_seed(seed: Option<&str>) -> u64 {
    seed.map_or(0, |s| xxh3_64(s.as_bytes()))
}

/// A key's XXH3-64 under the pool's seed.
pub fn key_hash(key: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(key, seed)
}

/// Jump consistent hash (Lamping and Veach): the bucket of `h` among `n`,
/// in IEEE double precision as the proxy computes it.
pub fn jump(mut h: u64, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        h = h.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((h >> 33) + 1) as f64)) as i64;
    }
    Some(b as usize)
}

/// The proxy's pool over the old list and the new one: only their lengths
/// count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    old: usize,
    new: usize,
    seed: u64,
}

impl Jump {
    pub fn new(old: usize, new: usize, seed: Option<&str>) -> Jump {
        Jump { old, new, seed: pool_seed(seed) }
    }
}

impl super::Family for Jump {
    fn owners(&self, key: &super::Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = key_hash(key.bytes, self.seed);
        Some((jump(h, self.old)?, jump(h, self.new)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_vectors() {
        assert_eq!(jump(0, 10), Some(0));
        assert_eq!(jump(1, 10), Some(6));
        assert_eq!(jump(u64::MAX, 10), Some(9));
        assert_eq!(jump(123456789, 1000), Some(294));
        assert_eq!(jump(42, 1), Some(0));
        assert_eq!(jump(42, 0), None);
    }

    #[test]
    fn the_spec_vectors() {
        assert_eq!(pool_seed(Some("foo")), 0xab6e5f64077e7d8a);
        // key, XXH3-64, then the backend for N = 1..=5 and N = 4 seeded "foo".
        let rows: [(&str, u64, [usize; 6]); 8] = [
            ("foo", 0xab6e5f64077e7d8a, [0, 1, 2, 2, 2, 2]),
            ("bar", 0xd463c860a032d362, [0, 1, 1, 3, 3, 2]),
            ("baz", 0x2a1e7301336f8925, [0, 0, 0, 3, 3, 3]),
            ("user:1", 0x3b577afd7fed9501, [0, 1, 1, 1, 1, 0]),
            ("user:2", 0x69a0366b760b5c02, [0, 0, 0, 0, 4, 1]),
            ("session:abc", 0x00c6bcdf2ba3e0fc, [0, 0, 0, 3, 3, 1]),
            ("z", 0x54a7d9dde88eadb0, [0, 0, 0, 0, 0, 0]),
            ("memcached", 0x7dde0d25a01f8644, [0, 1, 2, 2, 4, 0]),
        ];
        let seeded = pool_seed(Some("foo"));
        for (key, hash, owners) in rows {
            assert_eq!(key_hash(key.as_bytes(), 0), hash, "{key}");
            for n in 1..=5 {
                assert_eq!(jump(hash, n), Some(owners[n - 1]), "{key} N={n}");
            }
            assert_eq!(jump(key_hash(key.as_bytes(), seeded), 4), Some(owners[5]), "{key} seeded");
        }
    }
}
