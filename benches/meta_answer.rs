//! The cost of one meta answer parsed (issue 32): what a copy reads for
//! every key, `VA` with a 100-byte value from a source, `HD f…` from the
//! local node's check, `NS`/`HD O…` from the injection; in ns per answer.
//!
//! Run: `cargo bench --bench meta_answer` (release).

use astaire::memcached::proto::{parse_meta_within, MAX_VALUE};
use std::time::Instant;

const ANSWERS: u32 = 200_000;
const ROUNDS: usize = 9;

/// An answer: its name, and its text for key number `i`.
type Answer = (&'static str, fn(u32) -> String);

fn main() {
    let answers: [Answer; 4] = [
        ("VA 100 f t", |i| format!("VA 100 f{} t-1\r\n{}\r\n", 1_796_585_564u32.wrapping_add(i), "v".repeat(100))),
        ("VA 100 f t O k", |i| {
            format!("VA 100 f{i} t86400 O{} kreg\\\\sip:user{i}@example.com\r\n{}\r\n", i % 1024, "v".repeat(100))
        }),
        ("HD f", |i| format!("HD f{}\r\n", 1_796_585_564u32.wrapping_add(i))),
        ("NS", |_| "NS\r\n".to_owned()),
    ];
    println!("{:<16} {:>10} {:>12}", "answer", "ns/answer", "check");
    for (name, answer) in answers {
        let buf: Vec<u8> = (0..ANSWERS).flat_map(|i| answer(i).into_bytes()).collect();
        let mut best = f64::MAX;
        let mut check = 0u64;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let (mut at, mut sum) = (0, 0u64);
            while let Some(m) = parse_meta_within(&buf[at..], MAX_VALUE).expect("a valid answer") {
                sum += u64::from(m.flags.unwrap_or(0))
                    + m.value.map_or(0, |v| v.range().len() as u64)
                    + m.ttl.unwrap_or(0) as u64;
                at += m.len;
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(ANSWERS));
            check = sum;
        }
        println!("{name:<16} {best:>10.1} {check:>12}");
    }
}
