//! Pacing the copy: a byte rate shared by all sources, and a CPU budget
//! measured from the copy's own CPU time (getrusage of the thread that runs
//! it), so the copy is slowed, never stopped, and sockets keep being
//! drained. The AgentX subagent has a thread of its own, and its work (a
//! GetNext flood, say) is not charged to the copy. The dump readers are
//! never paced (see the metadump hazard in `resync::source`).

use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A byte rate shared by every source.
#[derive(Debug)]
pub struct Bandwidth {
    bytes_per_sec: u64,
    next_free: Mutex<tokio::time::Instant>,
}

impl Bandwidth {
    pub fn new(bytes_per_sec: u64) -> Bandwidth {
        Bandwidth { bytes_per_sec: bytes_per_sec.max(1), next_free: Mutex::new(tokio::time::Instant::now()) }
    }

    /// Waits until `bytes` more may be sent.
    pub async fn take(&self, bytes: u64) {
        let start = {
            let mut next = self.next_free.lock().await;
            let now = tokio::time::Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// CPU time used by this process (all threads), user + system.
pub fn process_cpu_time() -> Duration {
    cpu_time(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// CPU time used by the calling thread, user + system.
pub fn thread_cpu_time() -> Duration {
    cpu_time(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

fn cpu_time(who: nix::sys::resource::UsageWho) -> Duration {
    use nix::sys::resource::getrusage;
    match getrusage(who) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// The share of one core allowed for `percent_of_total` of a machine with
/// `cores` cores: 5% of a 2-core node is 0.1 of one core.
pub fn share_of_one_core(percent_of_total: f64, cores: usize) -> f64 {
    percent_of_total / 100.0 * cores as f64
}

/// How long to sleep so that `cpu` used over `wall` stays within `share`
/// of one core. Pure.
pub fn cpu_delay(cpu: Duration, wall: Duration, share: f64) -> Duration {
    if share <= 0.0 {
        return Duration::ZERO;
    }
    let allowed_wall = cpu.as_secs_f64() / share;
    Duration::from_secs_f64((allowed_wall - wall.as_secs_f64()).max(0.0))
}

/// The least a CPU pause lasts: the copy runs in bursts of at least this
/// much wall time's worth of budget, then sleeps it off at once. Pausing
/// after every batch (a few ms of sleep each) woke the process for every
/// packet of every source while it slept, and cost a throttled copy a
/// third more kernel time per key than an unthrottled one (issue 32).
pub const LEAST_PAUSE: Duration = Duration::from_millis(250);

/// The pause owed when `cpu` was used over `wall` at `share` of one core:
/// none until [`LEAST_PAUSE`] is owed, then all of it. Pure.
pub fn pause_owed(cpu: Duration, wall: Duration, share: f64) -> Option<Duration> {
    let delay = cpu_delay(cpu, wall, share);
    (delay >= LEAST_PAUSE).then_some(delay)
}

/// Keeps the copy within a share of one core since it was created. The
/// copy runs on one thread (the CLI's and the daemon's current-thread
/// runtime), the one that creates the budget: only that thread's CPU
/// counts. Paced from another thread (a multi-thread runtime), it counts
/// the whole process instead, never a mix of two threads' clocks.
#[derive(Debug)]
pub struct CpuBudget {
    share: f64,
    thread: std::thread::ThreadId,
    start_thread_cpu: Duration,
    start_process_cpu: Duration,
    start: Instant,
}

impl CpuBudget {
    pub fn new(share_of_one_core: f64) -> CpuBudget {
        CpuBudget {
            share: share_of_one_core,
            thread: std::thread::current().id(),
            start_thread_cpu: thread_cpu_time(),
            start_process_cpu: process_cpu_time(),
            start: Instant::now(),
        }
    }

    /// The CPU the copy has used since the budget was created.
    pub fn used(&self) -> Duration {
        if std::thread::current().id() == self.thread {
            thread_cpu_time().saturating_sub(self.start_thread_cpu)
        } else {
            process_cpu_time().saturating_sub(self.start_process_cpu)
        }
    }

    pub async fn pace(&self) {
        if let Some(delay) = pause_owed(self.used(), self.start.elapsed(), self.share) {
            tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
        }
    }
}

/// Both knobs together, shared by every source of a resync.
#[derive(Debug, Default)]
pub struct Throttle {
    pub bandwidth: Option<Bandwidth>,
    pub cpu: Option<CpuBudget>,
}

impl Throttle {
    /// Waits as long as the limits require before moving `bytes` more.
    pub async fn pace(&self, bytes: u64) {
        if let Some(b) = &self.bandwidth {
            b.take(bytes).await;
        }
        if let Some(c) = &self.cpu {
            c.pace().await;
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.bandwidth.is_none() && self.cpu.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_percent_of_two_cores_is_a_tenth_of_one() {
        assert!((share_of_one_core(5.0, 2) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn delay_keeps_cpu_over_wall_at_the_share() {
        let s = |x: f64| Duration::from_secs_f64(x);
        assert_eq!(cpu_delay(s(0.1), s(1.0), 0.1), Duration::ZERO, "exactly at budget");
        assert_eq!(cpu_delay(s(0.05), s(1.0), 0.1), Duration::ZERO, "under budget");
        let d = cpu_delay(s(0.2), s(1.0), 0.1);
        assert!((d.as_secs_f64() - 1.0).abs() < 1e-9, "0.2 s of CPU needs 2 s of wall: {d:?}");
        assert_eq!(cpu_delay(s(5.0), s(0.0), 0.0), Duration::ZERO, "no budget means no limit");
    }

    /// The copy runs in bursts: a debt under the least pause is carried,
    /// never slept in slices; once owed, the whole debt is slept.
    #[test]
    fn pauses_come_whole_once_the_least_pause_is_owed() {
        let s = |x: f64| Duration::from_secs_f64(x);
        assert_eq!(pause_owed(s(0.02), s(0.0), 0.1), None, "0.2 s owed: carried");
        let owed = pause_owed(s(0.03), s(0.0), 0.1).expect("0.3 s owed");
        assert!((owed.as_secs_f64() - 0.3).abs() < 1e-9, "{owed:?}");
        assert_eq!(pause_owed(s(1.0), s(10.0), 0.1), None, "at budget");
        assert_eq!(pause_owed(s(5.0), s(0.0), 0.0), None, "no limit");
    }

    /// Spends `ms` of this thread's CPU time (not wall time: on a busy
    /// machine the thread may get only part of each second).
    fn burn(ms: u64) {
        let until = thread_cpu_time() + Duration::from_millis(ms);
        let mut x = 0u64;
        while thread_cpu_time() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
    }

    /// Issue 15: the budget used RUSAGE_SELF, so a GetNext flood on the
    /// AgentX thread slowed a 6 s resync to 91 s. Another thread's CPU is
    /// not the copy's.
    #[test]
    fn another_threads_cpu_is_not_charged_to_the_copy() {
        let budget = CpuBudget::new(0.1);
        std::thread::spawn(|| burn(300)).join().unwrap();
        assert!(budget.used() < Duration::from_millis(100), "charged {:?} for another thread", budget.used());
        burn(200);
        assert!(budget.used() >= Duration::from_millis(150), "its own CPU counts: {:?}", budget.used());
    }

    #[test]
    fn cpu_time_is_measured() {
        let before = process_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time() > before);
    }
}
