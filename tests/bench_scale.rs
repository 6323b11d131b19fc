//! The scale bench's table, ratios and targets (benches/resync/targets.rs)
//! as unit tests: the module is pure, so it runs here without the bench.

#[path = "../benches/resync/targets.rs"]
#[allow(dead_code, reason = "the bench prints what these tests do not read")]
mod targets;

use targets::*;

fn row(cluster: u64, case: Case, build: &str, cpu: f64, rss_mib: f64, mc_cpu: f64) -> Figures {
    Figures {
        cluster,
        case,
        memcached: "1.6.18".into(),
        build: build.into(),
        landed: cluster / 2,
        dumped: cluster * 2,
        wall: cpu * 20.0,
        walls: "1.00".into(),
        cpu,
        mc_cpu,
        rss_mib,
        spilled: None,
    }
}

#[test]
fn a_row_costs_its_cpu_per_key_landed_and_dumped() {
    let r = row(1_000_000, Case::GrowThrottled, "this build", 1.0, 30.0, 2.0);
    assert_eq!((r.us_per_landed(), r.us_per_dumped(), r.mc_us_per_landed()), (2.0, 0.5, 4.0));
    let line = table(&[r]);
    assert!(line.lines().nth(1).unwrap().contains("2.000"), "{line}");
}

#[test]
fn ratios_pair_each_row_with_the_same_row_of_the_other_build() {
    let rows = [
        row(1_000_000, Case::GrowThrottled, "this build", 1.0, 30.0, 2.0),
        row(1_000_000, Case::Grow, "this build", 0.5, 30.0, 2.0),
        row(1_000_000, Case::GrowThrottled, "4fb3f3f", 2.0, 60.0, 2.0),
    ];
    let r = ratios(&rows, "this build");
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].cpu_per_landed, r[0].rss, r[0].wall, r[0].mc_cpu), (0.5, 0.5, 0.5, 1.0));
    assert!(r[0].row.ends_with("5% CPU (memcached 1.6.18), this build / 4fb3f3f"), "{}", r[0].row);
}

#[test]
fn each_case_is_judged_by_its_own_target() {
    let m = 1_000_000;
    let rows = [
        row(m, Case::GrowThrottled, "this build", 0.7, 30.0, 1.0), // 1.4 µs: met
        row(4 * m, Case::GrowThrottled, "this build", 3.0, 30.0, 1.0), // 1.5 µs, 1.07×: met
        row(10 * m, Case::GrowThrottled, "this build", 8.5, 70.0, 1.0), // 1.7 µs, RSS: not met
        row(10 * m, Case::GrowDaemon, "this build", 8.0, 30.0, 1.0), // 1.6 µs: met
        row(10 * m, Case::Shrink, "this build", 10.5, 30.0, 1.0),  // 2.1 µs: not met
        row(m, Case::GrowNewest, "this build", 0.5, 30.0, 1.0),    // 1.0 µs: met
        row(m, Case::GrowThrottled, "4fb3f3f", 1.5, 30.0, 0.9),    // memcached CPU rose
    ];
    let v = verdicts(&rows, "this build");
    let not_met: Vec<String> = v.iter().filter(|v| !v.met).map(|v| format!("{} {}", v.row, v.target)).collect();
    assert_eq!(
        not_met,
        [
            "1000000 keys 3→4 5% CPU (memcached 1.6.18) memcached CPU s / 4fb3f3f's ≤ 1.00",
            "10000000 keys 3→4 5% CPU (memcached 1.6.18) µs of CPU per key landed ≤ 1.60",
            "10000000 keys 3→4 5% CPU (memcached 1.6.18) peak RSS MiB ≤ 64.00",
            "10000000 keys 4→3 unthrottled (memcached 1.6.18) µs of CPU per key landed ≤ 2.00",
        ]
    );
    // The 4 M row against the 1 M one, and nothing judges the other build.
    assert!(v.iter().any(|v| v.row.starts_with("4000000") && v.target.contains("/ the smallest") && v.met));
    assert_eq!(v.iter().filter(|v| v.target.contains("per key landed ≤")).count(), 6);
}

#[test]
fn a_growth_of_more_than_a_seventh_over_the_smallest_cluster_is_not_met() {
    let rows = [
        row(100_000, Case::GrowThrottled, "this build", 0.05, 30.0, 1.0), // 1.0 µs
        row(200_000, Case::GrowThrottled, "this build", 0.12, 30.0, 1.0), // 1.2 µs: the largest
        row(150_000, Case::GrowThrottled, "this build", 0.09, 30.0, 1.0), // 1.2 µs, 1.2×
    ];
    let v = verdicts(&rows, "this build");
    let growth: Vec<&Verdict> = v.iter().filter(|v| v.target.contains("smallest")).collect();
    assert_eq!(growth.len(), 1, "{v:?}");
    assert!(!growth[0].met && growth[0].row.starts_with("150000"), "{v:?}");
}
