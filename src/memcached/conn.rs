//! A tokio connection to one memcached server.
//!
//! It only moves bytes: requests are built with [`super::proto`] and
//! responses parsed by it. Reading and writing run concurrently in
//! [`Connection::pipeline`], so a large batch can never deadlock with the
//! server blocked on a full socket while we are still writing. Every read and
//! write has an inactivity timeout: a stopped server (SIGSTOP, a dead link)
//! becomes an error, never a hang.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::pace::{Pace, MIN_BATCH_PROGRESS};
use super::proto::{self, Meta, ProtoError, Status, WireKey};
use super::reader::{AnswerGuess, Reader};
use super::McError;
use crate::stop::Stop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Lines of a `stats` answer read before giving up on its `END`.
pub const MAX_STAT_LINES: usize = 4096;

/// Default inactivity timeout for reads, writes and connecting.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection: the buffered reader and the raw writer.
pub struct Connection {
    pub reader: Reader,
    writer: OwnedWriteHalf,
    server: String,
    timeout: Duration,
    /// Once requested, a pipelined batch in flight is abandoned (see
    /// [`Connection::stop_on`]).
    stop: Stop,
}

impl Connection {
    /// Connects to `server` (`host:port` or `[v6]:port`).
    pub async fn connect(server: &str, io_timeout: Duration) -> Result<Connection, McError> {
        let stream = timeout(io_timeout, TcpStream::connect(server))
            .await
            .map_err(|_| McError::Timeout { server: server.to_owned(), secs: io_timeout.as_secs() })?
            .map_err(|source| McError::Connect { server: server.to_owned(), source })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Ok(Connection {
            reader: Reader::new(read, server, io_timeout),
            writer: write,
            server: server.to_owned(),
            timeout: io_timeout,
            stop: Stop::default(),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Abandons a batch in flight (within [`crate::stop::POLL`]) once
    /// `stop` is requested, with an error. Only for reads that change
    /// nothing: a batch that writes must run to its end, so its guards run
    /// too.
    pub fn stop_on(&mut self, stop: Stop) {
        self.stop = stop;
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), McError> {
        write_all(&mut self.writer, bytes, &self.server, self.timeout).await
    }

    /// Sends `requests`: `expected` non-quiet requests, each answered once
    /// and each carrying its position as its opaque (`O0`, `O1`, …), then
    /// `mn`. Feeds every response before the closing `MN` to `each`
    /// with its index (responses come in request order), while the requests
    /// are still being written. Any other number of responses is a protocol
    /// error: the stream is out of step.
    pub async fn pipeline<F>(&mut self, requests: &[u8], expected: usize, each: F) -> Result<(), McError>
    where
        F: FnMut(usize, &Meta, &[u8]) -> Result<(), McError>,
    {
        self.pipeline_sized(requests, expected, &mut AnswerGuess::default(), each).await
    }

    /// [`Connection::pipeline`], with reads waking for `guess` bytes per
    /// answer still due, and `guess` learning from this batch's answers
    /// for the next batch of its kind.
    pub async fn pipeline_sized<F>(
        &mut self,
        requests: &[u8],
        expected: usize,
        guess: &mut AnswerGuess,
        mut each: F,
    ) -> Result<(), McError>
    where
        F: FnMut(usize, &Meta, &[u8]) -> Result<(), McError>,
    {
        let Connection { reader, writer, server, timeout: t, stop } = self;
        let (read_total, written) = (reader.total.clone(), AtomicU64::new(0));
        let write = write_counted(writer, requests, server, *t, &written);
        let out_of_step = |got: String| McError::Unexpected {
            server: server.clone(),
            message: format!("{got} responses to {expected} requests"),
        };
        let answer = guess.get();
        let mut answered = 0;
        let read = async {
            let mut index = 0;
            loop {
                let Some(meta) = reader.buffered_meta()? else {
                    // Every answer still due, and the closing `MN`.
                    reader.expect((expected - index.min(expected)).saturating_mul(answer) + 4);
                    reader.fill_or_closed().await?;
                    continue;
                };
                if let Some(n) = meta.oversized {
                    reader.read_past(n).await?;
                }
                if meta.status == Status::Noop {
                    return if index == expected { Ok(()) } else { Err(out_of_step(index.to_string())) };
                }
                if index == expected {
                    return Err(out_of_step(format!("more than {expected}")));
                }
                // Every request carries its position as `O`, and memcached
                // echoes it on every answer but an error: an answer
                // that is not the next one's is a stream out of step, never
                // a value for the wrong key.
                match meta.opaque {
                    Some(o) if o as usize == index => {}
                    None if matches!(meta.status, Status::ServerError | Status::ClientError) => {}
                    other => {
                        return Err(McError::Unexpected {
                            server: server.clone(),
                            message: format!(
                                "answer {index} is for request {} (responses out of order)",
                                other.map_or_else(|| "unknown: no O token".to_owned(), |o| o.to_string())
                            ),
                        })
                    }
                }
                each(index, &meta, reader.frame())?;
                answered += reader.frame().len();
                index += 1;
            }
        };
        let window = *t;
        let cancelled = async {
            stop.requested().await;
            McError::Unexpected { server: server.clone(), message: "stopped in the middle of a batch".into() }
        };
        let stalled = async {
            let moved = || read_total.load(Ordering::Relaxed) + written.load(Ordering::Relaxed);
            let mut pace = Pace::new(window, MIN_BATCH_PROGRESS, tokio::time::Instant::now(), moved());
            loop {
                tokio::time::sleep(window).await;
                if let Err(slow) = pace.check(tokio::time::Instant::now(), moved()) {
                    return match slow.moved {
                        0 => McError::Timeout { server: server.clone(), secs: window.as_secs() },
                        _ => McError::Unexpected { server: server.clone(), message: slow.to_string() },
                    };
                }
            }
        };
        let done = tokio::select! {
            done = async { tokio::try_join!(write, read) } => done.map(|_| ()),
            e = stalled => Err(e),
            e = cancelled => Err(e),
        };
        self.reader.expect(0);
        if done.is_ok() {
            guess.learn(answered, expected);
        }
        done
    }

    /// [`Connection::pipeline_sized`] for a batch about `items`: answer `n`
    /// is about `items[n]`, and `each` gets that item. An answer `each`
    /// cannot take comes back as a message, which becomes an error naming
    /// this server. `guess` as for `pipeline_sized`; `None` waits for the
    /// shortest answer.
    pub async fn pipeline_items<T: Copy, F>(
        &mut self,
        requests: &[u8],
        items: &[T],
        guess: Option<&mut AnswerGuess>,
        mut each: F,
    ) -> Result<(), McError>
    where
        F: FnMut(T, &Meta, &[u8]) -> Result<(), String>,
    {
        let server = self.server.clone();
        let unexpected = |message| McError::Unexpected { server: server.clone(), message };
        let mut fresh = AnswerGuess::default();
        self.pipeline_sized(requests, items.len(), guess.unwrap_or(&mut fresh), |n, m, frame| {
            let item =
                items.get(n).copied().ok_or_else(|| unexpected(format!("answer {n} to {} requests", items.len())))?;
            each(item, m, frame).map_err(unexpected)
        })
        .await
    }

    /// How many items clients have removed on this server so far: the sum
    /// of `delete_hits`, `touch_hits` (a touch can make an item expire) and
    /// `cmd_flush` from `stats`. Unchanged between two reads, no client
    /// removed anything in between.
    pub async fn removals(&mut self) -> Result<u64, McError> {
        self.stats_sum(&[b"delete_hits", b"touch_hits", b"cmd_flush"]).await
    }

    /// Items evicted so far to make room (`evictions`).
    pub async fn evictions(&mut self) -> Result<u64, McError> {
        self.stats_sum(&[b"evictions"]).await
    }

    /// The sum of the named counters of `stats` (one missing counts 0). A
    /// sum past `u64` is a protocol error, never a wrapped count.
    pub async fn stats_sum(&mut self, names: &[&[u8]]) -> Result<u64, McError> {
        let values = self.stats(names).await?;
        values.iter().flatten().try_fold(0u64, |total, v| total.checked_add(*v)).ok_or_else(|| {
            self.reader.protocol(ProtoError::Malformed(format!("stats: the sum of {} counters overflows", names.len())))
        })
    }

    /// The named counters of `stats` (`None` for one the server does not
    /// print), read whole within the timeout: an answer of more than
    /// [`MAX_STAT_LINES`] lines (memcached prints about 90), or one that
    /// drips, is an error, never an endless wait.
    pub async fn stats(&mut self, names: &[&[u8]]) -> Result<Vec<Option<u64>>, McError> {
        let (server, t) = (self.server.clone(), self.timeout);
        whole(t, server, "stats", self.read_stats(b"stats\r\n", names)).await
    }

    /// The largest item the server stores (`item_size_max` of `stats
    /// settings`; `-I`), if it says.
    pub async fn item_size_max(&mut self) -> Result<Option<u64>, McError> {
        let (server, t) = (self.server.clone(), self.timeout);
        let values = whole(t, server, "stats settings", self.read_stats(b"stats settings\r\n", &[b"item_size_max"]));
        Ok(values.await?.first().copied().flatten())
    }

    async fn read_stats(&mut self, command: &[u8], names: &[&[u8]]) -> Result<Vec<Option<u64>>, McError> {
        self.send(command).await?;
        let mut values = vec![None; names.len()];
        for _ in 0..MAX_STAT_LINES {
            self.reader.line().await?;
            let text = self.reader.frame().trim_ascii_end();
            if text == b"END" {
                return Ok(values);
            }
            let malformed = || ProtoError::Malformed(String::from_utf8_lossy(text).into_owned());
            let mut fields = text.split(|c| *c == b' ');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(b"STAT"), Some(name), Some(value)) => {
                    if let Some(slot) = names.iter().position(|n| *n == name).and_then(|i| values.get_mut(i)) {
                        *slot =
                            Some(proto::parse_decimal::<u64>(value).ok_or_else(|| self.reader.protocol(malformed()))?);
                    }
                }
                _ => return Err(self.reader.protocol(malformed())),
            }
        }
        Err(self.reader.protocol(ProtoError::Malformed(format!("stats: no END within {MAX_STAT_LINES} lines"))))
    }

    /// Whether the server knows the meta commands (upstream memcached 1.6+):
    /// `mn` answers `MN`, where a server without them says `ERROR`.
    pub async fn speaks_meta(&mut self) -> Result<bool, McError> {
        let (server, t) = (self.server.clone(), self.timeout);
        let ask = async {
            self.send(b"mn\r\n").await?;
            self.reader.line().await?;
            match self.reader.frame().trim_ascii_end() {
                b"MN" => Ok(true),
                b"ERROR" => Ok(false),
                other => Err(self.reader.protocol(ProtoError::Malformed(String::from_utf8_lossy(other).into_owned()))),
            }
        };
        whole(t, server, "mn", ask).await
    }

    /// `version`: the server's version string.
    pub async fn version(&mut self) -> Result<String, McError> {
        let (server, t) = (self.server.clone(), self.timeout);
        let ask = async {
            self.send(b"version\r\n").await?;
            self.reader.line().await?;
            let line = String::from_utf8_lossy(self.reader.frame()).trim().to_owned();
            line.strip_prefix("VERSION ")
                .map(str::to_owned)
                .ok_or_else(|| self.reader.protocol(ProtoError::Malformed(line)))
        };
        whole(t, server, "version", ask).await
    }

    /// Reads one item: `(value, flags, remaining ttl, cas)`, or `None`.
    pub async fn get(&mut self, raw_key: &[u8]) -> Result<Option<Item>, McError> {
        let mut req = Vec::new();
        let mut wire = Vec::new();
        let base64 = self.key(raw_key, &mut wire)?;
        proto::mg(&mut req, WireKey { bytes: &wire, base64 }, "f t v c", 0);
        proto::mn(&mut req);
        let mut item = None;
        self.pipeline(&req, 1, |_, m, frame| {
            if m.status == Status::Value {
                item = Some(Item {
                    value: m.value.and_then(|s| s.of(frame)).unwrap_or_default().to_vec(),
                    flags: m.flags.unwrap_or(0),
                    ttl: m.ttl.unwrap_or(-1),
                    cas: m.cas.unwrap_or(0),
                });
            }
            Ok(())
        })
        .await?;
        Ok(item)
    }

    /// Plain set (`ttl` as memcached reads it: 0 none, ≤ 30 days relative,
    /// otherwise absolute). For clients and tests, never for resync.
    pub async fn set(&mut self, raw_key: &[u8], value: &[u8], flags: u32, ttl: u64) -> Result<(), McError> {
        self.store(raw_key, value, flags, ttl, proto::SetMode::Set { cas: None }).await.map(|_| ())
    }

    /// One store; returns the response status.
    pub async fn store(
        &mut self,
        raw_key: &[u8],
        value: &[u8],
        flags: u32,
        ttl: u64,
        mode: proto::SetMode,
    ) -> Result<Status, McError> {
        let mut req = Vec::new();
        let mut wire = Vec::new();
        let base64 = self.key(raw_key, &mut wire)?;
        proto::ms(&mut req, WireKey { bytes: &wire, base64 }, value, flags, ttl, mode, 0);
        proto::mn(&mut req);
        let mut status = Status::Noop;
        self.pipeline(&req, 1, |_, m, _| {
            status = m.status;
            Ok(())
        })
        .await?;
        Ok(status)
    }

    /// Deletes a key; returns whether it was there.
    pub async fn delete(&mut self, raw_key: &[u8]) -> Result<bool, McError> {
        let mut req = Vec::new();
        let mut wire = Vec::new();
        let base64 = self.key(raw_key, &mut wire)?;
        proto::md(&mut req, WireKey { bytes: &wire, base64 }, None, 0);
        proto::mn(&mut req);
        let mut found = false;
        self.pipeline(&req, 1, |_, m, _| {
            found = m.status == Status::Stored;
            Ok(())
        })
        .await?;
        Ok(found)
    }

    fn key(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<bool, McError> {
        proto::encode_key(raw, out).map_err(|source| McError::Key { server: self.server.clone(), source })
    }
}

/// One item as read back by [`Connection::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub value: Vec<u8>,
    pub flags: u32,
    pub ttl: i64,
    pub cas: u64,
}

async fn write_all(w: &mut OwnedWriteHalf, bytes: &[u8], server: &str, t: Duration) -> Result<(), McError> {
    write_counted(w, bytes, server, t, &AtomicU64::new(0)).await
}

/// `ask` (a request and its short answer) within `t` as a whole, not per
/// read: a peer that drips its answer a byte at a time holds us for one
/// `--io-timeout`, not for as many as it has bytes.
async fn whole<T>(
    t: Duration,
    server: String,
    what: &str,
    ask: impl std::future::Future<Output = Result<T, McError>>,
) -> Result<T, McError> {
    timeout(t, ask).await.unwrap_or_else(|_| {
        Err(McError::Unexpected { server, message: format!("{what}: no complete answer within {} s", t.as_secs()) })
    })
}

/// Writes `bytes`, adding what went out to `written`. Each write hands
/// the socket all that is left and must move something within `t`: the
/// timeout counts time without progress, not the time a large batch
/// takes. (Pieces of 64 KiB, each written whole within `t`, made four
/// times the `sendto` calls, each waking the server's worker: 2,514
/// against 762 in a 1 M 3→4, 2% of the copy's CPU.)
async fn write_counted(
    w: &mut OwnedWriteHalf,
    mut bytes: &[u8],
    server: &str,
    t: Duration,
    written: &AtomicU64,
) -> Result<(), McError> {
    while !bytes.is_empty() {
        let n = timeout(t, w.write(bytes))
            .await
            .map_err(|_| McError::Timeout { server: server.to_owned(), secs: t.as_secs() })?
            .map_err(|source| McError::Io { server: server.to_owned(), source })?;
        if n == 0 {
            let source = std::io::Error::from(std::io::ErrorKind::WriteZero);
            return Err(McError::Io { server: server.to_owned(), source });
        }
        written.fetch_add(n as u64, Ordering::Relaxed);
        bytes = bytes.get(n..).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connected pair: our write half, and the server's socket, which
    /// reads `chunk` bytes every `every` (never, for `None`).
    async fn reading_server(pace: Option<(usize, Duration)>) -> OwnedWriteHalf {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let Some((chunk, every)) = pace else {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            };
            let mut buf = vec![0; chunk];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                let _ = n;
                tokio::time::sleep(every).await;
            }
        });
        TcpStream::connect(addr).await.unwrap().into_split().1
    }

    /// 64 MiB is more than loopback's socket buffers hold, so the writes
    /// depend on the server reading.
    const LARGE: usize = 64 << 20;

    #[tokio::test]
    async fn a_write_the_server_never_reads_times_out_without_progress() {
        let mut w = reading_server(None).await;
        let (written, start) = (AtomicU64::new(0), std::time::Instant::now());
        let r = write_counted(&mut w, &vec![b'x'; LARGE], "server", Duration::from_millis(300), &written).await;
        assert!(matches!(r, Err(McError::Timeout { .. })), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(20), "bounded: {:?}", start.elapsed());
        assert!(written.load(Ordering::Relaxed) < LARGE as u64);
    }

    /// The timeout is time without progress: a write that takes far
    /// longer than it, moving all along, completes.
    #[tokio::test]
    async fn a_slow_write_that_moves_completes_past_the_timeout() {
        let mut w = reading_server(Some((1 << 20, Duration::from_millis(40)))).await;
        let (written, start) = (AtomicU64::new(0), std::time::Instant::now());
        let t = Duration::from_millis(300);
        write_counted(&mut w, &vec![b'x'; LARGE], "server", t, &written).await.unwrap();
        assert_eq!(written.load(Ordering::Relaxed), LARGE as u64);
        assert!(start.elapsed() > t, "the write must outlast the timeout to mean anything: {:?}", start.elapsed());
    }

    /// A server that answers one `stats` with `answer`.
    async fn answering(answer: Vec<u8>) -> Connection {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 7];
            s.read_exact(&mut req).await.unwrap();
            let _ = s.write_all(&answer).await;
            let _ = s.read(&mut req).await;
        });
        Connection::connect(&addr, Duration::from_secs(2)).await.unwrap()
    }

    #[tokio::test]
    async fn stats_sums_the_named_counters() {
        let mut c = answering(b"STAT pid 9\r\nSTAT delete_hits 5\r\nSTAT touch_hits 2\r\nEND\r\n".to_vec()).await;
        assert_eq!(c.removals().await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_stats_sum_past_u64_is_an_error_not_a_wrap() {
        let answer = format!("STAT delete_hits {}\r\nSTAT touch_hits 2\r\nEND\r\n", u64::MAX);
        let mut c = answering(answer.into_bytes()).await;
        let err = c.removals().await.unwrap_err().to_string();
        assert!(err.contains("stats: the sum of 3 counters overflows"), "{err}");
    }

    #[tokio::test]
    async fn a_counter_the_server_does_not_print_is_none_not_zero() {
        let mut c = answering(b"STAT pid 9\r\nSTAT curr_items 0\r\nEND\r\n".to_vec()).await;
        assert_eq!(c.stats(&[b"curr_items", b"limit_maxbytes"]).await.unwrap(), vec![Some(0), None]);
    }

    /// Issue 29: a peer that drips its answer kept each read inside the
    /// timeout, and a stats answer of 4,096 lines at a byte a second took
    /// hours. The answer must now arrive whole within the timeout.
    #[tokio::test]
    async fn an_answer_that_drips_is_given_up_after_one_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 7];
            s.read_exact(&mut req).await.unwrap();
            for b in b"STAT pid 9\r\n".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut c = Connection::connect(&addr, Duration::from_secs(1)).await.unwrap();
        let started = std::time::Instant::now();
        let err = c.removals().await.unwrap_err().to_string();
        assert!(err.contains("stats: no complete answer within 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "gave up after {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn endless_stats_are_an_error() {
        let answer = b"STAT curr_items 1\r\n".repeat(MAX_STAT_LINES + 10);
        let mut c = answering(answer).await;
        let err = c.removals().await.unwrap_err().to_string();
        assert!(err.contains("no END within 4096 lines"), "{err}");
    }
}
