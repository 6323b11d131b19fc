//! Copying from one source: the wiring of its three stages, a dump task
//! ([`super::dump`]), a fetcher ([`super::fetch`]) and an injector
//! ([`super::inject`]), and the helpers they share.
//!
//! ```text
//!  source ──metadump──▶ dump task ──primary keys──▶ fetcher ──items (2 batches)──▶ injector ──▶ local
//!                       (never waits) ──other keys──▶ (after    mg … f t v u        ms … ME, conflicts,
//!                                                    the barrier: delete guard
//!                                                    local mg f first)
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
//! goes through the rest, whose keys the local node mostly holds by then:
//! they need only a metadata check (`mg <key> f` on the local node, and on
//! this source where the local one has them), not a second copy.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::barrier::Arrival;
use super::context::unexpected;
pub use super::context::{CopyContext, CopyError};
use super::dump::{dump_keys, Later, VbSet};
use super::fetch::fetch_for_copy;
use super::inject::Injector;
use super::queue::key_queue;
use super::Counts;
use crate::memcached::dump::DumpMode;
use crate::memcached::Connection;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What one source delivered.
#[derive(Debug, Default, Clone)]
pub struct SourceOutcome {
    pub counts: Counts,
    /// Keys the dump listed in the wanted vbuckets.
    pub listed: u64,
    /// Every key the dump named, wanted or not (issue 32: what the copy
    /// pays to read).
    pub dumped: u64,
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
    // Connecting and asking the version change nothing: a stop cuts them.
    let setup = async {
        let mut fetch_conn = Connection::connect(source, opts.io_timeout).await.map_err(CopyError::Source)?;
        // The fetcher only reads the source: a stop may cut its batch short.
        fetch_conn.stop_on(ctx.stop.clone());
        fetch_conn.reader.limit_values(ctx.item_size_max);
        let mode = match opts.dump {
            Some(forced) => forced,
            None => DumpMode::for_version(&fetch_conn.version().await.map_err(CopyError::Source)?),
        };
        let recheck = Connection::connect(source, opts.io_timeout).await.map_err(CopyError::Source)?;
        let local = Connection::connect(local_name, opts.io_timeout).await.map_err(CopyError::Local)?;
        let fetch_local = Connection::connect(local_name, opts.io_timeout).await.map_err(CopyError::Local)?;
        Ok::<_, CopyError>((fetch_conn, mode, recheck, local, fetch_local))
    };
    let (mut fetch_conn, mode, mut recheck, mut local, mut fetch_local) =
        ctx.stop.or(setup).await.ok_or(CopyError::Stopped)??;

    let (key_tx, key_rx) = key_queue(&ctx.queue);
    let (later_tx, later_rx) = key_queue(&ctx.queue);
    let (item_tx, item_rx) = mpsc::channel(2);
    let dump = {
        let (source, ctx) = (source.to_owned(), ctx.clone());
        tokio::spawn(async move {
            let later = Some(Later { primary, tx: later_tx });
            let classifier = &ctx.classifier;
            dump_keys(&source, mode, classifier, &wanted, &ctx.opts, key_tx, later, ctx.progress.as_deref()).await
        })
    };
    let inject = {
        let (source, ctx) = (source.to_owned(), ctx.clone());
        tokio::spawn(async move {
            let mut injector = Injector::new(&source, &mut local, &mut recheck, ctx.opts.conflict);
            injector.throttle = (!ctx.throttle.is_unlimited()).then_some(&ctx.throttle);
            injector.stop = ctx.stop.clone();
            injector.progress = ctx.progress.as_deref();
            injector.arrival = Some(arrival);
            let result = injector.run(item_rx).await;
            (result, injector.counts)
        })
    };
    // A dump that fails fails this source at once: the keys it queued are
    // not fetched (the fetcher only reads, so it may stop anywhere), and
    // the injector finishes the batch it holds.
    let mut fetch = Box::pin(fetch_for_copy(&mut fetch_conn, &mut fetch_local, key_rx, later_rx, &ctx, item_tx));
    let mut dump = dump;
    let mut dumped = None;
    let fetched = loop {
        tokio::select! {
            fetched = &mut fetch => break fetched,
            listing = &mut dump, if dumped.is_none() => {
                let failed = !matches!(listing, Ok(Ok(_)));
                dumped = Some(listing);
                if failed {
                    break Ok(());
                }
            }
        }
    };
    drop(fetch);
    let injected = match inject.await {
        Ok((result, counts)) => {
            outcome.counts = counts;
            result
        }
        Err(e) => Err(CopyError::Local(unexpected(local_name, format!("injector task failed: {e}")))),
    };
    // The dump only ends early if the copy failed; stop it then.
    let dumped = match dumped {
        Some(listing) => listing,
        None => {
            dump.abort_handle().abort();
            dump.await
        }
    };
    injected?;
    fetched?;
    let listing = match dumped {
        Ok(listing) => listing.map_err(CopyError::Source)?,
        Err(e) => return Err(CopyError::Source(unexpected(source, format!("dump task failed: {e}")))),
    };
    outcome.listed = listing.listed;
    outcome.dumped = listing.dumped;
    for (vb, n) in listing.unmovable {
        outcome.counts.failed += n;
        *outcome.counts.failed_vbuckets.entry(vb).or_default() += n;
    }
    Ok(())
}
