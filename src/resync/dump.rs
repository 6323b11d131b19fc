//! A source's dump stage: list every key, keep those of the wanted
//! vbuckets (primary ones now, the others for after the barrier) and send
//! them on in batches. It never waits on anything downstream: a 1.6.18
//! metadump that is not drained stalls the source's clients.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::batch::KeyBatch;
use super::queue::{KeySender, SpillError};
use super::Options;
use crate::backoff::Backoff;
use crate::memcached::dump::{decode_dump_key, refusal_hint, DumpLine, DumpMode};
use crate::memcached::pace::{Pace, MIN_DUMP_PROGRESS};
use crate::memcached::proto::{self, lossy, ProtoError};
use crate::memcached::{Connection, McError};
use crate::placement::Classifier;
use crate::stats::ResyncCounters;
use crate::view::md5_lanes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Keys under this prefix are Astaire's own (the restart tag): never copied.
pub const OWN_PREFIX: &[u8] = b"astaire\\\\";

/// The vbuckets wanted from a source, as a membership table.
pub type VbSet = [bool; crate::view::VBUCKETS];

/// The membership table of `buckets` (out-of-range numbers are no member).
pub fn bucket_set<'a>(buckets: impl IntoIterator<Item = &'a u8>) -> VbSet {
    let mut set = [false; crate::view::VBUCKETS];
    for b in buckets {
        if let Some(member) = set.get_mut(usize::from(*b)) {
            *member = true;
        }
    }
    set
}

/// What a dump listed.
#[derive(Debug, Default)]
pub struct Listing {
    /// Keys of the wanted vbuckets sent on.
    pub listed: u64,
    /// Every key the dump named, wanted or not.
    pub dumped: u64,
    /// Their sizes as the dump gave them (metadump's `size=`; mgdump
    /// gives none, so 0).
    pub bytes: u64,
    /// Keys that cannot be expressed in a meta request, per vbucket.
    pub unmovable: BTreeMap<u8, u64>,
    /// `(keys, bytes)` sent on, indexed by bucket.
    pub by_bucket: Vec<(u64, u64)>,
}

impl Listing {
    /// An empty listing with a count for every bucket.
    fn new() -> Listing {
        Listing { by_bucket: vec![(0, 0); usize::from(u8::MAX) + 1], ..Listing::default() }
    }

    /// The keys and bytes sent on of `buckets`.
    pub fn of(&self, buckets: &[u8]) -> (u64, u64) {
        buckets.iter().filter_map(|b| self.by_bucket.get(usize::from(*b))).fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
    }
}

/// Where a dump sends the keys of vbuckets this source is not the primary
/// of, when the copy wants them after the primary ones (see
/// [`super::barrier`]).
pub struct Later {
    /// The vbuckets this source is listed first for.
    pub primary: VbSet,
    pub tx: KeySender,
}

/// A batch being filled and the channel it goes to.
struct Outlet {
    batch: KeyBatch,
    bytes: u64,
    tx: KeySender,
}

impl Outlet {
    fn new(tx: KeySender, opts: &Options) -> Outlet {
        Outlet { batch: KeyBatch::with_capacity(opts.batch_keys), bytes: 0, tx }
    }

    /// Sends the batch once full (or when `flush`); false once the
    /// receiver is gone.
    fn send_if(&mut self, flush: bool, opts: &Options, progress: Option<&ResyncCounters>) -> Result<bool, SpillError> {
        let full = self.batch.len() >= opts.batch_keys || self.bytes >= opts.batch_bytes;
        if self.batch.is_empty() || !(full || flush) {
            return Ok(true);
        }
        if let Some(p) = progress {
            p.keys_found.fetch_add(self.batch.len() as u64, Ordering::Relaxed);
        }
        self.bytes = 0;
        let mut batch = std::mem::replace(&mut self.batch, KeyBatch::with_capacity(opts.batch_keys));
        // What waits is what the keys hold, not the room reserved for them
        // (48 bytes a key): the queue's memory holds a third more keys of
        // 33 bytes before it spills.
        batch.shrink_to_fit();
        self.tx.send(batch)
    }
}

/// Enumerates `source` and sends the keys of `wanted` vbuckets in batches
/// to `tx`, or to `later.tx` for the vbuckets `later` says this source is
/// not the primary of. Fails unless the dump reached its end marker.
#[allow(clippy::too_many_arguments)]
pub async fn dump_keys(
    source: &str,
    mode: DumpMode,
    classifier: &Classifier,
    wanted: &VbSet,
    opts: &Options,
    tx: KeySender,
    later: Option<Later>,
    progress: Option<&ResyncCounters>,
) -> Result<Listing, McError> {
    let Dump { mut conn, mode, holds } = start_dump(source, mode, opts).await?;
    let most = most_keys(holds);
    // A dump has no length: read it in bulk until its end line, as long
    // as it keeps coming.
    conn.reader.expect(usize::MAX);
    let mut pace = Pace::new(opts.io_timeout, MIN_DUMP_PROGRESS, Instant::now(), conn.reader.bytes_read());
    let mut sorter = Sorter {
        source,
        classifier,
        scratch: Vec::new(),
        wanted,
        opts,
        progress,
        now: Outlet::new(tx, opts),
        primary: [true; crate::view::VBUCKETS],
        later: None,
        listing: Listing::new(),
        pending: Pending::default(),
    };
    if let Some(l) = later {
        sorter.primary = l.primary;
        sorter.later = Some(Outlet::new(l.tx, opts));
    }
    let unexpected = |message: String| McError::Unexpected { server: source.to_owned(), message };
    loop {
        let Some(line) = conn.reader.buffered_dump_line(mode)? else {
            conn.reader.fill_or_closed().await?;
            pace.check(Instant::now(), conn.reader.bytes_read())
                .map_err(|slow| unexpected(format!("key dump {slow}")))?;
            continue;
        };
        match line {
            DumpLine::Key { key, encoding, size, .. } => {
                sorter.listing.dumped += 1;
                if sorter.listing.dumped > most {
                    return Err(unexpected(endless(most, holds)));
                }
                decode_dump_key(conn.reader.frame().get(key).unwrap_or_default(), encoding, &mut sorter.pending.raw)
                    .map_err(|source_err| McError::Protocol { server: source.to_owned(), source: source_err })?;
                sorter.pending.ends.push(sorter.pending.raw.len());
                sorter.pending.sizes.push(size.unwrap_or(0));
                if sorter.pending.ends.len() == PENDING && !sorter.sort()? {
                    return Ok(sorter.listing); // the copy gave up; it reports why
                }
            }
            DumpLine::End => break,
            DumpLine::Busy | DumpLine::Started => {
                return Err(unexpected(format!("{:?} in the middle of a dump", lossy(conn.reader.frame()))));
            }
        }
    }
    debug!(source, listed = sorter.listing.listed, "dump complete");
    if sorter.sort()? {
        let spilled = |e: SpillError| McError::Unexpected { server: source.to_owned(), message: e.to_string() };
        sorter.now.send_if(true, opts, progress).map_err(spilled)?;
        if let Some(l) = sorter.later.as_mut() {
            l.send_if(true, opts, progress).map_err(spilled)?;
        }
    }
    for (vb, n) in sorter.listing.unmovable.iter().filter(|(_, n)| **n > 1) {
        warn!(source, vbucket = vb, keys = n, "{n} keys of this vbucket cannot be copied (the first is named above)");
    }
    Ok(sorter.listing)
}

/// Dumped keys hashed together ([`md5_lanes`]).
const PENDING: usize = 64;

/// Keys a dump may name beyond what its source said it holds when the
/// dump started (`curr_items`), for clients writing while it runs.
pub const DUMP_SLACK: u64 = 100_000;

/// The most keys a dump of a source holding `holds` items may name: twice
/// that, and [`DUMP_SLACK`] more (a crawl of a busy server can meet keys
/// written after it began, never more than the server then holds). A
/// source that does not say what it holds is held to nothing but the
/// spill limit. Pure.
pub fn most_keys(holds: Option<u64>) -> u64 {
    holds.map_or(u64::MAX, |n| n.saturating_mul(2).saturating_add(DUMP_SLACK))
}

fn endless(most: u64, holds: Option<u64>) -> String {
    format!(
        "its key dump named more than {most} keys, but it holds {} items (stats curr_items): a dump that does not end \
         is given up",
        holds.unwrap_or(0)
    )
}

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
    classifier: &'a Classifier,
    scratch: Vec<u8>,
    wanted: &'a VbSet,
    opts: &'a Options,
    progress: Option<&'a ResyncCounters>,
    now: Outlet,
    /// Keys of vbuckets not in `primary` go to `later`, if there is one.
    primary: VbSet,
    later: Option<Outlet>,
    listing: Listing,
    pending: Pending,
}

impl Sorter<'_> {
    /// Hashes the pending keys and sorts them; false once nobody listens,
    /// an error when the keys cannot be queued.
    fn sort(&mut self) -> Result<bool, McError> {
        let p = &mut self.pending;
        let mut keys: Vec<&[u8]> = Vec::with_capacity(p.ends.len());
        let mut start = 0;
        for end in &p.ends {
            keys.push(p.raw.get(start..*end).unwrap_or_default());
            start = *end;
        }
        md5_lanes::digests(&keys, &mut p.digests);
        let mut listening = true;
        for ((raw, digest), size) in keys.iter().zip(&p.digests).zip(&p.sizes) {
            let vb = self.classifier.bucket(raw, digest, &mut self.scratch);
            if self.wanted.get(vb as usize) != Some(&true) || raw.starts_with(OWN_PREFIX) {
                continue;
            }
            let outlet = match self.later.as_mut() {
                Some(l) if self.primary.get(vb as usize) != Some(&true) => l,
                _ => &mut self.now,
            };
            if let Err(e) = outlet.batch.push(raw, vb) {
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
            self.listing.bytes += u64::from(*size);
            if let Some(b) = self.listing.by_bucket.get_mut(usize::from(vb)) {
                *b = (b.0 + 1, b.1 + u64::from(*size));
            }
            outlet.bytes += u64::from(*size);
            listening &= outlet
                .send_if(false, self.opts, self.progress)
                .map_err(|e| McError::Unexpected { server: self.source.to_owned(), message: e.to_string() })?;
        }
        p.raw.clear();
        p.ends.clear();
        p.sizes.clear();
        Ok(listening)
    }
}

/// A dump under way.
struct Dump {
    conn: Connection,
    /// The command that started it.
    mode: DumpMode,
    /// What the source said it held just before (`curr_items`).
    holds: Option<u64>,
}

/// Opens a connection and starts a dump on it, waiting out `BUSY` (another
/// crawl running on that server) with backoff. Returns the command that
/// started: a server whose version promised `mgdump` but that does not
/// know it (a fork, or a proxy reporting its own version) gets `metadump`,
/// unless the operator chose the command.
async fn start_dump(source: &str, mut mode: DumpMode, opts: &Options) -> Result<Dump, McError> {
    let deadline = tokio::time::Instant::now() + opts.busy_wait;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        let mut conn = Connection::connect(source, opts.io_timeout).await?;
        let holds = conn.stats(&[b"curr_items"]).await?.first().copied().flatten();
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
                    return Ok(Dump { conn, mode, holds });
                }
            }
            Ok(DumpLine::Key { .. } | DumpLine::End) => {
                conn.reader.unread_frame();
                return Ok(Dump { conn, mode, holds });
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
        if tokio::time::Instant::now() + backoff.peek() > deadline {
            return Err(McError::Unexpected {
                server: source.to_owned(),
                message: format!("crawler still busy after {} s", opts.busy_wait.as_secs()),
            });
        }
        let pause = backoff.next_pause();
        debug!(source, "crawler busy, retrying in {pause:?}");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resync::queue::{key_queue, QueueBudget};

    /// A batch waits in the queue at what its keys hold, not at the room
    /// reserved for a full batch: a budget of ten short keys' worth takes
    /// them in memory (the room reserved for 4,096 keys would spill them).
    #[tokio::test]
    async fn a_sent_batch_counts_what_its_keys_hold() {
        let opts = Options::default();
        let dir = std::env::temp_dir();
        let probe = {
            let mut b = KeyBatch::default();
            for i in 0..10 {
                b.push(format!("key{i}").as_bytes(), 1).unwrap();
            }
            b.shrink_to_fit();
            b.heap_bytes()
        };
        let budget = QueueBudget::new(probe, dir);
        let (tx, mut rx) = key_queue(&budget);
        let mut outlet = Outlet::new(tx, &opts);
        for i in 0..10 {
            outlet.batch.push(format!("key{i}").as_bytes(), 1).unwrap();
        }
        assert!(outlet.send_if(true, &opts, None).unwrap());
        assert_eq!(budget.spilled.load(std::sync::atomic::Ordering::Relaxed), 0, "spilled");
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 10);
    }
}
