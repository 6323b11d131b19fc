//! This process's uptime as SNMP `sysUpTime` (TimeTicks, 1/100 s), counted
//! from the first call to [`mark_process_start`].

use std::sync::OnceLock;
use std::time::Instant;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Marks the process start; later calls do nothing.
pub fn mark_process_start() {
    STARTED.get_or_init(Instant::now);
}

/// This process's uptime in 1/100 s (wrapping at 2^32, as TimeTicks do).
pub fn uptime_centis() -> u32 {
    (STARTED.get_or_init(Instant::now).elapsed().as_millis() / 10) as u32
}
