//! The soak: `astaire daemon` on five memcached nodes through repeated
//! resizes (3→4→3→5→3 …) under a client load, for `SOAK_MINUTES` (30).
//!
//! Run with `scripts/soak.sh` (not in CI). Each resize is a real operator
//! sequence: every node's cluster_settings gets `new_servers`, SIGHUP, wait
//! for every daemon (`wait-sync`), verify the joining and staying nodes with
//! the client paused, then the stable file, SIGHUP, wait again. Nodes that
//! leave are flushed (decommissioned). After each resize it samples every
//! daemon: RSS, open file descriptors, threads, tokio tasks, and whether
//! its counters are back to 0 (idle, no progress). Writes
//! `target/soak/samples.csv` and prints a summary: growth after warm-up,
//! verify failures, resizes done.
//!
//! Node 0's daemon is also an SNMP citizen for the whole run: an AgentX
//! subagent of a private snmpd (its four scalars are read with `snmpget`
//! after every resize and must be 0) and INFORMs to a private snmptrapd
//! (at the end: raises received, the last INFORM received a clear).

#[path = "../tests/common/mod.rs"]
mod common; // the tests' private memcached, snmpd and snmptrapd processes

use common::{snmpd, snmptrapd, Memcached};

use astaire::view::{vbucket, ClusterSettings, View};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NODES: usize = 5;
const KEYS: u64 = 100_000;
/// astaireBucketsNeedingResync and the three other scalars, as `-On` names them.
const SCALARS: [&str; 4] = [
    ".1.2.826.0.1.1578918.9.9.1.0",
    ".1.2.826.0.1.1578918.9.9.2.0",
    ".1.2.826.0.1.1578918.9.9.3.0",
    ".1.2.826.0.1.1578918.9.9.4.0",
];

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release").join(name)
}

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
    std::fs::create_dir_all(&d).expect("target/soak");
    d
}

struct Node {
    memcached: Memcached,
    daemon: Option<Child>,
    settings: PathBuf,
    control: PathBuf,
}

impl Node {
    fn start(i: usize) -> Node {
        let memcached = Memcached::start_with(&["-m", "512"]);
        let d = dir();
        Node {
            memcached,
            daemon: None,
            settings: d.join(format!("cluster_settings.{i}")),
            control: d.join(format!("control.{i}")),
        }
    }

    fn name(&self) -> String {
        self.memcached.name()
    }

    /// `snmp`: the AgentX master and the INFORM target, or none.
    fn start_daemon(&mut self, i: usize, snmp: Option<(&str, &str)>) {
        let log = std::fs::File::create(dir().join(format!("daemon.{i}.log"))).expect("log");
        let mut cmd = Command::new(bin("astaire"));
        cmd.args(["--log-level", "3", "daemon", "--local-name", &self.name(), "--cluster-settings"])
            .arg(&self.settings)
            .arg("--control-socket")
            .arg(&self.control)
            .args(["--config", "/dev/null", "--cpu-limit", "0", "--nice", "0"]);
        match snmp {
            Some((agentx, informs)) => cmd.args(["--agentx", agentx, "--snmp-ip", informs]),
            None => cmd.arg("--no-agentx"),
        };
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().expect("astaire daemon");
        self.daemon = Some(child);
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().map(Child::id).unwrap_or(0)
    }

    fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(bin("astaire"))
            .args(["status", "--json", "--control-socket"])
            .arg(&self.control)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn wait_sync(&self) -> i32 {
        let out = Command::new(bin("astaire"))
            .args(["wait-sync", "--timeout", "600", "--control-socket"])
            .arg(&self.control)
            .output()
            .expect("wait-sync");
        out.status.code().unwrap_or(-1)
    }

    /// Deletes the keys of vbuckets this node does not own in `view`. In
    /// Clearwater they expire within their TTL; the soak writes without one,
    /// so this stands in for expiry. Without it a key deleted while a node
    /// did not own its vbucket reappears when the node owns it again, which
    /// no resync can see (the node never heard of the delete).
    fn drop_orphans(&self, view: &View) -> usize {
        use astaire::memcached::dump::{decode_dump_key, parse_dump_line, DumpLine, DumpMode};
        let mut s = TcpStream::connect(self.name()).expect("connect");
        s.write_all(DumpMode::Metadump.command()).unwrap();
        let (mut buf, mut chunk, mut orphans) = (Vec::new(), vec![0u8; 1 << 16], Vec::new());
        'dump: loop {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "dump ended early");
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while let Ok(Some((line, len))) = parse_dump_line(&buf[at..], DumpMode::Metadump) {
                match line {
                    DumpLine::Key { key, encoding, .. } => {
                        let mut raw = Vec::new();
                        decode_dump_key(&buf[at..][key], encoding, &mut raw).unwrap();
                        let owned = view.target()[vbucket(&raw) as usize].contains(&self.name());
                        if !owned && !raw.starts_with(b"astaire") {
                            orphans.push(raw);
                        }
                    }
                    DumpLine::End => break 'dump,
                    DumpLine::Started => {}
                    DumpLine::Busy => panic!("crawler busy"),
                }
                at += len;
            }
            buf.drain(..at);
        }
        drop(s);
        let mut c = TcpStream::connect(self.name()).expect("connect");
        for key in &orphans {
            c.write_all(format!("md {} q\r\n", String::from_utf8_lossy(key)).as_bytes()).unwrap();
        }
        c.write_all(b"mn\r\n").unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"MN\r\n") {
            let n = c.read(&mut chunk).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        orphans.len()
    }

    fn flush(&self) {
        let mut s = TcpStream::connect(self.name()).expect("connect");
        s.write_all(b"flush_all\r\n").unwrap();
        let mut buf = [0u8; 16];
        let _ = s.read(&mut buf);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn settings_text(names: &[String], current: usize, new: Option<usize>) -> String {
    let mut s = format!("servers={}\n", names[..current].join(","));
    if let Some(n) = new {
        s.push_str(&format!("new_servers={}\n", names[..n].join(",")));
    }
    s
}

/// Writes every node's file (atomically, as an operator's tooling would),
/// signals every daemon and waits for each; returns the wait-sync codes.
fn apply(nodes: &[Node], text: &str) -> Vec<i32> {
    for n in nodes {
        let tmp = n.settings.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &n.settings).unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(n.pid() as i32), nix::sys::signal::Signal::SIGHUP).unwrap();
    }
    nodes.iter().map(Node::wait_sync).collect()
}

fn proc_sample(pid: u32) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
    (rss_kib, fds, threads)
}

/// Clients: writes (flags = write time in ms, as Clearwater's) and deletes
/// to the union of old and new replicas, old first: one op per ms at most,
/// about 140/s on the 2-core machine, paused while nodes are verified.
fn client(view: Arc<Mutex<View>>, stop: Arc<AtomicBool>, paused: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let mut conns: std::collections::HashMap<String, TcpStream> = Default::default();
    let mut i: u64 = 0;
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = astaire::testdata::key(i % KEYS);
        let servers = view.lock().unwrap().write_set(vbucket(&key));
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u32;
        let request = if deletes() && i.is_multiple_of(10) {
            format!("md {}\r\n", String::from_utf8_lossy(&key)).into_bytes()
        } else {
            let value = format!("soak-{stamp}-{:0>180}", i % 1000);
            format!("ms {} {} F{stamp} T0\r\n{value}\r\n", String::from_utf8_lossy(&key), value.len()).into_bytes()
        };
        for s in servers {
            let conn = conns.entry(s.clone()).or_insert_with(|| TcpStream::connect(&s).expect("client connect"));
            conn.write_all(&request).unwrap();
            let _ = conn.read(&mut buf).unwrap();
        }
        ops.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `SOAK_DELETES=1`: clients also delete (one op in ten). A key deleted
/// while a node does not own its vbucket survives there and comes back when
/// the node owns it again (no TTL in the soak; Clearwater's registrations
/// expire): `drop_orphans` stands in for expiry then.
fn deletes() -> bool {
    std::env::var("SOAK_DELETES").is_ok_and(|v| !matches!(v.trim(), "" | "0"))
}

fn main() {
    let minutes: f64 = std::env::var("SOAK_MINUTES").ok().and_then(|s| s.parse().ok()).unwrap_or(30.0);
    assert!(bin("astaire").exists(), "build the release binaries first (scripts/soak.sh does)");
    let mut nodes: Vec<Node> = (0..NODES).map(Node::start).collect();
    let names: Vec<String> = nodes.iter().map(|n| n.name()).collect();
    let stable3 = settings_text(&names, 3, None);
    for n in &nodes {
        std::fs::write(&n.settings, &stable3).unwrap();
    }
    let loaded = Command::new(bin("astaire-loadgen"))
        .args(["--cluster-settings"])
        .arg(&nodes[0].settings)
        .args(["--keys", &KEYS.to_string(), "--value-size", "200"])
        .status()
        .expect("loadgen");
    assert!(loaded.success());
    let snmpd = snmpd::Snmpd::start();
    let trapd = snmptrapd::Snmptrapd::start(snmptrapd::free_udp_port(), "clearwater");
    let informs = format!("127.0.0.1:{}", trapd.port);
    for (i, n) in nodes.iter_mut().enumerate() {
        n.start_daemon(i, (i == 0).then_some((snmpd.agentx_address().as_str(), informs.as_str())));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(nodes.iter().all(|n| n.wait_sync() == 0), "daemons settle");

    let view = Arc::new(Mutex::new(View::new(&ClusterSettings::parse(&stable3, Path::new("soak")).unwrap())));
    let (stop, paused, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::default());
    let load = {
        let (view, stop, paused, ops) = (view.clone(), stop.clone(), paused.clone(), Arc::clone(&ops));
        std::thread::spawn(move || client(view, stop, paused, ops))
    };

    let mut csv = String::from("elapsed_s,resize,node,rss_kib,fds,threads,tasks,state,counters_zero,verify_exit\n");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    let sequence = [4usize, 3, 5, 3];
    let (mut current, mut resizes, mut failures) = (3usize, 0usize, Vec::new());
    let mut first: Option<Vec<(u64, usize, usize, u64)>> = None;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        let next = sequence[resizes % sequence.len()];
        let during = settings_text(&names, current, Some(next));
        *view.lock().unwrap() = View::new(&ClusterSettings::parse(&during, Path::new("soak")).unwrap());
        let t = Instant::now();
        let codes = apply(&nodes, &during);
        let resize_s = t.elapsed().as_secs_f64();
        if codes.iter().any(|c| *c != 0) {
            failures.push(format!("resize {resizes} {current}→{next}: wait-sync codes {codes:?}"));
        }
        // Verify every node of the new view with the clients paused.
        paused.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let mut verify = Vec::new();
        for n in &nodes[..next] {
            let out = Command::new(bin("astaire"))
                .args(["verify", "--log-level", "1", "--local-name", &n.name(), "--cluster-settings"])
                .arg(&n.settings)
                .output()
                .expect("verify");
            let code = out.status.code().unwrap_or(-1);
            if code != 0 {
                failures.push(format!(
                    "resize {resizes} {current}→{next}: verify {} exit {code}: {}",
                    n.name(),
                    String::from_utf8_lossy(&out.stdout).lines().take(5).collect::<Vec<_>>().join(" | ")
                ));
            }
            verify.push(code);
        }
        paused.store(false, Ordering::Relaxed);
        let stable = settings_text(&names, next, None);
        *view.lock().unwrap() = View::new(&ClusterSettings::parse(&stable, Path::new("soak")).unwrap());
        let codes = apply(&nodes, &stable);
        if codes.iter().any(|c| *c != 0) {
            failures.push(format!("resize {resizes}: stable wait-sync codes {codes:?}"));
        }
        for n in &nodes[next..] {
            n.flush(); // decommissioned
        }
        let orphans = if deletes() {
            let settled = View::new(&ClusterSettings::parse(&stable, Path::new("soak")).unwrap());
            paused.store(true, Ordering::Relaxed);
            let n: usize = nodes[..next].iter().map(|n| n.drop_orphans(&settled)).sum();
            paused.store(false, Ordering::Relaxed);
            n
        } else {
            0
        };
        current = next;
        resizes += 1;

        let elapsed = started.elapsed().as_secs_f64();
        let mut sample = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let (rss, fds, threads) = proc_sample(n.pid());
            let status = n.status().unwrap_or_default();
            let tasks = status["tasks"].as_u64().unwrap_or(0);
            let state = status["state"].as_str().unwrap_or("?").to_owned();
            let mut zero = status["progress"].is_null() && status["running"].is_null();
            if !zero {
                failures.push(format!("resize {resizes}: node {i} counters not back to 0: {status}"));
            }
            if i == 0 {
                let got = snmpd.get(&SCALARS);
                let zeros = got.lines().filter(|l| l.ends_with("= Gauge32: 0")).count();
                if zeros != SCALARS.len() {
                    zero = false;
                    failures.push(format!("resize {resizes}: node 0 over SNMP: {}", got.replace('\n', " | ")));
                }
            }
            let v = verify.get(i).map(|c| c.to_string()).unwrap_or_default();
            csv.push_str(&format!("{elapsed:.1},{resizes},{i},{rss},{fds},{threads},{tasks},{state},{zero},{v}\n"));
            sample.push((rss, fds, threads, tasks));
        }
        std::fs::write(dir().join("samples.csv"), &csv).unwrap();
        println!(
            "{elapsed:>7.0} s  resize {resizes:>3} →{next}  {resize_s:>5.1} s  orphans dropped {orphans:>6}  client ops {:>8}  RSS KiB {:?}  fds {:?}  tasks {:?}",
            ops.load(Ordering::Relaxed),
            sample.iter().map(|s| s.0).collect::<Vec<_>>(),
            sample.iter().map(|s| s.1).collect::<Vec<_>>(),
            sample.iter().map(|s| s.3).collect::<Vec<_>>(),
        );
        // Warm-up: the first full cycle of the sequence.
        if resizes == sequence.len() {
            first = Some(sample.clone());
        }
        last = sample;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();

    // Every raise cleared; the last INFORM a clear (delivery is
    // asynchronous: give the last one a moment).
    let tally = || {
        let got = trapd.received();
        let trap = |r: &snmptrapd::Received| r.1.get(1).map(|v| v.1.clone()).unwrap_or_default();
        let raises = got.iter().filter(|r| trap(r).ends_with(".118.0.2")).count();
        let clears = got.iter().filter(|r| trap(r).ends_with(".118.0.3")).count();
        let last = match got.last().map(trap) {
            Some(t) if t.ends_with(".118.0.3") => "clear",
            Some(_) => "raise",
            None => "none",
        };
        (raises, clears, last)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (raises, clears, last_inform) = loop {
        let t = tally();
        if t.2 != "raise" || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Node 0 gains vbuckets at every 3→4, so it raised the alarm; a raise
    // resent under load is logged twice, so the counts need not match.
    if raises == 0 || last_inform != "clear" {
        failures.push(format!("INFORMs: {raises} raises, {clears} clears, the last one a {last_inform}"));
    }

    println!("\nsoak: {resizes} resizes in {:.1} min, {} client ops", minutes, ops.load(Ordering::Relaxed));
    println!("node 0 over SNMP: scalars read 0 after each resize; INFORMs: {raises} raises, {clears} clears, last a {last_inform}");
    if let Some(first) = first {
        println!("per daemon, after warm-up → end: RSS KiB, fds, threads, tasks");
        for (i, (a, b)) in first.iter().zip(&last).enumerate() {
            println!("  node {i}: {} → {}, {} → {}, {} → {}, {} → {}", a.0, b.0, a.1, b.1, a.2, b.2, a.3, b.3);
        }
    }
    if failures.is_empty() {
        println!("every resize verified; counters back to 0 after each");
    } else {
        println!("{} problems:", failures.len());
        failures.iter().for_each(|f| println!("  {f}"));
    }
    println!("samples: target/soak/samples.csv");
    let ok = failures.is_empty();
    drop(nodes); // stops the daemons and memcached (exit would skip it)
    drop(snmpd);
    drop(trapd);
    std::process::exit(if ok { 0 } else { 1 });
}
