//! The control socket: a unix socket where `astaire status` and
//! `astaire wait-sync` ask the daemon how it is. One request line
//! (`status`), one JSON line back. The daemon answers from memory.
//!
//!
//! Clients cannot take the daemon's file descriptors (issue 29): at most
//! [`ControlLimits::connections`] are open at once (a quarter of the open
//! files limit, at most 64), so the copy always has the rest; a client has
//! 1 s to send its request line; past the cap, the client that has waited
//! longest without asking is closed for the new one (see [`serve`]), and
//! `query` takes a connection closed unanswered, or answered `busy`, as
//! "ask again shortly".
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::scheduler::{Kind, Outcome};
use crate::exit::WaitExit;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The pause after a failed `accept`.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The most control connections open at once, however high the limit.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request line (`astaire status`
/// sends it as soon as it is connected), and the daemon to write the answer.
pub const REQUEST_WITHIN: Duration = Duration::from_secs(1);
/// The answer to a client past the cap.
const BUSY: &[u8] = b"{\"error\":\"busy\"}\n";
/// How long `query` keeps asking a daemon that answers `busy`, and how often.
const QUERY_WITHIN: Duration = Duration::from_secs(5);
const BUSY_RETRY: Duration = Duration::from_millis(50);

/// What the control socket allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// Connections open at once.
    pub connections: usize,
    /// For the request line, and again for writing the answer.
    pub request_within: Duration,
}

impl ControlLimits {
    /// For a process that may open `open_files` descriptors: control
    /// clients get at most a quarter of them (at most [`MAX_CONNECTIONS`],
    /// at least 1), so the copy, which opens a few connections per source,
    /// a spill file and the settings file, keeps three quarters. Pure.
    pub fn for_open_files(open_files: u64) -> ControlLimits {
        let quarter = usize::try_from(open_files / 4).unwrap_or(usize::MAX);
        ControlLimits { connections: quarter.clamp(1, MAX_CONNECTIONS), request_within: REQUEST_WITHIN }
    }
}

impl Default for ControlLimits {
    fn default() -> ControlLimits {
        ControlLimits { connections: MAX_CONNECTIONS, request_within: REQUEST_WITHIN }
    }
}

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

/// An error line from the daemon instead of a status.
#[derive(Debug, serde::Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// Asks the daemon for its status; a daemon busy with other clients (or
/// whose listen backlog is full) is asked again until 5 s have passed.
pub async fn query(path: &Path) -> Result<Status, Unreachable> {
    let fail = |why: String| Unreachable { path: path.to_owned(), why };
    // What the daemon did last, for when it never answers.
    let mut turned_away = "no answer";
    let ask = async {
        loop {
            let mut stream = match tokio::net::UnixStream::connect(path).await {
                Ok(stream) => stream,
                // The listen backlog is full (EAGAIN): busy too.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    turned_away = "its listen backlog full";
                    tokio::time::sleep(BUSY_RETRY).await;
                    continue;
                }
                Err(e) => return Err(fail(e.to_string())),
            };
            // A busy daemon may have answered and closed before the request
            // is written (EPIPE): its answer is still there to read.
            let sent = stream.write_all(b"status\n").await;
            let mut line = String::new();
            let read = BufReader::new(stream.take(MAX_ANSWER)).read_line(&mut line).await;
            if line.is_empty() {
                // Closed without a word (EPIPE, or EOF): the daemon made
                // room for a newer client before reading this one. Ask again.
                if let Some(e) = sent.err().or(read.err()).filter(|e| !closed_by_peer(e)) {
                    return Err(fail(e.to_string()));
                }
                turned_away = "every connection closed unanswered";
                tokio::time::sleep(BUSY_RETRY).await;
                continue;
            }
            match serde_json::from_str::<ErrorAnswer>(&line) {
                Ok(e) if e.error == "busy" => {
                    turned_away = "answered busy";
                    tokio::time::sleep(BUSY_RETRY).await;
                }
                Ok(e) => return Err(fail(format!("it answered {:?}", e.error))),
                Err(_) => return serde_json::from_str(&line).map_err(|e| fail(format!("bad answer: {e}"))),
            }
        }
    };
    let answered = tokio::time::timeout(QUERY_WITHIN, ask).await;
    answered.map_err(|_| fail(format!("{turned_away} for {} s", QUERY_WITHIN.as_secs())))?
}

/// Whether `e` says the other end closed the connection.
fn closed_by_peer(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
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

/// Why `accept` failed, said once per run of failures, and when it
/// works again. Pure.
#[derive(Debug, Default)]
struct AcceptTrouble {
    failed: u64,
}

impl AcceptTrouble {
    /// What to log for a failed accept, if anything.
    fn failed(&mut self, e: &std::io::Error) -> Option<String> {
        self.failed += 1;
        (self.failed == 1).then(|| {
            format!(
                "control socket: cannot accept a connection: {e}; trying again every {} ms",
                ACCEPT_RETRY.as_millis()
            )
        })
    }

    /// What to log for an accept that worked, if anything.
    fn accepted(&mut self) -> Option<String> {
        let failed = std::mem::take(&mut self.failed);
        (failed > 0).then(|| format!("control socket: accepting again after {failed} failed tries"))
    }
}

/// What the cap cost clients: said once at first, then at most one count
/// a minute while it goes on. Pure.
#[derive(Debug, Default)]
struct Crowding {
    /// Idle clients closed to make room, and new ones answered busy, since
    /// the last word.
    closed: u64,
    busy: u64,
    said_at: Option<std::time::Instant>,
}

/// How often the cap's cost is counted in the log while it goes on.
const CROWDING_SAID_EVERY: Duration = Duration::from_secs(60);

impl Crowding {
    /// One more client closed (`idle`) or answered busy at `now`, with
    /// `cap` connected: what to log, if anything.
    fn turned_away(&mut self, idle: bool, cap: usize, now: std::time::Instant) -> Option<String> {
        if idle {
            self.closed += 1;
        } else {
            self.busy += 1;
        }
        let said = match self.said_at {
            Some(at) if now.saturating_duration_since(at) < CROWDING_SAID_EVERY => return None,
            Some(at) if self.closed + self.busy > 1 => format!(
                "control socket: in the last {} s, {} clients that had asked nothing were closed to make room and \
                 {} answered busy ({cap} connected at most)",
                now.saturating_duration_since(at).as_secs(),
                self.closed,
                self.busy
            ),
            _ => format!(
                "control socket: {cap} clients connected already; the one that has waited longest without asking \
                 anything is closed for each new one (or, if all are being answered, the new one is answered busy)"
            ),
        };
        (self.closed, self.busy, self.said_at) = (0, 0, Some(now));
        Some(said)
    }
}

/// How long a new client waits for the slot of the idle one closed for it.
const MAKE_ROOM_WITHIN: Duration = Duration::from_millis(200);

/// Serves the socket: each `status` line is answered by `answer`, which
/// asks the daemon's main loop.
///
/// At most `limits.connections` clients are open at once. Past that, the
/// client that has waited longest without sending its request line is
/// closed to make room: `astaire status` sends its line as soon as it is
/// connected, so a crowd of idle connections, even one that reconnects as
/// fast as it is closed, costs a real client nothing. Were the newest
/// refused instead, such a crowd would hold every slot (measured: `status`
/// failed after its 5 s with 1,100 idle clients reconnecting); left in the
/// listen backlog, a real client would queue behind the whole crowd. Only
/// when every client is being answered is the new one answered busy, which
/// `query` takes as "ask again shortly".
pub async fn serve<F, Fut>(listener: tokio::net::UnixListener, limits: ControlLimits, answer: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<Status>> + Send,
{
    use std::collections::VecDeque;
    use tokio::sync::{oneshot, Semaphore};
    let slots = std::sync::Arc::new(Semaphore::new(limits.connections));
    // The clients still waiting for their request line, oldest first: a
    // send closes one. (A client that has its line, or is gone, has dropped
    // its receiver.)
    let mut idle: VecDeque<oneshot::Sender<()>> = VecDeque::new();
    let (mut trouble, mut crowding) = (AcceptTrouble::default(), Crowding::default());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                if let Some(said) = trouble.accepted() {
                    tracing::info!("{said}");
                }
                stream
            }
            Err(e) => {
                // Out of descriptors (EMFILE) or memory: nothing to accept
                // until something closes. Wait rather than spin a core.
                if let Some(said) = trouble.failed(&e) {
                    tracing::warn!("{said}");
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let mut closed = false;
                while let Some(oldest) = idle.pop_front() {
                    if oldest.send(()).is_ok() {
                        closed = true;
                        break;
                    }
                }
                let slot = match closed {
                    true => tokio::time::timeout(MAKE_ROOM_WITHIN, slots.clone().acquire_owned()).await.ok(),
                    false => None,
                };
                let slot = slot.and_then(Result::ok);
                let now = std::time::Instant::now();
                if let Some(said) = crowding.turned_away(slot.is_some(), limits.connections, now) {
                    tracing::warn!("{said}");
                }
                slot
            }
        };
        let Some(slot) = slot else {
            // A word and the descriptor back at once. The answer is far
            // smaller than a socket buffer, so the write never waits; if it
            // cannot be made, the close says enough.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let (close, closed) = oneshot::channel();
        idle.retain(|client| !client.is_closed());
        idle.push_back(close);
        let answer = answer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            let request = tokio::select! {
                request = tokio::time::timeout(limits.request_within, reader.read_line(&mut line)) => request,
                // Closed to make room for a newer client.
                _ = closed => return,
            };
            // Silent past its time, or gone: closed without a word.
            let Ok(Ok(_)) = request else { return };
            let reply = if line.trim() != "status" {
                b"{\"error\":\"unknown request\"}\n".to_vec()
            } else if let Some(status) = answer().await {
                let mut text = serde_json::to_string(&status).unwrap_or_default();
                text.push('\n');
                text.into_bytes()
            } else {
                return;
            };
            let _ = tokio::time::timeout(limits.request_within, write.write_all(&reply)).await;
        });
        // Let the new client read the line it may have sent already before
        // more are accepted: it is then no longer idle, so a crowd
        // arriving behind it cannot close it.
        tokio::task::yield_now().await;
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
        // A request timeout far past the 2 s the answer must come in.
        let limits = ControlLimits { request_within: Duration::from_secs(10), ..ControlLimits::default() };
        tokio::spawn(serve(listener, limits, || async { None }));
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
        assert!(matches!(answered, Ok(Ok(_))), "answered within 2 s");
        assert_eq!(line, "{\"error\":\"unknown request\"}\n");
        let sent = flood.await.unwrap();
        assert!(sent < 64 << 20, "the daemon stopped reading: the flood was cut off after {sent} bytes");
    }

    #[test]
    fn control_clients_get_a_quarter_of_the_open_files_and_at_most_64() {
        assert_eq!(ControlLimits::for_open_files(65536).connections, 64);
        assert_eq!(ControlLimits::for_open_files(1024).connections, 64);
        assert_eq!(ControlLimits::for_open_files(256).connections, 64);
        assert_eq!(ControlLimits::for_open_files(100).connections, 25);
        assert_eq!(ControlLimits::for_open_files(3).connections, 1);
        assert_eq!(ControlLimits::for_open_files(u64::MAX).connections, 64);
    }

    #[test]
    fn accept_failures_are_said_once_and_the_recovery_once() {
        let mut t = AcceptTrouble::default();
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(t.accepted(), None);
        let said = t.failed(&emfile).unwrap();
        assert!(said.contains("Too many open files (os error 24)"), "{said}");
        assert_eq!((t.failed(&emfile), t.failed(&emfile)), (None, None));
        assert_eq!(t.accepted().as_deref(), Some("control socket: accepting again after 3 failed tries"));
        assert_eq!(t.accepted(), None);
    }

    #[test]
    fn crowding_is_said_at_once_then_counted_once_a_minute() {
        let mut c = Crowding::default();
        let t0 = std::time::Instant::now();
        assert!(c.turned_away(true, 64, t0).unwrap().contains("64 clients connected already"));
        for n in 1..100 {
            assert_eq!(c.turned_away(n % 10 != 0, 64, t0 + Duration::from_millis(n * 100)), None);
        }
        let said = c.turned_away(false, 64, t0 + s(60)).unwrap();
        assert!(said.contains("in the last 60 s, 90 clients") && said.contains("and 10 answered busy"), "{said}");
        assert_eq!(c.turned_away(true, 64, t0 + s(61)), None);
        // Quiet for a while, then once more: said at once again.
        let mut c = Crowding::default();
        c.turned_away(true, 64, t0);
        assert!(c.turned_away(true, 64, t0 + s(600)).unwrap().contains("64 clients connected already"));
    }

    async fn connect(path: &Path) -> tokio::net::UnixStream {
        tokio::net::UnixStream::connect(path).await.unwrap()
    }

    /// Whether the daemon closed `stream` within `within` without a word.
    async fn closed_within(stream: &mut tokio::net::UnixStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(within, stream.read(&mut buf)).await, Ok(Ok(0)))
    }

    fn a_status() -> Status {
        Status {
            state: "idle".into(),
            local_name: "n:1".into(),
            member: true,
            requested: 1,
            completed: 1,
            running: None,
            pending: None,
            last: None,
            progress: None,
            tasks: 0,
        }
    }

    /// Issue 29: idle clients held the daemon's descriptors. Past the cap,
    /// the client that has waited longest without asking is closed for
    /// the new one, so `query` is answered at once; an idle client is
    /// closed after `request_within` anyway.
    #[tokio::test]
    async fn past_the_cap_the_oldest_idle_client_makes_room_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let limits = ControlLimits { connections: 2, request_within: Duration::from_secs(3) };
        tokio::spawn(serve(bind(&path).unwrap(), limits, || async { Some(a_status()) }));
        let mut first = connect(&path).await;
        let mut second = connect(&path).await;
        let started = std::time::Instant::now();
        assert_eq!(query(&path).await.unwrap(), a_status());
        assert!(started.elapsed() < Duration::from_secs(1), "answered in {:?}", started.elapsed());
        assert!(closed_within(&mut first, Duration::from_secs(1)).await, "the oldest idle client made room");
        // The second is still open, until its 3 s are up.
        assert!(!closed_within(&mut second, Duration::from_millis(500)).await, "the newer one is kept");
        assert!(closed_within(&mut second, Duration::from_secs(4)).await, "closed once its time is up");
    }

    /// With every slot taken by a client being answered, nobody is idle:
    /// the new client is answered busy at once, and `query` asks again.
    #[tokio::test]
    async fn with_every_client_being_answered_a_new_one_is_told_busy_and_query_asks_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let limits = ControlLimits { connections: 1, request_within: Duration::from_secs(10) };
        let (release_tx, release) = tokio::sync::watch::channel(false);
        let answer = move || {
            let mut release = release.clone();
            async move {
                let _ = release.wait_for(|r| *r).await;
                Some(a_status())
            }
        };
        tokio::spawn(serve(bind(&path).unwrap(), limits, answer));
        // The one slot: a client whose answer is held back.
        let mut held = connect(&path).await;
        held.write_all(b"status\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut late = connect(&path).await;
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(1), BufReader::new(&mut late).read_line(&mut line)).await;
        assert!(matches!(read, Ok(Ok(_))), "answered at once");
        assert_eq!(line, "{\"error\":\"busy\"}\n");
        // query keeps asking while busy; once the slot is free it is answered.
        let asking = tokio::spawn({
            let path = path.clone();
            async move { query(&path).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!asking.is_finished(), "still asking");
        release_tx.send(true).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), asking).await.expect("answered once free");
        assert_eq!(got.unwrap().unwrap(), a_status());
    }
}
