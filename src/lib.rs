//! Astaire: active resynchronisation of Clearwater-style memcached clusters.
//!
//! The parts, in the order data flows through them (see `ARCHITECTURE.md`):
//! [`view`] computes which vbuckets this node must pull and from where;
//! [`resync`] streams them from the sources with the [`memcached`] client
//! and injects them locally; [`stats`] is the one meeting point where the
//! worker publishes its counters for whoever reports them.

pub mod addr;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod backoff;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod files;
pub mod log_files;
pub mod memcached;
pub mod memcached_config;
pub mod metrics;
pub mod node_settings;
pub mod pd_log;
pub mod placement;
pub mod plan;
pub mod progress;
pub mod resync;
pub mod snmp;
pub mod stats;
pub mod stop;
/// Test data for the load generator and the benchmarks; not part of the
/// product's API.
#[doc(hidden)]
pub mod testdata;
pub mod throttle;
pub mod verify;
pub mod view;
