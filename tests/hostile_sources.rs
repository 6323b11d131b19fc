//! Hostile and broken sources (issue 29): a dump that drips or never ends,
//! a crawler busy for ever, values larger than the local memcached takes,
//! TTLs no memcached gives, and stopping in the middle of all of these.
//! The fakes are in `common::fake`; the local node and the healthy
//! replicas are real memcached.

mod common;

use common::daemon::Daemon;
use common::fake::{dump_line, fake_memcached, mg_key, opaque, Then};
use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `cluster_settings` where `local` takes over from `fake` and `real`:
/// `servers=fake,real`, `new_servers=real,local`. Two servers hold every
/// vbucket twice, so `local` pulls all 128 vbuckets, each from both `fake`
/// and `real`: whatever `fake` does, `real` alone can cover all of them.
fn taking_over(fake: &str, real: &Memcached, local: &Memcached) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster_settings");
    std::fs::write(&path, format!("servers={fake},{}\nnew_servers={},{}\n", real.name(), real.name(), local.name()))
        .unwrap();
    (dir, path)
}

/// `cluster_settings` where `local` joins `fake` alone, so it pulls every
/// vbucket from it.
fn joining(fake: &str, local: &Memcached) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster_settings");
    std::fs::write(&path, format!("servers={fake}\nnew_servers={fake},{}\n", local.name())).unwrap();
    (dir, path)
}

/// A healthy replica holding `n` keys, and their names.
async fn healthy_replica(n: usize) -> (Memcached, Vec<Vec<u8>>) {
    let real = Memcached::start();
    let items = plain_items("reg\\\\healthy", n, 1);
    bulk_set(&real.name(), &items).await;
    (real, items.into_iter().map(|i| i.key).collect())
}

/// Every key `local` holds is one of `keys`, and it holds them all.
async fn holds_exactly(local: &Memcached, keys: &[Vec<u8>]) {
    let held = all_keys(&local.name()).await;
    let expected: std::collections::BTreeSet<Vec<u8>> = keys.iter().cloned().collect();
    assert_eq!(held.len(), expected.len(), "the local node holds {} keys, not the {} expected", held.len(), keys.len());
    assert_eq!(held, expected);
}

/// The child's output once it exits within `limit` (or the test fails,
/// saying what it waited for), and how long that took.
fn finish_within(child: Child, limit: Duration, what: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = wait_bounded(child, limit, what);
    (out, started.elapsed())
}

/// `astaire resync` for `local` in the background.
fn spawn_resync(local: &Memcached, settings: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(common::astaire_binary())
        .args(["resync", "--quiet", "--log-level", "2", "--local-name", &local.name(), "--cluster-settings"])
        .arg(settings)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start astaire resync")
}

fn sigterm(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
}

/// A fake whose metadump names 300 keys at once, then one byte a second
/// for ever; its keys are all misses.
fn dripping_dump() -> String {
    fake_memcached(|line, s| {
        if line.starts_with("lru_crawler metadump") {
            let keys: String = (0..300).map(|i| dump_line(&format!("reg%5C%5Cdrip{i}"), 70)).collect();
            s.write_all(keys.as_bytes())?;
            for b in dump_line("reg%5C%5Cdripping", 70).bytes().cycle() {
                std::thread::sleep(Duration::from_secs(1));
                s.write_all(&[b])?;
            }
        }
        if line.starts_with("mg ") {
            s.write_all(format!("EN {}\r\n", opaque(line)).as_bytes())?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    })
}

/// Issue 29: a source whose dump dripped a byte a second after a few
/// hundred keys held the resync for ever (killed after 90 s), and the
/// healthy replica waited at the primary barrier. A dump must bring 64 KiB
/// per --io-timeout: the dripping one is given up within about one, and
/// the healthy replica covers every vbucket.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_that_drips_is_given_up_and_the_other_replica_covers_it() {
    let (real, keys) = healthy_replica(2000).await;
    let local = Memcached::start();
    let fake = dripping_dump();
    let (_dir, path) = taking_over(&fake, &real, &local);
    let (out, took) =
        finish_within(spawn_resync(&local, &path, &["--io-timeout", "3"]), Duration::from_secs(60), "resync");
    let t = text(&out);
    eprintln!("a dripping dump given up after {took:?}");
    assert_eq!(out.status.code(), Some(0), "the healthy replica covers every vbucket: {t}");
    assert!(t.contains(&format!("source {fake}: FAILED")) && t.contains("key dump too slow"), "{t}");
    assert!(took < Duration::from_secs(12), "given up after {took:?}");
    holds_exactly(&local, &keys).await;
}

/// Issue 29: SIGTERM while a dump dripped took more than 30 s. Every wait
/// that changes nothing ends on the stop: exit 130 within 2 s.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_dump_that_drips_stops_the_resync_within_two_seconds() {
    let (real, _) = healthy_replica(100).await;
    let local = Memcached::start();
    let fake = dripping_dump();
    let (_dir, path) = taking_over(&fake, &real, &local);
    let child = spawn_resync(&local, &path, &["--io-timeout", "60"]);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(1500)); // the healthy source is done, the fake drips
    sigterm(pid);
    let (out, took) = finish_within(child, Duration::from_secs(30), "resync after SIGTERM");
    eprintln!("stopped {took:?} after SIGTERM, during a dripping dump");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_secs(2), "stopped {took:?} after SIGTERM");
    assert!(!astaire::resync::tag::present(&local.name()).await.unwrap(), "a stopped resync writes no restart tag");
}

/// A fake whose crawler is busy for ever.
fn busy_for_ever() -> String {
    fake_memcached(|line, s| {
        if line.starts_with("lru_crawler") {
            s.write_all(b"BUSY currently processing crawler request\r\n")?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    })
}

/// Issue 29: SIGTERM while a source answered BUSY to every dump waited out
/// the 60 s --busy-wait.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_a_crawler_stays_busy_stops_the_resync_within_two_seconds() {
    let local = Memcached::start();
    let fake = busy_for_ever();
    let (_dir, path) = joining(&fake, &local);
    let child = spawn_resync(&local, &path, &[]);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(pid);
    let (out, took) = finish_within(child, Duration::from_secs(90), "resync after SIGTERM");
    eprintln!("stopped {took:?} after SIGTERM, with the crawler busy");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_secs(2), "stopped {took:?} after SIGTERM");
}

/// Issue 29: the daemon, too, stops within 2 s of SIGTERM whatever its
/// sources do.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_stops_within_two_seconds_of_sigterm_during_a_dump_that_drips() {
    let (real, _) = healthy_replica(100).await;
    let local = Memcached::start();
    let fake = dripping_dump();
    let (_dir, path) = taking_over(&fake, &real, &local);
    let mut d = Daemon::start(&local.name(), &path, &["--io-timeout", "60", "--no-agentx", "--alarm-agent", "none"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.log().contains("resync started"), "{}", d.log());
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (started, log) = (Instant::now(), d.log.clone());
    wait_until(
        Duration::from_secs(30),
        "the daemon to stop after SIGTERM",
        || matches!(d.child.try_wait(), Ok(Some(_))),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let took = started.elapsed();
    let status = d.child.wait().unwrap();
    eprintln!("the daemon stopped {took:?} after SIGTERM, during a dripping dump");
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(took < Duration::from_secs(2), "stopped {took:?} after SIGTERM: {}", d.log());
}

/// Issue 29: the daemon ignored a second SIGTERM. Here the first leaves it
/// waiting (up to --inform-linger, 30 s) for an acknowledgement of its
/// cleared alarm that never comes; the second ends it at once, exit 130.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_ends_the_daemon_at_once() {
    let (real, _) = healthy_replica(100).await;
    let local = Memcached::start();
    let fake = dripping_dump();
    let (_dir, path) = taking_over(&fake, &real, &local);
    // An alarm receiver that never acknowledges.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let mut d = Daemon::start(
        &local.name(),
        &path,
        &["--io-timeout", "60", "--no-agentx", "--alarm-agent", "none", "--snmp-ip", &target, "--inform-linger", "30"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(d.child.try_wait().unwrap().is_none(), "the first SIGTERM waits for the alarm's acknowledgement");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (started, log) = (Instant::now(), d.log.clone());
    wait_until(
        Duration::from_secs(30),
        "the daemon to exit after a second SIGTERM",
        || matches!(d.child.try_wait(), Ok(Some(_))),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let status = d.child.wait().unwrap();
    eprintln!("the daemon exited {:?} after a second SIGTERM", started.elapsed());
    assert_eq!(status.code(), Some(130), "{}", d.log());
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

/// A fake whose metadump names distinct keys at full speed for ever, while
/// its `stats` says it holds `holds` items.
fn endless_dump(holds: u64) -> String {
    fake_memcached(move |line, s| {
        if line.starts_with("lru_crawler metadump") {
            for chunk in 0u64.. {
                let keys: String = (0..1000).map(|i| dump_line(&format!("endless{chunk}-{i}"), 70)).collect();
                s.write_all(keys.as_bytes())?;
            }
        }
        if line.starts_with("stats") && !line.contains("settings") {
            s.write_all(format!("STAT pid 1\r\nSTAT curr_items {holds}\r\nSTAT delete_hits 0\r\nEND\r\n").as_bytes())?;
            return Ok(Some(Then::Next));
        }
        if line.starts_with("mg ") {
            s.write_all(format!("EN {}\r\n", opaque(line)).as_bytes())?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    })
}

/// The report `--json` printed.
fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no report: {}", text(out)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn source_error<'a>(report: &'a serde_json::Value, source: &str) -> &'a str {
    report["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["source"] == source))
        .and_then(|s| s["error"].as_str())
        .unwrap_or_else(|| panic!("{source} did not fail: {report}"))
}

/// Issue 29: a source that dumped distinct keys for ever filled the disk
/// (4.4 GB of spill in 40 s). A dump may name at most twice what its source
/// holds (`curr_items`) and 100,000 more: past that, that source fails and
/// the other replica covers its vbuckets.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_that_never_ends_is_given_up_past_twice_what_its_source_holds() {
    let (real, keys) = healthy_replica(1000).await;
    let local = Memcached::start();
    let fake = endless_dump(1000);
    let (_dir, path) = taking_over(&fake, &real, &local);
    let settings = path.to_str().unwrap();
    let args = ["resync", "--json", "--local-name", &local.name(), "--cluster-settings", settings];
    let started = Instant::now();
    let (out, peak_kib) = astaire_measured(&args);
    let took = started.elapsed();
    let report = report(&out);
    eprintln!(
        "an endless dump given up after {took:?}, peak RSS {} MiB, {} bytes spilled",
        peak_kib / 1024,
        report["spilled_bytes"]
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let why = source_error(&report, &fake);
    assert!(why.contains("named more than 102000 keys, but it holds 1000 items"), "{why}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    holds_exactly(&local, &keys).await;
}

/// Issue 29: a source that claims to hold more than it will ever dump
/// passes the listing limit; the spill files' limit stops it instead, and
/// the other replica covers it. (The copy runs at 1% CPU so keys pile up.)
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_dump_stops_at_the_spill_limit() {
    let (real, keys) = healthy_replica(300).await;
    let local = Memcached::start();
    let fake = endless_dump(1 << 40);
    let (_dir, path) = taking_over(&fake, &real, &local);
    let spill = tempfile::tempdir().unwrap();
    let settings = path.to_str().unwrap();
    let limit = 4_000_000u64;
    let (limit_arg, spill_dir) = (limit.to_string(), spill.path().to_str().unwrap().to_owned());
    let args = [
        "resync",
        "--json",
        "--local-name",
        &local.name(),
        "--cluster-settings",
        settings,
        "--cpu-limit",
        "1",
        "--queue-memory",
        "100000",
        "--spill-dir",
        &spill_dir,
        "--spill-limit",
        &limit_arg,
    ];
    let started = Instant::now();
    let (out, peak_kib) = astaire_measured(&args);
    let took = started.elapsed();
    let report = report(&out);
    let (spilled, peak) = (report["spilled_bytes"].as_u64().unwrap(), report["spill_peak_bytes"].as_u64().unwrap());
    eprintln!(
        "an endless dump stopped at the spill limit after {took:?}, peak RSS {} MiB, {spilled} bytes spilled, \
         at most {peak} at once",
        peak_kib / 1024
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let why = source_error(&report, &fake);
    assert!(why.contains(&format!("would pass their limit of {limit} bytes (--spill-limit")), "{why}");
    assert!(peak <= limit, "the spill files held {peak} bytes at once, past the limit of {limit}");
    assert!(peak > limit / 2, "the spill files held at most {peak} bytes: was it the limit that stopped the dump?");
    assert!(took < Duration::from_secs(60), "{took:?}");
    holds_exactly(&local, &keys).await;
}

/// A fake that names `key` and answers every `mg` with a value of `size`
/// bytes (written a MiB at a time: the fake holds none of it).
fn sending_a_huge_value(key: &'static str, size: usize) -> String {
    fake_memcached(move |line, s| {
        if line.starts_with("lru_crawler metadump") {
            s.write_all(format!("{}END\r\n", dump_line(key, 70)).as_bytes())?;
            return Ok(Some(Then::Next));
        }
        if line.starts_with("mg ") {
            s.write_all(format!("VA {size} f1 t-1 {}\r\n", opaque(line)).as_bytes())?;
            let chunk = vec![b'v'; 1 << 20];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n])?;
                left -= n;
            }
            s.write_all(b"\r\n")?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    })
}

/// Issue 29: two sources each sending one 256 MiB value made the resync
/// peak at 775 MiB. A value larger than the local memcached takes
/// (`item_size_max`, 2 MiB here) is refused from its header and read past:
/// counted as failed, its vbucket reported, and the peak stays small.
#[tokio::test(flavor = "multi_thread")]
async fn values_larger_than_the_local_memcached_takes_are_refused_from_their_header() {
    const HUGE: usize = 256 << 20;
    let local = Memcached::start();
    let (a, b) = (sending_a_huge_value("reg%5C%5Chuge-a", HUGE), sending_a_huge_value("reg%5C%5Chuge-b", HUGE));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster_settings");
    std::fs::write(&path, format!("servers={a},{b}\nnew_servers={a},{}\n", local.name())).unwrap();
    let args = ["resync", "--json", "--local-name", &local.name(), "--cluster-settings", path.to_str().unwrap()];
    let (out, peak_kib) = astaire_measured(&args);
    let report = report(&out);
    eprintln!("two 256 MiB values refused; peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(out.status.code(), Some(1), "two items not copied is no success: {}", text(&out));
    assert_eq!(report["counts"]["failed"], 2, "{report}");
    assert_eq!(report["failed_vbuckets"].as_object().map(|v| v.len()), Some(2), "{report}");
    assert!(text(&out).contains("value larger than the local memcached stores"), "{}", text(&out));
    assert!(peak_kib < 128 * 1024, "peak RSS {} MiB", peak_kib / 1024);
    assert!(all_keys(&local.name()).await.is_empty());
}

/// The value a budget-testing fake sends for `key`: `size` bytes that
/// name it.
fn value_for(key: &str, size: usize) -> Vec<u8> {
    key.bytes().chain(std::iter::repeat(b'.')).take(size).collect()
}

/// Issue 29: the batch byte budget of the copy was untested: on 1.6.18 the
/// dump's `size=` already cut the key batches. This source's dump claims 70
/// bytes a key and sends 400 KB values, so only the fetcher's budget
/// (`batch_bytes`, 1 MiB and one value) bounds what a batch holds.
#[tokio::test(flavor = "multi_thread")]
async fn batches_hold_their_byte_budget_when_the_dump_understates_the_sizes() {
    const KEYS: usize = 100;
    const SIZE: usize = 400_000;
    let local = Memcached::start();
    let fake = fake_memcached(|line, s| {
        if line.starts_with("lru_crawler metadump") {
            let keys: String = (0..KEYS).map(|i| dump_line(&format!("budget{i}"), 70)).collect();
            s.write_all(format!("{keys}END\r\n").as_bytes())?;
            return Ok(Some(Then::Next));
        }
        if line.starts_with("mg ") {
            s.write_all(format!("VA {SIZE} f1 t-1 {}\r\n", opaque(line)).as_bytes())?;
            s.write_all(&value_for(mg_key(line), SIZE))?;
            s.write_all(b"\r\n")?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    });
    let (_dir, path) = joining(&fake, &local);
    let args = ["resync", "--json", "--local-name", &local.name(), "--cluster-settings", path.to_str().unwrap()];
    let (out, peak_kib) = astaire_measured(&args);
    eprintln!("{KEYS} values of {SIZE} bytes under-declared by the dump; peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut conn = local.conn().await;
    for i in 0..KEYS {
        let key = format!("budget{i}");
        let item = get(&mut conn, key.as_bytes()).await.unwrap_or_else(|| panic!("{key} did not land"));
        assert!(item.value == value_for(&key, SIZE), "{key} landed with another value");
    }
    // 100 × 400 KB is 40 MB; batches of 1 MiB and one value keep a few MiB.
    assert!(peak_kib < 32 * 1024, "peak RSS {} MiB: batches held more than their byte budget", peak_kib / 1024);
}

/// Issue 29: a source's `t-5`, or an answer with no `t`, was stored with
/// no expiry, and the resync succeeded. Only `t-1` means none: the others
/// fail their item, its vbucket is reported, and no tag is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_ttl_memcached_never_gives_fails_its_item_instead_of_making_it_immortal() {
    let local = Memcached::start();
    let fake = fake_memcached(|line, s| {
        if line.starts_with("lru_crawler metadump") {
            let keys: String = ["ttl-minus-five", "ttl-missing", "ttl-none"].iter().map(|k| dump_line(k, 70)).collect();
            s.write_all(format!("{keys}END\r\n").as_bytes())?;
            return Ok(Some(Then::Next));
        }
        if line.starts_with("mg ") {
            let ttl = match mg_key(line) {
                "ttl-minus-five" => " t-5",
                "ttl-missing" => "",
                _ => " t-1",
            };
            s.write_all(format!("VA 5 f1{ttl} {}\r\nhello\r\n", opaque(line)).as_bytes())?;
            return Ok(Some(Then::Next));
        }
        Ok(None)
    });
    let (_dir, path) = joining(&fake, &local);
    let args = ["resync", "--json", "--local-name", &local.name(), "--cluster-settings", path.to_str().unwrap()];
    let (out, _) = astaire_measured(&args);
    let report = report(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["counts"]["failed"], 2, "{report}");
    let failed: Vec<u64> =
        report["failed_vbuckets"].as_object().unwrap().keys().map(|vb| vb.parse().unwrap()).collect();
    let mut failed = failed;
    failed.sort_unstable();
    let mut expected: Vec<u64> =
        ["ttl-minus-five", "ttl-missing"].iter().map(|k| u64::from(oracle::vbucket(k.as_bytes()))).collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(failed, expected, "{report}");
    let mut conn = local.conn().await;
    assert!(get(&mut conn, b"ttl-minus-five").await.is_none(), "never stored as immortal");
    assert!(get(&mut conn, b"ttl-missing").await.is_none(), "never stored as immortal");
    let kept = get(&mut conn, b"ttl-none").await.expect("t-1 is no expiry: it lands");
    assert_eq!(kept.ttl, -1);
    assert!(!astaire::resync::tag::present(&local.name()).await.unwrap(), "no tag after a failed resync");
}
