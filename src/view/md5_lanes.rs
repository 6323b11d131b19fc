//! MD5 of several short keys at once, for the dump filter.
//!
//! Every key a source lists is hashed to find its vbucket: about 2,000,000
//! digests for a 1,000,000-key 3→4 resize, a fifth of Astaire's CPU with
//! one key at a time. One MD5 is a chain of 64 dependent steps, but eight
//! (or sixteen) keys are independent chains: computed side by side on
//! `[u32; N]` lanes, the compiler turns each step into SIMD instructions;
//! with AVX-512, thirty-two keys go through [`wide`], written with
//! intrinsics (the CPU's widest vectors are chosen at run time). Keys that
//! fit one block (≤ 55 bytes, nearly every Clearwater key) go this way;
//! longer ones, and the tail of a batch, go through the `md-5` crate. The
//! tests compare both on every length from 0 to 300 bytes.
//!
//! Why not a crate: the maintained MD5 crate (`md-5`) hashes one message at
//! a time; the multi-buffer ones are young single-author projects, and this
//! is 60 lines checked against `md-5` itself.

use md5::{Digest, Md5};

/// Keys hashed side by side where the CPU has no wider vectors (eight
/// `u32` lanes fill two SSE2 registers or one AVX2 register).
pub const LANES: usize = 8;

/// Keys hashed side by side with AVX-512: two groups of sixteen, each
/// group's state in 512-bit registers, with native rotates and three-input
/// logic for MD5's mixing functions ([`wide`]).
#[cfg(target_arch = "x86_64")]
const WIDE_LANES: usize = 32;

/// The longest key that fits one 64-byte block with its padding.
const ONE_BLOCK: usize = 55;

const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];

const SHIFT: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];

const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// The digests of `keys` (any number, any lengths), in order, into `out`.
///
/// The release build targets plain x86-64 (SSE2), so the widest vectors the
/// CPU has are chosen here, at run time: AVX-512 hashes thirty-two keys per
/// step, AVX2 eight, anything else eight on SSE2 (or scalar elsewhere).
pub fn digests(keys: &[&[u8]], out: &mut Vec<[u8; 16]>) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::avx512::bw_available() {
            // SAFETY: the CPU has AVX-512 F and BW, checked just above.
            return unsafe { digests_avx512(keys, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { digests_avx2(keys, out) };
        }
    }
    digests_in::<LANES>(keys, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn digests_avx512(keys: &[&[u8]], out: &mut Vec<[u8; 16]>) {
    grouped::<WIDE_LANES>(keys, out, |keys, which, out| wide::lanes(keys, which, out));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn digests_avx2(keys: &[&[u8]], out: &mut Vec<[u8; 16]>) {
    digests_in::<LANES>(keys, out);
}

/// [`digests`] with `N` lanes, compiled into each of the CPU-specific
/// functions above.
#[inline(always)]
fn digests_in<const N: usize>(keys: &[&[u8]], out: &mut Vec<[u8; 16]>) {
    grouped::<N>(keys, out, one_block_lanes::<N>);
}

/// The digests of `keys` into `out`: keys of one block in groups of `N`
/// through `kernel`, the others and a last partial group one at a time.
#[inline(always)]
fn grouped<const N: usize>(
    keys: &[&[u8]],
    out: &mut Vec<[u8; 16]>,
    kernel: impl Fn(&[&[u8]], &[usize; N], &mut [[u8; 16]]),
) {
    out.clear();
    out.resize(keys.len(), [0; 16]);
    let mut group = [0usize; N];
    let mut n = 0;
    for (i, key) in keys.iter().enumerate() {
        if key.len() > ONE_BLOCK {
            out[i] = Md5::digest(key).into();
            continue;
        }
        group[n] = i;
        n += 1;
        if n == N {
            kernel(keys, &group, out);
            n = 0;
        }
    }
    for &i in &group[..n] {
        out[i] = Md5::digest(keys[i]).into();
    }
}

/// MD5 of `N` keys of at most [`ONE_BLOCK`] bytes each.
#[inline(always)]
fn one_block_lanes<const N: usize>(keys: &[&[u8]], which: &[usize; N], out: &mut [[u8; 16]]) {
    // The padded block of each key as 16 little-endian words, word-major.
    let mut m = [[0u32; N]; 16];
    for (lane, &i) in which.iter().enumerate() {
        let key = keys[i];
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        block[key.len()] = 0x80;
        block[56..].copy_from_slice(&(key.len() as u64 * 8).to_le_bytes());
        for (w, word) in block.chunks_exact(4).enumerate() {
            m[w][lane] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
    }
    let (mut a, mut b, mut c, mut d) = ([INIT[0]; N], [INIT[1]; N], [INIT[2]; N], [INIT[3]; N]);
    // One loop per round, so that each has a single mixing function and
    // its lane loop compiles to straight vector code (a `match` inside the
    // lane loop kept it scalar).
    for (step, word) in m.iter().enumerate() {
        md5_step(&mut a, &mut b, &mut c, &mut d, step, word, |x, y, z| (x & y) | (!x & z));
    }
    for step in 16..32 {
        md5_step(&mut a, &mut b, &mut c, &mut d, step, &m[(5 * step + 1) % 16], |x, y, z| (z & x) | (!z & y));
    }
    for step in 32..48 {
        md5_step(&mut a, &mut b, &mut c, &mut d, step, &m[(3 * step + 5) % 16], |x, y, z| x ^ y ^ z);
    }
    for step in 48..64 {
        md5_step(&mut a, &mut b, &mut c, &mut d, step, &m[(7 * step) % 16], |x, y, z| y ^ (x | !z));
    }
    for (lane, &i) in which.iter().enumerate() {
        let words = [
            INIT[0].wrapping_add(a[lane]),
            INIT[1].wrapping_add(b[lane]),
            INIT[2].wrapping_add(c[lane]),
            INIT[3].wrapping_add(d[lane]),
        ];
        for (w, word) in words.iter().enumerate() {
            out[i][w * 4..w * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
    }
}

/// One of MD5's 64 steps on `N` lanes, with mixing function `mix`.
#[inline(always)]
fn md5_step<const N: usize>(
    a: &mut [u32; N],
    b: &mut [u32; N],
    c: &mut [u32; N],
    d: &mut [u32; N],
    step: usize,
    word: &[u32; N],
    mix: impl Fn(u32, u32, u32) -> u32,
) {
    let s = SHIFT[step / 16][step % 4];
    let mut f = [0u32; N];
    for l in 0..N {
        f[l] = mix(b[l], c[l], d[l]).wrapping_add(a[l]).wrapping_add(K[step]).wrapping_add(word[l]);
    }
    *a = *d;
    *d = *c;
    *c = *b;
    for l in 0..N {
        b[l] = b[l].wrapping_add(f[l].rotate_left(s));
    }
}

/// MD5s sixteen to a 512-bit register, written with intrinsics: the
/// padded blocks built by masked loads and transposed into word-major
/// order by shuffles (the portable kernel builds them byte by byte through
/// memory, which took two thirds of its time), and the 64 steps unrolled,
/// each mixing function one `vpternlogd`.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{INIT, K, ONE_BLOCK};
    use std::arch::x86_64::*;

    /// The 64-byte padded block of a key of at most [`ONE_BLOCK`] bytes:
    /// the key, 0x80, zeros, and its length in bits in word 14.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn block(key: &[u8]) -> __m512i {
        let len = key.len().min(ONE_BLOCK);
        // SAFETY: the mask reads the key's own `len` bytes and no others
        // (masked-off lanes are not accessed).
        let v = unsafe { _mm512_maskz_loadu_epi8(crate::avx512::below(len), key.as_ptr().cast()) };
        let v = _mm512_mask_mov_epi8(v, 1u64 << len, _mm512_set1_epi8(0x80_u8 as i8));
        _mm512_mask_mov_epi32(v, 1 << 14, _mm512_set1_epi32((len * 8) as i32))
    }

    /// Rows of 16 words (one key's block each) into columns (word `w` of
    /// every key): 32-bit, then 64-bit interleaves within 128-bit lanes,
    /// then two rounds of 128-bit lane shuffles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(r: &[__m512i; 16]) -> [__m512i; 16] {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in (0..16).step_by(2) {
            t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        }
        // u[4g + s]: rows 4g..4g+4 of words 4k + s in 128-bit lane k.
        let mut u = [_mm512_setzero_si512(); 16];
        for g in (0..16).step_by(4) {
            u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
            u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
            u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
            u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
        }
        let mut c = [_mm512_setzero_si512(); 16];
        for s in 0..4 {
            let v0 = _mm512_shuffle_i32x4::<0x88>(u[s], u[4 + s]);
            let v1 = _mm512_shuffle_i32x4::<0xDD>(u[s], u[4 + s]);
            let w0 = _mm512_shuffle_i32x4::<0x88>(u[8 + s], u[12 + s]);
            let w1 = _mm512_shuffle_i32x4::<0xDD>(u[8 + s], u[12 + s]);
            c[s] = _mm512_shuffle_i32x4::<0x88>(v0, w0);
            c[8 + s] = _mm512_shuffle_i32x4::<0xDD>(v0, w0);
            c[4 + s] = _mm512_shuffle_i32x4::<0x88>(v1, w1);
            c[12 + s] = _mm512_shuffle_i32x4::<0xDD>(v1, w1);
        }
        c
    }

    /// MD5 of the keys `which` of `keys` (each at most [`ONE_BLOCK`]
    /// bytes) into their places in `out`: two groups of sixteen, whose
    /// steps interleave so that one group's work fills the other's waits
    /// on its chain of dependent steps (11.0 against 12.2 ns a key with
    /// one group, `benches/md5_lanes.rs`).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn lanes(keys: &[&[u8]], which: &[usize; super::WIDE_LANES], out: &mut [[u8; 16]]) {
        groups::<{ super::WIDE_LANES / 16 }>(keys, which, out);
    }

    /// MD5 of `16 * G` keys, `G` groups of sixteen side by side.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn groups<const G: usize>(keys: &[&[u8]], which: &[usize], out: &mut [[u8; 16]]) {
        let mut m = [[_mm512_setzero_si512(); 16]; G];
        for g in 0..G {
            let mut rows = [_mm512_setzero_si512(); 16];
            for (row, &i) in rows.iter_mut().zip(&which[16 * g..16 * g + 16]) {
                *row = block(keys[i]);
            }
            m[g] = transpose(&rows);
        }
        let (mut a, mut b, mut c, mut d) = (
            [_mm512_set1_epi32(INIT[0] as i32); G],
            [_mm512_set1_epi32(INIT[1] as i32); G],
            [_mm512_set1_epi32(INIT[2] as i32); G],
            [_mm512_set1_epi32(INIT[3] as i32); G],
        );
        // One step: a = b + ((a + mix(b, c, d) + K[i] + m[w]) <<< s), the
        // mixing function as `vpternlogd`'s truth table over (x, y, z).
        macro_rules! step {
            ($a:ident, $b:ident, $c:ident, $d:ident, $table:literal, $i:expr, $w:literal, $s:literal) => {
                for g in 0..G {
                    let mix = _mm512_ternarylogic_epi32::<$table>($b[g], $c[g], $d[g]);
                    let sum = _mm512_add_epi32(_mm512_add_epi32($a[g], _mm512_set1_epi32(K[$i] as i32)), m[g][$w]);
                    $a[g] = _mm512_add_epi32($b[g], _mm512_rol_epi32::<$s>(_mm512_add_epi32(sum, mix)));
                }
            };
        }
        // F = x ? y : z (0xCA), G = z ? x : y (0xE4 over x, y, z),
        // H = x ^ y ^ z (0x96), I = y ^ (x | !z) (0x39).
        macro_rules! four {
            ($table:literal, $i:literal, [$w0:literal, $w1:literal, $w2:literal, $w3:literal], [$s0:literal, $s1:literal, $s2:literal, $s3:literal]) => {
                step!(a, b, c, d, $table, $i, $w0, $s0);
                step!(d, a, b, c, $table, ($i + 1), $w1, $s1);
                step!(c, d, a, b, $table, ($i + 2), $w2, $s2);
                step!(b, c, d, a, $table, ($i + 3), $w3, $s3);
            };
        }
        four!(0xCA, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
        four!(0xCA, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
        four!(0xCA, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
        four!(0xCA, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
        four!(0xE4, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
        four!(0xE4, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
        four!(0xE4, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
        four!(0xE4, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
        four!(0x96, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
        four!(0x96, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
        four!(0x96, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
        four!(0x96, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
        four!(0x39, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
        four!(0x39, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
        four!(0x39, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
        four!(0x39, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
        for g in 0..G {
            let a = _mm512_add_epi32(a[g], _mm512_set1_epi32(INIT[0] as i32));
            let b = _mm512_add_epi32(b[g], _mm512_set1_epi32(INIT[1] as i32));
            let c = _mm512_add_epi32(c[g], _mm512_set1_epi32(INIT[2] as i32));
            let d = _mm512_add_epi32(d[g], _mm512_set1_epi32(INIT[3] as i32));
            // Key 4j + q's digest is 128-bit lane j of `q`'s vector below.
            let (ab_lo, ab_hi, cd_lo, cd_hi) = (
                _mm512_unpacklo_epi32(a, b),
                _mm512_unpackhi_epi32(a, b),
                _mm512_unpacklo_epi32(c, d),
                _mm512_unpackhi_epi32(c, d),
            );
            let quarters = [
                _mm512_unpacklo_epi64(ab_lo, cd_lo),
                _mm512_unpackhi_epi64(ab_lo, cd_lo),
                _mm512_unpacklo_epi64(ab_hi, cd_hi),
                _mm512_unpackhi_epi64(ab_hi, cd_hi),
            ];
            for (q, v) in quarters.iter().enumerate() {
                let mut bytes = [[0u8; 16]; 4];
                // SAFETY: `bytes` is 64 bytes, the width of the store.
                unsafe { _mm512_storeu_si512(bytes.as_mut_ptr().cast(), *v) };
                for (j, digest) in bytes.iter().enumerate() {
                    out[which[16 * g + 4 * j + q]] = *digest;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(keys: &[Vec<u8>]) -> Vec<[u8; 16]> {
        keys.iter().map(|k| Md5::digest(k).into()).collect()
    }

    /// The digests from every kernel this CPU can run (the portable one
    /// always), each named.
    fn every_kernel(keys: &[&[u8]]) -> Vec<(&'static str, Vec<[u8; 16]>)> {
        let mut results = Vec::new();
        let mut out = Vec::new();
        digests_in::<LANES>(keys, &mut out);
        results.push(("portable", out.clone()));
        digests(keys, &mut out);
        results.push(("dispatched", out.clone()));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                unsafe { digests_avx2(keys, &mut out) };
                results.push(("avx2", out.clone()));
            }
            if crate::avx512::bw_available() {
                // SAFETY: the CPU has AVX-512 F and BW, checked just above.
                unsafe { digests_avx512(keys, &mut out) };
                results.push(("avx512", out.clone()));
            }
        }
        results
    }

    #[test]
    fn every_length_matches_md5() {
        let keys: Vec<Vec<u8>> = (0..=300).map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for (kernel, out) in every_kernel(&refs) {
            assert_eq!(out, reference(&keys), "{kernel}");
        }
    }

    /// Each length a batch of its own, so that every length of one block
    /// goes through every lane of every kernel, and the lengths around
    /// the block's end through the `md-5` path.
    #[test]
    fn every_length_in_every_lane_matches_md5() {
        for n in 0..=70usize {
            let keys: Vec<Vec<u8>> = (0..64).map(|k| (0..n).map(|i| (i * 31 + k * 7 + n) as u8).collect()).collect();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            for (kernel, out) in every_kernel(&refs) {
                assert_eq!(out, reference(&keys), "{kernel}, keys of {n} bytes");
            }
        }
    }

    #[test]
    fn known_vectors() {
        // 65 keys: the first 64 go through the lanes (groups of eight, or
        // two of thirty-two), the last one not.
        let keys: Vec<&[u8]> = [&b""[..], b"abc", b"message digest"].into_iter().cycle().take(65).collect();
        let expected = [
            "d41d8cd98f00b204e9800998ecf8427e",
            "900150983cd24fb0d6963f7d28e17f72",
            "f96b697d7cb7938d525a2f31aaf161d0",
        ];
        for (kernel, out) in every_kernel(&keys) {
            let hex: Vec<String> = out.iter().map(|d| d.iter().map(|b| format!("{b:02x}")).collect()).collect();
            assert_eq!(hex, expected.into_iter().cycle().take(65).collect::<Vec<_>>(), "{kernel}");
        }
    }

    proptest! {
        #[test]
        fn any_batch_matches_md5(keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..120)) {
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            for (kernel, out) in every_kernel(&refs) {
                prop_assert_eq!(out, reference(&keys), "{}", kernel);
            }
        }
    }
}
