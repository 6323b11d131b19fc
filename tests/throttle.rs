//! Throttling against real memcached: the CPU limit holds the process's
//! share, the bandwidth limit holds the rate, and a source's other clients
//! never stall while their server is being dumped.

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// These tests measure shares and latencies: they run one at a time, so
/// they do not compete with each other for the two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// utime + stime of a process, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// `--cpu-limit` is a percentage of the machine's total CPU. These tests
/// ask for a tenth of one core whatever the core count, far below what an
/// unthrottled copy uses anywhere (on 16 cores, 5% would be 0.8 of a core:
/// about an unthrottled copy, and nothing would be tested).
fn a_tenth_of_one_core() -> (String, f64) {
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    (format!("{}", 10.0 / cores), 0.1)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cpu_limit_holds_the_copy_near_its_share_of_one_core() {
    let _serial = serial().await;
    let r = Resize::three_to_four();
    // Enough keys for several seconds at a tenth of a core: at 400,000 the
    // copy grew cheap enough (issue 32) to finish in 4.9 s at its share.
    load_fast(&view(&r.stable), &plain_items("reg\\\\sip:cpu", 600_000, 1)).await;
    let (percent, target) = a_tenth_of_one_core();
    let mut child = std::process::Command::new(common::astaire_binary())
        .args(["resync", "--quiet", "--local-name", r.new_node(), "--cluster-settings"])
        .arg(&r.resize)
        .args(["--cpu-limit", &percent, "--batch-keys", "128"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut last = (0.0, Duration::ZERO);
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the resync held to a tenth of a core did not finish within 300 s");
        }
        if let Some(cpu) = cpu_seconds(child.id()) {
            last = (cpu, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (cpu, wall) = last;
    let share = cpu / wall.as_secs_f64();
    eprintln!("cpu {cpu:.2} s over {:.2} s: {share:.3} of one core (target {target})", wall.as_secs_f64());
    // Behaviour, not a figure (the figure is the benchmark's): the copy
    // is held back to about its share, neither far over it nor idle.
    // Long enough for the share to be an average over many bursts (each
    // pause is at least 250 ms), whatever the copy costs per key.
    assert!(wall > Duration::from_secs(3), "held back to a long resync: {wall:?}");
    assert!(share < 2.0 * target && share > 0.3 * target, "share {share:.3} of one core for a target of {target}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bandwidth_limit_holds_the_rate() {
    let _serial = serial().await;
    let r = Resize::three_to_four();
    let items = filled_items("reg\\\\sip:bw", 12_000, 1, &[b'b'; 1000]);
    load(&view(&r.stable), &items).await;
    let limit = 2_000_000.0;
    let out = resync_cli(r.new_node(), &r.resize, &["--json", "--bandwidth-limit", "2000000", "--cpu-limit", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = report["counts"]["bytes"].as_f64().unwrap();
    let seconds = report["seconds"].as_f64().unwrap();
    let rate = bytes / seconds;
    eprintln!("{bytes} bytes in {seconds:.2} s: {rate:.0} B/s (limit {limit})");
    // About 5 MB at 2 MB/s: the limit holds (never over it by much), and
    // the copy does not crawl far under it.
    assert!(seconds > 2.0, "long enough to measure: {seconds}");
    assert!(rate < 1.3 * limit && rate > 0.5 * limit, "rate {rate:.0} B/s for a limit of {limit}");
}

/// Gets random keys of `keys` from `server` over four connections until
/// `stop`; returns the slowest answer and the number of gets. A get that
/// takes over 2 s stops that connection and counts as 2 s.
async fn random_gets(server: &str, keys: Arc<Vec<Vec<u8>>>, stop: Instant) -> (Duration, usize) {
    let mut tasks = Vec::new();
    for seed in 1..=4u64 {
        let (server, keys) = (server.to_owned(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = astaire::memcached::Connection::connect(&server, Duration::from_secs(5)).await.unwrap();
            let (mut worst, mut gets, mut x) = (Duration::ZERO, 0, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            while Instant::now() < stop {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = &keys[(x % keys.len() as u64) as usize];
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(2), conn.get(key)).await {
                    Ok(got) => assert!(got.unwrap().is_some(), "every probed key exists"),
                    Err(_) => return (Duration::from_secs(2), gets),
                }
                worst = worst.max(t.elapsed());
                gets += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (worst, gets)
        }));
    }
    let mut out = (Duration::ZERO, 0);
    for t in tasks {
        let (w, n) = t.await.unwrap();
        out = (out.0.max(w), out.1 + n);
    }
    out
}

/// memcached 1.6.18 holds an item lock while writing its dump: if Astaire
/// read it slowly (for instance because the copy is throttled), other
/// clients of the source would stall. A fixed key does not show it (1,500
/// gets of one key all answered within 4 ms while a dump stood unread):
/// random keys over four connections do. The negative control reads a
/// dump slowly by hand, and the same probe must see the stall.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_resync_never_stalls_the_sources_other_clients() {
    let _serial = serial().await;
    let r = Resize::three_to_four();
    let items = plain_items("reg\\\\sip:probe", 300_000, 1);
    for node in &r.cluster.nodes[..3] {
        bulk_set(&node.name(), &items).await; // every source holds all keys: long dumps
    }
    let keys: Arc<Vec<Vec<u8>>> = Arc::new(items.into_iter().map(|i| i.key).collect());
    let source = r.cluster.nodes[0].name();

    // The same probe with nothing else running: what this machine's
    // scheduling costs right now (a busy machine adds its own waits).
    let (baseline, _) = random_gets(&source, keys.clone(), Instant::now() + Duration::from_secs(2)).await;
    eprintln!("baseline (no dump): worst {baseline:?}");

    // The control: a dump read 4 KiB every 100 ms stalls random gets.
    // (1.6.38 and later do not stall: scripts/bench.sh dump_stall.)
    let version: Vec<u32> = r.cluster.nodes[0].version().split('.').filter_map(|p| p.parse().ok()).collect();
    let hazard = version < vec![1, 6, 38];
    let mut slow = tokio::net::TcpStream::connect(&source).await.unwrap();
    slow.write_all(b"lru_crawler metadump hash\r\n").await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            if slow.read(&mut buf).await.unwrap_or(0) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (control_worst, control_gets) =
        random_gets(&source, keys.clone(), Instant::now() + Duration::from_secs(3)).await;
    reader.abort();
    let _ = reader.await;
    eprintln!("control (dump read slowly): {control_gets} gets, worst {control_worst:?}");
    if hazard {
        assert!(control_worst >= Duration::from_millis(500), "the probe sees a slowly read dump: {control_worst:?}");
    }
    // The abandoned crawl must be over before the real run: its stalls are
    // not the resync's.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(&source, "lru_crawler_running") != 0 {
        assert!(Instant::now() < deadline, "the control's crawl never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (percent, _) = a_tenth_of_one_core();
    let child = std::process::Command::new(common::astaire_binary())
        .args(["resync", "--quiet", "--local-name", r.new_node(), "--cluster-settings"])
        .arg(&r.resize)
        .args(["--cpu-limit", &percent, "--bandwidth-limit", "2000000", "--busy-wait", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = scopeguard(child);
    // Probe for the first 4 s, when the dumps run.
    let (worst, gets) = random_gets(&source, keys, Instant::now() + Duration::from_secs(4)).await;
    assert!(child.0.try_wait().unwrap().is_none(), "the throttled resync ran for the whole probe window");
    let _ = child.0.kill();
    eprintln!("{gets} random gets during the throttled resync's dumps: worst {worst:?}");
    assert!(gets > 1000);
    // A stall lasts as long as the dump is not read: seconds (the control
    // above; scripts/bench.sh dump_stall). The figure is the benchmark's;
    // here, only that there is no stall beyond what the machine's own
    // scheduling gives the same probe.
    let bound = Duration::from_millis(300).max(baseline * 3);
    assert!(worst < bound, "a source client stalled for {worst:?} (baseline {baseline:?})");
}

/// Kills the child when the test ends, whatever happens.
struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}
