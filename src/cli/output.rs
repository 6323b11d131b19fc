//! What the user reads: reports on stdout, and one message per error.

use astaire::placement::Layout;
use astaire::placement::WorkList;
use astaire::resync::Report;
use astaire::verify::VerifyReport;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes one line of a report to stdout. When the reader has gone (`astaire
/// plan | head`), the process ends as a C tool killed by SIGPIPE would be
/// seen to: silently, exit 141. Rust ignores SIGPIPE (its sockets rely on
/// that), so `println!` would panic here instead.
macro_rules! say {
    ($($t:tt)*) => { $crate::cli::output::line(format_args!($($t)*)) };
}
pub(crate) use say;

pub fn line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(128 + nix::sys::signal::Signal::SIGPIPE as i32);
        }
        eprintln!("astaire: cannot write to stdout: {e}");
    }
}

/// Whether the log goes to files rather than to the terminal.
static LOG_IS_A_FILE: AtomicBool = AtomicBool::new(false);

pub fn log_goes_to_files() {
    LOG_IS_A_FILE.store(true, Ordering::Relaxed);
}

/// Reports an error once: a plain `astaire: …` line on the terminal, and
/// the same as an ERROR record when the log goes to files (where the
/// operator reads it later). A log on the terminal would only repeat it.
pub fn error(message: impl std::fmt::Display) {
    eprintln!("astaire: {message}");
    if LOG_IS_A_FILE.load(Ordering::Relaxed) {
        tracing::error!("{message}");
    }
}

/// The one-shot resync's report.
pub fn resync_summary(work: &WorkList, r: &Report) {
    let c = &r.counts;
    say!(
        "resync of {}{}: {} vbuckets ({} vbucket-source pairs) from {} sources",
        work.local_name,
        if work.full { " (full)" } else { "" },
        r.vbuckets,
        r.pairs,
        r.sources.len()
    );
    say!(
        "  {} keys landed in {:.2} s ({:.0} keys/s); {} items, {:.1} MB read from the sources ({:.0} items/s, {:.1} MB/s)",
        c.landed + c.replaced,
        r.seconds,
        r.keys_landed_per_second(),
        c.fetched,
        c.bytes as f64 / 1e6,
        r.items_per_second(),
        c.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    );
    say!(
        "  landed {}, replaced older {}, kept (local as new or newer) {}, second replica checked {}, skipped expiring {}, vanished {}, reverted deletes {}, failed {}",
        c.landed, c.replaced, c.kept, c.checked, c.skipped, c.vanished, c.reverted, c.failed
    );
    if r.local_evictions > 0 {
        say!(
            "  warning: the local memcached evicted {} items during the resync: it is too small for its share (raise its -m)",
            r.local_evictions
        );
    }
    for s in &r.sources {
        match &s.error {
            None => say!("  source {}: {} vbuckets, {} keys", s.source, s.vbuckets.len(), s.listed),
            Some(e) => say!("  source {}: FAILED: {e}", s.source),
        }
    }
    if r.succeeded() {
        say!("  result: complete");
    } else {
        say!("  result: FAILED for {} vbuckets", r.failed_vbuckets.len());
        for (vb, why) in &r.failed_vbuckets {
            say!("    vbucket {vb}: {why}");
        }
    }
}

/// What a resync would pull, as text or as one JSON object.
pub fn plan(view: &Layout, work: &WorkList, json: bool) {
    if json {
        let vbuckets: serde_json::Map<String, serde_json::Value> =
            work.vbuckets.iter().map(|(vb, s)| (vb.to_string(), serde_json::json!(s))).collect();
        let out = serde_json::json!({ "local_name": work.local_name, "full": work.full, "vbuckets": vbuckets });
        say!("{out}");
        return;
    }
    if work.classifier.one_copy() {
        // Which keys move is known only from the sources' key lists.
        say!(
            "{} ({}): may receive keys from {} sources: those each of them owns under servers= and this node \
             owns under new_servers= (which keys, and how many, only a dump of each source can say)",
            work.local_name,
            if view.is_resizing() { "resizing" } else { "stable" },
            work.vbuckets.len()
        );
        for (source, _) in work.by_source() {
            say!("  from {source}");
        }
        return;
    }
    say!(
        "{} ({}{}): pulls {} vbuckets, {} vbucket-source pairs",
        work.local_name,
        if view.is_resizing() { "resizing" } else { "stable" },
        if work.full { ", full resync" } else { "" },
        work.vbuckets.len(),
        work.pairs()
    );
    for (source, vbs) in work.by_source() {
        let list: Vec<String> = vbs.iter().map(u8::to_string).collect();
        say!("  from {source}: {} vbuckets: {}", vbs.len(), list.join(","));
    }
}

/// What each source would send (`plan --count`), as text or one JSON object.
pub fn plan_counts(work: &WorkList, counts: &BTreeMap<String, astaire::plan::SourceCount>, json: bool) {
    if json {
        let out = serde_json::json!({ "local_name": work.local_name, "full": work.full, "sources": counts });
        say!("{out}");
        return;
    }
    let (keys, bytes): (u64, u64) = counts.values().fold((0, 0), |(k, b), c| (k + c.keys, b + c.bytes));
    say!(
        "{} would pull {keys} keys, {:.1} MB, from {} sources (counted from their key lists; nothing was written):",
        work.local_name,
        bytes as f64 / 1e6,
        counts.len()
    );
    for (source, c) in counts {
        match &c.error {
            Some(e) => say!("  from {source}: could not be listed: {e}"),
            None => say!("  from {source}: {} keys, {:.1} MB", c.keys, c.bytes as f64 / 1e6),
        }
    }
}

/// Every difference verify found, then its summary line.
pub fn verify(work: &WorkList, report: &VerifyReport) {
    for d in &report.differences {
        say!("vbucket {:3} {:?} {} (source {})", d.vbucket, d.problem, d.key, d.source);
    }
    for (s, e) in &report.failed_sources {
        say!("source {s} could not be read: {e}");
    }
    let scope = if work.classifier.one_copy() { "sources" } else { "vbuckets" };
    say!(
        "verify {}: {} items checked against their sources ({} {scope}), {} differences{}",
        work.local_name,
        report.checked,
        work.vbuckets.len(),
        report.different,
        if report.failed_sources.is_empty() { "" } else { ", some sources unreadable" }
    );
}
