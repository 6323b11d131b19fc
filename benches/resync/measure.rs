//! Measuring one run: wall, CPU and peak RSS of a child, paced probes,
//! memcached's own CPU, and the row of results with its repeats.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release").join(name)
}

pub fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&d).expect("target/bench");
    d
}

/// Wall time, CPU (user + sys) and peak RSS of a child, from wait4.
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    pub rss_kib: i64,
    pub code: i32,
    pub stdout: String,
}

/// Runs `cmd` under GNU time. (Not wait4 from here: Linux counts a forked
/// child's image before exec in its peak RSS, and this process holds large
/// request streams. time is small, so what it reports is the command's.)
pub fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let (out_path, time_path) = (out_dir().join("child.out"), out_dir().join("child.time"));
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%U %S %M", "-o"]).arg(&time_path).arg(cmd.get_program()).args(cmd.get_args());
    let status = timed
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time (package time)");
    let wall = start.elapsed().as_secs_f64();
    let times = std::fs::read_to_string(&time_path).unwrap_or_default();
    let last = times.lines().last().unwrap_or("0 0 0");
    let f: Vec<f64> = last.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    Measured {
        wall,
        cpu: f.first().unwrap_or(&0.0) + f.get(1).unwrap_or(&0.0),
        rss_kib: *f.get(2).unwrap_or(&0.0) as i64,
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
    }
}

/// A client doing `mg probe v` every 0.5 ms until stopped.
pub fn probe(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("probe connect");
        s.set_nodelay(true).unwrap();
        s.write_all(b"ms probe 1 T0\r\np\r\n").unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        let mut times = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            s.write_all(b"mg probe v\r\n").unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"p\r\n") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            times.push(t.elapsed());
            next += Duration::from_micros(500);
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        times
    })
}

#[derive(Default, Clone, Copy)]
pub struct Probe {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn summarize(mut t: Vec<Duration>) -> Probe {
    if t.is_empty() {
        return Probe::default();
    }
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Probe { p50: ms(t[t.len() / 2]), p99: ms(t[(t.len() - 1) * 99 / 100]), max: ms(t[t.len() - 1]) }
}

/// One line of results.
#[derive(Default, Clone)]
pub struct Row {
    pub scenario: String,
    pub tool: String,
    pub keys: u64,
    pub bytes: u64,
    pub wall: f64,
    pub cpu: Option<f64>,
    pub rss_mib: Option<f64>,
    pub probe_src: Option<Probe>,
    pub probe_dst: Option<Probe>,
    /// memcached's CPU seconds while Astaire ran: crawler threads (the
    /// metadumps), and everything else (the workers serving the requests).
    pub mc_cpu: Option<(f64, f64)>,
    /// Wall times of every repetition, shortest first (`wall` is their
    /// median); empty for rows measured once.
    pub walls: Vec<f64>,
    /// Bytes the copy wrote to its spill file (`spilled_bytes`).
    pub spilled: Option<u64>,
    /// The sources the report names (`sources[].source`).
    pub sources: Vec<String>,
    /// Keys their dumps named, when the report gives them
    /// (`sources[].dumped`); otherwise the scale rows count the sources'
    /// items.
    pub dumped: Option<u64>,
}

impl Row {
    pub fn keys_per_s(&self) -> f64 {
        self.keys as f64 / self.wall
    }
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall
    }
    pub fn us_per_key(&self) -> Option<f64> {
        self.cpu.map(|c| c * 1e6 / self.keys.max(1) as f64)
    }
    /// "0.47–0.62" over the repetitions, or the one wall time.
    pub fn wall_range(&self) -> String {
        match (self.walls.first(), self.walls.last()) {
            (Some(lo), Some(hi)) if self.walls.len() > 1 => format!("{lo:.2}–{hi:.2}"),
            _ => format!("{:.2}", self.wall),
        }
    }
}

/// How many times each copy-speed row is measured (`BENCH_REPEATS`, default
/// 3). This machine is noisy: one fresh memcached's ingest of the same
/// stream took 0.27–0.75 s on the same day, so each ratio compares medians,
/// with Astaire and the ingest ceiling run alternately.
pub fn repeats() -> usize {
    std::env::var("BENCH_REPEATS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1)
}

/// The median run by wall time (Astaire's CPU and RSS are that run's), with
/// every run's wall time kept.
pub fn median(mut runs: Vec<Row>) -> Row {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let walls: Vec<f64> = runs.iter().map(|r| r.wall).collect();
    let mut row = runs.swap_remove(runs.len() / 2);
    row.walls = walls;
    row
}

/// CPU seconds (user + system) of the memcached processes `pids` so far:
/// their crawler threads, and all their other threads.
pub fn memcached_cpu(pids: &[u32]) -> (f64, f64) {
    // SAFETY: sysconf only reads a system constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (mut crawler, mut other) = (0.0, 0.0);
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: utime and stime are 14 and 15.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, f)| f.split_whitespace().collect()).unwrap_or_default();
            let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
            if comm.trim() == "mc-itemcrawler" {
                crawler += ticks / tick;
            } else {
                other += ticks / tick;
            }
        }
    }
    (crawler, other)
}

/// Runs `astaire resync` for `local`, with probes on `src` and `dst`.
/// Probes on a source and on the target, or none (`None`).
pub type ProbePorts = Option<(u16, u16)>;
