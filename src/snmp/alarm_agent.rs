//! Alarm 5501 through Clearwater's alarm agent (`clearwater-snmp-alarm-agent`),
//! as the original Astaire reported it: a ZeroMQ REQ to the agent's socket
//! with the frames `issue-alarm`, `astaire`, `5501.5` (raise, MINOR) or
//! `5501.1` (clear); the agent answers `ok`, keeps alarmActiveTable and the
//! model tables, and sends the INFORMs itself. The last state is sent again
//! every 30 s, so an agent that restarted learns it.
//!
//! The REQ socket is our own ([`super::zmtp`], ZMTP 3.0 over the unix
//! socket, which the agent's libzmq 4 speaks), so that what the peer sends
//! is bounded: a frame or message past [`Limits::ALARM_AGENT`] drops the
//! connection with a warning, and the link carries on (issue 29). Every
//! wait is bounded too: an agent that does not answer costs a reconnect,
//! never a resync.
// Reads network input: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::inform::Notification;
use super::zmtp::{Limits, Progress, ReqClient, ZmtpError};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Where the agent listens on a Clearwater node.
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/clearwater/alarms";
/// The issuer the original daemon gave.
pub const ISSUER: &str = "astaire";
/// How often the last state is sent again (the original's re-raiser).
pub const RESEND: Duration = Duration::from_secs(30);
/// How long one request may take: connect, send and the agent's `ok`.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How soon a request that failed is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Whether and how to report through the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The agent's socket; `None` never uses the agent.
    pub socket: Option<PathBuf>,
    pub resend: Duration,
}

impl Default for AgentSettings {
    fn default() -> AgentSettings {
        AgentSettings { socket: Some(PathBuf::from(DEFAULT_AGENT_SOCKET)), resend: RESEND }
    }
}

impl AgentSettings {
    /// The agent's socket, when it is there to be used now.
    pub fn present(&self) -> Option<&Path> {
        self.socket.as_deref().filter(|p| is_socket(p))
    }
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// The request's frames for a notification: the alarm identifier is
/// `<index>.<severity>`, severity ITU MINOR 5 when raised, CLEARED 1.
pub fn request(n: Notification) -> [String; 3] {
    let severity = if n.raised { 5 } else { 1 };
    ["issue-alarm".into(), ISSUER.into(), format!("{}.{severity}", n.index)]
}

/// Changes held while the agent cannot take them; the oldest go first.
/// (Changes alternate raise and clear, so the newest state survives.)
const HELD: usize = 16;

/// The link to the agent: each change goes out at once, in order, and
/// the last state again every `resend`.
pub struct AgentLink {
    changes: mpsc::UnboundedSender<(u64, Notification)>,
    /// The number of changes notified so far.
    notified: AtomicU64,
    /// The number of the last change the agent answered `ok` to.
    answered: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl AgentLink {
    pub fn spawn(socket: PathBuf, resend: Duration) -> AgentLink {
        info!(socket = %socket.display(), "alarms go to Clearwater's alarm agent");
        let (changes, rx) = mpsc::unbounded_channel();
        let (tx, answered) = watch::channel(0);
        let task = tokio::spawn(run(socket, resend, rx, tx));
        AgentLink { changes, notified: AtomicU64::new(0), answered, task }
    }

    /// The alarm's new state.
    pub fn notify(&self, n: Notification) {
        let seq = self.notified.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.changes.send((seq, n));
    }

    /// Waits at most `linger` for the agent to answer every change.
    pub async fn flush(&self, linger: Duration) -> bool {
        let want = self.notified.load(Ordering::SeqCst);
        let mut answered = self.answered.clone();
        let done = async move { answered.wait_for(|a| *a >= want).await.is_ok() };
        tokio::time::timeout(linger, done).await.unwrap_or(false)
    }

    pub fn shutdown(self) {
        self.task.abort();
    }
}

async fn run(
    path: PathBuf,
    resend: Duration,
    mut changes: mpsc::UnboundedReceiver<(u64, Notification)>,
    answered: watch::Sender<u64>,
) {
    let mut socket: Option<AgentConnection> = None;
    let mut pending: VecDeque<(u64, Notification)> = VecDeque::new();
    let mut last: Option<(u64, Notification)> = None;
    let mut next = None::<Instant>;
    let mut failing = false;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(c) => pending.push_back(c),
                None => return,
            },
            _ = sleep_until(next) => {}
        }
        while let Ok(c) = changes.try_recv() {
            pending.push_back(c);
        }
        while pending.len() > HELD {
            pending.pop_front();
        }
        let due = next.is_some_and(|t| t <= Instant::now());
        let Some((seq, n)) = pending.front().copied().or(if due { last } else { None }) else { continue };
        let frames = request(n);
        let outcome = match tokio::time::timeout(ANSWER_WITHIN, issue(&mut socket, &path, &frames)).await {
            Ok(result) => result,
            Err(_) => Err(AgentError::Timeout(ANSWER_WITHIN.as_secs())),
        };
        match outcome {
            Ok(()) => {
                if failing {
                    info!(socket = %path.display(), "the alarm agent answers again");
                }
                failing = false;
                debug!(alarm = %frames[2], "the alarm agent took the alarm");
                if pending.front().is_some_and(|(s, _)| *s == seq) {
                    pending.pop_front();
                }
                last = Some((seq, n));
                answered.send_modify(|a| *a = (*a).max(seq));
                next = Some(if pending.is_empty() { Instant::now() + resend } else { Instant::now() });
            }
            Err(why) => {
                if !failing {
                    warn!(socket = %path.display(), "alarm {} not delivered to the alarm agent: {why}; retrying", frames[2]);
                }
                failing = true;
                // Mid-request, or the peer broke the protocol: only a new
                // connection can send.
                socket = None;
                next = Some(Instant::now() + RETRY_AFTER.min(resend));
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a request did not get its `ok`.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("the agent closed the connection")]
    Closed,
    #[error("the agent {0}; connection dropped")]
    Protocol(#[from] ZmtpError),
    #[error("answered {0:?}")]
    Answered(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
}

/// One connection to the agent: the socket and the REQ protocol's state.
struct AgentConnection {
    stream: UnixStream,
    client: ReqClient,
}

impl AgentConnection {
    /// Connects and completes the handshake.
    async fn open(path: &Path) -> Result<AgentConnection, AgentError> {
        let mut stream = UnixStream::connect(path).await.map_err(AgentError::Connect)?;
        let (client, hello) = ReqClient::new(Limits::ALARM_AGENT);
        stream.write_all(&hello).await.map_err(AgentError::Io)?;
        let mut conn = AgentConnection { stream, client };
        match conn.progress().await? {
            Progress::Ready => Ok(conn),
            _ => Err(ZmtpError::Unasked.into()),
        }
    }

    /// Whether the agent closed this connection since its last answer (a
    /// restarted agent): nothing was sent on it then, so a new one is taken
    /// without a word. Anything it sent unasked breaks the protocol.
    fn closed(&mut self) -> Result<bool, AgentError> {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Ok(0) => Ok(true),
            Ok(_) => Err(ZmtpError::Unasked.into()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(_) => Ok(true),
        }
    }

    /// Sends `frames` as a request; its reply's frames.
    async fn ask(&mut self, frames: &[String]) -> Result<Vec<Vec<u8>>, AgentError> {
        let bytes = self.client.request(frames);
        self.stream.write_all(&bytes).await.map_err(AgentError::Io)?;
        match self.progress().await? {
            Progress::Reply(reply) if self.client.decoder().buffered() == 0 => Ok(reply),
            // A second message behind the reply, or no reply at all.
            _ => Err(ZmtpError::Unasked.into()),
        }
    }

    /// Reads until the protocol has something to say, never more than
    /// the decoder has room for.
    async fn progress(&mut self) -> Result<Progress, AgentError> {
        let mut chunk = [0u8; 2048];
        loop {
            match self.client.poll()? {
                Progress::Wait => {}
                done => return Ok(done),
            }
            let room = self.client.decoder().room().min(chunk.len());
            let into = chunk.get_mut(..room).unwrap_or_default();
            let n = self.stream.read(into).await.map_err(AgentError::Io)?;
            if n == 0 {
                return Err(AgentError::Closed);
            }
            self.client.decoder().received(into.get(..n).unwrap_or_default());
        }
    }
}

/// One request and its answer, connecting first if needed.
async fn issue(socket: &mut Option<AgentConnection>, path: &Path, frames: &[String; 3]) -> Result<(), AgentError> {
    if let Some(conn) = socket.as_mut() {
        if conn.closed()? {
            *socket = None;
        }
    }
    let conn = match socket {
        Some(conn) => conn,
        None => socket.insert(AgentConnection::open(path).await?),
    };
    let reply = conn.ask(frames).await?;
    match reply.first().map(Vec::as_slice) {
        Some(b"ok") => Ok(()),
        other => Err(AgentError::Answered(super::zmtp::shown(other.unwrap_or_default()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::inform::RESYNC_ALARM_INDEX;

    #[test]
    fn raise_is_minor_and_clear_is_cleared_as_the_original_issued_them() {
        let raise = Notification { index: RESYNC_ALARM_INDEX, raised: true };
        assert_eq!(request(raise), ["issue-alarm", "astaire", "5501.5"]);
        let clear = Notification { index: RESYNC_ALARM_INDEX, raised: false };
        assert_eq!(request(clear), ["issue-alarm", "astaire", "5501.1"]);
    }

    /// The definitions the package installs pass the agent's checks at load
    /// (cpp-common src/json_alarms.cpp): its cause and severity names, each
    /// level's five texts, details and description at most 255 bytes, the
    /// others 4096, and a cleared level beside a raised one.
    #[test]
    fn the_shipped_alarm_definitions_pass_the_agents_checks() {
        let text = include_str!("../../packaging/clearwater/astaire_alarms.json");
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let alarms = json["alarms"].as_array().unwrap();
        let indexes: Vec<u64> = alarms.iter().map(|a| a["index"].as_u64().unwrap()).collect();
        assert_eq!(indexes, [5500, 5501]);
        let severities = ["cleared", "critical", "indeterminate", "major", "minor", "warning"];
        for alarm in alarms {
            let cause = alarm["cause"].as_str().unwrap().to_lowercase();
            assert!(["database_inconsistency", "software_error", "underlying_resource_unavailable"]
                .contains(&cause.as_str()));
            assert!(alarm["name"].as_str().is_some_and(|n| n.starts_with("ASTAIRE_")));
            let levels = alarm["levels"].as_array().unwrap();
            let mut cleared = 0;
            for level in levels {
                let severity = level["severity"].as_str().unwrap().to_lowercase();
                assert!(severities.contains(&severity.as_str()), "{severity}");
                cleared += usize::from(severity == "cleared");
                for (field, limit) in
                    [("details", 255), ("description", 255), ("cause", 4096), ("effect", 4096), ("action", 4096)]
                {
                    let t =
                        level[field].as_str().unwrap_or_else(|| panic!("{} {severity}: no {field}", alarm["index"]));
                    assert!(
                        !t.is_empty() && t.len() <= limit,
                        "{} {severity} {field}: {} bytes",
                        alarm["index"],
                        t.len()
                    );
                }
            }
            assert_eq!((cleared, levels.len()), (1, 2), "{}: a cleared level and a raised one", alarm["index"]);
        }
        let raised = &alarms[1]["levels"][1];
        assert_eq!(raised["description"], "Astaire: Memcached database resynchronization in progress.");
        assert_eq!(alarms[1]["levels"][0]["description"], "Astaire: Memcached database synchronized.");
    }

    #[test]
    fn only_a_socket_at_the_path_counts_as_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms");
        let settings = AgentSettings { socket: Some(path.clone()), resend: RESEND };
        assert_eq!(settings.present(), None, "nothing there");
        std::fs::write(&path, "").unwrap();
        assert_eq!(settings.present(), None, "a plain file");
        std::fs::remove_file(&path).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(settings.present(), Some(path.as_path()));
        assert_eq!(AgentSettings { socket: None, resend: RESEND }.present(), None, "--alarm-agent none");
    }
}
