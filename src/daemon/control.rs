//! The control socket: a unix socket where `astaire status` and
//! `astaire wait-sync` ask the daemon how it is. One request line
//! (`status`), one JSON line back. The daemon answers from memory.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::scheduler::{Kind, Outcome};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/astaire/control";

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
        BufReader::new(stream).read_line(&mut line).await.map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&line).map_err(|e| fail(format!("bad answer: {e}")))
    };
    tokio::time::timeout(Duration::from_secs(5), ask).await.map_err(|_| fail("no answer in 5 s".into()))?
}

/// Exit codes of `wait-sync`.
pub mod wait_exit {
    pub const SUCCEEDED: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const TIMED_OUT: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
}

/// Waits until every resync requested before this call has finished, and
/// none is running or pending; prints progress with `report`.
pub async fn wait_sync(path: &Path, timeout: Option<Duration>, mut report: impl FnMut(&Status)) -> u8 {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let first = match query(path).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("astaire: {e}");
            return wait_exit::UNREACHABLE;
        }
    };
    let target = first.requested;
    let mut status = first;
    let mut last_report = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        if status.settled(target) {
            report(&status);
            return match &status.last {
                Some(last) if !last.success => wait_exit::FAILED,
                _ => wait_exit::SUCCEEDED,
            };
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            report(&status);
            last_report = tokio::time::Instant::now();
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            eprintln!("astaire: wait-sync timed out: {}", status.summary());
            return wait_exit::TIMED_OUT;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = match query(path).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("astaire: {e}");
                return wait_exit::UNREACHABLE;
            }
        };
    }
}

/// Binds the control socket at `path` (replacing a stale one), mode 0660.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A socket nobody answers on is left over from a crash.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another daemon answers on it"));
        }
        std::fs::remove_file(path)?;
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
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let answer = answer.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read);
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
