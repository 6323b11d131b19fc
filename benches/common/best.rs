//! The in-process benches' timing loop.

use std::time::Instant;

/// The fastest of `rounds` runs of `run`, in ns per item for `items` items
/// a run. What `run` returns is summed and kept from the optimiser, so the
/// work cannot be thrown away.
pub fn best(rounds: usize, items: u64, mut run: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    let mut check = 0usize;
    for _ in 0..rounds {
        let start = Instant::now();
        check = check.wrapping_add(run());
        best = best.min(start.elapsed().as_nanos() as f64 / items as f64);
    }
    std::hint::black_box(check);
    best
}
