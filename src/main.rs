//! The `astaire` command: arguments → typed options → one library call →
//! exit code. The edges it needs (arguments, output, process set-up) are
//! in `cli`; all the work is in the library.

mod cli;

use cli::output::say;

use astaire::exit::{Exit, WaitExit};
use astaire::node_settings::{self, NodeFlags, NodeSettings};
use astaire::pd_log::{PdEvent, PdLog};
use astaire::placement::{Layout, WorkList};
use astaire::resync::{self, Options};
use astaire::snmp::agentx::{MasterAddress, Subagent, DEFAULT_MASTER};
use astaire::snmp::reporter::AlarmReporter;
use astaire::stats::Stats;
use astaire::view::ClusterSettings;
use clap::Parser;
use cli::args::{
    AlarmArgs, Cli, Cluster, Command, DaemonArgs, NodeConfigArgs, PlanArgs, ResyncArgs, StatusArgs, Target, WaitArgs,
};
use cli::{output, process};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    process::private_umask();
    astaire::snmp::uptime::mark_process_start();
    let cli = Cli::parse_from(cli::legacy::normalise_args(std::env::args().collect()));
    let quiet = match &cli.command {
        Command::Resync(a) => a.quiet,
        Command::WaitSync(a) => a.quiet,
        _ => false,
    };
    let log_level = cli.log_level.map(node_settings::clamp_log_level);
    let code = match cli.command {
        Command::Daemon(args) => daemon(args, log_level, cli.log_file),
        command => {
            // --quiet: warnings and errors only, unless --log-level says otherwise.
            let level = log_level.unwrap_or(if quiet { 1 } else { node_settings::DEFAULT_LOG_LEVEL });
            let max = astaire::log_files::DEFAULT_MAX_DIRECTORY_SIZE;
            let _guard = match process::init_logging(level, cli.log_file.as_deref(), max) {
                Ok(guard) => guard,
                Err(e) => {
                    output::error(e);
                    return ExitCode::from(Exit::Usage.code());
                }
            };
            process::with_runtime(async move {
                match command {
                    Command::Resync(args) => resync(args).await.code(),
                    Command::Plan(args) => plan(args).await.code(),
                    Command::Verify(target) => verify(target).await.code(),
                    Command::Status(args) => status(args).await.code(),
                    Command::WaitSync(args) => wait_sync(args).await.code(),
                    Command::NodeConfig(args) => node_config(args).code(),
                    Command::MigrateMemcachedConfig(args) => cli::migrate::run(args).code(),
                    Command::Daemon(_) => unreachable!("handled above"),
                }
            })
        }
    };
    ExitCode::from(code)
}

/// The placement the flags give; an unknown name or an option the
/// placement's clients do not have stops the command as an invalid
/// cluster description does (exit 3).
fn placement(cluster: &Cluster) -> Result<astaire::placement::Placement, Exit> {
    cluster.placement.placement().map_err(|e| {
        output::error(e);
        Exit::BadSettings
    })
}

/// Loads the settings and their layout under the placement flags. A file
/// the OS could not read is a usage error (2), as an unreadable
/// configuration or pidfile is; only a file that is itself bad is invalid
/// cluster settings (3).
fn load_layout(cluster: &Cluster) -> Result<(ClusterSettings, Layout), Exit> {
    let placement = placement(cluster)?;
    Layout::load(&cluster.cluster_settings, &placement).map_err(|e| {
        output::error(&e);
        match e.is_invalid() {
            true => Exit::BadSettings,
            false => Exit::Usage,
        }
    })
}

/// Loads the settings and the work list, or the exit code to stop with.
fn load_work(cluster: &Cluster, full: bool) -> Result<(Layout, WorkList), Exit> {
    let Some(given) = cluster.local_name.as_deref() else {
        output::error("--local-name is required (HOST:PORT as cluster_settings names this node)");
        return Err(Exit::Usage);
    };
    let (_, layout) = load_layout(cluster)?;
    let local_name = &match astaire::addr::HostPort::local_name(given) {
        Ok(name) => name,
        Err(e) => {
            output::error(format!("--local-name: {e}"));
            return Err(Exit::Usage);
        }
    };
    if !layout.knows(local_name) {
        output::error(format!("{local_name} is in neither servers nor new_servers of the cluster settings"));
        return Err(Exit::Usage);
    }
    let work = layout.work_list(local_name, full).map_err(|e| {
        output::error(e);
        Exit::Usage
    })?;
    Ok((layout, work))
}

/// `plan --every-node`: each node of the target list in turn, from one
/// machine.
async fn plan_every_node(args: &PlanArgs) -> Exit {
    let (settings, layout) = match load_layout(&args.cluster) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut nodes = settings.new_servers.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| settings.servers.clone());
    // Once each, where the clients list a server twice (gomemcache, memjs).
    let mut seen = std::collections::HashSet::new();
    nodes.retain(|n| seen.insert(n.clone()));
    let mut works = Vec::new();
    for node in &nodes {
        match layout.work_list(node, args.full) {
            Ok(w) => works.push(w),
            Err(e) => {
                output::error(e);
                return Exit::Usage;
            }
        }
    }
    if !args.count {
        works.iter().for_each(|w| output::plan(&layout, w, args.json));
        return Exit::Ok;
    }
    let opts = Options { io_timeout: Duration::from_secs(args.io_timeout.max(1)), ..Options::default() };
    let every = match astaire::plan::count_every_node(&layout, &works, &opts).await {
        Ok(every) => every,
        Err(e) => {
            output::error(e);
            return Exit::Usage;
        }
    };
    let mut code = Exit::Ok;
    for (work, counts) in works.iter().zip(&every) {
        if counts.values().any(|c| c.error.is_some()) {
            code = Exit::Incomplete;
        }
        output::plan_counts(work, counts, args.json);
    }
    code
}

/// The alarm reporter from the flags and the node's configuration file.
fn alarms(args: &AlarmArgs) -> Result<AlarmReporter, Exit> {
    let file = node_settings::load_config(args.config.as_deref()).map_err(|e| {
        output::error(e);
        Exit::Usage
    })?;
    file.ignored.iter().for_each(|l| tracing::warn!("configuration line ignored: {l}"));
    let flags = NodeFlags {
        snmp_ip: args.snmp_ip.clone(),
        snmp_community: args.snmp_community.clone(),
        ..NodeFlags::default()
    };
    let inform = node_settings::inform(&flags, &file).map_err(|e| {
        output::error(e);
        Exit::Usage
    })?;
    Ok(AlarmReporter::new(inform, args.agent(), args.announce_alarm_state))
}

async fn resync(args: ResyncArgs) -> Exit {
    let t = &args.target;
    let (layout, work) = match load_work(&t.cluster, args.full) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if let Some(p) = args.limits.cpu_limit {
        if let Err(e) = node_settings::check_cpu_limit(p) {
            output::error(format!("--cpu-limit: {e}"));
            return Exit::Usage;
        }
    }
    let stop = match process::stop_on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            output::error(e);
            return Exit::Usage;
        }
    };
    let opts = Options {
        cancel: Some(stop),
        conflict: args.limits.conflict(layout.scheme()),
        queue_memory: args.limits.queue_memory,
        spill_dir: args.limits.spill_dir.clone(),
        spill_limit: args.limits.spill_limit,
        batch_keys: args.batch_keys.max(1),
        busy_wait: Duration::from_secs(args.busy_wait),
        dump: args.dump_command,
        io_timeout: Duration::from_secs(t.io.io_timeout.max(1)),
        bandwidth_limit: args.limits.bandwidth_limit,
        cpu_share: args
            .limits
            .cpu_limit
            .filter(|p| *p > 0.0)
            .map(|p| astaire::throttle::share_of_one_core(p, process::cores())),
        ..Options::default()
    };
    let mut alarms = match alarms(&args.alarms) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let stats = Stats::new();
    let agent = args.agentx.config(None).map(|c| Subagent::spawn(c, stats.clone()));
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
            output::error("stopped by a signal before the resync finished; run it again to complete it");
            Exit::Interrupted
        }
        Err(e) => {
            output::error(e);
            Exit::LocalUnreachable
        }
        Ok(report) => {
            if args.json {
                say!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                output::resync_summary(&work, &report);
            }
            if report.succeeded() {
                Exit::Ok
            } else {
                Exit::Incomplete
            }
        }
    }
}

fn node_config(args: NodeConfigArgs) -> Exit {
    match node_settings::load_config(args.config.as_deref()) {
        Ok(file) => match file.get(&args.key) {
            Some(value) => {
                say!("{value}");
                Exit::Ok
            }
            None => Exit::Incomplete,
        },
        Err(e) => {
            output::error(e);
            Exit::Usage
        }
    }
}

async fn plan(args: PlanArgs) -> Exit {
    if args.every_node {
        return plan_every_node(&args).await;
    }
    let (view, work) = match load_work(&args.cluster, args.full) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if !args.count {
        output::plan(&view, &work, args.json);
        return Exit::Ok;
    }
    let opts = Options { io_timeout: Duration::from_secs(args.io_timeout.max(1)), ..Options::default() };
    let counts = astaire::plan::count(&work, &opts).await;
    output::plan_counts(&work, &counts, args.json);
    if counts.values().any(|c| c.error.is_some()) {
        Exit::Incomplete
    } else {
        Exit::Ok
    }
}

async fn verify(t: Target) -> Exit {
    // Everything the node holds, from the other replicas; under a one-copy
    // placement there are none, so what it must hold after the resize.
    let full = match placement(&t.cluster) {
        Ok(p) => !p.scheme.one_copy(),
        Err(code) => return code,
    };
    let (_, work) = match load_work(&t.cluster, full) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let opts = Options { io_timeout: Duration::from_secs(t.io.io_timeout.max(1)), ..Options::default() };
    match astaire::verify::verify(&work, &opts).await {
        Err(e) => {
            output::error(format!("local memcached {e}"));
            Exit::LocalUnreachable
        }
        Ok(report) => {
            output::verify(&work, &report);
            if report.ok() {
                Exit::Ok
            } else {
                Exit::Incomplete
            }
        }
    }
}

async fn status(args: StatusArgs) -> WaitExit {
    match astaire::daemon::control::query(&args.control.control_socket).await {
        Ok(status) => {
            if args.json {
                say!("{}", serde_json::to_string(&status).unwrap_or_default());
            } else {
                say!("{}", status.summary());
            }
            WaitExit::Succeeded
        }
        Err(e) => {
            output::error(e);
            WaitExit::Unreachable
        }
    }
}

async fn wait_sync(args: WaitArgs) -> WaitExit {
    let seconds = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
    let limits = astaire::daemon::control::WaitLimits {
        timeout: args.timeout.map(seconds),
        stuck_after: args.stuck_after.map(seconds),
        grace: seconds(args.grace),
    };
    let quiet = args.quiet;
    astaire::daemon::control::wait_sync(&args.control.control_socket, limits, |s| {
        if !quiet {
            eprintln!("{}", s.summary());
        }
    })
    .await
}

fn daemon(args: DaemonArgs, log_level: Option<u8>, log_file: Option<PathBuf>) -> u8 {
    let pd = match args.pd_log.as_os_str() == "none" {
        true => PdLog::disabled(),
        false => PdLog::to(&args.pd_log),
    };
    // Said on stderr and, as 7001, to syslog (the journal): once detached,
    // stderr may be a file in the log directory, or nowhere.
    let fail = |message: String| {
        pd.report(&PdEvent::BadConfiguration(message.clone()));
        output::error(message);
        Exit::Usage.code()
    };
    let flags = NodeFlags {
        local_name: args.local_name.clone(),
        log_level,
        cpu_limit_percent: args.limits.cpu_limit,
        snmp_ip: args.alarms.snmp_ip.clone(),
        snmp_community: args.alarms.snmp_community.clone(),
        placement: args.placement.options(),
        spill_limit: args.limits.spill_limit,
        metrics_listen: args.observability.metrics_listen.clone(),
        no_watch: args.observability.no_watch,
    };
    let node = match node_settings::load_config(args.alarms.config.as_deref())
        .and_then(|file| NodeSettings::resolve(&flags, &file))
    {
        Ok(node) => node,
        Err(e) => {
            let usage = fail(e.to_string());
            // The placement describes the cluster: refused as an invalid
            // cluster_settings is.
            return match e {
                node_settings::NodeSettingsError::Placement(_) => Exit::BadSettings.code(),
                _ => usage,
            };
        }
    };
    if args.daemon {
        if let Err(e) = process::detach(log_file.as_deref()) {
            return fail(e);
        }
    }
    // Held (and locked) for the life of the process.
    let _pidfile = match args.pidfile.as_deref().map(process::lock_pidfile).transpose() {
        Ok(file) => file,
        Err(e) => return fail(e),
    };
    process::set_nice(args.nice);
    let _guard = match process::init_logging(node.log_level, log_file.as_deref(), node.max_log_directory_size) {
        Ok(guard) => guard,
        Err(e) => return fail(e),
    };
    let open_files = process::raise_open_files_limit();
    let cores = process::cores();
    let cpu_limit = node.cpu_limit_percent;
    let agentx = match args.no_agentx {
        true => None,
        false => args.agentx.config(Some(MasterAddress::Unix(DEFAULT_MASTER.into()))),
    };
    let opts = astaire::daemon::DaemonOptions {
        local_name: node.local_name,
        cluster_settings: args.cluster_settings,
        control_socket: args.control.control_socket,
        control_limits: astaire::daemon::control::ControlLimits::for_open_files(open_files),
        agentx,
        inform: node.inform,
        announce_alarm_state: args.alarms.announce_alarm_state,
        inform_linger: Duration::from_secs(args.alarms.inform_linger),
        alarm_agent: args.alarms.agent(),
        resync: Options {
            conflict: args.limits.conflict(node.placement.scheme),
            queue_memory: args.limits.queue_memory,
            spill_dir: args.limits.spill_dir.clone(),
            spill_limit: node.spill_limit,
            io_timeout: Duration::from_secs(args.io.io_timeout.max(1)),
            bandwidth_limit: args.limits.bandwidth_limit,
            cpu_share: (cpu_limit > 0.0).then(|| astaire::throttle::share_of_one_core(cpu_limit, cores)),
            ..Options::default()
        },
        tag_poll: Duration::from_secs(args.tag_poll.max(1)),
        retry_after: Duration::from_secs(10),
        pd,
        placement: node.placement,
        metrics_listen: node.metrics_listen,
        watch: node.watch.then(|| {
            Duration::try_from_secs_f64(args.observability.watch_interval)
                .unwrap_or(astaire::daemon::watch::DEFAULT_PERIOD)
                .max(Duration::from_millis(50))
        }),
        // The node configuration, when it is a file (not /dev/null).
        watch_also: [args.alarms.config.clone().unwrap_or_else(|| astaire::config::DEFAULT_CONFIG.into())]
            .into_iter()
            .filter(|p| p.is_file())
            .collect(),
    };
    tracing::info!(
        local = %opts.local_name,
        open_files,
        control_connections = opts.control_limits.connections,
        cpu_limit_percent = cpu_limit,
        cores,
        bandwidth_limit = ?opts.resync.bandwidth_limit,
        "starting astaire {}",
        env!("CARGO_PKG_VERSION")
    );
    process::with_runtime(async move {
        match astaire::daemon::run(opts).await {
            Ok(()) => Exit::Ok.code(),
            Err(e) => {
                output::error(&e);
                e.exit().code()
            }
        }
    })
}
