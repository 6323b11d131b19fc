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

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{decode, frame_len, peek_header, Header};
pub use encode::encode;
