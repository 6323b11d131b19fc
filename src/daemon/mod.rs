//! The long-running service: resyncs when asked (start-up, SIGHUP for a
//! minimal resync, SIGUSR1 for a full one, a missing restart tag), one at a
//! time, and reports over the control socket, AgentX and INFORMs.
//!
//! One task owns all state ([`scheduler::Scheduler`]); signals, control
//! requests, resync completions and timers reach it as events. SIGHUP and
//! SIGUSR1 are also counted by atomics in the real signal handlers, and
//! every control request folds those counts in before answering: a signal
//! sent before a `wait-sync` started has been delivered (the kernel runs
//! handlers before the daemon can read the request), so the wait always
//! covers it.

pub mod control;
pub mod scheduler;

use crate::exit::Exit;
use crate::pd_log::{PdEvent, PdLog};
use crate::placement::Layout;
use crate::resync::{self, Options, ResyncError};
use crate::snmp::agentx::{AgentConfig, Subagent};
use crate::snmp::inform::{AlarmReporter, InformConfig};
use crate::stats::Stats;
use crate::view::ClusterSettings;
use control::{ProgressStatus, Status};
use scheduler::{Kind, Outcome, Scheduler};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("invalid cluster settings: {0}")]
    Settings(#[from] crate::view::SettingsError),
    #[error("invalid cluster settings: {0}")]
    Layout(#[from] crate::placement::LayoutError),
    #[error("cannot create the control socket {}: {source}", path.display())]
    ControlSocket { path: PathBuf, source: std::io::Error },
}

impl StartError {
    pub fn exit(&self) -> Exit {
        match self {
            StartError::Settings(_) | StartError::Layout(_) => Exit::BadSettings,
            StartError::Signals(_) | StartError::ControlSocket { .. } => Exit::Usage,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub local_name: String,
    pub cluster_settings: PathBuf,
    pub control_socket: PathBuf,
    /// What control clients may hold (`ControlLimits::for_open_files`).
    pub control_limits: control::ControlLimits,
    pub agentx: Option<AgentConfig>,
    pub inform: InformConfig,
    /// Clearwater's alarm agent, used instead of `inform` when its socket exists.
    pub alarm_agent: crate::snmp::alarm_agent::AgentSettings,
    /// Also send the alarm's current (cleared) state at start.
    pub announce_alarm_state: bool,
    /// At stop, how long receivers get to acknowledge the clear.
    pub inform_linger: Duration,
    pub resync: Options,
    /// How often the restart tag is checked while idle.
    pub tag_poll: Duration,
    /// How soon a resync that failed on the local node is tried again.
    pub retry_after: Duration,
    /// Where the major events go (syslog on a node).
    pub pd: PdLog,
    /// How the cluster's clients place keys.
    pub placement: crate::placement::Placement,
}

static HUPS: AtomicU64 = AtomicU64::new(0);
static USR1S: AtomicU64 = AtomicU64::new(0);

/// Counts SIGHUP and SIGUSR1 in the signal handlers themselves.
fn count_signals() -> std::io::Result<()> {
    // SAFETY: the closures only increment atomics, which is async-signal-safe.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGHUP, || {
            HUPS.fetch_add(1, Ordering::SeqCst);
        })?;
        signal_hook::low_level::register(signal_hook::consts::SIGUSR1, || {
            USR1S.fetch_add(1, Ordering::SeqCst);
        })?;
    }
    Ok(())
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(false, state);
}

/// What the resync task hands back.
struct Finished {
    outcome: Outcome,
    local_unreachable: bool,
    member: bool,
    /// The resync's (vbucket, source) pairs: 0 when it had nothing to do.
    pairs: u64,
    /// Sources that failed, and why.
    failed_sources: Vec<(String, String)>,
}

struct Daemon {
    opts: DaemonOptions,
    stats: Arc<Stats>,
    scheduler: Scheduler,
    seen_hups: u64,
    seen_usr1s: u64,
    member: bool,
    local_unreachable: bool,
    stopping: bool,
    alarms: Option<AlarmReporter>,
    cancel: Arc<AtomicBool>,
}

impl Daemon {
    /// A stop signal: the first stops at the next safe point, a second
    /// exits at once (the alarm stays as it is, no restart tag is written).
    fn stop(&mut self, signal: &str) {
        if self.stopping {
            warn!("{signal} again: exiting at once");
            std::process::exit(Exit::Interrupted.code().into());
        }
        info!("{signal}: stopping");
        self.stopping = true;
    }

    /// Folds signals counted by the handlers into requests.
    fn absorb_signals(&mut self) {
        let hups = HUPS.load(Ordering::SeqCst);
        if hups > self.seen_hups {
            self.seen_hups = hups;
            let g = self.scheduler.request(Kind::Minimal);
            info!(generation = g, "SIGHUP: re-reading the configuration for a minimal resync");
        }
        let usr1s = USR1S.load(Ordering::SeqCst);
        if usr1s > self.seen_usr1s {
            self.seen_usr1s = usr1s;
            let g = self.scheduler.request(Kind::Full);
            info!(generation = g, "SIGUSR1: full resync requested");
        }
    }

    fn status(&self) -> Status {
        let state = if self.stopping {
            "stopping"
        } else if self.scheduler.running().is_some() {
            "resyncing"
        } else if !self.member {
            "not-member"
        } else if self.local_unreachable {
            "local-unreachable"
        } else {
            "idle"
        };
        let progress = self.stats.current().map(|p| ProgressStatus {
            pairs: p.pairs,
            pairs_done: p.pairs_done.load(Ordering::Relaxed),
            entries: p.total.entries.load(Ordering::Relaxed),
            bytes: p.total.bytes.load(Ordering::Relaxed),
        });
        Status {
            state: state.to_owned(),
            local_name: self.opts.local_name.clone(),
            member: self.member,
            requested: self.scheduler.requested(),
            completed: self.scheduler.completed(),
            running: self.scheduler.running().map(|(_, k)| k),
            pending: self.scheduler.pending(),
            last: self.scheduler.last().cloned(),
            progress,
            tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        }
    }

    /// Starts the next resync if one is due; returns its task.
    fn start_next(&mut self) -> Option<tokio::task::JoinHandle<Finished>> {
        if self.stopping {
            return None;
        }
        let (generation, kind) = self.scheduler.start_next()?;
        // SIGHUP means "re-read the files": read them now, so the latest
        // content counts. A bad file changes nothing.
        let settings = ClusterSettings::load(&self.opts.cluster_settings);
        // A resync decided without copying anything: done at once.
        let immediate = |error: Option<String>, member: bool| {
            let outcome = Outcome {
                generation,
                kind,
                success: error.is_none(),
                error,
                failed_vbuckets: vec![],
                keys_landed: 0,
                seconds: 0.0,
            };
            let f = Finished { outcome, local_unreachable: false, member, pairs: 0, failed_sources: Vec::new() };
            Some(tokio::spawn(async move { f }))
        };
        let layout = settings.map_err(|e| e.to_string()).and_then(|s| {
            Layout::new(&s, &self.opts.placement).map_err(|e| format!("{}: {e}", self.opts.cluster_settings.display()))
        });
        let view = match layout {
            Ok(l) => l,
            Err(e) => {
                error!("invalid cluster settings, nothing changed: {e}");
                self.opts.pd.report(&PdEvent::InvalidClusterSettings(e.to_string()));
                return immediate(Some(format!("invalid cluster settings: {e}")), self.member);
            }
        };
        let local = self.opts.local_name.clone();
        if !view.knows(&local) {
            info!(%local, "not in servers or new_servers: staying idle");
            return immediate(None, false);
        }
        // A one-copy placement has no full resync: a restart pulls what moves.
        let full = kind == Kind::Full && !self.opts.placement.scheme.one_copy();
        let work = match view.work_list(&local, full) {
            Ok(w) => w,
            Err(e) => return immediate(Some(e.to_string()), true),
        };
        let pairs = work.pairs() as u64;
        if let Some(a) = self.alarms.as_mut() {
            a.resync_started(work.pairs());
        }
        if pairs > 0 {
            self.opts.pd.report(&PdEvent::ResyncStarted { pairs });
        }
        notify_systemd(&[sd_notify::NotifyState::Status(&format!(
            "resyncing ({kind:?}, {} vbuckets)",
            work.vbuckets.len()
        ))]);
        let mut options = self.opts.resync.clone();
        options.cancel = Some(self.cancel.clone());
        let stats = self.stats.clone();
        Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = resync::run(&work, &options, &stats).await;
            let seconds = started.elapsed().as_secs_f64();
            let mut failed_sources = Vec::new();
            let (success, error, failed_vbuckets, keys_landed, local_unreachable) = match result {
                Ok(report) => {
                    failed_sources = report
                        .sources
                        .iter()
                        .filter_map(|s| s.error.as_ref().map(|e| (s.source.clone(), e.clone())))
                        .collect();
                    (
                        report.succeeded(),
                        (!report.succeeded()).then(|| format!("{} vbuckets failed", report.failed_vbuckets.len())),
                        report.failed_vbuckets.keys().copied().collect(),
                        report.counts.landed + report.counts.replaced,
                        false,
                    )
                }
                Err(e @ ResyncError::Local(_)) => (false, Some(e.to_string()), vec![], 0, true),
                Err(e @ ResyncError::Cancelled) => (false, Some(e.to_string()), vec![], 0, false),
            };
            Finished {
                outcome: Outcome { generation, kind, success, error, failed_vbuckets, keys_landed, seconds },
                local_unreachable,
                member: true,
                pairs,
                failed_sources,
            }
        }))
    }

    fn finished(&mut self, f: Finished) {
        self.member = f.member;
        self.local_unreachable = f.local_unreachable;
        let o = &f.outcome;
        if !o.success {
            warn!(generation = o.generation, kind = ?o.kind, "resync failed: {}", o.error.as_deref().unwrap_or(""));
        }
        let pd = &self.opts.pd;
        for (source, why) in &f.failed_sources {
            pd.report(&PdEvent::SourceFailed { source: source.clone(), why: why.clone() });
        }
        if f.local_unreachable {
            pd.report(&PdEvent::LocalUnreachable(o.error.clone().unwrap_or_default()));
        }
        if !o.failed_vbuckets.is_empty() {
            pd.report(&PdEvent::ResyncIncomplete { vbuckets: o.failed_vbuckets.len() });
        }
        if f.pairs > 0 {
            pd.report(&PdEvent::ResyncEnded);
        }
        if let Some(a) = self.alarms.as_mut() {
            a.resync_ended();
        }
        self.scheduler.finished(f.outcome);
        notify_systemd(&[sd_notify::NotifyState::Status(&self.status().summary())]);
    }
}

/// Gives the heap a finished resync freed back to the system: the daemon
/// then idles for hours, and glibc would otherwise keep the batches' pages.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: DaemonOptions) -> Result<(), StartError> {
    count_signals().map_err(StartError::Signals)?;
    let (mut hup, mut usr1, mut term, mut int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return Err(StartError::Signals(e)),
    };
    // The view is loaded before anything else: an invalid file at start is fatal.
    let settings = ClusterSettings::load(&opts.cluster_settings).inspect_err(|e| {
        opts.pd.report(&PdEvent::InvalidClusterSettings(e.to_string()));
    })?;
    let view = Layout::new(&settings, &opts.placement).inspect_err(|e| {
        opts.pd.report(&PdEvent::InvalidClusterSettings(e.to_string()));
    })?;
    let listener = control::bind(&opts.control_socket)
        .map_err(|source| StartError::ControlSocket { path: opts.control_socket.clone(), source })?;
    let stats = Stats::new();
    let agent = opts.agentx.clone().map(|c| Subagent::spawn(c, stats.clone()));
    let member = view.knows(&opts.local_name);
    let mut d = Daemon {
        opts: opts.clone(),
        stats,
        scheduler: Scheduler::default(),
        seen_hups: HUPS.load(Ordering::SeqCst),
        seen_usr1s: USR1S.load(Ordering::SeqCst),
        member,
        local_unreachable: false,
        stopping: false,
        alarms: Some(AlarmReporter::new(opts.inform.clone(), opts.alarm_agent.clone(), opts.announce_alarm_state)),
        cancel: Arc::new(AtomicBool::new(false)),
    };
    info!(local = %opts.local_name, member, "astaire daemon started");
    opts.pd.report(&PdEvent::Started);

    // A missing tag at start means the local memcached lost its data while
    // we were not watching: the first resync is full.
    if member {
        let first = match resync::tag::present(&opts.local_name).await {
            Some(true) => Kind::Minimal,
            Some(false) => {
                info!("restart tag missing: the local memcached is new or restarted; full resync");
                Kind::Full
            }
            None => {
                warn!(local = %opts.local_name, "local memcached unreachable; will retry");
                opts.pd.report(&PdEvent::LocalUnreachable(format!("{} does not answer", opts.local_name)));
                d.local_unreachable = true;
                Kind::Minimal
            }
        };
        d.scheduler.request(first);
    } else {
        info!(local = %opts.local_name, "not in servers or new_servers: idle until the cluster settings list it");
    }

    let (control_tx, mut control_rx) = mpsc::channel::<oneshot::Sender<Status>>(64);
    tokio::spawn(control::serve(listener, opts.control_limits, move || {
        let tx = control_tx.clone();
        async move {
            let (reply_tx, reply_rx) = oneshot::channel();
            tx.send(reply_tx).await.ok()?;
            reply_rx.await.ok()
        }
    }));
    notify_systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("view loaded")]);

    let (tag_tx, mut tag_rx) = mpsc::channel::<Option<bool>>(4);
    let (retry_tx, mut retry_rx) = mpsc::channel::<(Kind, Option<bool>)>(4);
    let mut tag_poll = tokio::time::interval(opts.tag_poll);
    tag_poll.tick().await;
    // The kind of resync to retry (the kind that failed), and when.
    let mut retry: Option<(Kind, std::pin::Pin<Box<tokio::time::Sleep>>)> = None;
    // systemd STATUS= with progress while a resync runs.
    let mut status_tick = tokio::time::interval(Duration::from_secs(5));
    let mut running: Option<tokio::task::JoinHandle<Finished>> = d.start_next();

    loop {
        tokio::select! {
            done = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                match done {
                    Ok(f) => {
                        if f.local_unreachable && !d.stopping {
                            retry = Some((f.outcome.kind, Box::pin(tokio::time::sleep(opts.retry_after))));
                        }
                        d.finished(f);
                    }
                    Err(e) => error!("resync task failed: {e}"),
                }
                release_freed_memory();
                if d.stopping {
                    break;
                }
            }
            _ = hup.recv() => d.absorb_signals(),
            _ = usr1.recv() => d.absorb_signals(),
            _ = term.recv() => d.stop("SIGTERM"),
            _ = int.recv() => d.stop("SIGINT"),
            Some(reply) = control_rx.recv() => {
                d.absorb_signals();
                let _ = reply.send(d.status());
            }
            _ = tag_poll.tick() => {
                let idle = running.is_none() && d.scheduler.pending().is_none();
                if idle && d.member && !d.stopping {
                    let (local, tx) = (opts.local_name.clone(), tag_tx.clone());
                    tokio::spawn(async move {
                        let _ = tx.send(resync::tag::present(&local).await).await;
                    });
                }
            }
            Some(present) = tag_rx.recv() => match present {
                Some(false) => {
                    if running.is_none() && d.scheduler.pending().is_none() {
                        warn!("restart tag missing: the local memcached restarted and lost its data; full resync");
                        d.scheduler.request(Kind::Full);
                    }
                    d.local_unreachable = false;
                }
                Some(true) => d.local_unreachable = false,
                _ => {
                    if !d.local_unreachable {
                        warn!(local = %opts.local_name, "local memcached unreachable");
                        opts.pd.report(&PdEvent::LocalUnreachable(format!("{} does not answer", opts.local_name)));
                    }
                    d.local_unreachable = true;
                }
            },
            _ = status_tick.tick(), if running.is_some() => {
                notify_systemd(&[sd_notify::NotifyState::Status(&d.status().summary())]);
            }
            _ = async { retry.as_mut().expect("guarded").1.as_mut().await }, if retry.is_some() => {
                // Look at the tag first: a local memcached that came back
                // without it (restarted, or new) needs a full resync,
                // whatever kind failed.
                let failed = retry.take().map_or(Kind::Minimal, |(kind, _)| kind);
                let (local, tx) = (opts.local_name.clone(), retry_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send((failed, resync::tag::present(&local).await)).await;
                });
            }
            Some((failed, present)) = retry_rx.recv() => {
                let kind = if present == Some(false) { Kind::Full } else { failed };
                let g = d.scheduler.request(kind);
                info!(generation = g, ?kind, "retrying the resync that failed on the local memcached");
            }
        }
        if d.stopping {
            if running.is_none() {
                break;
            }
            d.cancel.store(true, Ordering::SeqCst);
        } else if running.is_none() {
            running = d.start_next();
        }
    }

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    // Clear what this process raised; receivers get --inform-linger to
    // acknowledge. A second signal meanwhile exits at once.
    let farewell = async {
        if let Some(alarms) = d.alarms.take() {
            alarms.finish(opts.inform_linger).await;
        }
        if let Some(agent) = agent {
            agent.shutdown().await;
        }
    };
    tokio::select! {
        () = farewell => {}
        _ = term.recv() => d.stop("SIGTERM"),
        _ = int.recv() => d.stop("SIGINT"),
    }
    let _ = std::fs::remove_file(&opts.control_socket);
    info!("astaire daemon stopped");
    opts.pd.report(&PdEvent::Ended);
    Ok(())
}
