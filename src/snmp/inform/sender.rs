//! Delivering alarm INFORMs over UDP, one independent task per target.
//!
//! Each target always works on the newest notification: a newer one
//! supersedes an older one still being retried. A notification is sent with
//! one request-id and retransmitted with the same id every `timeout` for
//! `tries` tries, then again after a backoff that doubles up to
//! `max_backoff`, until a matching Response arrives (same version,
//! community, source address and request-id) or something newer comes.
//! Nothing here can block the caller: `notify` only updates a watch channel.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::alarm::Notification;
use super::message::{acknowledges, decode_ack, encode_inform};
use crate::addr::{AddrError, HostPort, Role};
use crate::backoff::Backoff;
use crate::snmp::uptime::{mark_process_start, uptime_centis};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Default INFORM port.
pub const DEFAULT_PORT: u16 = 162;
/// Default community when `snmp_community` is not set.
pub const DEFAULT_COMMUNITY: &str = "clearwater";

/// A fresh, unpredictable request-id in 0..=i32::MAX, so that an off-path
/// sender cannot forge the acknowledgement of the next INFORM: a counter
/// hashed with the process's random SipHash keys (std's `RandomState`,
/// seeded from the OS), rather than a new dependency for 31 random bits.
fn next_request_id() -> i32 {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let mut h = KEYS.get_or_init(std::collections::hash_map::RandomState::new).build_hasher();
    h.write_u32(COUNT.fetch_add(1, Ordering::Relaxed));
    (h.finish() & 0x7fff_ffff) as i32
}

/// A target from `snmp_ip`: `host`, `host:port`, `[v6]:port` or a bare IPv6
/// address; the port defaults to 162.
pub fn parse_target(entry: &str) -> Result<(String, u16), AddrError> {
    HostPort::parse_with_default(entry, Role::SnmpTarget, DEFAULT_PORT).map(|t| (t.host, t.port))
}

#[derive(Debug, Clone)]
pub struct InformConfig {
    /// `(host, port)` per target.
    pub targets: Vec<(String, u16)>,
    pub community: String,
    pub timeout: Duration,
    pub tries: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl InformConfig {
    /// From `snmp_ip` (comma-separated) and `snmp_community`.
    pub fn from_settings(snmp_ip: &str, community: Option<&str>) -> Result<InformConfig, AddrError> {
        let targets = if snmp_ip.trim().is_empty() {
            Vec::new()
        } else {
            snmp_ip.split(',').map(parse_target).collect::<Result<_, _>>()?
        };
        Ok(InformConfig {
            targets,
            community: community.unwrap_or(DEFAULT_COMMUNITY).to_owned(),
            timeout: Duration::from_secs(1),
            tries: 5,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(15),
        })
    }
}

/// The newest notification, numbered so targets can tell new from old.
type Latest = Option<(u64, Notification)>;

/// Sends alarm notifications to every target in the background.
pub struct Informer {
    latest: watch::Sender<Latest>,
    delivered: Vec<watch::Receiver<u64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Informer {
    pub fn spawn(config: InformConfig) -> Informer {
        mark_process_start();
        let (latest, _) = watch::channel(None);
        let mut delivered = Vec::new();
        let mut tasks = Vec::new();
        for (host, port) in config.targets.clone() {
            let (done_tx, done_rx) = watch::channel(0u64);
            delivered.push(done_rx);
            let target = Target { host, port, config: config.clone(), latest: latest.subscribe(), delivered: done_tx };
            tasks.push(tokio::spawn(target.run()));
        }
        Informer { latest, delivered, tasks }
    }

    /// Queues `n` for every target; returns at once.
    pub fn notify(&self, n: Notification) {
        self.latest.send_modify(|latest| {
            let seq = latest.map(|(s, _)| s).unwrap_or(0) + 1;
            *latest = Some((seq, n));
        });
    }

    /// Waits until every target acknowledged the newest notification, for
    /// at most `within`. Returns whether they all did.
    pub async fn flush(&self, within: Duration) -> bool {
        let Some((seq, _)) = *self.latest.borrow() else {
            return true;
        };
        let all = async {
            for d in &self.delivered {
                let mut d = d.clone();
                if d.wait_for(|v| *v >= seq).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(within, all).await.unwrap_or(false)
    }

    /// Stops every target, delivered or not.
    pub fn shutdown(self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

struct Target {
    host: String,
    port: u16,
    config: InformConfig,
    latest: watch::Receiver<Latest>,
    delivered: watch::Sender<u64>,
}

/// Why delivering one notification stopped.
enum Outcome {
    Acknowledged,
    Superseded,
    Stopped,
    /// The INFORM could not be encoded (never seen: the message is fixed).
    Unencodable,
}

impl Target {
    fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn run(mut self) {
        let mut acked = 0u64;
        loop {
            let next = *self.latest.borrow_and_update();
            match next {
                Some((seq, n)) if seq > acked => match self.deliver(n).await {
                    Outcome::Acknowledged => {
                        acked = seq;
                        let _ = self.delivered.send(seq);
                        info!(target = %self.name(), "INFORM delivered: {}", n.describe());
                    }
                    Outcome::Superseded => {
                        debug!(target = %self.name(), "INFORM superseded by a newer state")
                    }
                    Outcome::Stopped => return,
                    Outcome::Unencodable => acked = seq,
                },
                _ => {
                    if self.latest.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, n: Notification) -> Outcome {
        let request_id = next_request_id();
        let community = self.config.community.clone().into_bytes();
        let bytes = match encode_inform(&community, request_id, uptime_centis(), &n) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!(target = %self.name(), "INFORM cannot be encoded ({}): {e}", n.describe());
                return Outcome::Unencodable;
            }
        };
        let mut backoff = Backoff::new(self.config.first_backoff, self.config.max_backoff);
        let mut warned = false;
        let mut socket: Option<UdpSocket> = None;
        loop {
            for attempt in 1..=self.config.tries.max(1) {
                if socket.is_none() {
                    socket = self.open().await;
                }
                if let Some(sock) = &socket {
                    if let Err(e) = sock.send(&bytes).await {
                        debug!(target = %self.name(), "INFORM send failed: {e}");
                    }
                    debug!(target = %self.name(), request_id, attempt, "INFORM sent: {}", n.describe());
                }
                let wait = async {
                    match &socket {
                        Some(sock) => wait_ack(sock, &community, request_id).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    acked = tokio::time::timeout(self.config.timeout, wait) => {
                        if acked.is_ok() {
                            return Outcome::Acknowledged;
                        }
                    }
                    changed = self.latest.changed() => {
                        return if changed.is_ok() { Outcome::Superseded } else { Outcome::Stopped };
                    }
                }
            }
            if !warned {
                warn!(
                    target = %self.name(),
                    tries = self.config.tries,
                    "INFORM not acknowledged ({}); retrying with backoff",
                    n.describe()
                );
                warned = true;
            }
            socket = None; // resolve again: the receiver may have moved
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                changed = self.latest.changed() => {
                    return if changed.is_ok() { Outcome::Superseded } else { Outcome::Stopped };
                }
            }
        }
    }

    /// Resolves the target and opens a socket connected to it: the kernel
    /// then delivers only the target's datagrams to us.
    async fn open(&self) -> Option<UdpSocket> {
        let addr = match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(mut addrs) => addrs.next()?,
            Err(e) => {
                debug!(target = %self.name(), "cannot resolve SNMP target: {e}");
                return None;
            }
        };
        let local: SocketAddr = if addr.is_ipv6() { "[::]:0".parse().ok()? } else { "0.0.0.0:0".parse().ok()? };
        let sock = match UdpSocket::bind(local).await {
            Ok(sock) => sock,
            Err(e) => {
                debug!(target = %self.name(), "cannot open a UDP socket: {e}");
                return None;
            }
        };
        match sock.connect(addr).await {
            Ok(()) => Some(sock),
            Err(e) => {
                debug!(target = %self.name(), "cannot connect a UDP socket to {addr}: {e}");
                None
            }
        }
    }
}

/// Receives (on a socket connected to the target) until a Response
/// acknowledges `request_id`. A receive error (an ICMP port unreachable
/// while nobody listens) waits a moment rather than spin.
async fn wait_ack(sock: &UdpSocket, community: &[u8], request_id: i32) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Some(ack) = buf.get(..n).and_then(decode_ack) {
            if acknowledges(&ack, community, request_id) {
                return;
            }
            if ack.request_id == request_id && ack.error_status != 0 {
                debug!(request_id, error_status = ack.error_status, "INFORM answered with an error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasn_snmp::v2::{Pdu, Pdus, Response};
    use rasn_snmp::v2c::Message;

    /// The request-id of an INFORM, and a Response to it with `error`.
    fn answer(inform: &[u8], error: u32) -> (i32, Vec<u8>) {
        let m: Message<Pdus> = rasn::ber::decode(inform).unwrap();
        let Pdus::InformRequest(req) = m.data else { panic!("not an INFORM") };
        let pdu = Pdu { error_status: error, ..req.0 };
        let id = pdu.request_id;
        let reply = Message { version: m.version, community: m.community, data: Pdus::Response(Response(pdu)) };
        (id, rasn::ber::encode(&reply).unwrap())
    }

    fn quick(port: u16) -> InformConfig {
        InformConfig {
            targets: vec![("127.0.0.1".into(), port)],
            community: "clearwater".into(),
            timeout: Duration::from_millis(100),
            tries: 2,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
        }
    }

    /// Issue 15: a Response with a non-zero error-status was taken as an
    /// acknowledgement, and so was one from another address (now the
    /// socket is connected). Only error 0 from the target itself counts.
    #[tokio::test]
    async fn only_an_error_free_response_from_the_target_acknowledges() {
        use super::super::alarm::{Notification, RESYNC_ALARM_INDEX};
        let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let informer = Informer::spawn(quick(sink.local_addr().unwrap().port()));
        informer.notify(Notification { index: RESYNC_ALARM_INDEX, raised: true });
        let mut buf = vec![0u8; 65536];
        let mut ids = Vec::new();
        // genErr from the target, then a clean answer from another port.
        for phase in ["error", "spoofed"] {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
            while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sink.recv_from(&mut buf)).await {
                let (id, reply) = answer(&buf[..n], if phase == "error" { 5 } else { 0 });
                ids.push(id);
                let via = if phase == "error" { &sink } else { &spoofer };
                via.send_to(&reply, from).await.unwrap();
            }
            assert!(!informer.flush(Duration::from_millis(10)).await, "{phase}: taken as delivered");
        }
        // The target itself, error 0: delivered.
        let (n, from) = sink.recv_from(&mut buf).await.unwrap();
        let (id, reply) = answer(&buf[..n], 0);
        sink.send_to(&reply, from).await.unwrap();
        assert!(informer.flush(Duration::from_secs(2)).await, "a clean answer from the target is an acknowledgement");
        assert!(ids.iter().all(|i| *i == id), "retries keep the request-id: {ids:?} then {id}");
        informer.shutdown();
    }

    #[test]
    fn request_ids_are_not_sequential() {
        let ids: Vec<i32> = (0..64).map(|_| next_request_id()).collect();
        assert!(ids.iter().all(|i| *i >= 0));
        let steps_of_one = ids.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 1).count();
        assert!(steps_of_one < 3, "{ids:?}");
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn targets_parse_with_default_port() {
        assert_eq!(parse_target("10.0.0.1"), Ok(("10.0.0.1".into(), 162)));
        assert_eq!(parse_target(" 10.0.0.1:1162 "), Ok(("10.0.0.1".into(), 1162)));
        assert_eq!(parse_target("nms.example.com"), Ok(("nms.example.com".into(), 162)));
        assert_eq!(parse_target("2001:db8::1"), Ok(("2001:db8::1".into(), 162)));
        assert_eq!(parse_target("[2001:db8::1]:1162"), Ok(("2001:db8::1".into(), 1162)));
        assert_eq!(parse_target("[2001:db8::1]"), Ok(("2001:db8::1".into(), 162)));
        for bad in ["", ":162", "host:port", "[zz]:1", "[::1]x", "1:2:3:zz"] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_give_targets_and_the_default_community() {
        let c = InformConfig::from_settings("10.0.0.1,10.0.0.2:1162", None).unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.community, "clearwater");
        assert!(InformConfig::from_settings("", Some("x")).unwrap().targets.is_empty());
        assert!(InformConfig::from_settings("10.0.0.1,,10.0.0.2", None).is_err());
    }

    #[test]
    fn request_ids_stay_within_i32() {
        for _ in 0..1000 {
            assert!(next_request_id() >= 0);
        }
    }
}
