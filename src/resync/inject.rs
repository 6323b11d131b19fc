//! A source's inject stage: add each fetched item to the local node
//! without overwriting anything newer, resolve conflicts by the policy,
//! take back what a client deleted meanwhile.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::barrier::Arrival;
use super::batch::{ItemBatch, Step};
use super::context::{unexpected, CopyError};
use super::fate::{after_add, after_replace, gone_from_source, local_value, on_conflict, positions, taken_back, Fate};
use super::rules::{inject_ttl, ConflictPolicy, Expiry};
use super::Counts;
use crate::memcached::proto::{self, SetMode};
use crate::memcached::Connection;
use crate::stats::ResyncCounters;
use crate::stop::Stop;
use crate::throttle::Throttle;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Injects fetched items into the local node, resolving conflicts and
/// guarding against deletes that happened on the source meanwhile.
pub struct Injector<'a> {
    pub source: &'a str,
    pub local: &'a mut Connection,
    /// A second connection to the source for the delete re-check.
    pub recheck: &'a mut Connection,
    pub policy: ConflictPolicy,
    pub throttle: Option<&'a Throttle>,
    /// Stop between batches (and in the throttle's pause) once requested.
    pub stop: Stop,
    pub progress: Option<&'a ResyncCounters>,
    /// Arrives when the primary keys are all injected.
    pub arrival: Option<Arrival>,
    pub counts: Counts,
    req: Vec<u8>,
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
            stop: Stop::default(),
            progress: None,
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
            if self.stop.is_set() {
                break;
            }
            // The throttle's pause may be long at a low limit: a stop ends it.
            if let Some(t) = self.throttle {
                if self.stop.or(t.pace(batch.bytes())).await.is_none() {
                    break;
                }
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
        for (((i, item), slot), fate) in batch.items.iter().enumerate().zip(&mut ttls).zip(&mut fates) {
            match inject_ttl(item.ttl, now) {
                Expiry::Expired => self.counts.skipped += 1,
                // Never stored as immortal: counted as failed, its vbucket
                // reported.
                Expiry::Invalid => *fate = Fate::Failed,
                Expiry::Store(ttl) => {
                    *slot = ttl;
                    let wire = batch.key(item).wire;
                    proto::ms(&mut self.req, wire, batch.value(item), item.flags, ttl, SetMode::Add, sent.len());
                    sent.push(i);
                }
            }
        }
        proto::mn(&mut self.req);
        let invalid = fates.iter().filter(|f| **f == Fate::Failed).count();
        if invalid > 0 {
            warn!(
                source = self.source,
                items = invalid,
                "items with a TTL memcached never gives (only -1 means none): not copied"
            );
        }
        self.local_round(&sent, &mut fates, after_add).await?;

        // 2. The key was there already: keep it, or replace an older one.
        let conflicts: Vec<usize> = positions(&fates, |f| *f == Fate::Conflict);
        if !conflicts.is_empty() {
            self.resolve_conflicts(batch, &conflicts, &ttls, &mut fates).await?;
        }

        // 3. A key deleted on the source after we read it must not come back.
        let written: Vec<usize> = positions(&fates, |f| f.cas().is_some());
        if !written.is_empty() {
            self.guard_deletes(batch, &written, &fates).await?;
        }
        self.account(batch, &fates);
        Ok(())
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
            .pipeline_items(&self.req, which, None, |i, m, frame| {
                let fate = decide(m)?;
                if fate == Fate::Failed {
                    failures += 1;
                    if failures <= 3 {
                        let msg = m.message.and_then(|s| s.of(frame)).unwrap_or_default();
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
                local.push(local_value(m).map_err(|e| unexpected(&server, e))?);
                Ok(())
            })
            .await
            .map_err(CopyError::Local)?;
        // Replace the older ones, guarded by the CAS just read: a client
        // write in between wins.
        self.req.clear();
        let mut replacing = Vec::new();
        for (i, found) in conflicts.iter().zip(&local) {
            let item = &batch.items[*i];
            let (fate, replace_under) = on_conflict(self.policy, *found, item.flags);
            fates[*i] = fate;
            if let Some(cas) = replace_under {
                let key = batch.key(item).wire;
                proto::ms(
                    &mut self.req,
                    key,
                    batch.value(item),
                    item.flags,
                    ttls[*i],
                    SetMode::Set { cas: Some(cas) },
                    replacing.len(),
                );
                replacing.push(*i);
            }
        }
        if replacing.is_empty() {
            return Ok(());
        }
        proto::mn(&mut self.req);
        self.local_round(&replacing, fates, after_replace).await
    }

    /// Takes back what the source lost meanwhile (counted as reverted).
    #[expect(clippy::indexing_slicing, reason = "`written` are positions in `fates`, one per batch item")]
    async fn guard_deletes(&mut self, batch: &ItemBatch, written: &[usize], fates: &[Fate]) -> Result<(), CopyError> {
        // No client removed anything on the source since before the values
        // were read: nothing written can be a deleted key coming back.
        // (Clients delete on the old replicas first, so a delete that could
        // race our write is counted there before we look.)
        let removals = self.recheck.removals().await.map_err(CopyError::Source)?;
        if batch.removals_before == Some(removals) {
            return Ok(());
        }
        self.counts.rechecked += written.len() as u64;
        proto::mg_batch(&mut self.req, written.iter().map(|i| batch.key(&batch.items[*i]).wire), "u");
        let mut gone = Vec::new();
        self.recheck
            .pipeline_items(&self.req, written, None, |i, m, _| {
                if gone_from_source(m)? {
                    gone.push(i);
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Source)?;
        if gone.is_empty() {
            return Ok(());
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
        let mut reverted = 0;
        self.local
            .pipeline_items(&self.req, &deleting, None, |_, m, _| {
                if taken_back(m)? {
                    reverted += 1;
                }
                Ok(())
            })
            .await
            .map_err(CopyError::Local)?;
        self.counts.reverted += reverted;
        Ok(())
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
        for i in &batch.refused {
            c.failed += 1;
            *c.failed_vbuckets.entry(batch.keys.get(*i).vbucket).or_default() += 1;
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

#[cfg(test)]
mod injector_tests {
    use super::*;
    use crate::resync::batch::KeyBatch;
    use std::time::Duration;
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
            keys.push(k.as_bytes(), crate::view::vbucket(k.as_bytes())).unwrap();
        }
        let bad_vbucket = keys.get(1).vbucket;
        let mut batch = ItemBatch::new(keys);
        for i in 0..3 {
            batch.push(i, 0, Some(-1), b"value");
        }
        batch.removals_before = Some(0);
        let mut injector = Injector::new("source", &mut local, &mut recheck, ConflictPolicy::default());
        injector.inject(&batch).await.expect("one refused item is not a failed node");
        let c = &injector.counts;
        assert_eq!((c.landed, c.failed), (2, 1));
        assert_eq!(c.failed_vbuckets.get(&bad_vbucket), Some(&1));
    }
}
