//! MD5 of several short keys at once, for the dump filter.
//!
//! Every key a source lists is hashed to find its vbucket: about 2,000,000
//! digests for a 1,000,000-key 3→4 resize, a fifth of Astaire's CPU with
//! one key at a time. One MD5 is a chain of 64 dependent steps, but eight
//! keys are eight independent chains: computed side by side on `[u32; 8]`
//! lanes, the compiler turns each step into SIMD instructions. Keys that
//! fit one block (≤ 55 bytes, nearly every Clearwater key) go this way;
//! longer ones, and the tail of a batch, go through the `md-5` crate. The
//! tests compare both on every length from 0 to 300 bytes.
//!
//! Why not a crate: the maintained MD5 crate (`md-5`) hashes one message at
//! a time; the multi-buffer ones are young single-author projects, and this
//! is 60 lines checked against `md-5` itself.

use md5::{Digest, Md5};

/// Keys hashed side by side.
pub const LANES: usize = 8;

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

type Lane = [u32; LANES];

/// The digests of `keys` (any number, any lengths), in order, into `out`.
pub fn digests(keys: &[&[u8]], out: &mut Vec<[u8; 16]>) {
    out.clear();
    out.resize(keys.len(), [0; 16]);
    let mut group = [0usize; LANES];
    let mut n = 0;
    for (i, key) in keys.iter().enumerate() {
        if key.len() > ONE_BLOCK {
            out[i] = Md5::digest(key).into();
            continue;
        }
        group[n] = i;
        n += 1;
        if n == LANES {
            one_block_lanes(keys, &group, out);
            n = 0;
        }
    }
    for &i in &group[..n] {
        out[i] = Md5::digest(keys[i]).into();
    }
}

/// MD5 of `LANES` keys of at most [`ONE_BLOCK`] bytes each.
fn one_block_lanes(keys: &[&[u8]], which: &[usize; LANES], out: &mut [[u8; 16]]) {
    // The padded block of each key as 16 little-endian words, word-major.
    let mut m = [[0u32; LANES]; 16];
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
    let (mut a, mut b, mut c, mut d): (Lane, Lane, Lane, Lane) =
        ([INIT[0]; LANES], [INIT[1]; LANES], [INIT[2]; LANES], [INIT[3]; LANES]);
    for step in 0..64 {
        let (round, g) = match step {
            0..=15 => (0, step),
            16..=31 => (1, (5 * step + 1) % 16),
            32..=47 => (2, (3 * step + 5) % 16),
            _ => (3, (7 * step) % 16),
        };
        let s = SHIFT[round][step % 4];
        let mut f = [0u32; LANES];
        for l in 0..LANES {
            let (x, y, z) = (b[l], c[l], d[l]);
            let mix = match round {
                0 => (x & y) | (!x & z),
                1 => (z & x) | (!z & y),
                2 => x ^ y ^ z,
                _ => y ^ (x | !z),
            };
            f[l] = mix.wrapping_add(a[l]).wrapping_add(K[step]).wrapping_add(m[g][l]);
        }
        a = d;
        d = c;
        c = b;
        for l in 0..LANES {
            b[l] = b[l].wrapping_add(f[l].rotate_left(s));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(keys: &[Vec<u8>]) -> Vec<[u8; 16]> {
        keys.iter().map(|k| Md5::digest(k).into()).collect()
    }

    #[test]
    fn every_length_matches_md5() {
        let keys: Vec<Vec<u8>> = (0..=300).map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        digests(&refs, &mut out);
        assert_eq!(out, reference(&keys));
    }

    #[test]
    fn known_vectors() {
        // Nine keys: the first eight go through the lanes, the ninth not.
        let keys: Vec<&[u8]> = [&b""[..], b"abc", b"message digest"].into_iter().cycle().take(9).collect();
        let mut out = Vec::new();
        digests(&keys, &mut out);
        let hex: Vec<String> = out.iter().map(|d| d.iter().map(|b| format!("{b:02x}")).collect()).collect();
        let expected = [
            "d41d8cd98f00b204e9800998ecf8427e",
            "900150983cd24fb0d6963f7d28e17f72",
            "f96b697d7cb7938d525a2f31aaf161d0",
        ];
        assert_eq!(hex, expected.into_iter().cycle().take(9).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn any_batch_matches_md5(keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..40)) {
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let mut out = Vec::new();
            digests(&refs, &mut out);
            prop_assert_eq!(out, reference(&keys));
        }
    }
}
