//! The stand-in alarm agent (tests/clients/alarm_agent.py: a libzmq REP
//! socket, as Clearwater's agent binds) and what it received; and hostile
//! ones (tests/clients/hostile_alarm_agent.py: raw ZMTP on a unix socket).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct StandInAgent {
    pub socket: PathBuf,
    child: Child,
    requests: Lines,
}

/// A script's lines after `listening`, with when each arrived.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// Runs `script` (in tests/clients) with `args`, waits for its
/// `listening` line (at most 10 s), and collects its later lines.
fn spawn_script(script: &str, args: &[&str]) -> (Child, Lines) {
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with python3-zmq (scripts/setup.sh installs it)");
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).ok().flatten();
    if first.as_deref() != Some("listening") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{script} did not say it was listening within 10 s: {first:?}");
    }
    (child, lines)
}

impl StandInAgent {
    /// Listening at `socket`; `silent` takes one request and never answers.
    pub fn start(socket: &Path, silent: bool) -> StandInAgent {
        let path = socket.to_str().expect("utf-8 path");
        let args: &[&str] = if silent { &[path, "silent"] } else { &[path] };
        let (child, requests) = spawn_script("alarm_agent.py", args);
        StandInAgent { socket: socket.to_owned(), child, requests }
    }

    /// The requests so far, each as its frames joined by spaces.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    /// The requests with when they arrived.
    pub fn timed(&self) -> Vec<(Instant, String)> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived, or `within` passed.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        while self.requests.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.requests()
    }
}

impl Drop for StandInAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent that breaks the protocol in one of the script's modes
/// (`huge`, `flood`, `command`) on every connection.
pub struct HostileAgent {
    child: Child,
    lines: Lines,
}

impl HostileAgent {
    pub fn start(socket: &Path, mode: &str) -> HostileAgent {
        let (child, lines) = spawn_script("hostile_alarm_agent.py", &[socket.to_str().expect("utf-8 path"), mode]);
        HostileAgent { child, lines }
    }

    /// What it said so far: `request …`, `sent N`, `dropped`.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect()
    }

    /// Waits until the client has dropped `n` connections, at most `within`.
    pub fn wait_for_drops(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        while self.lines().iter().filter(|l| *l == "dropped").count() < n {
            assert!(
                Instant::now() < deadline,
                "the client did not drop {n} connections in {within:?}: {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lines()
    }
}

impl Drop for HostileAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
