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

/// Converts clearwater-memcached's engine options to upstream options.
pub fn convert(text: &str) -> Result<Converted, ConvertError> {
    let err = |line: usize, message: String| ConvertError { line: line + 1, message };
    let mut engine: Option<(usize, &str)> = None;
    let mut memory: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        match option(line) {
            Some(("-e" | "--memory-file", value)) if value.contains('=') => {
                if let Some((first, _)) = engine {
                    return Err(err(i, format!("engine options again (first on line {})", first + 1)));
                }
                engine = Some((i, value));
            }
            Some(("-m" | "--memory-limit", _)) => memory = Some(i),
            _ => {}
        }
    }
    let Some((at, value)) = engine else {
        return Ok(Converted { text: text.to_owned(), changes: Vec::new() });
    };
    if let Some(m) = memory {
        return Err(err(at, format!("engine options beside -m (line {}): which size is meant?", m + 1)));
    }
    let mut options: Vec<String> = Vec::new();
    let mut size = false;
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, v) = part.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((part, ""));
        let number = |what: &str| -> Result<u64, ConvertError> {
            v.parse::<u64>().map_err(|_| err(at, format!("{key}={v}: {what} is not a whole number")))
        };
        let flag = |what: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(err(at, format!("{key}={v}: {what} is true or false"))),
        };
        match key {
            // Upstream memcached has no vbuckets to ignore.
            "ignore_vbucket" => {}
            "cache_size" => {
                let bytes = number("the cache size in bytes")?;
                // -m is in MiB; never more than the node was given.
                options.push(format!("-m {}", (bytes / (1024 * 1024)).max(1)));
                size = true;
            }
            "eviction" => {
                if !flag("eviction")? {
                    options.push("-M".into());
                }
            }
            "item_size_max" => options.push(format!("-I {}", number("the item size in bytes")?)),
            "chunk_size" => options.push(format!("-n {}", number("the chunk size in bytes")?)),
            "factor" => {
                v.parse::<f64>().map_err(|_| err(at, format!("factor={v}: not a number")))?;
                options.push(format!("-f {v}"));
            }
            "preallocate" => {
                if flag("preallocate")? {
                    options.push("-L".into());
                }
            }
            _ => return Err(err(at, format!("engine option {key} has no upstream memcached equivalent"))),
        }
    }
    if !size {
        return Err(err(at, "engine options without cache_size: give the cache size with -m".into()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's file in the format clearwater-node.md §6 gives: Debian's
    /// memcached.conf with `-l local_ip`, the engine options in place of
    /// `-m`, and `-v`, `-c 4096`, `-r`, `-U 0`.
    const NODE: &str = include_str!("../tests/fixtures/memcached_11211.conf");

    fn options(text: &str) -> Vec<String> {
        text.lines().filter_map(option).map(|(f, v)| format!("{f} {v}").trim().to_owned()).collect()
    }

    #[test]
    fn a_clearwater_node_file_gets_the_size_and_no_eviction_and_keeps_the_rest() {
        let c = convert(NODE).unwrap();
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
        let c = convert(NODE).unwrap();
        assert_eq!(convert(&c.text).unwrap(), Converted { text: c.text.clone(), changes: vec![] }, "idempotent");
        let debian = "-d\nlogfile /var/log/memcached.log\n-m 64\n-p 11211\n-u memcache\n-l 127.0.0.1\n";
        assert_eq!(convert(debian).unwrap().text, debian);
    }

    #[test]
    fn other_engine_options_map_to_their_upstream_flags() {
        let c = convert("-e cache_size=1048576;eviction=true;item_size_max=2097152;factor=1.5;chunk_size=96\n");
        assert_eq!(options(&c.unwrap().text), ["-m 1", "-I 2097152", "-f 1.5", "-n 96"]);
        let c = convert("-e cache_size=100;preallocate=true\n").unwrap();
        assert_eq!(options(&c.text), ["-m 1", "-L"], "never less than 1 MiB");
    }

    #[test]
    fn what_cannot_be_converted_is_refused_naming_the_line() {
        let e = |t: &str| convert(t).unwrap_err().to_string();
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
