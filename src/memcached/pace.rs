//! The progress rule: a transfer in flight must move a minimum of bytes in
//! every window (`--io-timeout`), not merely some byte now and then. A
//! per-read timeout alone lets a peer that drips one byte a second hold a
//! dump or a batch for ever; this rule gives up on it within a window.
//! Pure: the caller says what moved and when.

use std::time::Duration;
use tokio::time::Instant;

/// A batch's answers must move this many bytes (written and read
/// together) per window until the batch completes.
pub const MIN_BATCH_PROGRESS: u64 = 4096;

/// A key listing must bring this many bytes per window until its end
/// line. A real dump streams megabytes a second (1.6.18 lists about a
/// million keys a second); 64 KiB in 10 s is under a thousand keys.
pub const MIN_DUMP_PROGRESS: u64 = 64 * 1024;

/// Why a transfer was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes moved in the window that fell short.
    pub moved: u64,
    pub window: Duration,
    pub min: u64,
}

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too slow: {} bytes in {} s, under the {} bytes it must move per --io-timeout",
            self.moved,
            self.window.as_secs(),
            self.min
        )
    }
}

/// Watches one transfer's byte count against the rule.
#[derive(Debug, Clone)]
pub struct Pace {
    window: Duration,
    min: u64,
    since: Instant,
    at: u64,
}

impl Pace {
    /// A transfer that has moved `total` bytes (in all) at `now`.
    pub fn new(window: Duration, min: u64, now: Instant, total: u64) -> Pace {
        Pace { window, min, since: now, at: total }
    }

    /// Looks at the transfer at `now`, having moved `total` bytes in all:
    /// once a whole window has passed, it must have moved `min` in it, and
    /// a new window starts.
    pub fn check(&mut self, now: Instant, total: u64) -> Result<(), TooSlow> {
        if now.saturating_duration_since(self.since) < self.window {
            return Ok(());
        }
        let moved = total.saturating_sub(self.at);
        if moved < self.min {
            return Err(TooSlow { moved, window: self.window, min: self.min });
        }
        (self.since, self.at) = (now, total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_that_moved_too_little_ends_the_transfer_and_a_busy_one_starts_the_next() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Pace::new(s(10), 1000, t0, 500);
        assert_eq!(p.check(t0 + s(9), 500), Ok(()), "inside the first window nothing is judged");
        assert_eq!(p.check(t0 + s(10), 1500), Ok(()), "1,000 bytes in the window: enough");
        assert_eq!(p.check(t0 + s(19), 1600), Ok(()), "the next window is not over yet");
        assert_eq!(p.check(t0 + s(20), 2499), Err(TooSlow { moved: 999, window: s(10), min: 1000 }));
    }

    #[test]
    fn a_drip_of_a_byte_a_second_is_given_up_after_one_window() {
        let t0 = Instant::now();
        let mut p = Pace::new(Duration::from_secs(10), MIN_DUMP_PROGRESS, t0, 0);
        let gave_up = (1..=60).find(|sec| p.check(t0 + Duration::from_secs(*sec), *sec).is_err());
        assert_eq!(gave_up, Some(10));
        let e = Pace::new(Duration::from_secs(10), 4096, t0, 0).check(t0 + Duration::from_secs(10), 7).unwrap_err();
        assert_eq!(e.to_string(), "too slow: 7 bytes in 10 s, under the 4096 bytes it must move per --io-timeout");
    }
}
