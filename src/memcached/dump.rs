//! Key enumeration output: `lru_crawler metadump` and `lru_crawler mgdump`.
//!
//! Pure parsing of one line at a time, as each version prints it:
//!
//! | version | `metadump` | `mgdump` |
//! |---|---|---|
//! | 1.6.18 | `key=<uri-encoded> exp=… la=… cas=… fetch=… cls=… size=…\n`, then `END\r\n` | none |
//! | 1.6.19–1.6.23 | the same | `mg <key>\r\n` or `mg <base64> b\r\n`, then `EN\r\n` |
//! | 1.6.24–1.6.38 | ` flags=…` after `size=` | the same |
//! | 1.6.39+ | the fields end with a space (`… flags=… \n`), `ext_page=`/`ext_offset=` may follow | the same |
//! | 1.6.43+ | `OK\r\n` first | `OK\r\n` first |
//!
//! So fields are found by name, never by position, and an `OK` is accepted
//! only as the first line (protocol.txt of every 1.6 release documents
//! "OK to indicate successful launch"; 1.6.43 is the first to send it).
//! Instead of listing, either command may answer `BUSY …` (another crawl
//! runs), or end at once with `ERROR locked try again later` (memcached
//! could not lock its hash table, as while growing it): both are
//! [`DumpLine::Busy`], a reason to try again.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::proto::{first_line, lossy, parse_decimal, ProtoError, MAX_LINE};
use std::ops::Range;

/// Which enumeration command a server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpMode {
    /// `lru_crawler metadump` (every 1.6 release; sizes, and flags from 1.6.24).
    Metadump,
    /// `lru_crawler mgdump` (1.6.19+; shorter lines, raw keys).
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
    /// (mgdump), with the item's size in memory and its client flags when
    /// the dump says them (metadump; flags from 1.6.24).
    Key { key: Range<usize>, encoding: KeyEncoding, size: Option<u32>, flags: Option<u32> },
    /// `OK`: the crawler started (1.6.43+). Valid only as the first line.
    Started,
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
///
/// Every line of every source's dump comes through here (about 4.7 for
/// each key a 3→4 lands): where the CPU has AVX-512 BW, a key line is read
/// in one pass ([`key_line_wide`]); every other line, and every line on
/// other CPUs, by [`parse_dump_line_general`], which a property test holds
/// the one pass to.
pub fn parse_dump_line(buf: &[u8], mode: DumpMode) -> Result<Option<(DumpLine, usize)>, ProtoError> {
    #[cfg(target_arch = "x86_64")]
    if line_wide::available() {
        // SAFETY: the CPU has every feature `marks` enables, checked just
        // above.
        if let Some(read) = key_line_wide(buf, mode, |from| unsafe { line_wide::marks(buf, from, MAX_LINE) }) {
            return Ok(Some(read));
        }
    }
    parse_dump_line_general(buf, mode)
}

/// A key line read from its [`Marks`] (`marks(from)`: the line's `\n`
/// and its spaces from `from` on), or `None` for anything else: a line
/// not all buffered, an end, an error, a key line of an unusual shape.
/// For the lines it reads, the same result as
/// [`parse_dump_line_general`].
#[inline(always)]
fn key_line_wide(buf: &[u8], mode: DumpMode, marks: impl Fn(usize) -> Option<Marks>) -> Option<(DumpLine, usize)> {
    let (prefix, from) = match mode {
        DumpMode::Metadump => (&b"key="[..], 4),
        DumpMode::Mgdump => (&b"mg "[..], 3),
    };
    if !buf.starts_with(prefix) {
        return None;
    }
    let m = marks(from)?;
    let line = buf.get(..m.newline)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // A space is never the `\r`, nor past it: the key ends at the first
    // space, or with the line.
    let key_end = m.first_space.unwrap_or(line.len());
    if key_end <= from {
        return None;
    }
    let rest = line.get(key_end..)?;
    let encoding = match mode {
        DumpMode::Metadump => KeyEncoding::Percent,
        DumpMode::Mgdump if rest.split(|b| *b == b' ').any(|t| t == b"b") => KeyEncoding::Base64,
        DumpMode::Mgdump => KeyEncoding::Plain,
    };
    let (size, flags) = match mode {
        DumpMode::Mgdump => (None, None),
        // `size=` as the last field (1.6.18 prints it last): what the
        // search by name finds, with no `flags=` after it.
        DumpMode::Metadump => {
            match m.last_space.and_then(|at| line.get(at + 1..)).and_then(|f| f.strip_prefix(b"size=")) {
                Some(number) => (parse_decimal::<u32>(number), None),
                None => metadump_fields(rest),
            }
        }
    };
    Some((DumpLine::Key { key: from..key_end, encoding, size, flags }, m.newline + 1))
}

/// Where a line's bytes are, from [`line_wide::marks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marks {
    /// The first `\n`.
    newline: usize,
    /// The first space before it, from where the search began.
    first_space: Option<usize>,
    /// The last space before it.
    last_space: Option<usize>,
}

/// [`parse_dump_line`] on any CPU, for any line.
pub fn parse_dump_line_general(buf: &[u8], mode: DumpMode) -> Result<Option<(DumpLine, usize)>, ProtoError> {
    let Some((line, len)) = first_line(buf)? else {
        return Ok(None);
    };
    // The line nearly every call sees first: an mgdump key, `mg <key>`
    // (plain) or `mg <key> b` (base64).
    if mode == DumpMode::Mgdump {
        if let Some(rest) = line.strip_prefix(b"mg ") {
            let (key, flags) = match memchr::memchr(b' ', rest) {
                Some(sp) => rest.split_at(sp),
                None => (rest, &[][..]),
            };
            if !key.is_empty() {
                let base64 = flags.split(|b| *b == b' ').any(|t| t == b"b");
                let encoding = if base64 { KeyEncoding::Base64 } else { KeyEncoding::Plain };
                return Ok(Some((DumpLine::Key { key: 3..3 + key.len(), encoding, size: None, flags: None }, len)));
            }
        }
    }
    let err = || ProtoError::Malformed(lossy(line));
    // `ERROR locked try again later` is memcached's answer when the crawler
    // lock is held at that instant (by its own background crawls too):
    // like `BUSY`, a reason to try again, not a refusal.
    if line.starts_with(b"BUSY") || line == b"ERROR locked try again later" {
        return Ok(Some((DumpLine::Busy, len)));
    }
    if line == b"OK" {
        return Ok(Some((DumpLine::Started, len)));
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
                let (size, flags) = metadump_fields(rest.get(end..).unwrap_or_default());
                DumpLine::Key { key: 4..4 + end, encoding: KeyEncoding::Percent, size, flags }
            }
        }
        DumpMode::Mgdump => {
            // Keys were taken above; an `mg ` line left has no key.
            if line == b"EN" {
                DumpLine::End
            } else {
                return Err(err());
            }
        }
    };
    Ok(Some((parsed, len)))
}

/// `size=` and `flags=` from the fields after a metadump key, found by name
/// (1.6.24 added `flags=` after `size=`, 1.6.39 a trailing space, and
/// extstore fields may follow; `flags=` is looked for after `size=`, where
/// every version that prints it puts it). A
/// field that is absent or not a number is `None`: the copy then fetches
/// what it needs rather than trusting a guess.
fn metadump_fields(fields: &[u8]) -> (Option<u32>, Option<u32>) {
    // Found by name (with the space before it, so a field ending in
    // `size=` is not one) in a plain loop over the line's last bytes, not
    // by splitting the line into fields nor by a library search, whose
    // setup costs more than these few comparisons: every source's whole
    // dump goes through here (issue 32). `size=` is looked for from the
    // end, where every version prints it (only `flags=` and the extstore
    // fields follow it), and `flags=` only after it: a search for a
    // `flags=` that 1.6.18 never prints read every line to its end.
    fn field<'t>(text: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
        let at = text.windows(name.len() + 1).rposition(|w| w.first() == Some(&b' ') && w.get(1..) == Some(name))?;
        text.get(at + 1 + name.len()..)
    }
    let number = |rest: &[u8]| parse_decimal::<u32>(rest.get(..memchr::memchr(b' ', rest).unwrap_or(rest.len()))?);
    let (size, after_size) = match field(fields, b"size=") {
        Some(rest) => (number(rest), rest),
        None => (None, fields),
    };
    (size, field(after_size, b"flags=").and_then(number))
}

/// What an operator can do about a server refusing a dump, from its answer:
/// `-X` turns the dump commands off (1.6.18 says "metadump not allowed",
/// 1.6.38+ "key dump not allowed"), and a bare `ERROR` is a server that
/// does not know the command at all (before 1.4.33, or a fork without it).
pub fn refusal_hint(answer: &str, mode: DumpMode) -> Option<&'static str> {
    if answer.contains("not allowed") {
        Some("the server was started with -X, which disables key dumps; restart it without -X")
    } else if answer.trim() != "ERROR" {
        None
    } else if mode == DumpMode::Mgdump {
        Some("the server does not know lru_crawler mgdump (memcached 1.6.19+); use --dump-command metadump")
    } else {
        Some(
            "the server cannot list its keys: lru_crawler metadump needs upstream memcached 1.4.33 or later, and \
             Clearwater's own memcached (clearwater-memcached, a 1.6.00 fork) has none; move the node to Debian's \
             memcached (astaire migrate-memcached-config converts its configuration)",
        )
    }
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

/// `%XX` decoding. Every Clearwater key has escapes (`\\`, `:`, `@`), a
/// few bytes apart, and every key of every source's metadump is decoded,
/// wanted or not (8.6% of a 3→4's CPU on 1.6.18, issue 32): where the CPU
/// has AVX-512 with byte compression (VBMI2), 64 bytes at a time, with no
/// branch per byte; otherwise one pass in a plain loop. A `%` not followed
/// by two hex digits is kept as is.
fn percent_decode(text: &[u8], out: &mut Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    if percent_wide::available() {
        // SAFETY: the CPU has every feature the function enables, checked
        // just above.
        return unsafe { percent_wide::decode(text, out) };
    }
    percent_decode_plain(text, out);
}

/// [`percent_decode`] one byte at a time, into space made once (faster on
/// Clearwater's keys than a search for each `%` and a copy of each run
/// between them), the hex digits looked up in a table.
#[expect(
    clippy::indexing_slicing,
    reason = "r < text.len() is checked by the loop; w <= r, and dst is text.len() long"
)]
fn percent_decode_plain(text: &[u8], out: &mut Vec<u8>) {
    let base = out.len();
    out.resize(base + text.len(), 0);
    let dst = &mut out[base..];
    let (mut r, mut w) = (0, 0);
    while r < text.len() {
        let b = text[r];
        let escaped = b == b'%' && r + 2 < text.len() && {
            let (h, l) = (HEX[usize::from(text[r + 1])], HEX[usize::from(text[r + 2])]);
            h | l < 16 && {
                dst[w] = h << 4 | l;
                true
            }
        };
        if escaped {
            r += 3;
        } else {
            dst[w] = b;
            r += 1;
        }
        w += 1;
    }
    out.truncate(base + w);
}

/// The value of each hex digit; 0xff for every other byte.
static HEX: [u8; 256] = hex_table();

#[expect(clippy::indexing_slicing, reason = "every index is a digit's or letter's byte, below 256")]
const fn hex_table() -> [u8; 256] {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
}

/// Percent-decoding 64 bytes at a time with AVX-512. In each block: the
/// `%`s, the hex values of the two bytes after each position (a table
/// lookup of 64 bytes at once), an escape wherever a `%` is followed by two
/// hex digits (escapes never overlap: a hex digit is never a `%`, so this
/// is the plain loop's reading), its byte put in place of the `%`, its two
/// digits dropped (those of an escape at the block's last two positions
/// are dropped in the next block), and what is kept packed together
/// (`vpcompressb`) and stored. Why not a crate: `percent-encoding` decodes
/// byte by byte; this is checked against it on every length to 200 bytes.
#[cfg(target_arch = "x86_64")]
mod percent_wide {
    use crate::avx512::below;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        crate::avx512::bw_available()
            && std::arch::is_x86_feature_detected!("avx512vbmi")
            && std::arch::is_x86_feature_detected!("avx512vbmi2")
            && std::arch::is_x86_feature_detected!("popcnt")
    }

    /// Appends `text` decoded to `out`.
    ///
    /// # Safety
    /// The CPU must have the features [`available`] checks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,popcnt")]
    pub unsafe fn decode(text: &[u8], out: &mut Vec<u8>) {
        let base = out.len();
        out.reserve(text.len());
        // The hex table's first 128 entries, as two registers for
        // `vpermi2b` (which indexes by a byte's low 7 bits; bytes from
        // 0x80 are no digit and are masked out below).
        // SAFETY: HEX has 256 entries: 128 from each offset are in it.
        let (table_lo, table_hi) = unsafe {
            (_mm512_loadu_si512(super::HEX.as_ptr().cast()), _mm512_loadu_si512(super::HEX.as_ptr().add(64).cast()))
        };
        let percent = _mm512_set1_epi8(b'%' as i8);
        let sixteen = _mm512_set1_epi8(16);
        let high_nibble = _mm512_set1_epi8(0xf0_u8 as i8);
        // The hex value of each lane of `v` (16 or more: no digit), and
        // which lanes are digits.
        let digits = |v: __m512i| {
            let value = _mm512_permutex2var_epi8(table_lo, v, table_hi);
            let is_digit = _mm512_cmplt_epu8_mask(value, sixteen) & !_mm512_movepi8_mask(v);
            (value, is_digit)
        };
        let (src, len) = (text.as_ptr(), text.len());
        let mut written = 0;
        // Digits of an escape in the previous block's last two lanes, to
        // drop from this block's first two.
        let mut carried: u64 = 0;
        let mut at = 0;
        while at < len {
            // Masked loads read nothing past the text (masked-off lanes
            // never fault, and are zero: no `%`, no digit).
            // SAFETY: every lane read is below `len`, by the masks.
            let (v, next1, next2) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(below(len - at), src.add(at).cast()),
                    _mm512_maskz_loadu_epi8(below(len - at - 1), src.add(at + 1).cast()),
                    _mm512_maskz_loadu_epi8(below((len - at).saturating_sub(2)), src.wrapping_add(at + 2).cast()),
                )
            };
            let (high, high_ok) = digits(next1);
            let (low, low_ok) = digits(next2);
            let escapes = _mm512_cmpeq_epi8_mask(v, percent) & high_ok & low_ok;
            let byte = _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi16(high, 4), high_nibble), low);
            let decoded = _mm512_mask_blend_epi8(escapes, v, byte);
            let keep = below(len - at) & !(escapes << 1 | escapes << 2 | carried);
            carried = (escapes >> 62 & 1) | ((escapes >> 63) * 0b11);
            let packed = _mm512_maskz_compress_epi8(keep, decoded);
            let n = keep.count_ones() as usize;
            // SAFETY: `written + n <= at + 64` and `<= len`: each block
            // keeps at most its lanes below `len`, and `reserve` made room
            // for `len` bytes past `base`.
            unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().add(base + written).cast(), below(n), packed) };
            written += n;
            at += 64;
        }
        // SAFETY: the `written` bytes past `base` were stored above, within
        // the capacity reserved.
        unsafe { out.set_len(base + written) };
    }
}

/// A line's [`Marks`] 64 bytes at a time with AVX-512 BW: in each block
/// the `\n`s and the spaces as bit masks, so that the line's end, its
/// key's end and its last field are found together, where two `memchr`s
/// and a search for `size=` read the line three times. Why not a crate:
/// `memchr` finds one byte per call, and its setup is most of the cost on
/// a line of 40 to 110 bytes.
#[cfg(target_arch = "x86_64")]
mod line_wide {
    use super::Marks;
    use crate::avx512::below;
    use std::arch::x86_64::*;

    pub use crate::avx512::bw_available as available;

    /// The marks of the line at the start of `buf`, looking at its first
    /// `limit` bytes at most, the first space searched from `from`; `None`
    /// when they hold no `\n`.
    ///
    /// # Safety
    /// The CPU must have the features [`available`] checks.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn marks(buf: &[u8], from: usize, limit: usize) -> Option<Marks> {
        let len = buf.len().min(limit);
        let (newline, space) = (_mm512_set1_epi8(b'\n' as i8), _mm512_set1_epi8(b' ' as i8));
        let (mut first_space, mut last_space) = (None, None);
        let mut at = 0;
        while at < len {
            let lanes = below(len - at);
            // SAFETY: the mask reads no lane at or past `len` (masked-off
            // lanes never fault).
            let v = unsafe { _mm512_maskz_loadu_epi8(lanes, buf.as_ptr().add(at).cast()) };
            let newlines = _mm512_cmpeq_epi8_mask(v, newline) & lanes;
            // The spaces before the block's first `\n` (all when none).
            let spaces = _mm512_cmpeq_epi8_mask(v, space) & lanes & (newlines.wrapping_sub(1) & !newlines);
            let searched = spaces & !below(from.saturating_sub(at));
            if first_space.is_none() && searched != 0 {
                first_space = Some(at + searched.trailing_zeros() as usize);
            }
            if spaces != 0 {
                last_space = Some(at + 63 - spaces.leading_zeros() as usize);
            }
            if newlines != 0 {
                return Some(Marks { newline: at + newlines.trailing_zeros() as usize, first_space, last_space });
            }
            at += 64;
        }
        None
    }
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

    /// Real transcripts of `lru_crawler metadump hash` / `mgdump hash` for
    /// the same three items: a text key with an escape and a UTF-8 byte,
    /// a binary key (set with `b`), and one with flags 2^32-1 and a TTL.
    const METADUMP_1_6_38: &[u8] = b"key=binary%20key exp=-1 la=1796021175 cas=4 fetch=no cls=1 size=72 flags=0\n\
key=k%2520%C3%A9 exp=-1 la=1796021174 cas=2 fetch=no cls=1 size=72 flags=5\n\
key=plain exp=1796021274 la=1796021174 cas=3 fetch=no cls=1 size=69 flags=4294967295\nEND\r\n";
    const METADUMP_1_6_45: &[u8] =
        b"OK\r\nkey=binary%20key exp=-1 la=1796021180 cas=4 fetch=no cls=1 size=72 flags=0 \n\
key=k%2520%C3%A9 exp=-1 la=1796021179 cas=2 fetch=no cls=1 size=72 flags=5 \n\
key=plain exp=1796021279 la=1796021179 cas=3 fetch=no cls=1 size=69 flags=4294967295 \nEND\r\n";
    const MGDUMP_1_6_38: &[u8] = b"mg YmluYXJ5IGtleQ== b\r\nmg k%20\xc3\xa9\r\nmg plain\r\nEN\r\n";
    const MGDUMP_1_6_45: &[u8] = b"OK\r\nmg YmluYXJ5IGtleQ== b\r\nmg k%20\xc3\xa9\r\nmg plain\r\nEN\r\n";

    fn keys_and_fields(buf: &[u8], mode: DumpMode) -> Vec<(Vec<u8>, Option<u32>, Option<u32>)> {
        lines(buf, mode)
            .into_iter()
            .filter_map(|(line, key)| match line {
                DumpLine::Key { size, flags, .. } => Some((key, size, flags)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn metadump_of_every_version_gives_the_same_keys_sizes_and_flags() {
        let want = |flags: [Option<u32>; 3]| {
            vec![
                (b"binary key".to_vec(), Some(72), flags[0]),
                ("k%20é".as_bytes().to_vec(), Some(72), flags[1]),
                (b"plain".to_vec(), Some(69), flags[2]),
            ]
        };
        let old = b"key=binary%20key exp=-1 la=1796021170 cas=3 fetch=no cls=1 size=72\n\
key=k%2520%C3%A9 exp=-1 la=1796021169 cas=1 fetch=no cls=1 size=72\n\
key=plain exp=1796021269 la=1796021169 cas=2 fetch=no cls=1 size=69\nEND\r\n";
        assert_eq!(keys_and_fields(old, DumpMode::Metadump), want([None; 3]), "1.6.18: no flags= yet");
        let with_flags = want([Some(0), Some(5), Some(u32::MAX)]);
        assert_eq!(keys_and_fields(METADUMP_1_6_38, DumpMode::Metadump), with_flags, "1.6.38");
        assert_eq!(
            keys_and_fields(METADUMP_1_6_45, DumpMode::Metadump),
            with_flags,
            "1.6.45: OK first, trailing space"
        );
        for buf in [&old[..], METADUMP_1_6_38, METADUMP_1_6_45] {
            assert_eq!(lines(buf, DumpMode::Metadump).last().unwrap().0, DumpLine::End);
        }
        assert_eq!(lines(METADUMP_1_6_45, DumpMode::Metadump)[0].0, DumpLine::Started);
    }

    #[test]
    fn mgdump_of_every_version_gives_the_same_keys() {
        for buf in [MGDUMP_1_6_38, MGDUMP_1_6_45] {
            let keys: Vec<Vec<u8>> = keys_and_fields(buf, DumpMode::Mgdump).into_iter().map(|k| k.0).collect();
            assert_eq!(keys, [b"binary key".to_vec(), "k%20é".as_bytes().to_vec(), b"plain".to_vec()]);
            assert_eq!(lines(buf, DumpMode::Mgdump).last().unwrap().0, DumpLine::End);
        }
        assert_eq!(lines(MGDUMP_1_6_45, DumpMode::Mgdump)[0].0, DumpLine::Started);
    }

    #[test]
    fn fields_are_found_by_name_and_bad_numbers_are_unknown() {
        let one = |line: &[u8]| keys_and_fields(line, DumpMode::Metadump).pop().unwrap();
        assert_eq!(
            one(b"key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=70 flags=9 ext_page=3 ext_offset=8 \n").1,
            Some(70)
        );
        assert_eq!(one(b"key=a exp=-1 la=1 cas=1 fetch=no cls=1 size=70 flags=9\n").2, Some(9));
        assert_eq!(one(b"key=a exp=-1 cas=1 size=70 la=1 flags=9 \n"), (b"a".to_vec(), Some(70), Some(9)));
        assert_eq!(one(b"key=a flags=9\n").2, Some(9), "no size=: flags= looked for everywhere");
        assert_eq!(one(b"key=a size=x flags=-1\n"), (b"a".to_vec(), None, None));
        assert_eq!(one(b"key=a flags=4294967296\n").2, None, "over 32 bits");
        assert_eq!(one(b"key=a\n"), (b"a".to_vec(), None, None));
    }

    #[test]
    fn ok_and_error_lines_are_not_keys() {
        assert_eq!(parse_dump_line(b"OK\r\n", DumpMode::Mgdump).unwrap(), Some((DumpLine::Started, 4)));
        assert!(parse_dump_line(b"OK then\r\n", DumpMode::Mgdump).is_err());
        assert!(parse_dump_line(b"OKkey=a\n", DumpMode::Metadump).is_err());
        let locked = parse_dump_line(b"ERROR locked try again later\r\n", DumpMode::Mgdump);
        assert_eq!(locked.unwrap(), Some((DumpLine::Busy, 30)), "try again, not a refusal");
        assert!(matches!(parse_dump_line(b"ERROR locked\r\n", DumpMode::Mgdump), Err(ProtoError::Refused(_))));
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
    fn refusals_name_the_fix() {
        let meta = DumpMode::Metadump;
        assert!(refusal_hint("ERROR metadump not allowed", meta).unwrap().contains("-X"));
        assert!(refusal_hint("ERROR key dump not allowed", DumpMode::Mgdump).unwrap().contains("-X"));
        assert!(refusal_hint("ERROR", meta).unwrap().contains("1.4.33"));
        assert!(refusal_hint("ERROR", DumpMode::Mgdump).unwrap().contains("--dump-command metadump"));
        assert_eq!(refusal_hint("CLIENT_ERROR bad command line format", meta), None);
    }

    #[test]
    fn percent_decoding_matches_the_reference_crate() {
        for text in
            [&b"reg%5C%5Csip%3Auser1%40example.com"[..], b"plain", b"%", b"%4", b"%zz%41", b"a%2", b"%25%25", b""]
        {
            let reference: Vec<u8> = percent_encoding::percent_decode(text).collect();
            for decode in decoders() {
                let mut ours = b"before".to_vec();
                decode(text, &mut ours);
                assert_eq!(ours[..6], *b"before", "what was in the buffer stays");
                assert_eq!(ours[6..], reference, "{:?}", String::from_utf8_lossy(text));
            }
        }
    }

    /// A percent decoder: appends the decoded text to the buffer.
    type Decoder = fn(&[u8], &mut Vec<u8>);

    /// Both percent decoders this CPU can run: the plain loop, and the
    /// AVX-512 one where the CPU has it.
    fn decoders() -> Vec<Decoder> {
        let mut all: Vec<Decoder> = vec![percent_decode_plain];
        #[cfg(target_arch = "x86_64")]
        if percent_wide::available() {
            // SAFETY: the CPU has what it needs, checked just above.
            all.push(|text, out| unsafe { percent_wide::decode(text, out) });
        } else {
            eprintln!("this CPU has no AVX-512 VBMI2: only the plain percent decoder is tested");
        }
        all
    }

    /// Escapes at every position of the 64-byte blocks, and across their
    /// edges (the digits of one at a block's last two lanes are in the
    /// next block), in keys of every length to 200 bytes.
    #[test]
    fn escapes_at_every_position_and_across_blocks_decode_as_the_reference() {
        for len in 0..200 {
            for at in 0..len {
                for escape in [&b"%41"[..], b"%4", b"%%41", b"%zz", b"%a\xff"] {
                    let mut text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    text.splice(at..at, escape.iter().copied());
                    let reference: Vec<u8> = percent_encoding::percent_decode(&text).collect();
                    for decode in decoders() {
                        let mut ours = Vec::new();
                        decode(&text, &mut ours);
                        assert_eq!(ours, reference, "{:?}", String::from_utf8_lossy(&text));
                    }
                }
            }
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

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// [`line_wide::marks`] byte by byte: the oracle its tests hold
        /// it to.
        fn marks_plain(buf: &[u8], from: usize, limit: usize) -> Option<Marks> {
            let newline = buf.iter().take(limit).position(|b| *b == b'\n')?;
            let spaces = || buf[..newline].iter().enumerate().filter(|(_, b)| **b == b' ').map(|(i, _)| i);
            Some(Marks { newline, first_space: spaces().find(|i| *i >= from), last_space: spaces().next_back() })
        }

        /// Both readings of a line, by their results.
        fn both_readings(line: &[u8], mode: DumpMode) -> (String, String) {
            let general = format!("{:?}", parse_dump_line_general(line, mode));
            let wide = key_line_wide(line, mode, |from| marks_plain(line, from, MAX_LINE))
                .map_or_else(|| general.clone(), |read| format!("{:?}", Ok::<_, ProtoError>(Some(read))));
            (wide, general)
        }

        #[test]
        fn the_wide_marks_are_the_bytes_marks_at_every_position() {
            #[cfg(target_arch = "x86_64")]
            {
                if !line_wide::available() {
                    eprintln!("no AVX-512 BW on this CPU: the one-pass line reading is not tested here");
                    return;
                }
                for len in 0..200usize {
                    for newline in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                        for space in [0, 1, 3, 4, 63, 64, 65, 127, 128, len / 3] {
                            let mut line = vec![b'k'; len];
                            if let Some(b) = line.get_mut(space) {
                                *b = b' ';
                            }
                            if let Some(b) = newline.and_then(|n| line.get_mut(n)) {
                                *b = b'\n';
                            }
                            for from in [0, 3, 4, 70] {
                                for limit in [MAX_LINE, len / 2, 64] {
                                    // SAFETY: the CPU has the features, checked above.
                                    let wide = unsafe { line_wide::marks(&line, from, limit) };
                                    assert_eq!(
                                        wide,
                                        marks_plain(&line, from, limit),
                                        "len {len} from {from} limit {limit}: {line:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn the_one_pass_reading_agrees_with_the_general_one_on_real_lines() {
            for (buf, mode) in [
                (super::METADUMP_1_6_38, DumpMode::Metadump),
                (super::METADUMP_1_6_45, DumpMode::Metadump),
                (super::MGDUMP_1_6_38, DumpMode::Mgdump),
                (super::MGDUMP_1_6_45, DumpMode::Mgdump),
                (&b"key=reg%5C%5Csip%3Auser696037%40example.com exp=1796621154 la=1796617554 cas=467493 fetch=no cls=5 size=194\n"[..], DumpMode::Metadump),
            ] {
                let mut at = 0;
                while at < buf.len() {
                    let (wide, general) = both_readings(&buf[at..], mode);
                    assert_eq!(wide, general);
                    at += buf[at..].iter().position(|b| *b == b'\n').unwrap() + 1;
                }
            }
            // And it does read them: a 1.6.18 key line, an mgdump one.
            let line = b"key=a%20b exp=-1 la=1 cas=2 fetch=no cls=1 size=67\n";
            let read = key_line_wide(line, DumpMode::Metadump, |from| marks_plain(line, from, MAX_LINE));
            assert_eq!(
                read,
                Some((
                    DumpLine::Key { key: 4..9, encoding: KeyEncoding::Percent, size: Some(67), flags: None },
                    line.len()
                ))
            );
            let line = b"mg YmluYXJ5IGtleQ== b\r\n";
            let read = key_line_wide(line, DumpMode::Mgdump, |from| marks_plain(line, from, MAX_LINE));
            assert_eq!(
                read,
                Some((
                    DumpLine::Key { key: 3..19, encoding: KeyEncoding::Base64, size: None, flags: None },
                    line.len()
                ))
            );
        }

        proptest! {
            /// Lines shaped like dump lines (and not), cut anywhere, long
            /// enough to span several blocks: the one-pass reading and the
            /// general one give the same result, through the marks of both
            /// the byte loop and (where the CPU has it) AVX-512.
            #[test]
            fn the_one_pass_reading_agrees_with_the_general_one(
                start in prop::sample::select(vec![&b"key="[..], b"key= ", b"mg ", b"mg  ", b"key=k", b"mg k", b"END", b"EN", b"OK", b"BUSY", b""]),
                parts in prop::collection::vec(prop::sample::select(vec![
                    &b" "[..], b"  ", b"size=", b" size=", b"size=194", b" size=4294967296", b" flags=", b"flags=7", b"b", b" b",
                    b"\r", b"\n", b"\r\n", b"12", b"-3", b"%41", b"%", b"x", b"\xff", b"=", b"0123456789abcdefghij",
                ]), 0..40),
                cut in any::<prop::sample::Index>(),
                mg in any::<bool>(),
            ) {
                let full: Vec<u8> = start.iter().chain(parts.iter().flat_map(|p| p.iter())).copied().collect();
                let line = &full[..cut.index(full.len() + 1)];
                let mode = if mg { DumpMode::Mgdump } else { DumpMode::Metadump };
                let (wide, general) = both_readings(line, mode);
                prop_assert_eq!(&wide, &general);
                prop_assert_eq!(format!("{:?}", parse_dump_line(line, mode)), general);
            }
        }

        proptest! {
            #[test]
            fn arbitrary_lines_never_panic(b in prop::collection::vec(any::<u8>(), 0..300), mg in any::<bool>()) {
                let _ = parse_dump_line(&b, if mg { DumpMode::Mgdump } else { DumpMode::Metadump });
            }

            /// Lines that start as a dump line does (so the field and key
            /// parsers are reached, which random bytes almost never do),
            /// then anything; a key that parses is decoded too.
            #[test]
            fn lines_that_start_like_dump_lines_never_panic(
                start in prop::sample::select(vec![&b"key="[..], b"key=%", b"mg ", b"mg a b", b"END", b"EN", b"OK", b"BUSY", b"ERROR"]),
                rest in prop::collection::vec(prop_oneof![any::<u8>(), Just(b' '), Just(b'%'), Just(b'='), Just(b'\n')], 0..120),
                mg in any::<bool>(),
            ) {
                let line: Vec<u8> = start.iter().chain(&rest).copied().collect();
                let mode = if mg { DumpMode::Mgdump } else { DumpMode::Metadump };
                if let Ok(Some((DumpLine::Key { key, encoding, .. }, _))) = parse_dump_line(&line, mode) {
                    let _ = decode_dump_key(line.get(key).unwrap_or_default(), encoding, &mut Vec::new());
                }
            }

            /// Any bytes, in every encoding: decoding never panics, and
            /// percent-decoding agrees with the reference crate.
            #[test]
            fn any_key_text_decodes_without_panic_and_percent_matches_the_reference(
                text in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'%'), Just(b'A'), Just(b'f'), Just(b'0')], 0..200),
            ) {
                for encoding in [KeyEncoding::Plain, KeyEncoding::Base64] {
                    let _ = decode_dump_key(&text, encoding, &mut Vec::new());
                }
                let mut ours = Vec::new();
                decode_dump_key(&text, KeyEncoding::Percent, &mut ours).unwrap();
                let reference: Vec<u8> = percent_encoding::percent_decode(&text).collect();
                prop_assert_eq!(ours, reference);
            }

            /// A key printed as either command prints it is read back as
            /// the same bytes, whatever the fields after it.
            #[test]
            fn printed_keys_are_read_back(
                key in prop::collection::vec(any::<u8>(), 1..120),
                size in any::<u32>(),
                flags in prop::option::of(any::<u32>()),
                trailing_space in any::<bool>(),
            ) {
                // metadump: URI-encoded, fields by name, in any version's form.
                let encoded: String = key.iter().map(|b| format!("%{b:02X}")).collect();
                let mut line = format!("key={encoded} exp=-1 la=1 cas=2 fetch=no cls=1 size={size}");
                if let Some(f) = flags {
                    line.push_str(&format!(" flags={f}"));
                }
                line.push_str(if trailing_space { " \n" } else { "\n" });
                let (parsed, len) = parse_dump_line(line.as_bytes(), DumpMode::Metadump).unwrap().unwrap();
                prop_assert_eq!(len, line.len());
                let DumpLine::Key { key: range, encoding, size: s, flags: f } = parsed else { panic!("{parsed:?}") };
                prop_assert_eq!((s, f), (Some(size), flags));
                let mut out = Vec::new();
                decode_dump_key(&line.as_bytes()[range], encoding, &mut out).unwrap();
                prop_assert_eq!(&out, &key);

                // mgdump: base64 (what memcached prints for binary keys).
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
                let line = format!("mg {b64} b\r\n");
                let (parsed, _) = parse_dump_line(line.as_bytes(), DumpMode::Mgdump).unwrap().unwrap();
                let DumpLine::Key { key: range, encoding, .. } = parsed else { panic!("{parsed:?}") };
                let mut out = Vec::new();
                decode_dump_key(&line.as_bytes()[range], encoding, &mut out).unwrap();
                prop_assert_eq!(&out, &key);
            }
        }
    }
}
