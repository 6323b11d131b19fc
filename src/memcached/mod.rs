//! The memcached client: the meta text protocol ([`proto`]), key enumeration
//! ([`dump`]) and a tokio connection ([`conn`]). Nothing here knows about
//! vbuckets or resyncs.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod conn;
pub mod dump;
pub mod pace;
pub mod proto;
pub mod reader;

pub use conn::{Connection, Item, DEFAULT_TIMEOUT};

/// A failure talking to one server; always names the server.
#[derive(Debug, thiserror::Error)]
pub enum McError {
    #[error("{server}: cannot connect: {source}")]
    Connect { server: String, source: std::io::Error },
    #[error("{server}: {source}")]
    Io { server: String, source: std::io::Error },
    #[error("{server}: no answer for {secs} s")]
    Timeout { server: String, secs: u64 },
    #[error("{server}: connection closed{}", if *partial { " in the middle of a response" } else { "" })]
    Closed { server: String, partial: bool },
    #[error("{server}: {source}")]
    Protocol { server: String, source: proto::ProtoError },
    #[error("{server}: {source}")]
    Key { server: String, source: proto::KeyError },
    #[error("{server}: {message}")]
    Unexpected { server: String, message: String },
}

impl McError {
    pub fn server(&self) -> &str {
        match self {
            McError::Connect { server, .. }
            | McError::Io { server, .. }
            | McError::Timeout { server, .. }
            | McError::Closed { server, .. }
            | McError::Protocol { server, .. }
            | McError::Key { server, .. }
            | McError::Unexpected { server, .. } => server,
        }
    }
}
