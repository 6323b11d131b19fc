//! RFC 2741 AgentX PDUs as bytes: encode and decode, nothing else.
//!
//! Sans-IO: no sockets, no clocks. [`frame_len`] tells whether a whole PDU
//! is buffered (checking the header first, so a partial read is never an
//! error), [`decode`] parses exactly one, [`encode`] writes one. Decoding
//! reads through a bounds-checked cursor: malformed input is an error naming
//! what was being read, never a panic, and every length is checked against
//! the bytes present before anything is allocated.
//!
//! Written here rather than taken from the `agentx` crate (0.1.1, the only
//! one): it models octet strings as UTF-8 `String`s, so binary values fail
//! to decode, and its Response error type cannot carry SNMP errors such as
//! notWritable(17), which set requests must receive.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

pub const HEADER_LEN: usize = 20;
/// Largest payload accepted; net-snmp's own PDUs are far smaller.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// RFC 2741 limits an OID to 128 sub-identifiers.
pub const MAX_SUBIDS: usize = 128;

/// Header flags.
pub mod flags {
    pub const INSTANCE_REGISTRATION: u8 = 0x01;
    pub const NEW_INDEX: u8 = 0x02;
    pub const ANY_INDEX: u8 = 0x04;
    pub const NON_DEFAULT_CONTEXT: u8 = 0x08;
    pub const NETWORK_BYTE_ORDER: u8 = 0x10;
}

/// Error codes of a Response PDU (RFC 2741 and the SNMP ones it reuses).
pub mod errors {
    pub const NO_ERROR: u16 = 0;
    pub const GEN_ERR: u16 = 5;
    pub const NOT_WRITABLE: u16 = 17;
    pub const OPEN_FAILED: u16 = 256;
    pub const NOT_OPEN: u16 = 257;
    pub const DUPLICATE_REGISTRATION: u16 = 263;
    pub const UNKNOWN_REGISTRATION: u16 = 264;
    pub const PARSE_ERROR: u16 = 266;
    pub const REQUEST_DENIED: u16 = 267;
    pub const PROCESSING_ERROR: u16 = 268;
}

/// Close reasons.
pub mod close_reason {
    pub const OTHER: u8 = 1;
    pub const PARSE_ERROR: u8 = 2;
    pub const PROTOCOL_ERROR: u8 = 3;
    pub const TIMEOUTS: u8 = 4;
    pub const SHUTDOWN: u8 = 5;
    pub const BY_MANAGER: u8 = 6;
}

/// Why bytes are not a valid AgentX PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AgentX {what}")]
pub struct DecodeError {
    pub what: String,
}

fn err(what: impl Into<String>) -> DecodeError {
    DecodeError { what: what.into() }
}

/// An object identifier, fully expanded (no prefix compression).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(pub Vec<u32>);

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

impl Oid {
    pub fn is_null(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for Oid {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Oid, DecodeError> {
        s.trim_start_matches('.')
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| err(format!("bad OID {s:?}"))))
            .collect::<Result<_, _>>()
            .map(Oid)
    }
}

/// A value of a VarBind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i32),
    OctetString(Vec<u8>),
    Null,
    ObjectIdentifier(Oid),
    IpAddress(Vec<u8>),
    Counter32(u32),
    Gauge32(u32),
    TimeTicks(u32),
    Opaque(Vec<u8>),
    Counter64(u64),
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
}

impl Value {
    fn tag(&self) -> u16 {
        match self {
            Value::Integer(_) => 2,
            Value::OctetString(_) => 4,
            Value::Null => 5,
            Value::ObjectIdentifier(_) => 6,
            Value::IpAddress(_) => 64,
            Value::Counter32(_) => 65,
            Value::Gauge32(_) => 66,
            Value::TimeTicks(_) => 67,
            Value::Opaque(_) => 68,
            Value::Counter64(_) => 70,
            Value::NoSuchObject => 128,
            Value::NoSuchInstance => 129,
            Value::EndOfMibView => 130,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarBind {
    pub name: Oid,
    pub value: Value,
}

/// A search range: from `start` (inclusive when `include`) up to `end`
/// (exclusive; null for no bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRange {
    pub start: Oid,
    pub include: bool,
    pub end: Oid,
}

/// The PDU types and their bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Open { timeout: u8, id: Oid, descr: Vec<u8> },
    Close { reason: u8 },
    Register { timeout: u8, priority: u8, range_subid: u8, subtree: Oid, upper_bound: Option<u32> },
    Unregister { priority: u8, range_subid: u8, subtree: Oid, upper_bound: Option<u32> },
    Get(Vec<SearchRange>),
    GetNext(Vec<SearchRange>),
    GetBulk { non_repeaters: u16, max_repetitions: u16, ranges: Vec<SearchRange> },
    TestSet(Vec<VarBind>),
    CommitSet,
    UndoSet,
    CleanupSet,
    Notify(Vec<VarBind>),
    Ping,
    IndexAllocate(Vec<VarBind>),
    IndexDeallocate(Vec<VarBind>),
    AddAgentCaps { id: Oid, descr: Vec<u8> },
    RemoveAgentCaps { id: Oid },
    Response { sys_uptime: u32, error: u16, index: u16, varbinds: Vec<VarBind> },
}

impl Payload {
    pub fn type_code(&self) -> u8 {
        match self {
            Payload::Open { .. } => 1,
            Payload::Close { .. } => 2,
            Payload::Register { .. } => 3,
            Payload::Unregister { .. } => 4,
            Payload::Get(_) => 5,
            Payload::GetNext(_) => 6,
            Payload::GetBulk { .. } => 7,
            Payload::TestSet(_) => 8,
            Payload::CommitSet => 9,
            Payload::UndoSet => 10,
            Payload::CleanupSet => 11,
            Payload::Notify(_) => 12,
            Payload::Ping => 13,
            Payload::IndexAllocate(_) => 14,
            Payload::IndexDeallocate(_) => 15,
            Payload::AddAgentCaps { .. } => 16,
            Payload::RemoveAgentCaps { .. } => 17,
            Payload::Response { .. } => 18,
        }
    }

    /// Whether a context may follow the header of this type.
    fn has_context(type_code: u8) -> bool {
        matches!(type_code, 3..=8 | 12..=17)
    }
}

/// One PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// Header flags other than byte order and context, which the encoder
    /// derives.
    pub flags: u8,
    pub session_id: u32,
    pub transaction_id: u32,
    pub packet_id: u32,
    /// Whether multi-byte fields are big-endian (NETWORK_BYTE_ORDER).
    pub network_order: bool,
    pub context: Option<Vec<u8>>,
    pub payload: Payload,
}

impl Pdu {
    /// A PDU in network byte order with no context.
    pub fn new(session_id: u32, transaction_id: u32, packet_id: u32, payload: Payload) -> Pdu {
        Pdu { flags: 0, session_id, transaction_id, packet_id, network_order: true, context: None, payload }
    }

    /// A Response to this PDU, in its byte order.
    pub fn response(&self, sys_uptime: u32, error: u16, index: u16, varbinds: Vec<VarBind>) -> Pdu {
        Pdu {
            flags: 0,
            session_id: self.session_id,
            transaction_id: self.transaction_id,
            packet_id: self.packet_id,
            network_order: self.network_order,
            context: None,
            payload: Payload::Response { sys_uptime, error, index, varbinds },
        }
    }
}

// ---------------------------------------------------------------- decoding

/// Length of the PDU at the front of `buf` once it is all there, or `None`
/// for "need more". Errors when the header cannot start a valid PDU: the
/// stream cannot be resynchronised after that.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let [version, type_code, hflags, _, .., l0, l1, l2, l3] = *header;
    if version != 1 {
        return Err(err(format!("version {version} (expected 1)")));
    }
    if !(1..=18).contains(&type_code) {
        return Err(err(format!("unknown PDU type {type_code}")));
    }
    let raw = [l0, l1, l2, l3];
    let len = if hflags & flags::NETWORK_BYTE_ORDER != 0 { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) };
    let len = len as usize;
    if !len.is_multiple_of(4) {
        return Err(err(format!("payload length {len} is not a multiple of 4")));
    }
    if len > MAX_PAYLOAD {
        return Err(err(format!("payload length {len} over the {MAX_PAYLOAD}-byte limit")));
    }
    Ok((buf.len() >= HEADER_LEN + len).then_some(HEADER_LEN + len))
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    big: bool,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let s = self.at.checked_add(n).and_then(|end| self.buf.get(self.at..end));
        let s = s.ok_or_else(|| err(format!("truncated {what}")))?;
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, what)?;
        b.try_into().map_err(|_| err(format!("truncated {what}")))
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let raw = self.array(what)?;
        Ok(if self.big { u16::from_be_bytes(raw) } else { u16::from_le_bytes(raw) })
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let raw = self.array(what)?;
        Ok(if self.big { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) })
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let hi = self.u32(what)? as u64;
        let lo = self.u32(what)? as u64;
        // Counter64 is sent as two 32-bit halves, most significant first,
        // each in the PDU's byte order.
        Ok(if self.big { hi << 32 | lo } else { lo << 32 | hi })
    }

    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// An OID and its include flag.
    fn oid(&mut self, what: &str) -> Result<(Oid, bool), DecodeError> {
        let n = self.u8(what)? as usize;
        let prefix = self.u8(what)?;
        let include = self.u8(what)?;
        self.u8(what)?;
        if n > MAX_SUBIDS {
            return Err(err(format!("{what}: {n} sub-identifiers (limit {MAX_SUBIDS})")));
        }
        let mut subids = Vec::with_capacity(n + 5);
        if prefix != 0 {
            subids.extend_from_slice(&[1, 3, 6, 1, prefix as u32]);
        }
        for _ in 0..n {
            subids.push(self.u32(what)?);
        }
        Ok((Oid(subids), include != 0))
    }

    fn octets(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32(what)? as usize;
        let padded = len.checked_add(3).map(|l| l & !3).ok_or_else(|| err(format!("{what}: bad length")))?;
        let bytes = self.take(padded, what)?;
        Ok(bytes.get(..len).unwrap_or(bytes).to_vec())
    }

    fn ranges(&mut self) -> Result<Vec<SearchRange>, DecodeError> {
        let mut out = Vec::new();
        while !self.done() {
            let (start, include) = self.oid("search range start")?;
            let (end, _) = self.oid("search range end")?;
            out.push(SearchRange { start, include, end });
        }
        Ok(out)
    }

    fn varbinds(&mut self) -> Result<Vec<VarBind>, DecodeError> {
        let mut out = Vec::new();
        while !self.done() {
            let tag = self.u16("varbind type")?;
            self.u16("varbind reserved")?;
            let (name, _) = self.oid("varbind name")?;
            let value = match tag {
                2 => Value::Integer(self.u32("Integer")? as i32),
                4 => Value::OctetString(self.octets("OctetString")?),
                5 => Value::Null,
                6 => Value::ObjectIdentifier(self.oid("OID value")?.0),
                64 => Value::IpAddress(self.octets("IpAddress")?),
                65 => Value::Counter32(self.u32("Counter32")?),
                66 => Value::Gauge32(self.u32("Gauge32")?),
                67 => Value::TimeTicks(self.u32("TimeTicks")?),
                68 => Value::Opaque(self.octets("Opaque")?),
                70 => Value::Counter64(self.u64("Counter64")?),
                128 => Value::NoSuchObject,
                129 => Value::NoSuchInstance,
                130 => Value::EndOfMibView,
                other => return Err(err(format!("unknown varbind type {other}"))),
            };
            out.push(VarBind { name, value });
        }
        Ok(out)
    }
}

/// Decodes exactly one PDU (`buf` as delimited by [`frame_len`]).
pub fn decode(buf: &[u8]) -> Result<Pdu, DecodeError> {
    let total = frame_len(buf)?.ok_or_else(|| err("PDU truncated"))?;
    let (frame, header) = (buf.get(..total), buf.first_chunk::<HEADER_LEN>());
    let (Some(frame), Some(&[_, type_code, hflags, ..])) = (frame, header) else {
        return Err(err("PDU truncated"));
    };
    let mut c = Cursor { buf: frame, at: 4, big: hflags & flags::NETWORK_BYTE_ORDER != 0 };
    let session_id = c.u32("header")?;
    let transaction_id = c.u32("header")?;
    let packet_id = c.u32("header")?;
    c.u32("header")?;
    let context = if hflags & flags::NON_DEFAULT_CONTEXT != 0 && Payload::has_context(type_code) {
        Some(c.octets("context")?)
    } else {
        None
    };
    let payload = match type_code {
        1 => {
            let timeout = c.u8("Open")?;
            c.take(3, "Open")?;
            let id = c.oid("Open id")?.0;
            Payload::Open { timeout, id, descr: c.octets("Open descr")? }
        }
        2 => {
            let reason = c.u8("Close")?;
            c.take(3, "Close")?;
            Payload::Close { reason }
        }
        3 | 4 => {
            let timeout = c.u8("Register")?;
            let priority = c.u8("Register")?;
            let range_subid = c.u8("Register")?;
            c.u8("Register")?;
            let subtree = c.oid("Register subtree")?.0;
            let upper_bound = if range_subid != 0 { Some(c.u32("Register upper bound")?) } else { None };
            if type_code == 3 {
                Payload::Register { timeout, priority, range_subid, subtree, upper_bound }
            } else {
                Payload::Unregister { priority, range_subid, subtree, upper_bound }
            }
        }
        5 => Payload::Get(c.ranges()?),
        6 => Payload::GetNext(c.ranges()?),
        7 => {
            let non_repeaters = c.u16("GetBulk")?;
            let max_repetitions = c.u16("GetBulk")?;
            Payload::GetBulk { non_repeaters, max_repetitions, ranges: c.ranges()? }
        }
        8 => Payload::TestSet(c.varbinds()?),
        9 => Payload::CommitSet,
        10 => Payload::UndoSet,
        11 => Payload::CleanupSet,
        12 => Payload::Notify(c.varbinds()?),
        13 => Payload::Ping,
        14 => Payload::IndexAllocate(c.varbinds()?),
        15 => Payload::IndexDeallocate(c.varbinds()?),
        16 => {
            let id = c.oid("AddAgentCaps id")?.0;
            Payload::AddAgentCaps { id, descr: c.octets("AddAgentCaps descr")? }
        }
        17 => Payload::RemoveAgentCaps { id: c.oid("RemoveAgentCaps id")?.0 },
        _ => {
            let sys_uptime = c.u32("Response")?;
            let error = c.u16("Response")?;
            let index = c.u16("Response")?;
            Payload::Response { sys_uptime, error, index, varbinds: c.varbinds()? }
        }
    };
    if !c.done() {
        return Err(err(format!("{} bytes left over after a type {type_code} PDU", total - c.at)));
    }
    Ok(Pdu {
        flags: hflags & !(flags::NETWORK_BYTE_ORDER | flags::NON_DEFAULT_CONTEXT),
        session_id,
        transaction_id,
        packet_id,
        network_order: hflags & flags::NETWORK_BYTE_ORDER != 0,
        context,
        payload,
    })
}

// ---------------------------------------------------------------- encoding

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    big: bool,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    fn oid(&mut self, oid: &Oid, include: bool) {
        // Prefix compression for 1.3.6.1.x with 0 < x < 256.
        let s = &oid.0;
        let (prefix, rest) = match s.as_slice() {
            [1, 3, 6, 1, x, rest @ ..] if *x > 0 && *x < 256 => (*x as u8, rest),
            _ => (0, s.as_slice()),
        };
        self.u8(rest.len().min(MAX_SUBIDS) as u8);
        self.u8(prefix);
        self.u8(include as u8);
        self.u8(0);
        rest.iter().take(MAX_SUBIDS).for_each(|v| self.u32(*v));
    }
    fn octets(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.out.extend_from_slice(b);
        self.out.resize(self.out.len() + (4 - b.len() % 4) % 4, 0);
    }
    fn ranges(&mut self, ranges: &[SearchRange]) {
        for r in ranges {
            self.oid(&r.start, r.include);
            self.oid(&r.end, false);
        }
    }
    fn varbinds(&mut self, vbs: &[VarBind]) {
        for vb in vbs {
            self.u16(vb.value.tag());
            self.u16(0);
            self.oid(&vb.name, false);
            match &vb.value {
                Value::Integer(v) => self.u32(*v as u32),
                Value::OctetString(b) | Value::IpAddress(b) | Value::Opaque(b) => self.octets(b),
                Value::ObjectIdentifier(o) => self.oid(o, false),
                Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => self.u32(*v),
                Value::Counter64(v) => {
                    let (hi, lo) = ((*v >> 32) as u32, *v as u32);
                    if self.big {
                        self.u32(hi);
                        self.u32(lo);
                    } else {
                        self.u32(lo);
                        self.u32(hi);
                    }
                }
                Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {}
            }
        }
    }
}

/// Appends the encoding of `pdu` to `out`.
pub fn encode(pdu: &Pdu, out: &mut Vec<u8>) {
    let start = out.len();
    let code = pdu.payload.type_code();
    let mut hflags = pdu.flags & !(flags::NETWORK_BYTE_ORDER | flags::NON_DEFAULT_CONTEXT);
    if pdu.network_order {
        hflags |= flags::NETWORK_BYTE_ORDER;
    }
    let context = pdu.context.as_ref().filter(|_| Payload::has_context(code));
    if context.is_some() {
        hflags |= flags::NON_DEFAULT_CONTEXT;
    }
    let mut w = Writer { out, big: pdu.network_order };
    w.u8(1);
    w.u8(code);
    w.u8(hflags);
    w.u8(0);
    w.u32(pdu.session_id);
    w.u32(pdu.transaction_id);
    w.u32(pdu.packet_id);
    w.u32(0); // payload length, patched below
    if let Some(ctx) = context {
        w.octets(ctx);
    }
    match &pdu.payload {
        Payload::Open { timeout, id, descr } => {
            w.u8(*timeout);
            w.out.extend_from_slice(&[0, 0, 0]);
            w.oid(id, false);
            w.octets(descr);
        }
        Payload::Close { reason } => {
            w.u8(*reason);
            w.out.extend_from_slice(&[0, 0, 0]);
        }
        Payload::Register { timeout, priority, range_subid, subtree, upper_bound } => {
            w.u8(*timeout);
            w.u8(*priority);
            w.u8(*range_subid);
            w.u8(0);
            w.oid(subtree, false);
            if let Some(b) = upper_bound {
                w.u32(*b);
            }
        }
        Payload::Unregister { priority, range_subid, subtree, upper_bound } => {
            w.u8(0);
            w.u8(*priority);
            w.u8(*range_subid);
            w.u8(0);
            w.oid(subtree, false);
            if let Some(b) = upper_bound {
                w.u32(*b);
            }
        }
        Payload::Get(r) | Payload::GetNext(r) => w.ranges(r),
        Payload::GetBulk { non_repeaters, max_repetitions, ranges } => {
            w.u16(*non_repeaters);
            w.u16(*max_repetitions);
            w.ranges(ranges);
        }
        Payload::TestSet(v) | Payload::Notify(v) | Payload::IndexAllocate(v) | Payload::IndexDeallocate(v) => {
            w.varbinds(v)
        }
        Payload::CommitSet | Payload::UndoSet | Payload::CleanupSet | Payload::Ping => {}
        Payload::AddAgentCaps { id, descr } => {
            w.oid(id, false);
            w.octets(descr);
        }
        Payload::RemoveAgentCaps { id } => w.oid(id, false),
        Payload::Response { sys_uptime, error, index, varbinds } => {
            w.u32(*sys_uptime);
            w.u16(*error);
            w.u16(*index);
            w.varbinds(varbinds);
        }
    }
    let len = (out.len() - start - HEADER_LEN) as u32;
    let len = if pdu.network_order { len.to_be_bytes() } else { len.to_le_bytes() };
    if let Some(field) = out.get_mut(start + 16..start + 20) {
        field.copy_from_slice(&len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    /// A GetNext as net-snmp sends it for `snmpwalk` of the Astaire subtree:
    /// little-endian, range end …9.10 (A+1).
    fn getnext_le() -> Vec<u8> {
        let mut b = vec![1, 6, 0, 0];
        b.extend_from_slice(&7u32.to_le_bytes()); // session
        b.extend_from_slice(&9u32.to_le_bytes()); // transaction
        b.extend_from_slice(&11u32.to_le_bytes()); // packet
        b.extend_from_slice(&72u32.to_le_bytes()); // payload length: 2 × (4 + 8 × 4)
        let start = [1u32, 2, 826, 0, 1, 1578918, 9, 9];
        let end = [1u32, 2, 826, 0, 1, 1578918, 9, 10];
        b.extend_from_slice(&[8, 0, 1, 0]); // start: 8 subids, include
        start.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        b.extend_from_slice(&[8, 0, 0, 0]);
        end.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        b
    }

    #[test]
    fn decodes_a_little_endian_getnext() {
        let b = getnext_le();
        assert_eq!(frame_len(&b), Ok(Some(b.len())));
        let pdu = decode(&b).unwrap();
        assert!(!pdu.network_order);
        assert_eq!((pdu.session_id, pdu.transaction_id, pdu.packet_id), (7, 9, 11));
        let Payload::GetNext(ranges) = pdu.payload else { panic!("not a GetNext") };
        assert_eq!(
            ranges,
            vec![SearchRange {
                start: oid("1.2.826.0.1.1578918.9.9"),
                include: true,
                end: oid("1.2.826.0.1.1578918.9.10"),
            }]
        );
    }

    #[test]
    fn partial_frames_ask_for_more_and_bad_headers_are_errors() {
        let b = getnext_le();
        for cut in 0..b.len() {
            assert_eq!(frame_len(&b[..cut]), Ok(None), "cut {cut}");
            assert!(decode(&b[..cut]).is_err());
        }
        let mut bad = b.clone();
        bad[0] = 2;
        assert!(frame_len(&bad).is_err());
        let mut bad = b.clone();
        bad[16] = 63; // not a multiple of 4
        assert!(frame_len(&bad).is_err());
        let mut bad = b.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(frame_len(&bad).is_err());
        let mut bad = b;
        bad[1] = 99;
        assert!(frame_len(&bad).is_err());
    }

    #[test]
    fn prefix_compression_and_network_order_response() {
        // sysUpTime.0 is sent with prefix 2: 1.3.6.1.2 + 1.1.3.0
        let pdu = Pdu::new(
            1,
            2,
            3,
            Payload::Response {
                sys_uptime: 0x01020304,
                error: errors::NOT_WRITABLE,
                index: 1,
                varbinds: vec![VarBind { name: oid("1.3.6.1.2.1.1.3.0"), value: Value::Gauge32(5) }],
            },
        );
        let mut b = Vec::new();
        encode(&pdu, &mut b);
        assert_eq!(&b[..4], &[1, 18, flags::NETWORK_BYTE_ORDER, 0]);
        assert_eq!(&b[16..20], &36u32.to_be_bytes(), "8 + varbind (4 + 4 + 16 + 4)");
        assert_eq!(&b[20..28], &[1, 2, 3, 4, 0, 17, 0, 1]);
        assert_eq!(&b[28..32], &[0, 66, 0, 0]);
        assert_eq!(&b[32..36], &[4, 2, 0, 0], "4 subids after prefix 2");
        assert_eq!(decode(&b).unwrap(), pdu);
    }

    #[test]
    fn octet_strings_are_padded_and_may_be_binary() {
        let mut pdu = Pdu::new(1, 0, 0, Payload::Open { timeout: 5, id: Oid(vec![]), descr: vec![0xff, 0, 0xc0] });
        pdu.network_order = false;
        let mut b = Vec::new();
        encode(&pdu, &mut b);
        assert_eq!(b.len(), HEADER_LEN + 4 + 4 + 8);
        assert_eq!(&b[28..36], &[3, 0, 0, 0, 0xff, 0, 0xc0, 0]);
        assert_eq!(decode(&b).unwrap(), pdu);
    }

    #[test]
    fn a_context_travels_with_the_pdus_that_carry_one() {
        let mut pdu = Pdu::new(1, 2, 3, Payload::Get(vec![]));
        pdu.context = Some(b"ctx".to_vec());
        let mut b = Vec::new();
        encode(&pdu, &mut b);
        assert_ne!(b[2] & flags::NON_DEFAULT_CONTEXT, 0);
        assert_eq!(decode(&b).unwrap(), pdu);
    }

    #[test]
    fn leftover_bytes_and_unknown_value_types_are_errors() {
        let mut b = Vec::new();
        encode(&Pdu::new(1, 2, 3, Payload::Ping), &mut b);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b[19] = 4;
        assert!(decode(&b).unwrap_err().what.contains("left over"));
        let mut b = Vec::new();
        encode(&Pdu::new(1, 2, 3, Payload::TestSet(vec![VarBind { name: oid("1.2"), value: Value::Null }])), &mut b);
        b[21] = 99; // varbind type 99
        assert!(decode(&b).unwrap_err().what.contains("unknown varbind type"));
    }

    fn arb_oid() -> impl Strategy<Value = Oid> {
        prop_oneof![
            prop::collection::vec(any::<u32>(), 0..20).prop_map(Oid),
            (1u32..256, prop::collection::vec(any::<u32>(), 0..10)).prop_map(|(x, rest)| {
                let mut v = vec![1, 3, 6, 1, x];
                v.extend(rest);
                Oid(v)
            }),
        ]
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let bytes = || prop::collection::vec(any::<u8>(), 0..20);
        prop_oneof![
            any::<i32>().prop_map(Value::Integer),
            bytes().prop_map(Value::OctetString),
            Just(Value::Null),
            arb_oid().prop_map(Value::ObjectIdentifier),
            bytes().prop_map(Value::IpAddress),
            any::<u32>().prop_map(Value::Counter32),
            any::<u32>().prop_map(Value::Gauge32),
            any::<u32>().prop_map(Value::TimeTicks),
            bytes().prop_map(Value::Opaque),
            any::<u64>().prop_map(Value::Counter64),
            Just(Value::NoSuchObject),
            Just(Value::NoSuchInstance),
            Just(Value::EndOfMibView),
        ]
    }

    fn arb_varbinds() -> impl Strategy<Value = Vec<VarBind>> {
        prop::collection::vec((arb_oid(), arb_value()).prop_map(|(name, value)| VarBind { name, value }), 0..6)
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<SearchRange>> {
        prop::collection::vec(
            (arb_oid(), any::<bool>(), arb_oid()).prop_map(|(start, include, end)| SearchRange { start, include, end }),
            0..6,
        )
    }

    fn arb_payload() -> impl Strategy<Value = Payload> {
        let bytes = || prop::collection::vec(any::<u8>(), 0..20);
        prop_oneof![
            (any::<u8>(), arb_oid(), bytes()).prop_map(|(timeout, id, descr)| Payload::Open { timeout, id, descr }),
            any::<u8>().prop_map(|reason| Payload::Close { reason }),
            (any::<u8>(), any::<u8>(), any::<u8>(), arb_oid(), any::<u32>()).prop_map(|(t, p, r, subtree, b)| {
                Payload::Register {
                    timeout: t,
                    priority: p,
                    range_subid: r,
                    subtree,
                    upper_bound: (r != 0).then_some(b),
                }
            }),
            (any::<u8>(), any::<u8>(), arb_oid(), any::<u32>()).prop_map(|(p, r, subtree, b)| {
                Payload::Unregister { priority: p, range_subid: r, subtree, upper_bound: (r != 0).then_some(b) }
            }),
            arb_ranges().prop_map(Payload::Get),
            arb_ranges().prop_map(Payload::GetNext),
            (any::<u16>(), any::<u16>(), arb_ranges())
                .prop_map(|(n, m, ranges)| { Payload::GetBulk { non_repeaters: n, max_repetitions: m, ranges } }),
            arb_varbinds().prop_map(Payload::TestSet),
            Just(Payload::CommitSet),
            Just(Payload::UndoSet),
            Just(Payload::CleanupSet),
            arb_varbinds().prop_map(Payload::Notify),
            Just(Payload::Ping),
            arb_varbinds().prop_map(Payload::IndexAllocate),
            arb_varbinds().prop_map(Payload::IndexDeallocate),
            (arb_oid(), bytes()).prop_map(|(id, descr)| Payload::AddAgentCaps { id, descr }),
            arb_oid().prop_map(|id| Payload::RemoveAgentCaps { id }),
            (any::<u32>(), any::<u16>(), any::<u16>(), arb_varbinds())
                .prop_map(|(s, e, i, varbinds)| { Payload::Response { sys_uptime: s, error: e, index: i, varbinds } }),
        ]
    }

    proptest! {
        #[test]
        fn every_pdu_round_trips_in_both_byte_orders(
            payload in arb_payload(),
            ids in (any::<u32>(), any::<u32>(), any::<u32>()),
            network_order in any::<bool>(),
            context in prop::option::of(prop::collection::vec(any::<u8>(), 0..9)),
            extra_flags in 0u8..8,
        ) {
            let code = payload.type_code();
            let mut pdu = Pdu::new(ids.0, ids.1, ids.2, payload);
            pdu.network_order = network_order;
            pdu.flags = extra_flags;
            pdu.context = context.filter(|_| Payload::has_context(code));
            let mut b = Vec::new();
            encode(&pdu, &mut b);
            prop_assert_eq!(frame_len(&b), Ok(Some(b.len())));
            prop_assert_eq!(decode(&b).unwrap(), pdu);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = frame_len(&bytes);
            let _ = decode(&bytes);
        }

        /// A valid header (so the payload decoders are reached, which
        /// random bytes almost never do) over an arbitrary payload of
        /// mostly small words: plausible lengths, counts and sub-ids.
        #[test]
        fn well_framed_headers_with_arbitrary_payloads_never_panic(
            type_code in 1u8..=18,
            hflags in any::<u8>(),
            ids in any::<[u32; 3]>(),
            words in prop::collection::vec(prop_oneof![0u32..8, 0u32..300, any::<u32>()], 0..64),
        ) {
            let big = hflags & flags::NETWORK_BYTE_ORDER != 0;
            let word = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
            let mut b = vec![1, type_code, hflags, 0];
            for v in ids {
                b.extend_from_slice(&word(v));
            }
            let payload: Vec<u8> = words.iter().flat_map(|w| word(*w)).collect();
            b.extend_from_slice(&word(payload.len() as u32));
            b.extend_from_slice(&payload);
            prop_assert_eq!(frame_len(&b), Ok(Some(b.len())), "the header is well framed");
            let _ = decode(&b);
        }

        #[test]
        fn corrupted_pdus_never_panic(payload in arb_payload(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut b = Vec::new();
            encode(&Pdu::new(1, 2, 3, payload), &mut b);
            for (at, v) in flips {
                let i = at % b.len();
                b[i] = v;
            }
            let _ = decode(&b);
        }
    }
}
