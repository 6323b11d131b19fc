//! The AgentX subagent: the wire codec ([`pdu`]) and the session with the
//! master agent ([`session`]).

pub mod pdu;
pub mod session;

pub use session::{AgentConfig, MasterAddress, Subagent, DEFAULT_MASTER};
