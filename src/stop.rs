//! A stop request, and waits that end when it comes.
//!
//! The request is an atomic flag: the one-shot CLI's signal handler sets it
//! (signal-hook, nothing async-signal-unsafe), and so does the daemon on
//! SIGTERM. A flag cannot wake a task, so a wait that must end on a stop
//! looks at it every [`POLL`]: a stop is seen within 50 ms wherever the
//! copy is waiting (a dump that drips, a crawler that stays busy, the
//! primary barrier, the CPU throttle), not only between two batches.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a wait looks at the flag.
pub const POLL: Duration = Duration::from_millis(50);

/// A stop request that may or may not be wired to anything.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<Arc<AtomicBool>>);

impl Stop {
    pub fn new(flag: Option<Arc<AtomicBool>>) -> Stop {
        Stop(flag)
    }

    /// Whether the stop was requested.
    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Ends once the stop is requested; never, for a stop wired to nothing.
    pub async fn requested(&self) {
        match &self.0 {
            Some(flag) => {
                while !flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(POLL).await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// `work`'s output, or `None` if the stop came first (`work` is then
    /// dropped where it waited: only for work that changes nothing).
    pub async fn or<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            out = work => Some(out),
            () = self.requested() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_within_a_poll_of_the_request() {
        let flag = Arc::new(AtomicBool::new(false));
        let stop = Stop::new(Some(flag.clone()));
        let setter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            flag.store(true, Ordering::Relaxed);
        });
        let started = tokio::time::Instant::now();
        assert_eq!(stop.or(std::future::pending::<()>()).await, None, "the endless wait was cut");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(3) && waited <= Duration::from_secs(3) + POLL, "{waited:?}");
        assert!(stop.is_set());
        setter.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_first_gives_its_output_and_an_unwired_stop_never_comes() {
        assert_eq!(Stop::default().or(async { 7 }).await, Some(7));
        assert!(!Stop::default().is_set());
        let never = tokio::time::timeout(Duration::from_secs(3600), Stop::default().requested()).await;
        assert!(never.is_err(), "a stop wired to nothing is never requested");
    }
}
