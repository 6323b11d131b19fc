//! The command line helps a newcomer (issue 33): a misspelt command or flag
//! is answered with the right one and the usage error's exit code, and the
//! examples `--help` shows are command lines astaire runs. (That every
//! help page has a one-line purpose and an example that parses is a unit
//! test of `cli::args`, where the parser is.)

mod common;

use common::{astaire, text};

/// The README's exit code for a usage error ("Exit codes").
const USAGE_ERROR: i32 = 2;

#[test]
fn a_misspelt_command_is_answered_with_the_right_one() {
    let out = astaire(&["resycn"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(USAGE_ERROR), "{said}");
    assert!(said.contains("unrecognized subcommand 'resycn'"), "{said}");
    assert!(said.contains("a similar subcommand exists: 'resync'"), "{said}");
}

#[test]
fn a_misspelt_flag_is_answered_with_the_right_one() {
    let out = astaire(&["resync", "--cluster-setings", "x"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(USAGE_ERROR), "{said}");
    assert!(said.contains("unexpected argument '--cluster-setings'"), "{said}");
    assert!(said.contains("a similar argument exists: '--cluster-settings'"), "{said}");
}

/// The examples of `astaire ARGS --help` (the lines under `Example:`).
fn examples(args: &[&str]) -> Vec<String> {
    let mut line = args.to_vec();
    line.push("--help");
    let out = astaire(&line);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    let after = page.lines().skip_while(|l| !l.starts_with("Example")).skip(1);
    let found: Vec<String> = after.take_while(|l| l.starts_with("  astaire ")).map(|l| l.trim().to_owned()).collect();
    assert!(!found.is_empty(), "`astaire {}` shows no example:\n{page}", line.join(" "));
    found
}

/// The examples that read a `cluster_settings` first are run with one that
/// does not exist: astaire gets as far as reading it, so the command line
/// was taken (a usage error would print clap's usage instead).
#[test]
fn the_examples_that_read_cluster_settings_run_until_they_read_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-cluster-settings");
    let missing = missing.to_str().expect("utf-8");
    let mut ran = 0;
    for page in [&[][..], &["resync"], &["plan"], &["verify"]] {
        for example in examples(page) {
            let words: Vec<&str> = example
                .split_whitespace()
                .skip(1)
                .map(|w| if w == "/etc/clearwater/cluster_settings" { missing } else { w })
                .collect();
            assert!(words.contains(&missing), "{example}: names no cluster_settings");
            let out = astaire(&words);
            let said = text(&out);
            assert_eq!(out.status.code(), Some(2), "{example}: {said}");
            assert!(said.contains(&format!("cannot read {missing}")), "{example}: {said}");
            assert!(!said.contains("Usage:"), "{example} was taken for a usage error: {said}");
            ran += 1;
        }
    }
    assert_eq!(ran, 5, "astaire's two examples, resync's, plan's and verify's");
}
