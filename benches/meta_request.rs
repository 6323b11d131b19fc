//! The cost of building the copy's meta requests (issue 32): a batch of
//! 4,096 `mg <key> f t v u O<n>` (the fetch), of `mg <key> f O<n>` (the
//! checks) and of `ms <key> 100 F<flags> T<ttl> ME c O<n>` with a 100-byte
//! value (the injection), on the keys `astaire-loadgen` writes; in ns per
//! request, and the bytes checked against `format!` of the same requests.
//!
//! Run: `cargo bench --bench meta_request` (release).

use astaire::memcached::proto::{mg_batch, ms, SetMode, WireKey};
use astaire::testdata::key;
#[path = "common/best.rs"]
mod timing;

const KEYS: u64 = 4096;
const ROUNDS: usize = 200;

fn main() {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let wire = || keys.iter().map(|k| WireKey { bytes: k, base64: false });
    let value = vec![b'v'; 100];
    let flags = |i: usize| 1_796_585_564u32.wrapping_add(i as u32);
    let mut out = Vec::new();
    let fetch = timing::best(ROUNDS, KEYS, || {
        mg_batch(&mut out, wire(), "f t v u");
        out.len()
    });
    let expected: String =
        keys.iter().enumerate().map(|(n, k)| format!("mg {} f t v u O{n}\r\n", String::from_utf8_lossy(k))).collect();
    assert_eq!(out, format!("{expected}mn\r\n").into_bytes());
    let check = timing::best(ROUNDS, KEYS, || {
        mg_batch(&mut out, wire(), "f");
        out.len()
    });
    let inject = timing::best(ROUNDS, KEYS, || {
        out.clear();
        for (n, k) in wire().enumerate() {
            ms(&mut out, k, &value, flags(n), 86_400, SetMode::Add, n);
        }
        out.len()
    });
    let expected: String = keys
        .iter()
        .enumerate()
        .map(|(n, k)| {
            format!("ms {} 100 F{} T86400 ME c O{n}\r\n{}\r\n", String::from_utf8_lossy(k), flags(n), "v".repeat(100))
        })
        .collect();
    assert_eq!(out, expected.into_bytes());
    println!("ns per request: mg f t v u {fetch:.1}, mg f {check:.1}, ms with 100 B {inject:.1}");
}
