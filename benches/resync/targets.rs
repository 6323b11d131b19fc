//! Issue 32's table from the scale rows: the figures of each row, this
//! build against the other build of the same run, and each row against its
//! target. Values in, text out: no memcached, no clock (tests/bench_scale.rs
//! tests it). Nothing asserts on a time: a target missed is printed so.

/// Which of the cases a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `astaire resync` for the joining node of a 3→4, unthrottled.
    Grow,
    /// The same at `--cpu-limit 5`.
    GrowThrottled,
    /// `astaire daemon` doing the 3→4 at its default 5%.
    GrowDaemon,
    /// A full resync of a node that lost everything.
    Full,
    /// A 4→3, unthrottled.
    Shrink,
    /// The 3→4 unthrottled on the newest memcached.
    GrowNewest,
}

impl Case {
    pub fn resize(self) -> &'static str {
        match self {
            Case::Grow | Case::GrowThrottled | Case::GrowNewest => "3→4",
            Case::GrowDaemon => "3→4 (daemon)",
            Case::Full => "full",
            Case::Shrink => "4→3",
        }
    }

    pub fn mode(self) -> &'static str {
        match self {
            Case::GrowThrottled | Case::GrowDaemon => "5% CPU",
            _ => "unthrottled",
        }
    }
}

/// What one build measured on one row (medians over the repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Keys in the cluster.
    pub cluster: u64,
    pub case: Case,
    /// The memcached it ran on ("1.6.18").
    pub memcached: String,
    pub build: String,
    /// Keys landed (added or replacing an older value).
    pub landed: u64,
    /// Keys the sources' dumps named, wanted or not.
    pub dumped: u64,
    pub wall: f64,
    /// "2.10–2.31" over the repeats, or the one wall time.
    pub walls: String,
    /// Astaire's CPU seconds, user + system.
    pub cpu: f64,
    /// The sources' memcached CPU seconds (crawlers + workers).
    pub mc_cpu: f64,
    pub rss_mib: f64,
    pub spilled: Option<u64>,
}

impl Figures {
    fn per_key(seconds: f64, keys: u64) -> f64 {
        seconds * 1e6 / keys.max(1) as f64
    }
    /// Astaire's µs of CPU per key landed: the measure.
    pub fn us_per_landed(&self) -> f64 {
        Self::per_key(self.cpu, self.landed)
    }
    pub fn us_per_dumped(&self) -> f64 {
        Self::per_key(self.cpu, self.dumped)
    }
    /// The sources' memcached µs of CPU per key landed.
    pub fn mc_us_per_landed(&self) -> f64 {
        Self::per_key(self.mc_cpu, self.landed)
    }
    /// The same row (cluster, case, memcached) as `o`.
    fn same_row(&self, o: &Figures) -> bool {
        self.cluster == o.cluster && self.case == o.case && self.memcached == o.memcached
    }
    fn name(&self) -> String {
        format!("{} keys {} {} (memcached {})", self.cluster, self.case.resize(), self.case.mode(), self.memcached)
    }
}

/// The table, one line per row and build.
pub fn table(rows: &[Figures]) -> String {
    let mut out = format!(
        "{:>9} {:<13} {:<12} {:<8} {:<16} {:>9} {:>9} {:>8} {:>11} {:>7} {:>9} {:>10} {:>7} {:>10} {:>8} {:>8}\n",
        "cluster",
        "resize",
        "mode",
        "mc",
        "build",
        "landed",
        "dumped",
        "wall s",
        "runs s",
        "CPU s",
        "µs/dump",
        "µs/landed",
        "mc s",
        "mc µs/lnd",
        "RSS MiB",
        "spill MB"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>9} {:<13} {:<12} {:<8} {:<16} {:>9} {:>9} {:>8.2} {:>11} {:>7.2} {:>9.3} {:>10.3} {:>7.2} {:>10.3} {:>8.1} {:>8}\n",
            r.cluster,
            r.case.resize(),
            r.case.mode(),
            r.memcached,
            r.build,
            r.landed,
            r.dumped,
            r.wall,
            r.walls,
            r.cpu,
            r.us_per_dumped(),
            r.us_per_landed(),
            r.mc_cpu,
            r.mc_us_per_landed(),
            r.rss_mib,
            r.spilled.map(|b| format!("{:.1}", b as f64 / 1e6)).unwrap_or_else(|| "-".into()),
        ));
    }
    out
}

/// The CSV of the table.
pub fn csv(rows: &[Figures], field: impl Fn(&str) -> String) -> String {
    let mut csv = String::from(
        "cluster_keys,resize,mode,memcached,build,landed,dumped,wall_s,wall_min_max_s,cpu_s,us_cpu_per_key_dumped,\
         us_cpu_per_key_landed,memcached_cpu_s,memcached_us_per_key_landed,peak_rss_mib,spilled_bytes\n",
    );
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{:.3},{},{:.3},{:.4},{:.4},{:.3},{:.4},{:.1},{}\n",
            r.cluster,
            r.case.resize(),
            r.case.mode(),
            field(&r.memcached),
            field(&r.build),
            r.landed,
            r.dumped,
            r.wall,
            field(&r.walls),
            r.cpu,
            r.us_per_dumped(),
            r.us_per_landed(),
            r.mc_cpu,
            r.mc_us_per_landed(),
            r.rss_mib,
            r.spilled.map(|b| b.to_string()).unwrap_or_default()
        ));
    }
    csv
}

/// This build / the other build on one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    pub row: String,
    pub cpu_per_landed: f64,
    pub rss: f64,
    pub wall: f64,
    pub mc_cpu: f64,
}

/// This build (`this`) against every other build on the same row.
pub fn ratios(rows: &[Figures], this: &str) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    rows.iter()
        .filter(|o| o.build != this)
        .filter_map(|o| {
            let t = rows.iter().find(|t| t.build == this && t.same_row(o))?;
            Some(Ratio {
                row: format!("{}, this build / {}", t.name(), o.build),
                cpu_per_landed: div(t.us_per_landed(), o.us_per_landed()),
                rss: div(t.rss_mib, o.rss_mib),
                wall: div(t.wall, o.wall),
                mc_cpu: div(t.mc_cpu, o.mc_cpu),
            })
        })
        .collect()
}

/// One row of this build against one of the targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub row: String,
    /// What is measured against what ("µs of CPU per key landed ≤ 1.50").
    pub target: String,
    pub value: f64,
    pub met: bool,
}

/// The targets for this build's rows. The smallest cluster of the
/// throttled 3→4s plays the 1 M, the largest its 10 M and the
/// ones between its 4 M, so a small run is judged by the same rules.
pub fn verdicts(rows: &[Figures], this: &str) -> Vec<Verdict> {
    let mine: Vec<&Figures> = rows.iter().filter(|r| r.build == this).collect();
    let throttled = || mine.iter().filter(|r| r.case == Case::GrowThrottled);
    let smallest = throttled().map(|r| r.cluster).min();
    let largest = throttled().map(|r| r.cluster).max();
    let first = throttled().find(|r| Some(r.cluster) == smallest).map(|r| r.us_per_landed());
    let mut out = Vec::new();
    let mut at_most = |r: &Figures, what: &str, value: f64, limit: f64| {
        out.push(Verdict { row: r.name(), target: format!("{what} ≤ {limit:.2}"), value, met: value <= limit });
    };
    for r in &mine {
        let us = r.us_per_landed();
        let cpu = "µs of CPU per key landed";
        match r.case {
            Case::GrowThrottled if Some(r.cluster) == largest && largest != smallest => at_most(r, cpu, us, 1.6),
            Case::GrowThrottled => {
                at_most(r, cpu, us, 1.5);
                if let Some(first) = first.filter(|_| Some(r.cluster) != smallest) {
                    at_most(r, "its µs per key landed / the smallest cluster's", us / first, 1.15);
                }
            }
            Case::GrowDaemon => at_most(r, cpu, us, 1.6),
            Case::Shrink => at_most(r, cpu, us, 2.0),
            Case::GrowNewest => at_most(r, cpu, us, 1.0),
            Case::Grow | Case::Full => {}
        }
        at_most(r, "peak RSS MiB", r.rss_mib, 64.0);
        for o in rows.iter().filter(|o| o.build != this && o.same_row(r)) {
            at_most(r, &format!("memcached CPU s / {}'s", o.build), r.mc_cpu / o.mc_cpu.max(1e-9), 1.0);
            if r.case.mode() == "unthrottled" {
                at_most(r, &format!("wall s / {}'s", o.build), r.wall / o.wall.max(1e-9), 1.0);
            }
        }
    }
    out
}

/// The ratios and verdicts as text.
pub fn summary(rows: &[Figures], this: &str) -> String {
    let mut out = String::from("\nthis build / the other, same run (medians):\n");
    let ratios = ratios(rows, this);
    if ratios.is_empty() {
        out.push_str("  (no other build ran)\n");
    }
    for r in ratios {
        out.push_str(&format!(
            "  {}: CPU per key landed {:.3}, peak RSS {:.3}, wall {:.3}, memcached CPU {:.3}\n",
            r.row, r.cpu_per_landed, r.rss, r.wall, r.mc_cpu
        ));
    }
    out.push_str("\nissue 32's targets, this build:\n");
    for v in verdicts(rows, this) {
        let met = if v.met { "met" } else { "NOT MET" };
        out.push_str(&format!("  {:<7} {}: {} (measured {:.3})\n", met, v.row, v.target, v.value));
    }
    out
}
