//! Showing a running resync to a person: a progress bar on a terminal, a log
//! line every few seconds otherwise. Reads [`crate::stats`] only.

use crate::stats::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Watches `stats` until dropped.
pub struct ProgressDisplay {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl ProgressDisplay {
    /// A bar when stderr is a terminal (and `quiet` is off), else log lines.
    pub fn start(stats: Arc<Stats>, quiet: bool) -> ProgressDisplay {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} keys  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut last_log = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(p) = stats.current() else { continue };
                let keys = p.total.entries.load(Relaxed);
                let found = p.keys_found.load(Relaxed).max(keys);
                let bytes = p.total.bytes.load(Relaxed);
                let secs = p.started.elapsed().as_secs_f64().max(1e-3);
                let msg = format!(
                    "vbuckets {}/{}  {:.1} MB  {:.0} keys/s",
                    p.pairs_done.load(Relaxed),
                    p.pairs,
                    bytes as f64 / 1e6,
                    keys as f64 / secs
                );
                match &shown {
                    Some(bar) => {
                        bar.set_length(found);
                        bar.set_position(keys);
                        bar.set_message(msg);
                    }
                    None if last_log.elapsed() >= Duration::from_secs(5) => {
                        last_log = std::time::Instant::now();
                        tracing::info!("progress: {keys}/{found} keys, {msg}");
                    }
                    None => {}
                }
            }
        });
        ProgressDisplay { task, bar }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
