//! The stand-in alarm agent (tests/clients/alarm_agent.py: a libzmq REP
//! socket, as Clearwater's agent binds) and what it received.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct StandInAgent {
    pub socket: PathBuf,
    child: Child,
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl StandInAgent {
    /// Listening at `socket`; `silent` takes one request and never answers.
    pub fn start(socket: &Path, silent: bool) -> StandInAgent {
        let script = format!("{}/tests/clients/alarm_agent.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(socket)
            .args(silent.then_some("silent"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 with python3-zmq (scripts/setup.sh installs it)");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok);
        assert_eq!(first.as_deref(), Some("listening"), "the stand-in agent did not start");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
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
