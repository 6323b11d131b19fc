//! The scale rows (issues 19 and 32): Astaire's CPU, memory and time
//! against the cluster's size, as production runs the copy. Clusters of
//! 1 M, 4 M and 10 M keys at 100 B (`BENCH_SCALE_KEYS`): a 3→4 unthrottled
//! and at the default 5% CPU at each size; at the largest also the daemon's
//! 3→4, a full resync and a 4→3; and a 1 M 3→4 unthrottled on the newest
//! memcached (`BENCH_NEWEST`). With `BENCH_AB` the other build runs every
//! row but the full resync beside this one, alternating, up to
//! `BENCH_AB_MAX_KEYS` (no cap by default); each row is the median of
//! `BENCH_REPEATS` runs. `targets` turns the rows into issue 32's table.

use super::common::{stat, Memcached};
use super::measure::*;
use super::report::{csv_field, register_font};
use super::scenarios::*;
use super::targets::{self, Case, Figures};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured row of one build: the median of its runs.
pub struct ScaleRow {
    /// Keys in the cluster.
    pub cluster: u64,
    pub case: Case,
    /// The memcached's version.
    pub memcached: String,
    pub build: String,
    /// Keys the sources' dumps named.
    pub dumped: u64,
    pub row: Row,
}

impl ScaleRow {
    fn figures(&self) -> Figures {
        let r = &self.row;
        Figures {
            cluster: self.cluster,
            case: self.case,
            memcached: self.memcached.clone(),
            build: self.build.clone(),
            landed: r.keys,
            dumped: self.dumped,
            wall: r.wall,
            walls: r.wall_range(),
            cpu: r.cpu.unwrap_or(0.0),
            mc_cpu: r.mc_cpu.map_or(0.0, |(crawl, work)| crawl + work),
            rss_mib: r.rss_mib.unwrap_or(0.0),
            spilled: r.spilled,
        }
    }
}

/// memcached's `-m` for a node holding two thirds of `keys` 100 B items
/// (about 200 bytes each in their slab class), with room to spare.
fn memory_for(keys: u64) -> String {
    (keys * 330 / 1_000_000).max(1024).to_string()
}

/// The builds a row runs: this one, and the other up to `ab_max` keys.
type Builds = Vec<(PathBuf, String)>;

/// Runs `run` for each build, alternating, `repeats()` times; one median
/// row per build. `run` gets the binary and its label and returns the row
/// and the keys the sources' dumps named.
fn alternate(
    rows: &mut Vec<ScaleRow>,
    builds: &Builds,
    (cluster, case, memcached): (u64, Case, &str),
    mut run: impl FnMut(&Path, &str) -> (Row, u64),
) {
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); builds.len()];
    let mut dumped = vec![0; builds.len()];
    for _ in 0..repeats() {
        for (b, (binary, label)) in builds.iter().enumerate() {
            eprintln!("   {cluster} keys {} {}: {label}", case.resize(), case.mode());
            let (row, d) = run(binary, label);
            runs[b].push(row);
            dumped[b] = d;
        }
    }
    for (((_, label), runs), dumped) in builds.iter().zip(runs).zip(dumped) {
        let row = median(runs);
        rows.push(ScaleRow { cluster, case, memcached: memcached.to_owned(), build: label.clone(), dumped, row });
    }
}

/// Keys the sources' dumps named: the report's count when it gives one,
/// else every item on the sources it names (a dump names them all; the
/// copy leaves the sources as they were, so counting after it is the same).
fn dumped(row: &Row, sources: &[String]) -> u64 {
    let sources = if row.sources.is_empty() { sources } else { &row.sources };
    row.dumped.unwrap_or_else(|| sources.iter().map(|s| stat(s, "curr_items")).sum())
}

/// The pids of `nodes` but the one named `local`: the sources.
fn source_pids(nodes: &[Memcached], local: &str) -> Vec<u32> {
    nodes.iter().filter(|n| n.name() != local).map(Memcached::pid).collect()
}

/// `astaire resync` as one run of a row: the row and the keys dumped.
fn resync(binary: &Path, label: &str, settings: &Path, local: &str, extra: &[&str], nodes: &[Memcached]) -> (Row, u64) {
    let sources: Vec<String> = nodes.iter().map(Memcached::name).filter(|n| n != local).collect();
    let row = astaire(binary, "", label, settings, local, extra, None, &source_pids(nodes, local));
    let dumped = dumped(&row, &sources);
    (row, dumped)
}

pub fn scale_rows(
    binary: &str,
    newest: Option<&str>,
    sizes: &[u64],
    other: Option<(&Path, &str)>,
    ab_max: u64,
) -> Vec<ScaleRow> {
    let mut rows = Vec::new();
    let this = bin("astaire");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let builds_for = |keys: u64| -> Builds {
        let mut builds = vec![(this.clone(), "this build".to_owned())];
        if let Some((path, label)) = other.filter(|_| keys <= ab_max) {
            builds.push((path.to_owned(), label.to_owned()));
        }
        builds
    };
    for &keys in sizes {
        let memory = memory_for(keys);
        let VersionCluster { mut nodes, names, resize, version, .. } = version_cluster(binary, &memory, keys, 100);
        let builds = builds_for(keys);
        // The joining node starts empty for every run.
        for (case, extra) in [(Case::Grow, &[][..]), (Case::GrowThrottled, &["--cpu-limit", "5"][..])] {
            alternate(&mut rows, &builds, (keys, case, &version), |binary, label| {
                nodes[3].restart_empty();
                resync(binary, label, &resize, &names[3], extra, &nodes)
            });
        }
        if keys != largest {
            continue;
        }
        // The daemon's own 3→4 at its default 5%.
        alternate(&mut rows, &builds, (keys, Case::GrowDaemon, &version), |binary, _| {
            nodes[3].restart_empty();
            let row = daemon(binary, &names[3], &resize, &source_pids(&nodes, &names[3]));
            let dumped = dumped(&row, &names[..3]);
            (row, dumped)
        });
        // A full resync, this build once: the first node lost everything
        // and pulls the two thirds of the keys it holds.
        nodes[0].restart_empty();
        let stable = out_dir().join("cs-stable");
        let (row, dumped) = resync(&this, "this build", &stable, &names[0], &["--full"], &nodes[..3]);
        rows.push(ScaleRow {
            cluster: keys,
            case: Case::Full,
            memcached: version.clone(),
            build: "this build".into(),
            dumped,
            row,
        });
        // A 4→3: the same keys loaded into four nodes, the busiest of the
        // three that stay pulling what it newly owns. It is emptied before
        // each run: it held none of the vbuckets it pulls, so every run
        // lands the same keys.
        for n in nodes.iter_mut() {
            n.restart_empty();
        }
        let (stable4, shrink) = (out_dir().join("cs-stable4"), out_dir().join("cs-resize43"));
        write_settings(&stable4, &names, None);
        write_settings(&shrink, &names, Some(&names[..3]));
        load(&stable4, keys, 100);
        let view = astaire::view::View::new(&astaire::view::ClusterSettings::load(&shrink).unwrap());
        let local = (0..3).max_by_key(|i| view.work_list(&names[*i], false).vbuckets.len()).unwrap();
        alternate(&mut rows, &builds, (keys, Case::Shrink, &version), |binary, label| {
            nodes[local].restart_empty();
            resync(binary, label, &shrink, &names[local], &[], &nodes)
        });
    }
    // The smallest 3→4, unthrottled, on the newest memcached.
    if let Some(newest) = newest {
        let keys = sizes.iter().copied().min().unwrap_or(0);
        let VersionCluster { mut nodes, names, resize, version, .. } =
            version_cluster(newest, &memory_for(keys), keys, 100);
        alternate(&mut rows, &builds_for(keys), (keys, Case::GrowNewest, &version), |binary, label| {
            nodes[3].restart_empty();
            resync(binary, label, &resize, &names[3], &[], &nodes)
        });
    }
    rows
}

/// `astaire daemon` (`binary`) at its defaults doing the resize in
/// `settings`: started, waited for with `wait-sync`, its peak RSS and CPU
/// read from /proc before it is stopped, the keys landed and bytes spilled
/// from its "resync completed" line, the memcached CPU of `sources`.
fn daemon(binary: &Path, local: &str, settings: &Path, sources: &[u32]) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, log) = (dir.path().join("control"), dir.path().join("daemon.log"));
    let mc_before = memcached_cpu(sources);
    let start = Instant::now();
    let mut child = Command::new(binary)
        .args(["--log-level", "3", "daemon", "--local-name", local, "--cluster-settings"])
        .arg(settings)
        .arg("--control-socket")
        .arg(&control)
        .args(["--config", "/dev/null", "--nice", "0", "--pd-log", "none"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("daemon log"))
        .spawn()
        .expect("astaire daemon");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(3600);
    let done = loop {
        let out = Command::new(binary)
            .args(["wait-sync", "--timeout", "60", "--control-socket"])
            .arg(&control)
            .output()
            .expect("astaire wait-sync");
        match out.status.code() {
            Some(0) => break true,
            _ if Instant::now() > deadline => break false,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let mc_after = memcached_cpu(sources);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpu = memcached_cpu(&[pid]); // any process's threads, by the same /proc reading
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(done, "the daemon never reported in sync: {text}");
    let completed = text.lines().rfind(|l| l.contains("resync completed")).unwrap_or("");
    let field = |name: &str| -> Option<u64> {
        let at = completed.find(&format!("{name}="))? + name.len() + 1;
        completed[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Row {
        tool: "astaire daemon".into(),
        keys: field("landed").unwrap_or(0),
        wall,
        cpu: Some(cpu.0 + cpu.1),
        rss_mib: Some(hwm_kib / 1024.0),
        mc_cpu: Some((mc_after.0 - mc_before.0, mc_after.1 - mc_before.1)),
        spilled: field("spilled_bytes"),
        ..Row::default()
    }
}

/// Prints and writes `target/bench/scale.txt`, `scale.csv` and `scale.png`.
pub fn scale_report(rows: &[ScaleRow]) {
    let figures: Vec<Figures> = rows.iter().map(ScaleRow::figures).collect();
    let mut out = targets::table(&figures);
    out.push_str(&format!(
        "\nevery row but the full resync: the median of {} runs by wall time, alternating between the builds \
         (runs s is their range).\nµs/dump and µs/landed: Astaire's CPU (user + sys) per key the sources' dumps \
         named and per key landed; mc s: the sources' memcached CPU (crawlers + workers) during the run.\n\
         RSS is the peak (GNU time's maximum resident set; the daemon's VmHWM); spill MB is what the copy wrote \
         to its spill file.\n",
        repeats()
    ));
    out.push_str(&targets::summary(&figures, "this build"));
    print!("{out}");
    let dir = out_dir();
    std::fs::write(dir.join("scale.txt"), &out).unwrap();
    std::fs::write(dir.join("scale.csv"), targets::csv(&figures, csv_field)).unwrap();
    if let Err(e) = scale_chart(rows, &dir.join("scale.png")) {
        eprintln!("chart not drawn: {e}");
    }
    eprintln!("written: target/bench/scale.txt, scale.csv, scale.png");
}

/// Peak RSS and wall time against the cluster's keys, one line per build
/// and mode of the 3→4, with the 100 MiB bound and the 64 MiB aim.
fn scale_chart(rows: &[ScaleRow], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    register_font()?;
    let root = BitMapBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    // One line per build and mode of the 3→4s on the cluster's memcached.
    let line = |s: &ScaleRow| matches!(s.case, Case::Grow | Case::GrowThrottled);
    let lines: Vec<(String, &str)> =
        rows.iter().filter(|s| line(s)).map(|s| (s.build.clone(), s.case.mode())).fold(Vec::new(), |mut v, l| {
            if !v.contains(&l) {
                v.push(l)
            }
            v
        });
    let max_keys = rows.iter().map(|s| s.cluster).max().unwrap_or(1) as f64 / 1e6;
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(214, 39, 40), RGBColor(148, 103, 189)];
    type Value = fn(&Row) -> f64;
    let (rss, wall): (Value, Value) = (|r| r.rss_mib.unwrap_or(0.0), |r| r.wall);
    let panels = [(&left, "Peak RSS, 3→4 resize", "MiB", rss), (&right, "Wall time, 3→4 resize", "s", wall)];
    for (p, (area, caption, unit, value)) in panels.into_iter().enumerate() {
        let top = rows.iter().filter(|s| p == 0 || line(s)).map(|s| value(&s.row)).fold(0.0, f64::max);
        let top = if p == 0 { top.max(110.0) } else { top } * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..max_keys * 1.05, 0.0..top)?;
        chart.configure_mesh().x_desc("keys in the cluster (millions)").y_desc(unit).draw()?;
        for (i, (build, mode)) in lines.iter().enumerate() {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|s| line(s) && &s.build == build && s.case.mode() == *mode)
                .map(|s| (s.cluster as f64 / 1e6, value(&s.row)))
                .collect();
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(format!("{build}, {mode}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?;
        }
        if p == 0 {
            for (limit, label, shade) in [(100.0, "bound 100 MiB", 0.8), (64.0, "aim 64 MiB", 0.35)] {
                let style = BLACK.mix(shade);
                chart
                    .draw_series(LineSeries::new([(0.0, limit), (max_keys * 1.05, limit)], style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
            // The rows measured at the largest size only, as marks.
            let others: Vec<(f64, f64)> =
                rows.iter().filter(|s| !line(s)).map(|s| (s.cluster as f64 / 1e6, value(&s.row))).collect();
            chart
                .draw_series(others.iter().map(|&(x, y)| Cross::new((x, y), 6, BLACK.stroke_width(2))))?
                .label("daemon 3→4, full resync, 4→3, newest memcached")
                .legend(|(x, y)| Cross::new((x + 9, y), 5, BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
