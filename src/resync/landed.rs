//! The keys this resync has already put on the local node, so the second
//! old replica of a key is checked, not copied again.
//!
//! Every key sits on two old replicas and both are streamed. The first to
//! deliver a key copies it (value read, `ms … ME`, delete guard) and records
//! it here with the flags now held locally. When the other replica lists the
//! key, a metadata read (`mg <key> f`, no value) decides: only a value newer
//! than the recorded one (clearwater-timestamp) goes down the full copy path,
//! which then replaces the older local value under its CAS guard. The record
//! is a lower bound of what the local node holds: only client writes change
//! the key locally after us, and they are newer still.
//!
//! Keys are identified by their MD5 digest (already computed for the
//! vbucket), so no key bytes are kept. The table is bounded: past
//! [`DEFAULT_CAPACITY`] keys nothing more is recorded and the second replica
//! takes the full path again, which is correct, only slower.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Keys recorded at most: they fit the table's 2^21 slots of 21 bytes
/// (digest, flags, control byte), so the table never exceeds 42 MiB.
pub const DEFAULT_CAPACITY: usize = 1_800_000;

/// Digest → flags of the local value as this resync left it.
#[derive(Debug)]
pub struct Landed {
    table: Mutex<HashMap<[u8; 16], u32, BuildHasherDefault<DigestHasher>>>,
    capacity: usize,
}

impl Landed {
    pub fn new(capacity: usize) -> Landed {
        Landed { table: Mutex::new(HashMap::default()), capacity }
    }

    /// Records keys and the flags the local node now holds for them.
    pub fn record(&self, entries: impl IntoIterator<Item = ([u8; 16], u32)>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for (digest, flags) in entries {
            if table.len() >= self.capacity && !table.contains_key(&digest) {
                return;
            }
            table.insert(digest, flags);
        }
    }

    /// Forgets keys (written, then deleted again by the delete guard).
    pub fn forget(&self, digests: impl IntoIterator<Item = [u8; 16]>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for d in digests {
            table.remove(&d);
        }
    }

    /// The recorded flags of each digest, `None` where not recorded.
    pub fn lookup(&self, digests: impl IntoIterator<Item = [u8; 16]>, out: &mut Vec<Option<u32>>) {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        out.extend(digests.into_iter().map(|d| table.get(&d).copied()));
    }

    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens once every source has put the keys of the vbuckets it is primary
/// for on the local node (or failed): the second replicas wait for it, so
/// they find those keys recorded instead of racing to copy them too.
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

/// The key is an MD5 digest already: its first 8 bytes are the hash.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes (after no length prefix for arrays).
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::key_digest;

    #[test]
    fn records_looks_up_and_forgets() {
        let landed = Landed::new(10);
        let (a, b) = (key_digest(b"a"), key_digest(b"b"));
        landed.record([(a, 7)]);
        let mut out = Vec::new();
        landed.lookup([a, b], &mut out);
        assert_eq!(out, vec![Some(7), None]);
        landed.record([(a, 9)]);
        landed.forget([b]);
        landed.lookup([a], &mut out);
        assert_eq!(out, vec![Some(9)]);
        landed.forget([a]);
        assert!(landed.is_empty());
    }

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

    #[test]
    fn stops_recording_at_capacity_but_still_updates() {
        let landed = Landed::new(2);
        let keys: Vec<[u8; 16]> = (0..4u8).map(|i| key_digest(&[i])).collect();
        landed.record(keys.iter().map(|k| (*k, 1)));
        assert_eq!(landed.len(), 2);
        landed.record([(keys[0], 5)]);
        let mut out = Vec::new();
        landed.lookup(keys.iter().copied(), &mut out);
        assert_eq!(out, vec![Some(5), Some(1), None, None]);
    }
}
