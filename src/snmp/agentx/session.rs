//! The subagent's session with the master agent (net-snmp's snmpd).
//!
//! Connects over a unix socket or TCP, opens a session, registers the
//! Astaire subtree and answers Get/GetNext/GetBulk from a [`Stats`]
//! snapshot, in memory only: nothing here ever waits on memcached, because
//! net-snmp closes a whole session whose subagent is slow to answer. Any
//! disconnect, Close, framing error or unanswered Ping ends the session;
//! the subagent then reconnects with backoff and registers again. On
//! shutdown it sends Close(shutdown).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::config::{pause_after, AgentConfig, MasterAddress};
use super::pdu::{self, close_reason, errors, Oid, Payload, Pdu};
use crate::backoff::Backoff;
use crate::snmp::mib::{MibView, ASTAIRE};
use crate::stats::Stats;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A running subagent; stop it with [`Subagent::shutdown`].
pub struct Subagent {
    stop: watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Subagent {
    /// Runs the subagent on a thread of its own, with a one-thread runtime
    /// of its own: net-snmp drops a subagent that misses its timeout (1 s
    /// by default), and the resync on the main thread must never cause that.
    pub fn spawn(config: AgentConfig, stats: Arc<Stats>) -> Subagent {
        let (stop, stopped) = watch::channel(false);
        let (finished, done) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new().name("agentx".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run(config, stats, stopped)),
                Err(e) => warn!("AgentX subagent not started: no runtime: {e}"),
            }
            let _ = finished.send(());
        });
        if let Err(e) = thread {
            warn!("AgentX subagent not started: no thread: {e}");
        }
        Subagent { stop, done }
    }

    /// Closes the session (Close, reason shutdown) and waits for the thread.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(2), self.done).await.is_err() {
            debug!("AgentX subagent did not stop in time");
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(master: &MasterAddress) -> std::io::Result<Box<dyn Stream>> {
    Ok(match master {
        MasterAddress::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a.as_str()).await?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        MasterAddress::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
    })
}

/// Why a session ended.
enum End {
    Shutdown,
    Lost(Lost),
}

/// Why a session was lost. Only a framing error makes the stream
/// untrustworthy enough to Close with parseError.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("{0} (framing lost)")]
    Framing(pdu::DecodeError),
    #[error("the master sent a malformed answer: {0}")]
    Malformed(pdu::DecodeError),
    #[error("read failed: {0}")]
    Read(std::io::Error),
    #[error("the master closed the connection")]
    Disconnected,
    #[error("write failed: {0}")]
    Write(std::io::Error),
    #[error("write timed out")]
    WriteTimedOut,
    #[error("no answer from the master")]
    NoAnswer,
    #[error("Open refused (error {0})")]
    OpenRefused(u16),
    #[error(
        "another agent already serves 1.2.826.0.1.1578918.9.9 at priority {0} (duplicateRegistration); \
         give Astaire a lower --agentx-priority"
    )]
    DuplicateRegistration(u8),
    #[error("Register refused (error {0})")]
    RegisterRefused(u16),
    #[error("master closed the session (reason {0})")]
    ClosedByMaster(u8),
    #[error("master did not answer a Ping")]
    PingUnanswered,
}

async fn run(config: AgentConfig, stats: Arc<Stats>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(config.min_backoff, config.max_backoff);
    let mut reported_absent = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let mut lasted = None;
        let connected = tokio::time::timeout(config.response_timeout, connect(&config.master)).await;
        match connected {
            Ok(Ok(stream)) => {
                reported_absent = false;
                let mut session = Session {
                    config: &config,
                    stats: &stats,
                    stream,
                    buf: Vec::new(),
                    session_id: 0,
                    packet_id: 0,
                    view: None,
                };
                let began = tokio::time::Instant::now();
                match session.run(&mut stop).await {
                    End::Shutdown => return,
                    End::Lost(why) => {
                        let l = began.elapsed();
                        lasted = Some(l);
                        if l >= config.stable_after {
                            warn!(master = %config.master, "AgentX session lost: {why}; reconnecting");
                        } else {
                            debug!(master = %config.master, "AgentX session lost after {l:?}: {why}; backing off");
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                if !reported_absent {
                    info!(master = %config.master, "AgentX master not reachable ({e}); retrying quietly");
                    reported_absent = true;
                }
                debug!(master = %config.master, "AgentX connect failed: {e}");
            }
            Err(_) => debug!(master = %config.master, "AgentX connect timed out"),
        }
        let pause = pause_after(&config, &mut backoff, lasted);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

struct Session<'a> {
    config: &'a AgentConfig,
    stats: &'a Stats,
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    session_id: u32,
    packet_id: u32,
    /// The view answers were last computed from, and when.
    view: Option<(std::time::Instant, MibView)>,
}

/// How long a computed view is reused. net-snmp turns each varbind of a
/// GETBULK into its own AgentX GetNext, so a walk sends a request every few
/// tens of µs: rebuilding the view for each would dominate. Values are at
/// most this old.
const VIEW_REUSE: Duration = Duration::from_millis(20);

impl Session<'_> {
    fn view(&mut self) -> &MibView {
        let fresh = self.view.take().filter(|(at, _)| at.elapsed() < VIEW_REUSE);
        let made = || (std::time::Instant::now(), MibView::new(&self.stats.snapshot()));
        &self.view.insert(fresh.unwrap_or_else(made)).1
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        if let Err(why) = self.open_and_register().await {
            return End::Lost(why);
        }
        info!(master = %self.config.master, session = self.session_id, priority = self.config.priority, "AgentX subtree registered");
        let mut ping = tokio::time::interval(self.config.ping_interval);
        ping.tick().await;
        let mut ping_outstanding: Option<u32> = None;
        loop {
            tokio::select! {
                frame = read_frame(&mut self.stream, &mut self.buf) => {
                    let frame = match frame {
                        Ok(f) => f,
                        Err(why) => {
                            if matches!(why, Lost::Framing(_)) {
                                self.close(close_reason::PARSE_ERROR).await;
                            }
                            return End::Lost(why);
                        }
                    };
                    match pdu::decode(&frame) {
                        Ok(p) => {
                            if let Payload::Response { .. } = p.payload {
                                if ping_outstanding == Some(p.packet_id) {
                                    ping_outstanding = None;
                                }
                                continue;
                            }
                            if let Payload::Close { reason } = p.payload {
                                return End::Lost(Lost::ClosedByMaster(reason));
                            }
                            if let Some(reply) = self.answer(&p) {
                                if let Err(e) = self.send(&reply).await {
                                    return End::Lost(e);
                                }
                            }
                        }
                        Err(e) => {
                            // The frame was well delimited: answer parseError and go on.
                            debug!("AgentX: malformed PDU from the master: {e}");
                            if let Some(reply) = parse_error_reply(&frame) {
                                if let Err(e) = self.send(&reply).await {
                                    return End::Lost(e);
                                }
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    if ping_outstanding.is_some() {
                        self.close(close_reason::TIMEOUTS).await;
                        return End::Lost(Lost::PingUnanswered);
                    }
                    let id = self.next_packet_id();
                    let p = Pdu::new(self.session_id, 0, id, Payload::Ping);
                    if let Err(e) = self.send(&p).await {
                        return End::Lost(e);
                    }
                    ping_outstanding = Some(id);
                }
                _ = stop.changed() => {
                    self.close(close_reason::SHUTDOWN).await;
                    info!(master = %self.config.master, "AgentX session closed (shutdown)");
                    return End::Shutdown;
                }
            }
        }
    }

    fn next_packet_id(&mut self) -> u32 {
        self.packet_id = self.packet_id.wrapping_add(1);
        self.packet_id
    }

    async fn send(&mut self, p: &Pdu) -> Result<(), Lost> {
        let mut out = Vec::with_capacity(256);
        pdu::encode(p, &mut out);
        match tokio::time::timeout(self.config.response_timeout, self.stream.write_all(&out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Lost::Write(e)),
            Err(_) => Err(Lost::WriteTimedOut),
        }
    }

    /// Sends `p` and waits for the Response with its packet id.
    async fn request(&mut self, p: Pdu) -> Result<(u16, Pdu), Lost> {
        self.send(&p).await?;
        let deadline = tokio::time::Instant::now() + self.config.response_timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, read_frame(&mut self.stream, &mut self.buf))
                .await
                .map_err(|_| Lost::NoAnswer)??;
            let reply = pdu::decode(&frame).map_err(Lost::Malformed)?;
            if let Payload::Response { error, .. } = reply.payload {
                if reply.packet_id == p.packet_id {
                    return Ok((error, reply));
                }
            }
        }
    }

    async fn open_and_register(&mut self) -> Result<(), Lost> {
        let id = self.next_packet_id();
        let open =
            Payload::Open { timeout: 0, id: Oid(ASTAIRE.to_vec()), descr: b"Astaire resync statistics".to_vec() };
        let (error, reply) = self.request(Pdu::new(0, 0, id, open)).await?;
        if error != errors::NO_ERROR {
            return Err(Lost::OpenRefused(error));
        }
        self.session_id = reply.session_id;
        let id = self.next_packet_id();
        let register = Payload::Register {
            timeout: 0,
            priority: self.config.priority,
            range_subid: 0,
            subtree: Oid(ASTAIRE.to_vec()),
            upper_bound: None,
        };
        let (error, _) = self.request(Pdu::new(self.session_id, 0, id, register)).await?;
        match error {
            errors::NO_ERROR => Ok(()),
            errors::DUPLICATE_REGISTRATION => {
                self.close(close_reason::OTHER).await;
                Err(Lost::DuplicateRegistration(self.config.priority))
            }
            other => {
                self.close(close_reason::OTHER).await;
                Err(Lost::RegisterRefused(other))
            }
        }
    }

    async fn close(&mut self, reason: u8) {
        let id = self.next_packet_id();
        let _ = self.send(&Pdu::new(self.session_id, 0, id, Payload::Close { reason })).await;
    }

    /// The Response to a master's request, from memory only.
    fn answer(&mut self, p: &Pdu) -> Option<Pdu> {
        Some(match &p.payload {
            Payload::Get(ranges) => {
                let view = self.view();
                let vbs =
                    ranges.iter().map(|r| pdu::VarBind { name: r.start.clone(), value: view.get(&r.start) }).collect();
                p.response(0, errors::NO_ERROR, 0, vbs)
            }
            Payload::GetNext(ranges) => {
                let view = self.view();
                p.response(0, errors::NO_ERROR, 0, ranges.iter().map(|r| view.get_next(r)).collect())
            }
            Payload::GetBulk { non_repeaters, max_repetitions, ranges } => {
                let vbs = self.view().get_bulk(*non_repeaters, *max_repetitions, ranges);
                p.response(0, errors::NO_ERROR, 0, vbs)
            }
            Payload::TestSet(_) => p.response(0, errors::NOT_WRITABLE, 1, Vec::new()),
            Payload::CommitSet | Payload::UndoSet => p.response(0, errors::GEN_ERR, 0, Vec::new()),
            Payload::CleanupSet => return None, // RFC 2741 7.2.4.4: no response
            _ => p.response(0, errors::PROCESSING_ERROR, 0, Vec::new()),
        })
    }
}

/// A parseError Response for a well-delimited but malformed PDU.
fn parse_error_reply(frame: &[u8]) -> Option<Pdu> {
    let h = pdu::peek_header(frame).filter(|h| !h.is_response())?;
    let mut reply = Pdu::new(
        h.session_id,
        h.transaction_id,
        h.packet_id,
        Payload::Response { sys_uptime: 0, error: errors::PARSE_ERROR, index: 0, varbinds: Vec::new() },
    );
    reply.network_order = h.network_order;
    Some(reply)
}

/// Reads one whole PDU.
async fn read_frame(stream: &mut Box<dyn Stream>, buf: &mut Vec<u8>) -> Result<Vec<u8>, Lost> {
    loop {
        match pdu::frame_len(buf) {
            Ok(Some(n)) => return Ok(buf.drain(..n).collect()),
            Ok(None) => {}
            Err(e) => return Err(Lost::Framing(e)),
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(Lost::Read)?;
        if n == 0 {
            return Err(Lost::Disconnected);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(master: MasterAddress) -> AgentConfig {
        AgentConfig::quick(master)
    }

    /// A master that accepts and closes at once (issue 15: 103 reconnects
    /// and as many warnings in 20 s): the subagent keeps backing off.
    #[tokio::test]
    async fn a_master_that_closes_at_once_is_not_stormed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let accepts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepts.clone();
        let master = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(s);
            }
        });
        let agent = Subagent::spawn(config(MasterAddress::Unix(path)), Arc::new(Stats::default()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        agent.shutdown().await;
        master.abort();
        let n = accepts.load(std::sync::atomic::Ordering::Relaxed);
        // 50, 100, 200, 400, 400 … ms apart: about 10 in 3 s; resetting to
        // the minimum after each closed session would make about 60.
        assert!((5..=14).contains(&n), "{n} connections in 3 s");
    }
}
