//! A private net-snmp snmptrapd receiving INFORMs on a loopback UDP port;
//! each notification is logged as one `-On` line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Snmptrapd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One received notification: `(source, [(oid, value)])`.
pub type Received = (String, Vec<(String, String)>);

impl Snmptrapd {
    /// Listens on a free loopback port, accepting community `community`.
    /// A port taken between finding it and binding it (by another test)
    /// makes snmptrapd exit: then another port is tried.
    #[allow(dead_code, reason = "not every test binary receives INFORMs")]
    pub fn start_any(community: &str) -> Snmptrapd {
        for _ in 0..5 {
            if let Some(t) = Self::try_start(free_udp_port(), community) {
                return t;
            }
        }
        panic!("snmptrapd did not start on any of 5 ports");
    }

    /// Listens on `127.0.0.1:port`, accepting community `community`.
    pub fn start(port: u16, community: &str) -> Snmptrapd {
        Self::try_start(port, community).unwrap_or_else(|| panic!("snmptrapd could not listen on port {port}"))
    }

    /// Started and listening on `port` (its own: it exits if it cannot bind).
    fn try_start(port: u16, community: &str) -> Option<Snmptrapd> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("persistent")).expect("dir");
        std::fs::write(dir.path().join("snmptrapd.conf"), format!("authCommunity log,execute,net {community}\n"))
            .expect("conf");
        let log = std::fs::File::create(dir.path().join("log")).expect("log");
        let child = Command::new("snmptrapd")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(dir.path().join("snmptrapd.conf"))
            .args(["-On", "-F", "INFORM %b ## %V| %v\n"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", dir.path().join("persistent"))
            .env("MIBS", "")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start snmptrapd ({e}): install it, or run scripts/test.sh"));
        let mut t = Snmptrapd { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.log().contains("NET-SNMP version") {
            if !matches!(t.child.try_wait(), Ok(None)) || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // It announces itself once its ports are open, and exits when one
        // cannot be.
        std::thread::sleep(Duration::from_millis(100));
        (matches!(t.child.try_wait(), Ok(None)) && !t.log().contains("couldn't open")).then_some(t)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The notifications received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("INFORM "))
            .map(|l| {
                let (source, rest) = l.split_once(" ## ").unwrap_or((l, ""));
                let vars = rest
                    .split("| ")
                    .filter_map(|v| v.split_once(" = "))
                    .map(|(o, v)| (o.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                (source.to_owned(), vars)
            })
            .collect()
    }

    /// Waits until `n` notifications arrived (or `within` passed).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Snmptrapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("udp port")
}
