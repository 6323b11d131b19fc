//! What the AVX-512 kernels share (the dump's line reading and
//! percent-decoding, the key check, the MD5 lanes): whether the CPU runs
//! them, and the lane mask of a masked load. The release build targets
//! plain x86-64, so each kernel is chosen at run time.
#![cfg(target_arch = "x86_64")]

/// Whether the CPU has AVX-512 F and BW (byte-masked loads and compares),
/// which every kernel here needs; not every AVX-512 CPU has BW (Xeon Phi
/// has F alone). Two cached loads.
#[inline]
pub fn bw_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
}

/// The lanes below `n` of a 64-lane mask (all 64 from 64 up), for masked
/// loads and stores that touch only the bytes they own.
#[inline]
pub fn below(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn below_masks_the_lanes_under_n() {
        assert_eq!(super::below(0), 0);
        assert_eq!(super::below(1), 1);
        assert_eq!(super::below(55), (1 << 55) - 1);
        assert_eq!(super::below(63), u64::MAX >> 1);
        assert_eq!(super::below(64), u64::MAX);
        assert_eq!(super::below(1000), u64::MAX);
    }
}
