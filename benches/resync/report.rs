//! The results: the table on stdout, CSV and a PNG chart in target/bench/.

use super::measure::*;
use std::path::Path;

/// Prints the table and ratios; writes `target/bench/NAME.txt`, `.csv` and
/// the chart (`resync.png` for the main run, `NAME.png` otherwise).
pub fn report(rows: &[Row], name: &str) {
    let mut out = String::new();
    let p =
        |p: Option<Probe>| p.map(|p| format!("{:.2}/{:.2}/{:.2}", p.p50, p.p99, p.max)).unwrap_or_else(|| "-".into());
    let o = |v: Option<f64>, prec: usize| v.map(|v| format!("{v:.prec$}")).unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "{:<28} {:<30} {:>9} {:>8} {:>11} {:>10} {:>8} {:>7} {:>8} {:>8} {:>17} {:>17}\n",
        "scenario",
        "tool",
        "keys",
        "wall s",
        "runs s",
        "keys/s",
        "MB/s",
        "CPU s",
        "µs/key",
        "RSS MiB",
        "src p50/p99/max",
        "dst p50/p99/max"
    ));
    for r in rows {
        let keyed = r.keys > 0;
        out.push_str(&format!(
            "{:<28} {:<30} {:>9} {:>8.2} {:>11} {:>10} {:>8} {:>7} {:>8} {:>8} {:>17} {:>17}\n",
            r.scenario,
            r.tool,
            if keyed { r.keys.to_string() } else { "-".into() },
            r.wall,
            r.wall_range(),
            if keyed { format!("{:.0}", r.keys_per_s()) } else { "-".into() },
            if keyed { format!("{:.1}", r.mb_per_s()) } else { "-".into() },
            o(r.cpu, 2),
            o(r.us_per_key(), 2),
            o(r.rss_mib, 1),
            p(r.probe_src),
            p(r.probe_dst)
        ));
    }
    out.push_str(&format!(
        "\nwall s is the median of the runs (astaire alternating with the ingest ceiling, {} each); runs s is their range\n",
        repeats()
    ));
    out.push_str("\nratios (same run, medians):\n");
    let find = |scenario: &str, tool: &str| rows.iter().find(|r| r.scenario == scenario && r.tool == tool);
    let scenarios: Vec<&String> = rows.iter().map(|r| &r.scenario).fold(Vec::new(), |mut v, s| {
        if !v.contains(&s) {
            v.push(s)
        }
        v
    });
    for s in scenarios {
        let Some(a) = find(s, "astaire") else { continue };
        if let Some(t) = find(s, "memcached-tool dump | nc") {
            out.push_str(&format!(
                "  {s}: astaire / memcached-tool keys/s = {:.1}× (walls {} s vs {} s)\n",
                a.keys_per_s() / t.keys_per_s(),
                a.wall_range(),
                t.wall_range()
            ));
        }
        if let Some(c) = find(s, "ingest ceiling (ms ME q | nc)") {
            out.push_str(&format!(
                "  {s}: astaire / ingest ceiling keys/s = {:.2}× (walls {} s vs {} s)\n",
                a.keys_per_s() / c.keys_per_s(),
                a.wall_range(),
                c.wall_range()
            ));
        }
        for command in ["metadump", "mgdump"] {
            if let Some(f) = find(s, &format!("listing floor (3 {command}s)")) {
                out.push_str(&format!(
                    "  {s}: astaire / listing floor ({command}) keys/s = {:.2}× (the floor only lists the keys)\n",
                    a.keys_per_s() / f.keys_per_s()
                ));
            }
        }
        for other in ["astaire --dump-command metadump", "astaire --conflict add-only"] {
            if let Some((us, theirs)) = a.us_per_key().zip(find(s, other).and_then(Row::us_per_key)) {
                out.push_str(&format!("  {s}: CPU per key landed: astaire {us:.2} µs, {other} {theirs:.2} µs\n"));
            }
        }
        if let Some(us) = a.us_per_key() {
            out.push_str(&format!(
                "  {s}: astaire CPU per key landed = {us:.2} µs; peak RSS {:.1} MiB\n",
                a.rss_mib.unwrap_or(0.0)
            ));
        }
        if let Some(((crawl, work), own)) = a.mc_cpu.zip(a.cpu) {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
            let total = crawl + work + own;
            out.push_str(&format!(
                "  {s}: machine CPU during the resync: memcached crawlers {crawl:.2} s + memcached workers {work:.2} s + astaire {own:.2} s = {total:.2} s in {:.2} s wall ({:.0}% of {cores} cores)\n",
                a.wall,
                100.0 * total / (a.wall * cores)
            ));
        }
        if let Some(p) = find(s, "astaire, probed").and_then(|p| p.probe_src.zip(p.probe_dst)) {
            out.push_str(&format!(
                "  {s}: unthrottled: probe p99 source {:.2} ms, target {:.2} ms\n",
                p.0.p99, p.1.p99
            ));
        }
        if let Some(t) = find(s, "astaire --cpu-limit 5") {
            out.push_str(&format!(
                "  {s}: throttled at 5%: probe p99 source {:.2} ms, target {:.2} ms\n",
                t.probe_src.unwrap_or_default().p99,
                t.probe_dst.unwrap_or_default().p99
            ));
        }
    }
    print!("{out}");
    std::fs::write(out_dir().join(format!("{name}.txt")), &out).unwrap();

    let mut csv = String::from("scenario,tool,keys,bytes,wall_s,keys_per_s,mb_per_s,cpu_s,us_cpu_per_key,peak_rss_mib,src_p50_ms,src_p99_ms,src_max_ms,dst_p50_ms,dst_p99_ms,dst_max_ms,memcached_crawler_cpu_s,memcached_worker_cpu_s,runs,wall_min_s,wall_max_s\n");
    for r in rows {
        let pr = |p: Option<Probe>| {
            p.map(|p| format!("{:.3},{:.3},{:.3}", p.p50, p.p99, p.max)).unwrap_or_else(|| ",,".into())
        };
        csv.push_str(&format!(
            "{},{},{},{},{:.3},{:.0},{:.2},{},{},{},{},{},{},{},{},{:.3},{:.3}\n",
            csv_field(&r.scenario),
            csv_field(&r.tool),
            r.keys,
            r.bytes,
            r.wall,
            if r.keys > 0 { r.keys_per_s() } else { 0.0 },
            if r.keys > 0 { r.mb_per_s() } else { 0.0 },
            o(r.cpu, 3),
            o(r.us_per_key(), 3),
            o(r.rss_mib, 1),
            pr(r.probe_src),
            pr(r.probe_dst),
            o(r.mc_cpu.map(|c| c.0), 3),
            o(r.mc_cpu.map(|c| c.1), 3),
            r.walls.len().max(1),
            r.walls.first().unwrap_or(&r.wall),
            r.walls.last().unwrap_or(&r.wall)
        ));
    }
    std::fs::write(out_dir().join(format!("{name}.csv")), csv).unwrap();
    let png = if name == "results" { "resync.png".to_owned() } else { format!("{name}.png") };
    if let Err(e) = chart(rows, &out_dir().join(&png)) {
        eprintln!("chart not drawn: {e}");
    }
    eprintln!("written: target/bench/{name}.txt, {name}.csv, {png}");
}

/// A CSV field, quoted when it holds a comma or a quote (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// DejaVu Sans as the charts' "sans-serif" (plotters draws no text without
/// a registered font).
pub fn register_font() -> Result<(), Box<dyn std::error::Error>> {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, font).map_err(|_| "font")?;
    Ok(())
}

/// Keys per second per tool and scenario, log scale.
pub fn chart(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    register_font()?;
    let tools = [
        "astaire",
        "astaire --cpu-limit 5",
        "memcached-tool dump | nc",
        "ingest ceiling (ms ME q | nc)",
        "listing floor (3 metadumps)",
    ];
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(174, 199, 232),
        RGBColor(214, 39, 40),
        RGBColor(120, 120, 120),
        RGBColor(44, 44, 44),
    ];
    let scenarios: Vec<String> =
        rows.iter().filter(|r| r.scenario.contains("3→4")).map(|r| r.scenario.clone()).fold(Vec::new(), |mut v, s| {
            if !v.contains(&s) {
                v.push(s)
            }
            v
        });
    let root = BitMapBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows.iter().filter(|r| r.keys > 0).map(Row::keys_per_s).fold(1.0, f64::max) * 12.0; // headroom for the legend
    let mut chart = ChartBuilder::on(&root)
        .caption("Keys moved per second, 3→4 resize (log scale, same run)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..scenarios.len() as f64, (1000.0..max).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Ticks every half unit; only the group centres (i + 0.5) get a label.
        .x_labels(scenarios.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                scenarios.get(i as usize).map(|s| s.replace(" (3→4)", "")).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("keys/s")
        .draw()?;
    let width = 0.8 / tools.len() as f64;
    for (t, tool) in tools.iter().enumerate() {
        let bars = scenarios.iter().enumerate().filter_map(|(i, s)| {
            let r = rows.iter().find(|r| &r.scenario == s && r.tool == *tool)?;
            let x0 = i as f64 + 0.1 + t as f64 * width;
            Some(Rectangle::new([(x0, 1000.0), (x0 + width * 0.9, r.keys_per_s())], colors[t].filled()))
        });
        chart
            .draw_series(bars)?
            .label(*tool)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colors[t].filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
