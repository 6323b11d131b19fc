//! Which server holds a key, under the old list and under the new one:
//! the one seam between a cluster's clients and the resync engine.
//!
//! Clearwater's vbucket ring (two replicas of each of 128 vbuckets) is the
//! default and lives in [`crate::view`]. The other schemes are those of the
//! client libraries that shard most memcached clusters, each bit for bit
//! (`shared/spec/placement.md`): libmemcached's weighted ketama,
//! pymemcache's rendezvous hashing and the memcached proxy's jump hash.
//! They keep one copy of each key, so a key's only source is its old
//! owner, and keys can move between old servers too: the owner under both
//! lists is computed for every key.
//!
//! Everything here is pure. The engine sees a [`WorkList`] of "buckets"
//! and a [`Classifier`] that puts each dumped key in one (or none): under
//! Clearwater a bucket is a vbucket; under the others it is a source.

pub mod jump;
pub mod ketama;
pub mod rendezvous;

use crate::view::{vbucket_of, ClusterSettings, LoadError, View, WorkList};
use ketama::{Continuum, KetamaServer};
pub use rendezvous::KeyText;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A placement scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Clearwater's 128-vbucket ring, two replicas.
    #[default]
    Clearwater,
    /// libmemcached weighted ketama (PHP `LIBKETAMA_COMPATIBLE`, pylibmc
    /// `ketama_weighted`, twemproxy `hash: md5`).
    Ketama,
    /// pymemcache `HashClient` (rendezvous, murmur3).
    Rendezvous,
    /// The memcached proxy's default pool (XXH3, jump hash).
    Jump,
}

impl Scheme {
    /// The name a configuration file or flag gives.
    pub fn parse(text: &str) -> Option<Scheme> {
        <Scheme as clap::ValueEnum>::from_str(text.trim(), true).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Clearwater => "clearwater",
            Scheme::Ketama => "ketama",
            Scheme::Rendezvous => "rendezvous",
            Scheme::Jump => "jump",
        }
    }

    /// Whether each key has one copy (its old owner is its only source).
    pub fn one_copy(self) -> bool {
        self != Scheme::Clearwater
    }

    /// Whether a server listed twice in one list is meant. Under each of
    /// these it would silently take two shares (two ring nodes, twice the
    /// ketama points, two jump positions), so it is refused. Go's
    /// gomemcache (`ServerList`) gives a repeated entry a second slot on
    /// purpose: a placement for it would answer true here.
    pub fn allows_repeated_servers(self) -> bool {
        match self {
            Scheme::Clearwater | Scheme::Ketama | Scheme::Rendezvous | Scheme::Jump => false,
        }
    }
}

/// The scheme and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub scheme: Scheme,
    /// How pymemcache's clients pass keys (`rendezvous` only).
    pub key_text: KeyText,
    /// The proxy pool's `seed` option (`jump` only).
    pub pool_seed: Option<String>,
    /// A prefix the clients add to every key but leave out of the hash
    /// (libmemcached's namespace, PHP's `OPT_PREFIX_KEY`, pymemcache's
    /// `key_prefix`). Keys that do not start with it are hashed whole.
    pub key_prefix: Option<String>,
}

/// The bucket of a key no bucket of this work list wants.
pub const NOT_WANTED: u8 = u8::MAX;

/// Buckets a one-copy work list can have: one per old server.
pub const MAX_SOURCES: usize = crate::view::VBUCKETS;

/// What the dump filter computes for each key: its bucket in this work
/// list, or [`NOT_WANTED`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Classifier {
    /// Clearwater: the key's vbucket.
    #[default]
    Vbucket,
    /// One copy per key: the old owner's bucket when the new owner is this
    /// node and the old one another.
    Owners(Owners),
}

/// Owners of keys under both lists, for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owners {
    rule: Rule,
    /// Per old server: its bucket, or [`NOT_WANTED`] for this node itself.
    bucket_of_old: Vec<u8>,
    /// Per new server: whether it is this node. (For a survey: whether it
    /// is a server other than the surveyed source, whose bucket is then
    /// its own index.)
    local_new: Vec<bool>,
    /// A survey of one source for every node: a key's bucket is its new
    /// owner's index.
    survey: bool,
    /// Left out of the hash when a key starts with it.
    prefix: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Ketama {
        old: Continuum,
        new: Continuum,
    },
    /// Names of both lists once each, and each name's position in the old
    /// list and in the new one.
    Rendezvous {
        names: Vec<String>,
        old_pos: Vec<Option<usize>>,
        new_pos: Vec<Option<usize>>,
        text: KeyText,
    },
    Jump {
        old: usize,
        new: usize,
        seed: u64,
    },
}

impl Classifier {
    /// Whether each key has one copy (no second replica to check).
    pub fn one_copy(&self) -> bool {
        matches!(self, Classifier::Owners(_))
    }

    /// The bucket of `key` (its MD5 `digest` beside it); `scratch` is
    /// reused between calls.
    pub fn bucket(&self, key: &[u8], digest: &[u8; 16], scratch: &mut Vec<u8>) -> u8 {
        match self {
            Classifier::Vbucket => vbucket_of(digest),
            Classifier::Owners(o) => o.bucket(key, digest, scratch),
        }
    }
}

impl Owners {
    fn bucket(&self, key: &[u8], digest: &[u8; 16], scratch: &mut Vec<u8>) -> u8 {
        let Some((old, new)) = self.owners(key, digest, scratch) else { return NOT_WANTED };
        if self.local_new.get(new) != Some(&true) {
            return NOT_WANTED;
        }
        match self.bucket_of_old.get(old).copied().unwrap_or(NOT_WANTED) {
            NOT_WANTED => NOT_WANTED,
            _ if self.survey => u8::try_from(new).unwrap_or(NOT_WANTED),
            bucket => bucket,
        }
    }

    /// The key's owner in the old list and in the new one (indexes).
    pub fn owners(&self, key: &[u8], digest: &[u8; 16], scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        let (key, stripped) = match key.strip_prefix(self.prefix.as_slice()) {
            Some(rest) if !self.prefix.is_empty() => (rest, true),
            _ => (key, false),
        };
        match &self.rule {
            Rule::Ketama { old, new } => {
                let h = match stripped {
                    // The dump's digest is of the whole key.
                    true => ketama::key_hash(&crate::view::key_digest(key)),
                    false => ketama::key_hash(digest),
                };
                Some((old.owner(h)?, new.owner(h)?))
            }
            Rule::Jump { old, new, seed } => {
                let h = jump::key_hash(key, *seed);
                Some((jump::jump(h, *old)?, jump::jump(h, *new)?))
            }
            Rule::Rendezvous { names, old_pos, new_pos, text } => {
                // Each name scored once, without allocating: the buffer
                // holds the key text, then "name-keytext" for one name at
                // a time.
                scratch.clear();
                rendezvous::key_text(key, *text, scratch)?;
                let t = scratch.len();
                // (score, name index) of the best so far in each list.
                let mut best_old: Option<(u32, usize)> = None;
                let mut best_new: Option<(u32, usize)> = None;
                for (n, name) in names.iter().enumerate() {
                    scratch.truncate(t);
                    scratch.extend_from_slice(name.as_bytes());
                    scratch.push(b'-');
                    scratch.extend_from_within(..t);
                    let score = rendezvous::murmur3_32(scratch.get(t..).unwrap_or_default());
                    // Highest score; on a tie the greatest name (Python's max).
                    let beats = |best: Option<(u32, usize)>| match best {
                        None => true,
                        Some((s, b)) => score > s || (score == s && names.get(b).is_some_and(|b| name > b)),
                    };
                    if old_pos.get(n).copied().flatten().is_some() && beats(best_old) {
                        best_old = Some((score, n));
                    }
                    if new_pos.get(n).copied().flatten().is_some() && beats(best_new) {
                        best_new = Some((score, n));
                    }
                }
                let position = |best: Option<(u32, usize)>, pos: &[Option<usize>]| pos.get(best?.1).copied().flatten();
                Some((position(best_old, old_pos)?, position(best_new, new_pos)?))
            }
        }
    }
}

/// Where keys live under a `cluster_settings` file and a placement.
#[derive(Debug, Clone)]
pub enum Layout {
    Vbuckets(View),
    OneCopy { placement: Placement, settings: ClusterSettings },
}

/// One source listed once for every node: see [`Layout::survey`].
#[derive(Debug, Clone)]
pub struct Survey {
    pub classifier: Arc<Classifier>,
    /// Per work list given, the buckets of the dump it would pull.
    pub buckets: Vec<Vec<u8>>,
}

/// Why a layout or a work list cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(pub String);

/// Why a `cluster_settings` file gives no layout: it could not be read, it
/// is invalid, or the placement refuses what it lists.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("invalid cluster settings: {}: {source}", path.display())]
    Layout { path: PathBuf, source: LayoutError },
}

impl ViewError {
    /// Whether the file is at fault (exit 3, PD 7008), rather than the
    /// OS's reading of it.
    pub fn is_invalid(&self) -> bool {
        match self {
            ViewError::Load(e) => e.is_invalid(),
            ViewError::Layout { .. } => true,
        }
    }
}

impl Layout {
    /// Reads `path` and lays it out under `placement`.
    pub fn load(path: &Path, placement: &Placement) -> Result<(ClusterSettings, Layout), ViewError> {
        let settings = ClusterSettings::load(path)?;
        let layout = Layout::of(path, &settings, placement)?;
        Ok((settings, layout))
    }

    /// [`Layout::new`], its error naming the file the settings came from.
    pub fn of(path: &Path, settings: &ClusterSettings, placement: &Placement) -> Result<Layout, ViewError> {
        Layout::new(settings, placement).map_err(|source| ViewError::Layout { path: path.to_owned(), source })
    }

    pub fn new(settings: &ClusterSettings, placement: &Placement) -> Result<Layout, LayoutError> {
        if let Some(repeated) = settings.repeated.as_ref().filter(|_| !placement.scheme.allows_repeated_servers()) {
            return Err(LayoutError(repeated.to_string()));
        }
        if placement.scheme != Scheme::Ketama {
            if let Some(line) = settings.weight_line {
                return Err(LayoutError(format!(
                    "line {line} gives server weights (host:port:weight), which only --placement ketama uses"
                )));
            }
        }
        if placement.scheme == Scheme::Clearwater {
            if placement.key_prefix.is_some() {
                return Err(LayoutError(
                    "a key prefix is for client-library placements: Clearwater's vbuckets hash the whole key".into(),
                ));
            }
            return Ok(Layout::Vbuckets(View::new(settings)));
        }
        let longest = settings.servers.len().max(settings.new_servers.as_ref().map_or(0, Vec::len));
        if longest > MAX_SOURCES {
            return Err(LayoutError(format!(
                "{longest} servers: placement {} handles at most {MAX_SOURCES}",
                placement.scheme.name()
            )));
        }
        Ok(Layout::OneCopy { placement: placement.clone(), settings: settings.clone() })
    }

    /// Whether `name` is a member of either list.
    pub fn knows(&self, name: &str) -> bool {
        match self {
            Layout::Vbuckets(v) => v.knows(name),
            Layout::OneCopy { settings, .. } => {
                settings.servers.iter().chain(settings.new_servers.iter().flatten()).any(|s| s == name)
            }
        }
    }

    pub fn is_resizing(&self) -> bool {
        match self {
            Layout::Vbuckets(v) => v.is_resizing(),
            Layout::OneCopy { settings, .. } => settings.new_servers.as_ref().is_some_and(|n| !n.is_empty()),
        }
    }

    /// How to list `source` once for every node (`plan --every-node
    /// --count`): the classifier to dump it with, and, per node of the new
    /// list, the buckets of that dump the node would pull. Under
    /// Clearwater's ring the buckets are vbuckets; under a one-copy scheme
    /// a key's bucket is its new owner's index, among the keys `source`
    /// holds now and hands over.
    pub fn survey(&self, source: &str, works: &[WorkList]) -> Result<Survey, LayoutError> {
        let wants = |w: &WorkList| w.by_source().remove(source).unwrap_or_default();
        let (placement, settings) = match self {
            Layout::Vbuckets(_) => {
                let buckets = works.iter().map(wants).collect();
                return Ok(Survey { classifier: Arc::new(Classifier::Vbucket), buckets });
            }
            Layout::OneCopy { placement, settings } => (placement, settings),
        };
        let old = &settings.servers;
        let new = settings.new_servers.as_deref().unwrap_or_default();
        let bucket_of_old = old.iter().map(|s| if s == source { 0 } else { NOT_WANTED }).collect();
        let local_new = new.iter().map(|s| s != source).collect();
        let rule = Rule::new(placement, settings, old, new, settings.new_weights.as_ref())?;
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        let owners = Owners { rule, bucket_of_old, local_new, prefix, survey: true };
        let bucket = |w: &WorkList| -> Vec<u8> {
            let at = new.iter().position(|s| *s == w.local_name).and_then(|i| u8::try_from(i).ok());
            at.filter(|_| !wants(w).is_empty()).into_iter().collect()
        };
        let buckets = works.iter().map(bucket).collect();
        Ok(Survey { classifier: Arc::new(Classifier::Owners(owners)), buckets })
    }

    /// What `local` must pull. A one-copy scheme has no full resync (no
    /// other copy exists) and pulls nothing while stable.
    pub fn work_list(&self, local: &str, full: bool) -> Result<WorkList, LayoutError> {
        let (placement, settings) = match self {
            Layout::Vbuckets(v) => return Ok(v.work_list(local, full)),
            Layout::OneCopy { placement, settings } => (placement, settings),
        };
        if full {
            return Err(LayoutError(format!(
                "placement {} keeps one copy of each key: there is no other copy for a full resync to pull",
                placement.scheme.name()
            )));
        }
        let empty = || WorkList { local_name: local.to_owned(), full, ..WorkList::default() };
        let Some(new) = settings.new_servers.as_ref().filter(|n| !n.is_empty() && !settings.servers.is_empty()) else {
            return Ok(empty());
        };
        let old = &settings.servers;
        if !new.iter().any(|s| s == local) {
            return Ok(empty()); // leaving, or not a member: nothing to hold
        }
        // Every old server but this node may hand it keys: with unequal
        // ketama weights, or jump positions shifting, even old servers do.
        let mut vbuckets = BTreeMap::new();
        let mut bucket_of_old = vec![NOT_WANTED; old.len()];
        for (i, s) in old.iter().enumerate() {
            if s != local {
                bucket_of_old[i] = i as u8;
                vbuckets.insert(i as u8, vec![s.clone()]);
            }
        }
        let rule = Rule::new(placement, settings, old, new, settings.new_weights.as_ref())?;
        let local_new = new.iter().map(|s| s == local).collect();
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        let owners = Owners { rule, bucket_of_old, local_new, prefix, survey: false };
        Ok(WorkList { local_name: local.to_owned(), full, vbuckets, classifier: Arc::new(Classifier::Owners(owners)) })
    }
}

impl Rule {
    /// The owners' rule of a one-copy scheme for the lists `old` and `new`.
    fn new(
        placement: &Placement,
        settings: &ClusterSettings,
        old: &[String],
        new: &[String],
        new_weights: Option<&Vec<Option<u32>>>,
    ) -> Result<Rule, LayoutError> {
        Ok(match placement.scheme {
            Scheme::Ketama => {
                let continuum = |names: &[String], weights: Option<&Vec<Option<u32>>>| {
                    let servers: Result<Vec<KetamaServer>, LayoutError> = names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            let hp = crate::addr::HostPort::parse(n, crate::addr::Role::Server)
                                .map_err(|e| LayoutError(e.to_string()))?;
                            let weight = weights.and_then(|w| w.get(i).copied().flatten()).unwrap_or(1);
                            Ok(KetamaServer { host: hp.host.clone(), port: hp.port, weight })
                        })
                        .collect();
                    servers.map(|s| Continuum::new(&s))
                };
                Rule::Ketama { old: continuum(old, Some(&settings.weights))?, new: continuum(new, new_weights)? }
            }
            Scheme::Rendezvous => {
                let mut names: Vec<String> = Vec::new();
                for n in old.iter().chain(new) {
                    let name = rendezvous_name(n);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                let positions = |list: &[String]| -> Vec<Option<usize>> {
                    names.iter().map(|name| list.iter().position(|e| rendezvous_name(e) == *name)).collect()
                };
                let (old_pos, new_pos) = (positions(old), positions(new));
                Rule::Rendezvous { names, old_pos, new_pos, text: placement.key_text }
            }
            Scheme::Jump => {
                Rule::Jump { old: old.len(), new: new.len(), seed: jump::pool_seed(placement.pool_seed.as_deref()) }
            }
            Scheme::Clearwater => return Err(LayoutError("Clearwater's placement has vbuckets, not owners".into())),
        })
    }
}

/// Where a one-copy scheme's clients put each key under `servers=` alone
/// (the load generator's, and the tests').
#[derive(Debug, Clone)]
pub struct ListOwner(Owners);

impl ListOwner {
    pub fn new(settings: &ClusterSettings, placement: &Placement) -> Result<ListOwner, LayoutError> {
        let s = &settings.servers;
        let rule = Rule::new(placement, settings, s, s, Some(&settings.weights))?;
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        Ok(ListOwner(Owners { rule, bucket_of_old: Vec::new(), local_new: Vec::new(), prefix, survey: false }))
    }

    /// The index in `servers=` of the key's server.
    pub fn owner(&self, key: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
        self.0.owners(key, &crate::view::key_digest(key), scratch).map(|(o, _)| o)
    }
}

/// pymemcache's name of a server: `host:port`, IPv6 without brackets.
fn rendezvous_name(entry: &str) -> String {
    match crate::addr::HostPort::parse(entry, crate::addr::Role::Server) {
        Ok(hp) => format!("{}:{}", hp.host, hp.port),
        Err(_) => entry.to_owned(),
    }
}

#[cfg(test)]
mod tests;
