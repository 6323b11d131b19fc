//! ZMTP 3.0 (RFC 23/ZMTP, rfc.zeromq.org) as the alarm agent link speaks it:
//! a REQ client with the NULL mechanism. Sans-IO: [`ReqClient`] takes the
//! bytes the peer sent and says what they were; [`crate::snmp::alarm_agent`]
//! moves them over the unix socket.
//!
//! Written here rather than taken from the `zeromq` crate because that crate
//! (0.7) reserves buffer space for whatever frame length a peer announces and
//! has no message size limit: one frame announced as 2^62 bytes aborted the
//! daemon (issue 29). Here every length is checked against [`Limits`] before
//! anything waits for, or holds, the bytes it announces, and the read buffer
//! has a fixed capacity that a legal message always fits in.
//!
//! What is spoken (and nothing more): the 64-byte greeting, the READY
//! command with `Socket-Type`, requests as the REQ envelope (an empty
//! delimiter frame, then the request's frames), and one reply per request,
//! whose envelope is checked and removed. A peer's other commands (ZMTP 3.1's
//! PING, say) are read, bounded like everything else, and ignored; ERROR ends
//! the connection with its reason.
// Reads network input: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::memcached::proto::printable;

/// The greeting's fixed size.
pub const GREETING_LEN: usize = 64;

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;
/// Flag bits 7-3 are reserved and must be zero.
const RESERVED: u8 = !(MORE | LONG | COMMAND);
/// A long frame header: flags and an 8-byte size.
const LONG_HEADER: usize = 9;

/// What the peer may send at most. Clearwater's agent answers a request
/// with the delimiter and `ok`, and its READY is about 30 bytes; these are
/// many times that and still nothing to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The body of one frame, command or message.
    pub frame: usize,
    /// The frames of one message, the delimiter included.
    pub frames: usize,
    /// The bodies of one message's frames together.
    pub message: usize,
}

impl Limits {
    /// For the alarm agent.
    pub const ALARM_AGENT: Limits = Limits { frame: 1024, frames: 8, message: 1024 };

    /// The most bytes an incomplete but legal message or command can take
    /// in the read buffer: the buffer's capacity.
    pub const fn buffer(&self) -> usize {
        let frame = LONG_HEADER + self.frame;
        let message = self.frames * LONG_HEADER + self.message;
        let most = if frame > message { frame } else { message };
        if most > GREETING_LEN {
            most
        } else {
            GREETING_LEN
        }
    }
}

/// Why the peer is not spoken to any more. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZmtpError {
    #[error("is not a ZMTP peer (its greeting starts {0})")]
    NotZmtp(String),
    #[error("speaks ZMTP version {0} (3 or later is needed)")]
    Version(u8),
    #[error("uses the security mechanism {0:?} (NULL is spoken here)")]
    Mechanism(String),
    #[error("sent frame flags {0:#04x} (reserved bits set)")]
    Flags(u8),
    #[error("sent a command frame marked as followed by more")]
    CommandWithMore,
    #[error("announced a frame of {announced} bytes (at most {limit} taken)")]
    FrameTooLong { announced: u64, limit: usize },
    #[error("sent a message of more than {limit} frames")]
    TooManyFrames { limit: usize },
    #[error("sent a message of more than {limit} bytes")]
    MessageTooLong { limit: usize },
    #[error("sent a malformed {command} command: {why}")]
    BadCommand { command: String, why: &'static str },
    #[error("is a {0} socket, which cannot answer a REQ")]
    SocketType(String),
    #[error("refused the connection: {0}")]
    Refused(String),
    #[error("sent {0} before the handshake")]
    EarlyTraffic(&'static str),
    #[error("answered without the REQ envelope's delimiter")]
    NoDelimiter,
    #[error("sent a message nobody asked for")]
    Unasked,
    #[error("sent a command inside a message")]
    CommandInMessage,
}

/// A peer's bytes as a log shows them: printable, the first 32 at most.
pub fn shown(bytes: &[u8]) -> String {
    let mut text = printable(bytes.get(..32).unwrap_or(bytes));
    if bytes.len() > 32 {
        text.push('…');
    }
    text
}

/// Our greeting: ZMTP 3.0, NULL, not as-server; the padding zero.
pub fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// A READY command announcing `socket_type`.
pub fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    body.push(5);
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut out = Vec::with_capacity(body.len() + LONG_HEADER);
    put_frame(&mut out, COMMAND, &body);
    out
}

/// `frames` as one message.
pub fn message<B: AsRef<[u8]>>(frames: &[B], out: &mut Vec<u8>) {
    let last = frames.len().saturating_sub(1);
    for (i, f) in frames.iter().enumerate() {
        put_frame(out, if i < last { MORE } else { 0 }, f.as_ref());
    }
}

fn put_frame(out: &mut Vec<u8>, flags: u8, body: &[u8]) {
    match u8::try_from(body.len()) {
        Ok(short) => out.extend_from_slice(&[flags, short]),
        Err(_) => {
            out.push(flags | LONG);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
}

/// What [`Decoder::next_event`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's greeting: its version (major, minor).
    Greeting(u8, u8),
    /// A command: its name and data.
    Command { name: Vec<u8>, data: Vec<u8> },
    /// A message's frames.
    Message(Vec<Vec<u8>>),
}

/// One frame's header as found at the front of some bytes.
struct Header {
    flags: u8,
    /// The header's own length (2 or 9).
    len: usize,
    body: usize,
}

/// Reads the frame header at the front of `buf`: `None` when incomplete.
/// The announced size is checked against `limit` here, before anything
/// waits for the body.
fn header(buf: &[u8], limit: usize) -> Result<Option<Header>, ZmtpError> {
    let Some(&flags) = buf.first() else { return Ok(None) };
    if flags & RESERVED != 0 {
        return Err(ZmtpError::Flags(flags));
    }
    if flags & COMMAND != 0 && flags & MORE != 0 {
        return Err(ZmtpError::CommandWithMore);
    }
    let (len, announced) = if flags & LONG != 0 {
        let Some(size) = buf.get(1..LONG_HEADER).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            return Ok(None);
        };
        (LONG_HEADER, u64::from_be_bytes(size))
    } else {
        let Some(&size) = buf.get(1) else { return Ok(None) };
        (2, u64::from(size))
    };
    match usize::try_from(announced) {
        Ok(body) if body <= limit => Ok(Some(Header { flags, len, body })),
        _ => Err(ZmtpError::FrameTooLong { announced, limit }),
    }
}

/// The peer's byte stream cut into events. Check, then parse: an
/// incomplete event is `Ok(None)`, never an error, and every size is
/// checked against the limits as soon as it is known. The buffer never
/// holds more than [`Limits::buffer`] bytes: a legal event in progress
/// always fits, so the reader only ever asks for what fits.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    greeted: bool,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder { limits, buf: Vec::with_capacity(limits.buffer()), greeted: false }
    }

    /// How many more bytes may be read now.
    pub fn room(&self) -> usize {
        self.limits.buffer().saturating_sub(self.buf.len())
    }

    /// Takes bytes the peer sent; at most [`Decoder::room`] of them are
    /// kept (the reader never offers more).
    pub fn received(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.room());
        self.buf.extend_from_slice(bytes.get(..n).unwrap_or_default());
    }

    /// Bytes received and not yet taken as an event.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole event at the front of the buffer, taken out of it.
    pub fn next_event(&mut self) -> Result<Option<Event>, ZmtpError> {
        if !self.greeted {
            return self.greeting();
        }
        let limits = self.limits;
        let Some(first) = header(&self.buf, limits.frame)? else { return Ok(None) };
        if first.flags & COMMAND != 0 {
            let end = first.len + first.body;
            let Some(body) = self.buf.get(first.len..end) else { return Ok(None) };
            let (name, data) = command(body)?;
            let event = Event::Command { name: name.to_vec(), data: data.to_vec() };
            self.buf.drain(..end);
            return Ok(Some(event));
        }
        // A message: walk its frames' headers, checking each limit, until
        // the last frame; only then is anything taken.
        let (mut at, mut total, mut bodies) = (0usize, 0usize, Vec::new());
        loop {
            let Some(h) = header(self.buf.get(at..).unwrap_or_default(), limits.frame)? else { return Ok(None) };
            if h.flags & COMMAND != 0 {
                return Err(ZmtpError::CommandInMessage);
            }
            if bodies.len() == limits.frames {
                return Err(ZmtpError::TooManyFrames { limit: limits.frames });
            }
            total += h.body;
            if total > limits.message {
                return Err(ZmtpError::MessageTooLong { limit: limits.message });
            }
            let start = at + h.len;
            bodies.push(start..start + h.body);
            at = start + h.body;
            if h.flags & MORE == 0 {
                break;
            }
        }
        if self.buf.len() < at {
            return Ok(None);
        }
        let frames = bodies.into_iter().map(|r| self.buf.get(r).unwrap_or_default().to_vec()).collect();
        self.buf.drain(..at);
        Ok(Some(Event::Message(frames)))
    }

    fn greeting(&mut self) -> Result<Option<Event>, ZmtpError> {
        let Some(g) = self.buf.first_chunk::<GREETING_LEN>() else {
            // The signature can be judged before the rest arrives.
            if self.buf.first().is_some_and(|b| *b != 0xff) {
                return Err(ZmtpError::NotZmtp(shown(&self.buf)));
            }
            return Ok(None);
        };
        let (signature, rest) = g.split_at(10);
        if signature.first() != Some(&0xff) || signature.last() != Some(&0x7f) {
            return Err(ZmtpError::NotZmtp(printable(signature)));
        }
        let (major, minor) = (rest.first().copied().unwrap_or(0), rest.get(1).copied().unwrap_or(0));
        if major < 3 {
            return Err(ZmtpError::Version(major));
        }
        let mechanism = rest.get(2..22).unwrap_or_default();
        let name = mechanism.split(|b| *b == 0).next().unwrap_or_default();
        if name != b"NULL" || mechanism.iter().skip(4).any(|b| *b != 0) {
            return Err(ZmtpError::Mechanism(printable(name)));
        }
        self.buf.drain(..GREETING_LEN);
        self.greeted = true;
        Ok(Some(Event::Greeting(major, minor)))
    }
}

/// A command body's name and data.
fn command(body: &[u8]) -> Result<(&[u8], &[u8]), ZmtpError> {
    let bad = |why| ZmtpError::BadCommand { command: shown(body.get(1..).unwrap_or_default()), why };
    let (&n, rest) = body.split_first().ok_or_else(|| bad("no name"))?;
    let n = usize::from(n);
    let name = rest.get(..n).filter(|name| !name.is_empty()).ok_or_else(|| bad("no name"))?;
    if !name.iter().all(u8::is_ascii_alphabetic) {
        return Err(ZmtpError::BadCommand { command: shown(name), why: "a name not all letters" });
    }
    Ok((name, rest.get(n..).unwrap_or_default()))
}

/// A metadata property: its name as sent, and its value.
pub type Property<'a> = (&'a [u8], &'a [u8]);

/// The properties of a READY command's data.
pub fn properties(data: &[u8]) -> Result<Vec<Property<'_>>, ZmtpError> {
    let bad = |why| ZmtpError::BadCommand { command: "READY".into(), why };
    let mut props = Vec::new();
    let mut rest = data;
    while let Some((&n, after)) = rest.split_first() {
        let n = usize::from(n);
        let name = after.get(..n).filter(|name| !name.is_empty()).ok_or_else(|| bad("a property name cut short"))?;
        let after = after.get(n..).unwrap_or_default();
        let size = after.first_chunk::<4>().ok_or_else(|| bad("a property size cut short"))?;
        let size = usize::try_from(u32::from_be_bytes(*size)).map_err(|_| bad("a property too long"))?;
        let after = after.get(4..).unwrap_or_default();
        let value = after.get(..size).ok_or_else(|| bad("a property value cut short"))?;
        props.push((name, value));
        rest = after.get(size..).unwrap_or_default();
    }
    Ok(props)
}

/// Where a [`ReqClient`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Ready,
    /// Handshake done; nothing asked.
    Idle,
    /// A request is out; its reply is due.
    Asked,
}

/// A REQ socket's one connection, without the socket: what to send, and
/// what the received bytes mean.
#[derive(Debug)]
pub struct ReqClient {
    decoder: Decoder,
    phase: Phase,
}

/// What [`ReqClient::poll`] has to say.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Wait,
    /// The handshake is complete: requests may go.
    Ready,
    /// The reply to the request, its envelope removed.
    Reply(Vec<Vec<u8>>),
}

impl ReqClient {
    /// A new connection, and what to send first: the greeting and READY.
    pub fn new(limits: Limits) -> (ReqClient, Vec<u8>) {
        let mut hello = greeting().to_vec();
        hello.extend_from_slice(&ready("REQ"));
        (ReqClient { decoder: Decoder::new(limits), phase: Phase::Greeting }, hello)
    }

    pub fn decoder(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// Whether a request may be sent now.
    pub fn idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// The bytes of a request (the REQ envelope's delimiter, then
    /// `frames`); the reply is then due.
    pub fn request<B: AsRef<[u8]>>(&mut self, frames: &[B]) -> Vec<u8> {
        let mut out = vec![if frames.is_empty() { 0 } else { MORE }, 0];
        message(frames, &mut out);
        self.phase = Phase::Asked;
        out
    }

    /// Makes what has been received so far into progress.
    pub fn poll(&mut self) -> Result<Progress, ZmtpError> {
        loop {
            let Some(event) = self.decoder.next_event()? else { return Ok(Progress::Wait) };
            match (self.phase, event) {
                (Phase::Greeting, Event::Greeting(..)) => self.phase = Phase::Ready,
                (_, Event::Greeting(..)) => return Err(ZmtpError::EarlyTraffic("a second greeting")),
                (_, Event::Command { name, data }) if name.eq_ignore_ascii_case(b"ERROR") => {
                    let reason = data.split_first().map(|(n, r)| r.get(..usize::from(*n)).unwrap_or(r));
                    return Err(ZmtpError::Refused(shown(reason.unwrap_or_default())));
                }
                (Phase::Ready, Event::Command { name, data }) if name.eq_ignore_ascii_case(b"READY") => {
                    for (name, value) in properties(&data)? {
                        if name.eq_ignore_ascii_case(b"Socket-Type") && value != b"REP" && value != b"ROUTER" {
                            return Err(ZmtpError::SocketType(shown(value)));
                        }
                    }
                    self.phase = Phase::Idle;
                    return Ok(Progress::Ready);
                }
                (Phase::Ready, Event::Command { name, .. }) => {
                    return Err(ZmtpError::BadCommand { command: shown(&name), why: "in place of READY" })
                }
                // ZMTP 3.1's PING and the like: nothing this client needs.
                (_, Event::Command { .. }) => {}
                (Phase::Greeting | Phase::Ready, Event::Message(_)) => {
                    return Err(ZmtpError::EarlyTraffic("a message"))
                }
                (Phase::Idle, Event::Message(_)) => return Err(ZmtpError::Unasked),
                (Phase::Asked, Event::Message(frames)) => {
                    let mut frames = frames.into_iter();
                    if frames.next().is_none_or(|delimiter| !delimiter.is_empty()) {
                        return Err(ZmtpError::NoDelimiter);
                    }
                    self.phase = Phase::Idle;
                    return Ok(Progress::Reply(frames.collect()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const L: Limits = Limits::ALARM_AGENT;

    /// What a libzmq 4 REP socket sends first: a 3.1 greeting, READY.
    fn rep_hello() -> Vec<u8> {
        let mut g = greeting().to_vec();
        g[11] = 1;
        g.extend_from_slice(&ready("REP"));
        g
    }

    fn reply(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        message(frames, &mut out);
        out
    }

    fn feed(client: &mut ReqClient, bytes: &[u8]) -> Result<Vec<Progress>, ZmtpError> {
        let mut got = Vec::new();
        for chunk in bytes.chunks(7) {
            client.decoder().received(chunk);
            loop {
                match client.poll()? {
                    Progress::Wait => break,
                    p => got.push(p),
                }
            }
        }
        Ok(got)
    }

    #[test]
    fn the_greeting_and_ready_are_as_rfc_23_writes_them() {
        let g = greeting();
        assert_eq!(&g[..12], b"\xff\0\0\0\0\0\0\0\0\x7f\x03\x00");
        assert_eq!(&g[12..32], b"NULL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert!(g[32..].iter().all(|b| *b == 0));
        // The RFC's worked example, with REQ for DEALER and no Identity.
        assert_eq!(ready("REQ"), b"\x04\x19\x05READY\x0bSocket-Type\0\0\0\x03REQ");
    }

    #[test]
    fn a_request_carries_the_req_envelope_and_the_reply_loses_it() {
        let (mut c, hello) = ReqClient::new(L);
        assert_eq!(&hello[..64], &greeting());
        assert_eq!(feed(&mut c, &rep_hello()).unwrap(), [Progress::Ready]);
        assert!(c.idle());
        let req = c.request(&["issue-alarm", "astaire", "5501.5"]);
        assert_eq!(req, b"\x01\x00\x01\x0bissue-alarm\x01\x07astaire\x00\x065501.5");
        let got = feed(&mut c, &reply(&[b"", b"ok"])).unwrap();
        assert_eq!(got, [Progress::Reply(vec![b"ok".to_vec()])]);
        assert!(c.idle());
    }

    #[test]
    fn long_frames_are_read_as_long_as_they_fit_the_limits() {
        let body = vec![b'x'; 300];
        let mut d = Decoder::new(L);
        d.received(&greeting());
        assert_eq!(d.next_event(), Ok(Some(Event::Greeting(3, 0))));
        d.received(&reply(&[b"", &body]));
        assert_eq!(d.next_event(), Ok(Some(Event::Message(vec![vec![], body]))));
        assert_eq!(d.buffered(), 0);
    }

    /// Issue 29: a frame announced as 2^62 bytes aborted the daemon. It is
    /// refused from its header alone, before anything waits for its body.
    #[test]
    fn a_huge_frame_is_refused_from_its_header() {
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        c.request(&["issue-alarm"]);
        let mut huge = vec![MORE, 0, LONG];
        huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
        assert_eq!(feed(&mut c, &huge), Err(ZmtpError::FrameTooLong { announced: 1 << 62, limit: 1024 }));
        // A command in place of READY, likewise, and u64::MAX too.
        let (mut c, _) = ReqClient::new(L);
        let mut cmd = greeting().to_vec();
        cmd.push(COMMAND | LONG);
        cmd.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(feed(&mut c, &cmd), Err(ZmtpError::FrameTooLong { announced: u64::MAX, limit: 1024 }));
    }

    #[test]
    fn a_message_past_its_frame_count_or_bytes_is_refused_before_it_ends() {
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        c.request(&["x"]);
        let mut endless = vec![MORE, 0];
        for _ in 0..20 {
            endless.extend_from_slice(&[MORE, 1, b'x']);
        }
        assert_eq!(feed(&mut c, &endless), Err(ZmtpError::TooManyFrames { limit: 8 }));
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        c.request(&["x"]);
        let mut flood = vec![MORE, 0];
        for _ in 0..5 {
            flood.push(MORE);
            flood.push(255);
            flood.extend_from_slice(&[b'x'; 255]);
        }
        assert_eq!(feed(&mut c, &flood), Err(ZmtpError::MessageTooLong { limit: 1024 }));
    }

    #[test]
    fn what_is_not_a_rep_speaking_null_is_refused() {
        let refused = |bytes: &[u8]| {
            let (mut c, _) = ReqClient::new(L);
            feed(&mut c, bytes).unwrap_err()
        };
        assert!(matches!(refused(b"HTTP/1.1 200 OK\r\n"), ZmtpError::NotZmtp(_)));
        let mut v2 = greeting().to_vec();
        v2[10] = 2;
        assert_eq!(refused(&v2), ZmtpError::Version(2));
        let mut plain = greeting().to_vec();
        plain[12..17].copy_from_slice(b"PLAIN");
        assert_eq!(refused(&plain), ZmtpError::Mechanism("PLAIN".into()));
        let mut pub_ = greeting().to_vec();
        pub_.extend_from_slice(&ready("PUB"));
        assert_eq!(refused(&pub_), ZmtpError::SocketType("PUB".into()));
        // What reaches the log of a peer's bytes is short and printable.
        let mut long = greeting().to_vec();
        long.extend_from_slice(&ready(&"\n".repeat(200)));
        assert_eq!(refused(&long), ZmtpError::SocketType(format!("{}…", "\\x0a".repeat(32))));
        let mut error = greeting().to_vec();
        error.extend_from_slice(b"\x04\x0d\x05ERROR\x06denied");
        assert_eq!(refused(&error), ZmtpError::Refused("denied".into()));
        let mut early = greeting().to_vec();
        early.extend_from_slice(&reply(&[b"ok"]));
        assert_eq!(refused(&early), ZmtpError::EarlyTraffic("a message"));
        let mut flags = rep_hello();
        flags.extend_from_slice(&[0x80, 0]);
        assert_eq!(refused(&flags), ZmtpError::Flags(0x80));
    }

    #[test]
    fn a_reply_must_be_asked_for_and_carry_the_delimiter() {
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        assert_eq!(feed(&mut c, &reply(&[b"", b"ok"])), Err(ZmtpError::Unasked));
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        c.request(&["x"]);
        assert_eq!(feed(&mut c, &reply(&[b"ok"])), Err(ZmtpError::NoDelimiter));
    }

    #[test]
    fn other_commands_after_the_handshake_are_ignored() {
        let (mut c, _) = ReqClient::new(L);
        feed(&mut c, &rep_hello()).unwrap();
        c.request(&["x"]);
        let mut ping = b"\x04\x07\x04PING\x00\x00".to_vec(); // TTL 0, no context
        ping.extend_from_slice(&reply(&[b"", b"ok"]));
        assert_eq!(feed(&mut c, &ping).unwrap(), [Progress::Reply(vec![b"ok".to_vec()])]);
    }

    #[test]
    fn ready_properties_are_read_within_the_command() {
        let data = b"\x0bSocket-Type\0\0\0\x03REP\x08Identity\0\0\0\0";
        assert_eq!(properties(data).unwrap(), [(&b"Socket-Type"[..], &b"REP"[..]), (&b"Identity"[..], &b""[..])]);
        assert!(properties(b"\x0bSocket-Type\0\0\0\x09REP").is_err(), "value cut short");
        assert!(properties(b"\x0bSocket-Type\xff\xff\xff\xff").is_err(), "2^32 announced");
        assert!(properties(b"\x00").is_err(), "empty name");
    }

    proptest! {
        /// Whatever a peer sends, in whatever pieces: no panic, the buffer
        /// never holds more than its capacity, and nothing announced past
        /// the limits is ever waited for.
        #[test]
        fn any_bytes_are_bounded(
            tail in proptest::collection::vec(any::<u8>(), 0..3000),
            cut in 1usize..64,
            handshake in any::<bool>(),
            asked in any::<bool>(),
        ) {
            let (mut c, _) = ReqClient::new(L);
            let mut bytes = if handshake { rep_hello() } else { Vec::new() };
            bytes.extend_from_slice(&tail);
            let mut asked_yet = false;
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                // As the reader does: never more than there is room for.
                let n = cut.min(c.decoder().room()).min(rest.len());
                let (chunk, after) = rest.split_at(n);
                rest = after;
                c.decoder().received(chunk);
                prop_assert!(c.decoder().buffered() <= L.buffer());
                match c.poll() {
                    Err(_) => return Ok(()),
                    Ok(Progress::Wait) => {
                        // Waiting means a legal event is in progress: there
                        // is room for the rest of it.
                        prop_assert!(c.decoder().room() > 0, "waiting with a full buffer");
                    }
                    Ok(_) => {}
                }
                if asked && !asked_yet && c.idle() {
                    c.request(&["issue-alarm", "astaire", "5501.1"]);
                    asked_yet = true;
                }
            }
        }

        /// Whatever legal reply, cut anywhere, reads back as it was sent.
        #[test]
        fn legal_replies_round_trip(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..7),
            cut in 1usize..40,
        ) {
            let total: usize = frames.iter().map(Vec::len).sum();
            prop_assume!(total <= L.message);
            let (mut c, _) = ReqClient::new(L);
            let mut bytes = rep_hello();
            let mut with_delimiter = vec![Vec::new()];
            with_delimiter.extend(frames.iter().cloned());
            message(&with_delimiter, &mut bytes);
            let mut got = Vec::new();
            for chunk in bytes.chunks(cut) {
                c.decoder().received(chunk);
                loop {
                    match c.poll().unwrap() {
                        Progress::Wait => break,
                        Progress::Ready => { c.request(&["x"]); }
                        Progress::Reply(r) => got.push(r),
                    }
                }
            }
            prop_assert_eq!(got, vec![frames]);
        }
    }
}
