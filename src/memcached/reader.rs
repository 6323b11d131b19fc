//! The read side of a memcached connection: one buffer, frames parsed in
//! place, and reads that wake in bulk (`SO_RCVLOWAT`) with a short settle,
//! so the copy sleeps until a useful amount has arrived.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::dump::{parse_dump_line, DumpLine, DumpMode};
use super::proto::{self, Meta, ProtoError, MAX_LINE};
use super::McError;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::timeout;

/// The most a read waits for (`SO_RCVLOWAT`): a dump or a batch's answers
/// read 64 KiB per wake-up rather than a few packets.
const BULK_READ: usize = 64 * 1024;
/// How long a read waits for that much before it takes what has come.
const BULK_SETTLE: Duration = Duration::from_millis(2);
/// The shortest answer to a request carrying `O<n>`: `HD O0\r\n`.
pub const MIN_ANSWER: usize = 7;

/// What the reads of one kind of pipeline wait for per answer due: half
/// the mean answer of the previous batch of that kind (at least
/// [`MIN_ANSWER`]). A guess: a batch of unusually short answers (misses)
/// costs a 2 ms settle, never a hang.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnswerGuess(usize);

impl AnswerGuess {
    pub fn get(self) -> usize {
        self.0.max(MIN_ANSWER)
    }

    /// Learns from a batch: `answers` answers of `bytes` in all.
    pub fn learn(&mut self, bytes: usize, answers: usize) {
        if let Some(mean) = bytes.checked_div(answers) {
            self.0 = mean / 2;
        }
    }
}

/// Sets `SO_RCVLOWAT`; false if the system refuses.
fn set_rcvlowat(socket: &OwnedReadHalf, bytes: usize) -> bool {
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket.as_ref());
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // nix 0.29 has no RcvLowat option; this is the one raw setsockopt.
    // SAFETY: `fd` is a live socket owned by `socket`, and the option
    // value is a c_int whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The read side with its buffer: frames are parsed in place.
pub struct Reader {
    pub(super) server: String,
    pub(super) inner: OwnedReadHalf,
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) frame: Range<usize>,
    pub(super) timeout: Duration,
    /// Bytes read so far, for the progress rule of [`Connection::pipeline`].
    pub(super) total: Arc<AtomicU64>,
    /// Bytes the caller knows are still to come, counted from `start` (a
    /// lower bound; `usize::MAX` for a dump, 0 when unknown): reads then
    /// wake only once that much has arrived (see [`Reader::fill`]).
    pub(super) expect: usize,
    /// The socket's `SO_RCVLOWAT` as last set; 0 where it cannot be set.
    pub(super) lowat: usize,
    /// Values larger than this are read past, never held (see
    /// [`Meta::oversized`]).
    pub(super) max_value: usize,
}

impl Reader {
    pub(super) fn new(inner: OwnedReadHalf, server: &str, timeout: Duration) -> Reader {
        Reader {
            server: server.to_owned(),
            inner,
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            frame: 0..0,
            timeout,
            total: Arc::new(AtomicU64::new(0)),
            expect: 0,
            lowat: 1,
            max_value: proto::MAX_VALUE,
        }
    }

    /// Reads more bytes; `Ok(false)` at a clean end of stream.
    async fn fill(&mut self) -> Result<bool, McError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < self.buf.len() / 4 {
            // Little room left at the tail: move the partial frame to the
            // front rather than read a few bytes at a time.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(proto::MAX_VALUE + 2 * MAX_LINE);
            if grown <= self.buf.len() {
                return Err(self.protocol(ProtoError::LineTooLong));
            }
            self.buf.resize(grown, 0);
        }
        // end < len here; an empty tail would read as a close.
        let want = self.expect.saturating_sub(self.end - self.start).clamp(1, self.buf.len() - self.end).min(BULK_READ);
        // Rounded down to a power of two: still a lower bound, and the
        // mark changes a few times per batch rather than at every read.
        let want = 1 << want.ilog2();
        let n = if self.wake_at(want) > 1 {
            self.read_bulk().await?
        } else {
            let read = self.inner.read(self.buf.get_mut(self.end..).unwrap_or_default());
            timeout(self.timeout, read)
                .await
                .map_err(|_| McError::Timeout { server: self.server.clone(), secs: self.timeout.as_secs() })?
                .map_err(|source| McError::Io { server: self.server.clone(), source })?
        };
        self.end += n;
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n > 0)
    }

    /// Sets the socket to wake reads at `want` bytes; returns what it is
    /// now set to (1 if it cannot be set: reads then wake at every byte).
    fn wake_at(&mut self, want: usize) -> usize {
        if self.lowat == 0 || self.lowat == want {
            return self.lowat.max(1);
        }
        self.lowat = if set_rcvlowat(&self.inner, want) { want } else { 0 };
        self.lowat.max(1)
    }

    /// A read that waits for the socket's low-water mark, or for
    /// [`BULK_SETTLE`], whichever comes first, then takes what is there:
    /// the mark is only ever a lower bound of what is coming, and a wrong
    /// one costs a settle, never a hang. The wait is tokio's own read, which
    /// forgets the socket's readiness after a read that drained it: a
    /// `try_read` keeps it, and every later read then returned at once
    /// with the packet or two that had come meanwhile (issue 32: the
    /// answers to a batch came in reads of about 1 KiB, whatever the mark).
    async fn read_bulk(&mut self) -> Result<usize, McError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let tail = self.buf.get_mut(self.end..).unwrap_or_default();
            let read = match timeout(BULK_SETTLE, self.inner.read(tail)).await {
                Ok(read) => read,
                // Settled below the mark: ask the socket itself, without
                // blocking (tokio saw no readiness, there is none below it).
                Err(_) => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(self.inner.as_ref());
                    nix::sys::socket::recv(fd, tail, nix::sys::socket::MsgFlags::MSG_DONTWAIT)
                        .map_err(std::io::Error::from)
                }
            };
            match read {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(source) => return Err(McError::Io { server: self.server.clone(), source }),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(McError::Timeout { server: self.server.clone(), secs: self.timeout.as_secs() });
            }
        }
    }

    /// Bytes read from the socket so far.
    pub fn bytes_read(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// From now on, reads wait for `bytes` more than is buffered (a lower
    /// bound of what is coming; `usize::MAX` for a stream without end).
    pub fn expect(&mut self, bytes: usize) {
        self.expect = bytes;
    }

    pub(super) fn protocol(&self, source: ProtoError) -> McError {
        McError::Protocol { server: self.server.clone(), source }
    }

    /// The next frame, parsed by `parse` (which returns the frame length).
    async fn next<T>(&mut self, parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ProtoError>) -> Result<T, McError> {
        loop {
            if let Some(item) = self.buffered(&parse)? {
                return Ok(item);
            }
            self.fill_or_closed().await?;
        }
    }

    /// The next frame if the buffer already holds all of it; no I/O.
    fn buffered<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ProtoError>,
    ) -> Result<Option<T>, McError> {
        match parse(self.buf.get(self.start..self.end).unwrap_or_default()) {
            Ok(Some((item, len))) => {
                self.frame = self.start..self.start + len;
                self.start += len;
                Ok(Some(item))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.protocol(e)),
        }
    }

    /// Reads more bytes; a close (even a clean one) is an error here, as
    /// the caller is waiting for the rest of a frame.
    pub async fn fill_or_closed(&mut self) -> Result<(), McError> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(McError::Closed { server: self.server.clone(), partial: self.start != self.end })
        }
    }

    /// Values over `bytes` are read past without being held: memory is
    /// bounded by what is kept, not by what a server announces.
    pub fn limit_values(&mut self, bytes: usize) {
        self.max_value = bytes.min(proto::MAX_VALUE);
    }

    /// Reads more bytes of a frame begun: a close is one in the middle
    /// of a response, however much of it is buffered.
    async fn fill_in_frame(&mut self) -> Result<(), McError> {
        match self.fill().await? {
            true => Ok(()),
            false => Err(McError::Closed { server: self.server.clone(), partial: true }),
        }
    }

    /// The next meta response. One whose value is over the limit comes
    /// with [`Meta::oversized`] set, its value read past and dropped. (The
    /// copy reads a batch's answers with [`Reader::buffered_meta`].)
    #[cfg(test)]
    pub async fn meta(&mut self) -> Result<Meta, McError> {
        let meta = loop {
            match self.buffered_meta()? {
                Some(meta) => break meta,
                None => self.fill_or_closed().await?,
            }
        };
        if let Some(n) = meta.oversized {
            self.read_past(n).await?;
        }
        Ok(meta)
    }

    /// The next meta response if the buffer holds it (its header alone
    /// when [`Meta::oversized`]: then [`Reader::read_past`] must read
    /// past the value); no I/O. A batch's answers are parsed in a plain
    /// loop over what one read brought, not one future per answer: every
    /// key of a copy has three or four answers, and each layer of
    /// `Result<Option<…>>` or future between the parser and the caller was
    /// a copy of the whole `Meta` (13% of a copy's CPU on memcached
    /// 1.6.45, issue 32).
    pub fn buffered_meta(&mut self) -> Result<Option<Meta>, McError> {
        match proto::parse_meta_within(self.buf.get(self.start..self.end).unwrap_or_default(), self.max_value) {
            Ok(Some(meta)) => {
                self.frame = self.start..self.start + meta.len;
                self.start += meta.len;
                Ok(Some(meta))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.protocol(e)),
        }
    }

    /// Reads past the `n`-byte value of an oversized answer that
    /// [`Reader::buffered_meta`] returned ([`Meta::oversized`]).
    pub async fn read_past(&mut self, n: usize) -> Result<(), McError> {
        self.skip(n).await?;
        // The header's bytes may be overwritten by now: no frame.
        self.frame = 0..0;
        Ok(())
    }

    /// Reads past `n` bytes of value and the CRLF after it, a buffer at a
    /// time, keeping none of it.
    async fn skip(&mut self, mut n: usize) -> Result<(), McError> {
        loop {
            let take = (self.end - self.start).min(n);
            self.start += take;
            n -= take;
            if n == 0 {
                break;
            }
            self.expect = n;
            self.fill_in_frame().await?;
        }
        while self.end - self.start < 2 {
            self.expect = 2;
            self.fill_in_frame().await?;
        }
        if self.buf.get(self.start..self.start + 2) != Some(b"\r\n") {
            return Err(self.protocol(ProtoError::Malformed("a value not followed by CRLF".into())));
        }
        self.start += 2;
        Ok(())
    }

    /// The next text line (at most [`MAX_LINE`] bytes), as [`Reader::frame`].
    pub async fn line(&mut self) -> Result<(), McError> {
        self.next(|b| Ok(proto::first_line(b)?.map(|(_, len)| ((), len)))).await
    }

    /// The next dump line.
    pub async fn dump_line(&mut self, mode: DumpMode) -> Result<DumpLine, McError> {
        self.next(|b| parse_dump_line(b, mode)).await
    }

    /// The next dump line if it is already buffered (then call
    /// [`Reader::fill_or_closed`]): a dump's lines are parsed in a plain
    /// loop over what one read brought, not one future per line.
    pub fn buffered_dump_line(&mut self, mode: DumpMode) -> Result<Option<DumpLine>, McError> {
        self.buffered(|b| parse_dump_line(b, mode))
    }

    /// Puts the frame returned last back, to be returned again.
    pub fn unread_frame(&mut self) {
        self.start = self.frame.start;
    }

    /// The bytes of the frame returned last; valid until the next read.
    pub fn frame(&self) -> &[u8] {
        self.buf.get(self.frame.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcached::dump::KeyEncoding;
    use crate::memcached::proto::Status;
    use crate::memcached::Connection;
    use tokio::io::AsyncWriteExt;

    /// A server that sends `lines`, then keeps the connection open and
    /// silent.
    async fn sending_then_silent(lines: &'static [u8]) -> Connection {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(lines).await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        Connection::connect(&addr, Duration::from_secs(30)).await.unwrap()
    }

    fn rcvlowat(c: &Connection) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let (mut value, mut len) = (0 as libc::c_int, std::mem::size_of::<libc::c_int>() as libc::socklen_t);
        let fd = c.reader.inner.as_ref().as_raw_fd();
        // SAFETY: a live socket, and a c_int with its length.
        let rc = unsafe {
            libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, std::ptr::from_mut(&mut value).cast(), &mut len)
        };
        assert_eq!(rc, 0);
        value
    }

    #[tokio::test]
    async fn a_dump_is_read_64_kib_per_wake_up() {
        let mut c = sending_then_silent(b"mg a\r\n").await;
        c.reader.expect(usize::MAX);
        assert_eq!(
            c.reader.dump_line(DumpMode::Mgdump).await.unwrap(),
            DumpLine::Key { key: 3..4, encoding: KeyEncoding::Plain, size: None, flags: None }
        );
        assert_eq!(rcvlowat(&c), 64 * 1024);
    }

    #[tokio::test]
    async fn a_read_short_of_the_mark_takes_what_came_instead_of_waiting() {
        // Six bytes, the mark at 64 KiB, the server silent after: the line
        // comes after the settle (2 ms), not after the 30 s timeout.
        let mut c = sending_then_silent(b"mg a\r\n").await;
        c.reader.expect(usize::MAX);
        let started = std::time::Instant::now();
        assert!(matches!(c.reader.dump_line(DumpMode::Mgdump).await.unwrap(), DumpLine::Key { .. }));
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        // A read that finds nothing at all keeps waiting (until the
        // timeout): silence is not taken as the end.
        let err = tokio::time::timeout(Duration::from_millis(300), c.reader.dump_line(DumpMode::Mgdump)).await;
        assert!(err.is_err(), "a silent server is waited for, not taken as ended");
    }

    /// Issue 29: two sources each sending a 256 MiB value made a resync
    /// peak at 775 MiB. A value over the reader's limit is read past from
    /// its header: the buffer never grows to hold it, and the answers
    /// after it are read in step.
    #[tokio::test]
    async fn a_value_over_the_limit_is_read_past_without_being_held() {
        const BIG: usize = 3 << 20;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(format!("VA {BIG} f1 t-1 O0\r\n").as_bytes()).await.unwrap();
            for _ in 0..BIG / 4096 {
                s.write_all(&[b'x'; 4096]).await.unwrap();
            }
            s.write_all(b"\r\nVA 5 f2 t-1 O1\r\nhello\r\nMN\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut c = Connection::connect(&addr, Duration::from_secs(10)).await.unwrap();
        c.reader.limit_values(1 << 20);
        let mut seen = Vec::new();
        c.pipeline(b"", 2, |_, m, frame| {
            let value = m.value.and_then(|s| s.of(frame)).map(<[u8]>::to_vec);
            seen.push((m.status, m.flags, m.oversized, value));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            seen,
            vec![(Status::Value, Some(1), Some(BIG), None), (Status::Value, Some(2), None, Some(b"hello".to_vec()))]
        );
        assert_eq!(c.reader.buf.len(), 256 * 1024, "the buffer never grew to hold the large value");
    }

    #[tokio::test]
    async fn a_value_read_past_must_end_with_crlf() {
        let mut c = sending_then_silent(b"VA 3 O0\r\nabcXY").await;
        c.reader.limit_values(2);
        let err = c.reader.meta().await.unwrap_err().to_string();
        assert!(err.contains("a value not followed by CRLF"), "{err}");
    }

    #[test]
    fn reads_wait_for_half_the_mean_answer_of_the_last_batch() {
        let mut g = AnswerGuess::default();
        assert_eq!(g.get(), MIN_ANSWER, "nothing known: the shortest answer");
        g.learn(140 * 1024, 1024);
        assert_eq!(g.get(), 70);
        g.learn(0, 0);
        assert_eq!(g.get(), 70, "an empty batch teaches nothing");
        g.learn(9 * 100, 100);
        assert_eq!(g.get(), MIN_ANSWER, "never below the shortest answer");
    }

    #[tokio::test]
    async fn a_guess_too_high_costs_a_settle_not_a_hang() {
        // Two misses of 7 bytes where 2,000 bytes each were guessed.
        let mut c = sending_then_silent(b"EN O0\r\nEN O1\r\nMN\r\n").await;
        let mut guess = AnswerGuess::default();
        guess.learn(4000, 1);
        let started = std::time::Instant::now();
        let mut answers = 0;
        c.pipeline_sized(b"mg a v O0\r\nmg b v O1\r\nmn\r\n", 2, &mut guess, |_, m, _| {
            assert_eq!(m.status, Status::Miss);
            answers += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(answers, 2);
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        assert_eq!(guess.get(), MIN_ANSWER, "and the next batch's guess follows");
    }
}
