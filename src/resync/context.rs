//! What the three stages of one source's copy share ([`super::source`]
//! wires them): the context every copy of a resync gets, and how a copy
//! fails. The stages depend on this room, never on each other's wiring.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::barrier::PrimaryBarrier;
use super::queue::QueueBudget;
use super::Options;
use crate::memcached::McError;
use crate::stats::ResyncCounters;
use crate::stop::Stop;
use crate::throttle::Throttle;
use std::sync::Arc;

/// Which side of the copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("source {0}")]
    Source(McError),
    #[error("local {0}")]
    Local(McError),
    /// A stop was requested before this source finished.
    #[error("stopped before the end")]
    Stopped,
}

pub(crate) fn unexpected(server: &str, message: String) -> McError {
    McError::Unexpected { server: server.to_owned(), message }
}

/// What the copies of a resync share.
pub struct CopyContext {
    pub local_name: String,
    pub opts: Options,
    pub throttle: Throttle,
    pub progress: Option<Arc<ResyncCounters>>,
    /// One arrival per source.
    pub barrier: Arc<PrimaryBarrier>,
    /// The memory the keys waiting to be copied may use, and where the rest spills.
    pub queue: Arc<QueueBudget>,
    /// Puts each dumped key in its bucket (vbucket, or source).
    pub classifier: Arc<crate::placement::Classifier>,
    /// Every wait of the copy that changes nothing ends on it.
    pub stop: Stop,
    /// The largest value the local memcached stores (`item_size_max`):
    /// larger ones are read past, never held.
    pub item_size_max: usize,
}
