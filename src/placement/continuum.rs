//! The ring of points the consistent-hashing clients share: libmemcached's
//! and twemproxy's ketama, spymemcached's `KetamaNodeLocator`, Node's
//! `hashring`, pecl memcache's `consistent` strategy and Dalli's ring.
//! They differ in how they make the points and how they look a hash up;
//! the ring itself (points sorted by value, each naming a server by its
//! index in the list) is this one type. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use md5::{Digest, Md5};

/// Which server keeps a point that two servers both put on the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// The one listed first (a stable sort, or a sort by value then index).
    FirstListed,
    /// The one listed last (a map whose later insertion overwrites:
    /// spymemcached's `TreeMap.put`).
    LastListed,
}

/// Points sorted by value, one per value, each with its server's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuum {
    points: Vec<(u32, u32)>,
    servers: usize,
}

impl Continuum {
    /// The ring of `points` (value, server index) over `servers` servers;
    /// of equal values, `tie` says which server keeps the point.
    pub fn new(mut points: Vec<(u32, u32)>, servers: usize, tie: Tie) -> Continuum {
        points.sort_unstable();
        match tie {
            Tie::FirstListed => points.dedup_by_key(|p| p.0),
            Tie::LastListed => {
                points.reverse();
                points.dedup_by_key(|p| p.0);
                points.reverse();
            }
        }
        Continuum { points, servers }
    }

    /// The server of the first point at or above `h`, wrapping to the first
    /// point (ketama's lower bound). One server owns everything.
    pub fn at_or_after(&self, h: u32) -> Option<usize> {
        if self.servers <= 1 {
            return (self.servers == 1).then_some(0);
        }
        let at = self.points.partition_point(|(v, _)| *v < h);
        let (_, server) = self.points.get(at).or_else(|| self.points.first())?;
        Some(*server as usize)
    }

    /// The server of the last point at or below `h`, wrapping to the last
    /// point (Dalli's floor). One server owns everything.
    pub fn at_or_before(&self, h: u32) -> Option<usize> {
        if self.servers <= 1 {
            return (self.servers == 1).then_some(0);
        }
        let after = self.points.partition_point(|(v, _)| *v <= h);
        let point = match after.checked_sub(1) {
            Some(i) => self.points.get(i),
            None => self.points.last(),
        };
        point.map(|(_, server)| *server as usize)
    }

    /// Every point, in order.
    pub fn points(&self) -> &[(u32, u32)] {
        &self.points
    }

    pub fn servers(&self) -> usize {
        self.servers
    }
}

/// Ketama's points for one server: `count / 4` MD5 digests of
/// `"{name}-{j}"`, four little-endian words each, for server `index`.
pub fn md5_points(name: &[u8], count: u32, index: u32, out: &mut Vec<(u32, u32)>) {
    let mut text = Vec::with_capacity(name.len() + 12);
    for j in 0..count / 4 {
        text.clear();
        text.extend_from_slice(name);
        text.push(b'-');
        text.extend_from_slice(itoa::Buffer::new().format(j).as_bytes());
        let digest: [u8; 16] = Md5::digest(&text).into();
        let (words, _) = digest.as_chunks::<4>();
        out.extend(words.iter().map(|w| (u32::from_le_bytes(*w), index)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_at_or_after_and_at_or_before_wrap_the_other_way() {
        let c = Continuum::new(vec![(30, 2), (10, 0), (20, 1)], 3, Tie::FirstListed);
        assert_eq!([0, 10, 11, 20, 30, 31].map(|h| c.at_or_after(h)), [0, 0, 1, 1, 2, 0].map(Some));
        assert_eq!([0, 9, 10, 19, 20, 30, u32::MAX].map(|h| c.at_or_before(h)), [2, 2, 0, 0, 1, 2, 2].map(Some));
    }

    #[test]
    fn a_point_two_servers_share_goes_to_the_first_or_the_last_listed() {
        let points = vec![(5, 0), (5, 2), (5, 1), (9, 1)];
        let first = Continuum::new(points.clone(), 3, Tie::FirstListed);
        let last = Continuum::new(points, 3, Tie::LastListed);
        assert_eq!(first.points(), [(5, 0), (9, 1)]);
        assert_eq!(last.points(), [(5, 2), (9, 1)]);
    }

    #[test]
    fn one_server_takes_everything_and_none_nothing() {
        let one = Continuum::new(vec![(7, 0)], 1, Tie::FirstListed);
        assert_eq!((one.at_or_after(u32::MAX), one.at_or_before(0)), (Some(0), Some(0)));
        let none = Continuum::new(Vec::new(), 0, Tie::FirstListed);
        assert_eq!((none.at_or_after(1), none.at_or_before(1)), (None, None));
        let pointless = Continuum::new(Vec::new(), 2, Tie::FirstListed);
        assert_eq!(pointless.at_or_after(1), None);
    }

    #[test]
    fn md5_points_are_the_digests_words() {
        // MD5("127.0.0.1:30031-0") = 506ad62a 4716def6 92a3a517 4bb1fd97.
        let mut out = Vec::new();
        md5_points(b"127.0.0.1:30031", 4, 7, &mut out);
        assert_eq!(out, [(0x2ad66a50, 7), (0xf6de1647, 7), (0x17a5a392, 7), (0x97fdb14b, 7)]);
    }
}
