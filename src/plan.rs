//! What a resync would move, counted from the sources' own key lists: per
//! source, the keys this node would pull and their bytes. Read-only: each
//! source's metadump is read and filtered as the resync would, and nothing
//! is fetched or written.

use crate::memcached::dump::DumpMode;
use crate::memcached::McError;
use crate::placement::{Classifier, Layout, LayoutError, WorkList};
use crate::resync::dump::{bucket_set, dump_keys, Listing, VbSet};
use crate::resync::queue::{default_spill_dir, key_queue, QueueBudget};
use crate::resync::Options;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One source's share of a work list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceCount {
    pub keys: u64,
    /// Key and value bytes, as metadump gives them.
    pub bytes: u64,
    /// Why the source could not be listed, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists every source of `work` (one after another, so a source serves one
/// dump at a time) and counts what this node would pull from it.
pub async fn count(work: &WorkList, opts: &Options) -> BTreeMap<String, SourceCount> {
    let mut out = BTreeMap::new();
    for (source, buckets) in work.by_source() {
        let wanted = bucket_set(&buckets);
        let listing = list(&source, &work.classifier, &wanted, opts).await;
        out.insert(source, count_of(&listing, &buckets));
    }
    out
}

/// [`count`] for every work list of `layout` at once, listing each source
/// once (not once per node: a cluster of N nodes would otherwise crawl
/// each source N times). One map per work list, in their order.
pub async fn count_every_node(
    layout: &Layout,
    works: &[WorkList],
    opts: &Options,
) -> Result<Vec<BTreeMap<String, SourceCount>>, LayoutError> {
    let mut out = vec![BTreeMap::new(); works.len()];
    let sources: BTreeSet<String> = works.iter().flat_map(|w| w.by_source().into_keys()).collect();
    for source in sources {
        let survey = layout.survey(&source, works)?;
        let wanted = bucket_set(survey.buckets.iter().flatten());
        let listing = list(&source, &survey.classifier, &wanted, opts).await;
        for (counts, buckets) in out.iter_mut().zip(&survey.buckets).filter(|(_, b)| !b.is_empty()) {
            counts.insert(source.clone(), count_of(&listing, buckets));
        }
    }
    Ok(out)
}

/// Dumps `source` through `classifier`, keeping the keys of `wanted`.
async fn list(source: &str, classifier: &Arc<Classifier>, wanted: &VbSet, opts: &Options) -> Result<Listing, McError> {
    let budget = QueueBudget::new(opts.queue_memory, opts.spill_dir.clone().unwrap_or_else(default_spill_dir));
    let (tx, mut rx) = key_queue(&budget);
    // The keys are only counted: drain them as they come.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = rx.recv().await {} });
    // metadump, for its sizes (every version since 1.6.18 has it).
    let listing = dump_keys(source, DumpMode::Metadump, classifier, wanted, opts, tx, None, None).await;
    let _ = drain.await;
    listing
}

fn count_of(listing: &Result<Listing, McError>, buckets: &[u8]) -> SourceCount {
    match listing {
        Ok(l) => {
            let (keys, bytes) = l.of(buckets);
            SourceCount { keys, bytes, error: None }
        }
        Err(e) => SourceCount { error: Some(e.to_string()), ..SourceCount::default() },
    }
}
