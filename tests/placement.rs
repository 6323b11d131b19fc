//! Resizing clusters sharded by their client library, proven with the real
//! libraries (issue 20): keys written through pylibmc (libmemcached
//! weighted ketama) or pymemcache (rendezvous) with the old list, moved by
//! `astaire resync --placement …` on the nodes that gain keys, and read
//! back through the same library with the new list, after the nodes that
//! handed keys over were flushed. Where each key belongs is asked of the
//! library itself (`pylibmc.Client.hash`, `HashClient.hasher.get_node`),
//! never of Astaire.

mod common;

use common::*;
use std::collections::BTreeSet;
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

/// Writes through the library with `old`, resyncs every node of `new`
/// with Astaire, flushes the nodes that handed keys over, and reads the
/// moved keys back through the library with `new`.
async fn resize_and_read_back(scheme: &str, cluster: &Cluster, old: &[String], new: &[String]) {
    let (old_owner, new_owner) = (owners(scheme, old), owners(scheme, new));
    let names: Vec<String> = cluster.names(0..cluster.nodes.len());
    let at = |list: &[String], i: usize| names.iter().position(|n| *n == list[i]).unwrap();
    let index: std::collections::HashMap<Vec<u8>, usize> = (0..KEYS).map(|i| (key(i).into_bytes(), i)).collect();
    let moved: Vec<usize> = (0..KEYS).filter(|i| old[old_owner[*i]] != new[new_owner[*i]]).collect();
    assert!(moved.len() > KEYS / 10, "{scheme}: a resize moves keys ({} of {KEYS})", moved.len());
    client(&["write", scheme, &old.join(","), &KEYS.to_string(), "v1"], "");
    for node in &names {
        let held = all_keys(node).await;
        assert!(
            held.iter().all(|k| old[old_owner[index[k]]] == *node),
            "{scheme}: the library put each key where it says"
        );
    }

    let settings = cluster.settings(&format!("{scheme}-{}-{}", old.len(), new.len()), old, Some(new));
    for node in new {
        let out = resync_cli(node, &settings, &["--placement", scheme]);
        assert_eq!(out.status.code(), Some(0), "{scheme} on {node}: {}", text(&out));
    }
    // The nodes that handed keys over lose everything: only copies remain.
    let senders: BTreeSet<usize> = moved.iter().map(|i| at(old, old_owner[*i])).collect();
    for s in &senders {
        use std::io::Read;
        let mut conn = std::net::TcpStream::connect(&names[*s]).unwrap();
        conn.write_all(b"flush_all\r\n").unwrap();
        let mut ok = [0u8; 4];
        conn.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK\r\n");
    }
    let wanted: String = moved.iter().map(|i| format!("{i}\n")).collect();
    let read = client(&["read", scheme, &new.join(","), &KEYS.to_string(), "v1"], &wanted);
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
