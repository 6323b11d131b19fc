//! Live resync counters, shared between the worker that updates them and
//! whoever reports them (the progress display now, the AgentX subagent
//! later). Plain atomics: the worker never waits for a reader and a reader
//! never waits for the worker.
//!
//! Semantics follow the Astaire MIB (`shared/spec/snmp.md`): the counters
//! describe the *running* resync, read 0 when none runs, and their rows
//! vanish when it finishes. [`Snapshot`] is the saturated 32-bit view a
//! reporter serves.

use crate::view::WorkList;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Length of a bandwidth period, in seconds.
pub const BANDWIDTH_PERIOD_SECS: u64 = 5;

/// The statistics of this process: the running resync, if any.
#[derive(Debug, Default)]
pub struct Stats {
    current: RwLock<Option<Arc<ResyncCounters>>>,
}

/// A byte/entry counter with its bandwidth over the previous period.
#[derive(Debug, Default)]
pub struct Counter {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    bandwidth: AtomicU64,
    period_start_bytes: AtomicU64,
}

impl Counter {
    pub fn add(&self, entries: u64, bytes: u64) {
        self.entries.fetch_add(entries, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// Bytes per second over the previous complete period.
    pub fn bandwidth(&self) -> u64 {
        self.bandwidth.load(Relaxed)
    }

    fn close_period(&self) {
        let now = self.bytes.load(Relaxed);
        let before = self.period_start_bytes.swap(now, Relaxed);
        self.bandwidth.store(now.saturating_sub(before) / BANDWIDTH_PERIOD_SECS, Relaxed);
    }
}

/// The live counters of one running resync (the stages update them; the
/// progress display, the daemon's status and the MIB read them).
#[derive(Debug)]
pub struct ResyncCounters {
    pub started: Instant,
    /// (vbucket, source) pairs in this resync.
    pub pairs: u64,
    pub pairs_done: AtomicU64,
    /// Totals over every source.
    pub total: Counter,
    /// Keys the dumps found in the wanted vbuckets so far (a progress total).
    pub keys_found: AtomicU64,
    pub connections: Vec<ConnectionStats>,
}

/// One source connection.
#[derive(Debug)]
pub struct ConnectionStats {
    pub source: String,
    /// Where the source resolved to; `None` when it could not be resolved
    /// (such a source has no MIB row: its index is an address).
    pub addr: Option<SocketAddr>,
    pub buckets_done: AtomicU64,
    /// One entry per vbucket pulled over this connection, in vbucket order.
    pub buckets: Vec<BucketStats>,
}

#[derive(Debug)]
pub struct BucketStats {
    pub vbucket: u8,
    pub counter: Counter,
}

impl ConnectionStats {
    pub fn bucket(&self, vbucket: u8) -> Option<&BucketStats> {
        self.buckets.binary_search_by_key(&vbucket, |b| b.vbucket).ok().map(|i| &self.buckets[i])
    }
}

impl ResyncCounters {
    pub fn connection(&self, source: &str) -> Option<&ConnectionStats> {
        self.connections.iter().find(|c| c.source == source)
    }

    /// Marks every pair of `source` complete.
    pub fn source_done(&self, source: &str) {
        if let Some(c) = self.connection(source) {
            let n = c.buckets.len() as u64;
            let before = c.buckets_done.swap(n, Relaxed);
            self.pairs_done.fetch_add(n - before.min(n), Relaxed);
        }
    }

    /// Closes a bandwidth period; call every [`BANDWIDTH_PERIOD_SECS`].
    pub fn close_period(&self) {
        self.total.close_period();
        for c in &self.connections {
            c.buckets.iter().for_each(|b| b.counter.close_period());
        }
    }
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    /// Starts publishing a resync of `work`; `addrs` resolves each source.
    pub fn begin(&self, work: &WorkList, resolve: impl Fn(&str) -> Option<SocketAddr>) -> Arc<ResyncCounters> {
        let connections = work
            .by_source()
            .into_iter()
            .map(|(source, vbuckets)| ConnectionStats {
                addr: resolve(&source),
                source,
                buckets_done: AtomicU64::new(0),
                buckets: vbuckets
                    .into_iter()
                    .map(|vbucket| BucketStats { vbucket, counter: Counter::default() })
                    .collect(),
            })
            .collect();
        let progress = Arc::new(ResyncCounters {
            started: Instant::now(),
            pairs: work.pairs() as u64,
            pairs_done: AtomicU64::new(0),
            total: Counter::default(),
            keys_found: AtomicU64::new(0),
            connections,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
        progress
    }

    /// The resync is over: counters read 0 and rows disappear.
    pub fn finish(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn current(&self) -> Option<Arc<ResyncCounters>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The values a reporter serves, saturated to 32 bits.
    pub fn snapshot(&self) -> Snapshot {
        let Some(p) = self.current() else {
            return Snapshot::default();
        };
        Snapshot {
            buckets_needing_resync: sat(p.pairs),
            buckets_resynchronized: sat(p.pairs_done.load(Relaxed)),
            entries_resynchronized: sat(p.total.entries.load(Relaxed)),
            data_resynchronized: sat(p.total.bytes.load(Relaxed)),
            bandwidth: sat(p.total.bandwidth()),
            connections: p
                .connections
                .iter()
                .filter_map(|c| {
                    Some(ConnectionSnapshot {
                        addr: c.addr?,
                        buckets_needing_resync: sat(c.buckets.len() as u64),
                        buckets_resynchronized: sat(c.buckets_done.load(Relaxed)),
                        buckets: c
                            .buckets
                            .iter()
                            .map(|b| BucketSnapshot {
                                vbucket: b.vbucket,
                                entries: sat(b.counter.entries.load(Relaxed)),
                                data: sat(b.counter.bytes.load(Relaxed)),
                                bandwidth: sat(b.counter.bandwidth()),
                            })
                            .collect(),
                    })
                })
                .collect(),
        }
    }
}

fn sat(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Everything the Astaire MIB publishes, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub buckets_needing_resync: u32,
    pub buckets_resynchronized: u32,
    pub entries_resynchronized: u32,
    pub data_resynchronized: u32,
    pub bandwidth: u32,
    pub connections: Vec<ConnectionSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSnapshot {
    pub addr: SocketAddr,
    pub buckets_needing_resync: u32,
    pub buckets_resynchronized: u32,
    pub buckets: Vec<BucketSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSnapshot {
    pub vbucket: u8,
    pub entries: u32,
    pub data: u32,
    pub bandwidth: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn work() -> WorkList {
        let mut vbuckets = BTreeMap::new();
        vbuckets.insert(3, vec!["10.0.0.1:11211".to_owned(), "10.0.0.2:11211".to_owned()]);
        vbuckets.insert(9, vec!["10.0.0.2:11211".to_owned()]);
        WorkList { local_name: "10.0.0.4:11211".into(), full: false, vbuckets, ..WorkList::default() }
    }

    #[test]
    fn idle_reads_zero_and_no_rows() {
        let stats = Stats::new();
        assert_eq!(stats.snapshot(), Snapshot::default());
    }

    #[test]
    fn a_resync_counts_pairs_entries_bytes_and_bandwidth_then_resets() {
        let stats = Stats::new();
        let p = stats.begin(&work(), |s| s.parse().ok());
        assert_eq!(stats.snapshot().buckets_needing_resync, 3);
        let c = p.connection("10.0.0.2:11211").unwrap();
        c.bucket(9).unwrap().counter.add(2, 1000);
        p.total.add(2, 1000);
        p.close_period();
        p.source_done("10.0.0.2:11211");
        p.source_done("10.0.0.2:11211"); // idempotent
        let s = stats.snapshot();
        assert_eq!((s.buckets_resynchronized, s.entries_resynchronized, s.data_resynchronized), (2, 2, 1000));
        assert_eq!(s.bandwidth, 200);
        assert_eq!(s.connections.len(), 2);
        let row = &s.connections[1];
        assert_eq!((row.buckets_needing_resync, row.buckets_resynchronized), (2, 2));
        assert_eq!(row.buckets[1], BucketSnapshot { vbucket: 9, entries: 2, data: 1000, bandwidth: 200 });
        stats.finish();
        assert_eq!(stats.snapshot(), Snapshot::default());
    }

    #[test]
    fn values_saturate_at_u32_max() {
        let stats = Stats::new();
        let p = stats.begin(&work(), |_| None);
        p.total.add(1, u64::from(u32::MAX) + 5);
        let s = stats.snapshot();
        assert_eq!(s.data_resynchronized, u32::MAX);
        assert!(s.connections.is_empty(), "unresolved sources have no row");
    }
}
