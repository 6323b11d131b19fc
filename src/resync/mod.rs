//! The resync: pull every vbucket of a node's work list from its sources
//! into the local memcached, without ever overwriting newer data.
//!
//! [`run`] streams all sources concurrently (with the conflict rules the
//! order of arrival does not matter), publishes progress into
//! [`crate::stats`], and ends by writing the restart tag. A vbucket fails
//! only when every one of its sources failed; a failed resync still ends,
//! it never hangs. The local node failing ends the whole resync with
//! [`ResyncError::Local`].

pub mod barrier;
pub mod batch;
pub mod context;
pub mod dump;
mod fate;
pub mod fetch;
pub mod inject;
pub mod queue;
pub mod rules;
pub mod source;
pub mod tag;

pub use tag::TAG_KEY;

use crate::memcached::{Connection, McError};
use crate::placement::WorkList;
use crate::stats::{Stats, BANDWIDTH_PERIOD_SECS};
use crate::stop::Stop;
use crate::throttle::{Bandwidth, CpuBudget, Throttle};
pub use context::CopyError;
pub use dump::OWN_PREFIX;
pub use rules::ConflictPolicy;
pub use source::SourceOutcome;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Keys per pipelined batch, by default. Each batch costs its fixed part
/// (a request write and a wake-up per stage, the delete guard's two
/// `stats`) whatever its size: 4,096 rather than 1,024 took a 3→4 of 1 M
/// keys at 100 B from 1.80-2.03 to 1.66-1.77 µs of CPU per key landed
/// unthrottled and from 2.20-2.41 to 1.92-2.08 at 5%, a third of the
/// context switches, for 6-9 MiB more peak memory (issue 32).
pub const BATCH_KEYS: usize = 4096;

/// How a resync runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub conflict: ConflictPolicy,
    /// Keys per pipelined batch.
    pub batch_keys: usize,
    /// Item bytes per batch (as the dump reports them): large values make
    /// smaller batches, so memory stays bounded.
    pub batch_bytes: u64,
    /// Inactivity timeout on every connection.
    pub io_timeout: Duration,
    /// How long to wait for a source whose crawler is busy.
    pub busy_wait: Duration,
    /// Bytes per second over all sources; `None` for no limit.
    pub bandwidth_limit: Option<u64>,
    /// Share of one core the process may use (0.1 = 10%); `None` for no limit.
    pub cpu_share: Option<f64>,
    /// Set to stop the resync at the next safe point (between batches).
    pub cancel: Option<Arc<AtomicBool>>,
    /// The key listing command; `None` picks by each source's version.
    pub dump: Option<crate::memcached::dump::DumpMode>,
    /// Memory for keys waiting to be copied, over the whole resync; past it
    /// they wait in a spill file.
    pub queue_memory: usize,
    /// Where spill files go; `None` for [`queue::default_spill_dir`].
    pub spill_dir: Option<std::path::PathBuf>,
    /// The most the spill files may hold at once; `None` for
    /// [`queue::default_spill_limit`].
    pub spill_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            conflict: ConflictPolicy::default(),
            batch_keys: BATCH_KEYS,
            batch_bytes: 1 << 20,
            io_timeout: crate::memcached::DEFAULT_TIMEOUT,
            busy_wait: Duration::from_secs(60),
            bandwidth_limit: None,
            cpu_share: None,
            cancel: None,
            dump: None,
            queue_memory: queue::DEFAULT_QUEUE_MEMORY,
            spill_dir: None,
            spill_limit: None,
        }
    }
}

/// What happened to the items of a resync.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    /// Items read from sources.
    pub fetched: u64,
    /// Added locally.
    pub landed: u64,
    /// Replaced an older local value (clearwater-timestamp policy).
    pub replaced: u64,
    /// Left alone: the local value was as new or newer.
    pub kept: u64,
    /// Already landed from another source and not newer here: checked
    /// (`mg f`) instead of read again.
    pub checked: u64,
    /// Not copied: they would expire on arrival.
    pub skipped: u64,
    /// Listed by a dump but gone from the source before the fetch.
    pub vanished: u64,
    /// Re-checked on their source after landing, because clients removed
    /// items there meanwhile (the delete guard).
    pub rechecked: u64,
    /// Removed again because the source deleted them meanwhile.
    pub reverted: u64,
    /// Could not be copied (local refused, or unexpressible key).
    pub failed: u64,
    /// Key + value bytes read from sources.
    pub bytes: u64,
    #[serde(skip)]
    pub failed_vbuckets: BTreeMap<u8, u64>,
}

impl Counts {
    fn merge(&mut self, o: &Counts) {
        self.fetched += o.fetched;
        self.landed += o.landed;
        self.replaced += o.replaced;
        self.kept += o.kept;
        self.checked += o.checked;
        self.skipped += o.skipped;
        self.vanished += o.vanished;
        self.rechecked += o.rechecked;
        self.reverted += o.reverted;
        self.failed += o.failed;
        self.bytes += o.bytes;
        for (vb, n) in &o.failed_vbuckets {
            *self.failed_vbuckets.entry(*vb).or_default() += n;
        }
    }
}

/// The outcome of one source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    pub source: String,
    pub vbuckets: Vec<u8>,
    pub listed: u64,
    /// Every key its dump named, wanted or not.
    pub dumped: u64,
    /// Why this source failed, if it did.
    pub error: Option<String>,
}

/// The outcome of a resync.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub vbuckets: usize,
    pub pairs: usize,
    pub counts: Counts,
    pub sources: Vec<SourceReport>,
    /// Vbuckets not fully pulled, with why.
    pub failed_vbuckets: BTreeMap<u8, String>,
    pub seconds: f64,
    /// Items the local memcached evicted during the resync: it is too small
    /// for its share (what was evicted is gone from this node).
    pub local_evictions: u64,
    /// Bytes of keys that waited in a spill file (past `queue_memory`).
    pub spilled_bytes: u64,
    /// The most the spill files held at once.
    pub spill_peak_bytes: u64,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.failed_vbuckets.is_empty()
    }

    /// Items read from sources per second (a key held by two sources is
    /// read twice).
    pub fn items_per_second(&self) -> f64 {
        self.counts.fetched as f64 / self.seconds.max(1e-9)
    }

    /// Keys written locally (added or replacing an older value) per second.
    pub fn keys_landed_per_second(&self) -> f64 {
        (self.counts.landed + self.counts.replaced) as f64 / self.seconds.max(1e-9)
    }
}

/// A resync that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error("local memcached {0}")]
    Local(McError),
    #[error("stopped before the end (shutdown)")]
    Cancelled,
}

/// Why a local memcached without the meta commands cannot take a resync,
/// and what to do.
pub const NO_META: &str = "does not know the meta commands (mn answered ERROR): Astaire needs upstream memcached 1.6 \
    or later. Clearwater's own memcached (clearwater-memcached, a 1.6.00 fork) has neither meta commands nor key \
    listing: move the node to Debian's memcached and convert its configuration with astaire migrate-memcached-config \
    (docs/clearwater.md, \"Swapping Clearwater's Astaire for this one\", step 2)";

/// memcached's `-I` when the local memcached does not say (1 MiB).
const DEFAULT_ITEM_SIZE_MAX: u64 = 1 << 20;

/// Runs one resync of `work`, publishing progress into `stats`.
pub async fn run(work: &WorkList, opts: &Options, stats: &Stats) -> Result<Report, ResyncError> {
    let started = Instant::now();
    let local_name = work.local_name.clone();
    let mut local = Connection::connect(&local_name, opts.io_timeout).await.map_err(ResyncError::Local)?;
    if !local.speaks_meta().await.map_err(ResyncError::Local)? {
        return Err(ResyncError::Local(McError::Unexpected { server: local_name, message: NO_META.into() }));
    }
    let evictions_before = local.evictions().await.map_err(ResyncError::Local)?;
    // What the local memcached cannot store is never held: a source's
    // larger values are read past from their header.
    let item_size_max = local.item_size_max().await.map_err(ResyncError::Local)?.unwrap_or(DEFAULT_ITEM_SIZE_MAX);
    let item_size_max = usize::try_from(item_size_max).unwrap_or(usize::MAX);
    // A full resync first forgets that this node was complete: if it stops
    // part way, or fails, the next start (or the daemon's tag check) sees
    // the tag missing and does it again.
    if work.full {
        tag::remove(&mut local).await.map_err(ResyncError::Local)?;
    }

    let by_source = work.by_source();
    let mut addrs = BTreeMap::new();
    for source in by_source.keys() {
        addrs.insert(source.clone(), resolve(source).await);
    }
    info!(
        local = %local_name,
        vbuckets = work.vbuckets.len(),
        sources = by_source.len(),
        full = work.full,
        "resync started"
    );
    let progress = stats.begin(work, |s| addrs.get(s).copied().flatten());
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let period = Duration::from_secs(BANDWIDTH_PERIOD_SECS);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                progress.close_period();
            }
        })
    };

    let ctx = Arc::new(context::CopyContext {
        local_name: local_name.clone(),
        opts: opts.clone(),
        throttle: Throttle {
            bandwidth: opts.bandwidth_limit.map(Bandwidth::new),
            cpu: opts.cpu_share.map(CpuBudget::new),
        },
        progress: Some(progress.clone()),
        barrier: barrier::PrimaryBarrier::new(by_source.len()),
        queue: queue::QueueBudget::with_spill_limit(
            opts.queue_memory,
            opts.spill_dir.clone().unwrap_or_else(queue::default_spill_dir),
            opts.spill_limit,
        ),
        classifier: work.classifier.clone(),
        stop: Stop::new(opts.cancel.clone()),
        item_size_max,
    });
    let first = work.first_sources();
    let mut tasks = tokio::task::JoinSet::new();
    // Which source each task copies, to name it whatever way the task ends.
    let mut task_source = std::collections::HashMap::new();
    for (source, vbuckets) in &by_source {
        let wanted = dump::bucket_set(vbuckets);
        let primary = dump::bucket_set(first.get(source).into_iter().flatten());
        let (src, ctx) = (source.clone(), ctx.clone());
        let task = tasks.spawn(async move { source::copy_source(src, wanted, primary, ctx).await });
        task_source.insert(task.id(), source.clone());
    }

    let mut counts = Counts::default();
    let mut failed_sources: BTreeMap<String, String> = BTreeMap::new();
    // Per source: keys listed in its wanted vbuckets, and keys its dump named.
    let mut listings: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut local_error = None;
    while let Some(joined) = tasks.join_next_with_id().await {
        let (source, outcome, result) = settle(joined, &mut task_source);
        counts.merge(&outcome.counts);
        listings.insert(source.clone(), (outcome.listed, outcome.dumped));
        match result {
            Ok(()) => {
                progress.source_done(&source);
                info!(%source, keys = outcome.listed, "source done");
            }
            Err(CopyError::Local(e)) => {
                local_error.get_or_insert(e);
                tasks.abort_all();
            }
            Err(CopyError::Stopped) => {}
            Err(CopyError::Source(e)) => {
                warn!(%source, "source failed: {e}");
                failed_sources.insert(source, e.to_string());
            }
        }
    }
    ticker.abort();

    if let Some(e) = local_error {
        stats.finish();
        return Err(ResyncError::Local(e));
    }
    // Stopped part way: no tag (the node is not known to be complete).
    if opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        stats.finish();
        info!("resync stopped at a safe point");
        return Err(ResyncError::Cancelled);
    }

    let mut failed_vbuckets = BTreeMap::new();
    for (vb, sources) in &work.vbuckets {
        if sources.iter().all(|s| failed_sources.contains_key(s)) {
            let why: Vec<String> = sources.iter().map(|s| failed_sources[s].clone()).collect();
            failed_vbuckets.insert(*vb, format!("every source failed: {}", why.join("; ")));
        } else if let Some(n) = counts.failed_vbuckets.get(vb) {
            failed_vbuckets.insert(*vb, format!("{n} items could not be stored"));
        }
    }

    // The tag says "this memcached has been resynced": written after every
    // resync that left no vbucket behind, so a restart (which loses it) can
    // be detected. After a failed full resync it stays absent, and the full
    // resync is done again; a failed minimal one leaves it as it was.
    if failed_vbuckets.is_empty() {
        let tag = tag::write(&mut local).await;
        stats.finish();
        tag.map_err(ResyncError::Local)?;
    } else {
        stats.finish();
    }
    let local_evictions = local.evictions().await.map_err(ResyncError::Local)?.saturating_sub(evictions_before);
    if local_evictions > 0 {
        warn!(
            local = %local_name,
            evicted = local_evictions,
            "the local memcached evicted items during the resync: it is too small for its share of the cluster"
        );
    }

    let report = Report {
        vbuckets: work.vbuckets.len(),
        pairs: work.pairs(),
        sources: by_source
            .into_iter()
            .map(|(source, vbuckets)| SourceReport {
                listed: listings.get(&source).map_or(0, |&(listed, _)| listed),
                dumped: listings.get(&source).map_or(0, |&(_, dumped)| dumped),
                error: failed_sources.get(&source).cloned(),
                source,
                vbuckets,
            })
            .collect(),
        counts,
        failed_vbuckets,
        seconds: started.elapsed().as_secs_f64(),
        local_evictions,
        spilled_bytes: ctx.queue.spilled.load(std::sync::atomic::Ordering::Relaxed),
        spill_peak_bytes: ctx.queue.spill_peak.load(std::sync::atomic::Ordering::Relaxed),
    };
    if report.succeeded() {
        info!(
            landed = report.counts.landed + report.counts.replaced,
            items = report.counts.fetched,
            bytes = report.counts.bytes,
            seconds = format!("{:.2}", report.seconds),
            keys_per_sec = format!("{:.0}", report.keys_landed_per_second()),
            spilled_bytes = report.spilled_bytes,
            "resync completed"
        );
    } else {
        let vbs: Vec<String> = report.failed_vbuckets.keys().map(u8::to_string).collect();
        warn!(failed_vbuckets = %vbs.join(","), sources = ?failed_sources, "resync failed");
    }
    Ok(report)
}

/// How one source's task ended: its source, what it delivered, and its
/// result. A task that ended without an outcome (it panicked, or was
/// aborted) is a failed source, never a succeeded one.
type Settled = (String, SourceOutcome, Result<(), CopyError>);

/// What a source's task returns: [`source::copy_source`]'s outcome.
type Copied = (SourceOutcome, Result<(), CopyError>);

fn settle(
    joined: Result<(tokio::task::Id, Copied), tokio::task::JoinError>,
    task_source: &mut std::collections::HashMap<tokio::task::Id, String>,
) -> Settled {
    match joined {
        Ok((id, (outcome, result))) => (task_source.remove(&id).unwrap_or_default(), outcome, result),
        Err(e) => {
            let source = task_source.remove(&e.id()).unwrap_or_default();
            let why = if e.is_panic() { "the copy from this source panicked" } else { "the copy was cancelled" };
            let error = McError::Unexpected { server: source.clone(), message: why.to_owned() };
            (source, SourceOutcome::default(), Err(CopyError::Source(error)))
        }
    }
}

/// The address a source resolved to (for reporting), if any.
pub async fn resolve(server: &str) -> Option<SocketAddr> {
    tokio::net::lookup_host(server).await.ok().and_then(|mut a| a.next())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 29: a source whose task panicked was skipped by the join
    /// loop, so its vbuckets counted as copied.
    #[tokio::test]
    async fn a_source_whose_task_panicked_is_a_failed_source() {
        let mut tasks = tokio::task::JoinSet::new();
        let mut names = std::collections::HashMap::new();
        let id = tasks
            .spawn(async {
                if true {
                    panic!("a bug in the copy");
                }
                (SourceOutcome::default(), Ok(()))
            })
            .id();
        names.insert(id, "10.0.0.1:11211".to_owned());
        let (source, _, result) = settle(tasks.join_next_with_id().await.unwrap(), &mut names);
        assert_eq!(source, "10.0.0.1:11211");
        match result {
            Err(CopyError::Source(e)) => {
                assert_eq!(e.to_string(), "10.0.0.1:11211: the copy from this source panicked")
            }
            other => panic!("a panicked task must be a failed source, not {other:?}"),
        }
    }
}
