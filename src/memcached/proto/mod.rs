//! The meta text protocol as bytes: request encoders and a response parser.
//!
//! Pure code, no sockets. The parser first checks that a whole frame is
//! buffered and only then parses it, so a partial read is never an error
//! (`Ok(None)` asks for more bytes). Parsed frames carry offsets into the
//! frame rather than borrowed slices, which lets the connection hand them out
//! without tying up its buffer.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::ops::Range;

/// Longest response line accepted before the stream is declared broken.
pub const MAX_LINE: usize = 8 * 1024;
/// Largest value accepted from a server (memcached's `-I` tops out at 1 GiB,
/// but nothing this tool moves is near that; anything above is garbage).
pub const MAX_VALUE: usize = 256 * 1024 * 1024;
/// memcached's KEY_MAX_LENGTH, which also bounds the base64 form of a key.
pub const MAX_KEY: usize = 250;

/// Why bytes from a server could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("response line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("value of {0} bytes is over the {MAX_VALUE}-byte limit")]
    ValueTooLarge(usize),
    #[error("malformed response {0:?}")]
    Malformed(String),
    #[error("server answered {0:?}")]
    Refused(String),
}

/// The two-letter code of a meta response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `VA`: a value follows.
    Value,
    /// `HD`: success, no value.
    Stored,
    /// `EN`: miss.
    Miss,
    /// `NS`: not stored (add mode: the key exists).
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// `NF`: not found.
    NotFound,
    /// `MN`: end of a batch.
    Noop,
    /// `SERVER_ERROR …`: this one request failed (e.g. out of memory); the
    /// stream stays in step.
    ServerError,
    /// `CLIENT_ERROR …`: the server refused this one request's tokens (an
    /// `ms` TTL or flags out of its range). memcached has then swallowed
    /// the value it announced, so the stream stays in step; the opaques of
    /// the answers that follow are still checked, and a stream that did not
    /// stay in step fails there.
    ClientError,
}

/// Where some of a frame's bytes are, relative to its start, in 32 bits
/// (a frame is at most [`MAX_VALUE`] and two lines): every answer of a
/// copy is moved a few times between the parser and its caller, and with
/// `Range<usize>`s a [`Meta`] was 152 bytes, moved by a `memcpy` call
/// (2.8% of a copy's CPU on memcached 1.6.45, issue 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `range` as a span; `None` past 32 bits (no frame is that long).
    pub fn new(range: Range<usize>) -> Option<Span> {
        Some(Span { start: u32::try_from(range.start).ok()?, end: u32::try_from(range.end).ok()? })
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// These bytes of `frame`.
    pub fn of(self, frame: &[u8]) -> Option<&[u8]> {
        frame.get(self.range())
    }
}

/// One parsed response. Spans are relative to the start of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub status: Status,
    /// Total bytes of the frame, value included.
    pub len: usize,
    pub flags: Option<u32>,
    /// Remaining TTL from `t`: -1 means no expiry.
    pub ttl: Option<i64>,
    pub cas: Option<u64>,
    pub key: Option<Span>,
    pub base64: bool,
    pub value: Option<Span>,
    /// The message of a `SERVER_ERROR`.
    pub message: Option<Span>,
    /// The `O` token echoed back: the request's position in its batch.
    pub opaque: Option<u32>,
    /// A value over the reader's limit: its size. The frame is then the
    /// header alone (`value` is `None`), and the reader has read the value
    /// past without keeping it.
    pub oversized: Option<usize>,
}

/// At most the first `n` bytes of `b`.
pub fn head(b: &[u8], n: usize) -> &[u8] {
    b.get(..n).unwrap_or(b)
}

/// The first line of `buf` without its `\n` (nor a `\r` before it) and the
/// length with the `\n`, looking at no more than [`MAX_LINE`] bytes;
/// `None` while the line is incomplete.
pub fn first_line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtoError> {
    let window = head(buf, MAX_LINE);
    match memchr::memchr(b'\n', window).map(|nl| window.split_at(nl)) {
        Some((line, _)) => Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), line.len() + 1))),
        None if buf.len() >= MAX_LINE => Err(ProtoError::LineTooLong),
        None => Ok(None),
    }
}

/// Up to 200 bytes of `b`, for an error message.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(head(b, 200)).into_owned()
}

/// A key (or any bytes from a server) as it may appear in a log line or on
/// a terminal: printable ASCII as is, every other byte as `\xNN`, so a key
/// holding a newline or an escape sequence can neither forge a log line
/// nor drive the terminal. Backslashes stay single: Clearwater's keys are
/// full of them.
pub fn printable(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            out.push(c as char);
        } else {
            let _ = write!(out, "\\x{c:02x}");
        }
    }
    out
}

fn parse_num<T: TryFrom<i128>>(tok: &[u8], line: &[u8]) -> Result<T, ProtoError> {
    parse_decimal(tok).ok_or_else(|| ProtoError::Malformed(lossy(line)))
}

/// A decimal number with an optional `-`, if it fits `T`; nothing else
/// (no `+`, no spaces, no empty string).
pub fn parse_decimal<T: TryFrom<i128>>(tok: &[u8]) -> Option<T> {
    let (negative, digits) = match tok.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, tok),
    };
    let magnitude = if digits.is_empty() {
        None
    } else if digits.len() < 20 {
        // Below 10^19, which u64 holds: no overflow to check. Every flag,
        // TTL and length of a meta answer is this short (issue 32).
        digits.iter().try_fold(0u64, |n, d| {
            let v = d.wrapping_sub(b'0');
            (v < 10).then(|| n * 10 + u64::from(v))
        })
    } else {
        digits.iter().try_fold(0u64, |n, d| {
            if d.is_ascii_digit() {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            } else {
                None
            }
        })
    };
    magnitude.map(|m| if negative { -i128::from(m) } else { i128::from(m) }).and_then(|n| T::try_from(n).ok())
}

/// Parses one meta response from the front of `buf`.
pub fn parse_meta(buf: &[u8]) -> Result<Option<Meta>, ProtoError> {
    parse_meta_within(buf, MAX_VALUE)
}

/// [`parse_meta`], for a reader that keeps values of at most `max_value`
/// bytes: a larger one (up to [`MAX_VALUE`]) is returned from its header
/// alone, complete as soon as the header line is, marked
/// [`Meta::oversized`], for the reader to read past.
///
/// Every key a copy moves has three or four answers, so the header is read
/// in one pass over its bytes ([`header_fast`]), for the shapes memcached
/// prints; anything else (errors, odd spacing, numbers out of range) is
/// read by the general parser ([`header_general`]), which decides what it
/// means. Both give the same reading of any line the first one takes (a
/// property test compares them).
pub fn parse_meta_within(buf: &[u8], max_value: usize) -> Result<Option<Meta>, ProtoError> {
    parse_meta_by(buf, max_value, true)
}

/// [`parse_meta_within`], with the one-pass reading of the header (`fast`)
/// or the general one only (for the tests that compare them).
#[inline(always)]
fn parse_meta_by(buf: &[u8], max_value: usize, fast: bool) -> Result<Option<Meta>, ProtoError> {
    let (mut meta, value_len) = match header_fast(buf).filter(|_| fast) {
        Some(read) => read,
        None => {
            let Some((line, line_len)) = first_line(buf)? else {
                return Ok(None);
            };
            match header_general(buf, line, line_len)? {
                Header::Final(meta) => return Ok(Some(meta)),
                Header::Read(meta, value_len) => (meta, value_len),
            }
        }
    };
    if let Some(n) = value_len.filter(|n| *n > max_value) {
        meta.oversized = Some(n);
    } else if let Some(n) = value_len {
        let start = meta.len;
        let end = start + n;
        let Some(terminator) = buf.get(end..end + 2) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(ProtoError::Malformed(format!("value of {n} bytes not followed by CRLF")));
        }
        meta.value = Some(Span::new(start..end).ok_or(ProtoError::ValueTooLarge(n))?);
        meta.len = end + 2;
    }
    Ok(Some(meta))
}

/// A header line read: a whole answer (an error line), or a header and the
/// length of the value announced after it.
enum Header {
    Final(Meta),
    Read(Meta, Option<usize>),
}

/// The status a meta answer's two-letter code stands for (errors aside).
fn status_of(code: &[u8]) -> Option<Status> {
    Some(match code {
        b"VA" => Status::Value,
        b"HD" => Status::Stored,
        b"EN" => Status::Miss,
        b"NS" => Status::NotStored,
        b"EX" => Status::Exists,
        b"NF" => Status::NotFound,
        b"MN" => Status::Noop,
        _ => return None,
    })
}

/// An answer with nothing read yet but its header's length.
fn empty_meta(line_len: usize) -> Meta {
    Meta {
        status: Status::Stored,
        len: line_len,
        flags: None,
        ttl: None,
        cas: None,
        key: None,
        base64: false,
        value: None,
        message: None,
        opaque: None,
        oversized: None,
    }
}

/// The header as memcached prints it, read from the front of `buf` in one
/// pass, its end included: a two-letter code, then tokens each after one
/// space, every number plain digits (`t` may be `-1`) that fits, then
/// `\r\n`. `None` for anything else, or a header not all buffered yet,
/// which [`header_general`] reads.
fn header_fast(buf: &[u8]) -> Option<(Meta, Option<usize>)> {
    /// The digits from `at` up to the next space or `\r`, if there are 1
    /// to 19 of them (u64 holds any) and nothing else; with where they
    /// end. A longer run is not read past its 20th digit.
    fn digits(buf: &[u8], at: usize) -> Option<(u64, usize)> {
        let (mut n, mut end) = (0u64, at);
        while let Some(v) = buf.get(end).filter(|_| end - at < 20).map(|d| d.wrapping_sub(b'0')).filter(|v| *v < 10) {
            n = n.wrapping_mul(10).wrapping_add(u64::from(v));
            end += 1;
        }
        let ok = (1..=19).contains(&(end - at)) && matches!(buf.get(end), Some(b' ' | b'\r'));
        ok.then_some((n, end))
    }
    /// Longer headers go to the general parser (which bounds lines).
    const LONGEST: usize = 256;
    let status = status_of(buf.get(..2)?)?;
    let mut meta = empty_meta(0);
    meta.status = status;
    let mut at = 2;
    let mut value_len = None;
    if status == Status::Value {
        if buf.get(at) != Some(&b' ') {
            return None;
        }
        let (n, end) = digits(buf, at + 1)?;
        value_len = Some(usize::try_from(n).ok().filter(|n| *n <= MAX_VALUE)?);
        at = end;
    }
    loop {
        match buf.get(at)? {
            b'\r' if buf.get(at + 1) == Some(&b'\n') => {
                meta.len = at + 2;
                return Some((meta, value_len));
            }
            b' ' if at < LONGEST => {}
            _ => return None,
        }
        let flag = *buf.get(at + 1)?;
        at += 2;
        match flag {
            b'f' => {
                let (n, end) = digits(buf, at)?;
                meta.flags = Some(u32::try_from(n).ok()?);
                at = end;
            }
            b't' => {
                let negative = buf.get(at) == Some(&b'-');
                let (n, end) = digits(buf, at + usize::from(negative))?;
                let n = i64::try_from(n).ok()?;
                meta.ttl = Some(if negative { -n } else { n });
                at = end;
            }
            b'c' => {
                let (n, end) = digits(buf, at)?;
                meta.cas = Some(n);
                at = end;
            }
            b'O' => {
                let (n, end) = digits(buf, at)?;
                meta.opaque = Some(u32::try_from(n).ok()?);
                at = end;
            }
            // Keys, base64 marks and flags we did not ask for: the general
            // parser reads them.
            _ => return None,
        }
    }
}

/// Any header line: errors, keys, flags we did not ask for, and whatever
/// [`header_fast`] does not take.
fn header_general(buf: &[u8], line: &[u8], line_len: usize) -> Result<Header, ProtoError> {
    let mut meta = empty_meta(line_len);
    for (prefix, status) in [(&b"SERVER_ERROR"[..], Status::ServerError), (b"CLIENT_ERROR", Status::ClientError)] {
        if let Some(rest) = line.strip_prefix(prefix) {
            meta.status = status;
            let start = line.len() - rest.len() + usize::from(rest.first() == Some(&b' '));
            meta.message = Span::new(start..line.len());
            return Ok(Header::Final(meta));
        }
    }
    if line.starts_with(b"ERROR") {
        return Err(ProtoError::Refused(lossy(line)));
    }
    let mut tokens = line.split(|b| *b == b' ').filter(|t| !t.is_empty());
    let code = tokens.next().unwrap_or_default();
    meta.status = status_of(code).ok_or_else(|| ProtoError::Malformed(lossy(line)))?;
    let mut value_len = None;
    if meta.status == Status::Value {
        let tok = tokens.next().ok_or_else(|| ProtoError::Malformed(lossy(line)))?;
        let n: usize = parse_num(tok, line)?;
        if n > MAX_VALUE {
            return Err(ProtoError::ValueTooLarge(n));
        }
        value_len = Some(n);
    }
    for tok in tokens {
        let Some((&flag, arg)) = tok.split_first() else { continue };
        match flag {
            b'f' => meta.flags = Some(parse_num(arg, line)?),
            b't' => meta.ttl = Some(parse_num(arg, line)?),
            b'c' => meta.cas = Some(parse_num(arg, line)?),
            b'b' => meta.base64 = true,
            b'O' => meta.opaque = Some(parse_num(arg, line)?),
            b'k' => {
                let start = tok.as_ptr() as usize - buf.as_ptr() as usize + 1;
                meta.key = Span::new(start..start + arg.len());
            }
            _ => {} // flags we did not ask for (s, W, Z, …) are not ours to judge
        }
    }
    Ok(Header::Read(meta, value_len))
}

/// How a key travels in a request: as is, or base64 with the `b` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireKey<'a> {
    pub bytes: &'a [u8],
    pub base64: bool,
}

/// Why a key cannot be expressed in a meta request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key of {len} bytes cannot be sent ({why})")]
pub struct KeyError {
    pub len: usize,
    pub why: &'static str,
}

/// Whether a raw key must go as base64: a space, CR, LF or NUL would break
/// the request line.
pub fn needs_base64(key: &[u8]) -> bool {
    key.iter().any(|b| matches!(*b, b' ' | b'\r' | b'\n' | 0))
}

/// Whether base64 is preferable though not required (other control bytes,
/// which memcached accepts raw but which are fragile in logs and tools).
fn prefers_base64(key: &[u8]) -> bool {
    key.iter().any(|b| *b < b' ' || *b == 0x7f)
}

/// Appends the wire form of `raw` to `out`; returns whether it is base64.
/// memcached limits the *encoded* token to 250 bytes, so a key that needs
/// base64 is limited to 186 raw bytes.
pub fn encode_key(raw: &[u8], out: &mut Vec<u8>) -> Result<bool, KeyError> {
    use base64::Engine;
    if raw.is_empty() {
        return Err(KeyError { len: 0, why: "empty" });
    }
    if raw.len() > MAX_KEY {
        return Err(KeyError { len: raw.len(), why: "over 250 bytes" });
    }
    // One pass: most keys have no byte at or below space, nor DEL.
    if plain(raw) {
        out.extend_from_slice(raw);
        return Ok(false);
    }
    let fits_base64 = raw.len().div_ceil(3) * 4 <= MAX_KEY;
    if needs_base64(raw) && !fits_base64 {
        return Err(KeyError { len: raw.len(), why: "needs base64 and its encoding is over 250 bytes" });
    }
    if needs_base64(raw) || (prefers_base64(raw) && fits_base64) {
        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(raw).as_bytes());
        return Ok(true);
    }
    out.extend_from_slice(raw);
    Ok(false)
}

/// Whether `raw` has no byte at or below space, nor DEL: the keys that go
/// on the wire as they are. Keys of up to 64 bytes take one masked load
/// and two compares with AVX-512 (about 2% of a copy's CPU was this check
/// done sixteen bytes at a time with a scalar tail, once per key listed,
/// issue 32).
pub fn plain(raw: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if raw.len() <= 64 && crate::avx512::bw_available() {
        // SAFETY: the CPU has AVX-512 F and BW, checked just above, and
        // `raw` is at most 64 bytes.
        return unsafe { plain_wide(raw) };
    }
    plain_portable(raw)
}

/// [`plain`] on any CPU (a fold without early exit, so that it compiles to
/// vector compares).
fn plain_portable(raw: &[u8]) -> bool {
    !raw.iter().fold(false, |found, b| found | (*b <= b' ') | (*b == 0x7f))
}

/// [`plain`] for a key of at most 64 bytes.
///
/// # Safety
/// The CPU must have AVX-512 F and BW, and `raw` must be at most 64 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn plain_wide(raw: &[u8]) -> bool {
    use std::arch::x86_64::*;
    let lanes = crate::avx512::below(raw.len());
    // SAFETY: the mask reads the key's own bytes and no others (masked-off
    // lanes are not accessed).
    let v = unsafe { _mm512_maskz_loadu_epi8(lanes, raw.as_ptr().cast()) };
    let low = _mm512_mask_cmple_epu8_mask(lanes, v, _mm512_set1_epi8(b' ' as i8));
    let del = _mm512_mask_cmpeq_epi8_mask(lanes, v, _mm512_set1_epi8(0x7f));
    low | del == 0
}

/// The raw bytes of a wire key.
pub fn decode_key(key: WireKey<'_>) -> Vec<u8> {
    use base64::Engine;
    if key.base64 {
        base64::engine::general_purpose::STANDARD.decode(key.bytes).unwrap_or_else(|_| key.bytes.to_vec())
    } else {
        key.bytes.to_vec()
    }
}

fn push_key(out: &mut Vec<u8>, cmd: &[u8], key: WireKey<'_>) {
    out.extend_from_slice(cmd);
    out.extend_from_slice(key.bytes);
    if key.base64 {
        out.extend_from_slice(b" b");
    }
}

fn push_num(out: &mut Vec<u8>, prefix: &[u8], n: impl itoa::Integer) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `mg <key> <flags> O<opaque>`: `flags` is the space-separated flag list,
/// e.g. `"f t v u"`; `opaque` is the request's position in its batch, which
/// every answer carries back ([`super::Connection::pipeline`] checks it).
pub fn mg(out: &mut Vec<u8>, key: WireKey<'_>, flags: &str, opaque: usize) {
    push_key(out, b"mg ", key);
    if !flags.is_empty() {
        out.push(b' ');
        out.extend_from_slice(flags.as_bytes());
    }
    push_num(out, b" O", opaque);
    out.extend_from_slice(b"\r\n");
}

/// A whole batch of `mg` with the same `flags`, one per key, each carrying
/// its position as its opaque, then `mn`; `out` is cleared first.
pub fn mg_batch<'k>(out: &mut Vec<u8>, keys: impl IntoIterator<Item = WireKey<'k>>, flags: &str) {
    out.clear();
    for (n, key) in keys.into_iter().enumerate() {
        mg(out, key, flags, n);
    }
    mn(out);
}

/// How `ms` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    /// `ME`: only if absent.
    Add,
    /// `MS`: plain set, guarded by `C<cas>` when given.
    Set { cas: Option<u64> },
}

/// `ms <key> <len> F<flags> T<ttl> <mode> c O<opaque>` + value. Always asks for the new
/// CAS (`c`) so the delete guard can target exactly what was written.
pub fn ms(out: &mut Vec<u8>, key: WireKey<'_>, value: &[u8], flags: u32, ttl: u64, mode: SetMode, opaque: usize) {
    // The data length must be the token right after the key, before `b`.
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key.bytes);
    push_num(out, b" ", value.len());
    if key.base64 {
        out.extend_from_slice(b" b");
    }
    push_num(out, b" F", flags);
    push_num(out, b" T", ttl);
    match mode {
        SetMode::Add => out.extend_from_slice(b" ME c"),
        SetMode::Set { cas } => {
            out.extend_from_slice(b" MS c");
            if let Some(cas) = cas {
                push_num(out, b" C", cas);
            }
        }
    }
    push_num(out, b" O", opaque);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `md <key> [C<cas>] O<opaque>`.
pub fn md(out: &mut Vec<u8>, key: WireKey<'_>, cas: Option<u64>, opaque: usize) {
    push_key(out, b"md ", key);
    if let Some(cas) = cas {
        push_num(out, b" C", cas);
    }
    push_num(out, b" O", opaque);
    out.extend_from_slice(b"\r\n");
}

/// `mn`: closes a batch; answered by `MN` once everything before it is.
pub fn mn(out: &mut Vec<u8>) {
    out.extend_from_slice(b"mn\r\n");
}

#[cfg(test)]
mod tests;
