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
//! Keys are identified by 95 bits of their MD5 digest (already computed
//! for the vbucket), so no key bytes are kept: an entry is 16 bytes. The
//! record is bounded: past [`DEFAULT_CAPACITY`] entries nothing more is
//! recorded and the second replica takes the full path again, which is
//! correct, only slower.
//!
//! The record is written while the primaries copy and read after the
//! [`PrimaryBarrier`], so it is a log that is indexed once, not a hash map:
//! recording appends to a flat list (no growth or rehashing), and the first
//! lookup after recording sorts the list into buckets by digest prefix, in
//! place. A lookup then reads one slot of a bucket index that fits the CPU
//! cache and a few adjacent entries: one cache miss. (`HashMap` took 85-110
//! ns per insert and per lookup on this workload, a third of the copy's
//! bookkeeping.)
//!
//! The log keeps no order, so it answers only what order cannot change: a
//! digest recorded once and never forgotten has its flags; a digest
//! recorded twice (a key listed twice by its dump) or ever forgotten (the
//! delete guard took it back) answers `None`, and the second replica takes
//! the full path for it. Both are rare, and `None` is never wrong, only
//! slower. Two keys whose digests agree in the 95 bits kept would share an
//! entry: at 2,000,000 entries and as many lookups, odds of 10^-16.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Entries recorded at most: 1,800,000 of 16 bytes, so the record never
/// exceeds 28 MiB (indexing is in place).
pub const DEFAULT_CAPACITY: usize = 1_800_000;

/// Digest → flags of the local value as this resync left it.
#[derive(Debug)]
pub struct Landed {
    log: Mutex<Log>,
    capacity: usize,
}

impl Landed {
    pub fn new(capacity: usize) -> Landed {
        Landed { log: Mutex::new(Log::default()), capacity }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records keys and the flags the local node now holds for them.
    pub fn record(&self, entries: impl IntoIterator<Item = ([u8; 16], u32)>) {
        let mut log = self.log();
        for (digest, flags) in entries {
            if log.entries() >= self.capacity {
                return;
            }
            log.pending.push(Entry::new(&digest, flags, false));
        }
    }

    /// Forgets keys (written, then deleted again by the delete guard), for
    /// good: a forgotten key answers `None` even if recorded again. Always
    /// recorded, even at capacity: a forgotten key must not look landed.
    pub fn forget(&self, digests: impl IntoIterator<Item = [u8; 16]>) {
        let mut log = self.log();
        for digest in digests {
            log.pending.push(Entry::new(&digest, 0, true));
        }
    }

    /// The recorded flags of each digest, `None` where not recorded.
    pub fn lookup(&self, digests: impl IntoIterator<Item = [u8; 16]>, out: &mut Vec<Option<u32>>) {
        let mut log = self.log();
        log.index();
        out.clear();
        out.extend(digests.into_iter().map(|d| log.get(&d)));
    }

    /// Keys that answer their flags: recorded once, never forgotten.
    #[cfg(test)]
    fn len(&self) -> usize {
        let mut log = self.log();
        log.index();
        let log = &*log;
        log.buckets().flat_map(|b| b.iter().filter(move |e| log.answer(b, e).is_some())).count()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One recording or forgetting: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Digest bytes 4-7, which choose the bucket. (Byte 0 is the vbucket,
    /// and only some vbuckets are recorded.)
    prefix: u32,
    flags: u32,
    /// Digest bytes 8-15 with the lowest bit replaced by [`FORGOTTEN`].
    rest: u64,
}

const FORGOTTEN: u64 = 1;

impl Entry {
    fn new(digest: &[u8; 16], flags: u32, forgotten: bool) -> Entry {
        let (prefix, rest) = Entry::key(digest);
        Entry { prefix, flags, rest: rest | if forgotten { FORGOTTEN } else { 0 } }
    }

    /// The 95 bits of a digest the record keeps.
    fn key(digest: &[u8; 16]) -> (u32, u64) {
        let prefix = u32::from_be_bytes([digest[4], digest[5], digest[6], digest[7]]);
        let mut rest = [0u8; 8];
        rest.copy_from_slice(&digest[8..]);
        (prefix, u64::from_be_bytes(rest) & !FORGOTTEN)
    }

    fn is(&self, (prefix, rest): (u32, u64)) -> bool {
        self.prefix == prefix && self.rest & !FORGOTTEN == rest
    }

    fn forgotten(&self) -> bool {
        self.rest & FORGOTTEN != 0
    }
}

/// The entries, bucketed by digest prefix (in order within each bucket),
/// and those recorded since.
#[derive(Debug, Default)]
struct Log {
    sorted: Vec<Entry>,
    /// `sorted[starts[b]..starts[b + 1]]` is bucket `b`.
    starts: Vec<u32>,
    /// Bucket of a digest: its prefix shifted right by this.
    shift: u32,
    pending: Vec<Entry>,
}

impl Log {
    fn entries(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    /// Puts the pending entries into the buckets, in place (an American
    /// flag sort: each entry is swapped into its bucket), so indexing needs
    /// no second copy of the record. Order within a bucket is lost, which
    /// is why a digest with two entries answers `None`.
    fn index(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Grown in place, never copied into a new vector: the record is
        // never held twice.
        let mut all = if self.sorted.is_empty() {
            std::mem::take(&mut self.pending)
        } else {
            let mut all = std::mem::take(&mut self.sorted);
            all.append(&mut self.pending);
            self.pending = Vec::new();
            all
        };
        // About two entries per bucket; at least 2^8 buckets, at most 2^22.
        let bits = (usize::BITS - (all.len() / 2).leading_zeros()).clamp(8, 22);
        self.shift = 32 - bits;
        let bucket_of = |e: &Entry, shift: u32| (e.prefix >> shift) as usize;
        let mut starts = vec![0u32; (1 << bits) + 1];
        for e in &all {
            starts[bucket_of(e, self.shift) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next: Vec<u32> = starts[..starts.len() - 1].to_vec();
        for b in 0..next.len() {
            while next[b] < starts[b + 1] {
                let i = next[b] as usize;
                let home = bucket_of(&all[i], self.shift);
                if home == b {
                    next[b] += 1;
                } else {
                    // Into the next free place of its own bucket; whatever
                    // was there comes here and is looked at next.
                    let j = next[home] as usize;
                    next[home] += 1;
                    all.swap(i, j);
                }
            }
        }
        self.sorted = all;
        self.starts = starts;
    }

    fn bucket(&self, b: usize) -> &[Entry] {
        let (start, end) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        &self.sorted[start..end]
    }

    #[cfg(test)]
    fn buckets(&self) -> impl Iterator<Item = &[Entry]> {
        (0..self.starts.len().saturating_sub(1)).map(|b| self.bucket(b))
    }

    /// The flags of a digest recorded once and never forgotten. Only
    /// indexed entries are seen: call [`Log::index`] first.
    fn get(&self, digest: &[u8; 16]) -> Option<u32> {
        if self.starts.is_empty() {
            return None;
        }
        let key = Entry::key(digest);
        let bucket = self.bucket((key.0 >> self.shift) as usize);
        let entry = bucket.iter().find(|e| e.is(key))?;
        self.answer(bucket, entry)
    }

    /// What `entry`'s digest answers, given every entry of its bucket.
    fn answer(&self, bucket: &[Entry], entry: &Entry) -> Option<u32> {
        let key = (entry.prefix, entry.rest & !FORGOTTEN);
        let mut same = bucket.iter().filter(|e| e.is(key));
        let only = same.next().filter(|_| same.next().is_none())?;
        (!only.forgotten()).then_some(only.flags)
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
        landed.forget([b]);
        landed.lookup([a, b], &mut out);
        assert_eq!(out, vec![Some(7), None]);
        landed.forget([a]);
        assert!(landed.is_empty());
        // Forgotten for good: recorded again, it still takes the full path.
        landed.record([(a, 9)]);
        landed.lookup([a], &mut out);
        assert_eq!(out, vec![None]);
    }

    #[test]
    fn a_digest_recorded_twice_answers_none_whatever_the_order() {
        // The log keeps no order, so neither entry may be taken for the
        // newer: the full path decides.
        for (first, second) in [(7, 9), (9, 7), (7, 7)] {
            let landed = Landed::new(10);
            let (a, b) = (key_digest(b"a"), key_digest(b"b"));
            landed.record([(a, first), (b, 1)]);
            landed.record([(a, second)]);
            let mut out = Vec::new();
            landed.lookup([a, b], &mut out);
            assert_eq!(out, vec![None, Some(1)]);
        }
    }

    #[test]
    fn an_entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn digests_that_differ_only_in_the_forgotten_bit_or_the_vbucket_byte_share_an_entry() {
        // What the 95 bits kept leave out, stated: the bit the tombstone
        // takes and bytes 0-3.
        let a = key_digest(b"a");
        let (mut b, mut c, mut d) = (a, a, a);
        b[15] ^= 1;
        c[0] ^= 0xff;
        d[8] ^= 1;
        let landed = Landed::new(10);
        landed.record([(a, 7)]);
        let mut out = Vec::new();
        landed.lookup([a, b, c, d], &mut out);
        assert_eq!(out, vec![Some(7), Some(7), Some(7), None]);
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
    fn stops_recording_at_capacity_but_still_forgets() {
        let landed = Landed::new(3);
        let keys: Vec<[u8; 16]> = (0..4u8).map(|i| key_digest(&[i])).collect();
        landed.record(keys.iter().map(|k| (*k, 1)));
        assert_eq!(landed.len(), 3);
        landed.record([(keys[3], 5)]);
        landed.forget([keys[0]]);
        let mut out = Vec::new();
        landed.lookup(keys.iter().copied(), &mut out);
        assert_eq!(out, vec![None, Some(1), Some(1), None]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Record(Vec<(u8, u32)>),
        Forget(Vec<u8>),
        Lookup(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so that they are recorded again and forgotten.
        let keys = || proptest::collection::vec(0u8..40, 0..20);
        prop_oneof![
            proptest::collection::vec((0u8..40, any::<u32>()), 0..20).prop_map(Op::Record),
            keys().prop_map(Op::Forget),
            keys().prop_map(Op::Lookup),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Any interleaving of records, forgets and lookups answers as the
        /// model says (a digest recorded once and never forgotten has its
        /// flags, any other `None`), with many keys indexed already (`bulk`).
        #[test]
        fn the_record_answers_as_its_model(ops in proptest::collection::vec(op(), 0..60), bulk in 0u32..5_000) {
            let digest = |k: u8| key_digest(&[k]);
            let landed = Landed::new(usize::MAX);
            // Per digest: how often recorded, its last flags, whether forgotten.
            let mut model: std::collections::HashMap<[u8; 16], (u32, u32, bool)> = std::collections::HashMap::new();
            let answer = |m: &std::collections::HashMap<[u8; 16], (u32, u32, bool)>, d: &[u8; 16]| {
                m.get(d).and_then(|&(n, f, forgotten)| (n == 1 && !forgotten).then_some(f))
            };
            let filler: Vec<([u8; 16], u32)> = (0..bulk).map(|i| (key_digest(&i.to_le_bytes()), i)).collect();
            landed.record(filler.iter().copied());
            model.extend(filler.iter().map(|(d, f)| (*d, (1, *f, false))));
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Record(entries) => {
                        landed.record(entries.iter().map(|(k, f)| (digest(*k), *f)));
                        for (k, f) in entries {
                            let e = model.entry(digest(k)).or_insert((0, 0, false));
                            (e.0, e.1) = (e.0 + 1, f);
                        }
                    }
                    Op::Forget(keys) => {
                        landed.forget(keys.iter().map(|k| digest(*k)));
                        keys.iter().for_each(|k| model.entry(digest(*k)).or_insert((0, 0, false)).2 = true);
                    }
                    Op::Lookup(keys) => {
                        landed.lookup(keys.iter().map(|k| digest(*k)), &mut out);
                        let expected: Vec<Option<u32>> = keys.iter().map(|k| answer(&model, &digest(*k))).collect();
                        prop_assert_eq!(&out, &expected);
                    }
                }
            }
            let all: Vec<[u8; 16]> = (0..40).map(digest).chain(filler.iter().map(|(d, _)| *d)).collect();
            landed.lookup(all.iter().copied(), &mut out);
            let expected: Vec<Option<u32>> = all.iter().map(|d| answer(&model, d)).collect();
            prop_assert_eq!(out, expected);
            prop_assert_eq!(landed.len(), model.keys().filter(|d| answer(&model, d).is_some()).count());
        }
    }
}
