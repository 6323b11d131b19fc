//! mcrouter's hash routes (facebook/mcrouter, folly), bit for bit:
//! `shared/spec/placement-clients.md` B.4 and `placement.md` §6.
//! - `Ch3`, the default (`mcrouter`): `furc_hash(key, n)`, a walk over a
//!   bit stream made of MurmurHash64A (seed 4193360111) and its re-hashes,
//!   23 bits a step, at most 32 tries, else 0. Position-based, like jump.
//! - `Crc32` (`mcrouter-crc32`): `(crc32(key) & 0x7fffffff) mod n`.
//! - `WeightedCh3` (`mcrouter-weighted`): Ch3's index kept when the key's
//!   SpookyHash V2 (32-bit, seed 0xface2014) falls under the server's
//!   weight (in [0, 1]) × (2^32 - 1), else the key with a salt appended
//!   (the retry count's decimal digits, least significant first) is tried
//!   again, 32 times at most.
//!
//! The key hashed is the routing key: without the `/region/cluster/`
//! routing prefix (which mcrouter strips before storing) and cut at the
//! first `|#|` (which it stores), with the pool's `salt` appended. So a
//! stored key is cut at its hash stop only. Pure.
//!
//! MurmurHash64A, furc and SpookyHash V2 are written here: mcrouter is the
//! only user of the first two, and the Rust SpookyHash crates either bind
//! the C++ code or are unmaintained single-author ports; each is pinned by
//! mcrouter's and folly's own test vectors.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::hashes::crc32;
use super::{Family, Key, LayoutError, Server};

/// `SEED` in mcrouter/lib/fbi/hash.c.
const FURC_SEED: u32 = 4_193_360_111;
const FURC_SHIFT: u32 = 23;
const FURC_TRIES: u32 = 32;
/// The largest pool Ch3 takes (`furc_maximum_pool_size`).
pub const MAX_POOL: usize = 1 << FURC_SHIFT;
/// `WeightedCh3HashFunc`'s `kHashSeed`.
const WEIGHTED_SEED: u32 = 0xface_2014;
/// `WeightedChHashFuncBase::kNumTries`.
const WEIGHTED_TRIES: usize = 32;

const MURMUR_M: u64 = 0xc6a4_a793_5bd1_e995;

/// MurmurHash64A (Austin Appleby's, as mcrouter's hash.c).
pub fn murmur64a(key: &[u8], seed: u32) -> u64 {
    let mut h = u64::from(seed) ^ (key.len() as u64).wrapping_mul(MURMUR_M);
    let (blocks, tail) = key.as_chunks::<8>();
    for block in blocks {
        let mut k = u64::from_le_bytes(*block).wrapping_mul(MURMUR_M);
        k ^= k >> 47;
        h ^= k.wrapping_mul(MURMUR_M);
        h = h.wrapping_mul(MURMUR_M);
    }
    if !tail.is_empty() {
        h ^= tail.iter().rev().fold(0u64, |k, b| (k << 8) | u64::from(*b));
        h = h.wrapping_mul(MURMUR_M);
    }
    h ^= h >> 47;
    h = h.wrapping_mul(MURMUR_M);
    h ^ (h >> 47)
}

/// hash.c's `murmur_rehash_64A`: the next word of furc's bit stream.
fn rehash(k: u64) -> u64 {
    let mut h = u64::from(FURC_SEED) ^ 8u64.wrapping_mul(MURMUR_M);
    let mut k = k.wrapping_mul(MURMUR_M);
    k ^= k >> 47;
    h ^= k.wrapping_mul(MURMUR_M);
    h = h.wrapping_mul(MURMUR_M);
    h ^= h >> 47;
    h = h.wrapping_mul(MURMUR_M);
    h ^ (h >> 47)
}

/// Words of furc's stream kept at hand; past them a word is re-derived
/// (furc rarely reads that far: 32 words are 2,048 bits).
const CACHED: usize = 32;

/// furc's bit stream for one key: word 0 is MurmurHash64A of the key, word
/// n the re-hash of word n-1. Computed as read, on the stack.
pub struct Bits {
    words: [u64; CACHED],
    have: usize,
}

impl Bits {
    pub fn new(key: &[u8]) -> Bits {
        let mut words = [0; CACHED];
        words[0] = murmur64a(key, FURC_SEED);
        Bits { words, have: 1 }
    }

    fn word(&mut self, ord: usize) -> u64 {
        while self.have <= ord.min(CACHED - 1) {
            let next = rehash(self.words.get(self.have - 1).copied().unwrap_or_default());
            if let Some(w) = self.words.get_mut(self.have) {
                *w = next;
            }
            self.have += 1;
        }
        match self.words.get(ord) {
            Some(w) => *w,
            None => (CACHED..=ord).fold(self.words.last().copied().unwrap_or_default(), |w, _| rehash(w)),
        }
    }

    fn bit(&mut self, a: u32) -> u32 {
        ((self.word((a >> 6) as usize) >> (a & 63)) & 1) as u32
    }
}

/// `furc_hash(key, m)` over the key's bit stream.
pub fn furc(bits: &mut Bits, m: u32) -> u32 {
    if m <= 1 {
        return 0;
    }
    let mut d = 32 - (m - 1).leading_zeros();
    let mut a = d;
    for _ in 0..FURC_TRIES {
        while bits.bit(a) == 0 {
            d -= 1;
            if d == 0 {
                return 0;
            }
            a = d;
        }
        a += FURC_SHIFT;
        let mut num = 1u32;
        for _ in 1..d {
            num = (num << 1) | bits.bit(a);
            a += FURC_SHIFT;
        }
        if num < m {
            return num;
        }
    }
    0
}

/// The key mcrouter hashes for a key as memcached stores it: cut at the
/// first `|#|` (the routing prefix never reaches the server).
pub fn stored_routing_key(key: &[u8]) -> &[u8] {
    match memchr::memmem::find(key, b"|#|") {
        Some(at) => key.get(..at).unwrap_or(key),
        None => key,
    }
}

/// The key mcrouter hashes for a request's key (`carbon::Keys::update`):
/// without a `/region/cluster/` prefix, cut at the first `|#|`.
pub fn routing_key(key: &[u8]) -> &[u8] {
    let mut rest = key;
    if key.first() == Some(&b'/') {
        let mut pos = Some(1usize);
        for _ in 0..2 {
            pos = pos.and_then(|p| key.get(p..)?.iter().position(|b| *b == b'/').map(|i| p + i + 1));
        }
        if let Some(p) = pos {
            rest = key.get(p..).unwrap_or(key);
        }
    }
    stored_routing_key(rest)
}

/// `WeightedCh3HashFunc::hash` over `buf` (the routing key and salt), with
/// the weights of one pool. `buf` gets the retry salts appended and is
/// given back as it came.
pub fn weighted_ch3(buf: &mut Vec<u8>, weights: &[f64]) -> usize {
    let mut first = FirstTry::new(buf);
    first.index(weights).unwrap_or_else(|_| retried(buf, weights))
}

/// The same for two pools at once: the first try (the furc stream and the
/// SpookyHash of the unsalted key) is shared; only a rejected key is
/// salted and tried again for its pool.
pub fn weighted_ch3_pair(buf: &mut Vec<u8>, old: &[f64], new: &[f64]) -> (usize, usize) {
    let mut first = FirstTry::new(buf);
    let (o, n) = (first.index(old), first.index(new));
    (o.unwrap_or_else(|_| retried(buf, old)), n.unwrap_or_else(|_| retried(buf, new)))
}

/// The first of WeightedCh3's tries, on the unsalted key.
struct FirstTry {
    bits: Bits,
    p: u64,
}

impl FirstTry {
    fn new(key: &[u8]) -> FirstTry {
        FirstTry { bits: Bits::new(key), p: u64::from(spooky_hash32(key, WEIGHTED_SEED)) }
    }

    /// Ch3's index, if the key's probability falls under its weight.
    fn index(&mut self, weights: &[f64]) -> Result<usize, usize> {
        let index = furc(&mut self.bits, weights.len() as u32) as usize;
        if self.p < threshold(weights, index) {
            Ok(index)
        } else {
            Err(index)
        }
    }
}

/// `weight × 4294967295.0`, truncated to an integer (the C++ conversion).
fn threshold(weights: &[f64], index: usize) -> u64 {
    (weights.get(index).copied().unwrap_or_default() * f64::from(u32::MAX)) as u64
}

/// The tries after the first: the key with the salt's decimal digits
/// appended, least significant first ("0".."9", "01", "11", …), 31 more
/// times; the last index if every try is rejected.
fn retried(buf: &mut Vec<u8>, weights: &[f64]) -> usize {
    let base = buf.len();
    let mut index = 0;
    for salt in 0..WEIGHTED_TRIES - 1 {
        let mut s = salt;
        loop {
            buf.push(b'0' + (s % 10) as u8);
            s /= 10;
            if s == 0 {
                break;
            }
        }
        let p = u64::from(spooky_hash32(buf, WEIGHTED_SEED));
        index = furc(&mut Bits::new(buf), weights.len() as u32) as usize;
        buf.truncate(base);
        if p < threshold(weights, index) {
            break;
        }
    }
    index
}

/// Which of mcrouter's hash functions a pool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ch3,
    Crc32,
    WeightedCh3,
}

/// One pool: its size and, for `WeightedCh3`, each server's weight.
#[derive(Debug, Clone, PartialEq)]
struct Pool {
    n: u32,
    weights: Vec<f64>,
}

impl Pool {
    fn new(list: &[Server], func: Func) -> Result<Pool, LayoutError> {
        if func != Func::Crc32 && list.len() > MAX_POOL {
            return Err(LayoutError(format!("{} servers: mcrouter's Ch3 takes at most {MAX_POOL}", list.len())));
        }
        let weights = match func {
            Func::WeightedCh3 => list.iter().map(|s| s.fraction).collect(),
            _ => Vec::new(),
        };
        Ok(Pool { n: list.len() as u32, weights })
    }
}

/// An mcrouter pool under the old list and under the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Mcrouter {
    func: Func,
    salt: Vec<u8>,
    old: Pool,
    new: Pool,
}

// Weights are checked finite and within [0, 1] before they get here.
impl Eq for Mcrouter {}

impl Mcrouter {
    pub fn new(old: &[Server], new: &[Server], func: Func, salt: Option<&str>) -> Result<Mcrouter, LayoutError> {
        let salt = salt.unwrap_or_default().as_bytes().to_vec();
        Ok(Mcrouter { func, salt, old: Pool::new(old, func)?, new: Pool::new(new, func)? })
    }
}

impl Family for Mcrouter {
    fn owners(&self, key: &Key<'_>, scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        let (old, new) = (self.old.n, self.new.n);
        if old == 0 || new == 0 {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(stored_routing_key(key.bytes));
        scratch.extend_from_slice(&self.salt);
        Some(match self.func {
            Func::Ch3 => {
                let mut bits = Bits::new(scratch);
                (furc(&mut bits, old) as usize, furc(&mut bits, new) as usize)
            }
            Func::Crc32 => {
                let h = crc32(scratch) & 0x7fff_ffff;
                ((h % old) as usize, (h % new) as usize)
            }
            Func::WeightedCh3 => weighted_ch3_pair(scratch, &self.old.weights, &self.new.weights),
        })
    }
}

// SpookyHash V2 (Bob Jenkins, public domain; folly/hash/SpookyHashV2),
// little-endian, as mcrouter's WeightedCh3 calls it: Hash32(key, seed).

const SC_CONST: u64 = 0xdead_beef_dead_beef;
const SC_NUM_VARS: usize = 12;
const SC_BLOCK: usize = SC_NUM_VARS * 8;
const SC_BUF: usize = 2 * SC_BLOCK;

/// SpookyHash V2's 32-bit hash: the low half of `hash1` of `Hash128` seeded
/// with `seed` twice.
pub fn spooky_hash32(message: &[u8], seed: u32) -> u32 {
    spooky_hash128(message, u64::from(seed), u64::from(seed)).0 as u32
}

/// SpookyHash V2's 128-bit hash as (hash1, hash2).
pub fn spooky_hash128(message: &[u8], seed1: u64, seed2: u64) -> (u64, u64) {
    if message.len() < SC_BUF {
        return spooky_short(message, seed1, seed2);
    }
    let mut h = [seed1, seed2, SC_CONST, seed1, seed2, SC_CONST, seed1, seed2, SC_CONST, seed1, seed2, SC_CONST];
    let (blocks, rest) = message.as_chunks::<SC_BLOCK>();
    for block in blocks {
        spooky_mix(&words12(block), &mut h);
    }
    let mut last = [0u8; SC_BLOCK];
    for (to, from) in last.iter_mut().zip(rest) {
        *to = *from;
    }
    if let Some(b) = last.last_mut() {
        *b = rest.len() as u8;
    }
    let data = words12(&last);
    for (h, d) in h.iter_mut().zip(data) {
        *h = h.wrapping_add(d);
    }
    for _ in 0..3 {
        spooky_end_partial(&mut h);
    }
    (h[0], h[1])
}

fn words12(block: &[u8; SC_BLOCK]) -> [u64; SC_NUM_VARS] {
    let (words, _) = block.as_chunks::<8>();
    let mut out = [0u64; SC_NUM_VARS];
    for (o, w) in out.iter_mut().zip(words) {
        *o = u64::from_le_bytes(*w);
    }
    out
}

#[allow(clippy::indexing_slicing)] // fixed-size arrays indexed by constants
fn spooky_mix(data: &[u64; SC_NUM_VARS], s: &mut [u64; SC_NUM_VARS]) {
    const ROT: [u32; SC_NUM_VARS] = [11, 32, 43, 31, 17, 28, 39, 57, 55, 54, 22, 46];
    for (i, (d, r)) in data.iter().zip(ROT).enumerate() {
        // s[i] += data[i]; s[i+2] ^= s[i+10]; s[i+11] ^= s[i]; s[i] = rot(s[i]);
        // s[i+11] += s[i+1]  (indexes mod 12)
        s[i] = s[i].wrapping_add(*d);
        s[(i + 2) % 12] ^= s[(i + 10) % 12];
        s[(i + 11) % 12] ^= s[i];
        s[i] = s[i].rotate_left(r);
        s[(i + 11) % 12] = s[(i + 11) % 12].wrapping_add(s[(i + 1) % 12]);
    }
}

#[allow(clippy::indexing_slicing)] // fixed-size arrays indexed by constants
fn spooky_end_partial(h: &mut [u64; SC_NUM_VARS]) {
    const ROT: [u32; SC_NUM_VARS] = [44, 15, 34, 21, 38, 33, 10, 13, 38, 53, 42, 54];
    for (i, r) in ROT.into_iter().enumerate() {
        // h[i+11] += h[i+1]; h[i+2] ^= h[i+11]; h[i+1] = rot(h[i+1])
        let (a, b, c) = ((i + 11) % 12, (i + 1) % 12, (i + 2) % 12);
        h[a] = h[a].wrapping_add(h[b]);
        h[c] ^= h[a];
        h[b] = h[b].rotate_left(r);
    }
}

fn spooky_short(message: &[u8], seed1: u64, seed2: u64) -> (u64, u64) {
    let (mut a, mut b, mut c, mut d) = (seed1, seed2, SC_CONST, SC_CONST);
    let len = message.len();
    let word = |i: usize| -> u64 {
        let mut w = [0u8; 8];
        for (to, from) in w.iter_mut().zip(message.get(i..).unwrap_or_default()) {
            *to = *from;
        }
        u64::from_le_bytes(w)
    };
    let mut at = 0;
    if len > 15 {
        while at + 32 <= len {
            c = c.wrapping_add(word(at));
            d = d.wrapping_add(word(at + 8));
            short_mix(&mut a, &mut b, &mut c, &mut d);
            a = a.wrapping_add(word(at + 16));
            b = b.wrapping_add(word(at + 24));
            at += 32;
        }
        if len - at >= 16 {
            c = c.wrapping_add(word(at));
            d = d.wrapping_add(word(at + 8));
            short_mix(&mut a, &mut b, &mut c, &mut d);
            at += 16;
        }
    }
    let remainder = len - at;
    d = d.wrapping_add((len as u64) << 56);
    // The last 0..15 bytes: up to 8 into c, the rest into d, little-endian
    // (the reference's fall-through cases add exactly these).
    if remainder == 0 {
        c = c.wrapping_add(SC_CONST);
        d = d.wrapping_add(SC_CONST);
    } else {
        let tail = message.get(at..).unwrap_or_default();
        let (low, high) = tail.split_at(tail.len().min(8));
        let le = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |w, b| (w << 8) | u64::from(*b));
        c = c.wrapping_add(le(low));
        d = d.wrapping_add(le(high));
    }
    short_end(&mut a, &mut b, &mut c, &mut d);
    (a, b)
}

fn short_mix(h0: &mut u64, h1: &mut u64, h2: &mut u64, h3: &mut u64) {
    let rounds: [(u32, u32, u32, u32); 3] = [(50, 52, 30, 41), (54, 48, 38, 37), (62, 34, 5, 36)];
    for (r0, r1, r2, r3) in rounds {
        *h2 = h2.rotate_left(r0).wrapping_add(*h3);
        *h0 ^= *h2;
        *h3 = h3.rotate_left(r1).wrapping_add(*h0);
        *h1 ^= *h3;
        *h0 = h0.rotate_left(r2).wrapping_add(*h1);
        *h2 ^= *h0;
        *h1 = h1.rotate_left(r3).wrapping_add(*h2);
        *h3 ^= *h1;
    }
}

fn short_end(h0: &mut u64, h1: &mut u64, h2: &mut u64, h3: &mut u64) {
    *h3 ^= *h2;
    *h2 = h2.rotate_left(15);
    *h3 = h3.wrapping_add(*h2);
    *h0 ^= *h3;
    *h3 = h3.rotate_left(52);
    *h0 = h0.wrapping_add(*h3);
    *h1 ^= *h0;
    *h0 = h0.rotate_left(26);
    *h1 = h1.wrapping_add(*h0);
    *h2 ^= *h1;
    *h1 = h1.rotate_left(51);
    *h2 = h2.wrapping_add(*h1);
    *h3 ^= *h2;
    *h2 = h2.rotate_left(28);
    *h3 = h3.wrapping_add(*h2);
    *h0 ^= *h3;
    *h3 = h3.rotate_left(9);
    *h0 = h0.wrapping_add(*h3);
    *h1 ^= *h0;
    *h0 = h0.rotate_left(47);
    *h1 = h1.wrapping_add(*h0);
    *h2 ^= *h1;
    *h1 = h1.rotate_left(54);
    *h2 = h2.wrapping_add(*h1);
    *h3 ^= *h2;
    *h2 = h2.rotate_left(32);
    *h3 = h3.wrapping_add(*h2);
    *h0 ^= *h3;
    *h3 = h3.rotate_left(25);
    *h0 = h0.wrapping_add(*h3);
    *h1 ^= *h0;
    *h0 = h0.rotate_left(63);
    *h1 = h1.wrapping_add(*h0);
}

#[cfg(test)]
mod tests;
