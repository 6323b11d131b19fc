//! A private net-snmp snmpd acting as AgentX master on loopback ports, and
//! the net-snmp command-line clients, for the SNMP integration tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Snmpd {
    pub udp_port: u16,
    pub agentx_port: u16,
    /// Set when the master listens on a unix socket instead of TCP.
    pub agentx_socket: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// How long a net-snmp client may take (it gives up on its own after
/// seconds: `-t 2 -r 1` per request).
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("udp port")
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("tcp port")
}

impl Snmpd {
    /// A master listening for AgentX on a loopback TCP port.
    pub fn start() -> Snmpd {
        Self::start_with(false)
    }

    /// A master listening for AgentX on a private unix socket (as Debian's
    /// `/var/agentx/master`).
    pub fn start_unix() -> Snmpd {
        Self::start_with(true)
    }

    /// Tries fresh ports until this snmpd is the one answering on them.
    fn start_with(unix: bool) -> Snmpd {
        for _ in 0..5 {
            if let Some(s) = Self::try_start_with(unix) {
                return s;
            }
        }
        panic!("snmpd did not start on any of 5 port pairs");
    }

    fn try_start_with(unix: bool) -> Option<Snmpd> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (udp_port, agentx_port) = (free_udp_port(), free_tcp_port());
        let agentx_socket = unix.then(|| dir.path().join("agentx.sock"));
        let socket = match &agentx_socket {
            Some(path) => format!("agentXSocket {}\nagentXPerms 777 777", path.display()),
            None => format!("agentXSocket tcp:127.0.0.1:{agentx_port}"),
        };
        let conf = format!(
            "agentAddress udp:127.0.0.1:{udp_port}\nmaster agentx\n{socket}\n\
             agentXTimeout 1\nagentXRetries 2\nrocommunity public 127.0.0.1\nrwcommunity private 127.0.0.1\n"
        );
        Self::with_conf(dir, udp_port, agentx_port, agentx_socket, &conf)
    }

    /// Debian's stock `/etc/snmp/snmpd.conf` as the package installs it,
    /// with `snippet` where its `includeDir /etc/snmp/snmpd.conf.d` reads
    /// the files an operator adds. Only what cannot be shared with the
    /// system's snmpd changes: the listening address (a private port), and
    /// the AgentX socket path and its owner (a private socket).
    pub fn start_debian_stock(snippet: &str) -> Snmpd {
        for _ in 0..5 {
            if let Some(s) = Self::try_debian_stock(snippet) {
                return s;
            }
        }
        panic!("snmpd (Debian's configuration) did not start on any of 5 ports");
    }

    fn try_debian_stock(snippet: &str) -> Option<Snmpd> {
        let stock = std::fs::read_to_string("/etc/snmp/snmpd.conf").expect("/etc/snmp/snmpd.conf (package snmpd)");
        let dir = tempfile::tempdir().expect("tempdir");
        let udp_port = free_udp_port();
        let socket = dir.path().join("agentx.sock");
        let mut conf = String::new();
        for line in stock.lines() {
            let first = line.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            match first.as_str() {
                "agentaddress" => conf.push_str(&format!("agentAddress udp:127.0.0.1:{udp_port}\n")),
                "includedir" => {
                    for l in snippet.lines() {
                        let l = l.replace("/var/agentx/master", &socket.display().to_string());
                        let perms = l.trim_start().to_ascii_lowercase().starts_with("agentxperms");
                        conf.push_str(if perms { "agentXPerms 777 777" } else { &l });
                        conf.push('\n');
                    }
                }
                _ => {
                    conf.push_str(line);
                    conf.push('\n');
                }
            }
        }
        assert!(conf.contains(&socket.display().to_string()), "the snippet names /var/agentx/master:\n{conf}");
        Self::with_conf(dir, udp_port, 0, Some(socket), &conf)
    }

    /// Started with `conf` and answering as itself, or `None` (a port was
    /// taken, or another snmpd answers there).
    fn with_conf(
        dir: tempfile::TempDir,
        udp_port: u16,
        agentx_port: u16,
        agentx_socket: Option<PathBuf>,
        conf: &str,
    ) -> Option<Snmpd> {
        // snmpd rewrites <persistent dir>/snmpd.conf on exit: keep ours apart.
        std::fs::create_dir(dir.path().join("conf")).expect("conf dir");
        std::fs::create_dir(dir.path().join("persistent")).expect("persistent dir");
        // Its sysName is its own directory's name: what says it is ours.
        let conf = format!("{conf}\nsysName {}\n", Self::token(&dir));
        std::fs::write(dir.path().join("conf/snmpd.conf"), conf).expect("write snmpd.conf");
        let mut s = Snmpd { udp_port, agentx_port, agentx_socket, dir, child: None };
        s.spawn().then_some(s)
    }

    fn token(dir: &tempfile::TempDir) -> String {
        dir.path().file_name().and_then(|n| n.to_str()).unwrap_or("snmpd").trim_start_matches('.').to_owned()
    }

    /// Whether it came up as itself: its own sysName on its UDP port, both
    /// ports opened (snmpd logs a port it could not open, and may run on).
    fn spawn(&mut self) -> bool {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("snmpd.log")).expect("log file");
        let child = Command::new("snmpd")
            // No SMUX: parallel test instances would fight over port 199.
            .args(["-f", "-Lo", "-C", "-I", "-smux", "-c"])
            .arg(d.join("conf/snmpd.conf"))
            .arg("-p")
            .arg(d.join("snmpd.pid"))
            .env("SNMP_PERSISTENT_DIR", d.join("persistent"))
            .env("MIBS", "")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start snmpd ({e}): install it, or run scripts/test.sh which does"));
        self.child = Some(child);
        let (deadline, token) = (Instant::now() + Duration::from_secs(10), Self::token(&self.dir));
        loop {
            let exited = self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || self.log().contains("Error opening specified endpoint") || Instant::now() > deadline {
                self.kill();
                return false;
            }
            let answer = self.get(&["1.3.6.1.2.1.1.5.0"]);
            if answer.contains("STRING") {
                if answer.contains(&token) {
                    return true;
                }
                self.kill(); // another snmpd answers on this port
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts it again on the same ports (the subagent under
    /// test has the AgentX address), retried for up to 5 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "snmpd did not start again on its ports: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("snmpd.log")).unwrap_or_default()
    }

    /// The subagent's `--agentx` argument: `tcp:127.0.0.1:PORT` or the path.
    pub fn agentx_address(&self) -> String {
        match &self.agentx_socket {
            Some(path) => path.display().to_string(),
            None => format!("tcp:127.0.0.1:{}", self.agentx_port),
        }
    }

    /// Runs a net-snmp client; `options` replace the default `-On`.
    fn client(&self, tool: &str, options: &[&str], args: &[&str]) -> String {
        let options = if options.is_empty() { &["-On"][..] } else { options };
        let mut cmd = Command::new(tool);
        cmd.args(["-v2c", "-c", "public", "-t", "2", "-r", "1"])
            .args(options)
            .arg(format!("127.0.0.1:{}", self.udp_port))
            .args(args)
            .env("MIBS", "");
        // Two tries of 2 s per request; a walk makes many requests.
        let out = super::bounded::run_bounded(&mut cmd, CLIENT_LIMIT, &format!("{tool} to answer"));
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    pub fn get(&self, oids: &[&str]) -> String {
        self.client("snmpget", &[], oids)
    }

    pub fn walk(&self, oid: &str) -> String {
        self.client("snmpwalk", &[], &[oid])
    }

    pub fn bulkwalk(&self, oid: &str) -> String {
        self.client("snmpbulkwalk", &[], &[oid])
    }

    /// snmpwalk with the project's MIB loaded by name.
    pub fn walk_with_names(&self, oid: &str) -> String {
        let dirs = format!("{}:{}", shared_mibs().display(), project_mibs().display());
        self.client("snmpwalk", &["-M", &dirs, "-m", "PROJECT-CLEARWATER-MIB"], &[oid])
    }

    pub fn set(&self, oid: &str, ty: &str, value: &str) -> String {
        let mut cmd = Command::new("snmpset");
        cmd.args(["-v2c", "-c", "private", "-On", "-t", "2", "-r", "0"])
            .arg(format!("127.0.0.1:{}", self.udp_port))
            .args([oid, ty, value])
            .env("MIBS", "");
        let out = super::bounded::run_bounded(&mut cmd, CLIENT_LIMIT, "snmpset to answer");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// Waits until `oid` is served with a Gauge32 value.
    pub fn wait_served(&self, oid: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.get(&[oid]).contains("Gauge32") {
            assert!(start.elapsed() < within, "{oid} not served within {within:?}: {}", self.get(&[oid]));
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn project_mibs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mibs")
}

/// The IETF base MIBs from `../shared/mibs`.
pub fn shared_mibs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/mibs")
}

/// `(oid, type, value)` of each line of `-On` output.
pub fn parse(output: &str) -> Vec<(String, String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let (oid, rest) = l.split_once(" = ")?;
            let (ty, value) = rest.split_once(": ").unwrap_or((rest, ""));
            Some((oid.trim().to_owned(), ty.to_owned(), value.to_owned()))
        })
        .collect()
}
