//! Primary first: every key sits on two old replicas and both are
//! streamed, and each source first copies the vbuckets it is listed first
//! for. The [`PrimaryBarrier`] holds the second replicas back until every
//! source has done so (or failed), so they find those keys on the local
//! node and only check them (`mg <key> f`), rather than racing the
//! primaries to copy them twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Opens once every source has put the keys of the vbuckets it is primary
/// for on the local node (or failed): the second replicas wait for it, so
/// they find those keys on the local node instead of racing to copy them
/// too.
#[derive(Debug)]
pub struct PrimaryBarrier {
    remaining: AtomicUsize,
    opened: Notify,
}

impl PrimaryBarrier {
    pub fn new(sources: usize) -> Arc<PrimaryBarrier> {
        Arc::new(PrimaryBarrier { remaining: AtomicUsize::new(sources), opened: Notify::new() })
    }

    pub fn is_open(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    pub async fn wait(&self) {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.is_open() {
                return;
            }
            opened.await;
        }
    }
}

/// One source's arrival at the barrier: on [`Arrival::arrive`], or when
/// dropped (the copy failed or stopped), whichever comes first.
#[derive(Debug)]
pub struct Arrival(Option<Arc<PrimaryBarrier>>);

impl Arrival {
    pub fn new(barrier: Arc<PrimaryBarrier>) -> Arrival {
        Arrival(Some(barrier))
    }

    pub fn arrive(&mut self) {
        if let Some(b) = self.0.take() {
            if b.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                b.opened.notify_waiters();
            }
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arrive();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_barrier_opens_when_every_source_arrived_or_dropped_out() {
        let barrier = PrimaryBarrier::new(2);
        let (mut a, b) = (Arrival::new(barrier.clone()), Arrival::new(barrier.clone()));
        let waiter = tokio::spawn({
            let barrier = barrier.clone();
            async move { barrier.wait().await }
        });
        a.arrive();
        a.arrive(); // once only
        tokio::task::yield_now().await;
        assert!(!barrier.is_open() && !waiter.is_finished());
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(barrier.is_open());
    }
}
