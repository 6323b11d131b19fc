//! The cost of one dumped key before placement (issue 32): a metadump
//! line parsed (`parse_dump_line`: the line, the key's end, `size=` and
//! `flags=`) and its key decoded (`decode_dump_key`), in ns per line, for
//! the lines 1.6.18 and 1.6.38 print for Clearwater keys, and an mgdump
//! line. Every source's whole dump pays this, wanted or not: a 3→4 of 1 M
//! keys parses about 2 M lines for 0.42 M keys landed.
//!
//! Run: `cargo bench --bench dump_line` (release).

use astaire::memcached::dump::{decode_dump_key, parse_dump_line, DumpLine, DumpMode};
use std::time::Instant;

const LINES: u32 = 200_000;
const ROUNDS: usize = 9;

/// A dump format: its name, command, and line for key number `i`.
type Format = (&'static str, DumpMode, fn(u32) -> String);

fn main() {
    let formats: [Format; 3] = [
        ("metadump 1.6.18", DumpMode::Metadump, |i| {
            format!("key=reg%5C%5Csip%3Auser{i}%40example.com exp=1796589164 la=1796585564 cas={i} fetch=no cls=5 size=194\n")
        }),
        ("metadump 1.6.38", DumpMode::Metadump, |i| {
            format!(
                "key=reg%5C%5Csip%3Auser{i}%40example.com exp=1796589164 la=1796585564 cas={i} fetch=no cls=5 size=194 \
                 flags=3141592\n"
            )
        }),
        ("mgdump 1.6.38", DumpMode::Mgdump, |i| format!("mg reg\\\\sip:user{i}@example.com\r\n")),
    ];
    println!("{:<18} {:>10} {:>10}", "dump line", "ns/line", "check");
    for (name, mode, line) in formats {
        let buf: Vec<u8> = (0..LINES).flat_map(|i| line(i).into_bytes()).collect();
        let mut best = f64::MAX;
        let mut check = 0u64;
        let mut key = Vec::with_capacity(256);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let (mut at, mut sum) = (0, 0u64);
            while let Some((parsed, len)) = parse_dump_line(&buf[at..], mode).expect("a valid line") {
                if let DumpLine::Key { key: range, encoding, size, flags } = parsed {
                    key.clear();
                    decode_dump_key(&buf[at..][range], encoding, &mut key).expect("a key");
                    sum += key.len() as u64 + u64::from(size.unwrap_or(0)) + u64::from(flags.unwrap_or(0));
                }
                at += len;
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(LINES));
            check = sum;
        }
        println!("{name:<18} {best:>10.1} {check:>10}");
    }
}
