//! The AgentX subagent: the wire codec ([`pdu`]) and the session with the
//! master agent ([`session`]).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod pdu;
pub mod session;

pub use session::{AgentConfig, MasterAddress, Subagent, DEFAULT_MASTER};
