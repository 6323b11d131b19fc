//! Every client family resized through its real library (issue 30).
//!
//! For each family a driver program in the library's own language
//! (tests/clients/: Ruby Dalli, Java spymemcached, PHP's pecl memcache and
//! php-memcached, Go gomemcache, Node's `memcached` and `memjs`, and
//! pylibmc through a real nutcracker for twemproxy) writes 5,000 typed
//! values with the old list. Nothing here says where a key belongs: the
//! library does. Before the real write, the driver writes the same keys
//! once with the *new* list (a probe), and where each lands is read from
//! the servers (metadump) and the probe removed; where the real write
//! lands is the old owner. Then `plan --count --every-node` must count
//! what each node receives, `astaire resync` and `verify` run on every
//! node of the new list, each old owner drops what it handed over, every
//! node must hold exactly the keys the library put there under the new
//! list (no stray copy, none missing), and the driver, configured with the
//! new list, reads every key back with its value and type.
//!
//! A driver is one process per case, answering commands on its stdin with
//! one JSON line each (`write TAG SERVERS`, `read TAG SERVERS`); the keys
//! and values are tests/clients/keys.md's. The Java and Go drivers are
//! compiled once into target/clients/, and the Node packages installed
//! there (`npm ci`), when missing or older than their sources. The
//! memcached processes of a family are shared by its cases.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const KEYS: usize = 5_000;

/// The fewest keys a resize here moves: a new server of weight 1 among
/// weights 1,2,3 takes about a seventh, fewer on an unlucky ring (422
/// seen under pecl memcache).
const MIN_MOVED: usize = KEYS / 25;

/// How long one driver command (5,000 keys written or read) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// How long compiling a driver or installing the Node packages may take.
const BUILD_LIMIT: Duration = Duration::from_secs(300);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/clients/: the compiled drivers and the Node packages.
fn cache() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest().join("target"));
    let dir = if target.is_absolute() { target } else { manifest().join(target) }.join("clients");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Which keys a library takes (tests/clients/keys.md).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kinds {
    /// ASCII only (gomemcache as Debian ships it, php-memcached's text
    /// protocol).
    Ascii,
    /// And UTF-8, astral characters too (the Java and JavaScript clients,
    /// whose keys are strings).
    Utf8,
    /// And bytes that are not UTF-8 (the C, PHP and Ruby clients).
    Bytes,
}

impl Kinds {
    fn arg(self) -> &'static str {
        match self {
            Kinds::Ascii => "ascii",
            Kinds::Utf8 => "utf8",
            Kinds::Bytes => "bytes",
        }
    }
}

/// Key `i` as every driver makes it (tests/clients/keys.md), as stored.
fn key(i: usize, kinds: Kinds, namespace: Option<&str>) -> Vec<u8> {
    let bare = match i % 10 {
        3 if kinds != Kinds::Ascii => format!("ключ:{i}").into_bytes(),
        5 if kinds != Kinds::Ascii => format!("日本😀:{i}").into_bytes(),
        7 if kinds == Kinds::Bytes => [b"\xff\xfe:".as_slice(), i.to_string().as_bytes()].concat(),
        1 => format!("{{user:{i}}}:session").into_bytes(),
        9 => format!("long:{i}:{}", "x".repeat(i % 200)).into_bytes(),
        _ => format!("user:{i}@example.com").into_bytes(),
    };
    [namespace.unwrap_or_default().as_bytes(), &bare].concat()
}

/// The real libraries, each behind its driver.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lib {
    Dalli,
    Spymemcached,
    Php,
    Gomemcache,
    Node,
    /// pylibmc through nutcracker.
    Nutcracker,
}

/// Runs `cmd` (a build step) within [`BUILD_LIMIT`]; `Err` says what failed.
fn build_step(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = run_bounded(cmd, BUILD_LIMIT, what);
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{what} failed ({}): {}", out.status, text(&out))),
    }
}

/// Whether `artifact` is missing or older than any of `sources`.
fn stale(artifact: &Path, sources: &[PathBuf]) -> bool {
    let made = std::fs::metadata(artifact).and_then(|m| m.modified());
    let Ok(made) = made else { return true };
    sources.iter().any(|s| std::fs::metadata(s).and_then(|m| m.modified()).map(|t| t > made).unwrap_or(true))
}

const SPYMEMCACHED_JAR: &str = "/usr/share/java/spymemcached.jar";
const GOPATH: &str = "/usr/share/gocode";

/// Compiles (once per run, and only when stale) the Java driver.
fn java_driver() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !Path::new(SPYMEMCACHED_JAR).exists() {
                return Err(format!("{SPYMEMCACHED_JAR} is missing: scripts/setup.sh installs libspymemcached-java"));
            }
            let dir = cache().join("java");
            let source = manifest().join("tests/clients/spymemcached/Driver.java");
            if stale(&dir.join("Driver.class"), std::slice::from_ref(&source)) {
                let mut javac = Command::new("javac");
                javac.args(["-encoding", "UTF-8", "-cp", SPYMEMCACHED_JAR, "-d"]).arg(&dir).arg(&source);
                build_step(&mut javac, "javac tests/clients/spymemcached/Driver.java (default-jdk-headless)")?;
            }
            Ok(dir)
        })
        .clone()
}

/// Compiles (once per run, and only when stale) the Go driver against
/// Debian's gomemcache, in GOPATH mode.
fn go_driver() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let library = Path::new(GOPATH).join("src/github.com/bradfitz/gomemcache/memcache/memcache.go");
            if !library.exists() {
                return Err(format!(
                    "{} is missing: scripts/setup.sh installs golang-github-bradfitz-gomemcache-dev",
                    library.display()
                ));
            }
            let binary = cache().join("gomemcache-driver");
            let source = manifest().join("tests/clients/gomemcache/main.go");
            if stale(&binary, &[source.clone(), library]) {
                let mut go = Command::new("go");
                go.arg("build")
                    .arg("-o")
                    .arg(&binary)
                    .arg(&source)
                    .env("GOPATH", GOPATH)
                    .env("GO111MODULE", "off")
                    .env("GOCACHE", cache().join("go-cache"))
                    .env("GOFLAGS", "");
                build_step(&mut go, "go build tests/clients/gomemcache/main.go (golang-go)")?;
            }
            Ok(binary)
        })
        .clone()
}

/// Installs (once per run, and only when stale) the pinned Node packages
/// of tests/clients/node/package-lock.json under target/clients/node.
fn node_modules() -> Result<PathBuf, String> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = cache().join("node");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let sources: Vec<PathBuf> = ["package.json", "package-lock.json"]
                .iter()
                .map(|f| manifest().join("tests/clients/node").join(f))
                .collect();
            let done = dir.join("node_modules/.package-lock.json");
            if stale(&done, &sources) {
                for s in &sources {
                    std::fs::copy(s, dir.join(s.file_name().unwrap())).map_err(|e| format!("{}: {e}", s.display()))?;
                }
                let mut npm = Command::new("npm");
                // Its cache beside the packages: CI's environment may have
                // no usable home directory.
                npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .env("npm_config_cache", cache().join("npm-cache"));
                build_step(&mut npm, "npm ci of tests/clients/node/package-lock.json (memcached, memjs)")?;
            }
            Ok(dir.join("node_modules"))
        })
        .clone()
}

/// The command that starts `lib`'s driver for `family`.
fn driver_command(lib: Lib, family: &str, kinds: Kinds, namespace: Option<&str>) -> Command {
    let clients = manifest().join("tests/clients");
    let count = KEYS.to_string();
    let need = |built: Result<PathBuf, String>| built.unwrap_or_else(|e| panic!("{family}: {e}"));
    let mut cmd = match lib {
        Lib::Dalli => {
            let mut c = Command::new("ruby");
            c.arg(clients.join("dalli.rb")).args([&count, kinds.arg()]);
            c
        }
        Lib::Spymemcached => {
            let classes = need(java_driver());
            let mut c = Command::new("java");
            c.arg("-cp").arg(format!("{}:{SPYMEMCACHED_JAR}", classes.display()));
            c.args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "Driver", family, &count, kinds.arg()]);
            c
        }
        Lib::Php => {
            let mut c = Command::new("php");
            c.args(["-d", "display_errors=stderr", "-d", "error_reporting=E_ALL"]);
            c.arg(clients.join("php.php")).args([family, &count, kinds.arg()]);
            c
        }
        Lib::Gomemcache => {
            let mut c = Command::new(need(go_driver()));
            c.args([&count, kinds.arg()]);
            c
        }
        Lib::Node => {
            let mut c = Command::new("node");
            c.env("NODE_PATH", need(node_modules()));
            c.arg(clients.join("node/driver.js")).args([family, &count, kinds.arg()]);
            c
        }
        Lib::Nutcracker => {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(clients.join("nutcracker.py")).args([&count, kinds.arg()]);
            c
        }
    };
    if let Some(ns) = namespace {
        cmd.arg(ns);
    }
    cmd
}

/// A driver process: commands in on its stdin, one JSON line back each,
/// each within [`COMMAND_LIMIT`]; killed when dropped.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    what: String,
}

impl Driver {
    fn start(mut cmd: Command, what: &str) -> Driver {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| {
                panic!("cannot start the {what} driver {cmd:?}: {e} (scripts/setup.sh installs it)")
            });
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        Driver { child, stdin, lines, stderr, what: what.to_owned() }
    }

    /// Sends `command` and returns the driver's answer; fails the test if
    /// it does not answer in time, or dies.
    fn ask(&mut self, command: &str) -> serde_json::Value {
        let said =
            |d: &Driver| String::from_utf8_lossy(&d.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{}: `{command}` not sent ({e}): {}", self.what, said(self)));
        match self.lines.recv_timeout(COMMAND_LIMIT) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: `{command}` answered {line:?} ({e}): {}", self.what, said(self))),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!(
                    "{}: no answer to `{command}` within {} s; its stderr: {}",
                    self.what,
                    COMMAND_LIMIT.as_secs(),
                    said(self)
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::thread::sleep(Duration::from_millis(50));
                panic!("{}: exited on `{command}` ({:?}): {}", self.what, self.child.try_wait(), said(self))
            }
        }
    }

    fn write(&mut self, tag: &str, servers: &str) {
        let answer = self.ask(&format!("write {tag} {servers}"));
        assert_eq!(answer["written"].as_u64(), Some(KEYS as u64), "{}: write {tag}: {answer}", self.what);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real nutcracker with one pool, killed when dropped.
struct Nutcracker {
    child: Child,
    listen: String,
}

impl Nutcracker {
    /// A pool over `entries` (`host:port[:weight][ name]`) with `options`
    /// (YAML lines such as `hash: murmur`), listening on a free port.
    fn start(dir: &Path, entries: &[String], options: &[&str]) -> Nutcracker {
        let servers: String = entries
            .iter()
            .map(|e| {
                let (address, label) = e.split_once(' ').map_or((e.as_str(), None), |(a, l)| (a, Some(l)));
                let weighted =
                    if address.matches(':').count() == 2 { address.to_owned() } else { format!("{address}:1") };
                match label {
                    Some(label) => format!("   - {weighted} {label}\n"),
                    None => format!("   - {weighted}\n"),
                }
            })
            .collect();
        for _ in 0..5 {
            // Free when chosen; taken meanwhile, nutcracker exits and the
            // next pair is tried.
            let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
            let (port, stats) = (free(), free());
            let config = dir.join(format!("nutcracker-{port}.yml"));
            let listen = format!("127.0.0.1:{port}");
            let yaml = format!(
                "pool:\n  listen: {listen}\n  timeout: 5000\n{}  servers:\n{servers}",
                options.iter().map(|o| format!("  {o}\n")).collect::<String>()
            );
            std::fs::write(&config, yaml).unwrap();
            let mut cmd = Command::new("nutcracker");
            cmd.arg("-c").arg(&config).args(["-s", &stats.to_string(), "-a", "127.0.0.1", "-v", "4"]);
            cmd.arg("-o").arg(dir.join(format!("nutcracker-{port}.log")));
            cmd.arg("-p").arg(dir.join(format!("nutcracker-{port}.pid")));
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start nutcracker ({e}): scripts/setup.sh installs it"));
            let mut proxy = Nutcracker { child, listen };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(proxy.child.try_wait(), Ok(None)) {
                    break; // exited: a port was taken meanwhile
                }
                if std::net::TcpStream::connect(&proxy.listen).is_ok() {
                    return proxy;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = std::fs::read_to_string(dir.join(format!("nutcracker-{port}.log"))).unwrap_or_default();
            eprintln!("nutcracker on {} did not come up: {log}", proxy.listen);
        }
        panic!("nutcracker did not start on any of 5 ports");
    }
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A list entry's server: `host:port`, without a weight or a name.
fn server_of(entry: &str) -> String {
    let address = entry.split(' ').next().unwrap_or(entry);
    match address.matches(':').count() {
        2 => address.rsplit_once(':').unwrap().0.to_owned(),
        _ => address.to_owned(),
    }
}

/// One resize of one family.
struct Case<'a> {
    /// `--placement` and any other flags of astaire.
    flags: &'a [&'a str],
    lib: Lib,
    /// The driver's family argument.
    family: &'a str,
    kinds: Kinds,
    /// A namespace the client prepends to every key (and hashes).
    namespace: Option<&'a str>,
    /// nutcracker's pool options (twemproxy only).
    pool: &'a [&'a str],
    old: Vec<String>,
    new: Vec<String>,
}

/// What a case showed, for the closing note.
#[derive(Debug)]
struct Proof {
    written: usize,
    moved: usize,
    between_old: usize,
    read_back: u64,
    missing: u64,
    wrong: u64,
    stray: usize,
}

/// Where each key is held: key → servers holding it.
async fn holders(nodes: &[String]) -> BTreeMap<Vec<u8>, Vec<String>> {
    let mut at: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for node in nodes {
        for key in all_keys(node).await {
            at.entry(key).or_default().push(node.clone());
        }
    }
    at
}

/// Deletes `keys` from `server`, one pipelined request, checked by a
/// `version` at its end.
fn delete(server: &str, keys: &[&[u8]]) {
    let mut conn = std::net::TcpStream::connect(server).unwrap_or_else(|e| panic!("{server}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for chunk in keys.chunks(1000) {
        let mut req = Vec::new();
        for k in chunk {
            req.extend_from_slice(b"delete ");
            req.extend_from_slice(k);
            req.extend_from_slice(b" noreply\r\n");
        }
        req.extend_from_slice(b"version\r\n");
        conn.write_all(&req).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while !answer.ends_with(b"\r\n") {
            let n = conn.read(&mut buf).unwrap_or_else(|e| panic!("{server}: no answer to the deletes: {e}"));
            assert!(n > 0, "{server} closed");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"VERSION"), "{server}: {}", String::from_utf8_lossy(&answer));
    }
}

/// Empties every node (what metadump lists, deleted).
async fn clear(nodes: &[String]) {
    for node in nodes {
        let keys = all_keys(node).await;
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        delete(node, &keys);
    }
}

/// Writes the keys once through `driver` with `servers` and returns each
/// key's server, checking that every key is held exactly once.
async fn written_where(
    driver: &mut Driver,
    tag: &str,
    servers: &str,
    nodes: &[String],
    case: &str,
    keys: &[Vec<u8>],
) -> BTreeMap<Vec<u8>, String> {
    driver.write(tag, servers);
    let at = holders(nodes).await;
    let expect: BTreeSet<&Vec<u8>> = keys.iter().collect();
    let held: BTreeSet<&Vec<u8>> = at.keys().collect();
    assert_eq!(held, expect, "{case}: {tag}: the library stored every key, and only those");
    let twice: Vec<_> = at.iter().filter(|(_, s)| s.len() > 1).take(3).collect();
    assert!(twice.is_empty(), "{case}: {tag}: keys held twice: {twice:?}");
    at.into_iter().map(|(k, mut s)| (k, s.remove(0))).collect()
}

/// The whole proof of one case on `cluster`, left empty afterwards.
async fn prove(case: &Case<'_>, cluster: &Cluster) -> Proof {
    prove_on(case, &cluster.names(0..cluster.nodes.len()), cluster.dir.path()).await
}

/// [`prove`] on the memcached `nodes`, with files in `dir`.
async fn prove_on(case: &Case<'_>, nodes: &[String], dir: &Path) -> Proof {
    let flags = case.flags.join(" ");
    let weights = |l: &[String]| match l.iter().all(|e| e.split(' ').next().unwrap_or(e).matches(':').count() == 2) {
        true => format!(
            " weights {}",
            l.iter().map(|e| e.split(' ').next().unwrap().rsplit(':').next().unwrap()).collect::<Vec<_>>().join(",")
        ),
        false => String::new(),
    };
    let name = format!(
        "{flags} {}→{}{}{} ({}, {} keys{})",
        case.old.len(),
        case.new.len(),
        weights(&case.old),
        weights(&case.new).replace(" weights ", "→"),
        case.family,
        case.kinds.arg(),
        case.namespace.map(|n| format!(", namespace {n:?}")).unwrap_or_default()
    );
    let nodes = nodes.to_vec();
    clear(&nodes).await;
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| key(i, case.kinds, case.namespace)).collect();
    let mut driver = Driver::start(driver_command(case.lib, case.family, case.kinds, case.namespace), &name);
    // The library's servers for a list: the list itself, or a nutcracker
    // over it.
    let through = |list: &[String]| match case.lib {
        Lib::Nutcracker => {
            let proxy = Nutcracker::start(dir, list, case.pool);
            let listen = proxy.listen.clone();
            (Some(proxy), listen)
        }
        _ => (None, list.join(",")),
    };

    let (_proxy, servers) = through(&case.new);
    let new_owner = written_where(&mut driver, "probe", &servers, &nodes, &name, &keys).await;
    clear(&nodes).await;
    drop(_proxy);
    let (_proxy, servers) = through(&case.old);
    let old_owner = written_where(&mut driver, "v1", &servers, &nodes, &name, &keys).await;
    drop(_proxy);

    let moved: Vec<&Vec<u8>> = keys.iter().filter(|k| old_owner[*k] != new_owner[*k]).collect();
    let old_servers: Vec<String> = case.old.iter().map(|e| server_of(e)).collect();
    let between_old = moved.iter().filter(|k| old_servers.contains(&new_owner[**k])).count();

    let settings = dir.join(format!("cs-{}", flags.replace([' ', '/'], "_")));
    std::fs::write(&settings, format!("servers={}\nnew_servers={}\n", case.old.join(","), case.new.join(","))).unwrap();
    let path = settings.to_str().unwrap();
    let mut plan = vec!["plan", "--count", "--every-node", "--json", "--cluster-settings", path];
    plan.extend_from_slice(case.flags);
    let out = astaire(&plan);
    assert_eq!(out.status.code(), Some(0), "{name}: plan: {}", text(&out));
    let mut unique: Vec<String> = Vec::new();
    for e in &case.new {
        if !unique.contains(&server_of(e)) {
            unique.push(server_of(e));
        }
    }
    let planned: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(planned.len(), unique.len(), "{name}: one plan per server of the new list");
    for (node, plan) in unique.iter().zip(&planned) {
        assert_eq!(plan["local_name"], node.as_str(), "{name}: plans in list order");
        let counted: u64 = plan["sources"].as_object().unwrap().values().map(|c| c["keys"].as_u64().unwrap()).sum();
        let expect = moved.iter().filter(|k| new_owner[**k] == *node).count() as u64;
        assert_eq!(counted, expect, "{name}: plan --count --every-node for {node} against what the library moves");
    }

    for node in &unique {
        let mut args = vec!["resync", "--quiet", "--local-name", node, "--cluster-settings", path];
        args.extend_from_slice(case.flags);
        let out = astaire(&args);
        assert_eq!(out.status.code(), Some(0), "{name}: resync on {node}: {}", text(&out));
        args[0] = "verify";
        args.remove(1);
        let out = astaire(&args);
        assert_eq!(out.status.code(), Some(0), "{name}: verify on {node}: {}", text(&out));
    }
    let mut handed: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for k in &moved {
        handed.entry(old_owner[*k].as_str()).or_default().push(k.as_slice());
    }
    for (server, keys) in &handed {
        delete(server, keys);
    }
    let at = holders(&nodes).await;
    let mut stray: Vec<(&Vec<u8>, &String)> = Vec::new();
    for (k, servers) in &at {
        stray.extend(servers.iter().filter(|s| new_owner.get(k) != Some(*s)).map(|s| (k, s)));
    }
    let missing: Vec<&Vec<u8>> =
        keys.iter().filter(|k| !at.get(*k).is_some_and(|s| s.contains(&new_owner[*k]))).collect();
    assert!(
        stray.is_empty() && missing.is_empty(),
        "{name}: after the resync and the drops, {} copies where the library would not send the key (first {:?}), \
         {} keys missing from where it would (first {:?})",
        stray.len(),
        stray.first().map(|(k, s)| (String::from_utf8_lossy(k), s)),
        missing.len(),
        missing.first().map(|k| String::from_utf8_lossy(k)),
    );

    let (_proxy, servers) = through(&case.new);
    let read = driver.ask(&format!("read v1 {servers}"));
    let proof = Proof {
        written: KEYS,
        moved: moved.len(),
        between_old,
        read_back: read["hit"].as_u64().unwrap_or(0),
        missing: read["missing"].as_u64().unwrap_or(u64::MAX),
        wrong: read["wrong"].as_u64().unwrap_or(u64::MAX),
        stray: stray.len(),
    };
    assert_eq!(
        (proof.read_back, proof.missing, proof.wrong),
        (KEYS as u64, 0, 0),
        "{name}: the library with the new list reads every key back, value and type: {read}"
    );
    // The closing note's row (shown with --nocapture).
    println!(
        "proof: {name}: written {}, moved {} ({} between old servers), read back {}, missing {}, wrong {}, stray {}",
        proof.written, proof.moved, proof.between_old, proof.read_back, proof.missing, proof.wrong, proof.stray
    );
    clear(&nodes).await;
    proof
}

/// Entries `host:port` of nodes `which`, with `weights` when given.
fn entries(cluster: &Cluster, which: std::ops::Range<usize>, weights: Option<&[u32]>) -> Vec<String> {
    let names = cluster.names(which);
    match weights {
        None => names,
        Some(w) => names.iter().zip(w).map(|(n, w)| format!("{n}:{w}")).collect(),
    }
}

/// 3→4 and 4→3, and weighted 1,2,3 → 1,2,3,1 when `weighted`, of one
/// family on one shared cluster of four memcached. Each resize must move
/// at least `min_moved` keys.
#[allow(clippy::too_many_arguments)]
async fn family(
    flags: &[&str],
    lib: Lib,
    driver: &str,
    kinds: Kinds,
    weighted: bool,
    namespace: Option<&str>,
    pool: &[&str],
    min_moved: usize,
) {
    let cluster = Cluster::start(4);
    let mut lists = vec![(entries(&cluster, 0..3, None), entries(&cluster, 0..4, None), None)];
    lists.push((entries(&cluster, 0..4, None), entries(&cluster, 0..3, None), None));
    if weighted {
        lists.push((
            entries(&cluster, 0..3, Some(&[1, 2, 3])),
            entries(&cluster, 0..4, Some(&[1, 2, 3, 1])),
            namespace,
        ));
    }
    for (old, new, namespace) in lists {
        let weighted = old[0].matches(':').count() == 2;
        let case = Case { flags, lib, family: driver, kinds, namespace, pool, old, new };
        let proof = prove(&case, &cluster).await;
        assert!(proof.moved >= min_moved, "{flags:?}: a resize moves keys ({} of {KEYS})", proof.moved);
        // pecl memcache gives each server 160 points per unit of weight,
        // whatever the others have: keys move to the new server only.
        if weighted && flags[1] != "pecl-memcache" {
            assert!(proof.between_old > 50, "{flags:?}: weights move keys between old servers: {proof:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dalli_through_ruby_dalli() {
    family(&["--placement", "dalli"], Lib::Dalli, "dalli", Kinds::Bytes, true, Some("app:"), &[], MIN_MOVED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spymemcached_through_java_spymemcached() {
    let lib = Lib::Spymemcached;
    family(&["--placement", "spymemcached"], lib, "spymemcached", Kinds::Utf8, false, None, &[], MIN_MOVED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spymemcached_ketama_through_java_spymemcached() {
    let (lib, flags) = (Lib::Spymemcached, &["--placement", "spymemcached-ketama"]);
    family(flags, lib, "spymemcached-ketama", Kinds::Utf8, true, None, &[], MIN_MOVED).await;
}

/// String.hashCode points cluster: nearly every key sits on the first
/// server under both lists, so few move (the spec's "surprise").
#[tokio::test(flavor = "multi_thread")]
async fn spymemcached_consistent_through_java_spymemcached() {
    let (lib, flags) = (Lib::Spymemcached, &["--placement", "spymemcached-consistent"]);
    family(flags, lib, "spymemcached-consistent", Kinds::Utf8, false, None, &[], 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pecl_memcache_through_php_memcache() {
    let flags = &["--placement", "pecl-memcache"];
    family(flags, Lib::Php, "pecl-memcache", Kinds::Bytes, true, None, &[], MIN_MOVED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pecl_memcache_standard_through_php_memcache() {
    let flags = &["--placement", "pecl-memcache-standard"];
    family(flags, Lib::Php, "pecl-memcache-standard", Kinds::Bytes, true, None, &[], MIN_MOVED).await;
}

/// libmemcached's default through php-memcached: its text protocol (the
/// default) takes ASCII keys only; with OPT_BINARY_PROTOCOL any byte,
/// where libmemcached's signed char shows.
#[tokio::test(flavor = "multi_thread")]
async fn libmemcached_through_php_memcached() {
    let flags = &["--placement", "libmemcached"];
    family(flags, Lib::Php, "php-memcached", Kinds::Ascii, false, None, &[], MIN_MOVED).await;
    family(flags, Lib::Php, "php-memcached-binary", Kinds::Bytes, false, None, &[], MIN_MOVED).await;
}

/// Debian's gomemcache refuses any key byte above 0x7e: ASCII keys.
#[tokio::test(flavor = "multi_thread")]
async fn gomemcache_through_go_gomemcache() {
    let flags = &["--placement", "gomemcache"];
    family(flags, Lib::Gomemcache, "gomemcache", Kinds::Ascii, false, None, &[], MIN_MOVED).await;
    // A server listed twice has two slots, through the real ServerList too.
    let cluster = Cluster::start(4);
    let names = cluster.names(0..4);
    let mut new = names.clone();
    new.push(names[3].clone());
    let case = Case {
        flags,
        lib: Lib::Gomemcache,
        family: "gomemcache",
        kinds: Kinds::Ascii,
        namespace: None,
        pool: &[],
        old: names[..3].to_vec(),
        new,
    };
    let proof = prove(&case, &cluster).await;
    assert!(proof.moved > KEYS / 2, "{proof:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_memcached_through_npm_memcached() {
    let flags = &["--placement", "node-memcached"];
    family(flags, Lib::Node, "node-memcached", Kinds::Utf8, true, Some("app:"), &[], MIN_MOVED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memjs_through_npm_memjs() {
    family(&["--placement", "memjs"], Lib::Node, "memjs", Kinds::Utf8, false, None, &[], MIN_MOVED).await;
}

/// nutcracker's defaults: `hash: fnv1a_64`, `distribution: ketama`.
#[tokio::test(flavor = "multi_thread")]
async fn twemproxy_default_pool_through_nutcracker() {
    family(&["--placement", "twemproxy"], Lib::Nutcracker, "twemproxy", Kinds::Bytes, true, None, &[], MIN_MOVED).await;
}

/// Another hash and the other distribution: `hash: murmur`,
/// `distribution: modula` (the table in name order).
#[tokio::test(flavor = "multi_thread")]
async fn twemproxy_modula_murmur_through_nutcracker() {
    let flags = &["--placement", "twemproxy", "--hash", "murmur", "--distribution", "modula"];
    let pool = &["hash: murmur", "distribution: modula"];
    family(flags, Lib::Nutcracker, "twemproxy", Kinds::Bytes, true, None, pool, MIN_MOVED).await;
}

/// The `name` field of a server entry: the ring hashes the name, not the
/// address (here with `hash: one_at_a_time` and `hash_tag: "{}"`).
#[tokio::test(flavor = "multi_thread")]
async fn twemproxy_named_servers_through_nutcracker() {
    let cluster = Cluster::start(4);
    let labels = ["alpha", "beta", "gamma", "delta"];
    let named = |n: usize| cluster.names(0..n).iter().zip(labels).map(|(a, l)| format!("{a}:1 {l}")).collect();
    let flags = &["--placement", "twemproxy", "--hash", "one_at_a_time", "--hash-tag", "{}"];
    let pool = &["hash: one_at_a_time", "hash_tag: \"{}\""];
    for (old, new) in [(named(3), named(4)), (named(4), named(3))] {
        let case = Case {
            flags,
            lib: Lib::Nutcracker,
            family: "twemproxy",
            kinds: Kinds::Bytes,
            namespace: None,
            pool,
            old,
            new,
        };
        let proof = prove(&case, &cluster).await;
        assert!(proof.moved > MIN_MOVED, "{proof:?}");
    }
}

/// PHP's `memcache.hash_function=fnv`: FNV-1a over signed bytes.
#[tokio::test(flavor = "multi_thread")]
async fn pecl_memcache_fnv_through_php_memcache() {
    let flags = &["--placement", "pecl-memcache", "--hash", "fnv"];
    family(flags, Lib::Php, "pecl-memcache-fnv", Kinds::Bytes, true, None, &[], MIN_MOVED).await;
}

/// memcached on the default port 11211 of loopback addresses
/// (127.0.0.x), killed when dropped: there the families build their names
/// differently (twemproxy and node `memcached` hash the host alone).
struct DefaultPort {
    children: Vec<Child>,
    names: Vec<String>,
}

impl DefaultPort {
    /// `n` servers, on the first addresses from 127.0.0.2 on where port
    /// 11211 is free and memcached comes up (its `stats` naming its pid).
    fn start(n: usize) -> DefaultPort {
        let mut servers = DefaultPort { children: Vec::new(), names: Vec::new() };
        let root = unsafe { libc::geteuid() } == 0;
        for x in 2..=254u8 {
            if servers.names.len() == n {
                break;
            }
            let name = format!("127.0.0.{x}:11211");
            if std::net::TcpStream::connect_timeout(&name.parse().unwrap(), Duration::from_millis(200)).is_ok() {
                continue; // something listens there already
            }
            let mut cmd = Command::new(memcached_binary());
            cmd.args(["-l", &format!("127.0.0.{x}"), "-p", "11211", "-U", "0", "-m", "64", "-t", "2"]);
            if root {
                cmd.args(["-u", "root"]);
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start memcached ({e})"));
            if came_up_as(&mut child, &name, Duration::from_secs(5)) {
                servers.children.push(child);
                servers.names.push(name);
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        assert_eq!(servers.names.len(), n, "memcached on port 11211 of {n} loopback addresses");
        servers
    }
}

impl Drop for DefaultPort {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Servers on port 11211, where the name a family hashes is not
/// `host:port` for all: twemproxy and node `memcached` hash the host
/// alone, Dalli, pecl memcache and spymemcached's ketama `host:11211`.
#[tokio::test(flavor = "multi_thread")]
async fn names_on_the_default_port_11211() {
    let servers = DefaultPort::start(4);
    let dir = tempfile::tempdir().unwrap();
    let n = &servers.names;
    let cases: [(&[&str], Lib, &str, Kinds); 5] = [
        (&["--placement", "twemproxy"], Lib::Nutcracker, "twemproxy", Kinds::Bytes),
        (&["--placement", "node-memcached"], Lib::Node, "node-memcached", Kinds::Utf8),
        (&["--placement", "dalli"], Lib::Dalli, "dalli", Kinds::Bytes),
        (&["--placement", "pecl-memcache"], Lib::Php, "pecl-memcache", Kinds::Bytes),
        (&["--placement", "spymemcached-ketama"], Lib::Spymemcached, "spymemcached-ketama", Kinds::Utf8),
    ];
    for (flags, lib, family, kinds) in cases {
        let case =
            Case { flags, lib, family, kinds, namespace: None, pool: &[], old: n[..3].to_vec(), new: n.to_vec() };
        let proof = prove_on(&case, n, dir.path()).await;
        assert!(proof.moved > MIN_MOVED, "{flags:?}: {proof:?}");
    }
}
