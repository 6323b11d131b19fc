//! The tests' own instruments (issue 29): the bounded waits, which must
//! fail, promptly and saying what they waited for, where a wait would
//! otherwise hang.

mod common;

use astaire::view::vbucket;
use common::bounded::{try_run_within, wait_until};
use common::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

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
