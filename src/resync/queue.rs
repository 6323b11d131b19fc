//! The queues between a source's dump and its fetcher. A dump is never
//! slowed (a slow 1.6.18 metadump stalls the source's clients), so keys
//! wait here for the copy, which may be throttled to 5% of a core. Memory
//! for waiting keys is one budget over the whole resync (`queue_memory`);
//! past it, batches go to a private spill file and come back in order. The
//! file is anonymous (`O_TMPFILE`, mode 0600): nothing else can open it,
//! and it is gone when the process exits, however it exits.

use super::batch::KeyBatch;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The memory all of a resync's waiting keys may use before they spill.
pub const DEFAULT_QUEUE_MEMORY: usize = 16 << 20;

/// One budget for every queue of a resync, and where they spill.
#[derive(Debug)]
pub struct QueueBudget {
    limit: usize,
    used: AtomicUsize,
    dir: PathBuf,
    /// Bytes written to spill files so far.
    pub spilled: AtomicU64,
    /// The most the spill files may hold at once, all queues together.
    spill_limit: u64,
    /// What they hold now.
    on_disk: AtomicU64,
    /// The most they held at once.
    pub spill_peak: AtomicU64,
}

impl QueueBudget {
    /// A budget of `limit` bytes spilling into `dir`, at most
    /// [`default_spill_limit`] of it, where any spill file a killed
    /// process left behind is removed first.
    pub fn new(limit: usize, dir: PathBuf) -> Arc<QueueBudget> {
        Self::with_spill_limit(limit, dir, None)
    }

    /// [`QueueBudget::new`] with the spill files held to `spill_limit`
    /// bytes (`None`: [`default_spill_limit`]).
    pub fn with_spill_limit(limit: usize, dir: PathBuf, spill_limit: Option<u64>) -> Arc<QueueBudget> {
        remove_stale_spills(&dir);
        let spill_limit = spill_limit.unwrap_or_else(|| default_spill_limit(&dir));
        Arc::new(QueueBudget {
            limit,
            used: AtomicUsize::new(0),
            dir,
            spilled: AtomicU64::new(0),
            spill_limit,
            on_disk: AtomicU64::new(0),
            spill_peak: AtomicU64::new(0),
        })
    }

    /// The most the spill files may hold at once.
    pub fn spill_limit(&self) -> u64 {
        self.spill_limit
    }

    /// Reserves `bytes` of spill file, or says it would pass the limit.
    fn take_disk(&self, bytes: u64) -> Result<(), SpillError> {
        self.on_disk
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|after| *after <= self.spill_limit)
            })
            .map(|held| {
                self.spill_peak.fetch_max(held + bytes, Ordering::Relaxed);
            })
            .map_err(|_| SpillError::Limit { dir: self.dir.clone(), limit: self.spill_limit })
    }

    /// Takes `bytes` from the budget, or says it would go over.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used.saturating_add(bytes) <= self.limit).then_some(used + bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Where spill files go: `$STATE_DIRECTORY` (systemd's StateDirectory),
/// else `/var/lib/astaire` when it exists, else the temporary directory.
pub fn default_spill_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY")
        .and_then(|d| std::env::split_paths(&d).next().filter(|p| !p.as_os_str().is_empty()))
    {
        return dir;
    }
    let state = Path::new("/var/lib/astaire");
    if state.is_dir() && nix::unistd::access(state, nix::unistd::AccessFlags::W_OK).is_ok() {
        return state.to_owned();
    }
    std::env::temp_dir()
}

/// The spill files may hold at most half the space free on their file
/// system when the resync starts (statvfs, as this user sees it): keys
/// waiting to be copied never fill the node's disk, whatever a source
/// lists. Where that cannot be read, only the disk itself limits them.
pub fn default_spill_limit(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()) / 2)
        .unwrap_or(u64::MAX)
}

/// Keys could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// A spill file could not be made or written (a full disk among others).
    #[error("cannot queue keys in {}: {source}", dir.display())]
    Io { dir: PathBuf, source: std::io::Error },
    /// The spill files would pass their limit.
    #[error(
        "cannot queue keys in {}: the spill files would pass their limit of {limit} bytes (--spill-limit, \
         astaire_spill_limit; by default half the space free when the resync started)",
        dir.display()
    )]
    Limit { dir: PathBuf, limit: u64 },
}

struct Spill {
    file: File,
    write_at: u64,
    read_at: u64,
}

struct State {
    memory: VecDeque<(KeyBatch, usize)>,
    spill: Option<Spill>,
    /// Batches in the spill file not yet read back.
    spilled: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    budget: Arc<QueueBudget>,
}

impl Drop for Shared {
    /// A queue given up with batches on disk (its source failed) gives
    /// their space back to the limit; the anonymous file goes with it.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(spill) = &state.spill {
            self.budget.on_disk.fetch_sub(spill.write_at, Ordering::Relaxed);
        }
    }
}

/// A queue of key batches: FIFO, in memory within the budget, on disk past it.
pub fn key_queue(budget: &Arc<QueueBudget>) -> (KeySender, KeyReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { memory: VecDeque::new(), spill: None, spilled: 0, closed: false }),
        ready: Notify::new(),
        budget: budget.clone(),
    });
    (KeySender { shared: shared.clone() }, KeyReceiver { shared })
}

pub struct KeySender {
    shared: Arc<Shared>,
}

pub struct KeyReceiver {
    shared: Arc<Shared>,
}

impl KeySender {
    /// Queues `batch` without waiting: in memory while the budget allows
    /// (and nothing older is on disk), else at the end of the spill file.
    /// `Ok(false)` once the receiver is gone.
    pub fn send(&self, batch: KeyBatch) -> Result<bool, SpillError> {
        if Arc::strong_count(&self.shared) < 2 {
            return Ok(false);
        }
        let bytes = batch.heap_bytes();
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.spilled == 0 && self.shared.budget.take(bytes) {
            state.memory.push_back((batch, bytes));
        } else {
            let budget = &self.shared.budget;
            let fail = |source| SpillError::Io { dir: budget.dir.clone(), source };
            if state.spill.is_none() {
                state.spill = Some(Spill { file: spill_file(&budget.dir).map_err(fail)?, write_at: 0, read_at: 0 });
            }
            let Some(spill) = state.spill.as_mut() else { return Ok(true) };
            let mut record = Vec::with_capacity(bytes + 8);
            batch.write_to(&mut record);
            budget.take_disk(record.len() as u64)?;
            spill.file.write_all_at(&record, spill.write_at).map_err(fail)?;
            spill.write_at += record.len() as u64;
            budget.spilled.fetch_add(record.len() as u64, Ordering::Relaxed);
            state.spilled += 1;
        }
        drop(state);
        self.shared.ready.notify_one();
        Ok(true)
    }
}

impl Drop for KeySender {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.shared.ready.notify_one();
    }
}

impl KeyReceiver {
    /// The next batch in the order sent; `None` once the sender is gone
    /// and everything was read. A spill file that cannot be read back is
    /// an error.
    pub async fn recv(&mut self) -> Result<Option<KeyBatch>, SpillError> {
        loop {
            {
                let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((batch, bytes)) = state.memory.pop_front() {
                    self.shared.budget.give_back(bytes);
                    return Ok(Some(batch));
                }
                if state.spilled > 0 {
                    return self.read_back(&mut state).map(Some);
                }
                if state.closed {
                    return Ok(None);
                }
            }
            self.shared.ready.notified().await;
        }
    }

    fn read_back(&self, state: &mut State) -> Result<KeyBatch, SpillError> {
        let budget = &self.shared.budget;
        let fail = |source| SpillError::Io { dir: budget.dir.clone(), source };
        let bad = || fail(std::io::Error::new(std::io::ErrorKind::InvalidData, "spill file corrupt"));
        let spill = state.spill.as_mut().ok_or_else(bad)?;
        let mut len = [0u8; 8];
        spill.file.read_exact_at(&mut len, spill.read_at).map_err(fail)?;
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| bad())?;
        let mut record = vec![0u8; len];
        spill.file.read_exact_at(&mut record, spill.read_at + 8).map_err(fail)?;
        spill.read_at += 8 + len as u64;
        state.spilled -= 1;
        if state.spilled == 0 {
            // Everything was read back: the space is given back to the disk.
            spill.file.set_len(0).map_err(fail)?;
            budget.on_disk.fetch_sub(spill.write_at, Ordering::Relaxed);
            (spill.write_at, spill.read_at) = (0, 0);
        }
        KeyBatch::read_from(&record).ok_or_else(bad)
    }
}

/// An anonymous file in `dir`, readable by this process only.
fn spill_file(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let anonymous =
        std::fs::OpenOptions::new().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir);
    match anonymous {
        Ok(f) => Ok(f),
        // A file system without O_TMPFILE: a named file, unlinked at once.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let path = dir.join(format!("{SPILL_PREFIX}{}-{:x}", std::process::id(), rand_suffix()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// The process that made a named spill file (`.astaire-spill-PID-…`).
fn spill_owner(name: &str) -> Option<u32> {
    name.strip_prefix(SPILL_PREFIX)?.split('-').next()?.parse().ok()
}

const SPILL_PREFIX: &str = ".astaire-spill-";

/// Removes the named spill files in `dir` whose process is gone. Only a
/// file system without `O_TMPFILE` gets named files, unlinked at once
/// after creation, so this finds one only after a kill in between.
fn remove_stale_spills(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(spill_owner) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "removed a spill file left by process {pid}"),
                Err(e) => tracing::warn!(file = %entry.path().display(), "cannot remove a stale spill file: {e}"),
            }
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_file_left_by_a_dead_process_goes_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        // pid_max is at most 2^22: this process cannot exist.
        let stale = file(".astaire-spill-99999999-1f");
        let ours = file(&format!(".astaire-spill-{}-2e", std::process::id()));
        let alive = file(".astaire-spill-1-3d"); // init
        let other = file("astaire-spill-99999999-4c"); // not ours to touch
        for f in [&stale, &ours, &alive, &other] {
            std::fs::write(f, b"keys").unwrap();
        }
        let _budget = QueueBudget::new(1, dir.path().to_owned());
        assert!(!stale.exists(), "the dead process's file was removed");
        assert!(ours.exists() && alive.exists() && other.exists(), "nothing else was touched");
        assert_eq!(spill_owner(".astaire-spill-12-ab"), Some(12));
        assert_eq!(spill_owner(".astaire-spill-x-ab"), None);
    }

    fn batch(first: u32, n: u32) -> KeyBatch {
        let mut b = KeyBatch::with_capacity(n as usize);
        for i in first..first + n {
            let key = format!("reg\\\\sip:user{i}@example.com");
            b.push(key.as_bytes(), crate::view::vbucket(key.as_bytes())).unwrap();
        }
        b
    }

    fn keys(b: &KeyBatch) -> Vec<Vec<u8>> {
        b.iter().map(|k| k.wire.bytes.to_vec()).collect()
    }

    #[tokio::test]
    async fn past_the_budget_batches_spill_and_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(0, 100).heap_bytes();
        let budget = QueueBudget::new(one * 2, dir.path().to_owned());
        let (tx, mut rx) = key_queue(&budget);
        let sent: Vec<KeyBatch> = (0..10).map(|i| batch(i * 100, 100)).collect();
        for b in &sent {
            assert!(tx.send(b.clone()).unwrap());
        }
        assert!(budget.spilled.load(Ordering::Relaxed) > 0, "past two batches, the rest went to disk");
        assert!(budget.used.load(Ordering::Relaxed) <= one * 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spill file has no name");
        // A batch sent while others are on disk goes behind them.
        for expected in &sent[..5] {
            assert_eq!(keys(&rx.recv().await.unwrap().unwrap()), keys(expected));
        }
        tx.send(batch(5000, 3)).unwrap();
        drop(tx);
        for expected in &sent[5..] {
            assert_eq!(keys(&rx.recv().await.unwrap().unwrap()), keys(expected));
        }
        assert_eq!(keys(&rx.recv().await.unwrap().unwrap()), keys(&batch(5000, 3)));
        assert!(rx.recv().await.unwrap().is_none());
        assert_eq!(budget.used.load(Ordering::Relaxed), 0, "all memory given back");
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_a_waiting_receiver_wakes() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(0, 10).heap_bytes();
        let budget = QueueBudget::new(one, dir.path().to_owned());
        let (a, mut ra) = key_queue(&budget);
        let (b, mut rb) = key_queue(&budget);
        a.send(batch(0, 10)).unwrap();
        b.send(batch(10, 10)).unwrap();
        assert!(budget.spilled.load(Ordering::Relaxed) > 0, "the second queue found the budget used");
        let waiting = tokio::spawn(async move { rb.recv().await.unwrap().map(|x| x.len()) });
        assert_eq!(ra.recv().await.unwrap().map(|x| x.len()), Some(10));
        assert_eq!(waiting.await.unwrap(), Some(10));
        drop(a);
        assert!(ra.recv().await.unwrap().is_none());
    }

    /// Issue 29: a source that dumps for ever filled the disk (4.4 GB in
    /// 40 s). The spill files of every queue together stop at their limit,
    /// and what a queue given up held counts no more.
    #[tokio::test]
    async fn the_spill_files_stop_at_their_limit_and_give_back_what_they_held() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(0, 100);
        let mut record = Vec::new();
        one.write_to(&mut record);
        let limit = record.len() as u64 * 3;
        let budget = QueueBudget::with_spill_limit(0, dir.path().to_owned(), Some(limit));
        let (a, mut ra) = key_queue(&budget);
        let (b, rb) = key_queue(&budget);
        assert!(a.send(one.clone()).unwrap() && a.send(one.clone()).unwrap() && b.send(one.clone()).unwrap());
        let e = b.send(one.clone()).unwrap_err();
        assert!(matches!(e, SpillError::Limit { limit: l, .. } if l == limit), "{e}");
        assert!(e.to_string().contains("--spill-limit"), "{e}");
        assert_eq!(budget.on_disk.load(Ordering::Relaxed), limit, "nothing written past the limit");
        drop((b, rb));
        assert_eq!(budget.on_disk.load(Ordering::Relaxed), limit / 3 * 2, "the dropped queue's batch is given back");
        assert!(a.send(one.clone()).unwrap(), "room again");
        for _ in 0..3 {
            assert_eq!(ra.recv().await.unwrap().unwrap().len(), 100);
        }
        assert_eq!(budget.on_disk.load(Ordering::Relaxed), 0, "read back, the file is emptied");
    }

    #[test]
    fn the_default_spill_limit_is_half_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let s = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        let free = s.blocks_available() * s.fragment_size();
        let limit = default_spill_limit(dir.path());
        // The free space moves while tests run: within a percent of it.
        assert!(limit.abs_diff(free / 2) <= free / 100, "{limit} against {free} free");
        assert_eq!(default_spill_limit(Path::new("/nonexistent/spill")), u64::MAX);
    }

    #[tokio::test]
    async fn an_unwritable_spill_directory_is_an_error_naming_it() {
        let budget = QueueBudget::new(0, PathBuf::from("/nonexistent/spill"));
        let (tx, _rx) = key_queue(&budget);
        let e = tx.send(batch(0, 1)).unwrap_err();
        assert!(e.to_string().starts_with("cannot queue keys in /nonexistent/spill: "), "{e}");
    }
}
