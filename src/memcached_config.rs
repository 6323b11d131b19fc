//! Moving a Clearwater node to upstream memcached: its
//! `/etc/memcached_11211.conf`, written by clearwater-memcached for the
//! Clearwater fork (1.6.00, engine-pu branch), gives the cache size and the
//! eviction policy as engine options (`-e ignore_vbucket=true;cache_size=N;
//! eviction=false`). Upstream memcached reads `-e` as a memory-file path (and
//! Debian's start-up wrapper hands the line to a shell, which splits it at
//! each `;`), and the file has no `-m`. [`convert`] turns those options into
//! upstream's, keeping every other line (listen address, port, connection
//! limit, user) as it is. Pure: the command does the I/O.

use std::fmt;

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The upstream configuration.
    pub text: String,
    /// One line per change, for the operator; empty when the file was
    /// already upstream's.
    pub changes: Vec<String>,
}

/// Why a file cannot be converted: its line (1-based) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The options of one line: its flag and value, comments and blanks aside.
fn option(line: &str) -> Option<(&str, &str)> {
    let content = line.split('#').next().unwrap_or_default().trim();
    if !content.starts_with('-') {
        return None;
    }
    match content.split_once(char::is_whitespace) {
        Some((flag, value)) => Some((flag, value.trim())),
        None => Some((content, "")),
    }
}

/// What the machine the file is for offers, for the options that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Whether memcached's `-L` can start: transparent huge pages are not
    /// turned off (see [`large_pages`]).
    pub large_pages: bool,
}

/// Whether memcached 1.6.18 accepts `-L` on Linux, given the text of
/// `/sys/kernel/mm/transparent_hugepage/enabled` (`None`: not there):
/// it refuses to start when the file is missing or says `[never]`.
pub fn large_pages(thp_enabled: Option<&str>) -> bool {
    thp_enabled.is_some_and(|t| !t.contains("[never]"))
}

/// memcached 1.6.18's limits on the options a conversion writes, from its
/// `main()` (memcached.c), each checked against the binary: outside them
/// it refuses to start, dies, or reads another number.
pub mod limits {
    /// `-m` (MiB) is read with `atoi`: past `INT_MAX` it wraps (2147483648
    /// became 16 EiB, 4294967298 2 MiB).
    pub const MAX_MEMORY_MIB: u64 = i32::MAX as u64;
    /// The item size limit when `-I` is not given.
    pub const DEFAULT_ITEM_SIZE: u64 = 1 << 20;
    /// `-I` must be a multiple of the slab chunk limit, and not below it
    /// (half the 1 MiB slab page, unless `-o slab_chunk_max` says
    /// otherwise; memcached's own floor of 1024 bytes is below it).
    pub const ITEM_SIZE_STEP: u64 = 512 << 10;
    /// `-I`'s ceiling (`ITEM_SIZE_MAX_UPPER_LIMIT`).
    pub const MAX_ITEM_SIZE: u64 = 1 << 30;
    /// `-n` is read with `atoi` and must not be 0.
    pub const MAX_CHUNK_SIZE: u64 = i32::MAX as u64;
    /// With `-L` memcached takes a 1 MiB page for each slab class at start,
    /// and stops if `-m` cannot hold them. How many classes there are
    /// depends on `-n`, `-f` and the build's item header; there are never
    /// more than 63 (`MAX_NUMBER_OF_SLAB_CLASSES - 1`), so 63 MiB always
    /// does (1.6.18 with its defaults needs 39).
    pub const MIN_PREALLOCATED_MIB: u64 = 63;
}

/// The engine options of one line, each at most once.
#[derive(Debug, Default)]
struct Engine {
    cache_size: Option<u64>,
    eviction: Option<bool>,
    item_size_max: Option<u64>,
    chunk_size: Option<u64>,
    factor: Option<f64>,
    preallocate: Option<bool>,
}

/// `2m`, `512k` or `1048576`, as memcached reads `-I`.
fn item_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (text.get(..i)?, 1 << 10),
        Some((i, 'm' | 'M')) => (text.get(..i)?, 1 << 20),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Converts clearwater-memcached's engine options to upstream options, each
/// value checked against what upstream memcached accepts ([`limits`]).
pub fn convert(text: &str, host: Host) -> Result<Converted, ConvertError> {
    let err = |line: usize, message: String| ConvertError { line: line + 1, message };
    let mut engine: Option<(usize, &str)> = None;
    // Lines giving, outside the engine options, a flag a conversion writes.
    let mut given: Vec<(usize, &str, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match option(line) {
            Some(("-e" | "--memory-file", value)) if value.contains('=') => {
                if let Some((first, _)) = engine {
                    return Err(err(i, format!("engine options again (first on line {})", first + 1)));
                }
                engine = Some((i, value));
            }
            Some((flag, value)) => {
                let name = match flag {
                    "-m" | "--memory-limit" => "-m",
                    "-I" | "--max-item-size" => "-I",
                    "-n" | "--slab-min-size" => "-n",
                    "-f" | "--slab-growth-factor" => "-f",
                    _ => continue,
                };
                given.push((i, name, value));
            }
            None => {}
        }
    }
    let Some((at, value)) = engine else {
        return Ok(Converted { text: text.to_owned(), changes: Vec::new() });
    };
    let e = read_engine(value).map_err(|m| err(at, m))?;
    // An option the file also gives as a flag: which is meant?
    for (key, flag, set) in [
        ("cache_size", "-m", e.cache_size.is_some()),
        ("item_size_max", "-I", e.item_size_max.is_some()),
        ("chunk_size", "-n", e.chunk_size.is_some()),
        ("factor", "-f", e.factor.is_some()),
    ] {
        if let Some((line, ..)) = given.iter().find(|(_, f, _)| *f == flag).filter(|_| set) {
            let message = match flag {
                "-m" => format!("engine options beside -m (line {}): which size is meant?", line + 1),
                _ => format!("engine option {key} beside {flag} (line {}): which is meant?", line + 1),
            };
            return Err(err(at, message));
        }
    }
    let Some(bytes) = e.cache_size else {
        return Err(err(at, "engine options without cache_size: give the cache size with -m".into()));
    };
    let item_size = match (e.item_size_max, given.iter().find(|(_, f, _)| *f == "-I")) {
        (Some(size), _) => size,
        (None, Some((line, _, v))) => item_size(v)
            .ok_or_else(|| err(*line, format!("-I {v}: not an item size memcached reads (bytes, or with k or m)")))?,
        (None, None) => limits::DEFAULT_ITEM_SIZE,
    };
    let options = upstream(&e, bytes, item_size, host).map_err(|m| err(at, m))?;
    let mut out = String::with_capacity(text.len() + 128);
    for (i, line) in text.lines().enumerate() {
        if i == at {
            out.push_str("# Converted for upstream memcached by astaire migrate-memcached-config from:\n");
            out.push_str(&format!("#   {}\n", line.trim()));
            for o in &options {
                out.push_str(o);
                out.push('\n');
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let change = format!("line {}: -e {value} → {}", at + 1, options.join(" "));
    Ok(Converted { text: out, changes: vec![change] })
}

/// The engine options of `value`, each read and given once.
fn read_engine(value: &str) -> Result<Engine, String> {
    fn once<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), String> {
        match slot.replace(v) {
            Some(_) => Err(format!("{key} given twice")),
            None => Ok(()),
        }
    }
    let mut e = Engine::default();
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, v) = part.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((part, ""));
        let number = |what: &str| v.parse::<u64>().map_err(|_| format!("{key}={v}: {what} is not a whole number"));
        let flag = |what: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{key}={v}: {what} is true or false")),
        };
        match key {
            // Upstream memcached has no vbuckets to ignore.
            "ignore_vbucket" => {}
            "cache_size" => once(&mut e.cache_size, key, number("the cache size in bytes")?)?,
            "eviction" => once(&mut e.eviction, key, flag("eviction")?)?,
            "item_size_max" => once(&mut e.item_size_max, key, number("the item size in bytes")?)?,
            "chunk_size" => once(&mut e.chunk_size, key, number("the chunk size in bytes")?)?,
            "factor" => once(&mut e.factor, key, v.parse::<f64>().map_err(|_| format!("factor={v}: not a number"))?)?,
            "preallocate" => once(&mut e.preallocate, key, flag("preallocate")?)?,
            _ => return Err(format!("engine option {key} has no upstream memcached equivalent")),
        }
    }
    Ok(e)
}

/// The upstream options for engine options `e` (the cache `bytes`, items of
/// at most `item_size`), or why memcached would not take them.
fn upstream(e: &Engine, bytes: u64, item_size: u64, host: Host) -> Result<Vec<String>, String> {
    use limits::*;
    const MIB: u64 = 1 << 20;
    let mut options = Vec::new();
    if let Some(size) = e.item_size_max {
        if !(ITEM_SIZE_STEP..=MAX_ITEM_SIZE).contains(&size) || size % ITEM_SIZE_STEP != 0 {
            return Err(format!(
                "item_size_max={size}: upstream memcached takes item size limits from 512 KiB to 1 GiB, in steps of \
                 512 KiB (its slab chunk size), and would refuse to start"
            ));
        }
    }
    // -m is in MiB; never more than the node was given. memcached wants
    // room for two of the largest items.
    let mib = bytes / MIB;
    let least = (2 * item_size).div_ceil(MIB);
    if mib < least {
        return Err(format!(
            "cache_size={bytes}: upstream memcached needs at least {least} MiB for items of up to {} KiB (twice the \
             item size limit), and would refuse to start",
            item_size >> 10
        ));
    }
    if mib > MAX_MEMORY_MIB {
        return Err(format!(
            "cache_size={bytes}: {mib} MiB is more than upstream memcached's -m reads ({MAX_MEMORY_MIB} MiB; it \
             would take another size)"
        ));
    }
    options.push(format!("-m {mib}"));
    if e.eviction == Some(false) {
        options.push("-M".into());
    }
    if let Some(size) = e.item_size_max {
        options.push(format!("-I {size}"));
    }
    if let Some(chunk) = e.chunk_size {
        if !(1..=MAX_CHUNK_SIZE).contains(&chunk) {
            return Err(format!(
                "chunk_size={chunk}: upstream memcached takes a chunk size from 1 to {MAX_CHUNK_SIZE} bytes \
                 (0 stops it, more wraps)"
            ));
        }
        options.push(format!("-n {chunk}"));
    }
    if let Some(factor) = e.factor {
        // NaN passes memcached's own check (factor <= 1.0) and kills it
        // with SIGFPE.
        if !factor.is_finite() || factor <= 1.0 {
            return Err(format!(
                "factor={factor}: upstream memcached needs a growth factor above 1 (a finite number); it would refuse \
                 to start, or with NaN die of SIGFPE"
            ));
        }
        options.push(format!("-f {factor}"));
    }
    if e.preallocate == Some(true) {
        if mib < MIN_PREALLOCATED_MIB {
            return Err(format!(
                "preallocate=true with cache_size={bytes}: upstream memcached's -L takes a 1 MiB page for each slab \
                 class at start (up to {MIN_PREALLOCATED_MIB}), so it needs a cache of at least \
                 {MIN_PREALLOCATED_MIB} MiB, and would stop at start with {mib} MiB"
            ));
        }
        if !host.large_pages {
            return Err("preallocate=true: upstream memcached's -L needs transparent huge pages, which this machine \
                        has turned off (never), so memcached would refuse to start; turn them on (madvise) or leave \
                        preallocate out"
                .into());
        }
        options.push("-L".into());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's file in the format clearwater-node.md §6 gives: Debian's
    /// memcached.conf with `-l local_ip`, the engine options in place of
    /// `-m`, and `-v`, `-c 4096`, `-r`, `-U 0`.
    const NODE: &str = include_str!("../tests/fixtures/memcached_11211.conf");
    /// A machine where memcached's -L starts.
    const HOST: Host = Host { large_pages: true };

    fn options(text: &str) -> Vec<String> {
        text.lines().filter_map(option).map(|(f, v)| format!("{f} {v}").trim().to_owned()).collect()
    }

    #[test]
    fn a_clearwater_node_file_gets_the_size_and_no_eviction_and_keeps_the_rest() {
        let c = convert(NODE, HOST).unwrap();
        assert_eq!(
            options(&c.text),
            ["-d", "-v", "-m 2929", "-M", "-p 11211", "-u memcache", "-l 10.0.0.1", "-c 4096", "-r", "-U 0"]
        );
        assert_eq!(c.changes.len(), 1);
        assert!(c.changes[0].starts_with("line 23: -e ignore_vbucket=true"), "{:?}", c.changes);
        // Only that line changed: every other line is kept, in order.
        let mut now = c.text.lines();
        for line in NODE.lines().filter(|l| !l.starts_with("-e ")) {
            assert!(now.any(|n| n == line), "{line:?} kept in order");
        }
        assert_eq!(c.text.lines().count(), NODE.lines().count() + 3);
    }

    #[test]
    fn an_upstream_file_is_left_as_it_is() {
        let c = convert(NODE, HOST).unwrap();
        assert_eq!(convert(&c.text, HOST).unwrap(), Converted { text: c.text.clone(), changes: vec![] }, "idempotent");
        let debian = "-d\nlogfile /var/log/memcached.log\n-m 64\n-p 11211\n-u memcache\n-l 127.0.0.1\n";
        assert_eq!(convert(debian, HOST).unwrap().text, debian);
    }

    #[test]
    fn other_engine_options_map_to_their_upstream_flags() {
        let c = convert("-e cache_size=4194304;eviction=true;item_size_max=2097152;factor=1.5;chunk_size=96\n", HOST);
        assert_eq!(options(&c.unwrap().text), ["-m 4", "-I 2097152", "-n 96", "-f 1.5"]);
        let c = convert("-e cache_size=66060288;preallocate=true\n", HOST).unwrap();
        assert_eq!(options(&c.text), ["-m 63", "-L"]);
    }

    /// Each value memcached 1.6.18 refuses, misreads or dies of, refused
    /// here naming the line (tests/hostile_files.rs starts the real binary
    /// with each side of every limit).
    #[test]
    fn what_memcached_would_not_take_is_refused() {
        let e = |engine: &str| convert(&format!("-p 11211\n-e {engine}\n"), HOST).unwrap_err().to_string();
        let base = "cache_size=67108864";
        for (option, says) in [
            ("factor=NaN", "factor=NaN: upstream memcached needs a growth factor above 1"),
            ("factor=inf", "factor=inf: upstream"),
            ("factor=1", "factor=1: upstream"),
            ("factor=0.5", "factor=0.5: upstream"),
            ("item_size_max=0", "item_size_max=0: upstream memcached takes item size limits from 512 KiB to 1 GiB"),
            ("item_size_max=1024", "item_size_max=1024: upstream"),
            ("item_size_max=1048577", "item_size_max=1048577: upstream"),
            ("item_size_max=1074266112", "item_size_max=1074266112: upstream"),
            ("chunk_size=0", "chunk_size=0: upstream memcached takes a chunk size from 1 to 2147483647 bytes"),
            ("chunk_size=2147483648", "chunk_size=2147483648: upstream"),
            (
                "item_size_max=67108864",
                "cache_size=67108864: upstream memcached needs at least 128 MiB for items of up to 65536 KiB",
            ),
            ("cache_size=1", "cache_size given twice"),
            ("eviction=false;eviction=true", "eviction given twice"),
        ] {
            assert!(
                e(&format!("{base};{option}")).starts_with(&format!("line 2: {says}")),
                "{option}: {}",
                e(&format!("{base};{option}"))
            );
        }
        assert_eq!(
            e("cache_size=2097151"),
            "line 2: cache_size=2097151: upstream memcached needs at least 2 MiB for items of up to 1024 KiB (twice the \
             item size limit), and would refuse to start"
        );
        assert!(e("cache_size=2251799813685248")
            .starts_with("line 2: cache_size=2251799813685248: 2147483648 MiB is more than"));
        assert!(e("cache_size=66060287;preallocate=true").starts_with(
            "line 2: preallocate=true with cache_size=66060287: upstream memcached's -L takes a 1 MiB page for each slab class"
        ));
        let no_thp = convert("-e cache_size=67108864;preallocate=true\n", Host { large_pages: false }).unwrap_err();
        assert!(no_thp
            .to_string()
            .starts_with("line 1: preallocate=true: upstream memcached's -L needs transparent huge pages"));
        // The file's own -I counts: 6 MiB cannot hold two 4 MiB items.
        let e = |text: &str| convert(text, HOST).unwrap_err().to_string();
        assert!(e("-I 4m\n-e cache_size=6291456\n")
            .starts_with("line 2: cache_size=6291456: upstream memcached needs at least 8 MiB"));
        assert_eq!(
            e("-I lots\n-e cache_size=6291456\n"),
            "line 1: -I lots: not an item size memcached reads (bytes, or with k or m)"
        );
        assert_eq!(
            e("--max-item-size 2m\n-e cache_size=8388608;item_size_max=1048576\n"),
            "line 2: engine option item_size_max beside -I (line 1): which is meant?"
        );
        assert_eq!(
            e("-f 1.1\n-e cache_size=8388608;factor=1.2\n"),
            "line 2: engine option factor beside -f (line 1): which is meant?"
        );
    }

    /// The other side of every limit: what memcached 1.6.18 starts with.
    #[test]
    fn the_edges_memcached_takes_are_kept() {
        let o = |engine: &str| options(&convert(&format!("-e {engine}\n"), HOST).unwrap().text);
        assert_eq!(o("cache_size=2097152"), ["-m 2"]);
        assert_eq!(o("cache_size=1048576;item_size_max=524288"), ["-m 1", "-I 524288"]);
        assert_eq!(o("cache_size=2251799812636672"), ["-m 2147483647"]);
        assert_eq!(o("cache_size=2147483648;item_size_max=1073741824"), ["-m 2048", "-I 1073741824"]);
        assert_eq!(o("cache_size=67108864;chunk_size=1;factor=1.0001"), ["-m 64", "-n 1", "-f 1.0001"]);
        assert_eq!(o("cache_size=67108864;chunk_size=2147483647;factor=100"), ["-m 64", "-n 2147483647", "-f 100"]);
        assert_eq!(options(&convert("-I 512k\n-e cache_size=1048576\n", HOST).unwrap().text), ["-I 512k", "-m 1"]);
    }

    #[test]
    fn large_pages_are_there_unless_turned_off() {
        assert!(large_pages(Some("always [madvise] never\n")));
        assert!(large_pages(Some("[always] madvise never\n")));
        assert!(!large_pages(Some("always madvise [never]\n")));
        assert!(!large_pages(None), "memcached refuses -L without the file");
        assert_eq!(
            [item_size("2m"), item_size("512K"), item_size("1048576"), item_size("m"), item_size("x")],
            [Some(2 << 20), Some(512 << 10), Some(1 << 20), None, None]
        );
    }

    #[test]
    fn what_cannot_be_converted_is_refused_naming_the_line() {
        let e = |t: &str| convert(t, HOST).unwrap_err().to_string();
        assert_eq!(e("-d\n-e cache_size=1x\n"), "line 2: cache_size=1x: the cache size in bytes is not a whole number");
        assert_eq!(
            e("-e cache_size=1;tap_keepalive=5\n"),
            "line 1: engine option tap_keepalive has no upstream memcached equivalent"
        );
        assert_eq!(e("-e cache_size=1;eviction=no\n"), "line 1: eviction=no: eviction is true or false");
        assert_eq!(e("-m 64\n-e cache_size=1\n"), "line 2: engine options beside -m (line 1): which size is meant?");
        assert_eq!(e("-e cache_size=1\n-e cache_size=2\n"), "line 2: engine options again (first on line 1)");
        assert_eq!(
            e("-e ignore_vbucket=true\n"),
            "line 1: engine options without cache_size: give the cache size with -m"
        );
    }
}
