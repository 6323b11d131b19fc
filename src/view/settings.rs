//! The `cluster_settings` file: `servers=` and, during a resize, `new_servers=`.
//!
//! Parsing is all-or-nothing: any bad line makes the whole file invalid and
//! the error names the file, the line and the reason, so a half-written file
//! can never change what a node does (see `shared/spec/cluster.md`). The
//! file is read through [`crate::files::read_text`]; a file the OS could not
//! read is told apart from an invalid one ([`LoadError`]).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::addr::{AddrError, HostPort, Role};
use crate::files::{read_text, FileError, MAX_CONFIG_BYTES};
use std::fmt;
use std::path::{Path, PathBuf};

/// The two server lists of a `cluster_settings` file, in file order.
///
/// An entry may carry a weight, `host:port:weight` (twemproxy's, Dalli's
/// and libmemcached's notation; `[v6]:port:weight` for IPv6), and, as
/// twemproxy writes it, a name after a space (`host:port:weight name`).
/// The names of the servers keep `host:port` only; weights and twemproxy
/// names are beside them, for the placement to judge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterSettings {
    pub servers: Vec<String>,
    /// `Some` only when the file has a `new_servers` line (a resize).
    pub new_servers: Option<Vec<String>>,
    /// The weight of each entry of `servers`, `None` where none is given.
    pub weights: Vec<Option<Weight>>,
    /// The same for `new_servers`.
    pub new_weights: Option<Vec<Option<Weight>>>,
    /// The first line that gives a weight (for the placements without).
    pub weight_line: Option<usize>,
    /// The name twemproxy gives each entry of `servers` (after a space),
    /// `None` where none is given.
    pub labels: Vec<Option<String>>,
    /// The same for `new_servers`.
    pub new_labels: Option<Vec<Option<String>>>,
    /// The first line that names an entry (for the placements without).
    pub label_line: Option<usize>,
    /// The lines of `servers` and of `new_servers` (0 when absent).
    pub lines: [usize; 2],
    /// The first server listed twice in one list, for the placements that
    /// refuse it (see [`Repeated`]).
    pub repeated: Option<Box<Repeated>>,
}

/// A server listed twice in one list. Under every placement Astaire knows
/// today it would take two shares (two ring nodes, twice the ketama
/// points, two jump positions), which no operator means; the layout
/// refuses it. A placement whose clients give a repeated entry a second
/// slot on purpose can accept it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    pub line: usize,
    /// `servers` or `new_servers`.
    pub list: &'static str,
    /// 1-based positions of the two entries in their list.
    pub first: usize,
    pub again: usize,
    pub entry: String,
    /// The second entry as written (it may be spelled differently:
    /// `[::1]:11211` and `[0::1]:11211` are one server).
    pub again_as: String,
}

impl fmt::Display for Repeated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Repeated { line, list, first, again, entry, again_as } = self;
        let spelled = if again_as != entry { format!(", as {again_as}") } else { String::new() };
        write!(
            f,
            "line {line}: server {entry} is listed twice in {list} (entries {first} and {again}{spelled}): \
             it would take two shares of the cluster; list each server once"
        )
    }
}

/// A server's weight as written: a whole number (the ketama clients',
/// Dalli's, pecl memcache's, twemproxy's) or a decimal fraction
/// (mcrouter's `WeightedCh3`, from 0 to 1). Which a list may hold is the
/// placement's to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight(String);

impl Weight {
    /// Digits, with at most one decimal point between digits.
    fn parse(text: &str) -> Option<Weight> {
        let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
        let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        (digits(int) && digits(frac)).then(|| Weight(text.to_owned()))
    }

    /// The weight as a whole number from 1, if it is one.
    pub fn whole(&self) -> Option<u32> {
        self.0.parse::<u32>().ok().filter(|w| *w >= 1)
    }

    /// The weight as a number.
    pub fn value(&self) -> f64 {
        self.0.parse::<f64>().unwrap_or(f64::NAN)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a `cluster_settings` file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// The file, or `<input>` when parsing a string.
    pub path: PathBuf,
    /// 1-based line number; 0 when the problem is the file as a whole.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.reason)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
        }
    }
}

/// Why a `cluster_settings` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The OS could not read it (missing, permissions, out of file
    /// descriptors, I/O): nothing is known about its content, so it is not
    /// called invalid.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// The path leads to something that is not a settings file: not a
    /// regular file, larger than any settings file, or not text.
    #[error("invalid cluster settings: {0}")]
    Refused(FileError),
    /// The text is not valid settings.
    #[error("invalid cluster settings: {0}")]
    Invalid(#[from] SettingsError),
}

impl LoadError {
    /// Whether what the file holds is at fault (exit 3), rather than the
    /// OS's reading of it.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, LoadError::Unreadable { .. })
    }
}

impl From<FileError> for LoadError {
    fn from(e: FileError) -> LoadError {
        match e {
            FileError::Os { path, source, .. } => LoadError::Unreadable { path, source },
            refused => LoadError::Refused(refused),
        }
    }
}

impl ClusterSettings {
    /// Reads and parses `path`: a regular file (through symlinks) of at
    /// most [`MAX_CONFIG_BYTES`], never a FIFO or a device.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = read_text(path, MAX_CONFIG_BYTES)?;
        Ok(Self::parse(&text, path)?)
    }

    /// Parses the text of a file; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        let err = |line: usize, reason: String| SettingsError { path: path.to_owned(), line, reason };
        let mut servers: Option<(usize, Entries)> = None;
        let mut new_servers: Option<(usize, Entries)> = None;
        let mut weight_line = None;
        let mut label_line = None;
        let mut repeated = None;

        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split('=');
            let (key, value) = match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(v), None) => (k.trim(), v.trim()),
                (_, None, _) => return Err(err(number, format!("expected key=value, found {}", quoted(line)))),
                _ => return Err(err(number, format!("more than one '=' in {}", quoted(line)))),
            };
            let (slot, list_name) = match key {
                "servers" => (&mut servers, "servers"),
                "new_servers" => (&mut new_servers, "new_servers"),
                other => {
                    return Err(err(
                        number,
                        format!("unknown setting {} (only servers and new_servers exist)", quoted(other)),
                    ))
                }
            };
            if let Some((first, _)) = slot {
                return Err(err(number, format!("{key} given twice (first on line {first})")));
            }
            let list = parse_list(value).map_err(|reason| err(number, reason))?;
            if weight_line.is_none() && list.iter().any(|e| e.weight.is_some()) {
                weight_line = Some(number);
            }
            if label_line.is_none() && list.iter().any(|e| e.label.is_some()) {
                label_line = Some(number);
            }
            if repeated.is_none() {
                repeated = first_repeat(list.iter().map(|e| e.name.as_str())).map(|(first, again)| {
                    let name = |i: usize| list.get(i).map(|e| e.name.clone()).unwrap_or_default();
                    Box::new(Repeated {
                        line: number,
                        list: list_name,
                        first: first + 1,
                        again: again + 1,
                        entry: name(first),
                        again_as: name(again),
                    })
                });
            }
            *slot = Some((number, list));
        }

        let Some((servers_line, servers)) = servers else {
            return Err(err(0, "no servers line".to_owned()));
        };
        let lines = [servers_line, new_servers.as_ref().map_or(0, |(line, _)| *line)];
        let (servers, weights, labels) = split_entries(servers);
        let (new_servers, new_weights, new_labels) = match new_servers.map(|(_, list)| split_entries(list)) {
            Some((n, w, l)) => (Some(n), Some(w), Some(l)),
            None => (None, None, None),
        };
        Ok(ClusterSettings {
            servers,
            new_servers,
            weights,
            new_weights,
            weight_line,
            labels,
            new_labels,
            label_line,
            lines,
            repeated,
        })
    }

    /// Settings with these lists and no weights.
    pub fn lists(servers: Vec<String>, new_servers: Option<Vec<String>>) -> ClusterSettings {
        let weights = vec![None; servers.len()];
        let new_weights = new_servers.as_ref().map(|n| vec![None; n.len()]);
        let labels = vec![None; servers.len()];
        let new_labels = new_servers.as_ref().map(|n| vec![None; n.len()]);
        let lines = [1, if new_servers.is_some() { 2 } else { 0 }];
        ClusterSettings {
            servers,
            new_servers,
            weights,
            new_weights,
            weight_line: None,
            labels,
            new_labels,
            label_line: None,
            lines,
            repeated: None,
        }
    }
}
/// The positions of the first entry that names a server an earlier one
/// names: the same port, and the same host once spelling is set aside
/// (host names are case-blind, an IP address is compared as an address).
fn first_repeat<'a>(names: impl Iterator<Item = &'a str>) -> Option<(usize, usize)> {
    let mut seen = std::collections::HashMap::new();
    for (i, name) in names.enumerate() {
        let key = match HostPort::parse(name, Role::Server) {
            Ok(hp) => match hp.host.parse::<std::net::IpAddr>() {
                Ok(ip) => (ip.to_string(), hp.port),
                Err(_) => (hp.host.to_ascii_lowercase(), hp.port),
            },
            Err(_) => (name.to_owned(), 0),
        };
        if let Some(&first) = seen.get(&key) {
            return Some((first, i));
        }
        seen.insert(key, i);
    }
    None
}

/// `text` quoted for an error message, cut short: a line of a damaged file
/// may be a megabyte long, and the message needs its start only.
fn quoted(text: &str) -> String {
    const SHOWN: usize = 60;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}… ({} bytes)", text.get(..end).unwrap_or_default(), text.len()),
        None => format!("{text:?}"),
    }
}

/// A list's entries as their names, weights and twemproxy names.
fn split_entries(list: Entries) -> (Vec<String>, Vec<Option<Weight>>, Vec<Option<String>>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for e in list {
        out.0.push(e.name);
        out.1.push(e.weight);
        out.2.push(e.label);
    }
    out
}

/// One entry of a list: `host:port`, its weight, its twemproxy name.
struct Entry {
    name: String,
    weight: Option<Weight>,
    label: Option<String>,
}

type Entries = Vec<Entry>;

fn parse_list(value: &str) -> Result<Entries, String> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            // twemproxy's `host:port:weight name`: the last blank starts the name.
            let (address, label) = match entry.rsplit_once(char::is_whitespace) {
                Some((address, label)) => (address.trim_end(), Some(label.to_owned())),
                None => (entry, None),
            };
            let (name, weight) = split_weight(address)?;
            validate_server(name).map_err(|e| e.to_string())?;
            Ok(Entry { name: name.to_owned(), weight, label })
        })
        .collect()
}

/// `host:port:weight` → (`host:port`, the weight); an entry without one is
/// returned whole. An unbracketed IPv6 address is left to the address
/// check, which rejects it.
fn split_weight(entry: &str) -> Result<(&str, Option<Weight>), String> {
    let colons = entry.matches(':').count();
    let weighted = match entry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(_, tail)| tail.matches(':').count() == 2),
        None => colons == 2,
    };
    if !weighted {
        return Ok((entry, None));
    }
    let Some((name, weight)) = entry.rsplit_once(':') else { return Ok((entry, None)) };
    match Weight::parse(weight) {
        Some(w) => Ok((name, Some(w))),
        None => Err(format!(
            "bad weight {} in {} (host:port:weight, a number such as 2 or 0.5)",
            quoted(weight),
            quoted(entry)
        )),
    }
}

/// Checks one `host:port` or `[v6]:port` entry. The entry is kept verbatim:
/// nodes compare names as exact strings.
pub fn validate_server(entry: &str) -> Result<(), AddrError> {
    HostPort::parse(entry, Role::Server).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterSettings, SettingsError> {
        ClusterSettings::parse(text, Path::new("cluster_settings"))
    }

    #[test]
    fn stable_file_with_comments_and_blank_lines() {
        let s = parse("# cluster\n\n  servers = 10.0.0.2:11211, 10.0.0.1:11211 \n").unwrap();
        assert_eq!(s.servers, ["10.0.0.2:11211", "10.0.0.1:11211"], "order kept, not re-sorted");
        assert_eq!(s.new_servers, None);
    }

    #[test]
    fn resize_file_with_ipv6() {
        let s = parse("servers=[2001:db8::1]:11211\nnew_servers=[2001:db8::1]:11211,[2001:db8::2]:11211\n").unwrap();
        assert_eq!(s.servers, ["[2001:db8::1]:11211"]);
        assert_eq!(s.new_servers.unwrap().len(), 2);
    }

    #[test]
    fn weights_are_read_beside_the_names() {
        let s = parse("servers=10.0.0.1:11211:600,[::1]:11211:3,h:1\nnew_servers=h:1:0.25\n").unwrap();
        assert_eq!(s.servers, ["10.0.0.1:11211", "[::1]:11211", "h:1"]);
        let written = |w: &[Option<Weight>]| w.iter().map(|w| w.as_ref().map(|w| w.to_string())).collect::<Vec<_>>();
        assert_eq!(written(&s.weights), [Some("600".into()), Some("3".into()), None]);
        assert_eq!(written(s.new_weights.as_ref().unwrap()), [Some("0.25".to_owned())]);
        assert_eq!(s.weights[0].as_ref().unwrap().whole(), Some(600));
        let quarter = s.new_weights.as_ref().unwrap()[0].clone().unwrap();
        assert_eq!((quarter.whole(), quarter.value()), (None, 0.25));
        assert_eq!(Weight::parse("0").unwrap().whole(), None, "0 is no whole weight");
        assert_eq!(s.weight_line, Some(1));
        assert_eq!(s.lines, [1, 2]);
        assert_eq!(parse("servers=h:1\nnew_servers=h:1:2\n").unwrap().weight_line, Some(2));
        assert_eq!(parse("servers=h:1\n").unwrap().weight_line, None);
    }

    #[test]
    fn a_twemproxy_name_follows_the_entry_after_a_space() {
        let s = parse("\nservers=127.0.0.1:31001:1 alpha, 127.0.0.1:31002:2  beta,127.0.0.1:31003\n").unwrap();
        assert_eq!(s.servers, ["127.0.0.1:31001", "127.0.0.1:31002", "127.0.0.1:31003"]);
        assert_eq!(s.labels, [Some("alpha".to_owned()), Some("beta".to_owned()), None]);
        assert_eq!(s.weights[1].as_ref().map(Weight::whole), Some(Some(2)));
        assert_eq!((s.label_line, s.lines), (Some(2), [2, 0]));
        assert_eq!(parse("servers=a:1\n").unwrap().label_line, None);
        let e = parse("servers=a:1:1 b c\n").unwrap_err();
        assert!(e.reason.contains("a:1:1 b") || e.reason.contains("a:1 b"), "{e}");
    }

    #[test]
    fn empty_values_are_empty_lists() {
        let s = parse("servers=\nnew_servers=\n").unwrap();
        assert!(s.servers.is_empty());
        assert_eq!(s.new_servers, Some(vec![]));
    }

    #[test]
    fn each_kind_of_error_names_its_line() {
        let cases = [
            ("servers=a:1\nbogus\n", 2, "expected key=value"),
            ("servers=a:1=b\n", 1, "more than one"),
            ("\nfoo=a:1\n", 2, "unknown setting"),
            ("servers=a:1\nservers=b:1\n", 2, "given twice (first on line 1)"),
            ("servers=a:1,,b:2\n", 1, "empty server entry"),
            ("servers=a\n", 1, "not host:port"),
            ("servers=a:99999\n", 1, "bad port"),
            ("servers=2001:db8::1:11211\n", 1, "not host:port"),
            ("servers=a:1:1.x\n", 1, "bad weight \"1.x\""),
            ("servers=a:1:.5\n", 1, "bad weight"),
            ("servers=a:1:x\n", 1, "bad weight"),
            ("servers=[::1]:1:-2\n", 1, "bad weight"),
            ("servers=a:1:\n", 1, "bad weight"),
            ("new_servers=a:1\n", 0, "no servers line"),
        ];
        for (text, line, reason) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(reason), "{text:?}: {e}");
            assert!(e.to_string().starts_with("cluster_settings"), "{e}");
        }
    }

    #[test]
    fn a_server_listed_twice_in_one_list_is_found_however_it_is_spelled() {
        let repeat = |list: &[&str]| first_repeat(list.iter().copied());
        assert_eq!(repeat(&["a:1", "b:1", "a:1"]), Some((0, 2)));
        assert_eq!(
            repeat(&["Vellum-1.example:11211", "vellum-1.EXAMPLE:11211"]),
            Some((0, 1)),
            "host names are case-blind"
        );
        assert_eq!(repeat(&["[2001:db8::1]:1", "[2001:0db8:0::1]:1"]), Some((0, 1)), "one IPv6 address");
        assert_eq!(
            repeat(&["10.0.0.1:11211", "10.0.0.1:11212", "10.0.0.2:11211"]),
            None,
            "another port is another server"
        );
        assert_eq!(repeat(&[]), None);

        let s = parse("servers=a:1,b:1\nnew_servers=a:1,b:1,c:1,b:1:5\n").unwrap();
        let r = s.repeated.unwrap();
        assert_eq!((r.line, r.list, r.first, r.again, r.entry.as_str()), (2, "new_servers", 2, 4, "b:1"));
        assert_eq!(
            r.to_string(),
            "line 2: server b:1 is listed twice in new_servers (entries 2 and 4): it would take two shares of the \
             cluster; list each server once"
        );
        let r = parse("servers=[::1]:1,[0::1]:1\n").unwrap().repeated.unwrap();
        assert!(r.to_string().contains("(entries 1 and 2, as [0::1]:1)"), "{r}");
        // In both lists is what a resize that keeps a server looks like.
        assert_eq!(parse("servers=a:1,b:1\nnew_servers=a:1,b:1,c:1\n").unwrap().repeated, None);
    }

    #[test]
    fn a_huge_line_is_quoted_short() {
        let line = "x".repeat(1 << 20);
        let e = parse(&format!("servers=a:1\n{line}\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().len() < 200, "{} bytes", e.to_string().len());
        assert!(e.reason.ends_with(&format!("xxx\"… ({} bytes)", 1 << 20)), "{e}");
        let e = parse(&format!("servers=a:1:{}\n", "9".repeat(5000))).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn loading_tells_an_unreadable_file_from_an_invalid_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ClusterSettings::load(&dir.path().join("missing")).unwrap_err();
        assert!(!missing.is_invalid(), "{missing}");
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let refused = ClusterSettings::load(&fifo).unwrap_err();
        assert!(refused.is_invalid());
        assert_eq!(
            refused.to_string(),
            format!("invalid cluster settings: {} is a FIFO, not a regular file: refusing it", fifo.display())
        );
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "servers=a\n").unwrap();
        let invalid = ClusterSettings::load(&bad).unwrap_err();
        assert!(invalid.is_invalid());
        assert!(invalid.to_string().starts_with(&format!("invalid cluster settings: {}:1: ", bad.display())));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn address() -> impl Strategy<Value = String> {
            (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, port)| format!("{}.{}.{}.{}:{port}", ip[0], ip[1], ip[2], ip[3]))
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
                let _ = ClusterSettings::parse(&text, Path::new("cs"));
            }

            #[test]
            fn written_lists_are_read_back(
                servers in prop::collection::vec(address(), 1..8),
                new_servers in prop::option::of(prop::collection::vec(address(), 1..8)),
                comment in any::<bool>(),
            ) {
                let mut text = String::new();
                if comment {
                    text.push_str("# cluster_settings\n\n");
                }
                text.push_str(&format!("servers={}\n", servers.join(",")));
                if let Some(n) = &new_servers {
                    text.push_str(&format!("new_servers={}\n", n.join(",")));
                }
                let parsed = ClusterSettings::parse(&text, Path::new("cs")).unwrap();
                let lines = parsed.lines;
                let expect = ClusterSettings { lines, ..ClusterSettings::lists(servers, new_servers) };
                prop_assert_eq!(parsed, expect);
            }
        }
    }
}
