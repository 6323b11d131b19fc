//! The scenarios: clusters loaded with Clearwater-style data, and each
//! tool's copy of the same resize (Astaire, memcached-tool, the ceilings and
//! the listing floor).

use super::common::Memcached;
use super::measure::*;
use astaire::testdata;
use astaire::view::{vbucket, ClusterSettings, View};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";

pub fn write_settings(path: &Path, servers: &[String], new: Option<&[String]>) {
    let mut text = format!("servers={}\n", servers.join(","));
    if let Some(n) = new {
        text.push_str(&format!("new_servers={}\n", n.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

pub fn load(settings: &Path, keys: u64, size: usize) {
    load_with(settings, keys, size, &[]);
}

/// `load` with more loadgen options (`--placement ketama`).
pub fn load_with(settings: &Path, keys: u64, size: usize, extra: &[&str]) {
    let m = measure(
        Command::new(bin("astaire-loadgen"))
            .arg("--cluster-settings")
            .arg(settings)
            .args(["--keys", &keys.to_string(), "--value-size", &size.to_string()])
            .args(extra),
    );
    assert_eq!(m.code, 0, "loadgen failed");
}

/// `binary resync` (this build's is `bin("astaire")`) for the node `local`,
/// measured, with probes on the ports given.
#[allow(clippy::too_many_arguments)]
pub fn astaire(
    binary: &Path,
    scenario: &str,
    tool: &str,
    settings: &Path,
    local: &str,
    extra: &[&str],
    probes: ProbePorts,
    memcached: &[u32],
) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let probes = probes.map(|(src, dst)| (probe(src, stop.clone()), probe(dst, stop.clone())));
    std::thread::sleep(Duration::from_millis(200));
    let mc_before = memcached_cpu(memcached);
    let m = measure(
        Command::new(binary)
            .args(["resync", "--json", "--quiet", "--local-name", local, "--cluster-settings"])
            .arg(settings)
            .args(extra),
    );
    let mc_after = memcached_cpu(memcached);
    stop.store(true, Ordering::Relaxed);
    let probes = probes.map(|(ps, pd)| (summarize(ps.join().unwrap()), summarize(pd.join().unwrap())));
    assert_eq!(m.code, 0, "astaire resync failed: {}", m.stdout);
    let report: serde_json::Value = serde_json::from_str(m.stdout.trim()).expect("JSON report");
    let landed = report["counts"]["landed"].as_u64().unwrap_or(0) + report["counts"]["replaced"].as_u64().unwrap_or(0);
    let sources = report["sources"].as_array().cloned().unwrap_or_default();
    Row {
        scenario: scenario.into(),
        tool: tool.into(),
        keys: landed,
        bytes: report["counts"]["bytes"].as_u64().unwrap_or(0), // read from the sources
        wall: m.wall,
        cpu: Some(m.cpu),
        rss_mib: Some(m.rss_kib as f64 / 1024.0),
        probe_src: probes.map(|p| p.0),
        probe_dst: probes.map(|p| p.1),
        mc_cpu: Some((mc_after.0 - mc_before.0, mc_after.1 - mc_before.1)),
        walls: Vec::new(),
        spilled: report["spilled_bytes"].as_u64(),
        dumped: sources.iter().map(|s| s["dumped"].as_u64()).sum::<Option<u64>>().filter(|n| *n > 0),
        sources: sources.iter().filter_map(|s| Some(s["source"].as_str()?.to_owned())).collect(),
    }
}

/// Baseline probe latencies with nothing else running.
pub fn baseline(scenario: &str, src: u16, dst: u16) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let (ps, pd) = (probe(src, stop.clone()), probe(dst, stop.clone()));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    Row {
        scenario: scenario.into(),
        tool: "probe baseline".into(),
        wall: 2.0,
        probe_src: Some(summarize(ps.join().unwrap())),
        probe_dst: Some(summarize(pd.join().unwrap())),
        ..Row::default()
    }
}

/// `memcached-tool <src> dump | nc <dst>`: keys moved per second.
pub fn memcached_tool(scenario: &str, src: &Memcached, dst: &Memcached, keys_on_src: u64, size: usize) -> Row {
    let m = measure(Command::new("bash").arg("-c").arg(format!(
        "{MEMCACHED_TOOL} {} dump 2>/dev/null | nc -N 127.0.0.1 {} > /dev/null",
        src.name(),
        dst.port
    )));
    Row {
        scenario: scenario.into(),
        tool: "memcached-tool dump | nc".into(),
        keys: keys_on_src,
        bytes: keys_on_src * size as u64,
        wall: m.wall,
        ..Row::default()
    }
}

/// Writes a prebuilt request stream to a file for [`replay`].
pub fn stream_file(name: &str, stream: &[u8]) -> PathBuf {
    let file = out_dir().join(name);
    std::fs::write(&file, stream).unwrap();
    file
}

/// Replays a prebuilt request stream with `nc` and times it.
pub fn replay(scenario: &str, tool: &str, file: &Path, port: u16, keys: u64, bytes: u64) -> Row {
    let m = measure(Command::new("bash").arg("-c").arg(format!("nc -N 127.0.0.1 {port} < {}", file.display())));
    assert!(
        m.stdout.ends_with("MN\r\n"),
        "{tool}: the stream did not complete: {:?}",
        &m.stdout[..m.stdout.len().min(200)]
    );
    Row { scenario: scenario.into(), tool: tool.into(), keys, bytes, wall: m.wall, ..Row::default() }
}

/// What any metadump-based copy must do before anything else: list every
/// key of the three sources (concurrently, as a resync does), copying
/// nothing. `keys` is what the resync lands, so keys/s is an upper bound on
/// its rate.
pub fn listing_floor(scenario: &str, sources: &[u16], keys: u64) -> Row {
    listing_floor_with(scenario, "metadump", sources, keys)
}

/// [`listing_floor`] with `lru_crawler <command>` (`metadump` or `mgdump`).
pub fn listing_floor_with(scenario: &str, command: &'static str, sources: &[u16], keys: u64) -> Row {
    use std::io::Read;
    let end: &'static [u8] = if command == "mgdump" { b"\nEN\r\n" } else { b"END\r\n" };
    let start = Instant::now();
    let dumps: Vec<_> = sources
        .iter()
        .map(|port| {
            let port = *port;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.write_all(format!("lru_crawler {command} hash\r\n").as_bytes()).unwrap();
                let (mut buf, mut tail, mut lines) = (vec![0u8; 1 << 20], Vec::new(), 0u64);
                loop {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "dump of {port} ended early");
                    lines += memchr_count(&buf[..n]);
                    tail.extend_from_slice(&buf[..n]);
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                    if tail.ends_with(end) {
                        return lines;
                    }
                }
            })
        })
        .collect();
    let lines: u64 = dumps.into_iter().map(|d| d.join().unwrap()).sum();
    let wall = start.elapsed().as_secs_f64();
    eprintln!("   listing floor: {lines} dump lines from {} sources in {wall:.2} s", sources.len());
    Row { scenario: scenario.into(), tool: format!("listing floor (3 {command}s)"), keys, wall, ..Row::default() }
}

pub fn memchr_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

pub fn size_name(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// One size, 3→4: returns its rows.
pub fn three_to_four(keys: u64, size: usize) -> Vec<Row> {
    let scenario = format!("{} keys × {} (3→4)", keys, size_name(size));
    eprintln!("== {scenario}");
    let mut nodes: Vec<Memcached> = (0..4).map(|_| Memcached::start_with(&["-m", "2048"])).collect();
    three_to_four_on(&mut nodes, &scenario, keys, size)
}

/// Loads `keys` values of `size` bytes into the first three of `nodes`;
/// returns the nodes' names and the 3→4 `cluster_settings`.
pub fn load_three_of_four(nodes: &[Memcached], keys: u64, size: usize) -> (Vec<String>, PathBuf) {
    let names: Vec<String> = nodes.iter().map(Memcached::name).collect();
    let dir = out_dir();
    let (stable, resize) = (dir.join("cs-stable"), dir.join("cs-resize"));
    write_settings(&stable, &names[..3], None);
    write_settings(&resize, &names[..3], Some(&names));
    load(&stable, keys, size);
    (names, resize)
}

/// The 3→4 rows on `nodes` (three loaded, the fourth joining).
pub fn three_to_four_on(nodes: &mut [Memcached], scenario: &str, keys: u64, size: usize) -> Vec<Row> {
    let scenario = scenario.to_owned();
    let (names, resize) = load_three_of_four(nodes, keys, size);

    let view = View::new(&ClusterSettings::load(&resize).unwrap());
    let work = view.work_list(&names[3], false);
    let landing: Vec<u64> = (0..keys).filter(|i| work.vbuckets.contains_key(&vbucket(&testdata::key(*i)))).collect();
    let (src, dst) = (nodes[0].port, nodes[3].port);
    let mut rows = vec![baseline(&scenario, src, dst)];
    let pids = |nodes: &[Memcached]| nodes.iter().map(Memcached::pid).collect::<Vec<u32>>();
    let (now, stamp) = (testdata::now(), testdata::stamp());
    let mut stream = Vec::with_capacity(landing.len() * (size + 60));
    for i in &landing {
        testdata::push_ms_quiet(&mut stream, *i, size, stamp, now, true);
    }
    stream.extend_from_slice(b"mn\r\n");
    let ingest = stream_file("ingest.bin", &stream);
    drop(stream);
    let bytes = landing.len() as u64 * size as u64;
    let reps = repeats();

    // The speed: Astaire unthrottled and alone, alternating with the ingest
    // ceiling, each into a fresh target.
    let (mut ours, mut ceiling) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        if rep > 0 {
            nodes[3].restart_empty();
        }
        ours.push(astaire(&bin("astaire"), &scenario, "astaire", &resize, &names[3], &[], None, &pids(nodes)));
        nodes[3].restart_empty();
        let tool = "ingest ceiling (ms ME q | nc)";
        ceiling.push(replay(&scenario, tool, &ingest, dst, landing.len() as u64, bytes));
    }
    rows.push(median(ours));
    let ceiling = median(ceiling);
    // The latency clients see: with the probes running, unthrottled and
    // throttled.
    nodes[3].restart_empty();
    rows.push(astaire(
        &bin("astaire"),
        &scenario,
        "astaire, probed",
        &resize,
        &names[3],
        &[],
        Some((src, dst)),
        &pids(nodes),
    ));
    nodes[3].restart_empty();
    let throttled = ["--cpu-limit", "5"];
    let probed = Some((src, dst));
    rows.push(astaire(
        &bin("astaire"),
        &scenario,
        "astaire --cpu-limit 5",
        &resize,
        &names[3],
        &throttled,
        probed,
        &pids(nodes),
    ));

    // The other peers.
    let on_src =
        (0..keys).filter(|i| view.current[vbucket(&testdata::key(*i)) as usize].contains(&names[0])).count() as u64;
    let tool = (0..reps)
        .map(|_| {
            nodes[3].restart_empty();
            memcached_tool(&scenario, &nodes[0], &nodes[3], on_src, size)
        })
        .collect();
    rows.push(median(tool));
    rows.push(ceiling);
    let from_src: Vec<u64> = landing
        .iter()
        .copied()
        .filter(|i| view.current[vbucket(&testdata::key(*i)) as usize].contains(&names[0]))
        .collect();
    let mut mg = Vec::new();
    for i in &from_src {
        mg.extend_from_slice(b"mg ");
        mg.extend_from_slice(&testdata::key(*i));
        mg.extend_from_slice(b" f t v q u\r\n");
    }
    mg.extend_from_slice(b"mn\r\n");
    let mg = stream_file("mg.bin", &mg);
    let n = from_src.len() as u64;
    let tool = "source mg ceiling (mg | nc)";
    rows.push(median((0..reps).map(|_| replay(&scenario, tool, &mg, src, n, n * size as u64)).collect()));
    let sources = [nodes[0].port, nodes[1].port, nodes[2].port];
    rows.push(median((0..reps).map(|_| listing_floor(&scenario, &sources, landing.len() as u64)).collect()));
    rows
}

/// Four memcached of `binary` (each `-m memory`), three of them loaded
/// with `keys` values of `size` bytes: the 3→4 resize of a version's rows.
pub struct VersionCluster {
    pub nodes: Vec<Memcached>,
    pub version: String,
    pub scenario: String,
    pub names: Vec<String>,
    pub resize: PathBuf,
}

pub fn version_cluster(binary: &str, memory: &str, keys: u64, size: usize) -> VersionCluster {
    let nodes: Vec<Memcached> = (0..4).map(|_| Memcached::start_binary(binary, &["-m", memory])).collect();
    let version = nodes[0].version();
    let scenario = format!("memcached {version}: {keys} keys × {} (3→4)", size_name(size));
    eprintln!("== {scenario}");
    let (names, resize) = load_three_of_four(&nodes, keys, size);
    VersionCluster { nodes, version, scenario, names, resize }
}

/// One memcached version: the same 3→4 at 100 B, with Astaire's default
/// dump command and the alternatives it did not choose, the listing floors
/// of both dump commands and the ingest ceiling. `binary` is that version's
/// memcached (`BENCH_VERSIONS`, from `scripts/memcached-versions.sh`).
pub fn version_rows(binary: &str, keys: u64) -> Vec<Row> {
    let VersionCluster { mut nodes, version, scenario, names, resize } = version_cluster(binary, "2048", keys, 100);
    let view = View::new(&ClusterSettings::load(&resize).unwrap());
    let work = view.work_list(&names[3], false);
    let landing: Vec<u64> = (0..keys).filter(|i| work.vbuckets.contains_key(&vbucket(&testdata::key(*i)))).collect();
    let (now, stamp) = (testdata::now(), testdata::stamp());
    let mut stream = Vec::with_capacity(landing.len() * 160);
    for i in &landing {
        testdata::push_ms_quiet(&mut stream, *i, 100, stamp, now, true);
    }
    stream.extend_from_slice(b"mn\r\n");
    let ingest = stream_file("ingest.bin", &stream);
    drop(stream);
    let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
    let has_mgdump =
        astaire::memcached::dump::DumpMode::for_version(&version) == astaire::memcached::dump::DumpMode::Mgdump;
    // Astaire as it runs, and the choices it did not make: the other dump
    // command (metadump gives flags from 1.6.24, which could replace the
    // second replica's `mg f` check), and add-only, which makes no such
    // check at all: the most that check could ever save.
    let mut variants: Vec<(&str, Vec<&str>)> = vec![("astaire", vec![])];
    if has_mgdump {
        variants.push(("astaire --dump-command metadump", vec!["--dump-command", "metadump"]));
    }
    variants.push(("astaire --conflict add-only", vec!["--conflict", "add-only"]));
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); variants.len() + 1];
    for _ in 0..repeats() {
        for (v, (tool, args)) in variants.iter().enumerate() {
            nodes[3].restart_empty();
            runs[v].push(astaire(&bin("astaire"), &scenario, tool, &resize, &names[3], args, None, &pids));
        }
        nodes[3].restart_empty();
        let bytes = landing.len() as u64 * 100;
        runs[variants.len()].push(replay(
            &scenario,
            "ingest ceiling (ms ME q | nc)",
            &ingest,
            nodes[3].port,
            landing.len() as u64,
            bytes,
        ));
    }
    let mut rows: Vec<Row> = runs.into_iter().map(median).collect();
    let sources = [nodes[0].port, nodes[1].port, nodes[2].port];
    let n = landing.len() as u64;
    rows.push(median((0..repeats()).map(|_| listing_floor_with(&scenario, "metadump", &sources, n)).collect()));
    if has_mgdump {
        rows.push(median((0..repeats()).map(|_| listing_floor_with(&scenario, "mgdump", &sources, n)).collect()));
    }
    rows
}

/// 4→3 at one size: a remaining node pulls what it newly owns.
/// A 3→4 with large values: the copy's peak memory must not follow the
/// sizes (each batch holds at most `batch_bytes` and one value).
pub fn large_value_rows(binary: &str, keys: u64, size: usize) -> Vec<Row> {
    let VersionCluster { mut nodes, scenario, names, resize, .. } = version_cluster(binary, "3000", keys, size);
    let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
    let runs = (0..repeats())
        .map(|_| {
            nodes[3].restart_empty();
            astaire(&bin("astaire"), &scenario, "astaire", &resize, &names[3], &[], None, &pids)
        })
        .collect();
    vec![median(runs)]
}

pub fn four_to_three(keys: u64, size: usize) -> Vec<Row> {
    let scenario = format!("{} keys × {} (4→3)", keys, size_name(size));
    eprintln!("== {scenario}");
    let nodes: Vec<Memcached> = (0..4).map(|_| Memcached::start_with(&["-m", "2048"])).collect();
    let names: Vec<String> = nodes.iter().map(Memcached::name).collect();
    let dir = out_dir();
    let (stable, resize) = (dir.join("cs-stable4"), dir.join("cs-resize43"));
    write_settings(&stable, &names, None);
    write_settings(&resize, &names, Some(&names[..3]));
    load(&stable, keys, size);
    let view = View::new(&ClusterSettings::load(&resize).unwrap());
    let local = (0..3).max_by_key(|i| view.work_list(&names[*i], false).vbuckets.len()).unwrap();
    let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
    vec![astaire(&bin("astaire"), &scenario, "astaire", &resize, &names[local], &[], None, &pids)]
}

/// This build against another (`BENCH_AB`, built from an older revision by
/// `scripts/bench.sh ab REV`) on the same data in one run: the same 3→4 at
/// 100 B, the two alternating into a fresh target, `repeats()` runs each.
pub fn ab_rows(other: &Path, label: &str, keys: u64) -> Vec<Row> {
    let binary = std::env::var("BENCH_MEMCACHED").unwrap_or_else(|_| "memcached".into());
    let VersionCluster { mut nodes, scenario, names, resize, .. } = version_cluster(&binary, "2048", keys, 100);
    let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
    let builds =
        [(bin("astaire"), "astaire (this build)".to_owned()), (other.to_owned(), format!("astaire ({label})"))];
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); builds.len()];
    for _ in 0..repeats() {
        for (b, (binary, tool)) in builds.iter().enumerate() {
            nodes[3].restart_empty();
            runs[b].push(astaire(binary, &scenario, tool, &resize, &names[3], &[], None, &pids));
        }
    }
    // CPU per key, run by run and as medians: the figure the A/B is for.
    let per_key = |r: &Row| r.cpu.unwrap_or(0.0) * 1e6 / r.keys.max(1) as f64;
    let mut medians = Vec::new();
    for ((_, tool), rows) in builds.iter().zip(&runs) {
        let mut each: Vec<f64> = rows.iter().map(per_key).collect();
        let listed: Vec<String> = each.iter().map(|v| format!("{v:.2}")).collect();
        each.sort_by(f64::total_cmp);
        let mid = each[each.len() / 2];
        println!("{tool}: CPU µs per key landed, run by run: {}; median {mid:.2}", listed.join(" "));
        medians.push(mid);
    }
    println!("this build / {label}: {:.3} (CPU per key, medians)", medians[0] / medians[1]);
    runs.into_iter().map(median).collect()
}
