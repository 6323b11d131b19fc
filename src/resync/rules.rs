//! The decisions a copy makes per item, as pure functions: what TTL to
//! store, and whether a source's value may replace a local one.

/// memcached reads an expiry above this many seconds as an absolute time.
pub const RELATIVE_TTL_MAX: i64 = 30 * 24 * 3600;

/// The largest `T` memcached accepts (it parses the token as a 32-bit
/// signed number and answers `CLIENT_ERROR bad token` above it): as an
/// absolute time, January 2038.
pub const TTL_MAX: u64 = i32::MAX as u64;

/// What to do with an item whose remaining TTL on the source is `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Store it with this `T`.
    Store(u64),
    /// Skip it: it would expire on arrival.
    Expired,
    /// Fail it: `t` is no answer memcached gives (a missing `t`, or a
    /// negative other than -1), and storing it as immortal would keep data
    /// the source meant to expire.
    Invalid,
}

/// The `T` to store for an item whose remaining TTL on the source is `t`
/// (`-1`: none; `None`: the answer had no `t`), at unix time `now`. A
/// remaining TTL past what memcached can store (a real server never
/// reports one; a hostile or broken one may) is clamped to the latest
/// expiry memcached accepts, so one bad item never fails the local node.
pub fn inject_ttl(t: Option<i64>, now: u64) -> Expiry {
    match t {
        Some(-1) => Expiry::Store(0),
        None => Expiry::Invalid,
        Some(t) if t < 0 => Expiry::Invalid,
        Some(0 | 1) => Expiry::Expired,
        Some(t) if t > RELATIVE_TTL_MAX => Expiry::Store(now.saturating_add(t.unsigned_abs()).min(TTL_MAX)),
        Some(t) => Expiry::Store(t.unsigned_abs()),
    }
}

/// What to do when the local node already has a key the copy brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Clearwater clients keep the low 32 bits of the write time in ms in
    /// the client flags: a newer source value replaces an older local one.
    #[default]
    ClearwaterTimestamp,
    /// The local value always stays (for flags that are not timestamps).
    AddOnly,
}

impl ConflictPolicy {
    /// Whether the source's item (flags `remote`) is newer than the local
    /// one (flags `local`) and should replace it. Timestamps wrap every ~49
    /// days, so they are compared as a signed 32-bit difference.
    pub fn should_replace(self, local: u32, remote: u32) -> bool {
        match self {
            ConflictPolicy::ClearwaterTimestamp => (local as i32).wrapping_sub(remote as i32) < 0,
            ConflictPolicy::AddOnly => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rules() {
        let now = 1_800_000_000;
        let ttl = |t| inject_ttl(Some(t), now);
        assert_eq!(ttl(-1), Expiry::Store(0), "no expiry stays no expiry");
        assert_eq!(ttl(0), Expiry::Expired);
        assert_eq!(ttl(1), Expiry::Expired);
        assert_eq!(ttl(2), Expiry::Store(2));
        assert_eq!(ttl(RELATIVE_TTL_MAX), Expiry::Store(RELATIVE_TTL_MAX as u64));
        let forty_days = 40 * 24 * 3600;
        assert_eq!(ttl(forty_days), Expiry::Store(now + forty_days as u64), "over 30 days becomes absolute");
        assert_eq!(ttl(i64::MAX), Expiry::Store(TTL_MAX), "clamped, never wrapped");
        assert_eq!(inject_ttl(Some(i64::MAX), u64::MAX), Expiry::Store(TTL_MAX));
    }

    /// Issue 29: `t-5`, or no `t` at all, was stored with no expiry.
    #[test]
    fn only_minus_one_means_no_expiry() {
        let now = 1_800_000_000;
        for bad in [Some(-2), Some(-5), Some(i64::MIN), None] {
            assert_eq!(inject_ttl(bad, now), Expiry::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn clearwater_timestamps_compare_with_wraparound() {
        let p = ConflictPolicy::ClearwaterTimestamp;
        assert!(p.should_replace(100, 200), "local older");
        assert!(!p.should_replace(200, 100), "local newer");
        assert!(!p.should_replace(7, 7), "same write");
        assert!(p.should_replace(u32::MAX - 5, 10), "remote written just after the wrap");
        assert!(!p.should_replace(10, u32::MAX - 5));
        assert!(!ConflictPolicy::AddOnly.should_replace(100, 200));
    }
}
