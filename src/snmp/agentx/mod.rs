//! The AgentX subagent: the wire codec ([`pdu`]), what it connects to
//! ([`config`]) and the session with the master agent ([`session`]).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod config;
pub mod pdu;
pub mod session;

pub use config::{AgentConfig, MasterAddress, DEFAULT_MASTER};
pub use session::Subagent;
