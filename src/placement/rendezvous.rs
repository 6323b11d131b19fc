//! pymemcache's `HashClient` (rendezvous hashing, the client of Django's
//! `PyMemcacheCache`), bit for bit: `shared/spec/placement.md` §4.
//!
//! A node's score for a key is MurmurHash3_x86_32 (seed 0) of
//! `"{host}:{port}-{keytext}"`; the highest score wins, ties going to the
//! greatest name. The key text is what the application passed: a `str` is
//! hashed one byte per character (the code point's low byte), a `bytes`
//! key as Python's `repr` of it (`b'foo'`). The server stores neither form,
//! so which one the clients use is a setting ([`KeyText`]). Pure.

/// How the clients pass keys to pymemcache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
pub enum KeyText {
    /// `str` keys (Django's cache, most applications).
    #[default]
    Str,
    /// `bytes` keys, hashed as Python prints them: `b'…'`.
    Bytes,
}

/// MurmurHash3_x86_32 of `data` with seed 0 (Austin Appleby's reference,
/// as pymemcache's murmur3.py computes it).
///
/// Written here over a slice rather than taken from the `murmur3` crate,
/// whose API reads through `std::io::Read`: 48 ns for a 34-byte name-key
/// on this machine, and rendezvous hashes every dumped key once per server.
/// The crate stays the oracle: a property test compares the two on
/// arbitrary input.
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h: u32 = 0;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h = (h ^ mix(k)).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, b| (k << 8) | u32::from(*b));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The key text pymemcache hashes for the key `key` as stored (UTF-8 on
/// the server), appended to `out`. `None` for a `str` key that is not
/// UTF-8: no `str` could have been stored as those bytes.
pub fn key_text(key: &[u8], mode: KeyText, out: &mut Vec<u8>) -> Option<()> {
    match mode {
        KeyText::Str => {
            let text = std::str::from_utf8(key).ok()?;
            out.extend(text.chars().map(|c| (u32::from(c) & 0xff) as u8));
        }
        KeyText::Bytes => python_bytes_repr(key, out),
    }
    Some(())
}

/// CPython's `repr(bytes)`: `b'…'`, or `b"…"` when the bytes hold a `'`
/// and no `"`; `\\`, `\t`, `\n`, `\r` and the quote escaped, other bytes
/// outside 0x20..0x7f as `\xNN`.
pub fn python_bytes_repr(key: &[u8], out: &mut Vec<u8>) {
    let quote = if key.contains(&b'\'') && !key.contains(&b'"') { b'"' } else { b'\'' };
    out.push(b'b');
    out.push(quote);
    for &c in key {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ if c == quote => out.extend_from_slice(&[b'\\', c]),
            0x20..0x7f => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(quote);
}

/// pymemcache's name of a server: `host:port`, IPv6 without brackets.
fn node_name(s: &super::Server) -> String {
    format!("{}:{}", s.host, s.port)
}

/// Rendezvous over the old list and the new one: the names of both lists
/// once each, and each name's position in the old list and in the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    names: Vec<String>,
    old_pos: Vec<Option<usize>>,
    new_pos: Vec<Option<usize>>,
    text: KeyText,
}

impl Rendezvous {
    pub fn new(old: &[super::Server], new: &[super::Server], text: KeyText) -> Rendezvous {
        let mut names: Vec<String> = Vec::new();
        for n in old.iter().chain(new).map(node_name) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let positions = |list: &[super::Server]| -> Vec<Option<usize>> {
            names.iter().map(|name| list.iter().position(|e| node_name(e) == *name)).collect()
        };
        let (old_pos, new_pos) = (positions(old), positions(new));
        Rendezvous { names, old_pos, new_pos, text }
    }
}

impl super::Family for Rendezvous {
    fn owners(&self, key: &super::Key<'_>, scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        let Rendezvous { names, old_pos, new_pos, text } = self;
        // Each name scored once, without allocating: the buffer holds the
        // key text, then "name-keytext" for one name at a time.
        scratch.clear();
        key_text(key.bytes, *text, scratch)?;
        let t = scratch.len();
        // (score, name index) of the best so far in each list.
        let mut best_old: Option<(u32, usize)> = None;
        let mut best_new: Option<(u32, usize)> = None;
        for (n, name) in names.iter().enumerate() {
            scratch.truncate(t);
            scratch.extend_from_slice(name.as_bytes());
            scratch.push(b'-');
            scratch.extend_from_within(..t);
            let score = murmur3_32(scratch.get(t..).unwrap_or_default());
            // Highest score; on a tie the greatest name (Python's max).
            let beats = |best: Option<(u32, usize)>| match best {
                None => true,
                Some((s, b)) => score > s || (score == s && names.get(b).is_some_and(|b| name > b)),
            };
            if old_pos.get(n).copied().flatten().is_some() && beats(best_old) {
                best_old = Some((score, n));
            }
            if new_pos.get(n).copied().flatten().is_some() && beats(best_new) {
                best_new = Some((score, n));
            }
        }
        let position = |best: Option<(u32, usize)>, pos: &[Option<usize>]| pos.get(best?.1).copied().flatten();
        Some((position(best_old, old_pos)?, position(best_new, new_pos)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The same as the murmur3 crate's, on anything.
        #[test]
        fn murmur3_is_the_crates(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let oracle = murmur3::murmur3_32(&mut std::io::Cursor::new(&data), 0).unwrap();
            proptest::prop_assert_eq!(murmur3_32(&data), oracle);
        }
    }

    #[test]
    fn murmur3_vectors() {
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"hello"), 613153351);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog"), 776992547);
        assert_eq!(murmur3_32(b"127.0.0.1:21211-foo"), 1248243307);
        assert_eq!(murmur3_32(b"127.0.0.1:21212-foo"), 862758748);
        assert_eq!(murmur3_32(b"127.0.0.1:21213-foo"), 2807905136);
    }

    fn text(key: &[u8], mode: KeyText) -> Vec<u8> {
        let mut out = Vec::new();
        key_text(key, mode, &mut out).unwrap();
        out
    }

    #[test]
    fn key_texts_as_python_hashes_them() {
        assert_eq!(text(b"foo", KeyText::Bytes), b"b'foo'");
        assert_eq!(text(b"it's", KeyText::Bytes), b"b\"it's\"");
        assert_eq!(text(b"a'\"b", KeyText::Bytes), b"b'a\\'\"b'");
        assert_eq!(text(b"t\tn\nr\rs\\\x00\x7f\xff", KeyText::Bytes), b"b't\\tn\\nr\\rs\\\\\\x00\\x7f\\xff'");
        assert_eq!(text(b"foo", KeyText::Str), b"foo");
        // "é" (U+00E9, stored as c3 a9) is hashed as the one byte e9;
        // "€" (U+20AC) as its low byte, ac.
        assert_eq!(text("é€".as_bytes(), KeyText::Str), vec![0xe9, 0xac]);
        assert!(key_text(b"\xff", KeyText::Str, &mut Vec::new()).is_none());
    }

    use crate::placement::{ListOwner, Placement, Scheme};
    use crate::view::ClusterSettings;

    /// The server the production path gives `key` under `servers` (with
    /// `text` keys), as its `host:port` name.
    fn owner(servers: &[&str], key: &[u8], text: KeyText) -> String {
        let settings = ClusterSettings::lists(servers.iter().map(|s| s.to_string()).collect(), None);
        let placement = Placement { scheme: Scheme::Rendezvous, key_text: text, ..Placement::default() };
        let list = ListOwner::new(&settings, &placement).unwrap();
        servers[list.owner(key, &mut Vec::new()).unwrap()].to_owned()
    }

    #[test]
    fn the_spec_vectors() {
        let r1 = ["127.0.0.1:21211", "127.0.0.1:21212", "127.0.0.1:21213"];
        let r2 = ["127.0.0.1:21211", "127.0.0.1:21212", "127.0.0.1:21213", "127.0.0.1:21214"];
        let r3 = ["127.0.0.2:11211", "127.0.0.3:11211", "127.0.0.4:11211"];
        let rows: [(&str, u16, u16, &str); 12] = [
            ("foo", 21213, 21213, ".3"),
            ("bar", 21212, 21212, ".2"),
            ("baz", 21211, 21211, ".2"),
            ("user:1", 21211, 21211, ".4"),
            ("user:2", 21212, 21212, ".4"),
            ("user:42", 21211, 21211, ".4"),
            ("session:abc", 21213, 21213, ".4"),
            ("a", 21213, 21213, ".2"),
            ("z", 21211, 21214, ".3"),
            ("hello_world", 21211, 21211, ".2"),
            ("memcached", 21213, 21214, ".2"),
            ("key-0", 21213, 21213, ".4"),
        ];
        for (key, p1, p2, o3) in rows {
            let k = key.as_bytes();
            assert_eq!(owner(&r1, k, KeyText::Str), format!("127.0.0.1:{p1}"), "{key} R1");
            assert_eq!(owner(&r2, k, KeyText::Str), format!("127.0.0.1:{p2}"), "{key} R2");
            assert_eq!(owner(&r3, k, KeyText::Str), format!("127.0.0{o3}:11211"), "{key} R3");
        }
        // The bytes key b"foo" on R1: hashed as "b'foo'".
        assert_eq!(owner(&r1, b"foo", KeyText::Bytes), "127.0.0.1:21213");
    }

    #[test]
    fn list_order_never_matters() {
        let (a, b) = (["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"], ["10.0.0.3:3", "10.0.0.1:1", "10.0.0.2:2"]);
        for i in 0..500u32 {
            let k = i.to_string();
            assert_eq!(owner(&a, k.as_bytes(), KeyText::Str), owner(&b, k.as_bytes(), KeyText::Str));
        }
    }
}
