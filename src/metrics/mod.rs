//! The second face of the counters (issue 31): Prometheus metrics and the
//! health endpoints an orchestrator probes, over HTTP.
//!
//! [`exposition`] turns [`crate::stats::Stats`] (the same atomics the
//! AgentX subagent reads) into the Prometheus text format or OpenMetrics at
//! scrape time; [`process`] reads this process's CPU time and memory from
//! the kernel; [`http`] serves `/metrics`, `/healthz` and `/readyz` on a
//! thread and runtime of its own, as the subagent does, so that a busy copy
//! never delays a scrape and a hostile client never reaches the copy.

pub mod exposition;
pub mod http;
pub mod process;

pub use http::{HttpLimits, MetricsServer};
