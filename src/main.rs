//! The `astaire` command: translates arguments into a typed configuration
//! and runs one mode. All the work is in the library.

use astaire::resync::{self, ConflictPolicy, Options, Report};
use astaire::snmp::inform::{AlarmReporter, InformConfig};
use astaire::stats::Stats;
use astaire::view::{ClusterSettings, View, WorkList};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Exit codes, for orchestrators.
mod exit {
    pub const OK: u8 = 0;
    /// The resync left vbuckets behind, or verify found differences.
    pub const INCOMPLETE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BAD_SETTINGS: u8 = 3;
    pub const LOCAL_UNREACHABLE: u8 = 4;
    /// Stopped by SIGINT or SIGTERM at a safe point (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

const DEFAULT_SETTINGS: &str = "/etc/clearwater/cluster_settings";

#[derive(Parser)]
#[command(
    name = "astaire",
    version,
    about = "Active resynchronisation of Clearwater-style memcached clusters",
    after_help = "The original positional form `astaire HOST:PORT CLUSTER_SETTINGS` runs `resync`.\n\
Exit codes: 0 success, 1 vbuckets failed / differences found, 2 usage, \
3 invalid cluster_settings, 4 local memcached unreachable, 130 resync stopped by SIGINT/SIGTERM."
)]
struct Cli {
    /// 0 error, 1 warning, 2 status (default), 3 info, 4 verbose, 5 debug.
    /// The daemon also reads log_level from its configuration file.
    #[arg(long, global = true, value_parser = clap::value_parser!(u8).range(0..=5))]
    log_level: Option<u8>,
    /// Log to files in this directory (rotated daily) instead of stderr.
    #[arg(long, global = true, value_name = "DIR")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull this node's vbuckets from their sources, once, and exit.
    Resync(ResyncArgs),
    /// Show what a resync would pull, and from where, without touching anything.
    Plan(PlanArgs),
    /// Check that this node holds every key of its vbuckets with the sources' values.
    Verify(Target),
    /// Run as a service: resync on start, on SIGHUP (minimal) and SIGUSR1
    /// (full), and when the local memcached restarts empty.
    Daemon(DaemonArgs),
    /// Ask the running daemon how it is.
    Status(StatusArgs),
    /// Wait until the daemon has no resync running or pending. Exit 0 when
    /// the last one succeeded, 1 failed, 2 timeout, 3 daemon unreachable.
    WaitSync(WaitArgs),
}

#[derive(Args)]
struct DaemonArgs {
    /// This node as it appears in cluster_settings (default: local_ip:11211
    /// from the configuration file).
    #[arg(long)]
    local_name: Option<String>,
    #[arg(long, alias = "cluster-settings-file", default_value = DEFAULT_SETTINGS)]
    cluster_settings: PathBuf,
    #[arg(long, default_value = astaire::daemon::control::DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// AgentX master (default /var/agentx/master).
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_agentx")]
    agentx: Option<astaire::snmp::agentx::MasterAddress>,
    /// Do not serve statistics over AgentX.
    #[arg(long)]
    no_agentx: bool,
    #[arg(long, default_value_t = 127)]
    agentx_priority: u8,
    #[command(flatten)]
    alarms: AlarmArgs,
    /// CPU limit as a percentage of the node's total CPU (default:
    /// astaire_cpu_limit_percentage, else 5). 0 disables it.
    #[arg(long, value_name = "PERCENT")]
    cpu_limit: Option<f64>,
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    bandwidth_limit: Option<u64>,
    #[arg(long, value_enum, default_value_t = ConflictPolicy::ClearwaterTimestamp)]
    conflict: ConflictPolicy,
    /// Scheduling priority (nice) of the process.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    nice: i32,
    /// Write the process id here, locked while the daemon runs.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Detach from the terminal (for init scripts; systemd needs none).
    #[arg(long)]
    daemon: bool,
    /// Seconds without progress before a server counts as dead.
    #[arg(long, default_value_t = 10)]
    io_timeout: u64,
    /// Seconds between restart-tag checks while idle.
    #[arg(long, default_value_t = 10, hide = true)]
    tag_poll: u64,
}

#[derive(Args)]
struct StatusArgs {
    #[arg(long, default_value = astaire::daemon::control::DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WaitArgs {
    #[arg(long, default_value = astaire::daemon::control::DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// Give up after this many seconds (exit 2).
    #[arg(long)]
    timeout: Option<f64>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct Target {
    /// This node, exactly as it appears in cluster_settings (HOST:PORT).
    #[arg(long)]
    local_name: String,
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    cluster_settings: PathBuf,
    /// Seconds without progress before a server counts as dead.
    #[arg(long, default_value_t = 10)]
    io_timeout: u64,
}

#[derive(Args)]
struct ResyncArgs {
    #[command(flatten)]
    target: Target,
    /// Pull everything this node should hold (its memcached lost its data).
    #[arg(long)]
    full: bool,
    /// What to do when the local node already has a key.
    #[arg(long, value_enum, default_value_t = ConflictPolicy::ClearwaterTimestamp)]
    conflict: ConflictPolicy,
    /// Limit the copy to this many bytes per second.
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    bandwidth_limit: Option<u64>,
    /// Limit the process to this percentage of the node's total CPU.
    #[arg(long, value_name = "PERCENT")]
    cpu_limit: Option<f64>,
    /// Keys per pipelined batch.
    #[arg(long, default_value_t = 1024, hide = true)]
    batch_keys: usize,
    /// Seconds to wait for a source's crawler that another dump keeps busy.
    #[arg(long, default_value_t = 60, hide = true)]
    busy_wait: u64,
    /// How to list a source's keys (default: mgdump on memcached 1.6.19 and
    /// later, metadump before).
    #[arg(long, value_enum, value_name = "COMMAND")]
    dump_command: Option<astaire::memcached::dump::DumpMode>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    agentx: AgentxArgs,
    #[command(flatten)]
    alarms: AlarmArgs,
}

#[derive(Args)]
struct AlarmArgs {
    /// The node's shell-style configuration (snmp_ip, snmp_community, …).
    /// A missing default file just means no settings from it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where alarm INFORMs go: comma-separated host or host:port (default
    /// port 162). Overrides snmp_ip from --config.
    #[arg(long, value_name = "TARGETS")]
    snmp_ip: Option<String>,
    /// Community of the INFORMs (default: snmp_community, else clearwater).
    #[arg(long)]
    snmp_community: Option<String>,
    /// Also send the alarm's current (cleared) state when starting.
    #[arg(long)]
    announce_alarm_state: bool,
    /// At exit, wait this long for the clear to be acknowledged.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    inform_linger: u64,
}

impl AlarmArgs {
    /// The INFORM settings, or the exit code for a bad configuration.
    fn inform_config(&self) -> Result<InformConfig, u8> {
        match node_config(self.config.as_ref()) {
            Ok(file) => {
                file.ignored.iter().for_each(|l| tracing::warn!("configuration line ignored: {l}"));
                self.inform_config_from(&file)
            }
            Err(e) => {
                eprintln!("astaire: {e}");
                Err(exit::USAGE)
            }
        }
    }

    fn inform_config_from(&self, file: &astaire::config::Config) -> Result<InformConfig, u8> {
        let targets = self.snmp_ip.as_deref().or(file.get("snmp_ip")).unwrap_or("");
        let community = self.snmp_community.as_deref().or(file.get("snmp_community"));
        InformConfig::from_settings(targets, community).map_err(|e| {
            eprintln!("astaire: snmp_ip: {e}");
            exit::USAGE
        })
    }
}

#[derive(Args)]
struct AgentxArgs {
    /// Serve the counters to this AgentX master while resyncing:
    /// tcp:HOST:PORT, unix:PATH or a path (Debian's is /var/agentx/master).
    #[arg(long, value_name = "ADDRESS")]
    agentx: Option<astaire::snmp::agentx::MasterAddress>,
    /// AgentX registration priority (lower wins over other registrations).
    #[arg(long, default_value_t = 127)]
    agentx_priority: u8,
}

impl AgentxArgs {
    fn spawn(&self, stats: &std::sync::Arc<Stats>) -> Option<astaire::snmp::agentx::Subagent> {
        let master = self.agentx.clone()?;
        let mut config = astaire::snmp::agentx::AgentConfig::new(master);
        config.priority = self.agentx_priority;
        Some(astaire::snmp::agentx::Subagent::spawn(config, stats.clone()))
    }
}

#[derive(Args)]
struct PlanArgs {
    #[arg(long)]
    local_name: String,
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    cluster_settings: PathBuf,
    #[arg(long)]
    full: bool,
    /// Print exactly one JSON object.
    #[arg(long)]
    json: bool,
}

/// Accepts the original `astaire HOST:PORT FILE` form: two positional
/// arguments and no subcommand.
fn normalise_args(mut args: Vec<String>) -> Vec<String> {
    let known = ["resync", "plan", "verify", "daemon", "status", "wait-sync", "help"];
    // The original daemon's option style: no subcommand, options only.
    let original = ["--cluster-settings-file", "--pidfile", "--daemon"];
    let has_subcommand = args.iter().skip(1).any(|a| known.contains(&a.as_str()));
    if !has_subcommand
        && args.iter().skip(1).any(|a| original.iter().any(|o| a == o || a.starts_with(&format!("{o}="))))
    {
        args.insert(1, "daemon".into());
        return args;
    }
    let mut positional = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--log-level" {
            i += 2; // its value is not a positional
            continue;
        }
        if known.contains(&a.as_str()) {
            return args;
        }
        if !a.starts_with('-') {
            positional.push(i);
        }
        i += 1;
    }
    if let [l, f] = positional[..] {
        let (local, file) = (args[l].clone(), args[f].clone());
        args.remove(f);
        args.remove(l);
        args.splice(1..1, ["resync".into(), "--local-name".into(), local, "--cluster-settings".into(), file]);
    }
    args
}

fn main() -> ExitCode {
    // Files and directories we create are never world-readable or
    // group-writable, whatever umask we were started with (a service
    // manager's, an operator's 000): log files 0640, directories 0750.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    astaire::snmp::uptime::mark_process_start();
    let cli = Cli::parse_from(normalise_args(std::env::args().collect()));
    let code = match cli.command {
        Command::Daemon(args) => daemon_main(args, cli.log_level, cli.log_file),
        command => {
            let _guard = match init_logging(cli.log_level.unwrap_or(2), cli.log_file.as_deref()) {
                Ok(guard) => guard,
                Err(e) => {
                    eprintln!("astaire: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            with_runtime(async move {
                match command {
                    Command::Resync(args) => resync_cmd(args).await,
                    Command::Plan(args) => plan_cmd(args),
                    Command::Verify(target) => verify_cmd(target).await,
                    Command::Status(args) => status_cmd(args).await,
                    Command::WaitSync(args) => wait_cmd(args).await,
                    Command::Daemon(_) => unreachable!("handled above"),
                }
            })
        }
    };
    ExitCode::from(code)
}

/// One thread runs every task: the copy pipeline is I/O bound and its stages
/// hand batches to each other, so cross-thread wake-ups of a work-stealing
/// runtime cost more than they give (measured: 35-45% less CPU, 25% less
/// wall time for the 1,000,000-key benchmark). The AgentX subagent has its
/// own thread.
fn with_runtime(work: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("astaire: cannot start the runtime: {e}");
            exit::USAGE
        }
    }
}

/// Logs to stderr, or to `DIR/astaire.log.<date>` when a directory is given.
/// A log directory that others can write to would let them plant a
/// symlink named like the next log file, which this process (root, for the
/// init script) would then write through. So it must not be writable by
/// other users; it is created 0750 when missing.
fn private_log_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let shown = dir.display();
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| format!("log directory {shown}: cannot create it: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("log directory {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("log directory {shown}: not a directory"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!(
            "log directory {shown}: writable by every user (mode {mode:04o}), so anyone could plant a symlink where the \
             log goes; use a directory only this service writes (chmod o-w)"
        ));
    }
    Ok(())
}

fn init_logging(
    level: u8,
    dir: Option<&std::path::Path>,
) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>, String> {
    let filter = match level {
        0 => "error",
        1 => "warn",
        2 | 3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASTAIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("astaire={filter}")));
    match dir {
        Some(dir) => {
            private_log_dir(dir)?;
            let appender = tracing_appender::rolling::daily(dir, "astaire.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false).init();
            Ok(Some(guard))
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(astaire::progress::LogWriter)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            Ok(None)
        }
    }
}

/// Reads the node configuration: `(file values, the file's path)`. A missing
/// default file is no configuration; any other problem is an error.
fn node_config(path: Option<&PathBuf>) -> Result<astaire::config::Config, String> {
    let (path, explicit) = match path {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(astaire::config::DEFAULT_CONFIG), false),
    };
    if !explicit && !path.exists() {
        return Ok(astaire::config::Config::default());
    }
    astaire::config::Config::load(&path).map_err(|e| format!("invalid configuration: {e}"))
}

fn daemon_main(args: DaemonArgs, log_level: Option<u8>, log_file: Option<PathBuf>) -> u8 {
    use astaire::daemon::exit as dexit;
    let fail = |msg: String| {
        eprintln!("astaire: {msg}");
        dexit::BAD_OPTIONS
    };
    let config = match node_config(args.alarms.config.as_ref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let level = match (log_level, config.get("log_level")) {
        (Some(l), _) => l,
        (None, Some(v)) => match v.parse::<u8>() {
            Ok(l) if l <= 5 => l,
            _ => return fail(format!("log_level {v:?} in the configuration is not 0..5")),
        },
        (None, None) => 2,
    };
    let cpu_limit = match (args.cpu_limit, config.get("astaire_cpu_limit_percentage")) {
        (Some(p), _) => p,
        (None, Some(v)) => match v.parse::<f64>() {
            Ok(p) => p,
            Err(_) => return fail(format!("astaire_cpu_limit_percentage {v:?} is not a number")),
        },
        (None, None) => 5.0,
    };
    if !(0.0..=100.0).contains(&cpu_limit) {
        return fail(format!("CPU limit {cpu_limit} is not a percentage (0-100; 0 disables it)"));
    }
    let local_name = match (&args.local_name, config.get("local_ip")) {
        (Some(n), _) => n.clone(),
        (None, Some(ip)) if ip.contains(':') => format!("[{ip}]:11211"),
        (None, Some(ip)) => format!("{ip}:11211"),
        (None, None) => return fail("no --local-name and no local_ip in the configuration".into()),
    };
    if let Err(e) = astaire::view::validate_server(&local_name) {
        return fail(format!("local name: {e}"));
    }
    let inform = match args.alarms.inform_config_from(&config) {
        Ok(i) => i,
        Err(code) => return code,
    };
    if args.daemon {
        if let Err(e) = nix::unistd::daemon(true, false) {
            return fail(format!("cannot detach: {e}"));
        }
    }
    // Held (and locked) for the life of the process.
    let _pidfile = match &args.pidfile {
        Some(path) => match lock_pidfile(path) {
            Ok(f) => Some(f),
            Err(e) => return fail(format!("pidfile {}: {e}", path.display())),
        },
        None => None,
    };
    // SAFETY: setpriority only changes this process's scheduling priority.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) } != 0 {
        eprintln!("astaire: cannot set nice {}: {}", args.nice, std::io::Error::last_os_error());
    }
    let _guard = match init_logging(level, log_file.as_deref()) {
        Ok(guard) => guard,
        Err(e) => return fail(e),
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let agentx = (!args.no_agentx).then(|| {
        let master = args.agentx.clone().unwrap_or_else(|| {
            astaire::snmp::agentx::MasterAddress::Unix(astaire::snmp::agentx::DEFAULT_MASTER.into())
        });
        let mut c = astaire::snmp::agentx::AgentConfig::new(master);
        c.priority = args.agentx_priority;
        c
    });
    let opts = astaire::daemon::DaemonOptions {
        local_name,
        cluster_settings: args.cluster_settings,
        control_socket: args.control_socket,
        agentx,
        inform,
        announce_alarm_state: args.alarms.announce_alarm_state,
        inform_linger: Duration::from_secs(args.alarms.inform_linger),
        resync: Options {
            conflict: args.conflict,
            io_timeout: Duration::from_secs(args.io_timeout.max(1)),
            bandwidth_limit: args.bandwidth_limit,
            cpu_share: (cpu_limit > 0.0).then(|| astaire::throttle::share_of_one_core(cpu_limit, cores)),
            ..Options::default()
        },
        tag_poll: Duration::from_secs(args.tag_poll.max(1)),
        retry_after: Duration::from_secs(10),
    };
    tracing::info!(
        local = %opts.local_name,
        cpu_limit_percent = cpu_limit,
        cores,
        bandwidth_limit = ?opts.resync.bandwidth_limit,
        "starting astaire {}",
        env!("CARGO_PKG_VERSION")
    );
    with_runtime(astaire::daemon::run(opts))
}

/// Creates `path`, takes an exclusive lock on it and writes our pid.
fn lock_pidfile(path: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a symlink planted at the pidfile's path is refused, never
    // written through (the daemon may run as root). 0640 after the umask:
    // written by us only, read by root's tools and the service's group.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symlink; refusing to write through it".to_owned(),
            _ => e.to_string(),
        })?;
    let mut locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| format!("already locked by another process ({e})"))?;
    locked.set_len(0).map_err(|e| e.to_string())?;
    writeln!(locked, "{}", std::process::id()).map_err(|e| e.to_string())?;
    Ok(locked)
}

async fn status_cmd(args: StatusArgs) -> u8 {
    match astaire::daemon::control::query(&args.control_socket).await {
        Ok(status) => {
            if args.json {
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
            } else {
                println!("{}", status.summary());
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("astaire: {e}");
            astaire::daemon::control::wait_exit::UNREACHABLE
        }
    }
}

async fn wait_cmd(args: WaitArgs) -> u8 {
    let timeout = args.timeout.map(Duration::from_secs_f64);
    let quiet = args.quiet;
    astaire::daemon::control::wait_sync(&args.control_socket, timeout, |s| {
        if !quiet {
            eprintln!("{}", s.summary());
        }
    })
    .await
}

/// Loads the settings and the work list, or the exit code to stop with.
fn load_work(local_name: &str, settings: &Path, full: bool) -> Result<(View, WorkList), u8> {
    let settings = ClusterSettings::load(settings).map_err(|e| {
        eprintln!("astaire: invalid cluster settings: {e}");
        tracing::error!("invalid cluster settings: {e}");
        exit::BAD_SETTINGS
    })?;
    if let Err(e) = astaire::view::validate_server(local_name) {
        eprintln!("astaire: --local-name: {e}");
        return Err(exit::USAGE);
    }
    let view = View::new(&settings);
    if !view.knows(local_name) {
        eprintln!("astaire: {local_name} is in neither servers nor new_servers of the cluster settings");
        return Err(exit::USAGE);
    }
    let work = view.work_list(local_name, full);
    Ok((view, work))
}

async fn resync_cmd(args: ResyncArgs) -> u8 {
    let t = &args.target;
    let (_, work) = match load_work(&t.local_name, &t.cluster_settings, args.full) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if let Some(p) = args.cpu_limit.filter(|p| !(0.0..=100.0).contains(p)) {
        eprintln!("astaire: --cpu-limit {p} is not a percentage (0-100; 0 disables it)");
        return exit::USAGE;
    }
    // SIGINT/SIGTERM stop the copy at the next safe point, so the alarm is
    // cleared and the AgentX session closed; a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let registered =
            signal_hook::flag::register_conditional_shutdown(signal, exit::INTERRUPTED.into(), stop.clone())
                .and_then(|_| signal_hook::flag::register(signal, stop.clone()));
        if let Err(e) = registered {
            eprintln!("astaire: cannot install signal handlers: {e}");
            return exit::USAGE;
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let opts = Options {
        cancel: Some(stop),
        conflict: args.conflict,
        batch_keys: args.batch_keys.max(1),
        busy_wait: Duration::from_secs(args.busy_wait),
        dump: args.dump_command,
        io_timeout: Duration::from_secs(t.io_timeout.max(1)),
        bandwidth_limit: args.bandwidth_limit,
        cpu_share: args.cpu_limit.filter(|p| *p > 0.0).map(|p| astaire::throttle::share_of_one_core(p, cores)),
        ..Options::default()
    };
    let mut alarms = match args.alarms.inform_config() {
        Ok(config) => AlarmReporter::new(config, args.alarms.announce_alarm_state),
        Err(code) => return code,
    };
    let stats = Stats::new();
    let agent = args.agentx.spawn(&stats);
    let display = astaire::progress::ProgressDisplay::start(stats.clone(), args.quiet || args.json);
    alarms.resync_started(work.pairs());
    let result = resync::run(&work, &opts, &stats).await;
    drop(display);
    alarms.finish(Duration::from_secs(args.alarms.inform_linger)).await;
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    match result {
        Err(resync::ResyncError::Cancelled) => {
            eprintln!("astaire: stopped by a signal before the resync finished; run it again to complete it");
            exit::INTERRUPTED
        }
        Err(e) => {
            eprintln!("astaire: {e}");
            exit::LOCAL_UNREACHABLE
        }
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print_summary(&work, &report);
            }
            if report.succeeded() {
                exit::OK
            } else {
                exit::INCOMPLETE
            }
        }
    }
}

fn print_summary(work: &WorkList, r: &Report) {
    let c = &r.counts;
    println!(
        "resync of {}{}: {} vbuckets ({} vbucket-source pairs) from {} sources",
        work.local_name,
        if work.full { " (full)" } else { "" },
        r.vbuckets,
        r.pairs,
        r.sources.len()
    );
    println!(
        "  {} keys landed in {:.2} s ({:.0} keys/s); {} items, {:.1} MB read from the sources ({:.0} items/s, {:.1} MB/s)",
        c.landed + c.replaced,
        r.seconds,
        r.keys_landed_per_second(),
        c.fetched,
        c.bytes as f64 / 1e6,
        r.items_per_second(),
        c.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    );
    println!(
        "  landed {}, replaced older {}, kept (local as new or newer) {}, second replica checked {}, skipped expiring {}, vanished {}, reverted deletes {}, failed {}",
        c.landed, c.replaced, c.kept, c.checked, c.skipped, c.vanished, c.reverted, c.failed
    );
    if r.local_evictions > 0 {
        println!(
            "  warning: the local memcached evicted {} items during the resync: it is too small for its share (raise its -m)",
            r.local_evictions
        );
    }
    for s in &r.sources {
        match &s.error {
            None => println!("  source {}: {} vbuckets, {} keys", s.source, s.vbuckets.len(), s.listed),
            Some(e) => println!("  source {}: FAILED: {e}", s.source),
        }
    }
    if r.succeeded() {
        println!("  result: complete");
    } else {
        println!("  result: FAILED for {} vbuckets", r.failed_vbuckets.len());
        for (vb, why) in &r.failed_vbuckets {
            println!("    vbucket {vb}: {why}");
        }
    }
}

fn plan_cmd(args: PlanArgs) -> u8 {
    let (view, work) = match load_work(&args.local_name, &args.cluster_settings, args.full) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if args.json {
        let vbuckets: serde_json::Map<String, serde_json::Value> =
            work.vbuckets.iter().map(|(vb, s)| (vb.to_string(), serde_json::json!(s))).collect();
        let out = serde_json::json!({ "local_name": work.local_name, "full": work.full, "vbuckets": vbuckets });
        println!("{out}");
        return exit::OK;
    }
    println!(
        "{} ({}{}): pulls {} vbuckets, {} vbucket-source pairs",
        work.local_name,
        if view.is_resizing() { "resizing" } else { "stable" },
        if work.full { ", full resync" } else { "" },
        work.vbuckets.len(),
        work.pairs()
    );
    for (source, vbs) in work.by_source() {
        let list: Vec<String> = vbs.iter().map(u8::to_string).collect();
        println!("  from {source}: {} vbuckets: {}", vbs.len(), list.join(","));
    }
    exit::OK
}

async fn verify_cmd(t: Target) -> u8 {
    let (_, work) = match load_work(&t.local_name, &t.cluster_settings, true) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let opts = Options { io_timeout: Duration::from_secs(t.io_timeout.max(1)), ..Options::default() };
    match astaire::verify::verify(&work, &opts).await {
        Err(e) => {
            eprintln!("astaire: local memcached {e}");
            exit::LOCAL_UNREACHABLE
        }
        Ok(report) => {
            for d in &report.differences {
                println!("vbucket {:3} {:?} {} (source {})", d.vbucket, d.problem, d.key, d.source);
            }
            for (s, e) in &report.failed_sources {
                println!("source {s} could not be read: {e}");
            }
            println!(
                "verify {}: {} items checked against their sources in {} vbuckets, {} differences{}",
                work.local_name,
                report.checked,
                work.vbuckets.len(),
                report.different,
                if report.failed_sources.is_empty() { "" } else { ", some sources unreadable" }
            );
            if report.ok() {
                exit::OK
            } else {
                exit::INCOMPLETE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_args;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positional_form_becomes_resync() {
        assert_eq!(
            normalise_args(args(&["astaire", "10.0.0.4:11211", "/etc/cs"])),
            args(&["astaire", "resync", "--local-name", "10.0.0.4:11211", "--cluster-settings", "/etc/cs"])
        );
        assert_eq!(
            normalise_args(args(&["astaire", "--log-level", "5", "resync", "--full"])),
            args(&["astaire", "--log-level", "5", "resync", "--full"])
        );
    }
}
