//! libmemcached's weighted ketama continuum (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`,
//! PHP's `LIBKETAMA_COMPATIBLE`, pylibmc's `ketama_weighted`, twemproxy with
//! `hash: md5`), bit for bit: `shared/spec/placement.md` §1.
//!
//! The point counts are computed in single precision, operation by
//! operation, as libmemcached does: 25 equal servers get 156 points each,
//! not 160. spymemcached's weighted ketama and twemproxy count their
//! points with the same formula ([`point_counts`]). Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{md5_points, Continuum, Tie};
use super::{Family, Key, LayoutError, Server};

/// Points per server at equal weights (libmemcached's
/// `MEMCACHED_POINTS_PER_SERVER_KETAMA`).
const POINTS_PER_SERVER: f32 = 160.0;

/// A server as a ketama client names it: the host string exactly as
/// configured (never resolved), its port and its weight (0 counts as 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KetamaServer {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

impl KetamaServer {
    /// The text each point is hashed from: the host alone on port 11211,
    /// else `host:port`.
    fn point_name(&self) -> String {
        if self.port == 11211 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The points each server gets for these weights, in list order (a
/// multiple of 4; a weight of 0 counts as 1).
pub fn point_counts(weights: &[u32]) -> Vec<u32> {
    let n = weights.len() as f32;
    let total = weights.iter().map(|w| (*w).max(1) as f32).sum::<f32>();
    weights
        .iter()
        .map(|w| {
            // IEEE single precision, rounded after every operation, in
            // libmemcached's order (src/libmemcached/hosts.cc). twemproxy
            // and spymemcached add the 1e-10 in double precision and round
            // back to single: the same for every t a count can take.
            let pct = (*w).max(1) as f32 / total;
            let t = ((pct * POINTS_PER_SERVER) / 4.0f32) * n + 1e-10f32;
            (t.floor() as u32) * 4
        })
        .collect()
}

/// The continuum of `servers`: points sorted by (value, server index), so
/// that of two equal points the lower index wins.
pub fn ring(servers: &[KetamaServer]) -> Continuum {
    let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
    let mut points = Vec::new();
    for ((i, server), count) in servers.iter().enumerate().zip(point_counts(&weights)) {
        md5_points(server.point_name().as_bytes(), count, i as u32, &mut points);
    }
    Continuum::new(points, servers.len(), Tie::FirstListed)
}

/// A key's ketama hash: the first four bytes of its MD5 digest, little-endian.
pub fn key_hash(digest: &[u8; 16]) -> u32 {
    super::hashes::md5_le32(digest)
}

/// libmemcached weighted ketama over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ketama {
    old: Continuum,
    new: Continuum,
}

impl Ketama {
    pub fn new(old: &[Server], new: &[Server]) -> Result<Ketama, LayoutError> {
        let ring_of = |list: &[Server]| {
            ring(
                &list
                    .iter()
                    .map(|s| KetamaServer { host: s.host.clone(), port: s.port, weight: s.weight })
                    .collect::<Vec<_>>(),
            )
        };
        Ok(Ketama { old: ring_of(old), new: ring_of(new) })
    }
}

impl Family for Ketama {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        let h = key.md5_le32();
        Some((self.old.at_or_after(h)?, self.new.at_or_after(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::key_digest;

    fn point_counts_of(servers: &[KetamaServer]) -> Vec<u32> {
        point_counts(&servers.iter().map(|s| s.weight).collect::<Vec<_>>())
    }

    fn servers(list: &[(&str, u16, u32)]) -> Vec<KetamaServer> {
        list.iter().map(|(h, p, w)| KetamaServer { host: (*h).into(), port: *p, weight: *w }).collect()
    }

    fn equal(n: usize) -> Vec<KetamaServer> {
        (0..n).map(|i| KetamaServer { host: format!("10.0.0.{i}"), port: 11211, weight: 1 }).collect()
    }

    #[test]
    fn point_counts_follow_single_precision() {
        assert_eq!(point_counts_of(&equal(3)), vec![160; 3]);
        // The f32 trap: 25 equal servers get 156 points each.
        for n in [25, 47, 50, 55, 61, 71, 94, 100] {
            assert_eq!(point_counts_of(&equal(n)), vec![156; n], "{n} servers");
        }
        assert_eq!(point_counts_of(&equal(24)), vec![160; 24]);
        let w = |ws: &[u32]| ws.to_vec();
        assert_eq!(point_counts(&w(&[1, 2, 5])), vec![60, 120, 300]);
        assert_eq!(point_counts(&w(&[1, 2, 5, 1])), vec![68, 140, 352, 68]);
        assert_eq!(point_counts(&w(&[18, 14, 12, 2, 4])), vec![288, 224, 188, 28, 60]);
        assert_eq!(
            point_counts(&w(&[600, 300, 200, 350, 1000, 800, 950, 100])),
            vec![176, 88, 56, 104, 296, 236, 280, 28]
        );
        assert_eq!(point_counts(&w(&[0, 1])), vec![160, 160], "weight 0 counts as 1");
    }

    #[test]
    fn the_first_points_of_a_server_are_its_md5_words() {
        let c = ring(&servers(&[("127.0.0.2", 11211, 1)]));
        for p in [0xea936318, 0xcfa748cb, 0xff983895, 0x159b6758] {
            assert!(c.points().contains(&(p, 0)), "{p:#x}");
        }
    }

    #[test]
    fn the_spec_vectors() {
        let a = servers(&[("127.0.0.2", 11211, 1), ("127.0.0.3", 11211, 1), ("127.0.0.4", 11211, 1)]);
        let mut b = a.clone();
        b.push(KetamaServer { host: "127.0.0.5".into(), port: 11211, weight: 1 });
        let c = servers(&[("127.0.0.2", 11211, 1), ("127.0.0.3", 11211, 2), ("127.0.0.4", 11211, 5)]);
        let d = servers(&[("127.0.0.1", 21211, 1), ("127.0.0.1", 21212, 1), ("127.0.0.1", 21213, 1)]);
        let lists = [&a, &b, &c, &d].map(|l| (ring(l), l.clone()));
        // key, MD5 key hash, then the owner in A, B, C (last octet) and D (port).
        let rows: [(&str, u32, [&str; 4]); 12] = [
            ("foo", 0xdb18bdac, [".3", ".5", ".3", "21213"]),
            ("bar", 0x191db537, [".4", ".4", ".4", "21211"]),
            ("baz", 0xa4fffe73, [".4", ".4", ".4", "21211"]),
            ("user:1", 0x10ddb1bd, [".3", ".3", ".3", "21212"]),
            ("user:2", 0xc298b7fb, [".2", ".2", ".2", "21213"]),
            ("user:42", 0x18dfda56, [".2", ".2", ".2", "21211"]),
            ("session:abc", 0x0d7b6032, [".3", ".3", ".3", "21212"]),
            ("a", 0xb975c10c, [".3", ".3", ".4", "21211"]),
            ("z", 0xe3e9adfb, [".3", ".3", ".4", "21211"]),
            ("hello_world", 0x8fffb199, [".4", ".5", ".4", "21211"]),
            ("memcached", 0x50e729ed, [".4", ".4", ".4", "21211"]),
            ("key-0", 0x7e8b42b4, [".2", ".2", ".2", "21212"]),
        ];
        for (key, hash, owners) in rows {
            let h = key_hash(&key_digest(key.as_bytes()));
            assert_eq!(h, hash, "{key}");
            for ((continuum, list), want) in lists.iter().zip(owners) {
                let s = &list[continuum.at_or_after(h).unwrap()];
                let got =
                    if s.port == 11211 { s.host.trim_start_matches("127.0.0").to_owned() } else { s.port.to_string() };
                assert_eq!(got, want, "{key}");
            }
        }
        let (ring_a, _) = &lists[0];
        assert_eq!(ring_a.points().len(), 480);
        assert_eq!(ring_a.points().first(), Some(&(0x0088352c, 2)));
        assert_eq!(ring_a.points().last(), Some(&(0xff983895, 0)));
        // Above the last point: wraps to the first (.4).
        assert_eq!(key_hash(&key_digest(b"w404")), 0xffd6394e);
        assert_eq!(ring_a.at_or_after(0xffd6394e), Some(2));
    }

    #[test]
    fn one_server_takes_everything_and_none_takes_nothing() {
        let one = ring(&equal(1));
        assert_eq!(one.at_or_after(0), Some(0));
        assert_eq!(one.at_or_after(u32::MAX), Some(0));
        assert_eq!(ring(&[]).at_or_after(7), None);
    }
}
