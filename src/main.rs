//! The `astaire` command: translates arguments into a typed configuration
//! and runs one mode. All the work is in the library.

use astaire::resync::{self, ConflictPolicy, Options, Report};
use astaire::snmp::inform::{InformConfig, Informer, ResyncAlarm};
use astaire::stats::Stats;
use astaire::view::{ClusterSettings, View, WorkList};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes, for orchestrators.
mod exit {
    pub const OK: u8 = 0;
    /// The resync left vbuckets behind, or verify found differences.
    pub const INCOMPLETE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BAD_SETTINGS: u8 = 3;
    pub const LOCAL_UNREACHABLE: u8 = 4;
}

const DEFAULT_SETTINGS: &str = "/etc/clearwater/cluster_settings";

#[derive(Parser)]
#[command(
    name = "astaire",
    version,
    about = "Active resynchronisation of Clearwater-style memcached clusters",
    after_help = "The original positional form `astaire HOST:PORT CLUSTER_SETTINGS` runs `resync`.\n\
Exit codes: 0 success, 1 vbuckets failed / differences found, 2 usage, \
3 invalid cluster_settings, 4 local memcached unreachable."
)]
struct Cli {
    /// 0 error, 1 warning, 2 status (default), 3 info, 4 verbose, 5 debug.
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=5))]
    log_level: u8,
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
    /// Keys per pipelined batch.
    #[arg(long, default_value_t = 512, hide = true)]
    batch_keys: usize,
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
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(astaire::config::DEFAULT_CONFIG), false),
        };
        let file = if explicit || path.exists() {
            match astaire::config::Config::load(&path) {
                Ok(c) => {
                    c.ignored
                        .iter()
                        .for_each(|l| tracing::warn!("configuration line ignored: {l}"));
                    c
                }
                Err(e) => {
                    eprintln!("astaire: invalid configuration: {e}");
                    return Err(exit::USAGE);
                }
            }
        } else {
            astaire::config::Config::default()
        };
        let targets = self
            .snmp_ip
            .as_deref()
            .or(file.get("snmp_ip"))
            .unwrap_or("");
        let community = self
            .snmp_community
            .as_deref()
            .or(file.get("snmp_community"));
        InformConfig::from_settings(targets, community).map_err(|e| {
            eprintln!("astaire: snmp_ip: {e}");
            exit::USAGE
        })
    }
}

/// The resync alarm and its INFORMs around one resync.
struct Alarms {
    alarm: ResyncAlarm,
    informer: Option<Informer>,
    linger: Duration,
}

impl Alarms {
    fn start(args: &AlarmArgs) -> Result<Alarms, u8> {
        let config = args.inform_config()?;
        let informer = (!config.targets.is_empty()).then(|| Informer::spawn(config));
        let (alarm, announce) = ResyncAlarm::new(args.announce_alarm_state);
        let alarms = Alarms {
            alarm,
            informer,
            linger: Duration::from_secs(args.inform_linger),
        };
        alarms.send(announce);
        Ok(alarms)
    }

    fn send(&self, n: Option<astaire::snmp::inform::Notification>) {
        if let (Some(n), Some(informer)) = (n, &self.informer) {
            tracing::info!("alarm {}", n.describe());
            informer.notify(n);
        }
    }

    fn resync_started(&mut self, pairs: usize) {
        let n = self.alarm.resync_started(pairs);
        self.send(n);
    }

    /// Clears, then gives the receivers a bounded time to acknowledge.
    async fn resync_ended(mut self) {
        let n = self.alarm.resync_ended();
        self.send(n);
        if let Some(informer) = self.informer {
            if !informer.flush(self.linger).await {
                tracing::warn!("alarm state not acknowledged by every SNMP target before exit");
            }
            informer.shutdown();
        }
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
        Some(astaire::snmp::agentx::Subagent::spawn(
            config,
            stats.clone(),
        ))
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
    let known = ["resync", "plan", "verify", "help"];
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
        args.splice(
            1..1,
            [
                "resync".into(),
                "--local-name".into(),
                local,
                "--cluster-settings".into(),
                file,
            ],
        );
    }
    args
}

fn main() -> ExitCode {
    astaire::snmp::inform::sender::mark_process_start();
    let cli = Cli::parse_from(normalise_args(std::env::args().collect()));
    init_logging(cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("astaire: cannot start the runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Resync(args) => resync_cmd(args).await,
            Command::Plan(args) => plan_cmd(args),
            Command::Verify(target) => verify_cmd(target).await,
        }
    });
    ExitCode::from(code)
}

fn init_logging(level: u8) {
    let filter = match level {
        0 => "error",
        1 => "warn",
        2 | 3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASTAIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("astaire={filter}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(astaire::progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Loads the settings and the work list, or the exit code to stop with.
fn load_work(local_name: &str, settings: &PathBuf, full: bool) -> Result<(View, WorkList), u8> {
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
        eprintln!(
            "astaire: {local_name} is in neither servers nor new_servers of the cluster settings"
        );
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
    let opts = Options {
        conflict: args.conflict,
        batch_keys: args.batch_keys.max(1),
        io_timeout: Duration::from_secs(t.io_timeout.max(1)),
        bandwidth_limit: args.bandwidth_limit,
        ..Options::default()
    };
    let mut alarms = match Alarms::start(&args.alarms) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let stats = Stats::new();
    let agent = args.agentx.spawn(&stats);
    let display = astaire::progress::ProgressDisplay::start(stats.clone(), args.quiet || args.json);
    alarms.resync_started(work.pairs());
    let result = resync::run(&work, &opts, &stats).await;
    drop(display);
    alarms.resync_ended().await;
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    match result {
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
        "  landed {}, replaced older {}, kept (local as new or newer) {}, skipped expiring {}, vanished {}, reverted deletes {}, failed {}",
        c.landed, c.replaced, c.kept, c.skipped, c.vanished, c.reverted, c.failed
    );
    for s in &r.sources {
        match &s.error {
            None => println!(
                "  source {}: {} vbuckets, {} keys",
                s.source,
                s.vbuckets.len(),
                s.listed
            ),
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
        let vbuckets: serde_json::Map<String, serde_json::Value> = work
            .vbuckets
            .iter()
            .map(|(vb, s)| (vb.to_string(), serde_json::json!(s)))
            .collect();
        let out = serde_json::json!({ "local_name": work.local_name, "full": work.full, "vbuckets": vbuckets });
        println!("{out}");
        return exit::OK;
    }
    println!(
        "{} ({}{}): pulls {} vbuckets, {} vbucket-source pairs",
        work.local_name,
        if view.is_resizing() {
            "resizing"
        } else {
            "stable"
        },
        if work.full { ", full resync" } else { "" },
        work.vbuckets.len(),
        work.pairs()
    );
    for (source, vbs) in work.by_source() {
        let list: Vec<String> = vbs.iter().map(u8::to_string).collect();
        println!(
            "  from {source}: {} vbuckets: {}",
            vbs.len(),
            list.join(",")
        );
    }
    exit::OK
}

async fn verify_cmd(t: Target) -> u8 {
    let (_, work) = match load_work(&t.local_name, &t.cluster_settings, true) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let opts = Options {
        io_timeout: Duration::from_secs(t.io_timeout.max(1)),
        ..Options::default()
    };
    match astaire::verify::verify(&work, &opts).await {
        Err(e) => {
            eprintln!("astaire: local memcached {e}");
            exit::LOCAL_UNREACHABLE
        }
        Ok(report) => {
            for d in &report.differences {
                println!(
                    "vbucket {:3} {:?} {} (source {})",
                    d.vbucket, d.problem, d.key, d.source
                );
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
                if report.failed_sources.is_empty() {
                    ""
                } else {
                    ", some sources unreadable"
                }
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
            args(&[
                "astaire",
                "resync",
                "--local-name",
                "10.0.0.4:11211",
                "--cluster-settings",
                "/etc/cs"
            ])
        );
        assert_eq!(
            normalise_args(args(&["astaire", "--log-level", "5", "resync", "--full"])),
            args(&["astaire", "--log-level", "5", "resync", "--full"])
        );
    }
}
