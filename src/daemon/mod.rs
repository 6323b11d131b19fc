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
//!
//! Issue 31: the loop also publishes the node's readiness and a heartbeat
//! into [`Stats`] for `/readyz` and `/healthz` ([`crate::metrics`], served
//! from a thread of its own), and takes a change to a watched file
//! ([`watch`]) exactly as a SIGHUP.

pub mod control;
pub mod scheduler;
pub mod watch;

use crate::exit::Exit;
use crate::pd_log::{PdEvent, PdLog};
use crate::placement::{Layout, ViewError};
use crate::resync::{self, Options, ResyncError};
use crate::snmp::agentx::{AgentConfig, Subagent};
use crate::snmp::inform::InformConfig;
use crate::snmp::reporter::AlarmReporter;
use crate::stats::{ItemFates, Readiness, ResyncResult, Stats};
use crate::view::{ClusterSettings, LoadError};
use control::{ProgressStatus, Status};
use scheduler::{Kind, Outcome, Scheduler};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
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
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("cannot create the control socket {}: {source}", path.display())]
    ControlSocket { path: PathBuf, source: std::io::Error },
    #[error("cannot serve metrics on {address} (astaire_metrics_listen, --metrics-listen): {source}")]
    MetricsListen { address: String, source: std::io::Error },
    #[error("cannot watch the settings files: {0}")]
    Watch(std::io::Error),
}

impl StartError {
    pub fn exit(&self) -> Exit {
        match self {
            StartError::View(e) if e.is_invalid() => Exit::BadSettings,
            StartError::View(_)
            | StartError::Signals(_)
            | StartError::ControlSocket { .. }
            | StartError::MetricsListen { .. }
            | StartError::Watch(_) => Exit::Usage,
        }
    }
}

/// The PD log of a `cluster_settings` that gives no view: 7011 when the OS
/// could not read it, 7008 when it is invalid.
fn view_event(e: &ViewError) -> PdEvent {
    match e {
        ViewError::Load(LoadError::Unreadable { path, source }) => {
            PdEvent::SettingsUnreadable { file: path.display().to_string(), error: source.to_string() }
        }
        ViewError::Load(LoadError::Refused(e)) => PdEvent::InvalidClusterSettings(e.to_string()),
        ViewError::Load(LoadError::Invalid(e)) => PdEvent::InvalidClusterSettings(e.to_string()),
        ViewError::Layout { path, source } => PdEvent::InvalidClusterSettings(format!("{}: {source}", path.display())),
    }
}

/// How long a read of `cluster_settings` may take. A regular file of at
/// most 1 MiB on a local disk is read in milliseconds: only a file system
/// that stopped answering (a hung NFS or FUSE mount) takes longer.
const SETTINGS_READ_LIMIT: Duration = Duration::from_secs(5);

/// Why work run off the loop gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum OffLoop {
    #[error("an earlier read has not returned yet (a file system that does not answer?)")]
    Busy,
    #[error("no thread to read it: {0}")]
    NoThread(String),
    #[error("no answer from the file system within {} ms", .0.as_millis())]
    TimedOut(Duration),
    #[error("the read ended without an answer")]
    Lost,
}

/// Runs `work` on a thread of its own and waits for it at most `limit`,
/// without blocking the loop. A thread of our own rather than tokio's
/// blocking pool: the runtime waits for its blocking tasks when it shuts
/// down, and a read stuck in the kernel must not keep the daemon from
/// stopping. `busy` is set while the thread runs, so at most one is ever
/// stuck.
async fn off_the_loop<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    limit: Duration,
    busy: &Arc<AtomicBool>,
) -> Result<T, OffLoop> {
    /// Clears `busy` when the thread ends, however it ends.
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    if busy.swap(true, Ordering::SeqCst) {
        return Err(OffLoop::Busy);
    }
    let done = Done(busy.clone());
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("astaire-read".into())
        .spawn(move || {
            // The slot is freed before the answer is sent: the caller may
            // start the next read as soon as it has this one's. (A panic
            // in `work` frees it too, as `done` is dropped on the way out.)
            let answer = work();
            drop(done);
            let _ = tx.send(answer);
        })
        .map_err(|e| OffLoop::NoThread(e.to_string()))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(OffLoop::Lost),
        Err(_) => Err(OffLoop::TimedOut(limit)),
    }
}

/// Reads `cluster_settings` off the daemon's loop (see [`off_the_loop`]).
#[derive(Debug, Clone)]
struct SettingsReader {
    path: PathBuf,
    limit: Duration,
    busy: Arc<AtomicBool>,
    /// What the path resolved to just before the last read (issue 31):
    /// a watched change the read already took is not a reload.
    last_seen: Arc<std::sync::Mutex<Option<watch::Seen>>>,
}

impl SettingsReader {
    fn new(path: PathBuf) -> SettingsReader {
        SettingsReader {
            path,
            limit: SETTINGS_READ_LIMIT,
            busy: Arc::new(AtomicBool::new(false)),
            last_seen: Arc::default(),
        }
    }

    /// Whether the last read was of the file as `seen` shows it.
    fn has_read(&self, seen: &watch::Seen) -> bool {
        *self.last_seen.lock().unwrap_or_else(|e| e.into_inner()) == Some(*seen)
    }

    async fn read(&self) -> Result<ClusterSettings, LoadError> {
        let (path, last_seen) = (self.path.clone(), self.last_seen.clone());
        let read = move || {
            // Looked at before the read: a change between the two is
            // reported by the watch again (one reload too many, never one
            // too few).
            *last_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(watch::Seen::of(&path));
            ClusterSettings::load(&path)
        };
        off_the_loop(read, self.limit, &self.busy).await.unwrap_or_else(|why| {
            let kind = match why {
                OffLoop::TimedOut(_) => std::io::ErrorKind::TimedOut,
                _ => std::io::ErrorKind::Other,
            };
            Err(LoadError::Unreadable { path: self.path.clone(), source: std::io::Error::new(kind, why.to_string()) })
        })
    }
}

/// A resync taken from the scheduler, its settings being read.
type Loading = Pin<Box<dyn Future<Output = Loaded> + Send>>;

/// A resync taken from the scheduler and what its settings read gave.
struct Loaded {
    generation: u64,
    kind: Kind,
    settings: Result<ClusterSettings, LoadError>,
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
    // Issue 31: the metrics endpoint and the settings watch.
    /// Serve /metrics, /healthz and /readyz here (HOST:PORT).
    pub metrics_listen: Option<String>,
    /// How often the watched files are looked at; `None`: not watched.
    pub watch: Option<Duration>,
    /// Files watched besides `cluster_settings` (the node configuration).
    pub watch_also: Vec<PathBuf>,
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
    /// How it ended, for `astaire_resyncs_total`.
    result: ResyncResult,
    /// What it did to items, when it ran to the end.
    fates: Option<ItemFates>,
}

/// What the node's readiness is decided from.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadinessInputs {
    pub stopping: bool,
    pub running: bool,
    /// A resync requested, or its settings being read.
    pub pending: bool,
    pub member: bool,
    pub local_unreachable: bool,
    /// Whether the last resync that ran succeeded; `None` before one
    /// ended. A reload refused for bad settings changes nothing, this
    /// included.
    pub in_sync: Option<bool>,
}

/// Whether this node may take clients: only when nothing is due and the
/// last resync that ran succeeded. Pure.
pub fn readiness(i: ReadinessInputs) -> Readiness {
    if i.stopping {
        Readiness::Stopping
    } else if i.running {
        Readiness::Resyncing
    } else if i.pending {
        Readiness::Pending
    } else if !i.member {
        Readiness::NotMember
    } else if i.local_unreachable {
        Readiness::LocalUnreachable
    } else {
        match i.in_sync {
            Some(true) => Readiness::Ready,
            Some(false) => Readiness::Failed,
            None => Readiness::Starting,
        }
    }
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
    reader: SettingsReader,
    /// Whether the last resync that ran succeeded (for readiness).
    in_sync: Option<bool>,
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

    /// A watched file changed and held still: a reload, as SIGHUP, unless
    /// a reload (a SIGHUP's, as the cluster manager sends after writing
    /// the file) already read it as it now is.
    fn file_changed(&mut self, path: &std::path::Path, seen: &watch::Seen) {
        if path == self.opts.cluster_settings && self.reader.has_read(seen) {
            info!(file = %path.display(), "changed on disk, and already read by a reload: nothing more to do");
            return;
        }
        self.stats.node.file_changes.fetch_add(1, Ordering::Relaxed);
        let g = self.scheduler.request(Kind::Minimal);
        if path == self.opts.cluster_settings {
            info!(generation = g, file = %path.display(), "changed on disk: re-reading it for a minimal resync");
        } else {
            warn!(
                generation = g,
                file = %path.display(),
                "changed on disk: the cluster settings are read again now; what this file sets for the node \
                 (local_ip, placement, limits) takes effect at the next restart"
            );
        }
    }

    /// Publishes readiness and a heartbeat for /readyz and /healthz.
    fn publish(&self, loading: bool, running: bool) {
        let r = readiness(ReadinessInputs {
            stopping: self.stopping,
            running,
            pending: loading || self.scheduler.pending().is_some(),
            member: self.member,
            local_unreachable: self.local_unreachable,
            in_sync: self.in_sync,
        });
        self.stats.node.set_readiness(r);
        self.stats.node.beat();
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

    /// Takes the next resync if one is due, and reads `cluster_settings`
    /// for it off the loop: SIGHUP means "re-read the files", so the
    /// latest content counts.
    fn next_due(&mut self) -> Option<Loading> {
        if self.stopping {
            return None;
        }
        let (generation, kind) = self.scheduler.start_next()?;
        let reader = self.reader.clone();
        Some(Box::pin(async move { Loaded { generation, kind, settings: reader.read().await } }))
    }

    /// Starts the resync whose settings were read; returns its task. Bad
    /// settings change nothing: the resync fails at once.
    fn start(&mut self, loaded: Loaded) -> Option<tokio::task::JoinHandle<Finished>> {
        if self.stopping {
            return None;
        }
        let Loaded { generation, kind, settings } = loaded;
        // A resync decided without copying anything: done at once.
        let immediate = |error: Option<String>, member: bool, result: ResyncResult| {
            let outcome = Outcome {
                generation,
                kind,
                success: error.is_none(),
                error,
                failed_vbuckets: vec![],
                keys_landed: 0,
                seconds: 0.0,
            };
            let f = Finished {
                outcome,
                local_unreachable: false,
                member,
                pairs: 0,
                failed_sources: Vec::new(),
                result,
                fates: None,
            };
            Some(tokio::spawn(async move { f }))
        };
        let path = &self.opts.cluster_settings;
        let layout = settings.map_err(ViewError::from).and_then(|s| {
            let layout = Layout::of(path, &s, &self.opts.placement)?;
            self.publish_lists(&s);
            Ok(layout)
        });
        let view = match layout {
            Ok(l) => l,
            Err(e) => {
                error!("{e}; nothing changed");
                self.opts.pd.report(&view_event(&e));
                return immediate(Some(e.to_string()), self.member, ResyncResult::BadSettings);
            }
        };
        let local = self.opts.local_name.clone();
        if !view.knows(&local) {
            info!(%local, "not in servers or new_servers: staying idle");
            return immediate(None, false, ResyncResult::Succeeded);
        }
        // A one-copy placement has no full resync: a restart pulls what moves.
        let full = kind == Kind::Full && !self.opts.placement.scheme.one_copy();
        let work = match view.work_list(&local, full) {
            Ok(w) => w,
            Err(e) => return immediate(Some(e.to_string()), true, ResyncResult::Failed),
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
            let mut fates = None;
            let (success, error, failed_vbuckets, keys_landed, local_unreachable) = match result {
                Ok(report) => {
                    let c = &report.counts;
                    fates = Some(ItemFates {
                        landed: c.landed,
                        replaced: c.replaced,
                        kept: c.kept,
                        reverted: c.reverted,
                        failed: c.failed,
                    });
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
            let result = match (success, local_unreachable, fates.is_some()) {
                (true, ..) => ResyncResult::Succeeded,
                (false, true, _) => ResyncResult::LocalUnreachable,
                (false, false, true) => ResyncResult::Failed,
                (false, false, false) => ResyncResult::Cancelled,
            };
            Finished {
                outcome: Outcome { generation, kind, success, error, failed_vbuckets, keys_landed, seconds },
                local_unreachable,
                member: true,
                pairs,
                failed_sources,
                result,
                fates,
            }
        }))
    }

    /// The sizes of the lists the settings give, for the metrics.
    fn publish_lists(&self, settings: &ClusterSettings) {
        publish_lists(&self.stats, settings);
    }

    fn finished(&mut self, f: Finished) {
        self.member = f.member;
        self.local_unreachable = f.local_unreachable;
        let n = &self.stats.node;
        n.resync_ended(f.result, f.fates);
        f.failed_sources.iter().for_each(|(source, _)| n.source_failed(source));
        match f.result {
            ResyncResult::BadSettings => {}
            ResyncResult::Cancelled => self.in_sync = Some(false),
            r => self.in_sync = Some(r == ResyncResult::Succeeded),
        }
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

/// The sizes of the lists `settings` gives, for the metrics.
fn publish_lists(stats: &Stats, settings: &ClusterSettings) {
    let new_servers = settings.new_servers.as_ref().map_or(0, Vec::len);
    stats.node.servers.store(settings.servers.len() as u64, Ordering::Relaxed);
    stats.node.new_servers.store(new_servers as u64, Ordering::Relaxed);
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
    // The view is loaded before anything else: a file that cannot be
    // used at start is fatal.
    let reader = SettingsReader::new(opts.cluster_settings.clone());
    let view = reader
        .read()
        .await
        .map_err(ViewError::from)
        .and_then(|settings| Ok((Layout::of(&opts.cluster_settings, &settings, &opts.placement)?, settings)))
        .inspect_err(|e| opts.pd.report(&view_event(e)))?;
    let (view, settings) = view;
    let stats = Stats::new();
    stats.node.beat();
    // Bound before the control socket, so that a refused address leaves
    // no socket file behind.
    let metrics = match &opts.metrics_listen {
        Some(address) => {
            let failed = |source| StartError::MetricsListen { address: address.clone(), source };
            let socket = std::net::TcpListener::bind(address.as_str()).map_err(failed)?;
            let limits = crate::metrics::HttpLimits::default();
            Some(crate::metrics::MetricsServer::spawn(socket, stats.clone(), limits).map_err(failed)?)
        }
        None => None,
    };
    let listener = control::bind(&opts.control_socket)
        .map_err(|source| StartError::ControlSocket { path: opts.control_socket.clone(), source })?;
    // Without a watch, a channel that never says anything.
    let (_no_watch, mut watch_rx) = mpsc::channel::<watch::Change>(1);
    if let Some(period) = opts.watch {
        let mut files = vec![opts.cluster_settings.clone()];
        files.extend(opts.watch_also.iter().cloned());
        info!(files = ?files, period_ms = period.as_millis() as u64, "watching for changes");
        watch_rx = watch::spawn(files, period).map_err(StartError::Watch)?;
    }
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
        reader,
        in_sync: None,
    };
    d.publish_lists(&settings);
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
    // A resync whose settings are being read, then the resync itself.
    let mut loading: Option<Loading> = d.next_due();
    let mut running: Option<tokio::task::JoinHandle<Finished>> = None;
    // The heartbeat of /healthz turns at least this often.
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));

    loop {
        d.publish(loading.is_some(), running.is_some());
        tokio::select! {
            _ = heartbeat.tick() => {}
            Some((path, seen)) = watch_rx.recv() => d.file_changed(&path, &seen),
            loaded = async { loading.as_mut().expect("guarded").await }, if loading.is_some() => {
                loading = None;
                running = d.start(loaded);
            }
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
                let idle = running.is_none() && loading.is_none() && d.scheduler.pending().is_none();
                if idle && d.member && !d.stopping {
                    let (local, tx) = (opts.local_name.clone(), tag_tx.clone());
                    tokio::spawn(async move {
                        let _ = tx.send(resync::tag::present(&local).await).await;
                    });
                }
            }
            Some(present) = tag_rx.recv() => match present {
                Some(false) => {
                    if running.is_none() && loading.is_none() && d.scheduler.pending().is_none() {
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
        } else if running.is_none() && loading.is_none() {
            loading = d.next_due();
        }
    }

    d.publish(false, false);
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
        if let Some(metrics) = metrics {
            metrics.shutdown().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The read slot is free by the time the answer arrives: the thread
    /// cleared it only after sending, so the read right after another
    /// (the daemon's first resync after its start-up read) was refused as
    /// "an earlier read has not returned yet".
    #[tokio::test]
    async fn a_read_may_follow_the_one_that_returned() {
        let busy = Arc::new(AtomicBool::new(false));
        for i in 0..2000 {
            let answer = off_the_loop(move || i, Duration::from_secs(5), &busy).await;
            assert!(matches!(answer, Ok(n) if n == i), "read {i}: {answer:?}");
        }
    }

    /// A read the file system never answers (a hung NFS or FUSE mount)
    /// costs the loop the limit, not the read; while it is stuck another is
    /// refused at once, and once it returns reads go on. The loop runs on a
    /// thread of the test's, so that a read done on the loop itself fails
    /// the test instead of hanging it.
    #[test]
    fn a_read_that_never_returns_holds_the_loop_for_the_limit_only() {
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let (report, reported) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let busy = Arc::new(AtomicBool::new(false));
            let started = Instant::now();
            let first = rt.block_on(off_the_loop(move || stuck.recv().is_ok(), Duration::from_millis(100), &busy));
            let again = rt.block_on(off_the_loop(|| true, Duration::from_secs(1), &busy));
            let _ = report.send((first, started.elapsed(), again, busy));
        });
        let (first, took, again, busy) = reported
            .recv_timeout(Duration::from_secs(5))
            .expect("the loop was held by a read that never returns (read on the loop, not off it)");
        assert_eq!(first, Err(OffLoop::TimedOut(Duration::from_millis(100))));
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(again, Err(OffLoop::Busy), "a second read while the first is stuck");
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while busy.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the stuck read's thread never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(rt.block_on(off_the_loop(|| 2, Duration::from_secs(1), &busy)), Ok(2));
    }

    /// Issue 31: ready only with nothing due and the last resync that ran
    /// a success; the first reason that holds is the one given.
    #[test]
    fn readiness_follows_what_is_due_and_how_the_last_resync_ended() {
        let synced = ReadinessInputs { member: true, in_sync: Some(true), ..ReadinessInputs::default() };
        assert_eq!(readiness(synced), Readiness::Ready);
        assert_eq!(readiness(ReadinessInputs { pending: true, ..synced }), Readiness::Pending);
        assert_eq!(readiness(ReadinessInputs { running: true, pending: true, ..synced }), Readiness::Resyncing);
        assert_eq!(readiness(ReadinessInputs { in_sync: Some(false), ..synced }), Readiness::Failed);
        assert_eq!(readiness(ReadinessInputs { in_sync: None, ..synced }), Readiness::Starting);
        assert_eq!(readiness(ReadinessInputs { member: false, ..synced }), Readiness::NotMember);
        assert_eq!(readiness(ReadinessInputs { local_unreachable: true, ..synced }), Readiness::LocalUnreachable);
        assert_eq!(readiness(ReadinessInputs { stopping: true, running: true, ..synced }), Readiness::Stopping);
    }

    #[tokio::test]
    async fn a_settings_read_that_times_out_is_an_os_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster_settings");
        let reader = SettingsReader {
            path: path.clone(),
            limit: Duration::from_secs(1),
            busy: Arc::new(AtomicBool::new(true)),
            last_seen: Arc::default(),
        };
        let e = reader.read().await.unwrap_err();
        assert!(!e.is_invalid());
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: an earlier read has not returned yet (a file system that does not answer?)",
                path.display()
            )
        );
        std::fs::write(&path, "servers=a:1\n").unwrap();
        reader.busy.store(false, Ordering::SeqCst);
        assert_eq!(reader.read().await.unwrap().servers, ["a:1"]);
    }
}
