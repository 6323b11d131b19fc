//! `/etc/clearwater/config`: shell-style `key=value` settings.
//!
//! Supported, as Clearwater's files use them: comments, blank lines,
//! `export KEY=value`, single and double quotes (double quotes honour `\`
//! escapes), includes with `. FILE` / `source FILE`, and file tests:
//! `[ -f FILE ] && . FILE` on one line, or the node's shim form
//!
//! ```text
//! if [ -f /etc/clearwater/user_settings ]
//! then
//!   . /etc/clearwater/user_settings
//! fi
//! ```
//!
//! (also `if …; then`, `else`, nesting, `-e`/`-r`/`-s` and `test -f`).
//! Later assignments win, as in a shell. Any other line is reported with
//! its file and line and ignored; a malformed assignment, a missing
//! unguarded include, a condition other than a file test, or an `if`
//! without its `fi` is an error, and then nothing from the file is used.
//!
//! A parser rather than a shell: the daemon (root, for the init script)
//! never runs the node's files as code, errors name the file and line,
//! and what a file sets is the same whatever the shell.
//!
//! Every file is read through [`crate::files::read_text`] (a regular file,
//! never a FIFO or a device); the configuration and everything it includes
//! hold at most [`MAX_CONFIG_BYTES`] together.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::files::{read_text, FileError, MAX_CONFIG_BYTES};
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

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, or one it includes (`from`: the file and line of the
    /// include), could not be read: the OS refused, or it is not a regular
    /// text file of at most [`MAX_CONFIG_BYTES`].
    #[error("{error}{}", included_from(from.as_ref()))]
    File { error: FileError, from: Option<(PathBuf, usize)> },
    /// A line that cannot be read.
    #[error("invalid configuration: {}:{line}: {reason}", path.display())]
    Invalid { path: PathBuf, line: usize, reason: String },
}

fn included_from(from: Option<&(PathBuf, usize)>) -> String {
    from.map(|(path, line)| format!(" (included from {}:{line})", path.display())).unwrap_or_default()
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Reads `path` and its includes: together at most
    /// [`MAX_CONFIG_BYTES`], each a regular file (through symlinks).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (mut config, mut left) = (Config::default(), MAX_CONFIG_BYTES);
        config.read(path, 0, None, &mut left)?;
        Ok(config)
    }

    /// Parses text as if it were the file `path` (includes are read from disk).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let (mut config, mut left) = (Config::default(), MAX_CONFIG_BYTES);
        config.apply(text, path, 0, &mut left)?;
        Ok(config)
    }

    /// Reads one file; `left` is what the files read so far have left of
    /// the configuration's budget, so that includes (up to eight deep, any
    /// number of them) cannot add up to more than one file may hold.
    fn read(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<(&Path, usize)>,
        left: &mut u64,
    ) -> Result<(), ConfigError> {
        let text = read_text(path, *left).map_err(|error| match (error, from) {
            (FileError::TooLarge { .. }, Some((includer, line))) if *left < MAX_CONFIG_BYTES => ConfigError::Invalid {
                path: includer.to_owned(),
                line,
                reason: format!(
                    "including {} takes the configuration and its includes past {} KiB together",
                    path.display(),
                    MAX_CONFIG_BYTES >> 10
                ),
            },
            (error, from) => ConfigError::File { error, from: from.map(|(p, l)| (p.to_owned(), l)) },
        })?;
        *left = left.saturating_sub(text.len() as u64);
        self.apply(&text, path, depth, left)
    }

    fn apply(&mut self, text: &str, path: &Path, depth: usize, left: &mut u64) -> Result<(), ConfigError> {
        let err = |line: usize, reason: String| ConfigError::Invalid { path: path.to_owned(), line, reason };
        let mut blocks = Blocks::default();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let relative = |file: &str| path.parent().unwrap_or(Path::new("/")).join(file);
            match blocks.step(line, number, |file| relative(file).exists()).map_err(|why| err(number, why))? {
                Step::Control => continue,
                Step::Skipped => continue,
                Step::Statement => {}
            }
            if let Some((file, optional)) = include_of(line) {
                let file = path.parent().unwrap_or(Path::new("/")).join(file);
                if optional && !file.exists() {
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    return Err(err(number, format!("includes nested more than {MAX_DEPTH} deep (a loop?)")));
                }
                self.read(&file, depth + 1, Some((path, number)), left)?;
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
        blocks.finish().map_err(|(line, why)| err(line, why))
    }
}

/// What a line is to the conditional blocks around it.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// `if`, `then`, `else`, `fi`: consumed.
    Control,
    /// Inside a branch not taken.
    Skipped,
    /// A line to read.
    Statement,
}

/// The `if [ -f FILE ] … fi` blocks open at a line.
#[derive(Debug, Default)]
struct Blocks {
    /// Per open `if`: its line, whether its condition held, whether `then`
    /// was seen, whether we are in its `else`.
    open: Vec<(usize, bool, bool, bool)>,
}

impl Blocks {
    fn taking(&self) -> bool {
        self.open.iter().all(|&(_, held, _, in_else)| held != in_else)
    }

    fn step(&mut self, line: &str, number: usize, exists: impl Fn(&str) -> bool) -> Result<Step, String> {
        let word = line.split(|c: char| c.is_whitespace() || c == ';').next().unwrap_or("");
        match word {
            "if" => {
                let rest = line.strip_prefix("if").unwrap_or_default().trim();
                let (cond, then) = match rest.strip_suffix("then") {
                    Some(c) => (c.trim().strip_suffix(';').ok_or("expected `; then`")?.trim(), true),
                    None => (rest.trim_end_matches(';').trim(), false),
                };
                let file = file_test(cond).ok_or_else(|| {
                    format!("unsupported condition {cond:?}: only file tests ([ -f FILE ], test -f FILE) are read")
                })?;
                let held = self.taking() && exists(file);
                self.open.push((number, held, then, false));
                Ok(Step::Control)
            }
            "then" => match self.open.last_mut() {
                Some((_, _, then @ false, _)) if line == "then" => {
                    *then = true;
                    Ok(Step::Control)
                }
                _ => Err("`then` without its `if`".into()),
            },
            "else" => match self.open.last_mut() {
                Some((_, _, true, in_else @ false)) if line == "else" => {
                    *in_else = true;
                    Ok(Step::Control)
                }
                _ => Err("`else` without its `if … then`".into()),
            },
            "fi" if line == "fi" || line == "fi;" => match self.open.pop() {
                Some((_, _, true, _)) => Ok(Step::Control),
                _ => Err("`fi` without its `if … then`".into()),
            },
            _ if self.open.last().is_some_and(|&(_, _, then, _)| !then) => Err("expected `then`".into()),
            _ if !self.taking() => Ok(Step::Skipped),
            _ => Ok(Step::Statement),
        }
    }

    /// At the end of the file: every `if` closed, or the line of the first open one.
    fn finish(&self) -> Result<(), (usize, String)> {
        match self.open.first() {
            Some(&(line, ..)) => Err((line, "`if` without its `fi`".into())),
            None => Ok(()),
        }
    }
}

/// The file of `[ -f FILE ]` or `test -f FILE` (also `-e`, `-r`, `-s`).
fn file_test(cond: &str) -> Option<&str> {
    let inner = match cond.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?.trim(),
        None => cond.strip_prefix("test ")?.trim(),
    };
    let file = ["-f ", "-e ", "-r ", "-s "].iter().find_map(|t| inner.strip_prefix(t))?.trim();
    let file = file.trim_matches(['"', '\'']);
    (!file.is_empty() && !file.contains(char::is_whitespace)).then_some(file)
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
    if let Some((cond, tail)) = line.split_once("&&") {
        file_test(cond.trim())?;
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

    /// The line of the file given that the error is at (an include's, for
    /// an included file that could not be read).
    fn line(e: &ConfigError) -> usize {
        match e {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::File { from: Some((_, line)), .. } => *line,
            ConfigError::File { from: None, .. } => 0,
        }
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
        assert_eq!((line(&e), e.to_string().contains("unterminated")), (2, true), "{e}");
        let e = parse("a=1\n. /nonexistent/shared_config\n").unwrap_err();
        assert_eq!(line(&e), 2, "{e}");
        assert!(e.to_string().contains("/nonexistent/shared_config"), "{e}");
        let e = parse("a=one two\n").unwrap_err();
        assert!(e.to_string().contains("unexpected text"), "{e}");
        // Optional includes of missing files are fine; other lines are noted.
        let c = parse("[ -f /nonexistent/user_settings ] && . /nonexistent/user_settings\nulimit -n 1000\n").unwrap();
        assert_eq!(c.ignored, ["/nonexistent/config:2: ulimit -n 1000"]);
        // A condition that is not a file test cannot be read: an error, not a guess.
        let e = parse("a=1\nif true; then\nb=2\nfi\n").unwrap_err();
        assert_eq!(line(&e), 2, "{e}");
        assert!(e.to_string().contains("unsupported condition"), "{e}");
        for (text, at, why) in [
            ("if [ -f /x ]\nthen\na=1\n", 1, "without its `fi`"),
            ("a=1\nfi\n", 2, "`fi` without"),
            ("if [ -f /x ]\na=1\nfi\n", 2, "expected `then`"),
            ("then\n", 1, "`then` without"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(line(&e), at, "{text:?}: {e}");
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }

    /// The shim clearwater-infrastructure writes, exactly
    /// (`shared/spec/clearwater-node.md` §1), with and without the optional
    /// files.
    #[test]
    fn the_clearwater_shim_reads_its_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let shim = include_str!("../tests/fixtures/clearwater-config-shim").replace("/etc/clearwater", &d.to_string());
        let config = dir.path().join("config");
        std::fs::write(&config, shim).unwrap();
        std::fs::write(dir.path().join("local_config"), "local_ip=10.0.0.4\nlog_level=3\n").unwrap();
        // No shared_config, no user_settings: the usual case.
        let c = Config::load(&config).unwrap();
        assert_eq!((c.get("local_ip"), c.get("log_level")), (Some("10.0.0.4"), Some("3")));
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        // Both present: shared first, local over it, user settings last.
        std::fs::write(dir.path().join("shared_config"), "snmp_ip=10.9.9.9\nlocal_ip=shared\nlog_level=1\n").unwrap();
        std::fs::write(dir.path().join("user_settings"), "#+user_settings\nlog_level=5\n#-user_settings\n").unwrap();
        let c = Config::load(&config).unwrap();
        assert_eq!(
            (c.get("local_ip"), c.get("log_level"), c.get("snmp_ip")),
            (Some("10.0.0.4"), Some("5"), Some("10.9.9.9"))
        );
        // local_config is required.
        std::fs::remove_file(dir.path().join("local_config")).unwrap();
        let e = Config::load(&config).unwrap_err();
        assert_eq!(line(&e), 6, "{e}");
        assert!(e.to_string().contains("local_config"), "{e}");
    }

    #[test]
    fn nested_blocks_and_else_take_one_branch() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        std::fs::write(&present, "from_file=1\n").unwrap();
        let (p, m) = (present.display(), dir.path().join("missing").display().to_string());
        let text = format!(
            "if [ -f {p} ]; then\n  a=yes\n  if test -e {m}\n  then\n    b=wrong\n  else\n    b=right\n  fi\nelse\n  a=no\nfi\n\
             if [ -r \"{m}\" ]; then\n  . {m}\nfi\n"
        );
        let c = Config::parse(&text, &dir.path().join("config")).unwrap();
        assert_eq!((c.get("a"), c.get("b")), (Some("yes"), Some("right")));
    }

    /// What an include leads to must be a small regular file: a FIFO would
    /// block the reader, /dev/zero never ends, and no number of includes
    /// adds up to more than one file may hold.
    #[test]
    fn includes_are_regular_files_within_one_budget() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        let fifo = dir.path().join("user_settings");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::write(&main, format!("a=1\n[ -f {0} ] && . {0}\n", fifo.display())).unwrap();
        let e = Config::load(&main).unwrap_err();
        assert!(matches!(e, ConfigError::File { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a FIFO, not a regular file: refusing it (included from {}:2)",
                fifo.display(),
                main.display()
            )
        );
        std::fs::write(&main, "a=1\n. /dev/zero\n").unwrap();
        assert!(Config::load(&main).unwrap_err().to_string().starts_with("/dev/zero is a character device"));
        // 600 KiB of comments, included twice: each file fits, both do not.
        let big = dir.path().join("big");
        std::fs::write(&big, "#".repeat(600 << 10)).unwrap();
        std::fs::write(&main, format!(". {0}\n. {0}\n", big.display())).unwrap();
        let e = Config::load(&main).unwrap_err();
        assert_eq!(line(&e), 2, "{e}");
        assert!(e.to_string().ends_with("past 1024 KiB together"), "{e}");
        std::fs::write(&main, format!(". {0}\n", big.display())).unwrap();
        assert!(Config::load(&main).is_ok());
        // An OS error is said as it is, naming the file.
        let e = Config::load(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("cannot read {}/missing: No such file", dir.path().display())),
            "{e}"
        );
    }

    #[test]
    fn an_include_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        std::fs::write(&main, format!(". {}\n", main.display())).unwrap();
        assert!(Config::load(&main).unwrap_err().to_string().contains("nested"));
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
