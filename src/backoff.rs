//! The one retry pause: it starts at a minimum, doubles after each
//! failure up to a cap, and goes back to the minimum on `reset`. Used by
//! the dump stage (a busy crawler), the AgentX session (reconnects) and the
//! INFORM sender (unacknowledged alarms). Pure.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The first pause is `min`; none is longer than `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff { min, max, next: min }
    }

    /// The pause to take now; the one after it is twice as long, capped.
    pub fn next_pause(&mut self) -> Duration {
        let now = self.next;
        self.next = now.saturating_mul(2).clamp(self.min, self.max);
        now
    }

    /// The pause `next_pause` would give, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next pause is the minimum again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_the_minimum_to_the_cap_and_resets() {
        let mut b = Backoff::new(ms(50), ms(300));
        let taken: Vec<Duration> = (0..5).map(|_| b.next_pause()).collect();
        assert_eq!(taken, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        assert_eq!(b.peek(), ms(300));
        b.reset();
        assert_eq!(b.next_pause(), ms(50));
    }

    #[test]
    fn a_cap_below_the_minimum_is_the_minimum_and_huge_pauses_do_not_overflow() {
        let mut b = Backoff::new(ms(50), ms(10));
        assert_eq!((b.next_pause(), b.next_pause()), (ms(50), ms(50)));
        let mut b = Backoff::new(Duration::MAX / 2 + ms(1), Duration::MAX);
        b.next_pause();
        assert_eq!(b.next_pause(), Duration::MAX);
    }
}
