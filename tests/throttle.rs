//! Throttling against real memcached: the CPU limit holds the process's
//! share, the bandwidth limit holds the rate, and a source's other clients
//! never stall while their server is being dumped.

mod common;

use common::*;
use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread")]
async fn cpu_limit_5_percent_keeps_a_tenth_of_one_core_on_two_cores() {
    let _serial = serial().await;
    let r = Resize::three_to_four();
    load_fast(&view(&r.stable), &plain_items("reg\\\\sip:cpu", 400_000, 1)).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_astaire"))
        .args(["resync", "--quiet", "--local-name", r.new_node(), "--cluster-settings"])
        .arg(&r.resize)
        .args(["--cpu-limit", "5", "--batch-keys", "128"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    let start = Instant::now();
    let mut last = (0.0, Duration::ZERO);
    while child.try_wait().unwrap().is_none() {
        if let Some(cpu) = cpu_seconds(child.id()) {
            last = (cpu, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (cpu, wall) = last;
    let share = cpu / wall.as_secs_f64();
    let target = 0.05 * cores;
    eprintln!("cpu {cpu:.2} s over {:.2} s: {:.3} of one core (target {target:.3})", wall.as_secs_f64(), share);
    assert!(wall > Duration::from_secs(5), "a long resync: {wall:?}");
    assert!((share - target).abs() <= 0.25 * target, "share {share:.3} not within 25% of {target:.3}");
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
    assert!(seconds > 2.0, "long enough to measure: {seconds}");
    assert!((rate - limit).abs() <= 0.15 * limit, "rate {rate:.0} not within 15% of {limit}");
}

/// memcached 1.6.18 holds an item lock while writing its dump: if Astaire
/// read it slowly (for instance because the copy is throttled), other
/// clients of the source would stall. The dump is read at full speed.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_resync_never_stalls_the_sources_other_clients() {
    let _serial = serial().await;
    let r = Resize::three_to_four();
    let items = plain_items("reg\\\\sip:probe", 500_000, 1);
    for node in &r.cluster.nodes[..3] {
        bulk_set(&node.name(), &items).await; // every source holds all keys: long dumps
    }
    let source = r.cluster.nodes[0].name();
    let mut probe_conn = astaire::memcached::Connection::connect(&source, Duration::from_secs(5)).await.unwrap();
    probe_conn.set(b"probe", b"p", 0, 0).await.unwrap();
    let mut baseline = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        probe_conn.get(b"probe").await.unwrap();
        baseline = baseline.max(t.elapsed());
    }

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_astaire"))
        .args(["resync", "--quiet", "--local-name", r.new_node(), "--cluster-settings"])
        .arg(&r.resize)
        .args(["--cpu-limit", "5"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = scopeguard(child);
    // Probe every 2 ms for the first 4 s, when the dumps run.
    let (mut worst, mut probes) = (Duration::ZERO, 0);
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        let t = Instant::now();
        probe_conn.get(b"probe").await.unwrap();
        worst = worst.max(t.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(child.0.try_wait().unwrap().is_none(), "the throttled resync ran for the whole probe window");
    let _ = child.0.kill();
    eprintln!("{probes} probes during the dump: worst {worst:?} (baseline worst {baseline:?})");
    assert!(probes > 500);
    // A dump paused by the throttle stalls the source's clients for the
    // throttle's sleeps: hundreds of ms to seconds (scripts/bench.sh
    // dump_stall: 2 s and more on 1.6.18). 10 ms was inside this machine's
    // scheduling noise: 13.6 ms once in CI under load, against a 2.3 ms
    // baseline. The figures themselves belong to the benchmark (issue 16).
    assert!(worst < Duration::from_millis(100), "a source client stalled for {worst:?}");
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
