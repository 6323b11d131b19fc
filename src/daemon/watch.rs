//! Settings that reload themselves (issue 31): a thread that looks at the
//! watched files once a period and tells the daemon when one changed and
//! then held still, which the daemon takes as a SIGHUP.
//!
//! A plain poll of what each path resolves to (device, inode, size,
//! modification and change times), not inotify (the `notify` crate):
//! - a Kubernetes ConfigMap update swaps the mounted directory's `..data`
//!   symlink: the watched path's own inode never changes, so an inotify
//!   watch has to be on the directory and re-armed on every swap, while a
//!   stat through the link sees the new file at once;
//! - an editor's write-temp-then-rename replaces the inode, which an
//!   inotify watch on the file loses; the stat sees a new inode;
//! - inotify sees nothing on NFS of another host's writes, and its
//!   per-user instance limit (128 by default, shared by every container of
//!   a node) is a known way for a watch to fail;
//! - the cost is one stat per file per period (about 2 µs each, measured
//!   in the test below), and the latency one or two periods, against the
//!   kubelet's own minute or so before a ConfigMap change reaches the pod.
//!
//! The poll runs on a thread of its own: a stat on a file system that
//! stopped answering blocks that thread, never the daemon's loop.
//! Debounce: a change is reported once the file has looked the same on
//! [`SETTLE_POLLS`] polls in a row, so a file still being written is
//! waited for; one written half and left so is reported, and the reload
//! gives the usual clear error and changes nothing.
// Reads file metadata: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

/// How often the files are looked at by default.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// Polls on which a changed file must look the same before it counts.
pub const SETTLE_POLLS: u32 = 2;

/// What a path resolves to, as far as a change is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The path (or a link on the way) does not lead to a file.
    Missing,
    File {
        dev: u64,
        ino: u64,
        size: u64,
        mtime_ns: i128,
        ctime_ns: i128,
    },
}

impl Seen {
    /// Looks at `path`, following symbolic links.
    pub fn of(path: &Path) -> Seen {
        match std::fs::metadata(path) {
            Ok(m) => Seen::File {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            },
            Err(_) => Seen::Missing,
        }
    }
}

/// The debounce of one file: pure.
#[derive(Debug, Clone)]
pub struct Debounce {
    /// What the daemon last acted on (or saw at start).
    settled: Seen,
    /// A different state, and on how many polls in a row it was seen.
    candidate: Option<(Seen, u32)>,
}

impl Debounce {
    pub fn new(first: Seen) -> Debounce {
        Debounce { settled: first, candidate: None }
    }

    /// One poll's look; true when a change has settled and should be
    /// acted on (once).
    pub fn observe(&mut self, seen: Seen) -> bool {
        if seen == self.settled {
            self.candidate = None;
            return false;
        }
        let count = match self.candidate {
            Some((c, n)) if c == seen => n + 1,
            _ => 1,
        };
        if count >= SETTLE_POLLS {
            self.settled = seen;
            self.candidate = None;
            true
        } else {
            self.candidate = Some((seen, count));
            false
        }
    }
}

/// A settled change: the path, and what it now resolves to.
pub type Change = (PathBuf, Seen);

/// Starts the poll of `paths` every `period`; each settled change sends
/// its path and what it saw. The thread ends when the receiver is dropped.
pub fn spawn(paths: Vec<PathBuf>, period: Duration) -> std::io::Result<mpsc::Receiver<Change>> {
    let (tx, rx) = mpsc::channel(8);
    let mut files: Vec<(PathBuf, Debounce)> =
        paths.into_iter().map(|p| (p.clone(), Debounce::new(Seen::of(&p)))).collect();
    std::thread::Builder::new().name("astaire-watch".into()).spawn(move || loop {
        std::thread::sleep(period);
        if tx.is_closed() {
            return;
        }
        for (path, debounce) in files.iter_mut() {
            let seen = Seen::of(path);
            if debounce.observe(seen) {
                debug!(path = %path.display(), "changed");
                // A full channel already holds a change to act on.
                let _ = tx.try_send((path.clone(), seen));
            }
        }
    })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ino: u64, size: u64, mtime_ns: i128) -> Seen {
        Seen::File { dev: 1, ino, size, mtime_ns, ctime_ns: mtime_ns }
    }

    #[test]
    fn a_change_counts_once_after_it_holds_still() {
        let mut d = Debounce::new(file(1, 10, 100));
        assert!(!d.observe(file(1, 10, 100)), "unchanged");
        assert!(!d.observe(file(2, 20, 200)), "changed, first seen");
        assert!(d.observe(file(2, 20, 200)), "the same again: settled");
        assert!(!d.observe(file(2, 20, 200)), "acted on once");
    }

    #[test]
    fn a_file_still_being_written_is_waited_for() {
        let mut d = Debounce::new(file(1, 10, 100));
        for (i, size) in [100, 200, 300, 400].into_iter().enumerate() {
            assert!(!d.observe(file(1, size, 200 + i as i128)), "growing at {size}");
        }
        assert!(d.observe(file(1, 400, 203)), "held still");
    }

    #[test]
    fn a_change_undone_before_it_settles_is_not_reported() {
        let mut d = Debounce::new(file(1, 10, 100));
        assert!(!d.observe(file(2, 10, 100)));
        assert!(!d.observe(file(1, 10, 100)));
        assert!(!d.observe(file(1, 10, 100)));
    }

    #[test]
    fn a_removed_file_is_a_change_and_so_is_its_return() {
        let mut d = Debounce::new(file(1, 10, 100));
        assert!(!d.observe(Seen::Missing));
        assert!(d.observe(Seen::Missing));
        assert!(!d.observe(file(3, 10, 300)));
        assert!(d.observe(file(3, 10, 300)));
    }

    /// The ConfigMap update as the kubelet does it (a new timestamped
    /// directory, a new `..data` link renamed over the old) and the
    /// editor's rename are both seen through the watched path, and a
    /// rewrite in place too; a stat costs microseconds.
    #[test]
    fn what_a_path_resolves_to_follows_the_kubelet_swap_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..2024_01")).unwrap();
        std::fs::write(d.join("..2024_01/cluster_settings"), "servers=a:1\n").unwrap();
        std::os::unix::fs::symlink("..2024_01", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/cluster_settings", d.join("cluster_settings")).unwrap();
        let path = d.join("cluster_settings");
        let before = Seen::of(&path);
        assert!(matches!(before, Seen::File { .. }));

        std::fs::create_dir(d.join("..2024_02")).unwrap();
        std::fs::write(d.join("..2024_02/cluster_settings"), "servers=a:1\n").unwrap();
        std::os::unix::fs::symlink("..2024_02", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        let swapped = Seen::of(&path);
        assert_ne!(swapped, before, "same content, same size: the new inode tells");

        let plain = d.join("plain");
        std::fs::write(&plain, "servers=a:1\n").unwrap();
        let first = Seen::of(&plain);
        std::fs::write(d.join(".plain.swp"), "servers=a:1\n").unwrap();
        std::fs::rename(d.join(".plain.swp"), &plain).unwrap();
        assert_ne!(Seen::of(&plain), first, "rename over the file");
        let renamed = Seen::of(&plain);
        std::fs::write(&plain, "servers=b:1\n").unwrap();
        assert_ne!(Seen::of(&plain), renamed, "rewritten in place, same size");
        assert_eq!(Seen::of(&d.join("gone")), Seen::Missing);

        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            std::hint::black_box(Seen::of(&path));
        }
        let each = started.elapsed() / 10_000;
        eprintln!("one look through the ConfigMap links: {each:?}");
        assert!(each < Duration::from_millis(1), "{each:?}");
    }
}
