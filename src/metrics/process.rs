//! This process's resource use, as the Prometheus client libraries
//! publish it (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! ...), read from the kernel at scrape time.
//!
//! Hand-written: prometheus-client has no process collector, and the
//! crates that add one (the `prometheus` crate's `process` feature,
//! `procfs`) bring a second metrics library or a whole /proc model for
//! six numbers. Each number comes from one system call or one line of one
//! /proc file; the parsers are pure and unit-tested.
// Reads file input: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading; a field the kernel would not give is `None` and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Reads this process's figures now.
pub fn sample() -> ProcessSample {
    let page = page_size();
    let statm = std::fs::read_to_string("/proc/self/statm").ok();
    let (virtual_pages, resident_pages) = statm.as_deref().and_then(parse_statm).unzip();
    ProcessSample {
        cpu_seconds: cpu_seconds(),
        resident_bytes: resident_pages.zip(page).map(|(p, s)| p * s),
        virtual_bytes: virtual_pages.zip(page).map(|(p, s)| p * s),
        start_time_seconds: start_time_seconds(),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
        max_fds: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft),
    }
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0)
}

/// User plus system time of every thread of the process.
fn cpu_seconds() -> Option<f64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

/// `/proc/self/statm`: size and resident, in pages.
pub fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?))
}

/// When the process started, in Unix seconds: its age (clock ticks since
/// boot, field 22 of `/proc/self/stat`) against the boot time (`btime`
/// of `/proc/stat`).
fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    start_from(&stat, &boot, u64::try_from(ticks).ok().filter(|t| *t > 0)?)
}

/// The start time from the texts of `/proc/self/stat` and `/proc/stat`.
/// The command name (field 2) may hold spaces and parentheses: fields are
/// counted after its last `)`.
pub fn start_from(stat: &str, boot: &str, ticks_per_second: u64) -> Option<f64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    // Field 3 is the first after the name; field 22 is the 20th.
    let started_ticks: u64 = after_name.split_ascii_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    Some(btime as f64 + started_ticks as f64 / ticks_per_second as f64)
}

/// Now, in Unix seconds.
pub fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_size_and_resident_pages() {
        assert_eq!(parse_statm("2345 678 90 1 0 300 0\n"), Some((2345, 678)));
        assert_eq!(parse_statm(""), None);
        assert_eq!(parse_statm("12 x"), None);
    }

    #[test]
    fn the_start_time_counts_fields_after_the_last_parenthesis() {
        // A command name with a space and a parenthesis of its own.
        let stat = "4242 (astaire (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 12345 1000 200";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 99\n";
        assert_eq!(start_from(stat, boot, 100), Some(1_700_000_123.45));
        assert_eq!(start_from("no name here", boot, 100), None);
        assert_eq!(start_from(stat, "cpu 1\n", 100), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let s = sample();
        assert!(s.resident_bytes.unwrap() > 1 << 20, "{s:?}");
        assert!(s.cpu_seconds.unwrap() >= 0.0);
        let started = s.start_time_seconds.unwrap();
        assert!(started <= now_seconds() + 1.0 && started > now_seconds() - 86_400.0, "{started}");
        assert!(s.open_fds.unwrap() >= 3 && s.max_fds.unwrap() >= s.open_fds.unwrap());
    }
}
