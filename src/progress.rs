//! Showing a running resync to a person: a progress bar on a terminal, a log
//! line every few seconds otherwise. Reads [`crate::stats`] only.

use crate::stats::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bar on screen, if any: log lines are printed above it, not through it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A stderr writer for the log that keeps the progress bar intact.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

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
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        if let (Some(bar), Ok(mut active)) = (&bar, ACTIVE_BAR.lock()) {
            *active = Some(bar.clone());
        }
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut last_log = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(p) = stats.current() else { continue };
                // Items read from the sources: a key held by both old
                // replicas is read twice.
                let keys = p.total.entries.load(Relaxed);
                let found = p.keys_found.load(Relaxed).max(keys);
                let bytes = p.total.bytes.load(Relaxed);
                let secs = p.started.elapsed().as_secs_f64().max(1e-3);
                let msg = format!(
                    "pairs done {}/{}  {:.1} MB  {:.0} items/s",
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
                        tracing::info!("progress: {keys}/{found} items, {msg}");
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
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            *active = None;
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
