//! The dump hazard, measured per memcached version: does a key dump that
//! nobody reads stall the source's clients?
//!
//! Run with `scripts/bench.sh dump_stall` (which builds the versions) or
//! `BENCH_VERSIONS=1.6.18=/usr/bin/memcached,… cargo bench --bench
//! dump_stall`. For each version and each dump command the version has, it
//! loads 300,000 keys into a fresh memcached, starts the dump on a
//! connection that then reads nothing, and times `mg <random key> v` from
//! four client connections: 1,500 gets each, or until a get has waited 2 s
//! (a stall: that connection stops there). A baseline with no dump running
//! comes first. This is why Astaire drains every dump at full speed
//! (ARCHITECTURE.md, "A dump is never slowed").

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bulk_set, Memcached, TestItem};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const KEYS: usize = 300_000;
const CLIENTS: usize = 4;
const GETS: usize = 1_500;
const STALL: Duration = Duration::from_secs(2);

fn key(i: usize) -> String {
    format!("reg\\\\sip:stall{i}@example.com")
}

/// What the clients saw.
struct Seen {
    gets: usize,
    stalled: usize,
    p99_ms: f64,
    max_ms: f64,
}

/// One client: random gets until `GETS` or a stall.
fn client(port: u16, seed: u64) -> (Vec<Duration>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(STALL)).unwrap();
    s.set_nodelay(true).unwrap();
    let (mut times, mut x, mut buf) = (Vec::with_capacity(GETS), seed | 1, vec![0u8; 4096]);
    for _ in 0..GETS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let started = Instant::now();
        s.write_all(format!("mg {} v\r\n", key(x as usize % KEYS)).as_bytes()).unwrap();
        let mut got = Vec::new();
        // `VA <n>\r\n<value>\r\n` or `EN\r\n`: complete once it ends a
        // second line, or is a miss.
        loop {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                Ok(_) => panic!("memcached closed a client connection"),
                Err(_) => return (times, true), // waited STALL: stalled
            }
            let lines = got.windows(2).filter(|w| w == b"\r\n").count();
            if got.starts_with(b"EN\r\n") || lines >= 2 {
                break;
            }
        }
        times.push(started.elapsed());
    }
    (times, false)
}

fn clients(port: u16) -> Seen {
    let runs: Vec<_> =
        (0..CLIENTS).map(|c| std::thread::spawn(move || client(port, 0x9e37_79b9 * (c as u64 + 1)))).collect();
    let (mut all, mut stalled) = (Vec::new(), 0);
    for r in runs {
        let (times, stall) = r.join().unwrap();
        all.extend(times);
        stalled += usize::from(stall);
    }
    all.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    Seen {
        gets: all.len(),
        stalled,
        p99_ms: ms(all.get(all.len().saturating_mul(99) / 100)),
        max_ms: if stalled > 0 { STALL.as_secs_f64() * 1e3 } else { ms(all.last()) },
    }
}

fn load(m: &Memcached) {
    let items: Vec<TestItem> =
        (0..KEYS).map(|i| TestItem { key: key(i).into_bytes(), value: vec![b'v'; 100], flags: 1, ttl: 0 }).collect();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(bulk_set(&m.name(), &items));
}

fn main() {
    let versions = std::env::var("BENCH_VERSIONS").unwrap_or_else(|_| common::memcached_binary());
    let mut out = String::from(
        "| memcached | dump left unread | gets answered | clients stalled ≥ 2 s | p99 ms | max ms |\n|---|---|---|---|---|---|\n",
    );
    for entry in versions.split(',').filter(|s| !s.is_empty()) {
        let binary = entry.split_once('=').map_or(entry, |(_, b)| b);
        for command in ["none", "metadump", "mgdump"] {
            let m = Memcached::start_binary(binary, &["-m", "1024"]);
            let version = m.version();
            let has_mgdump =
                astaire::memcached::dump::DumpMode::for_version(&version) == astaire::memcached::dump::DumpMode::Mgdump;
            if command == "mgdump" && !has_mgdump {
                continue;
            }
            load(&m);
            // The dump: started, then never read while the clients run.
            let dump = (command != "none").then(|| {
                let mut d = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
                d.write_all(format!("lru_crawler {command} hash\r\n").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(300)); // the socket buffers fill
                d
            });
            let seen = clients(m.port);
            drop(dump);
            let line = format!(
                "| {version} | {command} | {} of {} | {} of {CLIENTS} | {:.2} | {:.1} |\n",
                seen.gets,
                CLIENTS * GETS,
                seen.stalled,
                seen.p99_ms,
                seen.max_ms
            );
            eprint!("{line}");
            out.push_str(&line);
        }
    }
    println!("\n{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump-stall.txt"), out).unwrap();
}
