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

/// Waits until every resync requested before this call has finished, and
/// none is running or pending; prints progress with `report`.
pub async fn wait_sync(path: &Path, timeout: Option<Duration>, mut report: impl FnMut(&Status)) -> WaitExit {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let first = match query(path).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("astaire: {e}");
            return WaitExit::Unreachable;
        }
    };
    let target = first.requested;
    let mut status = first;
    let mut last_report = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        if status.settled(target) {
            report(&status);
            return match &status.last {
                Some(last) if !last.success => WaitExit::Failed,
                _ => WaitExit::Succeeded,
            };
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            report(&status);
            last_report = tokio::time::Instant::now();
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            eprintln!("astaire: wait-sync timed out: {}", status.summary());
            return WaitExit::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = match query(path).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("astaire: {e}");
                return WaitExit::Unreachable;
            }
        };
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
