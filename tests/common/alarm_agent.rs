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
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        // Its first line says it listens; bounded, as a script that hangs
        // before binding would otherwise hold the test for ever.
        let mut agent = StandInAgent { socket: socket.to_owned(), child, requests };
        let listening = |a: &StandInAgent| a.requests.lock().unwrap().first().map(|(_, l)| l.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while listening(&agent).is_none() && Instant::now() < deadline && matches!(agent.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(listening(&agent).as_deref(), Some("listening"), "the stand-in agent did not start within 10 s");
        agent.requests.lock().unwrap().remove(0);
        agent
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
