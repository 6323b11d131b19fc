//! Read-only check that a node holds what it should: every key of its
//! vbuckets that a source holds is present locally with the same value and
//! flags. Uses the resync's dump and fetch stages; never writes.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::memcached::dump::DumpMode;
use crate::memcached::proto::{self, decode_key, Status};
use crate::memcached::{Connection, McError};
use crate::placement::WorkList;
use crate::resync::batch::ItemBatch;
use crate::resync::dump::dump_keys;
use crate::resync::fetch::fetch_items;
use crate::resync::queue::{default_spill_dir, key_queue, QueueBudget};
use crate::resync::rules::{inject_ttl, Expiry};
use crate::resync::Options;
use crate::view::VBUCKETS;
use tokio::sync::mpsc;

/// One key that differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub vbucket: u8,
    pub source: String,
    /// The key, lossily printed.
    pub key: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    MissingLocally,
    ValueDiffers,
    FlagsDiffer,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    /// Count of every difference (the list below may be cut short).
    pub different: u64,
    pub differences: Vec<Difference>,
    /// Sources that could not be read, with why.
    pub failed_sources: Vec<(String, String)>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.different == 0 && self.failed_sources.is_empty()
    }
}

/// Differences listed in full; beyond this only counted.
const MAX_LISTED: usize = 1000;

/// Checks `work` (normally a full work list: everything the node holds,
/// from the other replicas). `Err` only when the local node is unreachable.
pub async fn verify(work: &WorkList, opts: &Options) -> Result<VerifyReport, McError> {
    let mut local = Connection::connect(&work.local_name, opts.io_timeout).await?;
    let mut report = VerifyReport::default();
    for (source, vbuckets) in work.by_source() {
        let wanted = crate::resync::dump::bucket_set(&vbuckets);
        if let Err(e) = verify_source(&source, work, &wanted, &mut local, opts, &mut report).await {
            if e.server() == work.local_name {
                return Err(e);
            }
            report.failed_sources.push((source.clone(), e.to_string()));
        }
    }
    Ok(report)
}

async fn verify_source(
    source: &str,
    work: &WorkList,
    wanted: &[bool; VBUCKETS],
    local: &mut Connection,
    opts: &Options,
    report: &mut VerifyReport,
) -> Result<(), McError> {
    let mut fetch = Connection::connect(source, opts.io_timeout).await?;
    let mode = DumpMode::for_version(&fetch.version().await?);
    let budget = QueueBudget::new(opts.queue_memory, opts.spill_dir.clone().unwrap_or_else(default_spill_dir));
    let (key_tx, key_rx) = key_queue(&budget);
    let (item_tx, mut item_rx) = mpsc::channel(2);
    let dump = {
        let (source, opts, wanted, classifier) = (source.to_owned(), opts.clone(), *wanted, work.classifier.clone());
        tokio::spawn(async move { dump_keys(&source, mode, &classifier, &wanted, &opts, key_tx, None, None).await })
    };
    let compare = async {
        let mut req = Vec::new();
        while let Some(batch) = item_rx.recv().await {
            compare_batch(source, &batch, local, &mut req, report).await?;
        }
        Ok::<(), McError>(())
    };
    let (fetched, compared) = tokio::join!(fetch_items(&mut fetch, key_rx, item_tx, opts.batch_bytes), compare);
    dump.abort_handle().abort();
    compared?;
    fetched?;
    match dump.await {
        Ok(listing) => listing.map(|_| ()),
        Err(e) => Err(McError::Unexpected { server: source.to_owned(), message: format!("dump task failed: {e}") }),
    }
}

async fn compare_batch(
    source: &str,
    batch: &ItemBatch,
    local: &mut Connection,
    req: &mut Vec<u8>,
    report: &mut VerifyReport,
) -> Result<(), McError> {
    // Items about to expire are not copied, so not expected either.
    let items: Vec<_> = batch.items.iter().filter(|i| inject_ttl(i.ttl, 0) != Expiry::Expired).collect();
    proto::mg_batch(req, items.iter().map(|item| batch.key(item).wire), "f v u");
    let mut found = Vec::with_capacity(items.len());
    local
        .pipeline_items(req, &items, None, |item, m, frame| {
            let problem = match m.status {
                Status::Value => {
                    let value = m.value.and_then(|s| s.of(frame)).unwrap_or_default();
                    if value != batch.value(item) {
                        Some(Problem::ValueDiffers)
                    } else if m.flags.unwrap_or(0) != item.flags {
                        Some(Problem::FlagsDiffer)
                    } else {
                        None
                    }
                }
                _ => Some(Problem::MissingLocally),
            };
            found.push(problem);
            Ok(())
        })
        .await?;
    for (item, problem) in items.iter().zip(found) {
        report.checked += 1;
        let Some(problem) = problem else { continue };
        report.different += 1;
        if report.differences.len() < MAX_LISTED {
            let key = batch.key(item);
            report.differences.push(Difference {
                vbucket: key.vbucket,
                source: source.to_owned(),
                key: crate::memcached::proto::printable(&decode_key(key.wire)),
                problem,
            });
        }
    }
    Ok(())
}
