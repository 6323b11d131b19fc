//! Where Clearwater's clients put each key, written again from
//! `shared/spec/cluster.md` for the tests' expectations (issue 29).
//!
//! The integration tests check Astaire's placement, so they must not take
//! their expectations from it: computed with `astaire::view`, a wrong hash
//! or ring moves the test's expectation along with the code, and every
//! test passes. Nothing here uses `astaire::view`; the code follows the
//! spec's words rather than Astaire's shape (the hash reads the digest's
//! first four bytes little-endian, the ring recounts owners at each step).
//! `tests/support.rs` checks it against every vector of the spec, and
//! Astaire's view against it.

use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::path::Path;

/// Ring slots, and so vbuckets.
pub const VBUCKETS: usize = 128;
/// Replicas per vbucket.
pub const REPLICAS: usize = 2;

/// The vbucket of `key`: "the first four digest bytes read little-endian,
/// masked with 127".
pub fn vbucket(key: &[u8]) -> u8 {
    let digest = Md5::digest(key);
    let first = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (first & 127) as u8
}

/// The ring for `n` nodes: the owning node index of each slot, built
/// from scratch as the spec says.
pub fn ring(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut ring = vec![0; VBUCKETS];
    for nodes in 1..n {
        let replace = VBUCKETS / (nodes + 1);
        for i in 0..replace {
            let owned = |node: usize| ring.iter().filter(|o| **o == node).count();
            // The most slots among 0..nodes; ties to the highest index.
            let mut most = 0;
            for node in 0..nodes {
                if owned(node) >= owned(most) {
                    most = node;
                }
            }
            let slots: Vec<usize> = (0..VBUCKETS).filter(|s| ring[*s] == most).collect();
            ring[slots[i % slots.len()]] = nodes;
        }
    }
    ring
}

/// `get_nodes(slot, r)` on the ring of `n` nodes: distinct nodes walking
/// forward from `slot` (once round at most) until `min(r, n)` are found,
/// padded with the slot's owner.
pub fn get_nodes(ring: &[usize], n: usize, slot: usize, r: usize) -> Vec<usize> {
    let Some(&owner) = ring.get(slot) else { return Vec::new() };
    let mut found = Vec::new();
    for at in (slot..VBUCKETS).chain(0..slot) {
        if found.len() == r.min(n) {
            break;
        }
        if !found.contains(&ring[at]) {
            found.push(ring[at]);
        }
    }
    while found.len() < r {
        found.push(owner);
    }
    found
}

/// The replicas of each vbucket under a `cluster_settings`, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub current: Vec<Vec<String>>,
    /// During a resize; `None` when stable.
    pub new: Option<Vec<Vec<String>>>,
}

fn replicas(list: &[String], r: usize) -> Vec<Vec<String>> {
    let ring = ring(list.len());
    (0..VBUCKETS).map(|vb| get_nodes(&ring, list.len(), vb, r).into_iter().map(|i| list[i].clone()).collect()).collect()
}

impl View {
    /// Stable with one list (whichever is non-empty); resizing with both.
    pub fn new(servers: &[String], new_servers: Option<&[String]>) -> View {
        match new_servers {
            Some(new) if !new.is_empty() && !servers.is_empty() => {
                View { current: replicas(servers, REPLICAS), new: Some(replicas(new, REPLICAS)) }
            }
            Some(new) if servers.is_empty() => View { current: replicas(new, REPLICAS.min(new.len())), new: None },
            _ => View { current: replicas(servers, REPLICAS.min(servers.len())), new: None },
        }
    }

    /// The view of a `cluster_settings` file the tests wrote (only the
    /// `servers` and `new_servers` lines; comments and blank lines skipped).
    pub fn of_file(path: &Path) -> View {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lists: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{}: {line:?}", path.display()));
            let list = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            lists.insert(key.trim(), list);
        }
        let servers = lists.get("servers").unwrap_or_else(|| panic!("{}: no servers line", path.display()));
        View::new(servers, lists.get("new_servers").map(Vec::as_slice))
    }

    /// Where the data must be once any resync is done.
    pub fn target(&self) -> &[Vec<String>] {
        self.new.as_deref().unwrap_or(&self.current)
    }

    /// Whether `node` must hold `key` in the target.
    pub fn holds(&self, node: &str, key: &[u8]) -> bool {
        self.target()[vbucket(key) as usize].iter().any(|s| s == node)
    }

    /// Where a client writes vbucket `vb`: the current primary, then each
    /// new replica, then the other current replicas, each once.
    pub fn write_set(&self, vb: u8) -> Vec<String> {
        let vb = vb as usize;
        let current = &self.current[vb];
        let new = self.new.as_ref().map_or(&[][..], |n| n[vb].as_slice());
        let mut out: Vec<String> = Vec::new();
        for s in current.iter().take(1).chain(new).chain(current.iter().skip(1)) {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The spec's work list of `local`: each vbucket it must pull, with
    /// its sources (the current replicas, primary first, each once).
    pub fn work_list(&self, local: &str, full: bool) -> WorkList {
        let mut vbuckets = BTreeMap::new();
        for vb in 0..VBUCKETS {
            if !self.target()[vb].iter().any(|s| s == local) {
                continue;
            }
            let mut sources: Vec<String> = Vec::new();
            for s in &self.current[vb] {
                if !sources.contains(s) {
                    sources.push(s.clone());
                }
            }
            if full {
                sources.retain(|s| s != local);
            }
            if !sources.is_empty() && !sources.iter().any(|s| s == local) {
                vbuckets.insert(vb as u8, sources);
            }
        }
        WorkList { vbuckets }
    }
}

/// The vbuckets one node pulls, each with its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkList {
    pub vbuckets: BTreeMap<u8, Vec<String>>,
}

impl WorkList {
    /// Each source with the vbuckets it serves.
    pub fn by_source(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (vb, sources) in &self.vbuckets {
            for s in sources {
                out.entry(s.clone()).or_default().push(*vb);
            }
        }
        out
    }

    /// (vbucket, source) pairs: `astaireBucketsNeedingResync`.
    pub fn pairs(&self) -> usize {
        self.vbuckets.values().map(Vec::len).sum()
    }
}
