//! Real memcached processes for the integration tests, and the client-side
//! helpers the tests use to load and inspect them.
#![allow(dead_code)]

#[allow(dead_code, reason = "only the alarm tests use the stand-in agent")]
pub mod alarm_agent;
pub mod bounded;
pub mod daemon;
pub mod fake;
// Issue 31: the metrics endpoint's client and a real Prometheus.
pub mod http;
pub mod oracle;
pub mod prometheus;
pub mod snmpd;
pub mod snmptrapd;

use astaire::memcached::dump::DumpMode;
use astaire::memcached::proto::decode_key;
use astaire::memcached::{Connection, Item, DEFAULT_TIMEOUT};
use astaire::resync::dump::dump_keys;
use astaire::resync::Options;
use astaire::view::VBUCKETS;
#[allow(unused_imports, reason = "not every test binary uses every bounded wait")]
pub use bounded::{join_bounded, run_bounded, run_bounded_with_input, wait_bounded, wait_until, within};
pub use oracle::View;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private memcached on a loopback port, killed on drop.
pub struct Memcached {
    pub port: u16,
    child: Child,
    binary: String,
    args: Vec<String>,
}

/// The memcached binary the tests run: `ASTAIRE_TEST_MEMCACHED` (a path,
/// as `scripts/memcached-versions.sh` builds them), or `memcached` on PATH.
pub fn memcached_binary() -> String {
    std::env::var("ASTAIRE_TEST_MEMCACHED").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "memcached".into())
}

/// A loopback TCP port that refuses connections and that nobody else can
/// take while this is held: a socket bound to it that never listens. (A
/// port merely found free and released could be taken by another test's
/// server in the meantime.)
pub struct RefusedPort {
    pub port: u16,
    _socket: std::os::fd::OwnedFd,
}

impl RefusedPort {
    #[allow(dead_code, reason = "not every test binary needs one")]
    pub fn new() -> RefusedPort {
        use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
        let socket = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        bind(std::os::fd::AsRawFd::as_raw_fd(&socket), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
        let addr: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&socket)).expect("getsockname");
        RefusedPort { port: addr.port(), _socket: socket }
    }

    #[allow(dead_code, reason = "not every test binary needs one")]
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A loopback TCP port free when asked (for servers the tests start).
pub fn free_port_pub() -> u16 {
    free_port()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Memcached {
    pub fn start() -> Memcached {
        Self::start_with(&[])
    }

    /// Starts memcached with extra arguments (e.g. `-X`).
    ///
    /// The port is free when chosen, but another test running in parallel
    /// may bind it before memcached does (the kernel hands a just-released
    /// port out again): memcached then exits, and something else answers
    /// there. So readiness means the server on the port reports this
    /// child's pid; otherwise a new port is tried.
    pub fn start_with(extra: &[&str]) -> Memcached {
        Self::start_binary(&memcached_binary(), extra)
    }

    /// [`Memcached::start_with`] for a given memcached binary.
    pub fn start_binary(binary: &str, extra: &[&str]) -> Memcached {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let port = free_port();
            let child = Self::spawn(binary, port, &args);
            let mut m = Memcached { port, child, binary: binary.to_owned(), args: args.clone() };
            if m.ready() {
                return m;
            }
        }
        panic!("memcached did not start on any of 5 ports");
    }

    fn spawn(binary: &str, port: u16, extra: &[String]) -> Child {
        let mut cmd = Command::new(binary);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", "128", "-I", "2m", "-t", "2"]);
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        cmd.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} ({e}): install it, or run scripts/test.sh which does"))
    }

    /// Whether this child came up: the memcached answering on its port
    /// within 10 s reports this child's pid (`stats`).
    fn ready(&mut self) -> bool {
        came_up_as(&mut self.child, &format!("127.0.0.1:{}", self.port), Duration::from_secs(10))
    }

    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What `memcached -V` says of this binary, e.g. "1.6.38".
    pub fn version(&self) -> String {
        let out = run_bounded(Command::new(&self.binary).arg("-V"), Duration::from_secs(10), "memcached -V");
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or("?").to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills and starts it again, empty, on the same port (the settings
    /// files name it). The port can be briefly unavailable as the old
    /// process goes: tried again for up to 5 s, and it must be ours.
    pub fn restart_empty(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.child = Self::spawn(&self.binary, self.port, &self.args);
            if self.ready() {
                return;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(Instant::now() < deadline, "memcached could not start again on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub async fn conn(&self) -> Connection {
        Connection::connect(&self.name(), DEFAULT_TIMEOUT).await.expect("connect to memcached")
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of memcached processes with settings files in a temp dir.
pub struct Cluster {
    pub nodes: Vec<Memcached>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster { nodes: (0..n).map(|_| Memcached::start()).collect(), dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn names(&self, which: std::ops::Range<usize>) -> Vec<String> {
        self.nodes[which].iter().map(Memcached::name).collect()
    }

    /// Writes a settings file and returns its path.
    pub fn settings(&self, file: &str, servers: &[String], new_servers: Option<&[String]>) -> PathBuf {
        let mut text = format!("# test cluster\nservers={}\n", servers.join(","));
        if let Some(new) = new_servers {
            text.push_str(&format!("new_servers={}\n", new.join(",")));
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("write settings");
        path
    }
}

/// Where the spec puts each key under the settings file `path`: the
/// tests' expectations, from [`oracle`], never from `astaire::view`.
pub fn view(path: &Path) -> View {
    View::of_file(path)
}

/// Astaire's own work list for `local` under `path`: an input for the
/// in-process `resync::run` (what the tests then check comes from
/// [`view`]).
pub fn astaire_work_list(path: &Path, local: &str, full: bool) -> astaire::placement::WorkList {
    let settings = astaire::view::ClusterSettings::load(path).expect("valid settings");
    astaire::view::View::new(&settings).work_list(local, full)
}

/// Astaire's resync of `work`, in process, for at most 120 s.
pub async fn resync_within(
    work: &astaire::placement::WorkList,
    opts: &Options,
    stats: &astaire::stats::Stats,
) -> Result<astaire::resync::Report, astaire::resync::ResyncError> {
    let what = format!("the in-process resync of {}", work.local_name);
    within(Duration::from_secs(120), &what, astaire::resync::run(work, opts, stats)).await
}

/// How long the tests wait for a memcached client operation of theirs
/// (a load, a listing) before failing.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// One test item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestItem {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub flags: u32,
    /// As sent to memcached: 0 none, ≤ 30 days relative, else absolute.
    pub ttl: u64,
}

/// Writes every item to its replicas in `view`, as a client would.
pub async fn load(view: &View, items: &[TestItem]) {
    within(CLIENT_LIMIT, &format!("loading {} items", items.len()), load_unbounded(view, items)).await
}

async fn load_unbounded(view: &View, items: &[TestItem]) {
    let mut conns = std::collections::HashMap::new();
    for item in items {
        for server in view.write_set(oracle::vbucket(&item.key)) {
            if !conns.contains_key(&server) {
                let c = Connection::connect(&server, DEFAULT_TIMEOUT).await.expect("connect");
                conns.insert(server.clone(), c);
            }
            let c = conns.get_mut(&server).expect("inserted");
            c.set(&item.key, &item.value, item.flags, item.ttl).await.expect("set");
        }
    }
}

/// Every key a server holds (Astaire's own keys excepted).
pub async fn all_keys(server: &str) -> BTreeSet<Vec<u8>> {
    within(CLIENT_LIMIT, &format!("listing the keys of {server}"), all_keys_unbounded(server)).await
}

async fn all_keys_unbounded(server: &str) -> BTreeSet<Vec<u8>> {
    let budget = astaire::resync::queue::QueueBudget::new(usize::MAX, std::env::temp_dir());
    let (tx, mut rx) = astaire::resync::queue::key_queue(&budget);
    let opts = Options::default();
    let every = astaire::placement::Classifier::Vbucket;
    dump_keys(server, DumpMode::Metadump, &every, &[true; VBUCKETS], &opts, tx, None, None).await.expect("dump");
    let mut keys = BTreeSet::new();
    while let Some(batch) = rx.recv().await.expect("read back") {
        for k in batch.iter() {
            keys.insert(decode_key(k.wire));
        }
    }
    keys
}

pub async fn get(conn: &mut Connection, key: &[u8]) -> Option<Item> {
    conn.get(key).await.expect("get")
}

/// The counter `name` of memcached `server`'s `stats`.
#[allow(dead_code, reason = "not every test binary reads counters")]
pub fn stat(server: &str, name: &str) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(server).expect("connect for stats");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let prefix = format!("STAT {name} ");
    for line in BufReader::new(s).lines() {
        let line = line.expect("stats answer");
        if let Some(v) = line.strip_prefix(&prefix) {
            return v.trim().parse().expect("a number");
        }
        assert_ne!(line, "END", "{server} has no counter {name}");
    }
    panic!("{server} closed during stats");
}

/// How long the tests wait for an `astaire` command to exit: far over
/// the slowest (throttled) resync of the suite, which takes seconds.
pub const ASTAIRE_LIMIT: Duration = Duration::from_secs(120);

/// The `astaire` binary the tests run: this build's, or
/// `ASTAIRE_TEST_BINARY` (another build, to measure it against the same
/// tests: what they print, not whether they pass).
pub fn astaire_binary() -> std::ffi::OsString {
    std::env::var_os("ASTAIRE_TEST_BINARY")
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_astaire").into())
}

/// Runs the `astaire` binary, for at most [`ASTAIRE_LIMIT`].
#[track_caller]
pub fn astaire(args: &[&str]) -> Output {
    astaire_within(args, ASTAIRE_LIMIT)
}

/// Runs the `astaire` binary, for at most `limit`.
#[track_caller]
pub fn astaire_within(args: &[&str], limit: Duration) -> Output {
    let what = format!("`astaire {}` to exit", args.join(" "));
    run_bounded(Command::new(astaire_binary()).args(args), limit, &what)
}

/// `astaire args`, with its peak RSS in KiB: the kernel's high-water mark
/// of the process after exec (`VmHWM`), read until it exits. (Not wait4's
/// `ru_maxrss`: it counts the forked image of this test process, before
/// exec, which holds the test data.)
pub fn astaire_measured(args: &[&str]) -> (Output, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(astaire_binary())
        .args(args)
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("run astaire");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + ASTAIRE_LIMIT;
    let status = loop {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let said = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
            panic!(
                "`astaire {}` did not finish within {} s\n{}{}",
                args.join(" "),
                ASTAIRE_LIMIT.as_secs(),
                said(&out),
                said(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output =
        Output { status, stdout: std::fs::read(&out).expect("out"), stderr: std::fs::read(&err).expect("err") };
    (output, peak)
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Items named `prefix{i}` for `n` keys, with 100-byte values and
/// Clearwater-style timestamp flags.
pub fn plain_items(prefix: &str, n: usize, flags: u32) -> Vec<TestItem> {
    (0..n)
        .map(|i| TestItem {
            key: format!("{prefix}{i}").into_bytes(),
            value: format!("value-{i}-").bytes().chain(std::iter::repeat(b'.')).take(100).collect(),
            flags,
            ttl: 0,
        })
        .collect()
}

/// [`plain_items`] whose values are all `value`.
pub fn filled_items(prefix: &str, n: usize, flags: u32, value: &[u8]) -> Vec<TestItem> {
    let mut items = plain_items(prefix, n, flags);
    items.iter_mut().for_each(|i| i.value = value.to_vec());
    items
}

/// Keys [`key_in`] tries before failing. Any wanted vbucket is one in
/// 128, so a predicate wanting one vbucket fails this many tries with
/// odds of (127/128)^10000, about e^-78: failing means it wants none.
pub const KEY_IN_TRIES: u32 = 10_000;

/// A key starting with `stem` whose vbucket (the spec's, from [`oracle`])
/// satisfies `wanted`, among `stem#0` to `stem#9999`.
#[track_caller]
pub fn key_in(stem: &[u8], wanted: impl Fn(u8) -> bool) -> Vec<u8> {
    let found =
        (0..KEY_IN_TRIES).map(|i| [stem, format!("#{i}").as_bytes()].concat()).find(|k| wanted(oracle::vbucket(k)));
    match found {
        Some(key) => key,
        None => panic!(
            "key_in: none of {KEY_IN_TRIES} keys {:?}#N is in a wanted vbucket (does the predicate want any?)",
            String::from_utf8_lossy(stem)
        ),
    }
}

/// Writes `items` to one server in pipelined batches (fast bulk loading).
pub async fn bulk_set(server: &str, items: &[TestItem]) {
    let what = format!("writing {} items to {server}", items.len());
    within(CLIENT_LIMIT, &what, bulk_set_unbounded(server, items)).await
}

async fn bulk_set_unbounded(server: &str, items: &[TestItem]) {
    use astaire::memcached::proto::{self, encode_key, SetMode, WireKey};
    let mut conn = Connection::connect(server, DEFAULT_TIMEOUT).await.expect("connect");
    for chunk in items.chunks(1000) {
        let mut req = Vec::new();
        for (n, item) in chunk.iter().enumerate() {
            let mut wire = Vec::new();
            let base64 = encode_key(&item.key, &mut wire).expect("sendable key");
            proto::ms(
                &mut req,
                WireKey { bytes: &wire, base64 },
                &item.value,
                item.flags,
                item.ttl,
                SetMode::Set { cas: None },
                n,
            );
        }
        proto::mn(&mut req);
        conn.pipeline(&req, chunk.len(), |_, _, _| Ok(())).await.expect("bulk set");
    }
}

/// Four nodes: the first three are the old cluster, the fourth joins.
pub struct Resize {
    pub cluster: Cluster,
    pub old: Vec<String>,
    pub all: Vec<String>,
    /// `servers=` the old three.
    pub stable: PathBuf,
    /// `servers=` the old three, `new_servers=` all four.
    pub resize: PathBuf,
}

impl Resize {
    pub fn three_to_four() -> Resize {
        let cluster = Cluster::start(4);
        let (old, all) = (cluster.names(0..3), cluster.names(0..4));
        let stable = cluster.settings("cs3", &old, None);
        let resize = cluster.settings("cs4", &old, Some(&all));
        Resize { cluster, old, all, stable, resize }
    }

    /// The joining node.
    pub fn new_node(&self) -> &str {
        &self.all[3]
    }
}

/// `astaire resync --quiet` for `node` with `settings`, plus `extra`.
#[track_caller]
pub fn resync_cli(node: &str, settings: &Path, extra: &[&str]) -> Output {
    // No progress bar, but the status log lines (which --quiet leaves out).
    let mut args = vec!["resync", "--quiet", "--log-level", "2", "--local-name", node, "--cluster-settings"];
    args.push(settings.to_str().expect("utf-8 path"));
    args.extend_from_slice(extra);
    astaire(&args)
}

/// `load`, pipelined: each server gets its items in batches.
pub async fn load_fast(view: &View, items: &[TestItem]) {
    let mut per_server: std::collections::BTreeMap<String, Vec<TestItem>> = Default::default();
    for item in items {
        for server in view.write_set(oracle::vbucket(&item.key)) {
            per_server.entry(server).or_default().push(item.clone());
        }
    }
    for (server, items) in per_server {
        bulk_set(&server, &items).await;
    }
}

/// Whether the memcached `child` came up at `address` within `within`:
/// the server answering there reports the child's pid (`stats`). Anything
/// else on the port (another test's server, or a memcached that won the
/// port) is not ours; a child that exited (most likely the port was
/// taken) is not either.
pub fn came_up_as(child: &mut std::process::Child, address: &str, within: Duration) -> bool {
    use std::io::{Read, Write};
    let deadline = Instant::now() + within;
    let ours = format!("STAT pid {}\r\n", child.id());
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(address) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
            if s.write_all(b"stats\r\n").is_ok() {
                while !got.ends_with(b"END\r\n") {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
            }
            return String::from_utf8_lossy(&got).contains(&ours);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
