//! AgentX benchmark: the cost per varbind of walking the Astaire subtree
//! through a real snmpd (snmpbulkwalk), beside snmpd walking a built-in
//! table of the same size in the same run, and the subagent's own answer
//! time (request in, response out, as a master sees it).
//!
//! Run: `cargo bench --bench agentx_walk` (needs snmpd and snmp installed;
//! `scripts/setup.sh` installs them). Targets: ≤ 1.5× the built-in cost per
//! varbind; answer time p99 < 200 µs.

// Shared with the tests; the benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../tests/common/snmpd.rs"]
mod snmpd;
// What snmpd.rs runs its net-snmp clients with (`super::bounded`).
#[allow(dead_code)]
#[path = "../tests/common/bounded.rs"]
mod bounded;

use astaire::snmp::agentx::pdu::{self, Oid, Payload, Pdu, SearchRange};
use astaire::snmp::agentx::{AgentConfig, MasterAddress, Subagent};
use astaire::stats::Stats;
use snmpd::{parse, Snmpd};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: &str = ".1.2.826.0.1.1578918.9.9";
const HR_SW_RUN: &str = ".1.3.6.1.2.1.25.4.2";
const ROUNDS: usize = 5;

/// Statistics with three sources and `per_source` vbuckets each.
fn stats(per_source: u8) -> Arc<Stats> {
    let mut vbuckets = std::collections::BTreeMap::new();
    for vb in 0..per_source {
        let sources = (0..3).map(|s| format!("127.0.0.1:{}", 21211 + s)).collect();
        vbuckets.insert(vb, sources);
    }
    let work =
        astaire::placement::WorkList { local_name: "127.0.0.1:1".into(), full: false, vbuckets, ..Default::default() };
    let stats = Stats::new();
    let p = stats.begin(&work, |s| s.parse().ok());
    for c in &p.connections {
        c.buckets.iter().for_each(|b| b.counter.add(1000 + u64::from(b.vbucket), 123_456));
    }
    stats
}

fn time_walk(snmpd: &Snmpd, oid: &str) -> (Duration, usize) {
    let start = Instant::now();
    let out = snmpd.bulkwalk(oid);
    (start.elapsed(), parse(&out).len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn answer_times(stats: Arc<Stats>, requests: usize) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master = MasterAddress::Tcp(listener.local_addr().unwrap().to_string());
    let agent = Subagent::spawn(AgentConfig::new(master), stats);
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    // Open and Register.
    for session in [7u32, 7] {
        let p = read(&mut conn, &mut buf).await;
        let mut reply = p.response(0, 0, 0, vec![]);
        reply.session_id = session;
        write(&mut conn, &reply).await;
    }
    let start: Oid = A.parse().unwrap();
    let end: Oid = ".1.2.826.0.1.1578918.9.10".parse().unwrap();
    let mut times = Vec::with_capacity(requests);
    let mut cursor = start.clone();
    for i in 0..requests {
        let range = SearchRange { start: cursor.clone(), include: false, end: end.clone() };
        let req = Pdu::new(7, i as u32, i as u32, Payload::GetNext(vec![range]));
        let t = Instant::now();
        write(&mut conn, &req).await;
        let reply = read(&mut conn, &mut buf).await;
        times.push(t.elapsed());
        cursor = match reply.payload {
            Payload::Response { varbinds, .. } if varbinds[0].value != pdu::Value::EndOfMibView => {
                varbinds[0].name.clone()
            }
            _ => start.clone(),
        };
    }
    drop(conn);
    agent.shutdown().await;
    times
}

/// The floor: a bare echo round trip over loopback TCP on this machine,
/// with the same runtime set-up as the subagent (its own thread).
async fn echo_floor(requests: usize) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let std_listener = listener.into_std().unwrap();
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut b = [0u8; 4096];
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 || s.write_all(&b[..n]).await.is_err() {
                    return;
                }
            }
        });
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(requests);
    let mut b = [0u8; 128];
    for _ in 0..requests {
        let t = Instant::now();
        c.write_all(&[1u8; 64]).await.unwrap();
        let mut got = 0;
        while got < 64 {
            got += c.read(&mut b).await.unwrap();
        }
        times.push(t.elapsed());
    }
    times
}

async fn read(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Pdu {
    loop {
        if let Ok(Some(n)) = pdu::frame_len(buf) {
            let p = pdu::decode(&buf[..n]).expect("valid PDU");
            buf.drain(..n);
            return p;
        }
        let mut chunk = [0u8; 65536];
        let n = conn.read(&mut chunk).await.expect("read");
        assert!(n > 0, "subagent closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn write(conn: &mut tokio::net::TcpStream, p: &Pdu) {
    let mut out = Vec::new();
    pdu::encode(p, &mut out);
    conn.write_all(&out).await.expect("write");
}

#[tokio::main]
async fn main() {
    let per_source = 170; // 3 × 170 = 510 bucket rows
    let stats = stats(per_source);
    // Debian's snmpd listens on a unix socket; ASTAIRE_BENCH_AGENTX=tcp
    // measures a loopback TCP master instead.
    let tcp = std::env::var("ASTAIRE_BENCH_AGENTX").is_ok_and(|v| v == "tcp");
    let snmpd = Arc::new(if tcp { Snmpd::start() } else { Snmpd::start_unix() });
    println!("AgentX master socket: {}", snmpd.agentx_address());
    let master: MasterAddress = snmpd.agentx_address().parse().unwrap();
    let agent = Subagent::spawn(AgentConfig::new(master), stats.clone());
    let s = snmpd.clone();
    tokio::task::spawn_blocking(move || s.wait_served(&format!("{A}.1.0"), Duration::from_secs(10))).await.unwrap();

    // Pad hrSWRunTable (7 columns per process) to about our size.
    let ours = parse(&snmpd.bulkwalk(A)).len();
    let before = parse(&snmpd.bulkwalk(HR_SW_RUN)).len();
    let extra = ours.saturating_sub(before) / 7;
    let mut sleepers: Vec<Child> = (0..extra).filter_map(|_| Command::new("sleep").arg("600").spawn().ok()).collect();
    // snmpd caches hrSWRunTable for a while: wait until it sees them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while parse(&snmpd.bulkwalk(HR_SW_RUN)).len() < ours * 9 / 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }

    let s = snmpd.clone();
    let rounds = tokio::task::spawn_blocking(move || {
        let mut rounds = Vec::new();
        time_walk(&s, A); // warm up both
        time_walk(&s, HR_SW_RUN);
        for _ in 0..ROUNDS {
            rounds.push((time_walk(&s, A), time_walk(&s, HR_SW_RUN)));
        }
        rounds
    })
    .await
    .unwrap();
    sleepers.iter_mut().for_each(|c| {
        let _ = c.kill();
        let _ = c.wait();
    });
    agent.shutdown().await;

    println!("snmpbulkwalk through snmpd, {ROUNDS} rounds, same run (µs per varbind):");
    println!(
        "{:>6} {:>10} {:>14} {:>10} {:>14} {:>7}",
        "round", "astaire", "µs/varbind", "hrSWRun", "µs/varbind", "ratio"
    );
    let mut ratios = Vec::new();
    for (i, ((ta, na), (tb, nb))) in rounds.iter().enumerate() {
        let pa = ta.as_secs_f64() * 1e6 / *na as f64;
        let pb = tb.as_secs_f64() * 1e6 / *nb as f64;
        ratios.push(pa / pb);
        println!("{:>6} {:>10} {:>14.2} {:>10} {:>14.2} {:>7.2}", i + 1, na, pa, nb, pb, pa / pb);
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!("median ratio astaire/built-in per varbind: {:.2} (target ≤ 1.5)", ratios[ratios.len() / 2]);

    let mut times = answer_times(stats, 20_000).await;
    let mut floor = echo_floor(20_000).await;
    times.sort();
    floor.sort();
    let us = |t: &[Duration], p: f64| percentile(t, p).as_secs_f64() * 1e6;
    println!("round trips over loopback TCP, 20000 each (µs):");
    println!("{:<44} {:>8} {:>8} {:>10}", "", "p50", "p99", "max");
    println!(
        "{:<44} {:>8.1} {:>8.1} {:>10.1}",
        "subagent GetNext (request in, response out)",
        us(&times, 0.5),
        us(&times, 0.99),
        us(&times, 1.0)
    );
    println!(
        "{:<44} {:>8.1} {:>8.1} {:>10.1}",
        "bare echo, same machine (the floor)",
        us(&floor, 0.5),
        us(&floor, 0.99),
        us(&floor, 1.0)
    );
    println!("target: subagent p99 < 200 µs; subagent p99 / echo p99 = {:.2}", us(&times, 0.99) / us(&floor, 0.99));
}
