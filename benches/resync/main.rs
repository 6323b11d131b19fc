//! The resync benchmark: Astaire beside what users would otherwise do, on
//! the same data in the same run.
//!
//! Run with `scripts/bench.sh` (it builds the release binaries first).
//! For each size it starts four memcached on loopback, loads
//! Clearwater-style data into three (two replicas per key, timestamp flags,
//! mixed TTLs), then measures:
//! - `astaire resync` for the joining node, unthrottled and at the default
//!   5% CPU, with paced probes on a source and on the target;
//! - `memcached-tool <source> dump | nc <target>`, the copy a user would do;
//! - the target's ingest ceiling: the landing keys as a prebuilt
//!   `ms … ME q` stream replayed with `nc`;
//! - the source's `mg` ceiling the same way;
//! - the listing floor: the three sources' metadumps alone, concurrently,
//!   copying nothing (no metadump-based copy can beat it).
//!
//! The copy-speed rows are measured `BENCH_REPEATS` times (default 3;
//! Astaire alternating with the ingest ceiling) and report the median, with
//! the range beside it. Plus a 4→3 run at 100 B. Prints a table, writes CSV
//! and a PNG chart to `target/bench/`. `BENCH_SCALE=0.1` runs a tenth of the
//! data.

#[path = "../../tests/common/mod.rs"]
mod common; // the tests' private memcached processes
mod measure;
mod placement;
mod report;
mod scale;
mod scenarios;
mod targets;

use measure::*;
use placement::*;
use report::*;
use scale::*;
use scenarios::*;

fn main() {
    // `cargo bench` passes --bench; ignore the harness's arguments.
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    for b in ["astaire", "astaire-loadgen"] {
        assert!(bin(b).exists(), "build the release binaries first (scripts/bench.sh does)");
    }
    let sizes = [(1_000_000u64, 100usize), (300_000, 1024), (60_000, 10 * 1024)];
    // BENCH_SIZES=100,10240 runs only those value sizes.
    let only: Option<Vec<usize>> =
        std::env::var("BENCH_SIZES").ok().map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect());
    let sizes: Vec<(u64, usize)> =
        sizes.into_iter().filter(|(_, s)| only.as_ref().is_none_or(|o| o.contains(s))).collect();
    assert!(!sizes.is_empty(), "BENCH_SIZES selects none of the sizes 100, 1024, 10240");
    // BENCH_PLACEMENT=1: Clearwater's placement beside ketama (issue 20).
    if std::env::var_os("BENCH_PLACEMENT").is_some() {
        report(&placement_rows((1_000_000.0 * scale) as u64), "placement");
        return;
    }
    // BENCH_SCALE_KEYS=1000000,4000000,10000000: the scale rows (issues 19
    // and 32), with BENCH_AB beside this build up to BENCH_AB_MAX_KEYS and
    // the smallest on BENCH_NEWEST (the newest memcached) too.
    if let Ok(sizes) = std::env::var("BENCH_SCALE_KEYS") {
        let sizes: Vec<u64> = sizes.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        assert!(!sizes.is_empty(), "BENCH_SCALE_KEYS names no sizes");
        let binary = std::env::var("BENCH_MEMCACHED").unwrap_or_else(|_| "memcached".into());
        let other = std::env::var_os("BENCH_AB").map(std::path::PathBuf::from);
        let label = std::env::var("BENCH_AB_LABEL").unwrap_or_else(|_| "other build".into());
        let ab_max = std::env::var("BENCH_AB_MAX_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        let newest = std::env::var("BENCH_NEWEST").ok().filter(|n| !n.is_empty());
        let other = other.as_deref().map(|p| (p, label.as_str()));
        let rows = scale_rows(&binary, newest.as_deref(), &sizes, other, ab_max);
        scale_report(&rows);
        return;
    }
    // BENCH_AB=PATH (BENCH_AB_LABEL names it): this build against that one.
    if let Some(other) = std::env::var_os("BENCH_AB") {
        let label = std::env::var("BENCH_AB_LABEL").unwrap_or_else(|_| "other build".into());
        let rows = ab_rows(std::path::Path::new(&other), &label, (1_000_000.0 * scale) as u64);
        report(&rows, "ab");
        return;
    }
    // BENCH_VERSIONS=1.6.18=/usr/bin/memcached,1.6.38=…: the per-version
    // rows instead (scripts/bench.sh versions builds them).
    if let Ok(versions) = std::env::var("BENCH_VERSIONS") {
        let binaries = versions.split(',').filter(|v| !v.is_empty()).map(|v| v.split_once('=').map_or(v, |(_, b)| b));
        if std::env::var_os("BENCH_LARGE").is_some() {
            // Peak memory with values of 200 KB and 1 MB (issue 15).
            let rows: Vec<Row> = binaries
                .flat_map(|b| {
                    [(5000.0, 200_000), (1000.0, 1_000_000)]
                        .into_iter()
                        .flat_map(move |(keys, size)| large_value_rows(b, (keys * scale) as u64, size))
                })
                .collect();
            report(&rows, "large");
            return;
        }
        let keys = (1_000_000.0 * scale) as u64;
        let rows: Vec<Row> = versions
            .split(',')
            .filter(|v| !v.is_empty())
            .flat_map(|v| version_rows(v.split_once('=').map_or(v, |(_, b)| b), keys))
            .collect();
        report(&rows, "versions");
        return;
    }
    let mut rows = Vec::new();
    for &(keys, size) in &sizes {
        rows.extend(three_to_four((keys as f64 * scale) as u64, size));
    }
    if sizes.iter().any(|(_, s)| *s == 100) {
        rows.extend(four_to_three((1_000_000.0 * scale) as u64, 100));
    }
    report(&rows, "results");
}
