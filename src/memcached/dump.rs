//! Key enumeration output: `lru_crawler metadump` and `lru_crawler mgdump`.
//!
//! Pure parsing of one line at a time. `metadump` (all 1.6.x) prints
//! `key=<uri-encoded> exp=… la=… cas=… fetch=… cls=… size=…` lines ended by a
//! bare `\n` and closes with `END\r\n`; `mgdump` (1.6.19+) prints
//! `mg <key>[ b]\r\n` lines and closes with `EN\r\n`.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::proto::{first_line, lossy, parse_decimal, ProtoError};
use std::ops::Range;

/// Which enumeration command a server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpMode {
    Metadump,
    Mgdump,
}

impl DumpMode {
    /// `mgdump` exists from 1.6.19; anything unparseable gets `metadump`.
    pub fn for_version(version: &str) -> DumpMode {
        let nums: Vec<u32> =
            version.split(|c: char| !c.is_ascii_digit()).take(3).map(|p| p.parse().unwrap_or(0)).collect();
        match nums.as_slice() {
            [major, minor, patch] if (*major, *minor, *patch) >= (1, 6, 19) => DumpMode::Mgdump,
            _ => DumpMode::Metadump,
        }
    }

    pub fn command(self) -> &'static [u8] {
        match self {
            DumpMode::Metadump => b"lru_crawler metadump hash\r\n",
            DumpMode::Mgdump => b"lru_crawler mgdump hash\r\n",
        }
    }
}

/// One line of a dump. Ranges are relative to the line's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpLine {
    /// A key as printed: percent-encoded (metadump), or plain / base64
    /// (mgdump), with the item's size in memory when the dump says it.
    Key { key: Range<usize>, encoding: KeyEncoding, size: Option<u32> },
    /// The dump finished: every live item was listed.
    End,
    /// Another crawl is running on this server; try again later.
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    Percent,
    Plain,
    Base64,
}

/// A dump line with its length (newline included), or `None` for "need more".
pub fn parse_dump_line(buf: &[u8], mode: DumpMode) -> Result<Option<(DumpLine, usize)>, ProtoError> {
    let Some((line, len)) = first_line(buf)? else {
        return Ok(None);
    };
    let err = || ProtoError::Malformed(lossy(line));
    if line.starts_with(b"BUSY") {
        return Ok(Some((DumpLine::Busy, len)));
    }
    if line.starts_with(b"ERROR") || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR") {
        return Err(ProtoError::Refused(String::from_utf8_lossy(line).into_owned()));
    }
    let parsed = match mode {
        DumpMode::Metadump => {
            if line == b"END" {
                DumpLine::End
            } else {
                let rest = line.strip_prefix(b"key=").ok_or_else(err)?;
                let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
                if end == 0 {
                    return Err(err());
                }
                // `size=` is the last field; it bounds batches by bytes.
                let size = memchr::memrchr(b' ', line)
                    .and_then(|i| line.get(i + 1..)?.strip_prefix(b"size="))
                    .and_then(parse_decimal::<u32>);
                DumpLine::Key { key: 4..4 + end, encoding: KeyEncoding::Percent, size }
            }
        }
        DumpMode::Mgdump => {
            if line == b"EN" {
                DumpLine::End
            } else {
                let rest = line.strip_prefix(b"mg ").ok_or_else(err)?;
                let mut tokens = rest.split(|b| *b == b' ');
                let key = tokens.next().filter(|k| !k.is_empty()).ok_or_else(err)?;
                let base64 = tokens.any(|t| t == b"b");
                let encoding = if base64 { KeyEncoding::Base64 } else { KeyEncoding::Plain };
                DumpLine::Key { key: 3..3 + key.len(), encoding, size: None }
            }
        }
    };
    Ok(Some((parsed, len)))
}

/// Appends the raw key bytes of a dumped key to `out`.
pub fn decode_dump_key(text: &[u8], encoding: KeyEncoding, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    match encoding {
        KeyEncoding::Plain => out.extend_from_slice(text),
        KeyEncoding::Percent => percent_decode(text, out),
        KeyEncoding::Base64 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode_vec(text, out)
                .map_err(|e| ProtoError::Malformed(format!("bad base64 key in dump: {e}")))?;
        }
    }
    Ok(())
}

/// `%XX` decoding. Every Clearwater key has escapes (`\\`, `:`, `@`), so
/// this is on the hot path: copy runs between `%`s, decode with a table.
/// A `%` not followed by two hex digits is kept as is.
fn percent_decode(text: &[u8], out: &mut Vec<u8>) {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut rest = text;
    while let Some((before, escape)) = memchr::memchr(b'%', rest).map(|i| rest.split_at(i)) {
        out.extend_from_slice(before);
        let decoded = match escape {
            [_, h, l, after @ ..] => hex(*h).zip(hex(*l)).map(|(h, l)| (h << 4 | l, after)),
            _ => None,
        };
        match decoded {
            Some((byte, after)) => {
                out.push(byte);
                rest = after;
            }
            None => {
                out.push(b'%');
                rest = escape.get(1..).unwrap_or_default();
            }
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &[u8], mode: DumpMode) -> Vec<(DumpLine, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((line, len)) = parse_dump_line(&buf[at..], mode).unwrap() {
            let mut key = Vec::new();
            if let DumpLine::Key { key: r, encoding, .. } = &line {
                decode_dump_key(&buf[at..][r.clone()], *encoding, &mut key).unwrap();
            }
            out.push((line, key));
            at += len;
        }
        out
    }

    #[test]
    fn metadump_as_memcached_1_6_18_prints_it() {
        let buf = b"key=cl%C3%A9-%C3%BC exp=-1 la=1795310039 cas=6 fetch=yes cls=1 size=67\n\
key=test%20key exp=-1 la=1795310029 cas=4 fetch=yes cls=1 size=73\nEND\r\n";
        let got = lines(buf, DumpMode::Metadump);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1, "clé-ü".as_bytes());
        assert_eq!(got[1].1, b"test key");
        assert_eq!(got[2].0, DumpLine::End);
        assert!(matches!(got[0].0, DumpLine::Key { size: Some(67), .. }));
    }

    #[test]
    fn mgdump_plain_and_base64_keys() {
        let got = lines(b"mg foo\r\nmg dGVzdCBrZXk= b\r\nEN\r\n", DumpMode::Mgdump);
        assert_eq!(got[0].1, b"foo");
        assert_eq!(got[1].1, b"test key");
        assert_eq!(got[2].0, DumpLine::End);
    }

    #[test]
    fn busy_and_refusals() {
        let busy = parse_dump_line(b"BUSY currently processing crawler request\r\n", DumpMode::Metadump);
        assert_eq!(busy.unwrap().unwrap().0, DumpLine::Busy);
        let denied = parse_dump_line(b"ERROR metadump not allowed\r\n", DumpMode::Metadump);
        assert!(matches!(denied, Err(ProtoError::Refused(m)) if m.contains("not allowed")));
        assert!(parse_dump_line(b"garbage\n", DumpMode::Metadump).is_err());
        assert!(parse_dump_line(b"key= exp=1\n", DumpMode::Metadump).is_err());
        assert_eq!(parse_dump_line(b"key=abc exp", DumpMode::Metadump).unwrap(), None);
    }

    #[test]
    fn percent_decoding_matches_the_reference_crate() {
        for text in
            [&b"reg%5C%5Csip%3Auser1%40example.com"[..], b"plain", b"%", b"%4", b"%zz%41", b"a%2", b"%25%25", b""]
        {
            let mut ours = Vec::new();
            percent_decode(text, &mut ours);
            let reference: Vec<u8> = percent_encoding::percent_decode(text).collect();
            assert_eq!(ours, reference, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn version_picks_the_dump_command() {
        assert_eq!(DumpMode::for_version("1.6.18"), DumpMode::Metadump);
        assert_eq!(DumpMode::for_version("1.6.19"), DumpMode::Mgdump);
        assert_eq!(DumpMode::for_version("1.6.40-rc1"), DumpMode::Mgdump);
        assert_eq!(DumpMode::for_version("1.5.22"), DumpMode::Metadump);
        assert_eq!(DumpMode::for_version("junk"), DumpMode::Metadump);
    }
}
