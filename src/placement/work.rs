//! A node's work list: the buckets it pulls, each with its sources, and the
//! [`Classifier`] that puts each dumped key in one. The engine takes a
//! [`WorkList`] and never looks at settings, rings or client families.
//!
//! It lives here, above [`crate::view`], because it carries the placement's
//! classifier: the Clearwater view's own work list
//! ([`View::work_list`](crate::view::View)) is built here too, from the
//! vbuckets [`View::pulls`] gives, so that `view` needs nothing of
//! `placement` and the arrows between the two run one way.

use super::Classifier;
use crate::view::View;
use std::collections::BTreeMap;
use std::sync::Arc;

impl View {
    /// The vbuckets `local` must pull, and from where, as a work list
    /// under Clearwater's ring (the vbucket classifier).
    pub fn work_list(&self, local: &str, full: bool) -> WorkList {
        WorkList {
            local_name: local.to_owned(),
            full,
            vbuckets: self.pulls(local, full),
            classifier: Default::default(),
        }
    }
}

/// The buckets one node pulls, each with its sources (primary first). A
/// bucket is a vbucket under Clearwater's placement, a source under the
/// one-copy schemes ([`crate::placement`]); `classifier` puts each key in
/// its bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct WorkList {
    pub local_name: String,
    pub full: bool,
    pub vbuckets: BTreeMap<u8, Vec<String>>,
    #[serde(skip)]
    pub classifier: Arc<Classifier>,
}

impl WorkList {
    pub fn is_empty(&self) -> bool {
        self.vbuckets.is_empty()
    }

    /// Every source with the vbuckets it serves, in name order.
    pub fn by_source(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (vb, sources) in &self.vbuckets {
            for s in sources {
                out.entry(s.clone()).or_default().push(*vb);
            }
        }
        out
    }

    /// Every source with the vbuckets it is listed first for (their
    /// primary), in name order; sources listed first for none are absent.
    pub fn first_sources(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (vb, sources) in &self.vbuckets {
            if let Some(s) = sources.first() {
                out.entry(s.clone()).or_default().push(*vb);
            }
        }
        out
    }

    /// Number of (vbucket, source) pairs: `astaireBucketsNeedingResync`.
    pub fn pairs(&self) -> usize {
        self.vbuckets.values().map(Vec::len).sum()
    }
}
