//! Bounded waits for the tests (issue 29): every child process, thread,
//! future and polling loop a test waits on has a limit, and a test that
//! reaches it fails saying what it was waiting for (and, for a child, what
//! the child had printed so far) instead of hanging.
//!
//! Hand-written rather than a crate: std has no wait-with-timeout for a
//! `Child` (`wait_timeout` is a small single-purpose crate, and would
//! still need the pipe readers below, which keep a child that prints a
//! lot from blocking on a full pipe); what remains is a polling loop.

use std::future::Future;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of each stream a timeout message quotes (its end).
const QUOTED: usize = 4000;

/// A child that did not finish in time: killed, with what it had printed.
#[derive(Debug)]
pub struct TimedOut {
    pub limit: Duration,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl TimedOut {
    /// "SUBJECT did not finish within N s: WHAT", with the end of its output.
    pub fn message(&self, subject: &str, what: &str) -> String {
        format!(
            "{subject} did not finish within {} s: {what}\n--- its stdout so far ---\n{}\n--- its stderr so far ---\n{}",
            self.limit.as_secs_f64(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let cut = text.len().saturating_sub(QUOTED);
    let cut = (cut..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    if cut > 0 {
        format!("[… {cut} bytes before]{}", &text[cut..])
    } else {
        text.into_owned()
    }
}

/// A stream of a child read on its own thread into a shared buffer, so
/// that what was read is there even if the child never closes it.
struct Drain {
    got: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Drain {
    fn new(stream: Option<impl Read + Send + 'static>) -> Drain {
        let got = Arc::new(Mutex::new(Vec::new()));
        let reader = stream.map(|mut s| {
            let sink = got.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]);
                }
            })
        });
        Drain { got, reader }
    }

    /// What was read once the stream closed, or by `deadline` (a
    /// grandchild may hold the stream open after the child exits).
    fn finish(mut self, deadline: Instant) -> Vec<u8> {
        if let Some(reader) = self.reader.take() {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        std::mem::take(&mut *self.got.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Waits for an already started child for at most `limit`; its piped
/// stdout and stderr (if piped) are read meanwhile. On time, its output;
/// past it, the child is killed and `Err` holds what it had printed.
pub fn try_wait_within(mut child: Child, limit: Duration) -> Result<Output, TimedOut> {
    let (out, err) = (Drain::new(child.stdout.take()), Drain::new(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {}
            Ok(None) | Err(_) => break None,
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let after = Instant::now() + Duration::from_secs(2);
        return Err(TimedOut { limit, stdout: out.finish(after), stderr: err.finish(after) });
    };
    let after = Instant::now() + Duration::from_secs(5);
    Ok(Output { status, stdout: out.finish(after), stderr: err.finish(after) })
}

/// [`try_wait_within`], failing the test past `limit`: "child process
/// PID did not finish within N s: WHAT", with the child's output so far.
#[track_caller]
pub fn wait_bounded(child: Child, limit: Duration, what: &str) -> Output {
    let subject = format!("child process {}", child.id());
    match try_wait_within(child, limit) {
        Ok(out) => out,
        Err(t) => panic!("{}", t.message(&subject, what)),
    }
}

/// Runs `cmd` as `.output()` would (stdin empty, stdout and stderr
/// captured), for at most `limit`.
pub fn try_run_within(cmd: &mut Command, limit: Duration) -> Result<Output, TimedOut> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    try_wait_within(child, limit)
}

/// `.output()` with a limit: past it the child is killed and the test
/// fails with "`COMMAND` did not finish within N s: WHAT" and its output
/// so far. `what` says what the test was waiting for.
#[track_caller]
pub fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let shown = format!("{cmd:?}");
    match try_run_within(cmd, limit) {
        Ok(out) => out,
        Err(t) => panic!("{}", t.message(&shown, what)),
    }
}

/// [`run_bounded`] with `input` as the child's stdin (from a file, so a
/// child that never reads it cannot block the test on a full pipe).
#[track_caller]
pub fn run_bounded_with_input(cmd: &mut Command, input: &[u8], limit: Duration, what: &str) -> Output {
    let shown = format!("{cmd:?}");
    let child = spawn_with_input(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()), input);
    match try_wait_within(child, limit) {
        Ok(out) => out,
        Err(t) => panic!("{}", t.message(&shown, what)),
    }
}

/// Starts `cmd` with `input` as its stdin, read from an unlinked file.
pub fn spawn_with_input(cmd: &mut Command, input: &[u8]) -> Child {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile().expect("a file for the child's stdin");
    file.write_all(input).and_then(|_| file.rewind()).expect("write the child's stdin");
    cmd.stdin(Stdio::from(file)).spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Polls `done` until it holds; fails the test after `limit` with
/// "WHAT did not happen within N s" and `context()` (what the test
/// sees at that moment).
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {} s\n{}", limit.as_secs_f64(), context());
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Awaits `future` for at most `limit`; past it the test fails with
/// "WHAT did not finish within N s".
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {} s", limit.as_secs_f64()),
    }
}

/// Joins a thread for at most `limit`; a panic in it becomes the test's
/// own (its message kept), and a thread still running past the limit
/// fails the test with "WHAT did not finish within N s".
#[track_caller]
pub fn join_bounded<T>(handle: JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "{what} did not finish within {} s", limit.as_secs_f64());
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
