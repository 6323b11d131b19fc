//! Edge behaviours of the resync against real memcached: conflict policies,
//! a busy crawler, a source that forbids dumps, verify finding differences.

mod common;

use astaire::memcached::Connection;
use astaire::resync::Options;
use astaire::stats::Stats;
use common::oracle::vbucket;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-source, one-target cluster: `local` is the new node.
fn two_nodes(cluster: &Cluster) -> (std::path::PathBuf, String, String) {
    let (source, local) = (cluster.nodes[0].name(), cluster.nodes[1].name());
    let path = cluster.settings("cs", std::slice::from_ref(&source), Some(&[source.clone(), local.clone()]));
    (path, source, local)
}

#[tokio::test(flavor = "multi_thread")]
async fn clearwater_timestamp_replaces_older_local_values_and_keeps_newer_ones() {
    let cluster = Cluster::start(2);
    let (path, source, local) = two_nodes(&cluster);
    let view = view(&path);
    let mine = |vb: u8| view.target()[vb as usize].contains(&local);
    let older_local = key_in(b"reg\\\\older-local", mine);
    let newer_local = key_in(b"reg\\\\newer-local", mine);
    // The source wrote at t=5000 ms (flags hold the write time).
    let mut src = Connection::connect(&source, Duration::from_secs(5)).await.unwrap();
    src.set(&older_local, b"from-source", 5000, 0).await.unwrap();
    src.set(&newer_local, b"from-source", 5000, 0).await.unwrap();
    let mut dst = Connection::connect(&local, Duration::from_secs(5)).await.unwrap();
    dst.set(&older_local, b"stale-local", 4000, 0).await.unwrap();
    dst.set(&newer_local, b"fresh-local", 6000, 0).await.unwrap();

    // add-only, as an operator gives it, leaves both local values alone.
    let out = astaire(
        &["resync", "--local-name", &local, "--cluster-settings", path.to_str().unwrap(), "--json"]
            .into_iter()
            .chain(["--conflict", "add-only"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["counts"]["replaced"].as_u64(), report["counts"]["kept"].as_u64()), (Some(0), Some(2)));
    assert_eq!(get(&mut dst, &older_local).await.unwrap().value, b"stale-local");
    let work = astaire_work_list(&path, &local, false);

    // The default replaces only the older one.
    let report = resync_within(&work, &Options::default(), &Stats::new()).await.unwrap();
    assert_eq!((report.counts.replaced, report.counts.kept), (1, 1));
    let replaced = get(&mut dst, &older_local).await.unwrap();
    assert_eq!((replaced.value.as_slice(), replaced.flags), (&b"from-source"[..], 5000));
    assert_eq!(get(&mut dst, &newer_local).await.unwrap().value, b"fresh-local");
}

/// Each key is on two old replicas; the second to list it is only checked
/// (`mg f`) once the first has landed it. When the replicas disagree the
/// newer value must still win, whichever replica holds it, and a key only
/// one replica holds must still arrive.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_that_disagree_give_the_newer_value_whichever_holds_it() {
    let Resize { cluster, all, stable, resize, .. } = Resize::three_to_four();
    let (before, during) = (view(&stable), view(&resize));
    let items = plain_items("reg\\\\sip:agree-", 3_000, 1_000);
    load_fast(&before, &items).await;
    let work = during.work_list(&all[3], false);
    let sources = |key: &[u8]| work.vbuckets[&vbucket(key)].clone();
    let mine = |vb: u8| work.vbuckets.get(&vb).is_some_and(|s| s.len() == 2);
    let conn = |name: String| async move { Connection::connect(&name, Duration::from_secs(5)).await.unwrap() };
    // (key, flags on the primary, flags on the secondary); None: absent there.
    let cases: Vec<(Vec<u8>, Option<u32>, Option<u32>)> = vec![
        (key_in(b"reg\\\\primary-newer", mine), Some(5_000), Some(4_000)),
        (key_in(b"reg\\\\secondary-newer", mine), Some(4_000), Some(5_000)),
        (key_in(b"reg\\\\secondary-only", mine), None, Some(4_500)),
        (key_in(b"reg\\\\primary-only", mine), Some(4_500), None),
    ];
    for (key, on_primary, on_secondary) in &cases {
        let s = sources(key);
        for (server, flags) in [(&s[0], on_primary), (&s[1], on_secondary)] {
            let mut c = conn(server.clone()).await;
            match flags {
                Some(f) => c.set(key, format!("v{f}").as_bytes(), *f, 0).await.unwrap(),
                None => drop(c.delete(key).await.unwrap()),
            }
        }
    }

    let input = astaire_work_list(&resize, &all[3], false);
    let report = resync_within(&input, &Options::default(), &Stats::new()).await.unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(report.counts.checked > 0, "the second replica was only checked: {:?}", report.counts);
    // No client removed anything during the resync: the delete guard had
    // nothing to re-check.
    assert_eq!(report.counts.rechecked, 0, "{:?}", report.counts);
    let mut local = conn(all[3].clone()).await;
    for (key, on_primary, on_secondary) in &cases {
        let newest = on_primary.max(on_secondary).unwrap();
        let got = get(&mut local, key).await.unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(key)));
        assert_eq!(
            (got.flags, got.value),
            (newest, format!("v{newest}").into_bytes()),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    let moved = items.iter().filter(|i| during.target()[vbucket(&i.key) as usize].contains(&all[3])).count();
    assert_eq!(all_keys(&all[3]).await.len(), moved + cases.len());
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_crawler_is_waited_for_and_the_resync_completes() {
    let cluster = Cluster::start(2);
    let (path, source, local) = two_nodes(&cluster);
    let mut items = plain_items("reg\\\\sip:busy", 60_000, 1);
    items.iter_mut().for_each(|i| i.key.extend_from_slice(&[b'p'; 150]));
    bulk_set(&source, &items).await;

    // Someone else's dump, read slowly: the crawler stays busy meanwhile.
    let mut blocker = tokio::net::TcpStream::connect(&source).await.unwrap();
    blocker.write_all(b"lru_crawler metadump hash\r\n").await.unwrap();
    let mut first = [0u8; 64];
    within(Duration::from_secs(10), "the start of the other dump", blocker.read_exact(&mut first)).await.unwrap();
    let started = Instant::now();
    let drain = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Drain up to the dump's end (memcached keeps the connection open).
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !tail.ends_with(b"END\r\n") && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), blocker.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    tail.extend_from_slice(&buf[..n]);
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                }
                _ => break,
            }
        }
    });
    let out = astaire(&[
        "--log-level",
        "5",
        "resync",
        "--local-name",
        &local,
        "--cluster-settings",
        path.to_str().unwrap(),
        "--quiet",
    ]);
    within(Duration::from_secs(30), "draining the other dump", drain).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("crawler busy"), "the BUSY answer was seen and retried: {}", text(&out));
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let view = view(&path);
    let expected = items.iter().filter(|i| view.target()[vbucket(&i.key) as usize].contains(&local)).count();
    assert_eq!(all_keys(&local).await.len(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_forbids_dumps_is_reported_clearly() {
    let forbidding = Memcached::start_with(&["-X"]);
    let local = Memcached::start();
    let cluster = Cluster { nodes: vec![], dir: tempfile::tempdir().unwrap() };
    let (s, l) = (forbidding.name(), local.name());
    let path = cluster.settings("cs", std::slice::from_ref(&s), Some(&[s.clone(), l.clone()]));
    let out = astaire(&["resync", "--local-name", &l, "--cluster-settings", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&format!("source {s}: FAILED")), "{}", text(&out));
    // 1.6.18 says "metadump not allowed", 1.6.38+ "key dump not allowed".
    assert!(text(&out).contains("dump not allowed"), "{}", text(&out));
    assert!(text(&out).contains("restart it without -X"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_lists_missing_and_changed_keys_and_exits_1() {
    let cluster = Cluster::start(2);
    let (path, source, local) = two_nodes(&cluster);
    let items = plain_items("reg\\\\sip:verify", 500, 42);
    bulk_set(&source, &items).await;
    let p = path.to_str().unwrap();
    let out = astaire(&["resync", "--local-name", &local, "--cluster-settings", p, "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(astaire(&["verify", "--local-name", &local, "--cluster-settings", p]).status.code(), Some(0));

    let view = view(&path);
    let mut mine = items.iter().filter(|i| view.target()[vbucket(&i.key) as usize].contains(&local));
    let (gone, changed, reflagged) = (mine.next().unwrap(), mine.next().unwrap(), mine.next().unwrap());
    let mut dst = Connection::connect(&local, Duration::from_secs(5)).await.unwrap();
    dst.delete(&gone.key).await.unwrap();
    dst.set(&changed.key, b"something else", changed.flags, 0).await.unwrap();
    dst.set(&reflagged.key, &reflagged.value, 7, 0).await.unwrap();

    let out = astaire(&["verify", "--local-name", &local, "--cluster-settings", p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for (item, problem) in [(gone, "MissingLocally"), (changed, "ValueDiffers"), (reflagged, "FlagsDiffer")] {
        let line = t.lines().find(|l| l.contains(&*String::from_utf8_lossy(&item.key))).unwrap_or_default();
        assert!(line.contains(problem), "{problem} for {:?} in:\n{t}", String::from_utf8_lossy(&item.key));
    }
    assert!(t.contains("3 differences"), "{t}");
}

/// `astaire plan | head` : a reader that has gone ends the report as a C
/// tool killed by SIGPIPE would (exit 141, nothing on stderr), not with a
/// panic. The pipe's read end is closed before astaire starts, so its
/// first line meets EPIPE.
#[test]
fn a_report_whose_reader_has_gone_ends_quietly_with_141() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cluster_settings");
    std::fs::write(&settings, "servers=10.0.0.1:11211\nnew_servers=10.0.0.1:11211,10.0.0.2:11211\n").unwrap();
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let child = std::process::Command::new(common::astaire_binary())
        .args(["plan", "--local-name", "10.0.0.2:11211", "--cluster-settings", settings.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, ASTAIRE_LIMIT, "`astaire plan` writing to a closed pipe to exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}
