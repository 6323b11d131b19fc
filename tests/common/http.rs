//! A small HTTP/1.1 client for the metrics tests, over std sockets with
//! bounded reads: what a scraper or a probe sends, and what a hostile
//! client sends that a library client would refuse to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// How long any one exchange may take.
pub const LIMIT: Duration = Duration::from_secs(10);

/// `GET path` on a fresh connection, closed after the answer.
pub fn get(addr: &str, path: &str, headers: &str) -> std::io::Result<Reply> {
    send(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n").as_bytes())
}

/// Sends `request` as it is and reads the answer until the server closes.
pub fn send(addr: &str, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(LIMIT))?;
    s.set_write_timeout(Some(LIMIT))?;
    // The server may answer and close before it has read everything sent:
    // a write error then is expected, the answer still readable.
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !got.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse(&got).ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&got))))
}

fn parse(got: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(got);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Reply { status, head: head.to_owned(), body: body.to_owned() })
}

/// A kept-alive connection asking `GET path` again and again, as
/// Prometheus does.
pub struct KeepAlive {
    stream: TcpStream,
    addr: String,
}

impl KeepAlive {
    pub fn connect(addr: &str) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(LIMIT))?;
        stream.set_write_timeout(Some(LIMIT))?;
        Ok(KeepAlive { stream, addr: addr.to_owned() })
    }

    /// One request; the body's length from Content-Length.
    pub fn get(&mut self, path: &str) -> std::io::Result<Reply> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.stream.write_all(req.as_bytes())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).into_owned();
                    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    return Ok(Reply { status, head, body });
                }
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no whole answer"));
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed mid-answer"));
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// The value of the sample `name` (with its labels, as written) in a
/// Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
