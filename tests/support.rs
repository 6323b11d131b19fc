//! The tests' own instruments (issue 29): the placement oracle the
//! integration tests take their expectations from, checked against every
//! vector of `shared/spec/cluster.md` and then held against Astaire's
//! view; and the bounded waits, which must fail, promptly and saying
//! what they waited for, where a wait would otherwise hang.

mod common;

use common::bounded::{try_run_within, wait_until};
use common::oracle::{self, get_nodes, ring, vbucket, View, VBUCKETS};
use common::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

fn digits(ring: &[usize]) -> String {
    ring.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_oracle_hashes_the_specs_vectors() {
    // Two literal backslash bytes where the spec shows them.
    assert_eq!(vbucket(b"astaire\\\\tag"), 13);
    assert_eq!(vbucket(b"reg\\\\sip:alice@example.com"), 2);
    assert_eq!(vbucket(b"impi\\\\+8888@example.com"), 69);
    assert_eq!(vbucket(b"a"), 12);
    assert_eq!(vbucket(b""), 84);
}

#[test]
fn the_oracle_builds_the_specs_rings() {
    assert!(ring(0).is_empty());
    assert_eq!(digits(&ring(1)), "0".repeat(128));
    assert_eq!(
        digits(&ring(2)),
        "10101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010"
    );
    assert_eq!(
        digits(&ring(3)),
        "20121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121020121010"
    );
    assert_eq!(
        digits(&ring(4)),
        "20321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321330121020321310"
    );
    // get_nodes walks forward and wraps; fewer nodes than replicas pad.
    assert_eq!(get_nodes(&ring(3), 3, 127, 2), [0, 2]);
    assert_eq!(get_nodes(&ring(1), 1, 5, 2), [0, 0]);
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("10.0.0.{i}:11211")).collect()
}

#[test]
fn the_oracle_gives_the_specs_three_to_four_example_and_work_lists() {
    let v = View::new(&names(3), Some(&names(4)));
    let short = |l: &[String]| l.iter().map(|s| s.trim_end_matches(":11211").replace("10.0.0", "")).collect::<Vec<_>>();
    let expect = [
        ([".3", ".1"], [".3", ".1"]),
        ([".1", ".2"], [".1", ".4"]),
        ([".2", ".3"], [".4", ".3"]),
        ([".3", ".2"], [".3", ".2"]),
        ([".2", ".1"], [".2", ".4"]),
        ([".1", ".3"], [".4", ".1"]),
        ([".3", ".1"], [".4", ".1"]),
        ([".1", ".2"], [".1", ".2"]),
    ];
    for (vb, (cur, new)) in expect.iter().enumerate() {
        assert_eq!(short(&v.current[vb]), cur, "current vb {vb}");
        assert_eq!(short(&v.new.as_ref().unwrap()[vb]), new, "new vb {vb}");
    }
    // "the new node gets 54 vbuckets to pull; 10.0.0.1 gets none".
    assert_eq!(v.work_list("10.0.0.4:11211", false).vbuckets.len(), 54);
    assert!(v.work_list("10.0.0.1:11211", false).vbuckets.is_empty());
    // The client's write set: current primary, new replicas, the rest.
    assert_eq!(v.write_set(2), ["10.0.0.2:11211", "10.0.0.4:11211", "10.0.0.3:11211"]);
    // A full resync pulls everything held, from the other replica.
    let stable = View::new(&names(3), None);
    let full = stable.work_list("10.0.0.1:11211", true);
    let held = stable.current.iter().filter(|r| r.contains(&"10.0.0.1:11211".to_owned())).count();
    assert_eq!(full.vbuckets.len(), held);
    assert!(full.vbuckets.values().all(|s| s.len() == 1 && s[0] != "10.0.0.1:11211"));
}

/// Astaire's view agrees with the oracle vbucket by vbucket, over the
/// cluster shapes the tests use and more: where they part, this names
/// the shape and the vbucket (and the integration tests fail too).
#[test]
fn astaires_view_agrees_with_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let mut shapes: Vec<(usize, Option<usize>)> = (1..=8).map(|n| (n, None)).collect();
    for old in 1..=7 {
        for new in 1..=7 {
            shapes.push((old, Some(new)));
        }
    }
    for (old, new) in shapes {
        let path = dir.path().join("cs");
        let mut text = format!("servers={}\n", names(old).join(","));
        if let Some(new) = new {
            text.push_str(&format!("new_servers={}\n", names(new).join(",")));
        }
        std::fs::write(&path, text).unwrap();
        let (ours, theirs) =
            (View::of_file(&path), astaire::view::View::new(&astaire::view::ClusterSettings::load(&path).unwrap()));
        for vb in 0..VBUCKETS {
            assert_eq!(theirs.current[vb], ours.current[vb], "{old}→{new:?}: current replicas of vbucket {vb}");
            let new_of = |v: &Option<Vec<Vec<String>>>| v.as_ref().map(|n| n[vb].clone());
            assert_eq!(new_of(&theirs.new), new_of(&ours.new), "{old}→{new:?}: new replicas of vbucket {vb}");
            assert_eq!(theirs.write_set(vb as u8), ours.write_set(vb as u8), "{old}→{new:?}: write set of {vb}");
        }
        for node in names(old.max(new.unwrap_or(0))) {
            for full in [false, true] {
                let (a, o) = (theirs.work_list(&node, full), ours.work_list(&node, full));
                assert_eq!(a.vbuckets, o.vbuckets, "{old}→{new:?}: work list of {node} (full: {full})");
            }
        }
    }
    for i in 0..20_000u32 {
        let key = format!("reg\\\\sip:user{i}@example.com");
        assert_eq!(astaire::view::vbucket(key.as_bytes()), oracle::vbucket(key.as_bytes()), "{key}");
    }
}

#[test]
fn key_in_gives_up_saying_why_instead_of_spinning() {
    let started = Instant::now();
    let panic = catch_unwind(|| key_in(b"reg\\\\nowhere", |_| false)).expect_err("no key can be found");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("none of 10000 keys") && message.contains("nowhere"), "{message}");
    eprintln!("key_in gave up after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "gave up after {:?}", started.elapsed());
    assert_eq!(vbucket(&key_in(b"reg\\\\somewhere", |vb| vb == 77)), 77);
}

#[test]
fn a_child_past_its_limit_is_killed_and_the_test_says_what_it_waited_for() {
    let started = Instant::now();
    let mut child = Command::new("sh");
    child.args(["-c", "echo started; echo to-stderr >&2; exec sleep 30"]);
    let timed_out = try_run_within(&mut child, Duration::from_millis(500)).expect_err("sleep 30 outlives 0.5 s");
    assert!(started.elapsed() < Duration::from_secs(5), "killed after {:?}", started.elapsed());
    let message = timed_out.message("sh", "a test sleeper to exit");
    assert!(message.starts_with("sh did not finish within 0.5 s: a test sleeper to exit"), "{message}");
    assert!(message.contains("started") && message.contains("to-stderr"), "its output so far: {message}");

    let panic = catch_unwind(|| {
        run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(200), "a sleeper");
    })
    .expect_err("run_bounded fails the test");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("\"sleep\" \"30\" did not finish within 0.2 s: a sleeper"), "{message}");

    // A child that prints far more than a pipe holds still finishes.
    let out = run_bounded(
        Command::new("sh").args(["-c", "head -c 1000000 /dev/zero; echo done >&2"]),
        Duration::from_secs(30),
        "a chatty child",
    );
    assert_eq!((out.stdout.len(), out.stderr.as_slice()), (1_000_000, &b"done\n"[..]));
    let out =
        run_bounded_with_input(&mut Command::new("cat"), b"fed", Duration::from_secs(30), "cat to echo its input");
    assert_eq!(out.stdout, b"fed");
}

#[test]
fn polls_threads_and_futures_have_limits_too() {
    let panic = catch_unwind(|| wait_until(Duration::from_millis(100), "the moon", || false, || "still night".into()))
        .expect_err("the moon never comes");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("the moon did not happen within 0.1 s") && message.contains("still night"), "{message}");

    let sleeper = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(2)));
    let panic =
        catch_unwind(AssertUnwindSafe(|| join_bounded(sleeper, Duration::from_millis(100), "a sleeping thread")))
            .expect_err("the thread outlives its limit");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("a sleeping thread did not finish within 0.1 s"), "{message}");
    // A panic in a joined thread keeps its message.
    let failing = std::thread::spawn(|| panic!("the thread's own words"));
    let panic = catch_unwind(AssertUnwindSafe(|| join_bounded(failing, Duration::from_secs(5), "a failing thread")))
        .unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the thread's own words"));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(within(Duration::from_millis(100), "a pending future", std::future::pending::<()>()))
    }))
    .expect_err("pending never finishes");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("a pending future did not finish within 0.1 s"), "{message}");
}
