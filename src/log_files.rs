//! The trace log as a Clearwater node keeps it: one file per UTC hour,
//! `astaire_YYYYMMDDTHH0000Z.txt`, the symlink `astaire_current.txt` to
//! the newest, lines `DD-MM-YYYY HH:MM:SS.mmm UTC [thread] Level file:line:
//! text`, and the oldest `astaire_*` files removed whenever the directory
//! grows past its limit (`max_log_directory_size`, 1 GiB by default), which
//! the node's hourly cleanup would otherwise do. Naming, the line prefix,
//! what to remove and which directories to refuse are pure functions;
//! [`HourlyFiles`] does the I/O.
//!
//! The daemon may run as root (the init script of an old node), so nobody
//! else may be able to put anything where its logs go: the directory must
//! be writable by the daemon's user only ([`directory_refusal`]), and each
//! file is opened only as a regular file, never through a symlink and
//! never waiting on a FIFO ([`crate::files::open_own`]). A file refused
//! all the same is said once on stderr (the journal under systemd,
//! `astaire_err.log` under the init script), and its lines go there
//! instead of nowhere.

use crate::files::{open_own, FileError, Writing};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// The names the node's cleanup matches.
pub const PREFIX: &str = "astaire_";
pub const CURRENT: &str = "astaire_current.txt";
/// The cleanup's default limit.
pub const DEFAULT_MAX_DIRECTORY_SIZE: u64 = 1 << 30;

/// The file for the hour of `t`: `astaire_20261130T130000Z.txt`.
pub fn file_name(t: OffsetDateTime) -> String {
    format!("{PREFIX}{:04}{:02}{:02}T{:02}0000Z.txt", t.year(), u8::from(t.month()), t.day(), t.hour())
}

/// A line's start: `30-11-2026 13:05:09.042 UTC [1f2e] Status src/x.rs:12: `.
pub fn line_prefix(t: OffsetDateTime, thread: u32, level: &tracing::Level, file: &str, line: u32) -> String {
    let level = match *level {
        tracing::Level::ERROR => "Error",
        tracing::Level::WARN => "Warning",
        tracing::Level::INFO => "Status",
        tracing::Level::DEBUG => "Verbose",
        tracing::Level::TRACE => "Debug",
    };
    format!(
        "{:02}-{:02}-{:04} {:02}:{:02}:{:02}.{:03} UTC [{thread:x}] {level} {file}:{line}: ",
        t.day(),
        u8::from(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Why a log directory owned by `owner` with `mode` is refused for a
/// daemon running as `euid`, if it is: anyone else who can write there
/// could plant a symlink or a FIFO named like the next hour's file. A
/// directory of root's is trusted (root can write anywhere anyway).
pub fn directory_refusal(owner: u32, mode: u32, euid: u32) -> Option<String> {
    let plant = "could plant a symlink or a FIFO where the log goes";
    if mode & 0o002 != 0 {
        Some(format!(
            "writable by every user (mode {:04o}), so anyone {plant}; use a directory only this service writes (chmod go-w)",
            mode & 0o7777
        ))
    } else if mode & 0o020 != 0 {
        Some(format!(
            "writable by its group (mode {:04o}), so another user of the group {plant}; use a directory only this \
             service writes (chmod g-w)",
            mode & 0o7777
        ))
    } else if owner != euid && owner != 0 {
        Some(format!(
            "owned by user {owner}, not by this service's user ({euid}) or root, and its owner {plant}; chown it to \
             the service's user"
        ))
    } else {
        None
    }
}

/// Which of `files` (name, bytes) to remove, oldest name first, so that
/// the rest fit in `max` bytes. Only `astaire_*` files count and go; the
/// one being written (`keep`) never does.
pub fn to_remove(files: &[(String, u64)], max: u64, keep: &str) -> Vec<String> {
    let mut ours: Vec<&(String, u64)> =
        files.iter().filter(|(n, _)| n.starts_with(PREFIX) && n.as_str() != CURRENT).collect();
    ours.sort();
    let mut total: u64 = ours.iter().map(|(_, b)| b).sum();
    let mut gone = Vec::new();
    for (name, bytes) in ours {
        if total <= max {
            break;
        }
        if name != keep {
            total -= bytes;
            gone.push(name.clone());
        }
    }
    gone
}

/// Writes each record to the file of the current hour.
#[derive(Clone)]
pub struct HourlyFiles {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    max: u64,
    open: Option<(String, std::fs::File)>,
    /// The last file refused, said once on stderr.
    refused: Option<String>,
}

impl HourlyFiles {
    pub fn new(dir: &Path, max_directory_size: u64) -> HourlyFiles {
        let inner = Inner { dir: dir.to_owned(), max: max_directory_size, open: None, refused: None };
        HourlyFiles { inner: Arc::new(Mutex::new(inner)) }
    }
}

impl Inner {
    /// The file for now, opened (and the symlink moved, the directory
    /// trimmed) when the hour changed.
    fn file(&mut self) -> Result<&mut std::fs::File, FileError> {
        let name = file_name(OffsetDateTime::now_utc());
        if self.open.as_ref().is_none_or(|(open, _)| *open != name) {
            let path = self.dir.join(&name);
            let file = open_own(&path, Writing::Append, 0o640)?;
            // The pointer to the newest file is a convenience: the log
            // goes on in the hour's file whether or not it could be moved.
            let link = self.dir.join(format!(".{CURRENT}.new"));
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink(format!("./{name}"), &link)
                .and_then(|()| std::fs::rename(&link, self.dir.join(CURRENT)));
            self.trim(&name);
            self.open = Some((name, file));
        }
        match &mut self.open {
            Some((_, f)) => Ok(f),
            None => Err(FileError::Os {
                path: self.dir.clone(),
                action: "open a log file in",
                source: std::io::Error::other("no log file"),
            }),
        }
    }

    fn trim(&self, keep: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let files: Vec<(String, u64)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
            .collect();
        for name in to_remove(&files, self.max, keep) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

impl Write for HourlyFiles {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self.inner.lock().map_err(|_| std::io::Error::other("log writer poisoned"))?;
        match inner.file() {
            Ok(file) => file.write_all(buf)?,
            Err(e) => {
                // Said once per file; the lines go to stderr rather than nowhere.
                let mut stderr = std::io::stderr().lock();
                let name = e.path().display().to_string();
                if inner.refused.as_deref() != Some(name.as_str()) {
                    writeln!(stderr, "astaire: log file: {e}; the log goes to stderr instead")?;
                    inner.refused = Some(name);
                }
                stderr.write_all(buf)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The line format of [`line_prefix`], for tracing-subscriber.
pub struct ClearwaterFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for ClearwaterFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let thread = nix::unistd::gettid().as_raw() as u32;
        let prefix = line_prefix(
            OffsetDateTime::now_utc(),
            thread,
            meta.level(),
            meta.file().unwrap_or(meta.target()),
            meta.line().unwrap_or(0),
        );
        writer.write_str(&prefix)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn names_and_lines_read_as_clearwater_s() {
        let t = datetime!(2026-11-30 09:05:07.042 UTC);
        assert_eq!(file_name(t), "astaire_20261130T090000Z.txt");
        assert_eq!(
            line_prefix(t, 0x1f2e, &tracing::Level::INFO, "src/daemon/mod.rs", 12),
            "30-11-2026 09:05:07.042 UTC [1f2e] Status src/daemon/mod.rs:12: "
        );
        assert!(line_prefix(t, 1, &tracing::Level::WARN, "f", 1).contains("] Warning f:1: "));
    }

    #[test]
    fn a_directory_others_can_write_to_is_refused() {
        assert_eq!(directory_refusal(1000, 0o750, 1000), None, "the service's own, 0750");
        assert_eq!(directory_refusal(0, 0o755, 1000), None, "root's");
        assert_eq!(directory_refusal(0, 0o700, 0), None);
        let says = |owner, mode, euid| directory_refusal(owner, mode, euid).unwrap_or_default();
        assert!(says(1000, 0o777, 1000).starts_with("writable by every user (mode 0777)"));
        assert!(says(0, 0o1777, 0).starts_with("writable by every user (mode 1777)"), "sticky or not");
        assert!(says(1000, 0o770, 1000).starts_with("writable by its group (mode 0770)"));
        assert!(says(0, 0o775, 0).starts_with("writable by its group"));
        assert!(says(1000, 0o700, 0).starts_with("owned by user 1000, not by this service's user (0) or root"));
        assert!(says(65534, 0o755, 1000).starts_with("owned by user 65534"));
    }

    #[test]
    fn the_oldest_of_ours_go_until_the_rest_fit() {
        let f = |n: &str, b: u64| (n.to_owned(), b);
        let files = [
            f("astaire_20261130T100000Z.txt", 40),
            f("astaire_20261130T080000Z.txt", 40),
            f("astaire_20261130T090000Z.txt", 40),
            f("astaire_current.txt", 30),
            f("astaire_err.log", 5),
            f("other.log", 1000),
        ];
        // 125 bytes of ours; at most 80 may stay: the two oldest go.
        assert_eq!(
            to_remove(&files, 80, "astaire_20261130T100000Z.txt"),
            ["astaire_20261130T080000Z.txt", "astaire_20261130T090000Z.txt"]
        );
        assert!(to_remove(&files, 1000, "x").is_empty(), "under the limit: nothing");
        assert_eq!(to_remove(&files, 0, "astaire_20261130T100000Z.txt").len(), 3, "all but the one being written");
    }
}
