//! mcrouter's own vectors (mcrouter/lib/fbi/test/hash_test.cpp,
//! mcrouter/lib/test/*HashTest.cpp) and folly's SpookyHash V2 results.
use super::*;
use crate::placement::tests::servers;

fn ch3(key: &[u8], m: u32) -> u32 {
    furc(&mut Bits::new(key), m)
}

/// `kGoldenValues`: (key, m, furc_hash).
const GOLDEN: &[(&str, u32, u32)] = &[
    ("key0", 1, 0),
    ("key0", 2, 0),
    ("key0", 3, 0),
    ("key0", 5, 4),
    ("key0", 7, 5),
    ("key0", 10, 7),
    ("key0", 16, 14),
    ("key0", 50, 22),
    ("key0", 100, 22),
    ("key0", 500, 413),
    ("key0", 1000, 950),
    ("key0", 5000, 3375),
    ("key0", 10000, 3375),
    ("key0", 100000, 59045),
    ("key0", 1000000, 500854),
    ("key0", 8388608, 4701525),
    ("key0", 16777216, 10218333),
    ("key0", 1073741824, 856543823),
    ("key0", 4294967295, 2635611118),
    ("key1", 1, 0),
    ("key1", 2, 0),
    ("key1", 3, 2),
    ("key1", 5, 2),
    ("key1", 7, 2),
    ("key1", 10, 2),
    ("key1", 16, 2),
    ("key1", 50, 2),
    ("key1", 100, 2),
    ("key1", 500, 2),
    ("key1", 1000, 808),
    ("key1", 5000, 808),
    ("key1", 10000, 808),
    ("key1", 100000, 24368),
    ("key1", 1000000, 768680),
    ("key1", 8388608, 7205857),
    ("key1", 16777216, 7205857),
    ("key1", 1073741824, 144851818),
    ("key1", 4294967295, 1919030847),
    ("key2", 1, 0),
    ("key2", 2, 0),
    ("key2", 3, 0),
    ("key2", 5, 4),
    ("key2", 7, 4),
    ("key2", 10, 4),
    ("key2", 16, 14),
    ("key2", 50, 40),
    ("key2", 100, 40),
    ("key2", 500, 279),
    ("key2", 1000, 794),
    ("key2", 5000, 3741),
    ("key2", 10000, 3741),
    ("key2", 100000, 99468),
    ("key2", 1000000, 99468),
    ("key2", 8388608, 8033017),
    ("key2", 16777216, 8033017),
    ("key2", 1073741824, 720979435),
    ("key2", 4294967295, 720979435),
    ("key3", 1, 0),
    ("key3", 2, 1),
    ("key3", 3, 1),
    ("key3", 5, 1),
    ("key3", 7, 5),
    ("key3", 10, 5),
    ("key3", 16, 5),
    ("key3", 50, 5),
    ("key3", 100, 73),
    ("key3", 500, 214),
    ("key3", 1000, 214),
    ("key3", 5000, 1118),
    ("key3", 10000, 1118),
    ("key3", 100000, 98344),
    ("key3", 1000000, 567453),
    ("key4", 1, 0),
    ("key4", 2, 0),
    ("key4", 3, 2),
    ("key4", 5, 2),
    ("key4", 7, 2),
    ("key4", 10, 8),
    ("key4", 16, 10),
    ("key4", 50, 47),
    ("key4", 100, 47),
    ("key4", 500, 101),
    ("key4", 1000, 878),
    ("key4", 5000, 878),
    ("key4", 10000, 878),
    ("key4", 100000, 19896),
    ("key4", 1000000, 187582),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 1, 0),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 2, 0),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 3, 0),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 5, 4),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 7, 4),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10, 8),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16, 8),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 50, 18),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 100, 18),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 500, 18),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 1000, 964),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 5000, 1334),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10000, 5716),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 100000, 54971),
    ("someKey_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 1000000, 580644),
    ("short", 1, 0),
    ("short", 2, 1),
    ("short", 3, 2),
    ("short", 5, 4),
    ("short", 7, 6),
    ("short", 10, 6),
    ("short", 16, 12),
    ("short", 50, 12),
    ("short", 100, 12),
    ("short", 500, 172),
    ("short", 1000, 569),
    ("short", 5000, 4565),
    ("short", 10000, 4565),
    ("short", 100000, 94116),
    ("short", 1000000, 826962),
    ("short", 8388608, 6473107),
    ("short", 16777216, 10975421),
    ("short", 1073741824, 304085075),
    ("short", 4294967295, 3727818566),
    ("a", 1, 0),
    ("a", 2, 1),
    ("a", 3, 1),
    ("a", 5, 4),
    ("a", 7, 4),
    ("a", 10, 4),
    ("a", 16, 13),
    ("a", 50, 34),
    ("a", 100, 34),
    ("a", 500, 34),
    ("a", 1000, 900),
    ("a", 5000, 1565),
    ("a", 10000, 1565),
    ("a", 100000, 55594),
    ("a", 1000000, 570739),
    ("a", 8388608, 7695180),
    ("a", 16777216, 11809035),
    ("a", 1073741824, 207565192),
    ("a", 4294967295, 2134617590),
    ("ab", 1, 0),
    ("ab", 2, 1),
    ("ab", 3, 2),
    ("ab", 5, 2),
    ("ab", 7, 2),
    ("ab", 10, 2),
    ("ab", 16, 2),
    ("ab", 50, 35),
    ("ab", 100, 35),
    ("ab", 500, 429),
    ("ab", 1000, 429),
    ("ab", 5000, 4150),
    ("ab", 10000, 9404),
    ("ab", 100000, 13199),
    ("ab", 1000000, 103282),
    ("abc", 1, 0),
    ("abc", 2, 0),
    ("abc", 3, 0),
    ("abc", 5, 0),
    ("abc", 7, 5),
    ("abc", 10, 5),
    ("abc", 16, 15),
    ("abc", 50, 47),
    ("abc", 100, 69),
    ("abc", 500, 371),
    ("abc", 1000, 985),
    ("abc", 5000, 3019),
    ("abc", 10000, 3019),
    ("abc", 100000, 44962),
    ("abc", 1000000, 391441),
    ("mcrouter:pool:regional:0001", 1, 0),
    ("mcrouter:pool:regional:0001", 2, 0),
    ("mcrouter:pool:regional:0001", 3, 2),
    ("mcrouter:pool:regional:0001", 5, 3),
    ("mcrouter:pool:regional:0001", 7, 3),
    ("mcrouter:pool:regional:0001", 10, 3),
    ("mcrouter:pool:regional:0001", 16, 13),
    ("mcrouter:pool:regional:0001", 50, 27),
    ("mcrouter:pool:regional:0001", 100, 52),
    ("mcrouter:pool:regional:0001", 500, 493),
    ("mcrouter:pool:regional:0001", 1000, 829),
    ("mcrouter:pool:regional:0001", 5000, 4143),
    ("mcrouter:pool:regional:0001", 10000, 7488),
    ("mcrouter:pool:regional:0001", 100000, 36359),
    ("mcrouter:pool:regional:0001", 1000000, 669957),
    ("mcrouter:pool:regional:0001", 8388608, 6119431),
    ("mcrouter:pool:regional:0001", 16777216, 13341220),
    ("mcrouter:pool:regional:0001", 1073741824, 656478206),
    ("mcrouter:pool:regional:0001", 4294967295, 3984053628),
    ("mcrouter:pool:regional:0002", 1, 0),
    ("mcrouter:pool:regional:0002", 2, 1),
    ("mcrouter:pool:regional:0002", 3, 2),
    ("mcrouter:pool:regional:0002", 5, 4),
    ("mcrouter:pool:regional:0002", 7, 5),
    ("mcrouter:pool:regional:0002", 10, 5),
    ("mcrouter:pool:regional:0002", 16, 13),
    ("mcrouter:pool:regional:0002", 50, 13),
    ("mcrouter:pool:regional:0002", 100, 13),
    ("mcrouter:pool:regional:0002", 500, 405),
    ("mcrouter:pool:regional:0002", 1000, 788),
    ("mcrouter:pool:regional:0002", 5000, 788),
    ("mcrouter:pool:regional:0002", 10000, 6708),
    ("mcrouter:pool:regional:0002", 100000, 65904),
    ("mcrouter:pool:regional:0002", 1000000, 589635),
    ("user:12345:profile", 1, 0),
    ("user:12345:profile", 2, 1),
    ("user:12345:profile", 3, 1),
    ("user:12345:profile", 5, 4),
    ("user:12345:profile", 7, 4),
    ("user:12345:profile", 10, 4),
    ("user:12345:profile", 16, 10),
    ("user:12345:profile", 50, 29),
    ("user:12345:profile", 100, 77),
    ("user:12345:profile", 500, 77),
    ("user:12345:profile", 1000, 712),
    ("user:12345:profile", 5000, 4344),
    ("user:12345:profile", 10000, 5119),
    ("user:12345:profile", 100000, 96279),
    ("user:12345:profile", 1000000, 368844),
    ("user:67890:timeline", 1, 0),
    ("user:67890:timeline", 2, 0),
    ("user:67890:timeline", 3, 0),
    ("user:67890:timeline", 5, 0),
    ("user:67890:timeline", 7, 5),
    ("user:67890:timeline", 10, 7),
    ("user:67890:timeline", 16, 15),
    ("user:67890:timeline", 50, 15),
    ("user:67890:timeline", 100, 73),
    ("user:67890:timeline", 500, 104),
    ("user:67890:timeline", 1000, 748),
    ("user:67890:timeline", 5000, 3756),
    ("user:67890:timeline", 10000, 6138),
    ("user:67890:timeline", 100000, 86163),
    ("user:67890:timeline", 1000000, 86163),
    ("cache:item:999999", 1, 0),
    ("cache:item:999999", 2, 1),
    ("cache:item:999999", 3, 2),
    ("cache:item:999999", 5, 2),
    ("cache:item:999999", 7, 2),
    ("cache:item:999999", 10, 2),
    ("cache:item:999999", 16, 2),
    ("cache:item:999999", 50, 17),
    ("cache:item:999999", 100, 17),
    ("cache:item:999999", 500, 184),
    ("cache:item:999999", 1000, 673),
    ("cache:item:999999", 5000, 3278),
    ("cache:item:999999", 10000, 5532),
    ("cache:item:999999", 100000, 72068),
    ("cache:item:999999", 1000000, 180793),
    ("", 1, 0),
    ("", 2, 1),
    ("", 3, 1),
    ("", 5, 1),
    ("", 7, 6),
    ("", 10, 8),
    ("", 16, 12),
    ("", 50, 12),
    ("", 100, 72),
    ("", 500, 72),
    ("", 1000, 72),
    ("", 5000, 3031),
    ("", 10000, 3031),
    ("", 100000, 86003),
    ("", 1000000, 407687),
];

#[test]
fn furc_golden_values() {
    for &(key, m, want) in GOLDEN {
        assert_eq!(ch3(key.as_bytes(), m), want, "furc_hash({key:?}, {m})");
    }
    let po2 = [
        (4, 0),
        (8, 7),
        (32, 22),
        (64, 22),
        (128, 115),
        (256, 115),
        (512, 413),
        (1024, 950),
        (2048, 1735),
        (4096, 3375),
        (8192, 3375),
    ];
    for (m, want) in po2 {
        assert_eq!(ch3(b"key0", m), want, "key0 {m}");
    }
    assert_eq!(ch3(b"key", 0), 0);
}

#[test]
fn ch3_func_tests() {
    assert_eq!(ch3(b"sample", 100), 97);
    assert_eq!(ch3(b"sample", 1), 0);
    assert_eq!(ch3(b"", 100), 72);
    assert_eq!(ch3(b"", 1 << 23), 6173600);
    assert_eq!(ch3(b"sample", 1 << 23), 5167780);
    let mut bytes: Vec<u8> = (0..256).map(|i: i32| (i - 128) as u8).collect();
    assert_eq!(ch3(&bytes, 99999), 31015);
    bytes.reverse();
    assert_eq!(ch3(&bytes, 99999), 67101);
    let count = |n: u32, keys: u32| {
        let mut c = vec![0usize; n as usize];
        for i in 0..keys {
            c[ch3(i.to_string().as_bytes(), n) as usize] += 1;
        }
        c
    };
    assert_eq!(count(3, 1000), [307, 342, 351]);
    assert_eq!(count(10, 10000), [995, 955, 1046, 968, 1032, 972, 1016, 1038, 1010, 968]);
}

/// `bulk_checksum`: acc = acc * 31 + furc("k{i}", m) over 100,000 keys.
#[test]
fn furc_bulk_checksums() {
    for (m, want) in [
        (2, 1346413954u32),
        (3, 914505363),
        (5, 1517365794),
        (7, 4252552508),
        (10, 2894016351),
        (16, 2995729350),
        (100, 2289223413),
        (1000, 2251851331),
    ] {
        let acc =
            (0..100_000u32).fold(0u32, |acc, i| acc.wrapping_mul(31).wrapping_add(ch3(format!("k{i}").as_bytes(), m)));
        assert_eq!(acc, want, "m={m}");
    }
}

#[test]
fn the_spec_vectors() {
    assert_eq!([3, 4, 5].map(|n| ch3(b"key0", n)), [0, 0, 4]);
    assert_eq!([2, 3].map(|n| ch3(b"a", n)), [1, 1]);
    assert_eq!(ch3(b"ab", 3), 2);
    assert_eq!(ch3(b"short", 3), 2);
    assert_eq!(ch3(b"abc", 3), 0);
    assert_eq!((crc32(b"sample") & 0x7fff_ffff) % 100, 7, "Crc32HashFunc");
    assert_eq!(routing_key(b"/region/cluster/foo"), b"foo");
    assert_eq!(routing_key(b"/region/foo"), b"/region/foo", "one slash short: no prefix");
    assert_eq!(routing_key(b"/a/b/foo|#|bar"), b"foo");
    assert_eq!(stored_routing_key(b"foo|#|bar|#|baz"), b"foo");
    assert_eq!(stored_routing_key(b"/x/y/z"), b"/x/y/z", "a stored key lost its prefix already");
}

#[test]
fn spooky_v2_results() {
    // folly's TestResults: Hash32(buf, i, 0) with buf[i] = i + 128.
    const EXPECTED: [u32; 512] = [
        0x6bf50919, 0x70de1d26, 0xa2b37298, 0x35bc5fbf, 0x8223b279, 0x5bcb315e, 0x53fe88a1, 0xf9f1a233, 0xee193982,
        0x54f86f29, 0xc8772d36, 0x9ed60886, 0x5f23d1da, 0x1ed9f474, 0xf2ef0c89, 0x83ec01f9, 0xf274736c, 0x7e9ac0df,
        0xc7aed250, 0xb1015811, 0xe23470f5, 0x48ac20c4, 0xe2ab3cd5, 0x608f8363, 0xd0639e68, 0xc4e8e7ab, 0x863c7c5b,
        0x4ea63579, 0x99ae8622, 0x170c658b, 0x149ba493, 0x027bca7c, 0xe5cfc8b6, 0xce01d9d7, 0x11103330, 0x5d1f5ed4,
        0xca720ecb, 0xef408aec, 0x733b90ec, 0x855737a6, 0x9856c65f, 0x647411f7, 0x50777c74, 0xf0f1a8b7, 0x9d7e55a5,
        0xc68dd371, 0xfc1af2cc, 0x75728d0a, 0x390e5fdc, 0xf389b84c, 0xfb0ccf23, 0xc95bad0e, 0x5b1cb85a, 0x6bdae14f,
        0x6deb4626, 0x93047034, 0x6f3266c6, 0xf529c3bd, 0x396322e7, 0x3777d042, 0x1cd6a5a2, 0x197b402e, 0xc28d0d2b,
        0x09c1afb4, 0x069c8bb7, 0x6f9d4e1e, 0xd2621b5c, 0xea68108d, 0x8660cb8f, 0xd61e6de6, 0x7fba15c7, 0xaacfaa97,
        0xdb381902, 0x4ea22649, 0x5d414a1e, 0xc3fc5984, 0xa0fc9e10, 0x347dc51c, 0x37545fb6, 0x8c84b26b, 0xf57efa5d,
        0x56afaf16, 0xb6e1eb94, 0x9218536a, 0xe3cc4967, 0xd3275ef4, 0xea63536e, 0x6086e499, 0xaccadce7, 0xb0290d82,
        0x4ebfd0d6, 0x46ccc185, 0x2eeb10d3, 0x474e3c8c, 0x23c84aee, 0x3abae1cb, 0x1499b81a, 0xa2993951, 0xeed176ad,
        0xdfcfe84c, 0xde4a961f, 0x4af13fe6, 0xe0069c42, 0xc14de8f5, 0x6e02ce8f, 0x90d19f7f, 0xbca4a484, 0xd4efdd63,
        0x780fd504, 0xe80310e3, 0x03abbc12, 0x90023849, 0xd6f6fb84, 0xd6b354c5, 0x5b8575f0, 0x758f14e4, 0x450de862,
        0x90704afb, 0x47209a33, 0xf226b726, 0xf858dab8, 0x7c0d6de9, 0xb05ce777, 0xee5ff2d4, 0x7acb6d5c, 0x2d663f85,
        0x41c72a91, 0x82356bf2, 0x94e948ec, 0xd358d448, 0xeca7814d, 0x78cd7950, 0xd6097277, 0x97782a5d, 0xf43fc6f4,
        0x105f0a38, 0x9e170082, 0x4bfe566b, 0x4371d25f, 0xef25a364, 0x698eb672, 0x74f850e4, 0x4678ff99, 0x4a290dc6,
        0x3918f07c, 0x32c7d9cd, 0x9f28e0af, 0x0d3c5a86, 0x7bfc8a45, 0xddf0c7e1, 0xdeacb86b, 0x970b3c5c, 0x5e29e199,
        0xea28346d, 0x6b59e71b, 0xf8a8a46a, 0x862f6ce4, 0x3ccb740b, 0x08761e9e, 0xbfa01e5f, 0xf17cfa14, 0x2dbf99fb,
        0x7a0be420, 0x06137517, 0xe020b266, 0xd25bfc61, 0xff10ed00, 0x42e6be8b, 0x029ef587, 0x683b26e0, 0xb08afc70,
        0x7c1fd59e, 0xbaae9a70, 0x98c8c801, 0xb6e35a26, 0x57083971, 0x90a6a680, 0x1b44169e, 0x1dce237c, 0x518e0a59,
        0xccb11358, 0x7b8175fb, 0xb8fe701a, 0x10d259bb, 0xe806ce10, 0x9212be79, 0x4604ae7b, 0x7fa22a84, 0xe715b13a,
        0x0394c3b2, 0x11efbbae, 0xe13d9e19, 0x77e012bd, 0x2d05114c, 0xaecf2ddd, 0xb2a2b4aa, 0xb9429546, 0x55dce815,
        0xc89138f8, 0x46dcae20, 0x1f6f7162, 0x0c557ebc, 0x5b996932, 0xafbbe7e2, 0xd2bd5f62, 0xff475b9f, 0x9cec7108,
        0xeaddcffb, 0x5d751aef, 0xf68f7bdf, 0xf3f4e246, 0x00983fcd, 0x00bc82bb, 0xbf5fd3e7, 0xe80c7e2c, 0x187d8b1f,
        0xefafb9a7, 0x8f27a148, 0x5c9606a9, 0xf2d2be3e, 0xe992d13a, 0xe4bcd152, 0xce40b436, 0x63d6a1fc, 0xdc1455c4,
        0x64641e39, 0xd83010c9, 0x2d535ae0, 0x5b748f3e, 0xf9a9146b, 0x80f10294, 0x2859acd4, 0x5fc846da, 0x56d190e9,
        0x82167225, 0x98e4daba, 0xbf7865f3, 0x00da7ae4, 0x9b7cd126, 0x644172f8, 0xde40c78f, 0xe8803efc, 0xdd331a2b,
        0x48485c3c, 0x4ed01ddc, 0x9c0b2d9e, 0xb1c6e9d7, 0xd797d43c, 0x274101ff, 0x3bf7e127, 0x91ebbc56, 0x7ffeb321,
        0x4d42096f, 0xd6e9456a, 0x0bade318, 0x2f40ee0b, 0x38cebf03, 0x0cbc2e72, 0xbf03e704, 0x7b3e7a9a, 0x8e985acd,
        0x90917617, 0x413895f8, 0xf11dde04, 0xc66f8244, 0xe5648174, 0x6c420271, 0x2469d463, 0x2540b033, 0xdc788e7b,
        0xe4140ded, 0x0990630a, 0xa54abed4, 0x6e124829, 0xd940155a, 0x1c8836f6, 0x38fda06c, 0x5207ab69, 0xf8be9342,
        0x774882a8, 0x56fc0d7e, 0x53a99d6e, 0x8241f634, 0x9490954d, 0x447130aa, 0x8cc4a81f, 0x0868ec83, 0xc22c642d,
        0x47880140, 0xfbff3bec, 0x0f531f41, 0xf845a667, 0x08c15fb7, 0x1996cd81, 0x86579103, 0xe21dd863, 0x513d7f97,
        0x3984a1f1, 0xdfcdc5f4, 0x97766a5e, 0x37e2b1da, 0x41441f3f, 0xabd9ddba, 0x23b755a9, 0xda937945, 0x103e650e,
        0x3eef7c8f, 0x2760ff8d, 0x2493a4cd, 0x1d671225, 0x3bf4bd4c, 0xed6e1728, 0xc70e9e30, 0x4e05e529, 0x928d5aa6,
        0x164d0220, 0xb5184306, 0x4bd7efb3, 0x63830f11, 0xf3a1526c, 0xf1545450, 0xd41d5df5, 0x25a5060d, 0x77b368da,
        0x4fe33c7e, 0xeae09021, 0xfdb053c4, 0x2930f18d, 0xd37109ff, 0x8511a781, 0xc7e7cdd7, 0x6aeabc45, 0xebbeaeaa,
        0x9a0c4f11, 0xda252cbb, 0x5b248f41, 0x5223b5eb, 0xe32ab782, 0x8e6a1c97, 0x11d3f454, 0x3e05bd16, 0x0059001d,
        0xce13ac97, 0xf83b2b4c, 0x71db5c9a, 0xdc8655a6, 0x9e98597b, 0x3fcae0a2, 0x75e63ccd, 0x076c72df, 0x4754c6ad,
        0x26b5627b, 0xd818c697, 0x998d5f3d, 0xe94fc7b2, 0x1f49ad1a, 0xca7ff4ea, 0x9fe72c05, 0xfbd0cbbf, 0xb0388ceb,
        0xb76031e3, 0xd0f53973, 0xfb17907c, 0xa4c4c10f, 0x9f2d8af9, 0xca0e56b0, 0xb0d9b689, 0xfcbf37a3, 0xfede8f7d,
        0xf836511c, 0x744003fc, 0x89eba576, 0xcfdcf6a6, 0xc2007f52, 0xaaaf683f, 0x62d2f9ca, 0xc996f77f, 0x77a7b5b3,
        0x8ba7d0a4, 0xef6a0819, 0xa0d903c0, 0x01b27431, 0x58fffd4c, 0x4827f45c, 0x44eb5634, 0xae70edfc, 0x591c740b,
        0x478bf338, 0x2f3b513b, 0x67bf518e, 0x6fef4a0c, 0x1e0b6917, 0x5ac0edc5, 0x2e328498, 0x077de7d5, 0x5726020b,
        0x2aeda888, 0x45b637ca, 0xcf60858d, 0x3dc91ae2, 0x3e6d5294, 0xe6900d39, 0x0f634c71, 0x827a5fa4, 0xc713994b,
        0x1c363494, 0x3d43b615, 0xe5fe7d15, 0xf6ada4f2, 0x472099d5, 0x04360d39, 0x7f2a71d0, 0x88a4f5ff, 0x2c28fac5,
        0x4cd64801, 0xfd78dd33, 0xc9bdd233, 0x21e266cc, 0x9bbf419d, 0xcbf7d81d, 0x80f15f96, 0x04242657, 0x53fb0f66,
        0xded11e46, 0xf2fdba97, 0x8d45c9f1, 0x4eeae802, 0x17003659, 0xb9db81a7, 0xe734b1b2, 0x9503c54e, 0xb7c77c3e,
        0x271dd0ab, 0xd8b906b5, 0x0d540ec6, 0xf03b86e0, 0x0fdb7d18, 0x95e261af, 0xad9ec04e, 0x381f4a64, 0xfec798d7,
        0x09ea20be, 0x0ef4ca57, 0x1e6195bb, 0xfd0da78b, 0xcea1653b, 0x157d9777, 0xf04af50f, 0xad7baa23, 0xd181714a,
        0x9bbdab78, 0x6c7d1577, 0x645eb1e7, 0xa0648264, 0x35839ca6, 0x2287ef45, 0x32a64ca3, 0x26111f6f, 0x64814946,
        0xb0cddaf1, 0x4351c59e, 0x1b30471c, 0xb970788a, 0x30e9f597, 0xd7e58df1, 0xc6d2b953, 0xf5f37cf4, 0x3d7c419e,
        0xf91ecb2d, 0x9c87fd5d, 0xb22384ce, 0x8c7ac51c, 0x62c96801, 0x57e54091, 0x964536fe, 0x13d3b189, 0x4afd1580,
        0xeba62239, 0xb82ea667, 0xae18d43a, 0xbef04402, 0x1942534f, 0xc54bf260, 0x3c8267f5, 0xa1020ddd, 0x112fcc8a,
        0xde596266, 0xe91d0856, 0xf300c914, 0xed84478e, 0x5b65009e, 0x4764da16, 0xaf8e07a2, 0x4088dc2c, 0x9a0cad41,
        0x2c3f179b, 0xa67b83f7, 0xf27eab09, 0xdbe10e28, 0xf04c911f, 0xd1169f87, 0x8e1e4976, 0x17f57744, 0xe4f5a33f,
        0x27c2e04b, 0x0b7523bd, 0x07305776, 0xc6be7503, 0x918fa7c9, 0xaf2e2cd9, 0x82046f8e, 0xcc1c8250,
    ];
    let buf: Vec<u8> = (0..512).map(|i| (i + 128) as u8).collect();
    for (i, want) in EXPECTED.iter().enumerate() {
        assert_eq!(spooky_hash32(&buf[..i], 0), *want, "length {i}");
    }
    assert_eq!(spooky_hash32(b"hello world", 0), 2617184861);
    assert_eq!(spooky_hash32(b"hello world", 4), 4130951021);
    assert_eq!(spooky_hash128(b"hello world", 0, 0).0, 14865987102431973981);
}

fn weighted(weights: &[f64], key: &[u8]) -> usize {
    weighted_ch3(&mut key.to_vec(), weights)
}

#[test]
fn weighted_ch3_tests() {
    let ones = vec![1.0; 100];
    assert_eq!(weighted(&ones, b"sample"), 97);
    assert_eq!(weighted(&[1.0], b"sample"), 0);
    assert_eq!(weighted(&ones, b""), 72);
    // Zero weights give up after 32 tries with a valid index.
    assert_eq!(weighted(&[0.0], b"sample"), 0);
    assert_eq!(weighted(&vec![0.0; 100], b"sample"), 59);
    assert_eq!(weighted(&vec![0.0; 100], b""), 45);
    let count = |w: &[f64], keys: u32| {
        let mut c = vec![0usize; w.len()];
        for i in 0..keys {
            c[weighted(w, i.to_string().as_bytes())] += 1;
        }
        c
    };
    assert_eq!(count(&[1.0, 1.0, 0.7], 1000), [341, 371, 288]);
    let random = [0.429, 0.541, 0.117, 0.998, 0.283, 0.065, 0.109, 0.042, 0.676, 0.943];
    assert_eq!(count(&random, 10000), [1016, 1252, 288, 2354, 661, 195, 247, 122, 1668, 2197]);
}

proptest::proptest! {
    /// Two pools at once are each pool alone.
    #[test]
    fn a_pair_is_each_pool_alone(key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), a in proptest::collection::vec(0.0f64..=1.0, 1..6), b in proptest::collection::vec(0.0f64..=1.0, 1..6)) {
        let mut buf = key.clone();
        let pair = weighted_ch3_pair(&mut buf, &a, &b);
        proptest::prop_assert_eq!(&buf, &key);
        proptest::prop_assert_eq!(pair, (weighted(&a, &key), weighted(&b, &key)));
    }

    /// Unit weights are Ch3 (`unitWeightsMatchFurcHash`), and the buffer
    /// comes back as it went in.
    #[test]
    fn unit_weights_are_ch3(key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), n in 1usize..200) {
        let mut buf = key.clone();
        proptest::prop_assert_eq!(weighted_ch3(&mut buf, &vec![1.0; n]), ch3(&key, n as u32) as usize);
        proptest::prop_assert_eq!(buf, key);
    }

    /// Growing a Ch3 pool moves a key only to a new server.
    #[test]
    fn growing_moves_keys_only_to_new_servers(key in "[a-z0-9:]{1,40}", n in 1u32..127) {
        let (before, after) = (ch3(key.as_bytes(), n), ch3(key.as_bytes(), n + 1));
        proptest::prop_assert!(after == before || after == n);
    }
}

#[test]
fn the_family_cuts_at_the_hash_stop_and_appends_the_salt() {
    let list = servers(&["a:1", "b:1", "c:1"]);
    let plain = Mcrouter::new(&list, &list, Func::Ch3, None).unwrap();
    let salted = Mcrouter::new(&list, &list, Func::Ch3, Some("s1")).unwrap();
    let owner = |f: &Mcrouter, key: &[u8]| f.owners(&Key { bytes: key, digest: None }, &mut Vec::new()).unwrap().0;
    for i in 0..300 {
        let key = format!("user:{i}");
        assert_eq!(owner(&plain, format!("{key}|#|tail{i}").as_bytes()), owner(&plain, key.as_bytes()));
        assert_eq!(owner(&salted, key.as_bytes()), ch3(format!("{key}s1").as_bytes(), 3) as usize);
    }
    let crc = Mcrouter::new(&list, &list, Func::Crc32, None).unwrap();
    assert_eq!(owner(&crc, b"sample"), ((crc32(b"sample") & 0x7fff_ffff) % 3) as usize);
}
