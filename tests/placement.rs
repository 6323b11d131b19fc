//! Resizing clusters sharded by their client library, proven with the real
//! libraries (issue 20): keys written through pylibmc (libmemcached
//! weighted ketama) or pymemcache (rendezvous) with the old list, moved by
//! `astaire resync --placement …` on the nodes that gain keys, and read
//! back through the same library with the new list, after the nodes that
//! handed keys over dropped them. Where each key belongs is asked of the
//! library itself (`pylibmc.Client.hash`, `HashClient.hasher.get_node`),
//! never of Astaire.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

const KEYS: usize = 30_000;

fn client_script() -> String {
    format!("{}/tests/clients/placement.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the client script with Debian's python3 (which has the libraries).
fn client(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("/usr/bin/python3")
        .arg(client_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (python3-pylibmc, python3-pymemcache)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "placement.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The library's server (index into `servers`) for each key.
fn owners(scheme: &str, servers: &[String]) -> Vec<usize> {
    client(&["owners", scheme, &servers.join(","), &KEYS.to_string()], "")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// The same key names as the script's.
fn key(i: usize) -> String {
    if i % 10 == 7 {
        format!("ключ:{i}")
    } else {
        format!("user:{i}@example.com")
    }
}

/// A list entry's server name: `host:port` without a `:weight`.
fn name(entry: &str) -> String {
    match entry.matches(':').count() {
        2 => entry.rsplit_once(':').unwrap().0.to_owned(),
        _ => entry.to_owned(),
    }
}

/// Writes through the library with `old`, resyncs every node of `new`
/// with Astaire, deletes the moved keys from the nodes that handed them
/// over, and reads the
/// moved keys back through the library with `new`. Entries may carry a
/// ketama weight (`host:port:weight`), in the library's list and in
/// cluster_settings alike.
async fn resize_and_read_back(scheme: &str, cluster: &Cluster, old: &[String], new: &[String]) {
    let (old_owner, new_owner) = (owners(scheme, old), owners(scheme, new));
    let between_old = (0..KEYS)
        .filter(|i| name(&old[old_owner[*i]]) != name(&new[new_owner[*i]]))
        .filter(|i| old.iter().any(|o| name(o) == name(&new[new_owner[*i]])))
        .count();
    eprintln!("{scheme}: {between_old} keys move between servers of the old list");
    let names: Vec<String> = cluster.names(0..cluster.nodes.len());
    let (old_entries, new_entries) = (old, new);
    let (old, new): (Vec<String>, Vec<String>) =
        (old.iter().map(|e| name(e)).collect(), new.iter().map(|e| name(e)).collect());
    let (old, new) = (&old[..], &new[..]);
    let at = |list: &[String], i: usize| names.iter().position(|n| *n == list[i]).unwrap();
    let index: std::collections::HashMap<Vec<u8>, usize> = (0..KEYS).map(|i| (key(i).into_bytes(), i)).collect();
    let moved: Vec<usize> = (0..KEYS).filter(|i| old[old_owner[*i]] != new[new_owner[*i]]).collect();
    assert!(moved.len() > KEYS / 10, "{scheme}: a resize moves keys ({} of {KEYS})", moved.len());
    client(&["write", scheme, &old_entries.join(","), &KEYS.to_string(), "v1"], "");
    for node in &names {
        let held = all_keys(node).await;
        assert!(
            held.iter().all(|k| old[old_owner[index[k]]] == *node),
            "{scheme}: the library put each key where it says"
        );
    }

    let settings = cluster.settings(&format!("{scheme}-{}-{}", old.len(), new.len()), old_entries, Some(new_entries));
    for node in new {
        let out = resync_cli(node, &settings, &["--placement", scheme]);
        assert_eq!(out.status.code(), Some(0), "{scheme} on {node}: {}", text(&out));
    }
    // The nodes that handed keys over drop them: only the copies remain.
    // (Not flush_all: with unequal weights a sender also receives.)
    let mut handed: std::collections::BTreeMap<usize, Vec<u8>> = Default::default();
    for i in &moved {
        let req = handed.entry(at(old, old_owner[*i])).or_default();
        req.extend_from_slice(format!("delete {} noreply\r\n", key(*i)).as_bytes());
    }
    for (s, mut req) in handed {
        use std::io::Read;
        req.extend_from_slice(b"version\r\n");
        let mut conn = std::net::TcpStream::connect(&names[s]).unwrap();
        conn.write_all(&req).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while !answer.ends_with(b"\r\n") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "{} closed", names[s]);
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"VERSION"), "{}", String::from_utf8_lossy(&answer));
    }
    let wanted: String = moved.iter().map(|i| format!("{i}\n")).collect();
    let read = client(&["read", scheme, &new_entries.join(","), &KEYS.to_string(), "v1"], &wanted);
    let r: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(r["hit"], moved.len(), "{scheme} {}→{}: every moved key reads back: {read}", old.len(), new.len());
    // No node holds a key the new list does not give it.
    for (n, node) in names.iter().enumerate() {
        for k in all_keys(node).await.into_iter().filter(|k| !k.starts_with(astaire::resync::OWN_PREFIX)) {
            let i = index[&k];
            assert_eq!(at(new, new_owner[i]), n, "{scheme}: {node} holds {} it does not own", key(i));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ketama_three_to_four_through_pylibmc() {
    let cluster = Cluster::start(4);
    resize_and_read_back("ketama", &cluster, &cluster.names(0..3), &cluster.names(0..4)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ketama_four_to_three_through_pylibmc() {
    let cluster = Cluster::start(4);
    resize_and_read_back("ketama", &cluster, &cluster.names(0..4), &cluster.names(0..3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rendezvous_three_to_four_through_pymemcache() {
    let cluster = Cluster::start(4);
    resize_and_read_back("rendezvous", &cluster, &cluster.names(0..3), &cluster.names(0..4)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rendezvous_four_to_three_through_pymemcache() {
    let cluster = Cluster::start(4);
    resize_and_read_back("rendezvous", &cluster, &cluster.names(0..4), &cluster.names(0..3)).await;
}

/// Unequal weights: every point count changes, so keys also move between
/// the old servers, and each of them must run (spec §7).
#[tokio::test(flavor = "multi_thread")]
async fn weighted_ketama_moves_keys_between_old_servers_too() {
    let cluster = Cluster::start(4);
    let names = cluster.names(0..4);
    let weighted = |ws: &[u32]| ws.iter().zip(&names).map(|(w, n)| format!("{n}:{w}")).collect::<Vec<_>>();
    resize_and_read_back("ketama", &cluster, &weighted(&[1, 2, 5]), &weighted(&[1, 2, 5, 1])).await;
}
