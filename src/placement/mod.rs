//! Which server holds a key, under the old list and under the new one:
//! the one seam between a cluster's clients and the resync engine.
//!
//! Clearwater's vbucket ring (two replicas of each of 128 vbuckets) is the
//! default and lives in [`crate::view`]. The other schemes are those of the
//! client libraries and proxies that shard most memcached clusters, each
//! bit for bit (`shared/spec/placement.md`, `placement-clients.md`), one
//! file each: libmemcached's weighted ketama and its modula default,
//! pymemcache's rendezvous hashing, the memcached proxy's jump hash, Ruby
//! Dalli, Java spymemcached, PHP pecl memcache, twemproxy, Go gomemcache,
//! Node's `memcached` and `memjs`, and mcrouter. They keep one copy of
//! each key, so a key's only source is its old owner, and keys can move
//! between old servers too: the owner under both lists is computed for
//! every key. Each family implements [`Family`]; the pieces several share
//! are [`continuum`] (the ring), [`modula`] (the table) and [`hashes`].
//!
//! Everything here is pure. The engine sees a [`WorkList`] of "buckets"
//! and a [`Classifier`] that puts each dumped key in one (or none): under
//! Clearwater a bucket is a vbucket; under the others it is a source.

pub mod continuum;
pub mod dalli;
pub mod gomemcache;
pub mod hashes;
pub mod jump;
pub mod ketama;
pub mod libmemcached;
pub mod mcrouter;
pub mod memjs;
pub mod modula;
pub mod node_memcached;
pub mod pecl_memcache;
pub mod rendezvous;
pub mod spymemcached;
pub mod twemproxy;
pub mod work;

use crate::view::{vbucket_of, ClusterSettings, LoadError, View, Weight};
use hashes::KeyHash;
pub use rendezvous::KeyText;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twemproxy::Distribution;
pub use work::WorkList;

/// A placement scheme: the `--placement` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
pub enum Scheme {
    /// Clearwater's 128-vbucket ring, two replicas.
    #[default]
    #[value(name = "clearwater")]
    #[serde(rename = "clearwater")]
    Clearwater,
    /// libmemcached weighted ketama (PHP `LIBKETAMA_COMPATIBLE`, pylibmc
    /// `ketama_weighted`, twemproxy `hash: md5`).
    #[value(name = "ketama")]
    #[serde(rename = "ketama")]
    Ketama,
    /// pymemcache `HashClient` (rendezvous, murmur3).
    #[value(name = "rendezvous")]
    #[serde(rename = "rendezvous")]
    Rendezvous,
    /// The memcached proxy's default pool (XXH3, jump hash).
    #[value(name = "jump")]
    #[serde(rename = "jump")]
    Jump,
    /// Ruby Dalli's ring (SHA1 points, CRC32 keys, weights).
    #[value(name = "dalli")]
    #[serde(rename = "dalli")]
    Dalli,
    /// Java spymemcached's default (`ArrayModNodeLocator`, `String.hashCode`).
    #[value(name = "spymemcached")]
    #[serde(rename = "spymemcached")]
    Spymemcached,
    /// spymemcached's `KetamaConnectionFactory`, weighted or not.
    #[value(name = "spymemcached-ketama")]
    #[serde(rename = "spymemcached-ketama")]
    SpymemcachedKetama,
    /// spymemcached's `CONSISTENT` locator with its default `NATIVE_HASH`.
    #[value(name = "spymemcached-consistent")]
    #[serde(rename = "spymemcached-consistent")]
    SpymemcachedConsistent,
    /// PHP pecl `memcache`, `hash_strategy=consistent` (the default).
    #[value(name = "pecl-memcache")]
    #[serde(rename = "pecl-memcache")]
    PeclMemcache,
    /// PHP pecl `memcache`, `hash_strategy=standard`.
    #[value(name = "pecl-memcache-standard")]
    #[serde(rename = "pecl-memcache-standard")]
    PeclMemcacheStandard,
    /// libmemcached's default: modula and one-at-a-time (php-memcached,
    /// pylibmc without ketama).
    #[value(name = "libmemcached")]
    #[serde(rename = "libmemcached")]
    Libmemcached,
    /// A twemproxy (nutcracker) pool: `--hash`, `--distribution`, `--hash-tag`.
    #[value(name = "twemproxy")]
    #[serde(rename = "twemproxy")]
    Twemproxy,
    /// Go `bradfitz/gomemcache` (CRC32 modulo the list; repeats are slots).
    #[value(name = "gomemcache")]
    #[serde(rename = "gomemcache")]
    Gomemcache,
    /// npm `memcached` with `hashring` (MD5 ring, weights).
    #[value(name = "node-memcached")]
    #[serde(rename = "node-memcached")]
    NodeMemcached,
    /// npm `memjs` (UTF-16 hashCode modulo the list).
    #[value(name = "memjs")]
    #[serde(rename = "memjs")]
    Memjs,
    /// mcrouter's `Ch3` (its default hash), with `--salt`.
    #[value(name = "mcrouter")]
    #[serde(rename = "mcrouter")]
    Mcrouter,
    /// mcrouter's `Crc32`.
    #[value(name = "mcrouter-crc32")]
    #[serde(rename = "mcrouter-crc32")]
    McrouterCrc32,
    /// mcrouter's `WeightedCh3`, weights from 0 to 1.
    #[value(name = "mcrouter-weighted")]
    #[serde(rename = "mcrouter-weighted")]
    McrouterWeighted,
}

/// What a family's clients say about a server's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// None: a weight is an error.
    Refused,
    /// A whole number from 1; 1 where none is written.
    Whole,
    /// A fraction from 0 to 1 on every entry (mcrouter's `WeightedCh3`).
    Fraction,
}

impl Scheme {
    /// Every scheme, in `--help` order.
    pub fn all() -> &'static [Scheme] {
        <Scheme as clap::ValueEnum>::value_variants()
    }

    /// The name a configuration file or flag gives, any case.
    pub fn parse(text: &str) -> Option<Scheme> {
        <Scheme as clap::ValueEnum>::from_str(text.trim(), true).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Clearwater => "clearwater",
            Scheme::Ketama => "ketama",
            Scheme::Rendezvous => "rendezvous",
            Scheme::Jump => "jump",
            Scheme::Dalli => "dalli",
            Scheme::Spymemcached => "spymemcached",
            Scheme::SpymemcachedKetama => "spymemcached-ketama",
            Scheme::SpymemcachedConsistent => "spymemcached-consistent",
            Scheme::PeclMemcache => "pecl-memcache",
            Scheme::PeclMemcacheStandard => "pecl-memcache-standard",
            Scheme::Libmemcached => "libmemcached",
            Scheme::Twemproxy => "twemproxy",
            Scheme::Gomemcache => "gomemcache",
            Scheme::NodeMemcached => "node-memcached",
            Scheme::Memjs => "memjs",
            Scheme::Mcrouter => "mcrouter",
            Scheme::McrouterCrc32 => "mcrouter-crc32",
            Scheme::McrouterWeighted => "mcrouter-weighted",
        }
    }

    /// Whether each key has one copy (its old owner is its only source).
    pub fn one_copy(self) -> bool {
        self != Scheme::Clearwater
    }

    /// Whether a server listed twice in one list is meant. Go's
    /// gomemcache (`ServerList`) and memjs give a repeated entry a second
    /// slot on purpose; under every other scheme it would silently take two
    /// shares (two ring nodes, twice the points, two positions), so it is
    /// refused.
    pub fn allows_repeated_servers(self) -> bool {
        matches!(self, Scheme::Gomemcache | Scheme::Memjs)
    }

    /// What the clients make of a weight written after a server's port.
    pub fn weights(self) -> Weights {
        match self {
            Scheme::Ketama
            | Scheme::Dalli
            | Scheme::SpymemcachedKetama
            | Scheme::PeclMemcache
            | Scheme::PeclMemcacheStandard
            | Scheme::Twemproxy
            | Scheme::NodeMemcached => Weights::Whole,
            Scheme::McrouterWeighted => Weights::Fraction,
            _ => Weights::Refused,
        }
    }

    /// Whether the clients store a prefix (libmemcached's namespace,
    /// pymemcache's `key_prefix`) that they leave out of the hash. The
    /// others hash the key as stored, namespace and all.
    pub fn hashes_without_prefix(self) -> bool {
        matches!(self, Scheme::Ketama | Scheme::Rendezvous | Scheme::Jump | Scheme::Libmemcached)
    }

    /// The `--hash` names the scheme takes, and their functions.
    pub fn hashes(self) -> &'static [(&'static str, KeyHash)] {
        match self {
            Scheme::Twemproxy => &twemproxy::HASHES,
            Scheme::PeclMemcache | Scheme::PeclMemcacheStandard => &pecl_memcache::HASHES,
            _ => &[],
        }
    }

    fn is_mcrouter(self) -> bool {
        matches!(self, Scheme::Mcrouter | Scheme::McrouterCrc32 | Scheme::McrouterWeighted)
    }

    /// The schemes for which `test` holds, as a list for a message.
    fn those(test: impl Fn(Scheme) -> bool) -> String {
        let names: Vec<&str> = Scheme::all().iter().filter(|s| test(**s)).map(|s| s.name()).collect();
        names.join(", ")
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
    /// The key hash, where the family lets it be chosen (twemproxy's
    /// `hash:`, pecl memcache's `memcache.hash_function`); `None` for the
    /// family's default.
    pub hash: Option<KeyHash>,
    /// twemproxy's `distribution:`.
    pub distribution: Distribution,
    /// twemproxy's `hash_tag:` (two characters).
    pub hash_tag: Option<[u8; 2]>,
    /// mcrouter's `salt`, appended to every key hashed.
    pub salt: Option<String>,
}

/// The placement options as given (flags, or the node's configuration),
/// before they are checked against each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementOptions {
    pub placement: Option<String>,
    pub key_text: Option<KeyText>,
    pub pool_seed: Option<String>,
    pub key_prefix: Option<String>,
    pub hash: Option<String>,
    pub distribution: Option<String>,
    pub hash_tag: Option<String>,
    pub salt: Option<String>,
}

/// Why placement options cannot be taken: each says which option, what
/// was given, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("unknown placement {given:?} (--placement, astaire_placement): the placements are {choices}")]
    Unknown { given: String, choices: String },
    #[error("{option} is for --placement {only}, not {scheme}")]
    NotFor { option: &'static str, scheme: &'static str, only: String },
    #[error("{given:?} is not a {scheme} hash (--hash, astaire_hash): the hashes are {choices}")]
    UnknownHash { given: String, scheme: &'static str, choices: String },
    #[error("{given:?} is not a twemproxy distribution (--distribution, astaire_distribution): ketama or modula")]
    UnknownDistribution { given: String },
    #[error(
        "hash tag {given:?} (--hash-tag, astaire_hash_tag) is not two characters, as twemproxy's hash_tag (\"{{}}\")"
    )]
    HashTag { given: String },
    #[error(
        "--key-prefix (astaire_key_prefix): {scheme}'s clients hash the key as stored, its prefix or namespace \
         included, so there is nothing to leave out of the hash; give no prefix"
    )]
    PrefixHashed { scheme: &'static str },
}

impl PlacementOptions {
    /// The placement these options give, checked: an unknown name, or an
    /// option the scheme's clients do not have, is an error.
    pub fn resolve(&self) -> Result<Placement, PlacementError> {
        let scheme = match self.placement.as_deref() {
            None => Scheme::default(),
            Some(given) => Scheme::parse(given)
                .ok_or_else(|| PlacementError::Unknown { given: given.to_owned(), choices: Scheme::those(|_| true) })?,
        };
        let not_for = |option: &'static str, test: fn(Scheme) -> bool| {
            (!test(scheme)).then(|| PlacementError::NotFor { option, scheme: scheme.name(), only: Scheme::those(test) })
        };
        // (--key-text and --pool-seed have always been ignored by the
        // placements that have no use for them, and still are.)
        let given = [
            (self.hash.is_some(), not_for("--hash (astaire_hash)", |s| !s.hashes().is_empty())),
            (self.distribution.is_some(), not_for("--distribution (astaire_distribution)", |s| s == Scheme::Twemproxy)),
            (self.hash_tag.is_some(), not_for("--hash-tag (astaire_hash_tag)", |s| s == Scheme::Twemproxy)),
            (self.salt.is_some(), not_for("--salt (astaire_salt)", Scheme::is_mcrouter)),
        ];
        if let Some((_, Some(e))) = given.into_iter().find(|(given, e)| *given && e.is_some()) {
            return Err(e);
        }
        if self.key_prefix.is_some() && scheme.one_copy() && !scheme.hashes_without_prefix() {
            return Err(PlacementError::PrefixHashed { scheme: scheme.name() });
        }
        let hash = match self.hash.as_deref() {
            None => None,
            Some(given) => {
                let found = scheme.hashes().iter().find(|(name, _)| name.eq_ignore_ascii_case(given.trim()));
                let choices = scheme.hashes().iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
                Some(found.map(|(_, h)| *h).ok_or_else(|| PlacementError::UnknownHash {
                    given: given.to_owned(),
                    scheme: scheme.name(),
                    choices,
                })?)
            }
        };
        let distribution = match self.distribution.as_deref() {
            None => Distribution::default(),
            Some(given) => Distribution::NAMES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(given.trim()))
                .map(|(_, d)| *d)
                .ok_or_else(|| PlacementError::UnknownDistribution { given: given.to_owned() })?,
        };
        let hash_tag = match self.hash_tag.as_deref() {
            None => None,
            Some(given) => match *given.as_bytes() {
                [open, close] => Some([open, close]),
                _ => return Err(PlacementError::HashTag { given: given.to_owned() }),
            },
        };
        Ok(Placement {
            scheme,
            key_text: self.key_text.unwrap_or_default(),
            pool_seed: self.pool_seed.clone(),
            key_prefix: self.key_prefix.clone(),
            hash,
            distribution,
            hash_tag,
            salt: self.salt.clone(),
        })
    }
}

/// A key as the dump filter has it: its bytes as memcached stores them
/// and, when it is hashed whole, its MD5 digest (which the dump computes
/// for every key anyway).
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub bytes: &'a [u8],
    pub digest: Option<&'a [u8; 16]>,
}

impl Key<'_> {
    /// The ketama key hash: the MD5's first word, little-endian.
    pub fn md5_le32(&self) -> u32 {
        KeyHash::Md5.hash(self.bytes, self.digest)
    }
}

/// What every family of clients provides: the server (an index into the
/// old list, and one into the new list) its clients send `key` to, or
/// `None` when no client of the family could have stored it (a Java or
/// JavaScript client's key that is not UTF-8). `scratch` is a buffer
/// reused between keys, so that no key costs an allocation.
pub trait Family {
    fn owners(&self, key: &Key<'_>, scratch: &mut Vec<u8>) -> Option<(usize, usize)>;
}

/// One entry of a list as the families read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `host:port` as `cluster_settings` names it (the node's name).
    pub name: String,
    /// The host as written, an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// The whole weight (1 where none is written).
    pub weight: u32,
    /// The fractional weight (`mcrouter-weighted`).
    pub fraction: f64,
    /// Whether the entry gives a weight.
    pub weighted: bool,
    /// twemproxy's name for the entry.
    pub label: Option<String>,
    /// The entry's line in `cluster_settings`.
    pub line: usize,
}

impl Server {
    /// The servers of one list of `settings` (`new` for `new_servers`),
    /// their weights and names checked against what `scheme`'s clients take.
    pub fn list(settings: &ClusterSettings, new: bool, scheme: Scheme) -> Result<Vec<Server>, LayoutError> {
        let (names, weights, labels, line) = match new {
            false => (&settings.servers[..], &settings.weights[..], &settings.labels[..], settings.lines[0]),
            true => (
                settings.new_servers.as_deref().unwrap_or_default(),
                settings.new_weights.as_deref().unwrap_or_default(),
                settings.new_labels.as_deref().unwrap_or_default(),
                settings.lines[1],
            ),
        };
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let hp = crate::addr::HostPort::parse(name, crate::addr::Role::Server)
                    .map_err(|e| LayoutError(format!("line {line}: {e}")))?;
                let weight = weights.get(i).cloned().flatten();
                let label = labels.get(i).cloned().flatten();
                if let Some(label) = &label {
                    if scheme != Scheme::Twemproxy {
                        return Err(LayoutError(format!(
                            "line {line}: {name} {label}: only twemproxy's entries have a name after the address \
                             (host:port:weight name), not {}'s",
                            scheme.name()
                        )));
                    }
                }
                let (whole, fraction) = check_weight(scheme, name, weight.as_ref(), line)?;
                Ok(Server {
                    name: name.clone(),
                    host: hp.host,
                    port: hp.port,
                    weight: whole,
                    fraction,
                    weighted: weight.is_some(),
                    label,
                    line,
                })
            })
            .collect()
    }
}

/// The whole and the fractional weight of an entry, or why `scheme`'s
/// clients could not have been given it.
fn check_weight(scheme: Scheme, name: &str, weight: Option<&Weight>, line: usize) -> Result<(u32, f64), LayoutError> {
    let err = |why: String| Err(LayoutError(format!("line {line}: {why}")));
    match (scheme.weights(), weight) {
        (Weights::Refused, None) | (Weights::Whole, None) => Ok((1, 1.0)),
        (Weights::Refused, Some(w)) => {
            let hint = match scheme {
                Scheme::Libmemcached => " (libmemcached's modula ignores the weights it is given: leave them out)",
                _ => "",
            };
            err(format!(
                "{name}:{w} gives a weight, but {}'s clients have none{hint}; weights are for --placement {}",
                scheme.name(),
                Scheme::those(|s| s.weights() != Weights::Refused)
            ))
        }
        (Weights::Whole, Some(w)) => match w.whole() {
            Some(whole) => Ok((whole, f64::from(whole))),
            None => err(format!("weight {w} of {name} is not a whole number from 1, as {}'s are", scheme.name())),
        },
        (Weights::Fraction, None) => err(format!(
            "{name} has no weight: {} needs one on every server, from 0 to 1 (mcrouter gives a server without one \
             0.5: write {name}:0.5)",
            scheme.name()
        )),
        (Weights::Fraction, Some(w)) => match w.value() {
            v if (0.0..=1.0).contains(&v) => Ok((1, v)),
            _ => err(format!("weight {w} of {name} is outside [0, 1], where mcrouter's WeightedCh3 weights are")),
        },
    }
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
    rule: Box<Rule>,
    /// Per old server: its bucket, or [`NOT_WANTED`] for this node itself.
    bucket_of_old: Vec<u8>,
    /// Per new server: the bucket a key it owns goes to: this node's
    /// ([`WANTED`]) or not ([`NOT_WANTED`]); for a survey, the index of
    /// the new owner's first entry, or [`NOT_WANTED`] for the surveyed
    /// source itself.
    new_bucket: Vec<u8>,
    /// A survey of one source for every node: a key's bucket is its new
    /// owner's (first) index.
    survey: bool,
    /// Left out of the hash when a key starts with it.
    prefix: Vec<u8>,
}

/// In [`Owners::new_bucket`] of a work list: this node owns the key.
const WANTED: u8 = 0;

/// Each family's rule over the old list and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Ketama(ketama::Ketama),
    Rendezvous(rendezvous::Rendezvous),
    Jump(jump::Jump),
    Dalli(dalli::Dalli),
    Spymemcached(spymemcached::Spymemcached),
    PeclMemcache(pecl_memcache::PeclMemcache),
    Libmemcached(libmemcached::Libmemcached),
    Twemproxy(twemproxy::Twemproxy),
    Gomemcache(gomemcache::Gomemcache),
    NodeMemcached(node_memcached::NodeMemcached),
    Memjs(memjs::Memjs),
    Mcrouter(mcrouter::Mcrouter),
}

impl Family for Rule {
    fn owners(&self, key: &Key<'_>, scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        match self {
            Rule::Ketama(f) => f.owners(key, scratch),
            Rule::Rendezvous(f) => f.owners(key, scratch),
            Rule::Jump(f) => f.owners(key, scratch),
            Rule::Dalli(f) => f.owners(key, scratch),
            Rule::Spymemcached(f) => f.owners(key, scratch),
            Rule::PeclMemcache(f) => f.owners(key, scratch),
            Rule::Libmemcached(f) => f.owners(key, scratch),
            Rule::Twemproxy(f) => f.owners(key, scratch),
            Rule::Gomemcache(f) => f.owners(key, scratch),
            Rule::NodeMemcached(f) => f.owners(key, scratch),
            Rule::Memjs(f) => f.owners(key, scratch),
            Rule::Mcrouter(f) => f.owners(key, scratch),
        }
    }
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
        let Some(&to) = self.new_bucket.get(new) else { return NOT_WANTED };
        if to == NOT_WANTED {
            return NOT_WANTED;
        }
        match self.bucket_of_old.get(old).copied().unwrap_or(NOT_WANTED) {
            NOT_WANTED => NOT_WANTED,
            _ if self.survey => to,
            bucket => bucket,
        }
    }

    /// The key's owner in the old list and in the new one (indexes).
    pub fn owners(&self, key: &[u8], digest: &[u8; 16], scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        let key = match key.strip_prefix(self.prefix.as_slice()) {
            // The dump's digest is of the whole key.
            Some(rest) if !self.prefix.is_empty() => Key { bytes: rest, digest: None },
            _ => Key { bytes: key, digest: Some(digest) },
        };
        self.rule.owners(&key, scratch)
    }
}

/// Where keys live under a `cluster_settings` file and a placement.
#[derive(Debug, Clone)]
pub enum Layout {
    Vbuckets(View),
    OneCopy { placement: Placement, settings: Box<ClusterSettings> },
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
        if placement.scheme == Scheme::Clearwater {
            // Weights and names are checked as for any scheme without them.
            Server::list(settings, false, Scheme::Clearwater)?;
            Server::list(settings, true, Scheme::Clearwater)?;
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
        // Every rule the lists can be given is made once here, so that a
        // list the clients could not have is refused before anything runs.
        let (old, new) =
            (Server::list(settings, false, placement.scheme)?, Server::list(settings, true, placement.scheme)?);
        Rule::new(placement, &old, &new)?;
        Ok(Layout::OneCopy { placement: placement.clone(), settings: Box::new(settings.clone()) })
    }

    /// The placement the layout was made under.
    pub fn scheme(&self) -> Scheme {
        match self {
            Layout::Vbuckets(_) => Scheme::Clearwater,
            Layout::OneCopy { placement, .. } => placement.scheme,
        }
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

    /// The rule of a one-copy layout over its two lists.
    fn rule(placement: &Placement, settings: &ClusterSettings) -> Result<Rule, LayoutError> {
        let old = Server::list(settings, false, placement.scheme)?;
        let new = Server::list(settings, true, placement.scheme)?;
        Rule::new(placement, &old, &new)
    }

    /// How to list `source` once for every node (`plan --every-node
    /// --count`): the classifier to dump it with, and, per node of the new
    /// list, the buckets of that dump the node would pull. Under
    /// Clearwater's ring the buckets are vbuckets; under a one-copy scheme
    /// a key's bucket is its new owner's index (the first entry of that
    /// server, where the clients list one twice), among the keys `source`
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
        let first = |name: &String| new.iter().position(|s| s == name).and_then(|i| u8::try_from(i).ok());
        let new_bucket =
            new.iter().map(|s| if s == source { NOT_WANTED } else { first(s).unwrap_or(NOT_WANTED) }).collect();
        let rule = Box::new(Layout::rule(placement, settings)?);
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        let owners = Owners { rule, bucket_of_old, new_bucket, prefix, survey: true };
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
        // weights, or positions shifting, even old servers do.
        let mut vbuckets = BTreeMap::new();
        let mut bucket_of_old = vec![NOT_WANTED; old.len()];
        for (i, s) in old.iter().enumerate() {
            if s != local {
                bucket_of_old[i] = i as u8;
                vbuckets.insert(i as u8, vec![s.clone()]);
            }
        }
        let rule = Box::new(Layout::rule(placement, settings)?);
        let new_bucket = new.iter().map(|s| if s == local { WANTED } else { NOT_WANTED }).collect();
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        let owners = Owners { rule, bucket_of_old, new_bucket, prefix, survey: false };
        Ok(WorkList { local_name: local.to_owned(), full, vbuckets, classifier: Arc::new(Classifier::Owners(owners)) })
    }
}

impl Rule {
    /// The rule of a one-copy scheme for the lists `old` and `new`.
    fn new(placement: &Placement, old: &[Server], new: &[Server]) -> Result<Rule, LayoutError> {
        use mcrouter::Func;
        let hash = |default: KeyHash| placement.hash.unwrap_or(default);
        let salt = placement.salt.as_deref();
        Ok(match placement.scheme {
            Scheme::Ketama => Rule::Ketama(ketama::Ketama::new(old, new)?),
            Scheme::Rendezvous => Rule::Rendezvous(rendezvous::Rendezvous::new(old, new, placement.key_text)),
            Scheme::Jump => Rule::Jump(jump::Jump::new(old.len(), new.len(), placement.pool_seed.as_deref())),
            Scheme::Dalli => Rule::Dalli(dalli::Dalli::new(old, new)),
            Scheme::Spymemcached => Rule::Spymemcached(spymemcached::Spymemcached::array_mod(old, new)),
            Scheme::SpymemcachedKetama => Rule::Spymemcached(spymemcached::Spymemcached::ketama(old, new)?),
            Scheme::SpymemcachedConsistent => Rule::Spymemcached(spymemcached::Spymemcached::consistent(old, new)?),
            Scheme::PeclMemcache => {
                Rule::PeclMemcache(pecl_memcache::PeclMemcache::consistent(old, new, hash(KeyHash::Crc32)))
            }
            Scheme::PeclMemcacheStandard => {
                Rule::PeclMemcache(pecl_memcache::PeclMemcache::standard(old, new, hash(KeyHash::Crc32)))
            }
            Scheme::Libmemcached => Rule::Libmemcached(libmemcached::Libmemcached::new(old.len(), new.len())),
            Scheme::Twemproxy => Rule::Twemproxy(twemproxy::Twemproxy::new(
                old,
                new,
                hash(twemproxy::DEFAULT_HASH),
                placement.distribution,
                placement.hash_tag,
            )?),
            Scheme::Gomemcache => Rule::Gomemcache(gomemcache::Gomemcache::new(old.len(), new.len())),
            Scheme::NodeMemcached => Rule::NodeMemcached(node_memcached::NodeMemcached::new(old, new)),
            Scheme::Memjs => Rule::Memjs(memjs::Memjs::new(old.len(), new.len())),
            Scheme::Mcrouter => Rule::Mcrouter(mcrouter::Mcrouter::new(old, new, Func::Ch3, salt)?),
            Scheme::McrouterCrc32 => Rule::Mcrouter(mcrouter::Mcrouter::new(old, new, Func::Crc32, salt)?),
            Scheme::McrouterWeighted => Rule::Mcrouter(mcrouter::Mcrouter::new(old, new, Func::WeightedCh3, salt)?),
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
        let list = Server::list(settings, false, placement.scheme)?;
        let rule = Box::new(Rule::new(placement, &list, &list)?);
        let prefix = placement.key_prefix.clone().unwrap_or_default().into_bytes();
        Ok(ListOwner(Owners { rule, bucket_of_old: Vec::new(), new_bucket: Vec::new(), prefix, survey: false }))
    }

    /// The index in `servers=` of the key's server.
    pub fn owner(&self, key: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
        self.0.owners(key, &crate::view::key_digest(key), scratch).map(|(o, _)| o)
    }
}

#[cfg(test)]
pub(crate) mod tests;
