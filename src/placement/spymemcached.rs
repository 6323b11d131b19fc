//! Java spymemcached 2.12 (`shared/spec/placement-clients.md` A.2), its
//! three locators:
//! - the default `ArrayModNodeLocator` with `NATIVE_HASH`: the key's
//!   `String.hashCode` as an unsigned 32-bit number, modulo the list's
//!   length (`spymemcached`);
//! - `KetamaConnectionFactory` (`spymemcached-ketama`): 160 MD5 points per
//!   node named by spymemcached's node key, or with a weight map the
//!   points libmemcached's single-precision formula gives; the key's MD5;
//!   the first point at or above the key's hash, wrapping;
//! - `setLocatorType(CONSISTENT)` without a hash algorithm
//!   (`spymemcached-consistent`): the same ring made of 160
//!   `hashCode("nodekey-i")` points, the key's `hashCode`.
//!
//! The key is a Java `String`; the server stores its UTF-8. The hashes
//! over text decode it and run over UTF-16 code units (an astral character
//! is two); bytes that are not UTF-8 were never written by a Java client
//! and belong to no server. Pure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::continuum::{md5_points, Continuum, Tie};
use super::hashes::java_hash_code;
use super::{Family, Key, LayoutError, Server};
use std::net::IpAddr;

/// `KetamaNodeLocator`'s repetitions (`DefaultKetamaNodeLocatorConfiguration`).
const NODE_REPETITIONS: u32 = 160;

/// spymemcached's node key (`KetamaNodeKeyFormatter`, `Format.SPYMEMCACHED`):
/// `String.valueOf(InetSocketAddress)` without its leading `/`. For an IP
/// literal that is the address as Java prints it and the port
/// (`127.0.0.1:11211`; IPv6 as JDK 14 and later print it,
/// `[0:0:0:0:0:0:0:1]:11211`). For a host name Java puts the address it
/// resolved in the key (`localhost/127.0.0.1:11211`), which Astaire cannot
/// know without asking the resolver the client asked: refused.
pub fn node_key(s: &Server) -> Result<String, LayoutError> {
    let ip: IpAddr = s.host.parse().map_err(|_| {
        LayoutError(format!(
            "line {}: {}: spymemcached's ketama names a node by the address Java resolves its host name to \
             (localhost/127.0.0.1:11211), which Astaire does not look up; give the clients and cluster_settings \
             IP addresses",
            s.line, s.name
        ))
    })?;
    Ok(match ip {
        IpAddr::V4(v4) => format!("{v4}:{}", s.port),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // Java makes an IPv4-mapped address an Inet4Address.
            Some(v4) => format!("{v4}:{}", s.port),
            None => {
                let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
                format!("[{}]:{}", groups.join(":"), s.port)
            }
        },
    })
}

/// `hashCode(text) & 0xffffffff` (`NATIVE_HASH`).
fn native(key: &[u8]) -> Option<u32> {
    java_hash_code(key).map(|h| h as u32)
}

/// The ring `KetamaConnectionFactory` builds over `list`: with weights on
/// every entry, each node's share of `160 × n` points in single precision;
/// otherwise 160 each. Of two equal points the node listed later wins
/// (`TreeMap.put` overwrites).
pub fn ketama_ring(list: &[Server]) -> Result<Continuum, LayoutError> {
    let counts = match list.iter().filter(|s| s.weighted).count() {
        0 => vec![NODE_REPETITIONS; list.len()],
        n if n == list.len() => super::ketama::point_counts(&list.iter().map(|s| s.weight).collect::<Vec<_>>()),
        _ => {
            let bare =
                list.iter().find(|s| !s.weighted).map_or(String::new(), |s| format!("line {}: {}", s.line, s.name));
            return Err(LayoutError(format!(
                "{bare} has no weight: spymemcached's weighted ketama needs a weight for every node (or none)"
            )));
        }
    };
    let mut points = Vec::new();
    for ((i, s), count) in list.iter().enumerate().zip(counts) {
        md5_points(node_key(s)?.as_bytes(), count, i as u32, &mut points);
    }
    Ok(Continuum::new(points, list.len(), Tie::LastListed))
}

/// The ring `setLocatorType(CONSISTENT)` builds with `NATIVE_HASH`:
/// `hashCode(nodeKey + "-" + i)` for i in 0..160.
pub fn consistent_ring(list: &[Server]) -> Result<Continuum, LayoutError> {
    let mut points = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let key = node_key(s)?;
        for r in 0..NODE_REPETITIONS {
            let point = native(format!("{key}-{r}").as_bytes()).unwrap_or_default();
            points.push((point, i as u32));
        }
    }
    Ok(Continuum::new(points, list.len(), Tie::LastListed))
}

/// spymemcached over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spymemcached {
    ArrayMod { old: u32, new: u32 },
    Ketama { old: Continuum, new: Continuum },
    Consistent { old: Continuum, new: Continuum },
}

impl Spymemcached {
    pub fn array_mod(old: &[Server], new: &[Server]) -> Spymemcached {
        Spymemcached::ArrayMod { old: old.len() as u32, new: new.len() as u32 }
    }

    pub fn ketama(old: &[Server], new: &[Server]) -> Result<Spymemcached, LayoutError> {
        Ok(Spymemcached::Ketama { old: ketama_ring(old)?, new: ketama_ring(new)? })
    }

    pub fn consistent(old: &[Server], new: &[Server]) -> Result<Spymemcached, LayoutError> {
        Ok(Spymemcached::Consistent { old: consistent_ring(old)?, new: consistent_ring(new)? })
    }
}

impl Family for Spymemcached {
    fn owners(&self, key: &Key<'_>, _: &mut Vec<u8>) -> Option<(usize, usize)> {
        match self {
            Spymemcached::ArrayMod { old, new } => {
                let h = native(key.bytes)?;
                Some((h.checked_rem(*old)? as usize, h.checked_rem(*new)? as usize))
            }
            Spymemcached::Ketama { old, new } => {
                let h = key.md5_le32();
                Some((old.at_or_after(h)?, new.at_or_after(h)?))
            }
            Spymemcached::Consistent { old, new } => {
                let h = native(key.bytes)?;
                Some((old.at_or_after(h)?, new.at_or_after(h)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::tests::{owner_in, servers};

    fn array_mod(list: &[&str], key: &str) -> usize {
        owner_in(&Spymemcached::array_mod(&servers(list), &servers(list)), key.as_bytes())
    }

    fn ketama(list: &[&str], key: &str) -> usize {
        owner_in(&Spymemcached::ketama(&servers(list), &servers(list)).unwrap(), key.as_bytes())
    }

    fn consistent(list: &[&str], key: &str) -> usize {
        owner_in(&Spymemcached::consistent(&servers(list), &servers(list)).unwrap(), key.as_bytes())
    }

    const PORTS: [&str; 3] = ["127.0.0.1:30031", "127.0.0.1:30032", "127.0.0.1:30033"];

    #[test]
    fn the_array_mod_vectors() {
        let three = ["a:1", "b:1", "c:1"];
        assert_eq!(array_mod(&three, "foo"), 0);
        assert_eq!(array_mod(&three, "user:42"), 1);
        assert_eq!(array_mod(&three, "café"), 0);
        assert_eq!(array_mod(&three, "日本😀"), 1);
        assert_eq!(array_mod(&three, &"k".repeat(250)), 2);
        assert_eq!(array_mod(&["a:1", "b:1", "c:1", "d:1"], "foo"), 2);
        // hashCode("user:42") is negative as an int: unsigned, never abs.
        assert_eq!(java_hash_code(b"user:42").map(|h| h < 0), Some(true));
    }

    #[test]
    fn the_ketama_vectors() {
        assert_eq!(crate::placement::hashes::md5_le32(&crate::view::key_digest(b"foo")), 0xdb18bdac);
        assert_eq!(ketama(&PORTS, "foo"), 0);
        assert_eq!(ketama(&PORTS, "user:42"), 1);
        let ips = ["127.0.0.2:11211", "127.0.0.3:11211", "127.0.0.4:11211", "127.0.0.5:11211"];
        assert_eq!(ketama(&ips, "café"), 2);
        assert_eq!(ketama(&ips, "user:42"), 3);
        let weighted = ["127.0.0.1:30031:1", "127.0.0.1:30032:2", "127.0.0.1:30033:3", "127.0.0.1:30034:4"];
        assert_eq!(ketama(&weighted, "foo"), 0);
        assert_eq!(ketama(&weighted, "user:42"), 3);
        assert_eq!(ketama(&weighted, "café"), 3);
    }

    #[test]
    fn the_consistent_vectors_all_go_to_the_first_node() {
        for key in ["foo", "user:42", "café", "日本😀", &"k".repeat(250)] {
            assert_eq!(consistent(&PORTS, key), 0, "{key}");
        }
        // The spec's surprise: 2999 of 3000 keys on node 0.
        let on_first = (0..3000).filter(|i| consistent(&PORTS, &format!("key:{i}")) == 0).count();
        assert!(on_first > 2900, "{on_first}");
    }

    #[test]
    fn node_keys_as_java_prints_them() {
        let key = |entry: &str| node_key(&servers(&[entry])[0]);
        assert_eq!(key("127.0.0.1:11211").unwrap(), "127.0.0.1:11211");
        assert_eq!(key("[::1]:11212").unwrap(), "[0:0:0:0:0:0:0:1]:11212");
        assert_eq!(key("[2001:db8::a:1]:1").unwrap(), "[2001:db8:0:0:0:0:a:1]:1");
        assert_eq!(key("[::ffff:10.0.0.1]:1").unwrap(), "10.0.0.1:1");
        let e = key("localhost:30031").unwrap_err();
        assert!(e.0.contains("line 1: localhost:30031") && e.0.contains("IP addresses"), "{e}");
    }

    #[test]
    fn weights_on_some_nodes_only_are_refused() {
        let e = Spymemcached::ketama(&servers(&["127.0.0.1:1:2", "127.0.0.1:2"]), &[]).unwrap_err();
        assert!(e.0.contains("127.0.0.1:2 has no weight"), "{e}");
    }

    #[test]
    fn equal_weights_are_the_unweighted_ring_and_the_later_node_wins_a_shared_point() {
        let plain = ketama_ring(&servers(&PORTS)).unwrap();
        let ones = ketama_ring(&servers(&["127.0.0.1:30031:1", "127.0.0.1:30032:1", "127.0.0.1:30033:1"])).unwrap();
        assert_eq!(plain, ones);
        // The same node twice: every point is the later copy's.
        let twice = ketama_ring(&servers(&["127.0.0.1:30031", "127.0.0.1:30031"])).unwrap();
        assert!(twice.points().iter().all(|p| p.1 == 1));
    }

    /// Invalid UTF-8 was never written by a Java client: no owner.
    #[test]
    fn bytes_that_are_not_utf8_have_no_owner() {
        let f = Spymemcached::array_mod(&servers(&PORTS), &servers(&PORTS));
        let key = Key { bytes: b"\xff\xfe", digest: None };
        assert_eq!(f.owners(&key, &mut Vec::new()), None);
    }
}
