//! Decoding: framing, a bounds-checked cursor, one PDU at a time.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::*;

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

/// The ids and kind of a PDU, read from its header alone: enough to answer
/// a PDU whose payload cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub type_code: u8,
    pub network_order: bool,
    pub session_id: u32,
    pub transaction_id: u32,
    pub packet_id: u32,
}

impl Header {
    /// Whether the PDU is a Response (which is never answered).
    pub fn is_response(&self) -> bool {
        self.type_code == RESPONSE_TYPE
    }
}

/// The Response PDU's type code (RFC 2741 6.1).
pub const RESPONSE_TYPE: u8 = 18;

/// Reads the header at the front of `buf`, if a whole one is there.
pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let header = buf.first_chunk::<HEADER_LEN>()?;
    let [_, type_code, hflags, _, s0, s1, s2, s3, t0, t1, t2, t3, p0, p1, p2, p3, ..] = *header;
    let network_order = hflags & flags::NETWORK_BYTE_ORDER != 0;
    let word = |raw: [u8; 4]| if network_order { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) };
    Some(Header {
        type_code,
        network_order,
        session_id: word([s0, s1, s2, s3]),
        transaction_id: word([t0, t1, t2, t3]),
        packet_id: word([p0, p1, p2, p3]),
    })
}
