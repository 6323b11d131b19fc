//! The cost of placing a key: each one-copy family's classifier on the
//! joining node of a 3→4 (the work list the dump filter runs), in ns per
//! key, beside ketama's and beside the MD5 the dump computes for every key
//! anyway. A measure, not a test: moved out of the unit tests (issue 30),
//! where it was an `#[ignore]`d timed test.
//!
//! Run: `cargo bench --bench classifier` (release). The figures of a whole
//! resync per family are `scripts/bench.sh placement`'s.

use astaire::placement::{Layout, Placement, Scheme, Weights, NOT_WANTED};
use astaire::view::{key_digest, ClusterSettings};
use std::path::Path;
use std::time::Instant;

const KEYS: u32 = 200_000;
const ROUNDS: usize = 7;

const THREE_TO_FOUR: &str = "servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211\n\
    new_servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211,10.0.0.4:11211\n";
const WEIGHTED: &str = "servers=10.0.0.1:11211:1,10.0.0.2:11211:1,10.0.0.3:11211:1\n\
    new_servers=10.0.0.1:11211:1,10.0.0.2:11211:1,10.0.0.3:11211:1,10.0.0.4:11211:1\n";

fn main() {
    // Back to back in one buffer, as the dump holds them.
    let (mut raw, mut ends) = (Vec::new(), Vec::new());
    for i in 0..KEYS {
        raw.extend_from_slice(format!("user:{i}@example.com").as_bytes());
        ends.push(raw.len());
    }
    let mut start = 0;
    let keys: Vec<&[u8]> = ends
        .iter()
        .map(|&end| {
            let k = &raw[start..end];
            start = end;
            k
        })
        .collect();
    let digests: Vec<[u8; 16]> = keys.iter().map(|k| key_digest(k)).collect();
    let fractions = WEIGHTED.replace(":1,", ":0.9,").replace(":1\n", ":0.9\n");
    let mut results = Vec::new();
    for scheme in Scheme::all().iter().filter(|s| s.one_copy()) {
        let text = match scheme.weights() {
            Weights::Whole => WEIGHTED.to_owned(),
            Weights::Fraction => fractions.clone(),
            Weights::Refused => THREE_TO_FOUR.to_owned(),
        };
        let settings = ClusterSettings::parse(&text, Path::new("cluster_settings")).expect("settings");
        let placement = Placement { scheme: *scheme, ..Placement::default() };
        let layout = Layout::new(&settings, &placement).expect("a layout");
        let work = layout.work_list("10.0.0.4:11211", false).expect("a work list");
        let mut scratch = Vec::new();
        let mut best = f64::MAX;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let mut wanted = 0usize;
            for (k, d) in keys.iter().zip(&digests) {
                wanted += usize::from(work.classifier.bucket(k, d, &mut scratch) != NOT_WANTED);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / keys.len() as f64);
            std::hint::black_box(wanted);
        }
        results.push((scheme.name(), best));
    }
    let start = Instant::now();
    for k in &keys {
        std::hint::black_box(key_digest(k));
    }
    let md5 = start.elapsed().as_nanos() as f64 / keys.len() as f64;
    let ketama = results.iter().find(|(n, _)| *n == "ketama").map_or(1.0, |r| r.1);
    println!(
        "classifier ns per key on a 3→4, {KEYS} keys of ~22 bytes back to back (best of {ROUNDS}); \
         MD5 (one at a time) {md5:.1} ns"
    );
    for (name, ns) in results {
        println!(
            "{name:24} {ns:6.1} ns  {:4.2}× ketama  {:4.2}× ketama with the MD5",
            ns / ketama,
            (ns + md5) / (ketama + md5)
        );
    }
}
