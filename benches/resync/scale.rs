//! The scale rows (issue 19): peak memory and time against the cluster's
//! size. Clusters of 1 M, 4 M and 10 M keys at 100 B (`BENCH_SCALE_KEYS`),
//! a 3→4 unthrottled and at the default 5% CPU; at the largest size also a
//! full resync, the daemon's 3→4 and a 4→3. With `BENCH_AB` the other build
//! runs the same 3→4s, alternating, up to `BENCH_AB_MAX_KEYS` (4 M).

use super::common::Memcached;
use super::measure::*;
use super::report::{csv_field, register_font};
use super::scenarios::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured copy of the scale rows.
pub struct ScaleRow {
    /// Keys in the cluster.
    pub cluster: u64,
    pub resize: &'static str,
    pub build: String,
    pub mode: &'static str,
    pub row: Row,
}

/// memcached's `-m` for a node holding two thirds of `keys` 100 B items
/// (about 200 bytes each in their slab class), with room to spare.
fn memory_for(keys: u64) -> String {
    (keys * 330 / 1_000_000).max(1024).to_string()
}

pub fn scale_rows(binary: &str, sizes: &[u64], other: Option<(&Path, &str)>, ab_max: u64) -> Vec<ScaleRow> {
    let mut rows = Vec::new();
    let this = bin("astaire");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    for &keys in sizes {
        let memory = memory_for(keys);
        let VersionCluster { mut nodes, names, resize, .. } = version_cluster(binary, &memory, keys, 100);
        let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
        let scenario = format!("{keys} keys × 100 B");
        let mut builds = vec![(this.clone(), "this build".to_owned())];
        if let Some((path, label)) = other.filter(|_| keys <= ab_max) {
            builds.push((path.to_owned(), label.to_owned()));
        }
        // Unthrottled, alternating between the builds, each into a fresh
        // target: the medians.
        let mut runs: Vec<Vec<Row>> = vec![Vec::new(); builds.len()];
        for _ in 0..repeats() {
            for (b, (binary, label)) in builds.iter().enumerate() {
                nodes[3].restart_empty();
                runs[b].push(astaire(binary, &scenario, label, &resize, &names[3], &[], None, &pids));
            }
        }
        for ((_, label), runs) in builds.iter().zip(runs) {
            let row = median(runs);
            rows.push(ScaleRow { cluster: keys, resize: "3→4", build: label.clone(), mode: "unthrottled", row });
        }
        // At the default 5% CPU, once each.
        for (binary, label) in &builds {
            nodes[3].restart_empty();
            let row = astaire(binary, &scenario, label, &resize, &names[3], &["--cpu-limit", "5"], None, &pids);
            rows.push(ScaleRow { cluster: keys, resize: "3→4", build: label.clone(), mode: "5% CPU", row });
        }
        if keys != largest {
            continue;
        }
        // The daemon's own 3→4 at its default 5%.
        nodes[3].restart_empty();
        let row = daemon(&scenario, &names[3], &resize);
        rows.push(ScaleRow {
            cluster: keys, resize: "3→4 (daemon)", build: "this build".into(), mode: "5% CPU", row
        });
        // A full resync: the first node lost everything and pulls the two
        // thirds of the keys it holds.
        nodes[0].restart_empty();
        let stable = out_dir().join("cs-stable");
        let row = astaire(&this, &scenario, "this build", &stable, &names[0], &["--full"], None, &pids);
        rows.push(ScaleRow { cluster: keys, resize: "full", build: "this build".into(), mode: "unthrottled", row });
        // A 4→3: the same keys loaded into four nodes, the busiest of the
        // three that stay pulling what it newly owns.
        for n in nodes.iter_mut() {
            n.restart_empty();
        }
        let (stable4, shrink) = (out_dir().join("cs-stable4"), out_dir().join("cs-resize43"));
        write_settings(&stable4, &names, None);
        write_settings(&shrink, &names, Some(&names[..3]));
        load(&stable4, keys, 100);
        let view = astaire::view::View::new(&astaire::view::ClusterSettings::load(&shrink).unwrap());
        let local = (0..3).max_by_key(|i| view.work_list(&names[*i], false).vbuckets.len()).unwrap();
        let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
        let row = astaire(&this, &scenario, "this build", &shrink, &names[local], &[], None, &pids);
        rows.push(ScaleRow { cluster: keys, resize: "4→3", build: "this build".into(), mode: "unthrottled", row });
    }
    rows
}

/// `astaire daemon` at its defaults doing the resize in `settings`: started,
/// waited for with `wait-sync`, its peak RSS and CPU read from /proc before
/// it is stopped, the bytes it spilled from its "resync completed" line.
fn daemon(scenario: &str, local: &str, settings: &Path) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, log) = (dir.path().join("control"), dir.path().join("daemon.log"));
    let start = Instant::now();
    let mut child = Command::new(bin("astaire"))
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
        let out = Command::new(bin("astaire"))
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
        scenario: scenario.into(),
        tool: "astaire daemon".into(),
        keys: field("landed").unwrap_or(0),
        wall,
        cpu: Some(cpu.0 + cpu.1),
        rss_mib: Some(hwm_kib / 1024.0),
        spilled: field("spilled_bytes"),
        ..Row::default()
    }
}

/// Prints and writes `target/bench/scale.txt`, `scale.csv` and `scale.png`.
pub fn scale_report(rows: &[ScaleRow]) {
    let mut out = format!(
        "{:>9} {:<13} {:<16} {:<12} {:>9} {:>8} {:>11} {:>7} {:>8} {:>8} {:>11}\n",
        "cluster", "resize", "build", "mode", "landed", "wall s", "runs s", "CPU s", "µs/key", "RSS MiB", "spilled MB"
    );
    let mut csv =
        String::from("cluster_keys,resize,build,mode,landed,wall_s,cpu_s,us_per_key,peak_rss_mib,spilled_bytes\n");
    for s in rows {
        let r = &s.row;
        let o = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:>9} {:<13} {:<16} {:<12} {:>9} {:>8.2} {:>11} {:>7} {:>8} {:>8.1} {:>11}\n",
            s.cluster,
            s.resize,
            s.build,
            s.mode,
            r.keys,
            r.wall,
            r.wall_range(),
            o(r.cpu),
            o(r.us_per_key()),
            r.rss_mib.unwrap_or(0.0),
            r.spilled.map(|b| format!("{:.1}", b as f64 / 1e6)).unwrap_or_else(|| "-".into()),
        ));
        csv.push_str(&format!(
            "{},{},{},{},{},{:.3},{:.3},{:.3},{:.1},{}\n",
            s.cluster,
            s.resize,
            csv_field(&s.build),
            s.mode,
            r.keys,
            r.wall,
            r.cpu.unwrap_or(0.0),
            r.us_per_key().unwrap_or(0.0),
            r.rss_mib.unwrap_or(0.0),
            r.spilled.unwrap_or(0)
        ));
    }
    out.push_str(&format!(
        "\nunthrottled rows: the median of {} runs alternating between the builds (runs s is their range); \
         the others are measured once.\nRSS is the peak (GNU time's maximum resident set; the daemon's VmHWM); \
         spilled is what the copy wrote to its spill file.\n",
        repeats()
    ));
    // The A/B: this build's unthrottled wall and CPU against the other's.
    for s in rows.iter().filter(|s| s.build != "this build" && s.mode == "unthrottled") {
        if let Some(t) = rows.iter().find(|t| t.cluster == s.cluster && t.build == "this build" && t.mode == s.mode) {
            out.push_str(&format!(
                "{} keys unthrottled, this build / {}: wall {:.3}, CPU {:.3}, peak RSS {:.3}\n",
                s.cluster,
                s.build,
                t.row.wall / s.row.wall,
                t.row.cpu.unwrap_or(0.0) / s.row.cpu.unwrap_or(1.0),
                t.row.rss_mib.unwrap_or(0.0) / s.row.rss_mib.unwrap_or(1.0)
            ));
        }
    }
    print!("{out}");
    let dir = out_dir();
    std::fs::write(dir.join("scale.txt"), &out).unwrap();
    std::fs::write(dir.join("scale.csv"), &csv).unwrap();
    if let Err(e) = scale_chart(rows, &dir.join("scale.png")) {
        eprintln!("chart not drawn: {e}");
    }
}

/// Peak RSS and wall time against the cluster's keys, one line per build
/// and mode of the 3→4, with the 100 MiB bound and the 64 MiB aim.
fn scale_chart(rows: &[ScaleRow], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    register_font()?;
    let root = BitMapBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let lines: Vec<(String, &str)> =
        rows.iter().filter(|s| s.resize == "3→4").map(|s| (s.build.clone(), s.mode)).fold(Vec::new(), |mut v, l| {
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
        let top = rows.iter().filter(|s| p == 0 || s.resize == "3→4").map(|s| value(&s.row)).fold(0.0, f64::max);
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
                .filter(|s| s.resize == "3→4" && &s.build == build && s.mode == *mode)
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
                rows.iter().filter(|s| s.resize != "3→4").map(|s| (s.cluster as f64 / 1e6, value(&s.row))).collect();
            chart
                .draw_series(others.iter().map(|&(x, y)| Cross::new((x, y), 6, BLACK.stroke_width(2))))?
                .label("daemon 3→4, full resync, 4→3")
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
