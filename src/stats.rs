//! Live resync counters, shared between the worker that updates them and
//! whoever reports them (the progress display now, the AgentX subagent
//! later). Plain atomics: the worker never waits for a reader and a reader
//! never waits for the worker.
//!
//! Semantics follow the Astaire MIB (`shared/spec/snmp.md`): the counters
//! describe the *running* resync, read 0 when none runs, and their rows
//! vanish when it finishes. [`Snapshot`] is the saturated 32-bit view a
//! reporter serves.
//!
//! [`NodeCounters`] (issue 31) holds what outlives one resync, for the
//! Prometheus endpoint: totals that a finished resync folds in (so a
//! `_total` never goes back when the running resync's rows vanish), the
//! outcomes and item fates the daemon adds when a resync ends, failures per
//! source, and the node's readiness and heartbeat. The endpoint reads these
//! and the running resync's atomics above; it keeps no count of its own.

use crate::placement::WorkList;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

/// Length of a bandwidth period, in seconds.
pub const BANDWIDTH_PERIOD_SECS: u64 = 5;

/// The statistics of this process: the running resync, if any.
#[derive(Debug, Default)]
pub struct Stats {
    current: RwLock<Option<Arc<ResyncCounters>>>,
    /// What outlives one resync (issue 31).
    pub node: NodeCounters,
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
    /// When it started, on the wall clock (Prometheus wants Unix seconds).
    pub started_at: SystemTime,
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
            started_at: SystemTime::now(),
            pairs: work.pairs() as u64,
            pairs_done: AtomicU64::new(0),
            total: Counter::default(),
            keys_found: AtomicU64::new(0),
            connections,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
        progress
    }

    /// The resync is over: counters read 0 and rows disappear. What it
    /// counted is folded into the lifetime totals under the same lock a
    /// reader of [`Stats::totals`] takes, so no reader sees it twice or
    /// not at all.
    pub fn finish(&self) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = current.take() {
            let n = &self.node;
            n.finished_pairs.fetch_add(p.pairs_done.load(Relaxed), Relaxed);
            n.finished_entries.fetch_add(p.total.entries.load(Relaxed), Relaxed);
            n.finished_bytes.fetch_add(p.total.bytes.load(Relaxed), Relaxed);
        }
    }

    /// Totals over the life of the process, the running resync included:
    /// they never go back (Prometheus counters).
    pub fn totals(&self) -> Totals {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let n = &self.node;
        let mut t = Totals {
            buckets_resynchronized: n.finished_pairs.load(Relaxed),
            keys_copied: n.finished_entries.load(Relaxed),
            bytes_copied: n.finished_bytes.load(Relaxed),
        };
        if let Some(p) = current.as_ref() {
            t.buckets_resynchronized += p.pairs_done.load(Relaxed);
            t.keys_copied += p.total.entries.load(Relaxed);
            t.bytes_copied += p.total.bytes.load(Relaxed);
        }
        t
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

/// Lifetime totals: finished resyncs plus the running one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub buckets_resynchronized: u64,
    pub keys_copied: u64,
    pub bytes_copied: u64,
}

/// How a resync ended, as `astaire_resyncs_total{result=…}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResyncResult {
    Succeeded,
    /// It ran, and some vbuckets were not pulled (every source failed).
    Failed,
    /// The local memcached did not answer: nothing could be written.
    LocalUnreachable,
    /// Stopped by a shutdown before the end.
    Cancelled,
    /// `cluster_settings` was unreadable or invalid: nothing was tried.
    BadSettings,
}

impl ResyncResult {
    pub const ALL: [ResyncResult; 5] = [
        ResyncResult::Succeeded,
        ResyncResult::Failed,
        ResyncResult::LocalUnreachable,
        ResyncResult::Cancelled,
        ResyncResult::BadSettings,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ResyncResult::Succeeded => "succeeded",
            ResyncResult::Failed => "failed",
            ResyncResult::LocalUnreachable => "local_unreachable",
            ResyncResult::Cancelled => "cancelled",
            ResyncResult::BadSettings => "bad_settings",
        }
    }
}

/// Whether the node may take clients (`/readyz`), and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// The first resync has not been decided yet.
    Starting = 0,
    /// In sync with the settings last read.
    Ready = 1,
    /// A resync is due (a reload, a restart tag found missing, a retry).
    Pending = 2,
    Resyncing = 3,
    /// The last resync failed (or its settings were bad): the node may
    /// miss data until one succeeds.
    Failed = 4,
    /// Not in servers or new_servers: it holds nothing for the cluster.
    NotMember = 5,
    LocalUnreachable = 6,
    Stopping = 7,
}

impl Readiness {
    const ALL: [Readiness; 8] = [
        Readiness::Starting,
        Readiness::Ready,
        Readiness::Pending,
        Readiness::Resyncing,
        Readiness::Failed,
        Readiness::NotMember,
        Readiness::LocalUnreachable,
        Readiness::Stopping,
    ];

    fn from_u8(v: u8) -> Readiness {
        Readiness::ALL.into_iter().find(|r| *r as u8 == v).unwrap_or(Readiness::Starting)
    }

    /// What `/readyz` says, one word.
    pub fn reason(self) -> &'static str {
        match self {
            Readiness::Starting => "starting",
            Readiness::Ready => "ready",
            Readiness::Pending => "resync-pending",
            Readiness::Resyncing => "resyncing",
            Readiness::Failed => "resync-failed",
            Readiness::NotMember => "not-member",
            Readiness::LocalUnreachable => "local-unreachable",
            Readiness::Stopping => "stopping",
        }
    }
}

/// What one finished resync did to items (from its report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemFates {
    /// Added locally.
    pub landed: u64,
    /// Replaced an older local value.
    pub replaced: u64,
    /// Left alone: the local value was as new or newer.
    pub kept: u64,
    /// Removed again because the source deleted them meanwhile.
    pub reverted: u64,
    /// Could not be stored.
    pub failed: u64,
}

/// The most sources `astaire_source_failures_total` names; failures of
/// any further source count under `source="other"`. A cluster has a
/// handful of servers, but the settings change over the life of the
/// process, and a label set must stay bounded.
pub const MAX_SOURCE_LABELS: usize = 64;

/// The label that failures of sources past [`MAX_SOURCE_LABELS`] take.
pub const OTHER_SOURCES: &str = "other";

/// What outlives one resync (issue 31). Written by the resync's end
/// ([`Stats::finish`]) and by the daemon; read by the metrics endpoint.
#[derive(Debug)]
pub struct NodeCounters {
    finished_pairs: AtomicU64,
    finished_entries: AtomicU64,
    finished_bytes: AtomicU64,
    results: [AtomicU64; 5],
    fates: [AtomicU64; 5],
    source_failures: Mutex<BTreeMap<String, u64>>,
    readiness: AtomicU8,
    /// 0 before any resync ended, 1 the last succeeded, 2 it did not.
    last_success: AtomicU8,
    /// When the daemon's loop last turned, in ms since `born`.
    heartbeat_ms: AtomicU64,
    born: Instant,
    /// How many servers and new_servers the settings last read list.
    pub servers: AtomicU64,
    pub new_servers: AtomicU64,
    /// Changes to the watched files the daemon noticed (each a reload).
    pub file_changes: AtomicU64,
}

impl Default for NodeCounters {
    fn default() -> Self {
        NodeCounters {
            finished_pairs: AtomicU64::new(0),
            finished_entries: AtomicU64::new(0),
            finished_bytes: AtomicU64::new(0),
            results: Default::default(),
            fates: Default::default(),
            source_failures: Mutex::new(BTreeMap::new()),
            readiness: AtomicU8::new(Readiness::Starting as u8),
            last_success: AtomicU8::new(0),
            heartbeat_ms: AtomicU64::new(0),
            born: Instant::now(),
            servers: AtomicU64::new(0),
            new_servers: AtomicU64::new(0),
            file_changes: AtomicU64::new(0),
        }
    }
}

impl NodeCounters {
    /// A resync ended so; `fates` when it ran to the end.
    pub fn resync_ended(&self, result: ResyncResult, fates: Option<ItemFates>) {
        if let Some(slot) = self.results.get(result as usize) {
            slot.fetch_add(1, Relaxed);
        }
        if let Some(f) = fates {
            for (slot, n) in self.fates.iter().zip([f.landed, f.replaced, f.kept, f.reverted, f.failed]) {
                slot.fetch_add(n, Relaxed);
            }
        }
        let success = if result == ResyncResult::Succeeded { 1 } else { 2 };
        self.last_success.store(success, Relaxed);
    }

    pub fn resyncs(&self, result: ResyncResult) -> u64 {
        self.results.get(result as usize).map_or(0, |a| a.load(Relaxed))
    }

    /// Item fates over every finished resync.
    pub fn fates(&self) -> ItemFates {
        let f = |i: usize| self.fates.get(i).map_or(0, |a| a.load(Relaxed));
        ItemFates { landed: f(0), replaced: f(1), kept: f(2), reverted: f(3), failed: f(4) }
    }

    /// Whether the last resync succeeded; `None` before any ended.
    pub fn last_succeeded(&self) -> Option<bool> {
        match self.last_success.load(Relaxed) {
            0 => None,
            v => Some(v == 1),
        }
    }

    /// A source failed in a resync.
    pub fn source_failed(&self, source: &str) {
        let mut map = self.source_failures.lock().unwrap_or_else(|e| e.into_inner());
        count_bounded(&mut map, source, MAX_SOURCE_LABELS);
    }

    /// Failures per source label, in label order.
    pub fn source_failures(&self) -> Vec<(String, u64)> {
        let map = self.source_failures.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn set_readiness(&self, r: Readiness) {
        self.readiness.store(r as u8, Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        Readiness::from_u8(self.readiness.load(Relaxed))
    }

    /// The daemon's loop turned now.
    pub fn beat(&self) {
        self.heartbeat_ms.store(self.born.elapsed().as_millis() as u64, Relaxed);
    }

    /// How long since the daemon's loop last turned.
    pub fn since_heartbeat(&self) -> std::time::Duration {
        let now = self.born.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.heartbeat_ms.load(Relaxed)))
    }
}

/// Counts one under `label` in `map`, which holds at most `limit` labels
/// besides [`OTHER_SOURCES`]: a new label past that counts as "other".
fn count_bounded(map: &mut BTreeMap<String, u64>, label: &str, limit: usize) {
    let named = map.len() - usize::from(map.contains_key(OTHER_SOURCES));
    let key = if map.contains_key(label) || named < limit { label } else { OTHER_SOURCES };
    *map.entry(key.to_owned()).or_default() += 1;
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

    /// Issue 31: a `_total` never goes back when the running resync's rows
    /// vanish, and a finished resync is counted once.
    #[test]
    fn totals_fold_a_finished_resync_in_and_never_go_back() {
        let stats = Stats::new();
        for round in 1..=2u64 {
            let p = stats.begin(&work(), |s| s.parse().ok());
            p.total.add(10, 1000);
            p.source_done("10.0.0.2:11211");
            let during = stats.totals();
            let want =
                Totals { buckets_resynchronized: 2 * round, keys_copied: 10 * round, bytes_copied: 1000 * round };
            assert_eq!(during, want);
            stats.finish();
            assert_eq!(stats.totals().keys_copied, 10 * round, "the same after the rows vanish");
            p.source_done("10.0.0.1:11211");
            assert_eq!(
                stats.totals().buckets_resynchronized,
                2 * round,
                "late updates to a finished resync are unseen"
            );
        }
    }

    #[test]
    fn source_failure_labels_are_bounded() {
        let mut map = BTreeMap::new();
        for i in 0..10 {
            count_bounded(&mut map, &format!("10.0.0.{i}:11211"), 3);
        }
        count_bounded(&mut map, "10.0.0.1:11211", 3);
        assert_eq!(map.len(), 4, "{map:?}");
        assert_eq!(map.get("10.0.0.1:11211"), Some(&2), "a named source keeps counting");
        assert_eq!(map.get(OTHER_SOURCES), Some(&7));
    }

    #[test]
    fn outcomes_and_readiness_round_trip() {
        let n = NodeCounters::default();
        assert_eq!((n.last_succeeded(), n.readiness()), (None, Readiness::Starting));
        n.resync_ended(ResyncResult::Failed, Some(ItemFates { kept: 3, ..ItemFates::default() }));
        n.resync_ended(ResyncResult::Succeeded, Some(ItemFates { kept: 1, landed: 5, ..ItemFates::default() }));
        assert_eq!((n.resyncs(ResyncResult::Failed), n.resyncs(ResyncResult::Succeeded)), (1, 1));
        assert_eq!((n.fates().kept, n.fates().landed, n.last_succeeded()), (4, 5, Some(true)));
        for r in Readiness::ALL {
            n.set_readiness(r);
            assert_eq!(n.readiness(), r);
        }
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
