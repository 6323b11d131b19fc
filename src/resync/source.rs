//! Copying from one source: a dump task, a fetcher and an injector.
//!
//! ```text
//!  source ──metadump──▶ dump task ──primary keys──▶ fetcher ──items (2 batches)──▶ injector ──▶ local
//!                       (never waits) ──other keys──▶ (after    mg … f t v u        ms … ME, conflicts,
//!                                                    the barrier) or mg f only     delete guard, record
//! ```
//!
//! The dump task only reads, filters by vbucket and forwards: in 1.6.18 a
//! metadump that is not drained holds an item lock on the source and stalls
//! its clients, so nothing downstream may slow it down (memory grows with the
//! wanted keys only). The fetcher and the injector are paced by each other
//! through a small bounded channel and by the throttle.
//!
//! Every key is on two old replicas. Each source first copies the vbuckets
//! it is primary for; once all sources have (the [`PrimaryBarrier`]), it
//! goes through the rest, whose keys are mostly recorded in [`Landed`] by
//! then and need only a metadata check, not a second copy.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::batch::{ItemBatch, KeyBatch};
use super::landed::{Arrival, Landed, PrimaryBarrier};
use super::rules::{inject_ttl, ConflictPolicy};
use super::{Counts, Options};
use crate::memcached::conn::AnswerGuess;
use crate::memcached::dump::{decode_dump_key, refusal_hint, DumpLine, DumpMode};
use crate::memcached::proto::{self, lossy, ProtoError, SetMode, Status};
use crate::memcached::{Connection, McError};
use crate::stats::Progress;
use crate::throttle::Throttle;
use crate::view::{lanes, vbucket_of};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Keys under this prefix are Astaire's own (the restart tag): never copied.
pub const OWN_PREFIX: &[u8] = b"astaire\\\\";

/// Which side of the copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("source {0}")]
    Source(McError),
    #[error("local {0}")]
    Local(McError),
}

/// What one source delivered.
#[derive(Debug, Default, Clone)]
pub struct SourceOutcome {
    pub counts: Counts,
    /// Keys the dump listed in the wanted vbuckets.
    pub listed: u64,
}

/// The vbuckets wanted from a source, as a membership table.
pub type VbSet = [bool; crate::view::VBUCKETS];

/// What a dump listed.
#[derive(Debug, Default)]
pub struct Listing {
    /// Keys of the wanted vbuckets sent on.
    pub listed: u64,
    /// Keys that cannot be expressed in a meta request, per vbucket.
    pub unmovable: BTreeMap<u8, u64>,
}

/// Where a dump sends the keys of vbuckets this source is not the primary
/// of, when the copy wants them after the primary ones (see
/// [`super::landed`]).
pub struct Later {
    /// The vbuckets this source is listed first for.
    pub primary: VbSet,
    pub tx: mpsc::UnboundedSender<KeyBatch>,
}

/// A batch being filled and the channel it goes to.
struct Outlet {
    batch: KeyBatch,
    bytes: u64,
    tx: mpsc::UnboundedSender<KeyBatch>,
}

impl Outlet {
    fn new(tx: mpsc::UnboundedSender<KeyBatch>, opts: &Options) -> Outlet {
        Outlet { batch: KeyBatch::with_capacity(opts.batch_keys), bytes: 0, tx }
    }

    /// Sends the batch once full (or when `flush`); false once the
    /// receiver is gone.
    fn send_if(&mut self, flush: bool, opts: &Options, progress: Option<&Progress>) -> bool {
        let full = self.batch.len() >= opts.batch_keys || self.bytes >= opts.batch_bytes;
        if self.batch.is_empty() || !(full || flush) {
            return true;
        }
        if let Some(p) = progress {
            p.keys_found.fetch_add(self.batch.len() as u64, Ordering::Relaxed);
        }
        self.bytes = 0;
        let batch = std::mem::replace(&mut self.batch, KeyBatch::with_capacity(opts.batch_keys));
        self.tx.send(batch).is_ok()
    }
}

/// Enumerates `source` and sends the keys of `wanted` vbuckets in batches
/// to `tx`, or to `later.tx` for the vbuckets `later` says this source is
/// not the primary of. Fails unless the dump reached its end marker.
pub async fn dump_keys(
    source: &str,
    mode: DumpMode,
    wanted: &VbSet,
    opts: &Options,
    tx: mpsc::UnboundedSender<KeyBatch>,
    later: Option<Later>,
    progress: Option<&Progress>,
) -> Result<Listing, McError> {
    let (mut conn, mode) = start_dump(source, mode, opts).await?;
    // A dump has no length: read it in bulk until its end line.
    conn.reader.expect(usize::MAX);
    let mut sorter = Sorter {
        source,
        wanted,
        opts,
        progress,
        now: Outlet::new(tx, opts),
        primary: [true; crate::view::VBUCKETS],
        later: None,
        listing: Listing::default(),
        pending: Pending::default(),
    };
    if let Some(l) = later {
        sorter.primary = l.primary;
        sorter.later = Some(Outlet::new(l.tx, opts));
    }
    loop {
        let Some(line) = conn.reader.buffered_dump_line(mode)? else {
            conn.reader.fill_or_closed().await?;
            continue;
        };
        match line {
            DumpLine::Key { key, encoding, size, .. } => {
                decode_dump_key(conn.reader.frame().get(key).unwrap_or_default(), encoding, &mut sorter.pending.raw)
                    .map_err(|source_err| McError::Protocol { server: source.to_owned(), source: source_err })?;
                sorter.pending.ends.push(sorter.pending.raw.len());
                sorter.pending.sizes.push(size.unwrap_or(0));
                if sorter.pending.ends.len() == PENDING && !sorter.sort() {
                    return Ok(sorter.listing); // the copy gave up; it reports why
                }
            }
            DumpLine::End => break,
            DumpLine::Busy | DumpLine::Started => {
                return Err(McError::Unexpected {
                    server: source.to_owned(),
                    message: format!("{:?} in the middle of a dump", lossy(conn.reader.frame())),
                })
            }
        }
    }
    debug!(source, listed = sorter.listing.listed, "dump complete");
    if sorter.sort() {
        sorter.now.send_if(true, opts, progress);
        if let Some(l) = sorter.later.as_mut() {
            l.send_if(true, opts, progress);
        }
    }
    for (vb, n) in sorter.listing.unmovable.iter().filter(|(_, n)| **n > 1) {
        warn!(source, vbucket = vb, keys = n, "{n} keys of this vbucket cannot be copied (the first is named above)");
    }
    Ok(sorter.listing)
}

/// Dumped keys hashed together ([`lanes`]).
const PENDING: usize = 64;

/// Decoded keys waiting to be hashed, back to back.
#[derive(Default)]
struct Pending {
    raw: Vec<u8>,
    ends: Vec<usize>,
    sizes: Vec<u32>,
    digests: Vec<[u8; 16]>,
}

/// Sends each dumped key where it goes, or nowhere.
struct Sorter<'a> {
    source: &'a str,
    wanted: &'a VbSet,
    opts: &'a Options,
    progress: Option<&'a Progress>,
    now: Outlet,
    /// Keys of vbuckets not in `primary` go to `later`, if there is one.
    primary: VbSet,
    later: Option<Outlet>,
    listing: Listing,
    pending: Pending,
}

impl Sorter<'_> {
    /// Hashes the pending keys and sorts them; false once nobody listens.
    fn sort(&mut self) -> bool {
        let p = &mut self.pending;
        let mut keys: Vec<&[u8]> = Vec::with_capacity(p.ends.len());
        let mut start = 0;
        for end in &p.ends {
            keys.push(p.raw.get(start..*end).unwrap_or_default());
            start = *end;
        }
        lanes::digests(&keys, &mut p.digests);
        let mut listening = true;
        for ((raw, digest), size) in keys.iter().zip(&p.digests).zip(&p.sizes) {
            let vb = vbucket_of(digest);
            if self.wanted.get(vb as usize) != Some(&true) || raw.starts_with(OWN_PREFIX) {
                continue;
            }
            let outlet = match self.later.as_mut() {
                Some(l) if self.primary.get(vb as usize) != Some(&true) => l,
                _ => &mut self.now,
            };
            if let Err(e) = outlet.batch.push(raw, *digest) {
                // One warning per vbucket (the rest are counted, and
                // summed up when the dump ends), the key made printable.
                let count = self.listing.unmovable.entry(vb).or_default();
                *count += 1;
                if *count == 1 {
                    warn!(source = self.source, vbucket = vb, key = %proto::printable(raw), "cannot copy key: {e}");
                } else {
                    debug!(source = self.source, vbucket = vb, key = %proto::printable(raw), "cannot copy key: {e}");
                }
                continue;
            }
            self.listing.listed += 1;
            outlet.bytes += u64::from(*size);
            listening &= outlet.send_if(false, self.opts, self.progress);
        }
        p.raw.clear();
        p.ends.clear();
        p.sizes.clear();
        listening
    }
}

/// Opens a connection and starts a dump on it, waiting out `BUSY` (another
/// crawl running on that server) with backoff. Returns the command that
/// started: a server whose version promised `mgdump` but that does not
/// know it (a fork, or a proxy reporting its own version) gets `metadump`,
/// unless the operator chose the command.
async fn start_dump(source: &str, mut mode: DumpMode, opts: &Options) -> Result<(Connection, DumpMode), McError> {
    let deadline = tokio::time::Instant::now() + opts.busy_wait;
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut conn = Connection::connect(source, opts.io_timeout).await?;
        conn.send(mode.command()).await?;
        // Peek at the first line without consuming a key line. `BUSY`
        // (another crawl) and `ERROR locked try again later` (memcached
        // growing its hash table, as after a large load) both mean: later.
        match conn.reader.dump_line(mode).await {
            Ok(DumpLine::Busy) => {}
            // 1.6.43+ acknowledge the start, and may still say next that
            // the crawler is locked; older servers begin with a key.
            Ok(DumpLine::Started) => {
                if conn.reader.dump_line(mode).await? != DumpLine::Busy {
                    conn.reader.unread_frame();
                    return Ok((conn, mode));
                }
            }
            Ok(DumpLine::Key { .. } | DumpLine::End) => {
                conn.reader.unread_frame();
                return Ok((conn, mode));
            }
            Err(McError::Protocol { source: ProtoError::Refused(answer), .. })
                if mode == DumpMode::Mgdump && opts.dump.is_none() && answer.trim() == "ERROR" =>
            {
                debug!(source, "mgdump unknown to this server: using metadump");
                mode = DumpMode::Metadump;
                continue;
            }
            Err(McError::Protocol { server, source: ProtoError::Refused(answer) }) => {
                return Err(match refusal_hint(&answer, mode) {
                    Some(hint) => {
                        McError::Unexpected { server, message: format!("refused the key dump ({answer:?}): {hint}") }
                    }
                    None => McError::Protocol { server, source: ProtoError::Refused(answer) },
                })
            }
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() + backoff > deadline {
            return Err(McError::Unexpected {
                server: source.to_owned(),
                message: format!("crawler still busy after {} s", opts.busy_wait.as_secs()),
            });
        }
        debug!(source, "crawler busy, retrying in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Fetches every key of each batch from the source (`mg … f t v u`, one
/// response per request, matched by position) and passes the items on, in
/// batches that hold at most about `budget` value bytes ([`fetch_values`]).
pub async fn fetch_items(
    conn: &mut Connection,
    mut keys: mpsc::UnboundedReceiver<KeyBatch>,
    items: mpsc::Sender<ItemBatch>,
    budget: u64,
    cancel: Option<&AtomicBool>,
) -> Result<(), McError> {
    let (mut req, mut sizing) = (Vec::new(), FetchSizing::default());
    while let Some(batch) = keys.recv().await {
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut out = ItemBatch::new(batch);
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Ok(());
            }
            todo = fetch_values(conn, &mut out, &todo, &mut req, budget, &mut sizing).await?;
            let next = (!todo.is_empty()).then(|| out.continuation());
            if items.send(out).await.is_err() {
                return Ok(()); // the injector stopped; it reports why
            }
            match next {
                Some(n) => out = n,
                None => break,
            }
        }
    }
    Ok(())
}

/// How many values one fetch asks for. memcached says nothing of a value's
/// size before sending it (`mgdump` lists no sizes, and `metadump`'s are
/// only claims), so a fetch asks for as many as `budget` holds at the
/// largest value the previous fetch brought, and for [`FIRST_FETCH`] when
/// nothing was fetched yet.
#[derive(Debug, Default)]
pub struct FetchSizing {
    largest: Option<u64>,
    /// What reads wait for per answer due.
    answer: AnswerGuess,
}

/// Keys asked for by a connection's first fetch.
const FIRST_FETCH: u64 = 64;

impl FetchSizing {
    pub fn keys(&self, budget: u64, remaining: usize) -> usize {
        let per = self.largest.unwrap_or(budget / FIRST_FETCH).max(1);
        usize::try_from(budget / per).unwrap_or(usize::MAX).clamp(1, remaining.max(1))
    }
}

/// Reads values of keys `which` of `out.keys` into `out`, holding at most
/// `budget` bytes plus one value: answers past that are read and dropped,
/// and returned with the keys not asked for, to be fetched into the next
/// batch. Memory is bounded by what is held, whatever the sizes are.
async fn fetch_values(
    conn: &mut Connection,
    out: &mut ItemBatch,
    which: &[usize],
    req: &mut Vec<u8>,
    budget: u64,
    sizing: &mut FetchSizing,
) -> Result<Vec<usize>, McError> {
    let (asked, rest) = which.split_at(sizing.keys(budget, which.len()).min(which.len()));
    req.clear();
    for (n, i) in asked.iter().enumerate() {
        proto::mg(req, out.keys.get(*i).wire, "f t v u", n);
    }
    proto::mn(req);
    let server = conn.server().to_owned();
    let (mut dropped, mut largest) = (Vec::new(), None::<u64>);
    conn.pipeline_sized(req, asked.len(), &mut sizing.answer, |n, m, frame| {
        match m.status {
            Status::Value => {
                let value = m.value.clone().and_then(|r| frame.get(r)).unwrap_or_default();
                largest = largest.max(Some(value.len() as u64));
                let i = nth(asked, n, &server)?;
                if out.held() >= budget {
                    dropped.push(i);
                } else {
                    out.push(i, m.flags.unwrap_or(0), m.ttl.unwrap_or(-1), value);
                }
            }
            Status::Miss => out.vanished += 1,
            other => return Err(unexpected(&server, format!("{other:?} in answer to mg"))),
        }
        Ok(())
    })
    .await?;
    if largest.is_some() {
        sizing.largest = largest;
    }
    if !dropped.is_empty() {
        debug!(source = %server, dropped = dropped.len(), "values past the batch's byte budget: fetched again next batch");
    }
    dropped.extend_from_slice(rest);
    Ok(dropped)
}

/// What the copy's fetcher hands its injector.
#[derive(Debug)]
pub enum Step {
    Items(ItemBatch),
    /// Every key of the vbuckets this source is primary for came before.
    PrimaryDone,
}

/// The copy's fetcher: the keys of vbuckets this source is the primary of
/// first; then, once every source has landed those ([`PrimaryBarrier`]),
/// the others, which are mostly recorded in `landed` by then. A key that has
/// landed already is only checked (`mg <key> f`, no value, and under
/// add-only not even that); its value is read only when it is newer here.
pub async fn fetch_for_copy(
    conn: &mut Connection,
    mut primary: mpsc::UnboundedReceiver<KeyBatch>,
    mut later: mpsc::UnboundedReceiver<KeyBatch>,
    ctx: &CopyContext,
    items: mpsc::Sender<Step>,
) -> Result<(), McError> {
    let (landed, policy, cancel) = (&ctx.landed, ctx.opts.conflict, ctx.opts.cancel.as_deref());
    let (mut req, mut sizing) = (Vec::new(), FetchSizing::default());
    let mut recorded = Vec::new();
    let mut primary_open = true;
    loop {
        let batch = if primary_open {
            match primary.recv().await {
                Some(b) => b,
                None => {
                    primary_open = false;
                    if items.send(Step::PrimaryDone).await.is_err() {
                        break;
                    }
                    ctx.barrier.wait().await;
                    debug!(source = conn.server(), "past the primary barrier");
                    continue;
                }
            }
        } else {
            match later.recv().await {
                Some(b) => b,
                None => break,
            }
        };
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            break;
        }
        // Each vbucket has one primary: before the barrier nothing of these
        // vbuckets can have landed from another source.
        if primary_open {
            recorded.clear();
            recorded.resize(batch.len(), None);
        } else {
            landed.lookup(batch.iter().map(|k| k.digest), &mut recorded);
        }
        let mut out = ItemBatch::new(batch);
        out.primary = primary_open;
        let mut copy: Vec<usize> = recorded.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i).collect();
        let seen: Vec<(usize, u32)> =
            recorded.iter().enumerate().filter_map(|(i, r)| r.map(|flags| (i, flags))).collect();
        if policy == ConflictPolicy::AddOnly {
            // The local value always stays: nothing to read.
            out.checked.extend(seen.iter().map(|(i, _)| *i));
        } else if !seen.is_empty() {
            check_newer(conn, &mut out, &seen, policy, &mut copy, &mut req).await?;
            copy.sort_unstable();
        }
        // Values in batches of at most `batch_bytes` (and one value).
        let mut todo = copy;
        loop {
            if !todo.is_empty() {
                out.removals_before = Some(conn.removals().await?);
                todo = fetch_values(conn, &mut out, &todo, &mut req, ctx.opts.batch_bytes, &mut sizing).await?;
            }
            let next = (!todo.is_empty()).then(|| out.continuation());
            if items.send(Step::Items(out)).await.is_err() {
                return Ok(()); // the injector stopped; it reports why
            }
            match next {
                Some(n) if !cancel.is_some_and(|c| c.load(Ordering::Relaxed)) => out = n,
                _ => break,
            }
        }
    }
    Ok(())
}

/// For keys that landed already (with the recorded flags), reads this
/// source's flags: a newer value is added to `copy`, the rest are checked.
async fn check_newer(
    conn: &mut Connection,
    out: &mut ItemBatch,
    seen: &[(usize, u32)],
    policy: ConflictPolicy,
    copy: &mut Vec<usize>,
    req: &mut Vec<u8>,
) -> Result<(), McError> {
    req.clear();
    for (n, (i, _)) in seen.iter().enumerate() {
        proto::mg(req, out.keys.get(*i).wire, "f u", n);
    }
    proto::mn(req);
    let server = conn.server().to_owned();
    conn.pipeline(req, seen.len(), |n, m, _| {
        let (i, recorded) = nth(seen, n, &server)?;
        match m.status {
            Status::Stored if policy.should_replace(recorded, m.flags.unwrap_or(0)) => copy.push(i),
            Status::Stored => out.checked.push(i),
            Status::Miss => out.vanished += 1,
            other => return Err(unexpected(&server, format!("{other:?} in answer to mg f"))),
        }
        Ok(())
    })
    .await
}

fn unexpected(server: &str, message: String) -> McError {
    McError::Unexpected { server: server.to_owned(), message }
}

/// Indexes of the fates matching `pred`.
fn positions(fates: &[Fate], pred: impl Fn(&Fate) -> bool) -> Vec<usize> {
    fates.iter().enumerate().filter(|(_, f)| pred(f)).map(|(i, _)| i).collect()
}

/// What answer `n` of a pipeline is about; an error past the requests.
pub(crate) fn nth<T: Copy>(requests: &[T], n: usize, server: &str) -> Result<T, McError> {
    requests.get(n).copied().ok_or_else(|| unexpected(server, format!("answer {n} to {} requests", requests.len())))
}

/// Injects fetched items into the local node, resolving conflicts and
/// guarding against deletes that happened on the source meanwhile.
pub struct Injector<'a> {
    pub source: &'a str,
    pub local: &'a mut Connection,
    /// A second connection to the source for the delete re-check.
    pub recheck: &'a mut Connection,
    pub policy: ConflictPolicy,
    pub throttle: Option<&'a Throttle>,
    /// Stop between batches once set.
    pub cancel: Option<&'a AtomicBool>,
    pub progress: Option<&'a Progress>,
    /// Where keys put on the local node are recorded for the other sources.
    pub landed: Option<&'a Landed>,
    /// Arrives when the primary keys are all injected.
    pub arrival: Option<Arrival>,
    pub counts: Counts,
    req: Vec<u8>,
}

/// What happened to each item of a batch on the local node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Skipped,
    /// Added by us, with the CAS memcached gave it.
    Written(u64),
    /// An older local value replaced by ours, with the new CAS.
    Replaced(u64),
    Conflict,
    /// The local value stayed; with its flags when they were read.
    Kept(Option<u32>),
    Failed,
}

impl Fate {
    /// The CAS of what we wrote, if we wrote.
    fn cas(self) -> Option<u64> {
        match self {
            Fate::Written(cas) | Fate::Replaced(cas) => Some(cas),
            _ => None,
        }
    }
}

impl<'a> Injector<'a> {
    pub fn new(
        source: &'a str,
        local: &'a mut Connection,
        recheck: &'a mut Connection,
        policy: ConflictPolicy,
    ) -> Self {
        Injector {
            source,
            local,
            recheck,
            policy,
            throttle: None,
            cancel: None,
            progress: None,
            landed: None,
            arrival: None,
            counts: Counts::default(),
            req: Vec::new(),
        }
    }

    pub async fn run(&mut self, mut rx: mpsc::Receiver<Step>) -> Result<(), CopyError> {
        while let Some(step) = rx.recv().await {
            let batch = match step {
                Step::Items(batch) => batch,
                Step::PrimaryDone => {
                    if let Some(mut a) = self.arrival.take() {
                        debug!(source = self.source, "primary vbuckets injected");
                        a.arrive();
                    }
                    continue;
                }
            };
            // A batch is injected whole, delete guard included, or not at
            // all: this is the safe point to stop at.
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break;
            }
            if let Some(t) = self.throttle {
                t.pace(batch.bytes()).await;
            }
            self.inject(&batch).await?;
        }
        Ok(())
    }

    async fn inject(&mut self, batch: &ItemBatch) -> Result<(), CopyError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut fates = vec![Fate::Skipped; batch.items.len()];
        let mut ttls = vec![0u64; batch.items.len()];

        // 1. Add mode: a value a client wrote first is never overwritten.
        self.req.clear();
        let mut sent = Vec::with_capacity(batch.items.len());
        for ((i, item), slot) in batch.items.iter().enumerate().zip(&mut ttls) {
            match inject_ttl(item.ttl, now) {
                None => self.counts.skipped += 1,
                Some(ttl) => {
                    *slot = ttl;
                    let wire = batch.key(item).wire;
                    proto::ms(&mut self.req, wire, batch.value(item), item.flags, ttl, SetMode::Add, sent.len());
                    sent.push(i);
                }
            }
        }
        proto::mn(&mut self.req);
        self.local_round(&sent, &mut fates, |m| match m.status {
            Status::Stored => Ok(Fate::Written(m.cas.unwrap_or(0))),
            Status::NotStored => Ok(Fate::Conflict),
            Status::ServerError | Status::ClientError => Ok(Fate::Failed),
            other => Err(format!("{other:?} in answer to ms ME")),
        })
        .await?;

        // 2. The key was there already: keep it, or replace an older one.
        let conflicts: Vec<usize> = positions(&fates, |f| *f == Fate::Conflict);
        if !conflicts.is_empty() {
            self.resolve_conflicts(batch, &conflicts, &ttls, &mut fates).await?;
        }

        // 3. A key deleted on the source after we read it must not come back.
        let written: Vec<usize> = positions(&fates, |f| f.cas().is_some());
        let reverted =
            if written.is_empty() { Vec::new() } else { self.guard_deletes(batch, &written, &fates).await? };

        self.record(batch, &fates, &reverted);
        self.account(batch, &fates);
        Ok(())
    }

    /// Tells the other sources what the local node now holds. Only the
    /// primary's copies matter: the others are the last source of their key.
    fn record(&self, batch: &ItemBatch, fates: &[Fate], reverted: &[usize]) {
        let Some(landed) = self.landed.filter(|_| batch.primary) else { return };
        landed.record(batch.items.iter().zip(fates).filter_map(|(item, fate)| {
            let flags = match fate {
                Fate::Written(_) | Fate::Replaced(_) => item.flags,
                Fate::Kept(Some(local)) => *local,
                _ => return None,
            };
            Some((batch.key(item).digest, flags))
        }));
        landed.forget(reverted.iter().filter_map(|i| batch.key_at(*i)).map(|k| k.digest));
    }

    /// Sends `self.req` to the local node; response `n` decides the fate of
    /// item `which[n]`.
    async fn local_round(
        &mut self,
        which: &[usize],
        fates: &mut [Fate],
        decide: impl Fn(&proto::Meta) -> Result<Fate, String>,
    ) -> Result<(), CopyError> {
        let server = self.local.server().to_owned();
        let mut failures = 0u64;
        self.local
            .pipeline(&self.req, which.len(), |n, m, frame| {
                let i = nth(which, n, &server)?;
                let fate = decide(m).map_err(|e| unexpected(&server, e))?;
                if fate == Fate::Failed {
                    failures += 1;
                    if failures <= 3 {
                        let msg = m.message.clone().and_then(|r| frame.get(r)).unwrap_or_default();
                        warn!(local = %server, "item not stored: {}", proto::printable(msg));
                    }
                }
                if let Some(slot) = fates.get_mut(i) {
                    *slot = fate;
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Local)
    }

    #[expect(clippy::indexing_slicing, reason = "`conflicts` are positions in `fates`, one per batch item")]
    async fn resolve_conflicts(
        &mut self,
        batch: &ItemBatch,
        conflicts: &[usize],
        ttls: &[u64],
        fates: &mut [Fate],
    ) -> Result<(), CopyError> {
        if self.policy == ConflictPolicy::AddOnly {
            // The flags do not matter: under add-only nothing replaces.
            conflicts.iter().for_each(|i| fates[*i] = Fate::Kept(Some(0)));
            return Ok(());
        }
        // Read the local flags (the write time) and CAS of each.
        self.req.clear();
        for (n, i) in conflicts.iter().enumerate() {
            proto::mg(&mut self.req, batch.key(&batch.items[*i]).wire, "f c", n);
        }
        proto::mn(&mut self.req);
        let mut local: Vec<Option<(u32, u64)>> = Vec::with_capacity(conflicts.len());
        let server = self.local.server().to_owned();
        self.local
            .pipeline(&self.req, conflicts.len(), |_, m, _| {
                match m.status {
                    Status::Stored => local.push(Some((m.flags.unwrap_or(0), m.cas.unwrap_or(0)))),
                    Status::Miss => local.push(None), // deleted locally since: leave it deleted
                    other => return Err(unexpected(&server, format!("{other:?} in answer to mg f c"))),
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Local)?;
        // Replace the older ones, guarded by the CAS just read: a client
        // write in between wins.
        self.req.clear();
        let mut replacing = Vec::new();
        for (i, found) in conflicts.iter().zip(&local) {
            fates[*i] = Fate::Kept(found.map(|(flags, _)| flags));
            let item = &batch.items[*i];
            if let Some((flags, cas)) = found {
                if self.policy.should_replace(*flags, item.flags) {
                    let key = batch.key(item).wire;
                    proto::ms(
                        &mut self.req,
                        key,
                        batch.value(item),
                        item.flags,
                        ttls[*i],
                        SetMode::Set { cas: Some(*cas) },
                        replacing.len(),
                    );
                    replacing.push(*i);
                }
            }
        }
        if replacing.is_empty() {
            return Ok(());
        }
        proto::mn(&mut self.req);
        self.local_round(&replacing, fates, |m| match m.status {
            Status::Stored => Ok(Fate::Replaced(m.cas.unwrap_or(0))),
            // A client wrote in between: newer than both, flags unknown.
            Status::Exists | Status::NotFound => Ok(Fate::Kept(None)),
            Status::ServerError | Status::ClientError => Ok(Fate::Failed),
            other => Err(format!("{other:?} in answer to ms MS C")),
        })
        .await
    }

    /// Returns the items deleted again.
    #[expect(clippy::indexing_slicing, reason = "`written` are positions in `fates`, one per batch item")]
    async fn guard_deletes(
        &mut self,
        batch: &ItemBatch,
        written: &[usize],
        fates: &[Fate],
    ) -> Result<Vec<usize>, CopyError> {
        // No client removed anything on the source since before the values
        // were read: nothing written can be a deleted key coming back.
        // (Clients delete on the old replicas first, so a delete that could
        // race our write is counted there before we look.)
        let removals = self.recheck.removals().await.map_err(CopyError::Source)?;
        if batch.removals_before == Some(removals) {
            return Ok(Vec::new());
        }
        self.counts.rechecked += written.len() as u64;
        self.req.clear();
        for (n, i) in written.iter().enumerate() {
            proto::mg(&mut self.req, batch.key(&batch.items[*i]).wire, "u", n);
        }
        proto::mn(&mut self.req);
        let mut gone = Vec::new();
        let server = self.recheck.server().to_owned();
        self.recheck
            .pipeline(&self.req, written.len(), |n, m, _| {
                match m.status {
                    Status::Stored => {}
                    Status::Miss => gone.push(nth(written, n, &server)?),
                    other => return Err(unexpected(&server, format!("{other:?} in answer to mg"))),
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Source)?;
        if gone.is_empty() {
            return Ok(gone);
        }
        // Delete exactly what we wrote: a newer client write has another CAS.
        self.req.clear();
        let mut deleting = Vec::new();
        for i in &gone {
            let Some(cas) = fates[*i].cas() else { continue };
            proto::md(&mut self.req, batch.key(&batch.items[*i]).wire, Some(cas), deleting.len());
            deleting.push(*i);
        }
        proto::mn(&mut self.req);
        let mut reverted = Vec::new();
        let local = self.local.server().to_owned();
        self.local
            .pipeline(&self.req, deleting.len(), |n, m, _| {
                match m.status {
                    Status::Stored => reverted.push(nth(&deleting, n, &local)?),
                    Status::Exists | Status::NotFound => {}
                    other => return Err(unexpected(&local, format!("{other:?} in answer to md C"))),
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Local)?;
        self.counts.reverted += reverted.len() as u64;
        Ok(reverted)
    }

    fn account(&mut self, batch: &ItemBatch, fates: &[Fate]) {
        let c = &mut self.counts;
        c.vanished += batch.vanished;
        c.fetched += batch.items.len() as u64;
        let mut per_vb = [(0u64, 0u64); crate::view::VBUCKETS];
        for (item, fate) in batch.items.iter().zip(fates) {
            let key = batch.key(item);
            match fate {
                Fate::Written(_) => c.landed += 1,
                Fate::Replaced(_) => c.replaced += 1,
                Fate::Kept(_) => c.kept += 1,
                Fate::Failed => {
                    c.failed += 1;
                    *c.failed_vbuckets.entry(key.vbucket).or_default() += 1;
                }
                Fate::Skipped | Fate::Conflict => {}
            }
            let bytes = (key.raw_len + batch.value(item).len()) as u64;
            c.bytes += bytes;
            if let Some(slot) = per_vb.get_mut(key.vbucket as usize) {
                slot.0 += 1;
                slot.1 += bytes;
            }
        }
        c.checked += batch.checked.len() as u64;
        for i in &batch.checked {
            let key = batch.keys.get(*i);
            if let Some(slot) = per_vb.get_mut(key.vbucket as usize) {
                slot.0 += 1;
                slot.1 += key.raw_len as u64;
            }
        }
        if let Some(p) = self.progress {
            p.total.add(per_vb.iter().map(|s| s.0).sum(), per_vb.iter().map(|s| s.1).sum());
            if let Some(conn) = p.connection(self.source) {
                for (vb, (entries, bytes)) in per_vb.iter().enumerate() {
                    if *entries > 0 {
                        if let Some(b) = conn.bucket(vb as u8) {
                            b.counter.add(*entries, *bytes);
                        }
                    }
                }
            }
        }
    }
}

/// What the copies of a resync share.
pub struct CopyContext {
    pub local_name: String,
    pub opts: Options,
    pub throttle: Throttle,
    pub progress: Option<Arc<Progress>>,
    pub landed: Landed,
    /// One arrival per source.
    pub barrier: Arc<PrimaryBarrier>,
}

/// Copies every `wanted` vbucket of `source` into the local node, those it
/// is the `primary` of first. The counts are returned even when the copy
/// failed part way: what landed stays landed.
pub async fn copy_source(
    source: String,
    wanted: VbSet,
    primary: VbSet,
    ctx: Arc<CopyContext>,
) -> (SourceOutcome, Result<(), CopyError>) {
    let mut outcome = SourceOutcome::default();
    let result = copy(&source, wanted, primary, ctx, &mut outcome).await;
    (outcome, result)
}

async fn copy(
    source: &str,
    wanted: VbSet,
    primary: VbSet,
    ctx: Arc<CopyContext>,
    outcome: &mut SourceOutcome,
) -> Result<(), CopyError> {
    let (opts, local_name) = (&ctx.opts, ctx.local_name.as_str());
    // Arrives however this copy ends, so the others never wait for it forever.
    let arrival = Arrival::new(ctx.barrier.clone());
    let mut fetch_conn = Connection::connect(source, opts.io_timeout).await.map_err(CopyError::Source)?;
    // The fetcher only reads the source: a stop may cut its batch short.
    fetch_conn.stop_on(opts.cancel.clone());
    let mode = match opts.dump {
        Some(forced) => forced,
        None => DumpMode::for_version(&fetch_conn.version().await.map_err(CopyError::Source)?),
    };
    let mut recheck = Connection::connect(source, opts.io_timeout).await.map_err(CopyError::Source)?;
    let mut local = Connection::connect(local_name, opts.io_timeout).await.map_err(CopyError::Local)?;

    let (key_tx, key_rx) = mpsc::unbounded_channel();
    let (later_tx, later_rx) = mpsc::unbounded_channel();
    let (item_tx, item_rx) = mpsc::channel(2);
    let dump = {
        let (source, ctx) = (source.to_owned(), ctx.clone());
        tokio::spawn(async move {
            let later = Some(Later { primary, tx: later_tx });
            dump_keys(&source, mode, &wanted, &ctx.opts, key_tx, later, ctx.progress.as_deref()).await
        })
    };
    let inject = {
        let (source, ctx) = (source.to_owned(), ctx.clone());
        tokio::spawn(async move {
            let mut injector = Injector::new(&source, &mut local, &mut recheck, ctx.opts.conflict);
            injector.throttle = (!ctx.throttle.is_unlimited()).then_some(&ctx.throttle);
            injector.cancel = ctx.opts.cancel.as_deref();
            injector.progress = ctx.progress.as_deref();
            injector.landed = Some(&ctx.landed);
            injector.arrival = Some(arrival);
            let result = injector.run(item_rx).await;
            (result, injector.counts)
        })
    };
    let fetched = fetch_for_copy(&mut fetch_conn, key_rx, later_rx, &ctx, item_tx).await;
    let injected = match inject.await {
        Ok((result, counts)) => {
            outcome.counts = counts;
            result
        }
        Err(e) => Err(CopyError::Local(unexpected(local_name, format!("injector task failed: {e}")))),
    };
    // The dump only ends early if the copy failed; stop it then.
    dump.abort_handle().abort();
    let dumped = dump.await;
    injected?;
    fetched.map_err(CopyError::Source)?;
    let listing = match dumped {
        Ok(listing) => listing.map_err(CopyError::Source)?,
        Err(e) => return Err(CopyError::Source(unexpected(source, format!("dump task failed: {e}")))),
    };
    outcome.listed = listing.listed;
    for (vb, n) in listing.unmovable {
        outcome.counts.failed += n;
        *outcome.counts.failed_vbuckets.entry(vb).or_default() += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[test]
    fn a_fetch_asks_for_what_the_budget_holds_at_the_largest_value_seen() {
        let mut s = FetchSizing::default();
        assert_eq!(s.keys(1 << 20, 1024), 64, "nothing seen yet");
        assert_eq!(s.keys(1 << 20, 10), 10, "never more than there are");
        s.largest = Some(100);
        assert_eq!(s.keys(1 << 20, 1024), 1024);
        s.largest = Some(300_000);
        assert_eq!(s.keys(1 << 20, 1024), 3);
        s.largest = Some(200 << 20);
        assert_eq!(s.keys(1 << 20, 1024), 1, "one value over the budget is still fetched");
        s.largest = Some(0);
        assert_eq!(s.keys(1 << 20, 1024), 1024);
        assert_eq!(s.keys(1 << 20, 0), 1);
    }

    /// A source whose every value is `size` bytes.
    async fn source_of(size: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            let value = vec![b'v'; size];
            while let Ok(Some(line)) = lines.next_line().await {
                let opaque = line.split(' ').find(|t| t.starts_with('O')).unwrap_or("").to_owned();
                if line.starts_with("mn") {
                    w.write_all(b"MN\r\n").await.unwrap();
                } else {
                    w.write_all(format!("VA {size} f0 t-1 {opaque}\r\n").as_bytes()).await.unwrap();
                    w.write_all(&value).await.unwrap();
                    w.write_all(b"\r\n").await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn batches_hold_the_byte_budget_whatever_the_values_weigh() {
        const SIZE: usize = 300_000;
        const BUDGET: u64 = 1 << 20;
        let mut conn = Connection::connect(&source_of(SIZE).await, Duration::from_secs(10)).await.unwrap();
        let mut keys = KeyBatch::default();
        for i in 0..20 {
            let raw = format!("key{i}");
            keys.push(raw.as_bytes(), crate::view::key_digest(raw.as_bytes())).unwrap();
        }
        let (key_tx, key_rx) = mpsc::unbounded_channel();
        let (item_tx, mut item_rx) = mpsc::channel(1);
        key_tx.send(keys).unwrap();
        drop(key_tx);
        let fetch = tokio::spawn(async move { fetch_items(&mut conn, key_rx, item_tx, BUDGET, None).await });
        let mut seen = Vec::new();
        while let Some(batch) = item_rx.recv().await {
            assert!(batch.held() <= BUDGET + SIZE as u64, "a batch held {} bytes", batch.held());
            seen.extend(batch.items.iter().map(|i| i.key));
            assert!(batch.items.iter().all(|i| batch.value(i).len() == SIZE));
        }
        fetch.await.unwrap().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>(), "every key fetched once");
    }
}

#[cfg(test)]
mod injector_tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A local node that refuses the `ms` of key `bad` with CLIENT_ERROR
    /// (as memcached does for a token out of its range: no opaque, value
    /// swallowed) and stores the rest; it also answers `stats` with zero
    /// removals, so the delete guard has nothing to re-check.
    async fn local_refusing_bad() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let tokens: Vec<&str> = line.split(' ').collect();
                        let opaque = tokens.iter().find(|t| t.starts_with('O')).copied().unwrap_or("");
                        let answer = match tokens[0] {
                            "stats" => {
                                "STAT delete_hits 0\r\nSTAT touch_hits 0\r\nSTAT cmd_flush 0\r\nEND\r\n".to_owned()
                            }
                            "mn" => "MN\r\n".to_owned(),
                            "ms" => {
                                let _value = lines.next_line().await;
                                if tokens[1] == "bad" {
                                    "CLIENT_ERROR bad token in command line format\r\n".to_owned()
                                } else {
                                    format!("HD c7 {opaque}\r\n")
                                }
                            }
                            _ => "ERROR\r\n".to_owned(),
                        };
                        w.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_client_error_for_one_item_fails_that_item_not_the_node() {
        let addr = local_refusing_bad().await;
        let mut local = Connection::connect(&addr, Duration::from_secs(10)).await.unwrap();
        let mut recheck = Connection::connect(&addr, Duration::from_secs(10)).await.unwrap();
        let mut keys = KeyBatch::default();
        for k in ["good1", "bad", "good2"] {
            keys.push(k.as_bytes(), crate::view::key_digest(k.as_bytes())).unwrap();
        }
        let bad_vbucket = keys.get(1).vbucket;
        let mut batch = ItemBatch::new(keys);
        for i in 0..3 {
            batch.push(i, 0, -1, b"value");
        }
        batch.removals_before = Some(0);
        let mut injector = Injector::new("source", &mut local, &mut recheck, ConflictPolicy::default());
        injector.inject(&batch).await.expect("one refused item is not a failed node");
        let c = &injector.counts;
        assert_eq!((c.landed, c.failed), (2, 1));
        assert_eq!(c.failed_vbuckets.get(&bad_vbucket), Some(&1));
    }
}
