//! Files someone else put in our way (issue 29): a `cluster_settings` or a
//! configuration that is a FIFO, `/dev/zero`, 100 MB or six million
//! servers; a server listed twice; an OS error where content was expected;
//! a memcached configuration to convert with values memcached would die
//! of, and a planted symlink where its backup goes; a FIFO at the pidfile,
//! a symlink or a FIFO where the hour's log goes, a log directory others
//! can write to. Each is refused at once, with one message naming the file
//! (and line), in bounded memory, and the daemon keeps answering.
//!
//! Every child here is waited for with a bound ([`run`], [`Daemon`]).

mod common;

use common::daemon::Daemon;
use nix::sys::signal::Signal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a bounded run of a command ended.
struct Ran {
    code: Option<i32>,
    /// stdout then stderr.
    out: String,
    /// Peak resident memory in MiB (the kernel's count for the process,
    /// from `/usr/bin/time`).
    peak_mib: f64,
    took: Duration,
}

/// `astaire args`, killed if it has not ended within `limit` (the test then
/// fails saying what it waited for). Its address space is capped at 4 GiB,
/// so a reader gone wrong fails instead of taking the machine with it.
fn run(args: &[&str], limit: Duration) -> Ran {
    run_limited(args, limit, None)
}

/// [`run`], with at most `files` file descriptors when given.
fn run_limited(args: &[&str], limit: Duration, files: Option<u64>) -> Ran {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err, peak) = (dir.path().join("out"), dir.path().join("err"), dir.path().join("peak"));
    // GNU time reports the child's peak RSS (wait4's ru_maxrss), however
    // short its life; the test's own image is not counted.
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"]).arg(&peak).arg(common::astaire_binary()).args(args);
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .process_group(0);
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            let mut limits = vec![(libc::RLIMIT_AS, 4 << 30)];
            limits.extend(files.map(|n| (libc::RLIMIT_NOFILE, n)));
            for (resource, n) in limits {
                if libc::setrlimit(resource, &libc::rlimit { rlim_cur: n, rlim_max: n }) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let what = format!("astaire {}", args.join(" "));
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            // The whole group: time and astaire under it.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}; its output so far: {}{}", read(&out), read(&err));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let peak_kib: f64 = read(&peak).lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(f64::NAN);
    Ran {
        code: status.code(),
        out: format!("{}{}", read(&out), read(&err)),
        peak_mib: peak_kib / 1024.0,
        took: started.elapsed(),
    }
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
}

/// `plan` for a node of `settings`: the lightest command that reads it.
fn plan(settings: &Path, extra: &[&str]) -> Ran {
    let mut args = vec!["plan", "--local-name", "10.0.0.1:11211", "--cluster-settings", settings.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(20))
}

/// A cluster_settings that is no settings file: refused at once, one line
/// naming it, exit 3, in the memory of an ordinary run. (Before: /dev/zero
/// grew to the address-space cap, 4.3 GB in 4 s without one; the FIFO
/// hung; the 100 MB file took 406 MiB and printed a 200 MB error; the six
/// million servers took 665 MiB and were accepted.)
#[test]
fn a_cluster_settings_that_is_no_settings_file_is_refused_at_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("to_zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let big = dir.path().join("big");
    std::fs::File::create(&big).unwrap().set_len(100 << 20).unwrap();
    let many = dir.path().join("many");
    let mut list = String::from("servers=");
    for i in 0..6_000_000u32 {
        list.push_str(&format!("10.{}.{}.{}:11211,", i >> 16 & 255, i >> 8 & 255, i & 255));
    }
    list.pop();
    std::fs::write(&many, list + "\n").unwrap();
    let ordinary = dir.path().join("ordinary");
    std::fs::write(&ordinary, "servers=10.0.0.1:11211,10.0.0.2:11211\n").unwrap();
    let baseline = plan(&ordinary, &[]);
    assert_eq!(baseline.code, Some(0), "{}", baseline.out);
    eprintln!("an ordinary file: exit 0 in {:?}, peak {:.1} MiB", baseline.took, baseline.peak_mib);

    let large = "is larger than 1 MiB, far more than any configuration file: refusing to read it";
    for (path, why) in [
        (&zero, "is a character device, not a regular file: refusing it"),
        (&fifo, "is a FIFO, not a regular file: refusing it"),
        (&big, large),
        (&many, large),
    ] {
        let r = plan(path, &[]);
        eprintln!("{}: exit {:?} in {:?}, peak {:.1} MiB", path.display(), r.code, r.took, r.peak_mib);
        assert_eq!(r.code, Some(3), "{}", r.out);
        assert_eq!(r.out, format!("astaire: invalid cluster settings: {} {why}\n", path.display()));
        assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
        assert!(r.peak_mib < baseline.peak_mib + 2.0, "{:.1} MiB against {:.1}", r.peak_mib, baseline.peak_mib);
    }
}

/// An OS error reading cluster_settings is said as what it is, with exit
/// 2 (as an unreadable configuration), never "invalid cluster settings".
/// Out of file descriptors: the limit is lowered one at a time until the
/// read is the call that fails. (Before: "invalid cluster settings: …:
/// cannot read: Too many open files", exit 3.)
#[test]
fn an_os_error_reading_cluster_settings_is_said_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cluster_settings");
    let missing = plan(&settings, &[]);
    assert_eq!(missing.code, Some(2), "{}", missing.out);
    assert_eq!(
        missing.out,
        format!("astaire: cannot read {}: No such file or directory (os error 2)\n", settings.display())
    );
    std::fs::write(&settings, "servers=10.0.0.1:11211\n").unwrap();
    let mut seen = false;
    for files in 4..24 {
        let args = ["plan", "--local-name", "10.0.0.1:11211", "--cluster-settings", settings.to_str().unwrap()];
        let r = run_limited(&args, Duration::from_secs(20), Some(files));
        assert!(!r.out.contains("invalid cluster settings"), "{files} descriptors: {}", r.out);
        if r.out.contains(&format!("cannot read {}: Too many open files", settings.display())) {
            assert_eq!(r.code, Some(2), "{}", r.out);
            seen = true;
        }
        if r.code == Some(0) {
            break;
        }
    }
    assert!(seen, "no limit made the read of cluster_settings the call that failed");
}

/// Listed twice, a server takes two shares of the ring (10.0.0.1:11211
/// twice among three took 10.0.0.2's full resync from 86 vbuckets to 64):
/// refused naming the file and line, exit 3, under every placement.
#[test]
fn a_server_listed_twice_is_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cluster_settings");
    std::fs::write(
        &settings,
        "# resize\nservers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211\n\
         new_servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211,10.0.0.1:11211\n",
    )
    .unwrap();
    for placement in ["clearwater", "ketama", "rendezvous", "jump"] {
        let r = plan(&settings, &["--placement", placement]);
        assert_eq!(r.code, Some(3), "{placement}: {}", r.out);
        assert_eq!(
            r.out,
            format!(
                "astaire: invalid cluster settings: {}: line 3: server 10.0.0.1:11211 is listed twice in new_servers \
                 (entries 1 and 4): it would take two shares of the cluster; list each server once\n",
                settings.display()
            ),
            "{placement}"
        );
    }
}

/// The daemon refuses to start on a server listed twice, exit 3, naming the
/// file and line (and on a reload keeps the view it had, as for any
/// invalid file).
#[test]
fn the_daemon_will_not_start_on_a_server_listed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (r, records) = refused_start(dir.path(), "servers=127.0.0.1:1,127.0.0.1:2,127.0.0.1:1\n", &[]);
    assert_eq!(r.code, Some(3), "{}", r.out);
    let says = format!(
        "invalid cluster settings: {}: line 1: server 127.0.0.1:1 is listed twice in servers (entries 1 and 3)",
        dir.path().join("cluster_settings").display()
    );
    assert!(r.out.contains(&format!("astaire: {says}")), "{}", r.out);
    assert!(records.iter().any(|m| m.contains("7008 - ")), "{records:#?}");
}

/// The daemon's status, bounded.
fn status(d: &Daemon) -> serde_json::Value {
    let r = run(&["status", "--json", "--control-socket", d.control.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(r.code, Some(0), "status does not answer: {}\n{}", r.out, d.log());
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{e}: {}", r.out))
}

/// Waits until the daemon has finished `generation` (at most 10 s).
fn finished(d: &Daemon, generation: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(d);
        if s["completed"].as_u64() >= Some(generation) && s["running"].is_null() {
            return s;
        }
        assert!(Instant::now() < deadline, "generation {generation} never finished: {s}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon for a node that is not in its (valid) cluster_settings: idle,
/// no memcached needed.
fn idle_daemon(dir: &Path, extra: &[&str]) -> (Daemon, PathBuf) {
    let settings = dir.join("cluster_settings");
    std::fs::write(&settings, "servers=127.0.0.1:1\n").unwrap();
    let d = Daemon::start("127.0.0.1:2", &settings, &[&["--no-agentx"], extra].concat());
    (d, settings)
}

/// SIGHUP with cluster_settings replaced by a FIFO: the reload fails at
/// once naming the FIFO, status answers, SIGTERM stops the daemon.
/// (Before: the daemon's loop blocked in the read, status went
/// unanswered and SIGTERM was ignored.)
#[test]
fn a_reload_of_a_fifo_fails_at_once_and_the_daemon_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, settings) = idle_daemon(dir.path(), &[]);
    let before = status(&d);
    std::fs::remove_file(&settings).unwrap();
    mkfifo(&settings);
    d.signal(Signal::SIGHUP);
    let s = finished(&d, before["requested"].as_u64().unwrap() + 1);
    assert_eq!(s["last"]["success"], false, "{s}");
    assert_eq!(
        s["last"]["error"],
        format!("invalid cluster settings: {} is a FIFO, not a regular file: refusing it", settings.display()),
    );
    let stopping = Instant::now();
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(stopping.elapsed() < Duration::from_secs(5), "{:?}", stopping.elapsed());
}

/// Out of file descriptors at a reload: the resync fails saying so, the PD
/// log is 7011 (cannot read), not 7008 (invalid); with descriptors back,
/// the next reload succeeds. The daemon's own limit is lowered (prlimit) so
/// that its next open fails. (Before: "invalid cluster
/// settings: …: cannot read: Too many open files" and 7008.)
#[test]
fn out_of_file_descriptors_a_reload_says_so_and_logs_7011() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = dir.path().join("syslog");
    let syslog = std::os::unix::net::UnixDatagram::bind(&receiver).unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (mut d, settings) = idle_daemon(dir.path(), &["--pd-log", receiver.to_str().unwrap()]);
    let before = status(&d);
    let pid = d.pid();
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit only reads and writes these structs.
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) }, 0);
    // No new descriptor at all: what it holds stays open, its next open fails.
    let low = libc::rlimit { rlim_cur: 0, rlim_max: old.rlim_max };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) }, 0);
    d.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.log_lines("Too many open files").is_empty() {
        assert!(Instant::now() < deadline, "no reload failed on the descriptor limit: {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &old, std::ptr::null_mut()) }, 0);
    let s = finished(&d, before["requested"].as_u64().unwrap() + 1);
    assert_eq!(s["last"]["error"], format!("cannot read {}: Too many open files (os error 24)", settings.display()));
    d.signal(Signal::SIGHUP);
    let s = finished(&d, before["requested"].as_u64().unwrap() + 2);
    assert_eq!(s["last"]["success"], true, "{s}");
    assert_eq!(d.stop(), Some(0));
    let mut records = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = syslog.recv(&mut buf) {
        records.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let unreadable: Vec<&String> = records.iter().filter(|r| r.contains(": 7011 - ")).collect();
    assert_eq!(unreadable.len(), 1, "{records:#?}");
    assert!(
        unreadable[0].contains(&format!(
            "7011 - Description: Astaire cannot read {}: Too many open files (os error 24).",
            settings.display()
        )),
        "{records:#?}"
    );
    assert!(!records.iter().any(|r| r.contains(": 7008 - ")), "{records:#?}");
}

/// The node's configuration and its includes go through the same reader:
/// a FIFO included, or the configuration leading to /dev/zero, is refused
/// at once naming the file (and the include's line).
#[test]
fn a_configuration_that_is_no_configuration_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let fifo = dir.path().join("user_settings");
    mkfifo(&fifo);
    std::fs::write(&config, format!("local_ip=10.0.0.1\n. {}\n", fifo.display())).unwrap();
    let r = run(&["node-config", "local_ip", "--config", config.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(r.code, Some(2), "{}", r.out);
    assert_eq!(
        r.out,
        format!(
            "astaire: {} is a FIFO, not a regular file: refusing it (included from {}:2)\n",
            fifo.display(),
            config.display()
        )
    );
    let zero = dir.path().join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let r = run(&["node-config", "local_ip", "--config", zero.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(r.code, Some(2), "{}", r.out);
    assert_eq!(r.out, format!("astaire: {} is a character device, not a regular file: refusing it\n", zero.display()));
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
}

/// `migrate-memcached-config` reads its input through the same reader:
/// a FIFO or a link to /dev/zero is refused at once (exit 3, as a file it
/// cannot convert); a missing file is the OS's error (exit 2).
#[test]
fn a_memcached_configuration_that_is_no_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("memcached_11211.conf");
    mkfifo(&fifo);
    let zero = dir.path().join("zero.conf");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&zero, "a character device")] {
        let r = run(&["migrate-memcached-config", path.to_str().unwrap()], Duration::from_secs(10));
        assert_eq!(r.code, Some(3), "{}", r.out);
        assert_eq!(r.out, format!("astaire: {} is {kind}, not a regular file: refusing it\n", path.display()));
        assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    }
    let missing = dir.path().join("missing.conf");
    let r = run(&["migrate-memcached-config", missing.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(r.code, Some(2), "{}", r.out);
    assert!(r.out.starts_with(&format!("astaire: cannot read {}: No such file", missing.display())), "{}", r.out);
}

/// What memcached did with some options: its `stats settings` when it
/// started and answered, or how it ended.
fn memcached_with(options: &[&str]) -> Result<std::collections::BTreeMap<String, String>, String> {
    use std::io::{Read, Write};
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(common::memcached_binary());
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-t", "1"]).args(options);
        // SAFETY: geteuid only reads this process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                break Err(format!("{status}: {}", err.trim()));
            }
            assert!(Instant::now() < deadline, "memcached {options:?} neither started nor stopped in 5 s");
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(b"stats\r\nstats settings\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            while got.windows(5).filter(|w| w == b"END\r\n").count() < 2 {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&got).into_owned();
            let stats: std::collections::BTreeMap<String, String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("STAT ")?.split_once(' '))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            break Ok(stats);
        };
        let _ = child.kill();
        let _ = child.wait();
        match answer {
            // Another test's server took the port first: try another.
            Ok(stats) if stats.get("pid").map(String::as_str) != Some(&child.id().to_string()) => continue,
            other => return other,
        }
    }
    panic!("memcached {options:?}: no free port in 5 tries");
}

/// Every limit migrate-memcached-config checks, from both sides, against
/// the real memcached on PATH (1.6.18): each conversion it writes starts
/// memcached with the values asked for, and each value it refuses is one
/// memcached refuses, dies of, or reads as another (what a conversion
/// without the checks wrote, exit 0: `-f NaN` killed memcached with
/// SIGFPE, `-I 0` and `-n 0` stopped it at start). One limit is kept
/// short of memcached's: `-L` is given 63 MiB, what the most slab classes
/// memcached can make need (it asks 39 with its defaults).
#[test]
fn migrate_refuses_what_the_real_memcached_would_not_take_and_keeps_its_edges() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memcached_11211.conf");
    let convert = |engine: &str| {
        std::fs::write(&file, format!("-p 11211\n-e {engine}\n")).unwrap();
        run(&["migrate-memcached-config", file.to_str().unwrap()], Duration::from_secs(10))
    };
    const MIB: u64 = 1 << 20;
    // (engine options, what the old conversion wrote for them, the
    // setting memcached then reads as another)
    type Refused<'a> = (&'a str, &'a [&'a str], Option<(&'a str, &'a str)>);
    let refused: &[Refused] = &[
        ("cache_size=67108864;factor=NaN", &["-m", "64", "-f", "NaN"], None),
        ("cache_size=67108864;factor=1", &["-m", "64", "-f", "1"], None),
        ("cache_size=67108864;item_size_max=0", &["-m", "64", "-I", "0"], None),
        ("cache_size=67108864;item_size_max=1048577", &["-m", "64", "-I", "1048577"], None),
        ("cache_size=4294967296;item_size_max=1074266112", &["-m", "4096", "-I", "1074266112"], None),
        ("cache_size=67108864;chunk_size=0", &["-m", "64", "-n", "0"], None),
        (
            "cache_size=67108864;chunk_size=2147483648",
            &["-m", "64", "-n", "2147483648"],
            Some(("chunk_size", "2147483648")),
        ),
        ("cache_size=1048576", &["-m", "1"], None),
        ("cache_size=2251799813685248", &["-m", "2147483648"], Some(("maxbytes", "2251799813685248"))),
        ("cache_size=2097152;preallocate=true", &["-m", "2", "-L"], None),
    ];
    for (engine, old, setting) in refused {
        let r = convert(engine);
        assert_eq!(r.code, Some(3), "{engine}: {}", r.out);
        assert!(r.out.contains("line 2: ") && r.out.ends_with("; nothing was changed\n"), "{engine}: {}", r.out);
        match (memcached_with(old), setting) {
            (Err(ended), None) => eprintln!("{engine}: refused; memcached {old:?} ended: {ended}"),
            (Ok(stats), Some((name, asked))) => {
                assert_ne!(stats.get(*name).map(String::as_str), Some(*asked), "{engine}: memcached read it right");
                eprintln!("{engine}: refused; memcached {old:?} read {name} {:?}", stats.get(*name));
            }
            (answer, _) => panic!("{engine}: refused, but memcached {old:?} took it: {answer:?}"),
        }
    }
    // (engine options, the settings memcached must report)
    let kept: &[(&str, &[(&str, u64)])] = &[
        ("cache_size=2097152", &[("maxbytes", 2 * MIB)]),
        ("cache_size=1048576;item_size_max=524288", &[("maxbytes", MIB), ("item_size_max", 524288)]),
        ("cache_size=2251799812636672", &[("maxbytes", 2_147_483_647 * MIB)]),
        ("cache_size=4294967296;item_size_max=1073741824", &[("item_size_max", 1 << 30)]),
        ("cache_size=67108864;chunk_size=1;eviction=false", &[("chunk_size", 1)]),
        ("cache_size=67108864;chunk_size=2147483647", &[("chunk_size", 2_147_483_647)]),
        ("cache_size=67108864;factor=1.0001", &[("maxbytes", 64 * MIB)]),
        ("cache_size=67108864;factor=1000", &[("maxbytes", 64 * MIB)]),
        // Every slab class memcached can make (a factor that never grows),
        // each preallocated.
        ("cache_size=66060288;preallocate=true;factor=1.0001;chunk_size=1", &[("maxbytes", 63 * MIB)]),
    ];
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    for (engine, settings) in kept {
        let r = convert(engine);
        if engine.contains("preallocate") && (thp.is_empty() || thp.contains("[never]")) {
            eprintln!("{engine}: this machine has no transparent huge pages: memcached -L cannot be tried");
            assert_eq!(r.code, Some(3), "without transparent huge pages: {}", r.out);
            continue;
        }
        assert_eq!(r.code, Some(0), "{engine}: {}", r.out);
        let options: Vec<&str> = r
            .out
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("-p "))
            .flat_map(|l| l.split_whitespace())
            .collect();
        let stats = memcached_with(&options).unwrap_or_else(|e| panic!("{engine}: memcached {options:?} ended: {e}"));
        for (name, want) in *settings {
            assert_eq!(stats.get(*name), Some(&want.to_string()), "{engine}: memcached {options:?}");
        }
        eprintln!("{engine}: {options:?} starts memcached");
    }
}

/// `--in-place` keeps the original as FILE.clearwater, created exclusively
/// and never through a link: a symlink or a FIFO planted there is refused
/// and nothing is changed. (Before: a dangling link's target was created
/// holding the original; a link to an existing file made it skip the
/// backup and convert anyway.)
#[test]
fn the_in_place_backup_never_goes_through_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memcached_11211.conf");
    let kept = dir.path().join("memcached_11211.conf.clearwater");
    let original = "-p 11211\n-e cache_size=67108864;eviction=false\n";
    let in_place = || run(&["migrate-memcached-config", "--in-place", file.to_str().unwrap()], Duration::from_secs(10));
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let planted = dir.path().join("planted");
    for (target, kind) in [(&planted, "a symlink"), (&victim, "a symlink")] {
        std::fs::write(&file, original).unwrap();
        std::os::unix::fs::symlink(target, &kept).unwrap();
        let r = in_place();
        assert_eq!(r.code, Some(2), "{}", r.out);
        assert!(
            r.out.ends_with(&format!(
                "astaire: cannot keep the original as {}: it is {kind}, not a regular file: refusing it; nothing was changed\n",
                kept.display()
            )),
            "{}",
            r.out
        );
        assert!(!planted.exists(), "written through the link");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), original, "nothing was changed");
        std::fs::remove_file(&kept).unwrap();
    }
    mkfifo(&kept);
    let r = in_place();
    assert_eq!(r.code, Some(2), "{}", r.out);
    assert!(r.out.contains("it is a FIFO, not a regular file: refusing it; nothing was changed"), "{}", r.out);
    std::fs::remove_file(&kept).unwrap();
    // Nothing there: the original is kept, whole, and the file converted.
    let r = in_place();
    assert_eq!(r.code, Some(0), "{}", r.out);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), original);
    assert!(std::fs::read_to_string(&file).unwrap().contains("\n-m 64\n-M\n"));
    // An earlier original is left as it is.
    std::fs::write(&file, original.replace("67108864", "134217728")).unwrap();
    let r = in_place();
    assert_eq!(r.code, Some(0), "{}", r.out);
    assert!(r.out.contains("holds an earlier original; left as it is"), "{}", r.out);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), original);
}

/// A daemon start in `dir` with `cluster_settings` and `extra` options,
/// which must end at once; its PD records too.
fn refused_start(dir: &Path, cluster_settings: &str, extra: &[&str]) -> (Ran, Vec<String>) {
    let settings = dir.join("cluster_settings");
    std::fs::write(&settings, cluster_settings).unwrap();
    let receiver = dir.join("syslog");
    let _ = std::fs::remove_file(&receiver);
    let syslog = std::os::unix::net::UnixDatagram::bind(&receiver).unwrap();
    syslog.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (settings, control) = (settings.to_str().unwrap().to_owned(), dir.join("control").to_str().unwrap().to_owned());
    let mut args = vec!["daemon", "--local-name", "127.0.0.1:2", "--cluster-settings", &settings];
    args.extend(["--control-socket", &control, "--no-agentx", "--config", "/dev/null", "--nice", "0"]);
    args.extend(["--pd-log", receiver.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let r = run(&args, Duration::from_secs(10));
    let mut records = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = syslog.recv(&mut buf) {
        records.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    (r, records)
}

/// A FIFO planted at the pidfile is refused at once, on stderr and as PD
/// 7001, whether or not someone holds its other end. (Before: start-up
/// hung in the open.)
#[test]
fn a_fifo_at_the_pidfile_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("astaire.pid");
    mkfifo(&pidfile);
    let says = format!("pidfile: {} is a FIFO, not a regular file: refusing it", pidfile.display());
    let (r, records) = refused_start(dir.path(), "servers=127.0.0.1:1\n", &["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!((r.code, r.out.as_str()), (Some(2), format!("astaire: {says}\n").as_str()));
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(records[0].contains(&format!("7001 - Description: Fatal - Astaire cannot start: {says}.")), "{records:#?}");
    // Someone reading it: the open would succeed; the file is refused all the same.
    use std::os::unix::fs::OpenOptionsExt;
    let reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&pidfile).unwrap();
    let (r, _) = refused_start(dir.path(), "servers=127.0.0.1:1\n", &["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!((r.code, r.out.as_str()), (Some(2), format!("astaire: {says}\n").as_str()));
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &reader, &mut got);
    assert!(got.is_empty(), "the pid was written to the reader: {got:?}");
}

/// A log directory writable by its group, or owned by another user, is
/// refused: on stderr and as PD 7001, and with `--daemon` before detaching,
/// so the refusal reaches the terminal. (Before: a group-writable
/// directory was taken; a refused one under --daemon exited 0 from the
/// parent and said nothing.)
#[test]
fn a_log_directory_others_can_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("group");
    std::fs::create_dir(&group).unwrap();
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o770)).unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    for (logs, why) in [
        (&group, "writable by its group (mode 0770), so another user of the group could plant a symlink or a FIFO"),
        (&theirs, "owned by user 65534, not by this service's user (0) or root"),
    ] {
        for detached in [false, true] {
            let pidfile = dir.path().join("astaire.pid");
            let mut extra = vec!["--log-file", logs.to_str().unwrap(), "--pidfile", pidfile.to_str().unwrap()];
            if detached {
                extra.push("--daemon");
            }
            let (r, records) = refused_start(dir.path(), "servers=127.0.0.1:1\n", &extra);
            if r.code == Some(0) {
                // Detached after all: stop what was started.
                let pid: i32 = std::fs::read_to_string(&pidfile).unwrap_or_default().trim().parse().unwrap_or(0);
                if pid > 0 {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let says = format!("log directory {}: {why}", logs.display());
            assert_eq!(r.code, Some(2), "detached {detached}: {}", r.out);
            assert!(r.out.starts_with(&format!("astaire: {says}")), "detached {detached}: {}", r.out);
            assert!(records.iter().any(|m| m.contains("7001 - ") && m.contains(&says)), "{records:#?}");
            assert_eq!(std::fs::read_dir(logs).unwrap().count(), 0, "nothing written there");
        }
    }
}

/// A symlink or a FIFO where the hour's log file goes (made by someone
/// who could write to the directory) is refused, said once on stderr, and
/// the log goes to stderr instead: nothing is written through the link or
/// to a reader of the FIFO. (Before: every line was silently lost.)
#[test]
fn a_symlink_or_a_fifo_at_the_hours_log_file_sends_the_log_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for fifo in [false, true] {
        let logs = tempfile::tempdir().unwrap();
        // This hour's name and the next one's, in case the hour turns.
        let now = time::OffsetDateTime::now_utc();
        let names = [now, now + time::Duration::hours(1)].map(astaire::log_files::file_name);
        let mut readers = Vec::new();
        for name in &names {
            let path = logs.path().join(name);
            if fifo {
                mkfifo(&path);
                use std::os::unix::fs::OpenOptionsExt;
                readers
                    .push(std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path).unwrap());
            } else {
                std::os::unix::fs::symlink(&victim, &path).unwrap();
            }
        }
        let (mut d, _) = idle_daemon(dir.path(), &["--log-file", logs.path().to_str().unwrap()]);
        let refused = d.log_lines("astaire: log file: ");
        assert_eq!(refused.len(), 1, "said once: {}", d.log());
        let kind = if fifo { "a FIFO" } else { "a symlink" };
        assert!(
            refused[0].ends_with(&format!("{kind}, not a regular file: refusing it; the log goes to stderr instead")),
            "{}",
            refused[0]
        );
        assert!(!d.log_lines("Status src/daemon/mod.rs").is_empty(), "the log lines on stderr: {}", d.log());
        assert_eq!(d.stop(), Some(0));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "written through the link");
        for mut reader in readers {
            let mut got = Vec::new();
            let _ = std::io::Read::read_to_end(&mut reader, &mut got);
            assert!(got.is_empty(), "the log went to the FIFO's reader: {}", String::from_utf8_lossy(&got));
        }
    }
}
