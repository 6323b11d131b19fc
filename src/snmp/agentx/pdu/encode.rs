//! Encoding: one PDU, in the byte order its header says.

use super::*;

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    big: bool,
}

impl Writer<'_> {
    /// The body of a Register or Unregister (RFC 2741 6.2.3, 6.2.4).
    fn registration(&mut self, timeout: u8, priority: u8, range_subid: u8, subtree: &Oid, upper_bound: Option<u32>) {
        self.u8(timeout);
        self.u8(priority);
        self.u8(range_subid);
        self.u8(0);
        self.oid(subtree, false);
        if let Some(b) = upper_bound {
            self.u32(b);
        }
    }

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
            w.registration(*timeout, *priority, *range_subid, subtree, *upper_bound)
        }
        // An Unregister is laid out as a Register whose timeout is reserved (0).
        Payload::Unregister { priority, range_subid, subtree, upper_bound } => {
            w.registration(0, *priority, *range_subid, subtree, *upper_bound)
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
