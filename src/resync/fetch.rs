//! A source's fetch stage: read the values of listed keys in batches
//! bounded by the bytes they hold, and for keys already landed from their
//! primary only read the flags (`mg <key> f`).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::batch::{ItemBatch, KeyBatch, Step};
use super::context::{CopyContext, CopyError};
use super::queue::KeyReceiver;
use super::rules::ConflictPolicy;
use crate::memcached::proto::{self, Status};
use crate::memcached::reader::AnswerGuess;
use crate::memcached::{Connection, McError};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The next batch of keys, in order (from memory or the spill file).
async fn next_keys(conn: &Connection, keys: &mut KeyReceiver) -> Result<Option<KeyBatch>, McError> {
    keys.recv().await.map_err(|e| McError::Unexpected { server: conn.server().to_owned(), message: e.to_string() })
}

/// Fetches every key of each batch from the source (`mg … f t v u`, one
/// response per request, matched by position) and passes the items on, in
/// batches that hold at most about `budget` value bytes ([`fetch_values`]).
pub async fn fetch_items(
    conn: &mut Connection,
    mut keys: KeyReceiver,
    items: mpsc::Sender<ItemBatch>,
    budget: u64,
) -> Result<(), McError> {
    let (mut req, mut sizing) = (Vec::new(), FetchSizing::default());
    while let Some(batch) = next_keys(conn, &mut keys).await? {
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut out = ItemBatch::new(batch);
        loop {
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
    /// Values refused as too large so far (the first few are logged).
    oversized: u64,
}

/// Refused values logged per connection; the rest are only counted.
const WARNINGS: u64 = 3;

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
    proto::mg_batch(req, asked.iter().map(|i| out.keys.get(*i).wire), "f t v u");
    let server = conn.server().to_owned();
    let (mut dropped, mut largest) = (Vec::new(), None::<u64>);
    conn.pipeline_items(req, asked, Some(&mut sizing.answer), |i, m, frame| {
        match m.status {
            // Larger than the local memcached stores: read past, never held.
            Status::Value if m.oversized.is_some() => {
                out.refused.push(i);
                sizing.oversized += 1;
                if sizing.oversized <= WARNINGS {
                    let key = out.keys.get(i);
                    warn!(
                        source = %server,
                        vbucket = key.vbucket,
                        key = %proto::printable(&proto::decode_key(key.wire)),
                        bytes = m.oversized.unwrap_or(0),
                        "value larger than the local memcached stores (item_size_max): not copied"
                    );
                }
            }
            Status::Value => {
                let value = m.value.and_then(|s| s.of(frame)).unwrap_or_default();
                largest = largest.max(Some(value.len() as u64));
                if out.held() >= budget {
                    dropped.push(i);
                } else {
                    out.push(i, m.flags.unwrap_or(0), m.ttl, value);
                }
            }
            Status::Miss => out.vanished += 1,
            other => return Err(format!("{other:?} in answer to mg")),
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

/// The copy's fetcher: the keys of vbuckets this source is the primary of
/// first; then, once every source has landed those ([`PrimaryBarrier`]),
/// the others, which the local node mostly holds by then. A key the local
/// node holds already is only checked (`mg <key> f` here, no value, and
/// under add-only not even that); its value is read only when it is newer
/// here. `local` is a connection of the fetcher's own to the local node,
/// for asking what it holds.
pub async fn fetch_for_copy(
    conn: &mut Connection,
    local: &mut Connection,
    mut primary: KeyReceiver,
    mut later: KeyReceiver,
    ctx: &CopyContext,
    items: mpsc::Sender<Step>,
) -> Result<(), CopyError> {
    let (policy, stop) = (ctx.opts.conflict, &ctx.stop);
    let (mut req, mut sizing) = (Vec::new(), FetchSizing::default());
    let mut recorded = Vec::new();
    let mut primary_open = true;
    loop {
        // Waiting for keys (a dump that drips) or for the other sources
        // (the barrier) changes nothing: a stop ends either wait.
        let next = if primary_open { &mut primary } else { &mut later };
        let Some(next) = stop.or(next_keys(conn, next)).await else { break };
        let batch = match next.map_err(CopyError::Source)? {
            Some(b) => b,
            None if primary_open => {
                primary_open = false;
                if items.send(Step::PrimaryDone).await.is_err() || stop.or(ctx.barrier.wait()).await.is_none() {
                    break;
                }
                debug!(source = conn.server(), "past the primary barrier");
                continue;
            }
            None => break,
        };
        if stop.is_set() {
            break;
        }
        // Each vbucket has one primary: before the barrier nothing of these
        // vbuckets can have landed from another source. After it, the local
        // node says what it holds: what the primaries put there, and what
        // clients wrote since, which is newer still.
        if primary_open {
            recorded.clear();
            recorded.resize(batch.len(), None);
        } else {
            held_locally(local, &batch, &mut req, &mut recorded).await.map_err(CopyError::Local)?;
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
            check_newer(conn, &mut out, &seen, policy, &mut copy, &mut req).await.map_err(CopyError::Source)?;
            copy.sort_unstable();
        }
        // Values in batches of at most `batch_bytes` (and one value).
        let mut todo = copy;
        loop {
            if !todo.is_empty() {
                out.removals_before = Some(conn.removals().await.map_err(CopyError::Source)?);
                todo = fetch_values(conn, &mut out, &todo, &mut req, ctx.opts.batch_bytes, &mut sizing)
                    .await
                    .map_err(CopyError::Source)?;
            }
            let next = (!todo.is_empty()).then(|| out.continuation());
            if items.send(Step::Items(out)).await.is_err() {
                return Ok(()); // the injector stopped; it reports why
            }
            match next {
                Some(n) if !stop.is_set() => out = n,
                _ => break,
            }
        }
    }
    Ok(())
}

/// The flags of each key of `batch` the local node holds, `None` where it
/// holds nothing (`mg <key> f`: no value is read).
async fn held_locally(
    local: &mut Connection,
    batch: &KeyBatch,
    req: &mut Vec<u8>,
    held: &mut Vec<Option<u32>>,
) -> Result<(), McError> {
    held.clear();
    proto::mg_batch(req, batch.iter().map(|k| k.wire), "f");
    let positions: Vec<usize> = (0..batch.len()).collect();
    local
        .pipeline_items(req, &positions, None, |_, m, _| {
            held.push(match m.status {
                Status::Stored => Some(m.flags.unwrap_or(0)),
                Status::Miss => None,
                other => return Err(format!("{other:?} in answer to mg f")),
            });
            Ok(())
        })
        .await
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
    proto::mg_batch(req, seen.iter().map(|(i, _)| out.keys.get(*i).wire), "f u");
    conn.pipeline_items(req, seen, None, |(i, recorded), m, _| {
        match m.status {
            Status::Stored if policy.should_replace(recorded, m.flags.unwrap_or(0)) => copy.push(i),
            Status::Stored => out.checked.push(i),
            Status::Miss => out.vanished += 1,
            other => return Err(format!("{other:?} in answer to mg f")),
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
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
            keys.push(raw.as_bytes(), crate::view::vbucket(raw.as_bytes())).unwrap();
        }
        let budget = crate::resync::queue::QueueBudget::new(1 << 20, std::env::temp_dir());
        let (key_tx, key_rx) = crate::resync::queue::key_queue(&budget);
        let (item_tx, mut item_rx) = mpsc::channel(1);
        key_tx.send(keys).unwrap();
        drop(key_tx);
        let fetch = tokio::spawn(async move { fetch_items(&mut conn, key_rx, item_tx, BUDGET).await });
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
