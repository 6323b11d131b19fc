//! `/etc/clearwater/config`: shell-style `key=value` settings.
//!
//! Supported, as Clearwater's files use them: comments, blank lines,
//! `export KEY=value`, single and double quotes (double quotes honour `\`
//! escapes), and includes with `. FILE` / `source FILE`, also in the guarded
//! form `[ -f FILE ] && . FILE` (skipped when FILE is missing). Later
//! assignments win, as in a shell. Anything else is reported with its file
//! and line and ignored; a malformed assignment or a missing unguarded
//! include is an error, and then nothing from the file is used.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Default location of the node's configuration.
pub const DEFAULT_CONFIG: &str = "/etc/clearwater/config";

/// Includes nest at most this deep (a loop is an error, not a hang).
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: HashMap<String, String>,
    /// Lines that were ignored: `file:line: text`.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {reason}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Reads `path` and its includes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.read(path, 0, 0)?;
        Ok(config)
    }

    /// Parses text as if it were the file `path` (includes are read from disk).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply(text, path, 0)?;
        Ok(config)
    }

    fn read(&mut self, path: &Path, depth: usize, from_line: usize) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: from_line,
            reason: format!("cannot read: {e}"),
        })?;
        self.apply(&text, path, depth)
    }

    fn apply(&mut self, text: &str, path: &Path, depth: usize) -> Result<(), ConfigError> {
        let err = |line: usize, reason: String| ConfigError { path: path.to_owned(), line, reason };
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((file, optional)) = include_of(line) {
                let file = path.parent().unwrap_or(Path::new("/")).join(file);
                if optional && !file.exists() {
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    return Err(err(number, format!("includes nested more than {MAX_DEPTH} deep (a loop?)")));
                }
                self.read(&file, depth + 1, number).map_err(|e| {
                    if e.path == file && e.line == number {
                        err(number, format!("include {}: {}", file.display(), e.reason))
                    } else {
                        e
                    }
                })?;
                continue;
            }
            let assignment = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
            match assignment.split_once('=') {
                Some((key, value)) if is_name(key) => {
                    let value = unquote(value).map_err(|why| err(number, format!("{key}: {why}")))?;
                    self.values.insert(key.to_owned(), value);
                }
                _ => self.ignored.push(format!("{}:{number}: {line}", path.display())),
            }
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `. FILE`, `source FILE`, or `[ -f FILE ] && . FILE` (optional).
fn include_of(line: &str) -> Option<(&str, bool)> {
    fn plain(l: &str) -> Option<&str> {
        l.strip_prefix(". ").or_else(|| l.strip_prefix("source ")).map(|f| f.trim().trim_matches(['"', '\'']))
    }
    if let Some(rest) = line.strip_prefix("[ -f ").or_else(|| line.strip_prefix("test -f ")) {
        let (_, tail) = rest.split_once("&&")?;
        return plain(tail.trim()).map(|f| (f, true));
    }
    plain(line).map(|f| (f, false))
}

/// The value of a shell assignment: quotes removed, a trailing comment
/// dropped.
fn unquote(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("unterminated double quote".into()),
                    },
                    Some(c) => out.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '\\' => {
                if let Some(c) = chars.next() {
                    out.push(c);
                }
            }
            c if c.is_whitespace() => {
                // Unquoted whitespace ends the value; only a comment may follow.
                let rest: String = chars.collect();
                let rest = rest.trim();
                if !rest.is_empty() && !rest.starts_with('#') {
                    return Err(format!("unexpected text after the value: {rest:?}"));
                }
                break;
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/nonexistent/config"))
    }

    #[test]
    fn shell_style_assignments() {
        let c = parse(
            "# Clearwater\nlocal_ip=10.0.0.4\nexport snmp_ip=\"10.1.1.1,10.1.1.2:1162\"\n\
             snmp_community='my community'\nlog_level=3 # chatty\nempty=\nesc=\"a\\\"b\"\n",
        )
        .unwrap();
        assert_eq!(c.get("local_ip"), Some("10.0.0.4"));
        assert_eq!(c.get("snmp_ip"), Some("10.1.1.1,10.1.1.2:1162"));
        assert_eq!(c.get("snmp_community"), Some("my community"));
        assert_eq!(c.get("log_level"), Some("3"));
        assert_eq!(c.get("empty"), Some(""));
        assert_eq!(c.get("esc"), Some("a\"b"));
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn later_assignments_win_and_includes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shared_config"), "snmp_ip=10.9.9.9\nlog_level=1\n").unwrap();
        let main = dir.path().join("config");
        std::fs::write(
            &main,
            format!(
                ". {}\n[ -f {}/user_settings ] && . {}/user_settings\nlog_level=4\n",
                dir.path().join("shared_config").display(),
                dir.path().display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let c = Config::load(&main).unwrap();
        assert_eq!(c.get("snmp_ip"), Some("10.9.9.9"));
        assert_eq!(c.get("log_level"), Some("4"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("a=1\nb=\"open\n").unwrap_err();
        assert_eq!((e.line, e.reason.contains("unterminated")), (2, true), "{e}");
        let e = parse("a=1\n. /nonexistent/shared_config\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("/nonexistent/shared_config"), "{e}");
        let e = parse("a=one two\n").unwrap_err();
        assert!(e.reason.contains("unexpected text"), "{e}");
        // Optional includes of missing files are fine; other lines are noted.
        let c = parse("[ -f /nonexistent/user_settings ] && . /nonexistent/user_settings\nif true; then\n").unwrap();
        assert_eq!(c.ignored, ["/nonexistent/config:2: if true; then"]);
    }

    #[test]
    fn an_include_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        std::fs::write(&main, format!(". {}\n", main.display())).unwrap();
        assert!(Config::load(&main).unwrap_err().reason.contains("nested"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
                let _ = Config::parse(&text, Path::new("config"));
            }

            #[test]
            fn assignments_are_read_back(
                pairs in prop::collection::btree_map("[a-z_][a-z0-9_]{0,12}", "[A-Za-z0-9.:,/_-]{0,30}", 1..10),
                quote in 0u8..3,
                export in any::<bool>(),
            ) {
                let mut text = String::new();
                for (k, v) in &pairs {
                    let v = match quote { 0 => v.clone(), 1 => format!("'{v}'"), _ => format!("\"{v}\"") };
                    text.push_str(&format!("{}{k}={v}\n", if export { "export " } else { "" }));
                }
                let c = Config::parse(&text, Path::new("config")).unwrap();
                for (k, v) in &pairs {
                    prop_assert_eq!(c.get(k), Some(v.as_str()), "{}", text);
                }
            }
        }
    }
}
