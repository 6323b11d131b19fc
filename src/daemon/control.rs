//! The control socket: a unix socket where `astaire status` and
//! `astaire wait-sync` ask the daemon how it is. One request line
//! (`status`), one JSON line back. The daemon answers from memory.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::scheduler::{Kind, Outcome};
use crate::exit::WaitExit;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The pause after a failed `accept`.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/astaire/control";

/// The longest request line read (`status\n` is 7 bytes): a client that
/// sends more gets an error at once, and the daemon holds no more of it.
pub const MAX_REQUEST: u64 = 64;
/// The longest answer `query` reads from whatever listens at the path.
pub const MAX_ANSWER: u64 = 1 << 20;

/// What the daemon reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// `idle`, `resyncing`, `not-member`, `local-unreachable` or `stopping`.
    pub state: String,
    pub local_name: String,
    /// Whether `local_name` is in `servers` or `new_servers`.
    pub member: bool,
    /// Generation of the newest resync request.
    pub requested: u64,
    /// Every request up to this generation is covered by a finished resync.
    pub completed: u64,
    pub running: Option<Kind>,
    pub pending: Option<Kind>,
    pub last: Option<Outcome>,
    pub progress: Option<ProgressStatus>,
    /// Tasks alive in the daemon's runtime (for soak tests: no growth).
    #[serde(default)]
    pub tasks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgressStatus {
    pub pairs: u64,
    pub pairs_done: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl Status {
    /// Nothing running or pending and every request up to `generation`
    /// covered by a finished resync.
    pub fn settled(&self, generation: u64) -> bool {
        self.completed >= generation && self.running.is_none() && self.pending.is_none()
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {}", self.local_name, self.state);
        if let Some(p) = &self.progress {
            s.push_str(&format!(
                ", {}/{} vbucket-source pairs, {} entries, {:.1} MB",
                p.pairs_done,
                p.pairs,
                p.entries,
                p.bytes as f64 / 1e6
            ));
        }
        if let Some(k) = self.pending {
            s.push_str(&format!(", {k:?} resync pending"));
        }
        if let Some(last) = &self.last {
            let how = if last.success {
                "succeeded".to_owned()
            } else {
                format!("FAILED ({})", last.error.as_deref().unwrap_or("?"))
            };
            s.push_str(&format!(
                "; last resync (generation {}, {:?}) {how}, {} keys in {:.1} s",
                last.generation, last.kind, last.keys_landed, last.seconds
            ));
        }
        s
    }
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Astaire daemon at {}: {why}", path.display())]
pub struct Unreachable {
    pub path: PathBuf,
    pub why: String,
}

/// Asks the daemon for its status.
pub async fn query(path: &Path) -> Result<Status, Unreachable> {
    let fail = |why: String| Unreachable { path: path.to_owned(), why };
    let ask = async {
        let mut stream = tokio::net::UnixStream::connect(path).await.map_err(|e| fail(e.to_string()))?;
        stream.write_all(b"status\n").await.map_err(|e| fail(e.to_string()))?;
        let mut line = String::new();
        BufReader::new(stream.take(MAX_ANSWER)).read_line(&mut line).await.map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&line).map_err(|e| fail(format!("bad answer: {e}")))
    };
    tokio::time::timeout(Duration::from_secs(5), ask).await.map_err(|_| fail("no answer in 5 s".into()))?
}

/// When `wait-sync` gives up.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitLimits {
    /// Give up this long after starting, progress or not.
    pub timeout: Option<Duration>,
    /// Give up once the daemon's progress has not moved for this long.
    pub stuck_after: Option<Duration>,
    /// Wait this long before the first judgement (a reload sent without
    /// waiting for delivery, as `service` does when systemd is degraded,
    /// may reach the daemon after `wait-sync` has started).
    pub grace: Duration,
}

/// What `wait-sync` makes of the daemon's answers, one after another. Pure.
#[derive(Debug)]
pub struct Waiter {
    limits: WaitLimits,
    /// The generation to wait for: the newest request when the wait began.
    target: Option<u64>,
    started: Duration,
    /// The progress last seen, and when it last moved.
    seen: Option<(ProgressMark, Duration)>,
}

/// Everything that moves while the daemon works.
type ProgressMark = (u64, u64, Option<Kind>, Option<Kind>, Option<(u64, u64, u64)>);

/// A verdict of [`Waiter::judge`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    Done(WaitExit),
    /// Gave up; why.
    GaveUp(String),
}

impl Waiter {
    /// A wait starting at `now` (any clock, as long as it is the one
    /// `judge` is given).
    pub fn new(limits: WaitLimits, now: Duration) -> Waiter {
        Waiter { limits, target: None, started: now, seen: None }
    }

    /// Whether the grace is over, so the daemon's answers count.
    pub fn judging(&self, now: Duration) -> bool {
        now.saturating_sub(self.started) >= self.limits.grace
    }

    /// The verdict on the daemon's answer `status`, read at `now`.
    pub fn judge(&mut self, status: &Status, now: Duration) -> Verdict {
        if !self.judging(now) {
            return Verdict::Wait;
        }
        let target = *self.target.get_or_insert(status.requested);
        if status.settled(target) {
            return Verdict::Done(match &status.last {
                Some(last) if !last.success => WaitExit::Failed,
                _ => WaitExit::Succeeded,
            });
        }
        let mark = (
            status.requested,
            status.completed,
            status.running,
            status.pending,
            status.progress.as_ref().map(|p| (p.pairs_done, p.entries, p.bytes)),
        );
        let moved_at = match self.seen.take() {
            Some((before, at)) if before == mark => at,
            _ => now,
        };
        self.seen = Some((mark, moved_at));
        if let Some(limit) = self.limits.stuck_after.filter(|l| now.saturating_sub(moved_at) >= *l) {
            return Verdict::GaveUp(format!("no progress for {} s", limit.as_secs()));
        }
        if let Some(limit) = self.limits.timeout.filter(|l| now.saturating_sub(self.started) >= *l) {
            return Verdict::GaveUp(format!("timed out after {} s", limit.as_secs_f64()));
        }
        Verdict::Wait
    }
}

/// Waits until every resync requested before this call (and its grace)
/// has finished, and none is running or pending; prints progress with
/// `report`.
pub async fn wait_sync(path: &Path, limits: WaitLimits, mut report: impl FnMut(&Status)) -> WaitExit {
    let clock = tokio::time::Instant::now();
    let mut waiter = Waiter::new(limits, Duration::ZERO);
    let mut last_report = None::<tokio::time::Instant>;
    loop {
        let status = match query(path).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("astaire: {e}");
                return WaitExit::Unreachable;
            }
        };
        match waiter.judge(&status, clock.elapsed()) {
            Verdict::Done(exit) => {
                report(&status);
                return exit;
            }
            Verdict::GaveUp(why) => {
                eprintln!("astaire: wait-sync gave up ({why}): {}", status.summary());
                return WaitExit::TimedOut;
            }
            Verdict::Wait => {}
        }
        if last_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            report(&status);
            last_report = Some(tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Binds the control socket at `path` (replacing a stale one), mode 0660.
/// Only a socket is ever removed: anything else at the path (a file, a
/// directory, a symlink, which is not followed) is an error, untouched.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket nobody answers on is left over from a crash.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another daemon answers on it"));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a socket is there; not removing it",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves the socket: each `status` line is answered by `answer`, which
/// asks the daemon's main loop.
pub async fn serve<F, Fut>(listener: tokio::net::UnixListener, answer: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<Status>> + Send,
{
    let mut failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failing = false;
                stream
            }
            Err(e) => {
                // Out of descriptors (EMFILE) or memory: nothing to accept
                // until something closes. Wait rather than spin a core.
                if !failing {
                    tracing::warn!("control socket: cannot accept: {e}");
                    failing = true;
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            let request = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
            if !matches!(request, Ok(Ok(_))) || line.trim() != "status" {
                let _ = write.write_all(b"{\"error\":\"unknown request\"}\n").await;
                return;
            }
            if let Some(status) = answer().await {
                let mut text = serde_json::to_string(&status).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(requested: u64, completed: u64, running: bool, done: u64, last_ok: Option<bool>) -> Status {
        Status {
            state: if running { "resyncing" } else { "idle" }.into(),
            local_name: "n:1".into(),
            member: true,
            requested,
            completed,
            running: running.then_some(Kind::Minimal),
            pending: None,
            last: last_ok.map(|success| Outcome {
                generation: completed,
                kind: Kind::Minimal,
                success,
                error: None,
                failed_vbuckets: Vec::new(),
                keys_landed: 0,
                seconds: 0.0,
            }),
            progress: running.then_some(ProgressStatus { pairs: 10, pairs_done: done, entries: done, bytes: 0 }),
            tasks: 0,
        }
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_wait_ends_with_the_resync_it_began_with_and_its_result() {
        let mut w = Waiter::new(WaitLimits::default(), s(0));
        assert_eq!(w.judge(&status(2, 1, true, 3, Some(true)), s(0)), Verdict::Wait);
        assert_eq!(w.judge(&status(2, 2, false, 0, Some(false)), s(1)), Verdict::Done(WaitExit::Failed));
        let mut w = Waiter::new(WaitLimits::default(), s(0));
        assert_eq!(w.judge(&status(2, 2, false, 0, Some(true)), s(0)), Verdict::Done(WaitExit::Succeeded));
    }

    #[test]
    fn nothing_is_judged_during_the_grace() {
        let limits = WaitLimits { grace: s(2), ..WaitLimits::default() };
        let mut w = Waiter::new(limits, s(10));
        // Idle before the reload lands: not taken as done.
        assert_eq!(w.judge(&status(1, 1, false, 0, Some(true)), s(11)), Verdict::Wait);
        // The reload landed: its generation is the one waited for.
        assert_eq!(w.judge(&status(2, 1, true, 0, Some(true)), s(12)), Verdict::Wait);
        assert_eq!(w.judge(&status(2, 2, false, 0, Some(true)), s(13)), Verdict::Done(WaitExit::Succeeded));
    }

    #[test]
    fn a_stuck_resync_is_given_up_but_a_slow_one_that_moves_is_not() {
        let limits = WaitLimits { stuck_after: Some(s(600)), ..WaitLimits::default() };
        let mut w = Waiter::new(limits, s(0));
        for t in 0..30 {
            // Moving by one pair every 100 s: never stuck.
            assert_eq!(w.judge(&status(1, 0, true, t, None), s(t * 100)), Verdict::Wait, "{t}");
        }
        assert_eq!(w.judge(&status(1, 0, true, 29, None), s(2900 + 599)), Verdict::Wait);
        assert_eq!(
            w.judge(&status(1, 0, true, 29, None), s(2900 + 600)),
            Verdict::GaveUp("no progress for 600 s".into())
        );
        let mut w = Waiter::new(WaitLimits { timeout: Some(s(5)), ..WaitLimits::default() }, s(0));
        assert_eq!(w.judge(&status(1, 0, true, 1, None), s(4)), Verdict::Wait);
        assert!(matches!(w.judge(&status(1, 0, true, 2, None), s(5)), Verdict::GaveUp(_)));
    }
    use std::os::unix::fs::FileTypeExt;

    /// Issue 15: `bind` removed any file at the path that did not answer.
    #[tokio::test]
    async fn bind_replaces_a_stale_socket_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("control");
        std::fs::write(&file, b"precious").unwrap();
        let err = bind(&file).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"precious", "left alone");

        let target = dir.path().join("target");
        std::fs::write(&target, b"also precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(bind(&link).is_err());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the symlink stays");
        assert_eq!(std::fs::read(&target).unwrap(), b"also precious");

        let stale = dir.path().join("stale");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap()); // leaves the socket file
        let listener = bind(&stale).expect("a socket nobody answers on is replaced");
        assert!(std::fs::symlink_metadata(&stale).unwrap().file_type().is_socket());
        let again = bind(&stale).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse, "a live one is not");
        drop(listener);
    }

    /// Issue 15: `read_line` had no limit (20 clients sending 200 MB each
    /// took 2.8 GB). Past 64 bytes without a newline the answer is an error,
    /// at once, while the client is still sending.
    #[tokio::test]
    async fn an_endless_request_gets_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let listener = bind(&path).unwrap();
        tokio::spawn(serve(listener, || async { None }));
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        let flood = tokio::spawn(async move {
            let chunk = vec![b'a'; 1 << 16];
            let mut sent = 0usize;
            while sent < 64 << 20 && write.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            sent
        });
        let mut line = String::new();
        let answered = tokio::time::timeout(Duration::from_secs(2), BufReader::new(read).read_line(&mut line)).await;
        assert!(matches!(answered, Ok(Ok(_))), "answered within 2 s (the request timeout is 5 s)");
        assert_eq!(line, "{\"error\":\"unknown request\"}\n");
        let sent = flood.await.unwrap();
        assert!(sent < 64 << 20, "the daemon stopped reading: the flood was cut off after {sent} bytes");
    }
}
