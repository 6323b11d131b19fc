//! The command line, as clap types. Flags that several commands take are
//! declared once, in a group each command flattens.

use astaire::memcached::dump::DumpMode;
use astaire::node_settings::DEFAULT_CLUSTER_SETTINGS;
use astaire::resync::ConflictPolicy;
use astaire::snmp::agentx::{AgentConfig, MasterAddress};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The example `astaire --help` and `astaire resync --help` show.
macro_rules! resync_example {
    () => {
        "astaire resync --local-name 10.0.0.4:11211 --cluster-settings /etc/clearwater/cluster_settings"
    };
}

#[derive(Parser)]
#[command(
    name = "astaire",
    version,
    about = "Active resynchronisation of memcached clusters: copies the keys a node newly owns after a resize",
    after_help = format!(
        "Example: what this node would pull, then pull it\n  \
         astaire plan --local-name 10.0.0.4:11211 --cluster-settings /etc/clearwater/cluster_settings\n  \
         {}\n\n\
         The original positional form `astaire HOST:PORT CLUSTER_SETTINGS` runs `resync`.\n{}",
        resync_example!(),
        astaire::exit::SUMMARY
    )
)]
pub struct Cli {
    /// 0 error, 1 warning, 2 status (default), 3 info, 4 verbose, 5 debug
    /// (others are taken as the nearest). The daemon also reads log_level
    /// from its configuration file.
    #[arg(long, global = true, allow_negative_numbers = true, overrides_with = "log_level")]
    pub log_level: Option<i64>,
    /// Log to files in this directory (rotated daily) instead of stderr.
    #[arg(long, global = true, value_name = "DIR")]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Each subcommand's help: its first line says what it is for, and its
/// `Example:` is a command line that parses (the tests below run each one
/// through the parser).
#[derive(Subcommand)]
pub enum Command {
    /// Pull this node's vbuckets from their sources, once, and exit.
    #[command(after_help = concat!("Example:\n  ", resync_example!()))]
    Resync(ResyncArgs),
    /// Show what a resync would pull, and from where, without touching anything.
    #[command(after_help = "Example: how many keys each node of a resize would receive, and from which source\n  \
                      astaire plan --count --every-node --cluster-settings /etc/clearwater/cluster_settings")]
    Plan(PlanArgs),
    /// Check that this node holds every key of its vbuckets with the sources' values.
    #[command(after_help = "Example:\n  \
                      astaire verify --local-name 10.0.0.4:11211 --cluster-settings /etc/clearwater/cluster_settings")]
    Verify(Target),
    /// Run as a service that keeps this node's memcached in sync.
    ///
    /// It resyncs on start, on SIGHUP (minimal) and SIGUSR1 (full), and
    /// when the local memcached restarts empty.
    #[command(after_help = "Example: as the node's service does, with the settings from /etc/clearwater/config\n  \
                      astaire daemon --cluster-settings /etc/clearwater/cluster_settings --pidfile /run/astaire/astaire.pid")]
    Daemon(DaemonArgs),
    /// Ask the running daemon how it is.
    #[command(after_help = "Example:\n  astaire status --json")]
    Status(StatusArgs),
    /// Wait until the daemon has no resync running or pending.
    ///
    /// Exit 0 when the last one succeeded, 1 failed, 2 timeout, 3 daemon
    /// unreachable.
    #[command(after_help = "Example: wait at most ten minutes after a SIGHUP\n  astaire wait-sync --timeout 600")]
    WaitSync(WaitArgs),
    /// Print one setting of the node's configuration as Astaire reads it.
    ///
    /// For init scripts; exit 1 when it is not set, 2 when the
    /// configuration is invalid.
    #[command(after_help = "Example:\n  astaire node-config local_ip --config /etc/clearwater/config")]
    NodeConfig(NodeConfigArgs),
    /// Convert a Clearwater node's memcached configuration to upstream memcached's.
    ///
    /// The fork's engine options (-e cache_size=…;eviction=false) become
    /// -m and -M; every other line is kept.
    #[command(after_help = "Example: convert in place, keeping the original as FILE.clearwater\n  \
                      astaire migrate-memcached-config --in-place /etc/memcached_11211.conf")]
    MigrateMemcachedConfig(MigrateArgs),
}

#[derive(Args)]
pub struct NodeConfigArgs {
    /// The setting, e.g. signaling_namespace.
    pub key: String,
    /// The configuration file (default /etc/clearwater/config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The configuration clearwater-memcached wrote.
    #[arg(default_value = "/etc/memcached_11211.conf")]
    pub file: PathBuf,
    /// Replace FILE, keeping the original as FILE.clearwater.
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// Write the upstream configuration here (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// This node and its cluster.
#[derive(Args)]
pub struct Cluster {
    /// This node, exactly as it appears in cluster_settings (HOST:PORT).
    /// Required, except by `plan --every-node`.
    #[arg(long)]
    pub local_name: Option<String>,
    #[arg(long, default_value = DEFAULT_CLUSTER_SETTINGS)]
    pub cluster_settings: PathBuf,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// How the cluster's clients place keys on servers.
#[derive(Args, Clone)]
pub struct PlacementArgs {
    /// The clients' placement: clearwater (Clearwater's vbucket ring),
    /// ketama (libmemcached weighted ketama), rendezvous (pymemcache),
    /// jump (the memcached proxy), dalli (Ruby), spymemcached,
    /// spymemcached-ketama, spymemcached-consistent (Java), pecl-memcache,
    /// pecl-memcache-standard (PHP memcache), libmemcached (its modula
    /// default: php-memcached, pylibmc), twemproxy, gomemcache (Go),
    /// node-memcached, memjs (Node), mcrouter, mcrouter-crc32,
    /// mcrouter-weighted.
    /// [default: clearwater; the daemon: astaire_placement]
    #[arg(long, value_name = "NAME")]
    pub placement: Option<String>,
    /// rendezvous: whether the clients pass keys as str or as bytes
    /// (pymemcache hashes bytes as b'...'). [default: str]
    #[arg(long, value_enum)]
    pub key_text: Option<astaire::placement::KeyText>,
    /// jump: the proxy pool's seed option, if it has one.
    #[arg(long, value_name = "STRING")]
    pub pool_seed: Option<String>,
    /// ketama, libmemcached, rendezvous, jump: a prefix the clients put on
    /// every key but leave out of the hash (libmemcached's namespace,
    /// PHP's OPT_PREFIX_KEY, pymemcache's key_prefix). Keys without it are
    /// hashed whole.
    #[arg(long, value_name = "PREFIX")]
    pub key_prefix: Option<String>,
    /// twemproxy: the pool's hash: (one_at_a_time, md5, crc16, crc32,
    /// crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur,
    /// jenkins; default fnv1a_64). pecl-memcache and
    /// pecl-memcache-standard: memcache.hash_function (crc32, the default,
    /// or fnv).
    #[arg(long, value_name = "NAME")]
    pub hash: Option<String>,
    /// twemproxy: the pool's distribution: (ketama, the default, or modula).
    #[arg(long, value_name = "NAME")]
    pub distribution: Option<String>,
    /// twemproxy: the pool's hash_tag: (two characters, such as {}).
    #[arg(long, value_name = "XY")]
    pub hash_tag: Option<String>,
    /// mcrouter, mcrouter-crc32, mcrouter-weighted: the route's salt.
    #[arg(long, value_name = "STRING")]
    pub salt: Option<String>,
}

impl LimitArgs {
    /// The conflict policy given, or the placement's default.
    pub fn conflict(&self, scheme: astaire::placement::Scheme) -> ConflictPolicy {
        self.conflict.unwrap_or(if scheme.one_copy() {
            ConflictPolicy::AddOnly
        } else {
            ConflictPolicy::ClearwaterTimestamp
        })
    }
}

impl PlacementArgs {
    /// The options as given, for the daemon to merge with its file.
    pub fn options(&self) -> astaire::placement::PlacementOptions {
        astaire::placement::PlacementOptions {
            placement: self.placement.clone(),
            key_text: self.key_text,
            pool_seed: self.pool_seed.clone(),
            key_prefix: self.key_prefix.clone(),
            hash: self.hash.clone(),
            distribution: self.distribution.clone(),
            hash_tag: self.hash_tag.clone(),
            salt: self.salt.clone(),
        }
    }

    /// The placement these flags give, the defaults for the rest.
    pub fn placement(&self) -> Result<astaire::placement::Placement, astaire::placement::PlacementError> {
        self.options().resolve()
    }
}

/// This node, its cluster, and how long a silent server is waited for.
#[derive(Args)]
pub struct Target {
    #[command(flatten)]
    pub cluster: Cluster,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Args)]
pub struct IoArgs {
    /// Seconds without progress before a server counts as dead.
    #[arg(long, default_value_t = 10)]
    pub io_timeout: u64,
}

/// How gently the copy runs.
#[derive(Args)]
pub struct LimitArgs {
    /// Memory for keys waiting to be copied (bytes, over the whole
    /// resync); past it they wait in a spill file.
    #[arg(long, value_name = "BYTES", default_value_t = astaire::resync::queue::DEFAULT_QUEUE_MEMORY, hide = true)]
    pub queue_memory: usize,
    /// Where spill files go (default: $STATE_DIRECTORY, else
    /// /var/lib/astaire, else the temporary directory). They have no name
    /// and are gone when the process exits.
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// The most the spill files may hold at once (bytes); past it, the
    /// source whose keys would pass it fails and its vbuckets go to the
    /// other replica (daemon default: astaire_spill_limit, else half the
    /// space free on the spill directory's file system at each resync's
    /// start).
    #[arg(long, value_name = "BYTES")]
    pub spill_limit: Option<u64>,
    /// Limit the copy to this percentage of the node's total CPU; 0
    /// disables it (daemon default: astaire_cpu_limit_percentage, else 5;
    /// resync: no limit).
    #[arg(long, value_name = "PERCENT")]
    pub cpu_limit: Option<f64>,
    /// Limit the copy to this many bytes per second.
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    pub bandwidth_limit: Option<u64>,
    /// What to do when the local node already has a key. [default:
    /// clearwater-timestamp under Clearwater's placement, add-only under
    /// the others, whose flags are not timestamps]
    #[arg(long, value_enum)]
    pub conflict: Option<ConflictPolicy>,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: Cluster,
    #[arg(long)]
    pub full: bool,
    /// Count the keys and bytes each source would send, from its key list
    /// (a metadump per source, one at a time; read-only).
    #[arg(long)]
    pub count: bool,
    /// Every node of the cluster instead of --local-name: what each would
    /// pull (with --count, one metadump per source per node).
    #[arg(long)]
    pub every_node: bool,
    /// With --count: seconds without progress before a source counts as dead.
    #[arg(long, default_value_t = 10)]
    pub io_timeout: u64,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub target: Target,
    /// Pull everything this node should hold (its memcached lost its data).
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Keys per pipelined batch.
    #[arg(long, default_value_t = astaire::resync::BATCH_KEYS, hide = true)]
    pub batch_keys: usize,
    /// Seconds to wait for a source's crawler that another dump keeps busy.
    #[arg(long, default_value_t = 60, hide = true)]
    pub busy_wait: u64,
    /// How to list a source's keys (default: mgdump on memcached 1.6.19 and
    /// later, metadump before).
    #[arg(long, value_enum, value_name = "COMMAND")]
    pub dump_command: Option<DumpMode>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, and only warnings and errors in the log (unless
    /// --log-level says otherwise).
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub agentx: AgentxArgs,
    #[command(flatten)]
    pub alarms: AlarmArgs,
}

#[derive(Args)]
pub struct DaemonArgs {
    /// This node as it appears in cluster_settings (default: local_ip:11211
    /// from the configuration file).
    #[arg(long)]
    pub local_name: Option<String>,
    #[arg(long, alias = "cluster-settings-file", default_value = DEFAULT_CLUSTER_SETTINGS)]
    pub cluster_settings: PathBuf,
    #[command(flatten)]
    pub placement: PlacementArgs,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub agentx: AgentxArgs,
    /// Do not serve statistics over AgentX.
    #[arg(long, conflicts_with = "agentx")]
    pub no_agentx: bool,
    #[command(flatten)]
    pub alarms: AlarmArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Scheduling priority (nice) of the process.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub nice: i32,
    /// Write the process id here, locked while the daemon runs.
    #[arg(long)]
    pub pidfile: Option<PathBuf>,
    /// Detach from the terminal (for init scripts; systemd needs none).
    #[arg(long)]
    pub daemon: bool,
    #[command(flatten)]
    pub io: IoArgs,
    /// Seconds between restart-tag checks while idle.
    #[arg(long, default_value_t = 10, hide = true)]
    pub tag_poll: u64,
    /// Where the problem-determination logs go: a syslog socket, or
    /// `none`.
    #[arg(long, value_name = "SOCKET", default_value = astaire::pd_log::SYSLOG_SOCKET, overrides_with = "pd_log")]
    pub pd_log: PathBuf,
    #[command(flatten)]
    pub observability: ObservabilityArgs,
}

/// Issue 31: the metrics endpoint and the settings watch.
#[derive(Args)]
pub struct ObservabilityArgs {
    /// Serve Prometheus metrics (/metrics) and health (/healthz, /readyz)
    /// over HTTP here: a loopback or pod-network address, never a public
    /// one (no authentication). Off by default; the configuration's
    /// astaire_metrics_listen.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Do not reload when cluster_settings or the configuration file
    /// changes on disk (SIGHUP still reloads); the configuration's
    /// astaire_watch_settings=no.
    #[arg(long)]
    pub no_watch: bool,
    /// Seconds between looks at the watched files.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, hide = true)]
    pub watch_interval: f64,
}

#[derive(Args)]
pub struct ControlArgs {
    #[arg(long, default_value = astaire::daemon::control::DEFAULT_SOCKET)]
    pub control_socket: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Give up after this many seconds (exit 2).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Give up once the daemon's progress has not moved for this many
    /// seconds (exit 2); the init script's wait-sync uses 600.
    #[arg(long, value_name = "SECONDS")]
    pub stuck_after: Option<f64>,
    /// Judge only after this many seconds, so a reload still on its way
    /// is waited for (the init script uses 2, as the original did).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub grace: f64,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct AlarmArgs {
    /// The node's shell-style configuration (snmp_ip, snmp_community, …).
    /// A missing default file just means no settings from it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where alarm INFORMs go: comma-separated host or host:port (default
    /// port 162). Overrides snmp_ip from --config.
    #[arg(long, value_name = "TARGETS")]
    pub snmp_ip: Option<String>,
    /// Community of the INFORMs (default: snmp_community, else clearwater).
    #[arg(long)]
    pub snmp_community: Option<String>,
    /// Also send the alarm's current (cleared) state when starting.
    #[arg(long)]
    pub announce_alarm_state: bool,
    /// At exit, wait this long for the clear to be acknowledged.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub inform_linger: u64,
    /// Clearwater's alarm agent: while this socket exists, alarms go to it
    /// (`issue-alarm astaire 5501.5|5501.1`) and the agent sends the
    /// INFORMs; otherwise they go to snmp_ip. `none` never uses it.
    #[arg(long, value_name = "SOCKET", default_value = astaire::snmp::alarm_agent::DEFAULT_AGENT_SOCKET)]
    pub alarm_agent: String,
    /// How often the alarm's state is sent to the agent again.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", hide = true)]
    pub alarm_agent_resend: u64,
}

impl AlarmArgs {
    pub fn agent(&self) -> astaire::snmp::alarm_agent::AgentSettings {
        astaire::snmp::alarm_agent::AgentSettings {
            socket: (self.alarm_agent != "none").then(|| PathBuf::from(&self.alarm_agent)),
            resend: std::time::Duration::from_secs(self.alarm_agent_resend.max(1)),
        }
    }
}

#[derive(Args)]
pub struct AgentxArgs {
    /// Serve the counters to this AgentX master: tcp:HOST:PORT, unix:PATH
    /// or a path (the daemon's default, and Debian's, is /var/agentx/master).
    #[arg(long, value_name = "ADDRESS")]
    pub agentx: Option<MasterAddress>,
    /// AgentX registration priority (lower wins over other registrations).
    #[arg(long, default_value_t = 127)]
    pub agentx_priority: u8,
}

impl AgentxArgs {
    /// The subagent's configuration: the master given, else `default`
    /// (none for a one-shot resync).
    pub fn config(&self, default: Option<MasterAddress>) -> Option<AgentConfig> {
        let mut config = AgentConfig::new(self.agentx.clone().or(default)?);
        config.priority = self.agentx_priority;
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    /// What `astaire ARGS --help` prints.
    fn help(args: &[&str]) -> String {
        let line = ["astaire"].iter().chain(args).chain(&["--help"]);
        match Cli::try_parse_from(line) {
            Err(e) if e.kind() == ErrorKind::DisplayHelp => e.to_string(),
            Err(e) => panic!("{args:?} --help: {e}"),
            Ok(_) => panic!("{args:?} --help printed no help"),
        }
    }

    /// The command lines under a help text's `Example:` line.
    fn examples(help: &str) -> Vec<String> {
        let after = help.lines().skip_while(|l| !l.starts_with("Example")).skip(1);
        after.take_while(|l| l.starts_with("  astaire ")).map(|l| l.trim().to_owned()).collect()
    }

    #[test]
    fn every_help_says_what_the_command_is_for_in_one_line_and_shows_an_example_that_parses() {
        let cli = Cli::command();
        let mut pages = vec![(Vec::new(), cli.get_about().map(|a| a.to_string()))];
        pages.extend(cli.get_subcommands().map(|c| (vec![c.get_name()], c.get_about().map(|a| a.to_string()))));
        assert_eq!(pages.len(), 9, "astaire and its eight commands");
        for (args, about) in pages {
            let about = about.unwrap_or_else(|| panic!("{args:?} has no one-line about"));
            assert!(!about.contains('\n') && about.len() <= 120, "{args:?}: the about is one line: {about:?}");
            let page = help(&args);
            assert!(page.starts_with(&about), "{args:?} --help opens with its about:\n{page}");
            let examples = examples(&page);
            assert!(!examples.is_empty(), "{args:?} --help shows no example:\n{page}");
            for example in examples {
                let words: Vec<String> = example.split_whitespace().map(str::to_owned).collect();
                let words = crate::cli::legacy::normalise_args(words);
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{args:?} --help's example `{example}` is not a command line astaire takes:\n{e}");
                }
            }
        }
    }
}
