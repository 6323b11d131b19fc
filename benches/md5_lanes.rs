//! The dump filter's MD5: ns per key for `view::md5_lanes::digests` in
//! the dump's groups of 64 keys, beside the `md-5` crate one key at a
//! time, on the keys `astaire-loadgen` writes (Clearwater-style, 29-35
//! bytes). A measure, not a test (issue 32).
//!
//! Run: `cargo bench --bench md5_lanes` (release).

use astaire::testdata::key;
use astaire::view::md5_lanes;
use md5::{Digest, Md5};
#[path = "common/best.rs"]
mod timing;

const KEYS: u64 = 262_144;
const GROUP: usize = 64;
const ROUNDS: usize = 9;

fn main() {
    let owned: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    let lanes = timing::best(ROUNDS, KEYS, || {
        let mut n = 0;
        for group in keys.chunks(GROUP) {
            md5_lanes::digests(group, &mut out);
            n += usize::from(out[0][0]);
        }
        n
    });
    let one = timing::best(ROUNDS, KEYS, || keys.iter().map(|k| usize::from(Md5::digest(k)[0])).sum());
    // The same digests either way, or the figures mean nothing.
    for group in keys.chunks(GROUP) {
        md5_lanes::digests(group, &mut out);
        for (k, d) in group.iter().zip(&out) {
            assert_eq!(d[..], Md5::digest(k)[..], "digest of {:?}", String::from_utf8_lossy(k));
        }
    }
    println!(
        "md5 of a {}-byte key, groups of {GROUP}: lanes {lanes:.1} ns, one at a time {one:.1} ns ({:.2}x)",
        keys[1000].len(),
        one / lanes
    );
}
