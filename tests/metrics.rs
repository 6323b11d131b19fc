//! Issue 31: the Prometheus face of the counters, the health endpoints and
//! the settings watch, with the real parts: real memcached, the real
//! daemon, Debian's real Prometheus scraping it and `promtool` judging a
//! scrape, a real snmpd with `snmpwalk` reading the same atomics, and
//! hostile HTTP clients of our own (what a library client would refuse to
//! send).

mod common;

use common::daemon::Daemon;
use common::http::{self, KeepAlive};
use common::prometheus::Prometheus;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A directory laid out as the kubelet mounts a ConfigMap: the file is a
/// link through `..data`, itself a link to a timestamped directory; an
/// update writes a new directory and renames a new `..data` link over the
/// old one (atomically), then removes the old directory.
struct ConfigMap {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMap {
    fn new(dir: &Path, text: &str) -> ConfigMap {
        std::fs::create_dir_all(dir).unwrap();
        let mut cm = ConfigMap { dir: dir.to_owned(), generation: 0 };
        let first = cm.write_generation(text);
        std::os::unix::fs::symlink(&first, dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/cluster_settings", dir.join("cluster_settings")).unwrap();
        cm
    }

    fn write_generation(&mut self, text: &str) -> String {
        self.generation += 1;
        let name = format!("..2026_12_06_00_00_0{}.{}", self.generation, 1000 + self.generation);
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        std::fs::write(self.dir.join(&name).join("cluster_settings"), text).unwrap();
        name
    }

    fn path(&self) -> PathBuf {
        self.dir.join("cluster_settings")
    }

    /// The kubelet's update.
    fn swap(&mut self, text: &str) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let new = self.write_generation(text);
        std::os::unix::fs::symlink(&new, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }
}

fn metrics_address() -> String {
    format!("127.0.0.1:{}", free_port_pub())
}

/// `/readyz` and `/metrics` looked at every 50 ms on a thread: what
/// `/readyz` answered (status, first words) in order, and a Prometheus-format
/// scrape taken while a resync ran.
struct Prober {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, String)>>>,
    mid_resync: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(addr: &str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
        let mid_resync: Arc<Mutex<Option<String>>> = Arc::default();
        let (s, seen2, mid2, addr) = (Arc::clone(&stop), Arc::clone(&seen), Arc::clone(&mid_resync), addr.to_owned());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
                if let Ok(r) = http::get(&addr, "/readyz", "") {
                    let resyncing = r.body.contains("resyncing");
                    let mut seen = seen2.lock().unwrap();
                    if seen.last().is_none_or(|(status, body)| (*status, body.as_str()) != (r.status, r.body.trim())) {
                        seen.push((r.status, r.body.trim().to_owned()));
                    }
                    drop(seen);
                    if resyncing && mid2.lock().unwrap().is_none() {
                        if let Ok(m) = http::get(&addr, "/metrics", "") {
                            if http::sample(&m.body, "astaire_resync_running") == Some(1.0) {
                                *mid2.lock().unwrap() = Some(m.body);
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Prober { stop, seen, mid_resync, thread: Some(thread) }
    }

    fn finish(mut self) -> (Vec<(u16, String)>, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            join_bounded(t, Duration::from_secs(20), "the /readyz prober");
        }
        (self.seen.lock().unwrap().clone(), self.mid_resync.lock().unwrap().clone())
    }
}

/// `promtool check metrics` on `text`: its exit code and what it said.
fn promtool_check_metrics(text: &str) -> (Option<i32>, String) {
    let out = run_bounded_with_input(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
        Duration::from_secs(30),
        "promtool check metrics",
    );
    (out.status.code(), text_of(&out))
}

fn text_of(o: &std::process::Output) -> String {
    common::text(o)
}

/// The sidecar's life in a pod and the proof with a real Prometheus: the
/// new node's daemon reads a ConfigMap-style directory listing the old
/// three servers (not a member: not ready); the ConfigMap is updated to
/// the 3 → 4 resize by a `..data` swap; the daemon notices without a
/// signal, resyncs (503 "resyncing"), and becomes ready (200). Prometheus
/// scraped it every second throughout; its query API shows the gauge
/// rising and coming back to 0, the succeeded resync counted and readiness
/// going 0 then 1. A scrape taken mid-resync passes `promtool check
/// metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_a_configmap_resize_from_3_to_4_and_readiness_follows() {
    let r = Resize::three_to_four();
    let items = filled_items("reg\\\\sip:prom", 3000, 1, &[b'v'; 1000]);
    load(&view(&r.stable), &items).await;
    let mut cm = ConfigMap::new(&r.cluster.dir.path().join("config"), &std::fs::read_to_string(&r.stable).unwrap());
    let addr = metrics_address();
    // Slowed (about 1.5 MB to pull at 400 kB/s) so the resync spans scrapes.
    let d = Daemon::start(
        r.new_node(),
        &cm.path(),
        &["--no-agentx", "--metrics-listen", &addr, "--bandwidth-limit", "400000", "--cpu-limit", "0"],
    );
    let before = http::get(&addr, "/readyz", "").unwrap();
    assert_eq!((before.status, before.body.as_str()), (503, "not ready: not-member (servers=3 new_servers=0)\n"));
    assert_eq!(http::get(&addr, "/healthz", "").unwrap().status, 200);
    let prom = Prometheus::start(&addr);
    wait_until(
        Duration::from_secs(20),
        "Prometheus scraping the daemon (up == 1)",
        || prom.value("up{job=\"astaire\"}") == Some(1.0),
        || format!("{}\n{}", prom.log(), d.log()),
    );

    let prober = Prober::start(&addr);
    let swapped = Instant::now();
    cm.swap(&std::fs::read_to_string(&r.resize).unwrap());
    wait_until(
        Duration::from_secs(90),
        "/readyz answering 200 after the ConfigMap swap",
        || http::get(&addr, "/readyz", "").is_ok_and(|r| r.status == 200),
        || d.log(),
    );
    let took = swapped.elapsed();
    // Two more scrapes of the final state.
    std::thread::sleep(Duration::from_millis(2500));
    let (seen, mid) = prober.finish();
    eprintln!("/readyz after the swap (ready {:.1} s after it): {seen:?}", took.as_secs_f64());
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert!(seen.iter().any(|(s, b)| *s == 503 && b.contains("resyncing")), "{seen:?}");
    let first_200 = statuses.iter().position(|s| *s == 200).expect("ready at the end");
    assert!(statuses[first_200..].iter().all(|s| *s == 200), "ready stays ready: {seen:?}");
    assert_eq!(seen.last().unwrap().1, "ready: in sync with the cluster settings (servers=3 new_servers=4)");
    assert_eq!(d.log_lines("changed on disk").len(), 1, "{}", d.log());

    let queries = [
        "max_over_time(astaire_buckets_needing_resync[10m])",
        "astaire_buckets_needing_resync",
        "astaire_resyncs_total{result=\"succeeded\"}",
        "min_over_time(astaire_ready[10m])",
        "astaire_ready",
        "max_over_time(astaire_resync_running[10m])",
        "astaire_keys_copied_total",
        "astaire_settings_file_changes_total",
        "count_over_time(astaire_resync_running[10m]) - sum_over_time(astaire_resync_running[10m])",
        "sum_over_time(astaire_resync_running[10m])",
    ];
    let got: Vec<(&str, Option<f64>)> = queries.iter().map(|q| (*q, prom.value(q))).collect();
    for (q, v) in &got {
        eprintln!("prometheus: {q} = {v:?}");
    }
    let v = |i: usize| got[i].1.unwrap_or_else(|| panic!("no value for {}: {}", got[i].0, prom.log()));
    assert!(v(0) > 0.0, "astaire_buckets_needing_resync rose above 0");
    assert_eq!(v(1), 0.0, "and came back to 0");
    assert_eq!(v(2), 1.0, "the resync counted as succeeded");
    assert_eq!((v(3), v(4)), (0.0, 1.0), "not ready, then ready");
    assert_eq!(v(5), 1.0, "a scrape saw the resync running");
    assert!(v(6) > 1000.0, "keys copied: {}", v(6));
    assert_eq!(v(7), 1.0, "one change noticed");

    let mid = mid.expect("a scrape taken while the resync ran");
    let (code, said) = promtool_check_metrics(&mid);
    eprintln!(
        "promtool check metrics (mid-resync scrape, {} lines): exit {code:?}, said {said:?}",
        mid.lines().count()
    );
    assert_eq!((code, said.as_str()), (Some(0), ""), "promtool check metrics");
    assert!(mid.contains("astaire_source_buckets_needing_resync{source=\"127.0.0.1:"), "source rows mid-resync");
    assert!(stat(r.new_node(), "curr_items") > 1000);
}

/// The editor's pattern (write a temporary file, rename it over the
/// settings) and a file written in place and left half-written, both with
/// no signal: the half-written file gets the error a bad SIGHUP gets,
/// naming the file and line, and nothing is written; the rename then
/// resyncs.
#[tokio::test(flavor = "multi_thread")]
async fn a_half_written_file_changes_nothing_and_an_editors_rename_reloads() {
    let r = Resize::three_to_four();
    let items = plain_items("reg\\\\sip:watch", 1500, 1);
    load(&view(&r.stable), &items).await;
    let live = r.cluster.dir.path().join("cluster_settings_watch");
    std::fs::copy(&r.stable, &live).unwrap();
    let addr = metrics_address();
    let d = Daemon::start(r.new_node(), &live, &["--no-agentx", "--metrics-listen", &addr]);
    assert_eq!(d.wait_sync(10).0, Some(0));
    let (sets, keys) = (stat(r.new_node(), "cmd_set"), stat(r.new_node(), "curr_items"));

    // Cut off in the middle of the last server: "127.0." has no port.
    let stable = std::fs::read_to_string(&r.stable).unwrap();
    let resize = std::fs::read_to_string(&r.resize).unwrap();
    let cut = resize.rfind(':').unwrap() - 3;
    std::fs::write(&live, &resize[..cut]).unwrap();
    wait_until(
        Duration::from_secs(15),
        "the half-written file read and refused",
        || d.status().is_some_and(|s| s["completed"].as_u64() >= Some(1)),
        || d.log(),
    );
    let status = d.status().unwrap();
    let line = stable.lines().count() + 1;
    let error = status["last"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("{}:{line}:", live.display())), "names file and line: {status}");
    assert_eq!(status["last"]["success"], false);
    assert_eq!((stat(r.new_node(), "cmd_set"), stat(r.new_node(), "curr_items")), (sets, keys), "nothing written");
    let metrics = http::get(&addr, "/metrics", "").unwrap().body;
    assert_eq!(http::sample(&metrics, "astaire_resyncs_total{result=\"bad_settings\"}"), Some(1.0), "{metrics}");
    let readyz = http::get(&addr, "/readyz", "").unwrap();
    assert_eq!(readyz.body, "not ready: not-member (servers=3 new_servers=0)\n", "a refused file changes nothing");

    let temp = r.cluster.dir.path().join(".cluster_settings_watch.swp");
    std::fs::write(&temp, &resize).unwrap();
    std::fs::rename(&temp, &live).unwrap();
    wait_until(
        Duration::from_secs(60),
        "the renamed file resynced (/readyz 200)",
        || http::get(&addr, "/readyz", "").is_ok_and(|r| r.status == 200),
        || d.log(),
    );
    assert_eq!(d.status().unwrap()["last"]["success"], true);
    assert!(stat(r.new_node(), "curr_items") > keys + 300);
    assert_eq!(d.log_lines("changed on disk").len(), 2, "{}", d.log());
}

/// `--no-watch`: a changed file is left alone until SIGHUP, which still
/// reloads it.
#[test]
fn with_no_watch_a_change_waits_for_sighup() {
    let m = Memcached::start();
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cs");
    std::fs::write(&settings, format!("servers={}\n", m.name())).unwrap();
    let d = Daemon::start(&m.name(), &settings, &["--no-agentx", "--no-watch"]);
    assert_eq!(d.wait_sync(10).0, Some(0));
    let requested = d.status().unwrap()["requested"].as_u64();
    std::fs::write(&settings, format!("servers={}\nbogus line\n", m.name())).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.status().unwrap()["requested"].as_u64(), requested, "not reloaded without a signal: {}", d.log());
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let (code, out) = d.wait_sync(10);
    assert_eq!(code, Some(1), "the SIGHUP read the bad file: {out}");
    assert!(d.log_lines("changed on disk").is_empty());
}

/// Current resident memory (`VmRSS`) of `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}: {status}"))
}

/// Hostile HTTP clients: a 2 MiB request line, 1 MiB of headers, a head
/// sent a byte at a time, garbage, 200 connections that never send
/// anything, and 10,000 scrapes. Each is refused or closed within its
/// bound, the endpoint keeps answering, and the daemon's memory does not
/// grow with the scrapes.
#[test]
fn hostile_http_clients_are_refused_and_scrapes_cost_no_memory() {
    let m = Memcached::start();
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cs");
    std::fs::write(&settings, format!("servers={}\n", m.name())).unwrap();
    let addr = metrics_address();
    let d = Daemon::start(&m.name(), &settings, &["--no-agentx", "--metrics-listen", &addr]);
    assert_eq!(d.wait_sync(10).0, Some(0));

    let started = Instant::now();
    let long_line = [b"GET /".as_slice(), &vec![b'a'; 2 << 20], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    let r = http::send(&addr, &long_line).expect("an answer to a 2 MiB request line");
    eprintln!("2 MiB request line: {} in {:?}", r.status, started.elapsed());
    assert!(r.status == 431 || r.status == 400, "{r:?}");
    let big_headers = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(16_000)
    );
    let r = http::send(&addr, big_headers.as_bytes()).expect("an answer to 1 MiB of headers");
    assert!(r.status == 431 || r.status == 400, "{r:?}");
    let r = http::send(&addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        .expect("an answer to garbage");
    assert_eq!(r.status, 400, "{r:?}");
    let r =
        http::send(&addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .unwrap();
    assert_eq!(r.status, 405);

    // 200 connections that send nothing: past 32 the oldest are closed,
    // and a scrape on a new connection is answered at once.
    let idle: Vec<std::net::TcpStream> = (0..200).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let asked = Instant::now();
    let r = http::get(&addr, "/metrics", "").expect("a scrape while 200 idle connections are open");
    let answered = asked.elapsed();
    eprintln!("scrape with 200 idle connections open: {} in {answered:?}", r.status);
    assert_eq!(r.status, 200);
    assert!(answered < Duration::from_secs(2), "{answered:?}");
    drop(idle);
    // A head that never ends (a byte every 200 ms): closed after the
    // head timeout (5 s). Alone: with the idle crowd it would be the
    // oldest connection, and closed for a newer one.
    let slow = std::thread::spawn({
        let addr = addr.clone();
        move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let started = Instant::now();
            for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle() {
                if s.write_all(&[*byte]).is_err() {
                    break;
                }
                let mut buf = [0u8; 1024];
                match s.read(&mut buf) {
                    Ok(_) => break,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
                assert!(started.elapsed() < Duration::from_secs(20), "a slow head was never closed");
            }
            started.elapsed()
        }
    });

    let slow_closed = join_bounded(slow, Duration::from_secs(30), "the slow-head client");
    eprintln!("a head sent a byte per 200 ms: closed after {slow_closed:?}");
    assert!(slow_closed > Duration::from_secs(4) && slow_closed < Duration::from_secs(10), "{slow_closed:?}");

    // 10,000 scrapes: 1,000 to warm up, then 9,000 (kept alive, 100 per
    // connection, as Prometheus keeps its connection).
    let scrape = |n: usize| {
        for _ in 0..n / 100 {
            let mut c = KeepAlive::connect(&addr).unwrap();
            for _ in 0..100 {
                let r = c.get("/metrics").unwrap();
                assert_eq!(r.status, 200);
            }
        }
    };
    scrape(1000);
    let before = rss_kib(d.pid());
    let started = Instant::now();
    scrape(9000);
    let took = started.elapsed();
    let after = rss_kib(d.pid());
    eprintln!(
        "10,000 scrapes: RSS {before} KiB after the first 1,000, {after} KiB after all ({:+} KiB); 9,000 took {took:?} ({:.0} µs each)",
        after as i64 - before as i64,
        took.as_micros() as f64 / 9000.0
    );
    assert!(after < before + 1024, "RSS grew with scrapes: {before} → {after} KiB");
    assert_eq!(http::get(&addr, "/healthz", "").unwrap().status, 200, "still alive");
    assert_eq!(http::get(&addr, "/readyz", "").unwrap().status, 200, "still ready");
}

/// The metrics and the MIB are two faces of the same atomics: a resync's
/// counters, frozen mid-way (three sources, 200 pairs), read through a
/// real snmpd with `snmpwalk` and scraped from `/metrics` at the same
/// moment, give the same values: each scalar, each connection row, and
/// each source's bucket rows summed (the metrics have no vbucket label).
#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_equal_what_snmpwalk_reads_through_a_real_snmpd() {
    use astaire::snmp::agentx::{AgentConfig, MasterAddress, Subagent};
    use common::snmpd::{parse, Snmpd};
    const A: &str = ".1.2.826.0.1.1578918.9.9";
    let ports = [21211u16, 21212, 21213];
    let mut vbuckets = std::collections::BTreeMap::new();
    for vb in 0..100u8 {
        let a = format!("127.0.0.1:{}", ports[vb as usize % 3]);
        let b = format!("127.0.0.1:{}", ports[(vb as usize + 1) % 3]);
        vbuckets.insert(vb, vec![a, b]);
    }
    let work = astaire::placement::WorkList { local_name: "127.0.0.1:1".into(), vbuckets, ..Default::default() };
    let stats = astaire::stats::Stats::new();
    let progress = stats.begin(&work, |s| s.parse().ok());
    for (i, c) in progress.connections.iter().enumerate() {
        for b in &c.buckets {
            b.counter.add(u64::from(b.vbucket) + 1, 100 * (i as u64 + 1) + u64::from(b.vbucket));
        }
    }
    progress.total.add(12345, 678_900);
    progress.source_done("127.0.0.1:21212");
    progress.close_period();

    let snmpd = Arc::new(Snmpd::start());
    let master: MasterAddress = snmpd.agentx_address().parse().unwrap();
    let agent = Subagent::spawn(AgentConfig::new(master), stats.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server =
        astaire::metrics::MetricsServer::spawn(listener, stats.clone(), astaire::metrics::HttpLimits::default())
            .unwrap();
    let addr = server.local_addr.to_string();
    let s = snmpd.clone();
    let (walk, scrape) = tokio::task::spawn_blocking(move || {
        s.wait_served(&format!("{A}.1.0"), Duration::from_secs(5));
        (s.walk(A), http::get(&addr, "/metrics", "").unwrap().body)
    })
    .await
    .unwrap();
    let rows = parse(&walk);
    assert_eq!(rows.len(), 5 + 6 + 600, "{}", &walk[..walk.len().min(2000)]);
    let mib = |oid: &str| -> f64 {
        rows.iter().find(|r| r.0 == oid).map(|r| r.2.parse().unwrap()).unwrap_or_else(|| panic!("no {oid}"))
    };
    let metric = |name: &str| http::sample(&scrape, name).unwrap_or_else(|| panic!("no {name} in\n{scrape}"));
    let mut compared = Vec::new();
    for (oid, name) in [
        (format!("{A}.1.0"), "astaire_buckets_needing_resync"),
        (format!("{A}.2.0"), "astaire_resync_buckets_done"),
        (format!("{A}.3.0"), "astaire_resync_keys_copied"),
        (format!("{A}.4.0"), "astaire_resync_bytes_copied"),
        (format!("{A}.5.1.2.1"), "astaire_resync_bandwidth_bytes_per_second"),
    ] {
        assert_eq!(mib(&oid), metric(name), "{oid} against {name}");
        compared.push(format!("{name}={}", metric(name)));
    }
    for port in ports {
        let idx = format!("1.4.127.0.0.1.{port}");
        let label = format!("{{source=\"127.0.0.1:{port}\"}}");
        let sum = |column: &str| -> f64 {
            let prefix = format!("{A}.{column}.{idx}.");
            rows.iter().filter(|r| r.0.starts_with(&prefix)).map(|r| r.2.parse::<f64>().unwrap()).sum()
        };
        for (mib_value, name) in [
            (mib(&format!("{A}.6.1.4.{idx}")), "astaire_source_buckets_needing_resync"),
            (mib(&format!("{A}.6.1.5.{idx}")), "astaire_source_buckets_done"),
            (sum("7.1.5"), "astaire_source_keys_copied"),
            (sum("7.1.6"), "astaire_source_bytes_copied"),
            (sum("8.1.6"), "astaire_source_bandwidth_bytes_per_second"),
        ] {
            assert_eq!(mib_value, metric(&format!("{name}{label}")), "{name}{label}");
            compared.push(format!("{name}{label}={mib_value}"));
        }
    }
    eprintln!("snmpwalk and /metrics agree on {} values: {}", compared.len(), compared.join(", "));
    server.shutdown().await;
    agent.shutdown().await;
}

/// Scrapes take nothing from the copy: the same full resync of the new
/// node (of 150,000 keys written), once with nobody scraping and once with four
/// clients scraping /metrics as fast as they can, takes about as long.
/// (The endpoint has its own thread and runtime; on this 2-core machine
/// the scrapers' own CPU still competes, hence the loose bound.)
#[tokio::test(flavor = "multi_thread")]
async fn scrapes_as_fast_as_possible_do_not_slow_the_copy() {
    let mut r = Resize::three_to_four();
    let items = plain_items("reg\\\\sip:scrape", 150_000, 1);
    load_fast(&view(&r.stable), &items).await;
    let addr = metrics_address();
    let d = Daemon::start(r.new_node(), &r.resize, &["--no-agentx", "--cpu-limit", "0", "--metrics-listen", &addr]);
    let (code, out) = d.wait_sync(120);
    assert_eq!(code, Some(0), "{out}");
    let quiet = d.status().unwrap()["last"]["seconds"].as_f64().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let scrapers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, addr) = (stop.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut c = KeepAlive::connect(&addr).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    assert_eq!(c.get("/metrics").unwrap().status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let node = r.cluster.nodes.len() - 1;
    r.cluster.nodes[node].restart_empty();
    let completed = d.status().unwrap()["completed"].as_u64().unwrap();
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_until(
        Duration::from_secs(120),
        "the second full resync, under scrapes",
        || {
            d.status().is_some_and(|s| {
                s["completed"].as_u64() > Some(completed) && s["pending"].is_null() && s["running"].is_null()
            })
        },
        || d.log(),
    );
    stop.store(true, Ordering::SeqCst);
    let scrapes: u64 = scrapers.into_iter().map(|t| join_bounded(t, Duration::from_secs(20), "a scraper")).sum();
    let status = d.status().unwrap();
    assert_eq!(status["last"]["success"], true, "{status}");
    let busy = status["last"]["seconds"].as_f64().unwrap();
    eprintln!("full resync of the new node: {quiet:.2} s unscraped, {busy:.2} s under {scrapes} scrapes");
    assert!(busy < quiet * 2.0 + 1.0, "scrapes slowed the copy: {quiet:.2} s → {busy:.2} s");
}

/// A metrics address that is not HOST:PORT, or that cannot be bound, stops
/// the start with exit 2 and says why, leaving no control socket behind.
#[test]
fn a_bad_or_taken_metrics_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cs");
    std::fs::write(&settings, "servers=127.0.0.1:1\n").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let control = dir.path().join("control");
    for (listen, said) in [
        ("9150", "astaire_metrics_listen: metrics address \"9150\" is not host:port or [ipv6]:port".to_owned()),
        (
            taken_addr.as_str(),
            format!("cannot serve metrics on {taken_addr} (astaire_metrics_listen, --metrics-listen): Address already in use"),
        ),
    ] {
        let mut cmd = Command::new(astaire_binary());
        cmd.args(["daemon", "--local-name", "127.0.0.1:1", "--cluster-settings"])
            .arg(&settings)
            .arg("--control-socket")
            .arg(&control)
            .args(["--config", "/dev/null", "--no-agentx", "--pd-log", "none", "--metrics-listen", listen]);
        let out = run_bounded(&mut cmd, Duration::from_secs(20), "the daemon refusing its metrics address");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(&said), "{}", text(&out));
        assert!(!control.exists(), "a control socket was left behind");
    }
}

/// The cluster manager writes cluster_settings and then sends SIGHUP (the
/// reload hook): the watch sees the change the signal's reload already
/// read, and adds no second resync.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_then_signalled_is_resynced_once() {
    let r = Resize::three_to_four();
    let items = plain_items("reg\\\\sip:once", 1000, 1);
    load(&view(&r.stable), &items).await;
    let live = r.cluster.dir.path().join("cluster_settings_once");
    std::fs::copy(&r.stable, &live).unwrap();
    let d = Daemon::start(r.new_node(), &live, &["--no-agentx"]);
    assert_eq!(d.wait_sync(10).0, Some(0));
    std::fs::copy(&r.resize, &live).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let (code, out) = d.wait_sync(60);
    assert_eq!(code, Some(0), "{out}");
    wait_until(
        Duration::from_secs(10),
        "the watch noticing the change the SIGHUP read",
        || !d.log_lines("already read by a reload").is_empty(),
        || d.log(),
    );
    let status = d.status().unwrap();
    assert_eq!(
        (status["requested"].as_u64(), status["completed"].as_u64()),
        (Some(1), Some(1)),
        "one resync: {status}"
    );
}
