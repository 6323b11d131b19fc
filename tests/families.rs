//! Resizing clusters of the client families of issue 30 on real memcached.
//!
//! libmemcached's default placement (modula and one-at-a-time: what
//! php-memcached and pylibmc do without ketama) is proven through the real
//! pylibmc: it writes typed values with the old list, `astaire resync
//! --placement libmemcached` runs on every node of the new list, the old
//! owners drop what they handed over, and pylibmc with the new list reads
//! every key back, value, type and all. The library says where each key
//! belongs (`Client.hash`). For Dalli (weighted) and gomemcache (a server
//! listed twice) the owners here come from an oracle written in
//! tests/clients/families.py from the spec alone, and the keys are written
//! where it says; tests/libraries.rs proves both, and every other family,
//! through the real libraries.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEYS: usize = 5_000;

/// How long any child of these tests may run.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `cmd` with `stdin`, killed and failed (naming `what`) past
/// [`LIMIT`].
fn bounded(cmd: &mut Command, stdin: &str, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            out
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {} s", LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// The client script with Debian's python3 (which has python3-pylibmc).
fn client(args: &[&str]) -> String {
    let script = format!("{}/tests/clients/families.py", env!("CARGO_MANIFEST_DIR"));
    let out = bounded(Command::new("/usr/bin/python3").arg(script).args(args), "", &format!("families.py {args:?}"));
    assert!(out.status.success(), "families.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `astaire ARGS`, bounded.
fn run(args: &[&str]) -> Output {
    bounded(Command::new(env!("CARGO_BIN_EXE_astaire")).args(args), "", &format!("astaire {args:?}"))
}

/// The keys of the script, in order.
fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| match i % 10 {
            3 => format!("ключ:{i}").into_bytes(),
            7 => [b"\xff\xfe:".as_slice(), i.to_string().as_bytes()].concat(),
            _ => format!("user:{i}@example.com").into_bytes(),
        })
        .collect()
}

/// The server index of each key under `servers`, as the script says.
fn owners(scheme: &str, servers: &[String]) -> Vec<usize> {
    client(&["owners", scheme, &servers.join(","), &KEYS.to_string()]).lines().map(|l| l.parse().unwrap()).collect()
}

/// A list entry's server: `host:port` without a `:weight`.
fn name(entry: &str) -> &str {
    match entry.matches(':').count() {
        2 => entry.rsplit_once(':').unwrap().0,
        _ => entry,
    }
}

/// Deletes `keys` from `server`, one pipelined request, checked by a
/// `version` at its end.
fn delete(server: &str, keys: &[&[u8]]) {
    let mut req = Vec::new();
    for k in keys {
        req.extend_from_slice(b"delete ");
        req.extend_from_slice(k);
        req.extend_from_slice(b" noreply\r\n");
    }
    req.extend_from_slice(b"version\r\n");
    let mut conn = std::net::TcpStream::connect(server).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.write_all(&req).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.ends_with(b"\r\n") {
        let n = conn.read(&mut buf).unwrap_or_else(|e| panic!("{server}: no answer to the deletes: {e}"));
        assert!(n > 0, "{server} closed");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"VERSION"), "{}", String::from_utf8_lossy(&answer));
}

/// The resize of `old` to `new` under `scheme`, once the keys are on
/// their old owners: every node of the new list resyncs (exit 0), each
/// moved key is then dropped from its old owner, and every node must hold
/// exactly the keys `new_owner` gives it. `plan --count --every-node`
/// beforehand counts, per node, the keys it then receives. Returns the
/// number of keys that moved between two servers of the old list.
async fn resize(scheme: &str, extra: &[&str], cluster: &Cluster, old: &[String], new: &[String]) -> usize {
    let (old_owner, new_owner) = (owners(scheme, old), owners(scheme, new));
    let keys = keys();
    let nodes = cluster.names(0..cluster.nodes.len());
    let old_at = |i: usize| name(&old[old_owner[i]]).to_owned();
    let new_at = |i: usize| name(&new[new_owner[i]]).to_owned();
    for node in &nodes {
        let held = all_keys(node).await;
        let expect: std::collections::BTreeSet<Vec<u8>> =
            (0..KEYS).filter(|i| old_at(*i) == *node).map(|i| keys[i].clone()).collect();
        assert_eq!(held, expect, "{scheme}: {node} holds what the old list gives it");
    }
    let moved: Vec<usize> = (0..KEYS).filter(|i| old_at(*i) != new_at(*i)).collect();
    assert!(moved.len() > KEYS / 10, "{scheme}: a resize moves keys ({} of {KEYS})", moved.len());
    let names = |l: &[String]| l.iter().map(|e| name(e).to_owned()).collect::<Vec<_>>();
    let between = moved.iter().filter(|i| names(old).contains(&new_at(**i))).count();

    let settings = cluster.settings(&format!("{scheme}-{}-{}", old.len(), new.len()), old, Some(new));
    let path = settings.to_str().unwrap();
    let mut plan = vec!["plan", "--count", "--every-node", "--json", "--placement", scheme, "--cluster-settings", path];
    plan.extend_from_slice(extra);
    let out = run(&plan);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut unique = names(new);
    unique.dedup();
    assert_eq!(planned.len(), unique.len(), "{scheme}: one plan per server of the new list");
    for (node, plan) in unique.iter().zip(&planned) {
        assert_eq!(plan["local_name"], node.as_str());
        let keys: u64 = plan["sources"].as_object().unwrap().values().map(|c| c["keys"].as_u64().unwrap()).sum();
        let expect = moved.iter().filter(|i| new_at(**i) == *node).count() as u64;
        assert_eq!(keys, expect, "{scheme}: plan --count --every-node for {node}");
    }

    for node in &unique {
        let mut args =
            vec!["resync", "--quiet", "--placement", scheme, "--local-name", node, "--cluster-settings", path];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{scheme} on {node}: {}", text(&out));
        let mut verify = vec!["verify", "--placement", scheme, "--local-name", node, "--cluster-settings", path];
        verify.extend_from_slice(extra);
        let out = run(&verify);
        assert_eq!(out.status.code(), Some(0), "{scheme}: verify on {node}: {}", text(&out));
    }
    let mut handed: std::collections::BTreeMap<String, Vec<&[u8]>> = Default::default();
    for i in &moved {
        handed.entry(old_at(*i)).or_default().push(keys[*i].as_slice());
    }
    for (server, keys) in &handed {
        delete(server, keys);
    }
    for node in &nodes {
        let held = all_keys(node).await;
        let expect: std::collections::BTreeSet<Vec<u8>> =
            (0..KEYS).filter(|i| new_at(*i) == *node).map(|i| keys[i].clone()).collect();
        let stray = held.difference(&expect).count();
        let missing = expect.difference(&held).count();
        assert_eq!((stray, missing), (0, 0), "{scheme}: {node} holds what the new list gives it (stray, missing)");
    }
    between
}

/// libmemcached's modula through pylibmc: typed values written with the
/// old list read back, type and all, with the new.
async fn libmemcached_through_pylibmc(old: usize, new: usize) {
    let cluster = Cluster::start(old.max(new));
    let (old, new) = (cluster.names(0..old), cluster.names(0..new));
    client(&["write", "libmemcached", &old.join(","), &KEYS.to_string(), "v1"]);
    resize("libmemcached", &[], &cluster, &old, &new).await;
    let read = client(&["read", "libmemcached", &new.join(","), &KEYS.to_string(), "v1"]);
    let r: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!((r["hit"].as_u64(), r["missing"].as_u64(), r["wrong"].as_u64()), (Some(KEYS as u64), Some(0), Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn libmemcached_three_to_four_through_pylibmc() {
    libmemcached_through_pylibmc(3, 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn libmemcached_four_to_three_through_pylibmc() {
    libmemcached_through_pylibmc(4, 3).await;
}

/// Writes every key, value `v1:i`, on the server `scheme`'s oracle gives
/// it under `servers`.
async fn write_by_oracle(scheme: &str, servers: &[String]) {
    let keys = keys();
    let owner = owners(scheme, servers);
    let mut by_server: std::collections::BTreeMap<&str, Vec<TestItem>> = Default::default();
    for (i, key) in keys.into_iter().enumerate() {
        let item = TestItem { key, value: format!("v1:{i}").into_bytes(), flags: i as u32, ttl: 0 };
        by_server.entry(name(&servers[owner[i]])).or_default().push(item);
    }
    for (server, items) in by_server {
        bulk_set(server, &items).await;
    }
}

/// Dalli's weighted ring, 1,2,3 → 1,2,3,1: every point count changes, so
/// keys also move between the old servers, and each of them receives.
#[tokio::test(flavor = "multi_thread")]
async fn weighted_dalli_moves_keys_between_old_servers_too() {
    let cluster = Cluster::start(4);
    let names = cluster.names(0..4);
    let weighted = |ws: &[u32]| ws.iter().zip(&names).map(|(w, n)| format!("{n}:{w}")).collect::<Vec<_>>();
    let (old, new) = (weighted(&[1, 2, 3]), weighted(&[1, 2, 3, 1]));
    write_by_oracle("dalli", &old).await;
    let between = resize("dalli", &[], &cluster, &old, &new).await;
    assert!(between > 100, "keys moved between old servers: {between}");
}

/// gomemcache gives a server listed twice two slots: with the fourth
/// server twice in the new list it takes two fifths of the keys.
#[tokio::test(flavor = "multi_thread")]
async fn gomemcache_gives_a_repeated_server_two_slots() {
    let cluster = Cluster::start(4);
    let names = cluster.names(0..4);
    let old = names[..3].to_vec();
    let mut new = names.clone();
    new.push(names[3].clone());
    write_by_oracle("gomemcache", &old).await;
    resize("gomemcache", &[], &cluster, &old, &new).await;
    let fourth = all_keys(&names[3]).await.len();
    assert!((KEYS * 35 / 100..KEYS * 45 / 100).contains(&fourth), "two slots of five: {fourth} of {KEYS}");
}

/// What the operator sees for a list or an option the clients could not
/// have: one line naming it, exit 3, nothing copied.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_or_option_the_clients_cannot_have_is_refused_with_exit_3() {
    let cluster = Cluster::start(2);
    let names = cluster.names(0..2);
    bulk_set(&names[0], &plain_items("user:", 200, 0)).await;
    let write = |file: &str, text: &str| {
        let path = cluster.dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (a, b) = (&names[0], &names[1]);
    let cases: Vec<(std::path::PathBuf, Vec<&str>, String)> = vec![
        (
            write("weighted-jump", &format!("servers={a}:2\nnew_servers={a}:2,{b}\n")),
            vec!["--placement", "gomemcache"],
            format!("line 1: {a}:2 gives a weight, but gomemcache's clients have none"),
        ),
        (
            write("wch3", &format!("servers={a}:0.5\nnew_servers={a}:0.5,{b}:1.5\n")),
            vec!["--placement", "mcrouter-weighted"],
            format!("line 2: weight 1.5 of {b} is outside [0, 1]"),
        ),
        (
            write("plain", &format!("servers={a}\nnew_servers={a},{b}\n")),
            vec!["--placement", "twemproxy", "--hash", "sha1"],
            "\"sha1\" is not a twemproxy hash (--hash, astaire_hash): the hashes are one_at_a_time, md5, crc16".into(),
        ),
        (
            write("plain2", &format!("servers={a}\nnew_servers={a},{b}\n")),
            vec!["--placement", "dally"],
            "unknown placement \"dally\" (--placement, astaire_placement): the placements are clearwater, ketama"
                .into(),
        ),
    ];
    for (path, flags, expect) in cases {
        let mut args = vec!["resync", "--quiet", "--local-name", b, "--cluster-settings", path.to_str().unwrap()];
        args.extend_from_slice(&flags);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{flags:?}: {}", text(&out));
        assert!(err.contains(&expect), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    assert!(all_keys(b).await.is_empty(), "nothing copied");
    // The daemon, from its configuration file: the same, at start.
    let settings = write("daemon-cs", &format!("servers={a}\nnew_servers={a},{b}\n"));
    for (config, expect) in [
        ("astaire_placement=dally\n", "unknown placement \"dally\""),
        ("astaire_placement=twemproxy\nastaire_salt=s1\n", "--salt (astaire_salt) is for --placement mcrouter"),
        ("astaire_placement=gomemcache\nastaire_key_prefix=app:\n", "--key-prefix (astaire_key_prefix): gomemcache's"),
    ] {
        let file = write("daemon-config", &format!("local_ip=127.0.0.1\n{config}"));
        let socket = cluster.dir.path().join("control");
        let out = run(&[
            "daemon",
            "--local-name",
            b,
            "--config",
            file.to_str().unwrap(),
            "--cluster-settings",
            settings.to_str().unwrap(),
            "--pd-log",
            "none",
            "--no-agentx",
            "--control-socket",
            socket.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(3), "{config}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(expect), "{config}: {}", text(&out));
    }
    assert!(all_keys(b).await.is_empty(), "nothing copied");
}
