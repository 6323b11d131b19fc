//! What a resync would move, counted from the sources' own key lists: per
//! source, the keys this node would pull and their bytes. Read-only: each
//! source's metadump is read and filtered as the resync would, and nothing
//! is fetched or written.

use crate::memcached::dump::DumpMode;
use crate::resync::dump::{bucket_set, dump_keys};
use crate::resync::queue::{default_spill_dir, key_queue, QueueBudget};
use crate::resync::Options;
use crate::view::WorkList;
use std::collections::BTreeMap;

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
        let budget = QueueBudget::new(opts.queue_memory, opts.spill_dir.clone().unwrap_or_else(default_spill_dir));
        let (tx, mut rx) = key_queue(&budget);
        // The keys are only counted: drain them as they come.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = rx.recv().await {} });
        // metadump, for its sizes (every version since 1.6.18 has it).
        let listing = dump_keys(&source, DumpMode::Metadump, &work.classifier, &wanted, opts, tx, None, None).await;
        let _ = drain.await;
        let count = match listing {
            Ok(l) => SourceCount { keys: l.listed, bytes: l.bytes, error: None },
            Err(e) => SourceCount { error: Some(e.to_string()), ..SourceCount::default() },
        };
        out.insert(source, count);
    }
    out
}
