//! The node's settings: its configuration file (`/etc/clearwater/config`)
//! merged with the command's flags, flags first, into one typed value.
//! The product's defaults live here: the local node is `local_ip` on
//! memcached's port, the CPU limit is 5 %, the log level is 2. Pure, but
//! for [`load_config`].

use crate::addr::{AddrError, HostPort};
use crate::config::{Config, ConfigError, DEFAULT_CONFIG};
use crate::snmp::inform::InformConfig;
use std::path::Path;

/// Where the cluster's server lists are read from by default.
pub const DEFAULT_CLUSTER_SETTINGS: &str = "/etc/clearwater/cluster_settings";
/// The port Clearwater's memcached listens on: the local node is `local_ip:11211`.
pub const MEMCACHED_PORT: u16 = 11211;
/// The daemon's CPU limit when neither a flag nor the file gives one.
pub const DEFAULT_CPU_LIMIT_PERCENT: f64 = 5.0;
/// The log level when neither a flag nor the file gives one (status).
pub const DEFAULT_LOG_LEVEL: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum NodeSettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("log_level {0:?} in the configuration is not a number")]
    LogLevel(String),
    #[error("astaire_cpu_limit_percentage {0:?} is not a number")]
    CpuLimitNotANumber(String),
    #[error("CPU limit {0} is not a percentage (0-100; 0 disables it)")]
    CpuLimitOutOfRange(f64),
    #[error("max_log_directory_size {0:?} is not a number of bytes")]
    MaxLogDirectorySize(String),
    #[error("astaire_spill_limit {0:?} is not a number of bytes")]
    SpillLimit(String),
    #[error("no --local-name and no local_ip in the configuration")]
    NoLocalName,
    #[error("local name: {0}")]
    LocalName(AddrError),
    #[error("snmp_ip: {0}")]
    SnmpTargets(AddrError),
    /// The placement options: the cluster's description, so the daemon
    /// refuses them as it refuses an invalid `cluster_settings` (exit 3).
    #[error(transparent)]
    Placement(#[from] crate::placement::PlacementError),
    #[error("astaire_key_text {0:?} is not str or bytes")]
    KeyText(String),
    // Issue 31: the metrics endpoint and the settings watch.
    #[error("astaire_metrics_listen: {0}")]
    MetricsListen(AddrError),
    #[error("astaire_watch_settings {0:?} is not yes or no")]
    WatchSettings(String),
}

/// What flags can say about the node; `None` defers to the file.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags {
    pub local_name: Option<String>,
    pub log_level: Option<u8>,
    pub cpu_limit_percent: Option<f64>,
    pub snmp_ip: Option<String>,
    pub snmp_community: Option<String>,
    /// `--placement` and the options of the families.
    pub placement: crate::placement::PlacementOptions,
    pub spill_limit: Option<u64>,
    // Issue 31.
    /// `--metrics-listen HOST:PORT`.
    pub metrics_listen: Option<String>,
    /// `--no-watch`.
    pub no_watch: bool,
}

/// The daemon's view of its node.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub local_name: String,
    pub log_level: u8,
    /// 0 disables the limit.
    pub cpu_limit_percent: f64,
    /// The log directory's limit (`max_log_directory_size`).
    pub max_log_directory_size: u64,
    pub inform: InformConfig,
    /// How the cluster's clients place keys (`astaire_placement`,
    /// `astaire_key_text`, `astaire_pool_seed`, `astaire_key_prefix`,
    /// `astaire_hash`, `astaire_distribution`, `astaire_hash_tag`,
    /// `astaire_salt`).
    pub placement: crate::placement::Placement,
    /// The most the spill files may hold (`astaire_spill_limit`); `None`
    /// for half the free space at each resync's start.
    pub spill_limit: Option<u64>,
    // Issue 31.
    /// Where /metrics, /healthz and /readyz are served
    /// (`astaire_metrics_listen`); `None`: not served (the default).
    pub metrics_listen: Option<String>,
    /// Whether changed settings files are reloaded without a SIGHUP
    /// (`astaire_watch_settings`, `--no-watch`); on by default.
    pub watch: bool,
}

/// Reads the node configuration. A missing file at the default path is no
/// configuration (a node without Clearwater); an explicit path must exist.
pub fn load_config(explicit: Option<&Path>) -> Result<Config, NodeSettingsError> {
    match explicit {
        Some(path) => Ok(Config::load(path)?),
        None if !Path::new(DEFAULT_CONFIG).exists() => Ok(Config::default()),
        None => Ok(Config::load(Path::new(DEFAULT_CONFIG))?),
    }
}

impl NodeSettings {
    /// The daemon's settings from its flags and its configuration file.
    pub fn resolve(flags: &NodeFlags, file: &Config) -> Result<NodeSettings, NodeSettingsError> {
        let log_level = match (flags.log_level, file.get("log_level")) {
            (Some(l), _) => l,
            (None, Some(v)) => clamp_log_level(v.parse::<i64>().map_err(|_| NodeSettingsError::LogLevel(v.into()))?),
            (None, None) => DEFAULT_LOG_LEVEL,
        };
        let cpu_limit_percent = match (flags.cpu_limit_percent, file.get("astaire_cpu_limit_percentage")) {
            (Some(p), _) => p,
            (None, Some(v)) => v.parse::<f64>().map_err(|_| NodeSettingsError::CpuLimitNotANumber(v.into()))?,
            (None, None) => DEFAULT_CPU_LIMIT_PERCENT,
        };
        check_cpu_limit(cpu_limit_percent)?;
        let local_name = match (&flags.local_name, file.get("local_ip")) {
            (Some(n), _) => n.clone(),
            (None, Some(ip)) => HostPort::joined(ip, MEMCACHED_PORT),
            (None, None) => return Err(NodeSettingsError::NoLocalName),
        };
        let local_name = HostPort::local_name(&local_name).map_err(NodeSettingsError::LocalName)?;
        let max_log_directory_size = match file.get("max_log_directory_size") {
            Some(v) => v.parse::<u64>().map_err(|_| NodeSettingsError::MaxLogDirectorySize(v.into()))?,
            None => crate::log_files::DEFAULT_MAX_DIRECTORY_SIZE,
        };
        let spill_limit = match (flags.spill_limit, file.get("astaire_spill_limit")) {
            (Some(l), _) => Some(l),
            (None, Some(v)) => Some(v.trim().parse::<u64>().map_err(|_| NodeSettingsError::SpillLimit(v.into()))?),
            (None, None) => None,
        };
        let (metrics_listen, watch) = observability(flags, file)?;
        Ok(NodeSettings {
            metrics_listen,
            watch,
            spill_limit,
            local_name,
            log_level,
            cpu_limit_percent,
            max_log_directory_size,
            inform: inform(flags, file)?,
            placement: placement(flags, file)?,
        })
    }
}

/// The placement from the flags or the file (each flag before its
/// `astaire_…` key); Clearwater's by default.
pub fn placement(flags: &NodeFlags, file: &Config) -> Result<crate::placement::Placement, NodeSettingsError> {
    use crate::placement::{KeyText, PlacementOptions};
    let f = &flags.placement;
    let either = |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).map(str::to_owned));
    let key_text = match (f.key_text, file.get("astaire_key_text")) {
        (Some(k), _) => Some(k),
        (None, Some(v)) => Some(
            <KeyText as clap::ValueEnum>::from_str(v.trim(), true).map_err(|_| NodeSettingsError::KeyText(v.into()))?,
        ),
        (None, None) => None,
    };
    let options = PlacementOptions {
        placement: either(&f.placement, "astaire_placement"),
        key_text,
        pool_seed: either(&f.pool_seed, "astaire_pool_seed"),
        key_prefix: either(&f.key_prefix, "astaire_key_prefix"),
        hash: either(&f.hash, "astaire_hash"),
        distribution: either(&f.distribution, "astaire_distribution"),
        hash_tag: either(&f.hash_tag, "astaire_hash_tag"),
        salt: either(&f.salt, "astaire_salt"),
    };
    Ok(options.resolve()?)
}

/// Issue 31: the metrics address and whether the settings are watched,
/// from the flags or the file. The address is checked here (HOST:PORT);
/// whether it can be bound is the daemon's start.
pub fn observability(flags: &NodeFlags, file: &Config) -> Result<(Option<String>, bool), NodeSettingsError> {
    use crate::addr::Role;
    let listen = flags.metrics_listen.as_deref().or(file.get("astaire_metrics_listen")).map(str::trim);
    let listen = match listen.filter(|l| !l.is_empty()) {
        Some(l) => Some(
            HostPort::parse(l, Role::MetricsListen).map_err(NodeSettingsError::MetricsListen).map(|_| l.to_owned())?,
        ),
        None => None,
    };
    let watch = match (flags.no_watch, file.get("astaire_watch_settings")) {
        (true, _) => false,
        (false, None) => true,
        (false, Some(v)) => match v.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "on" | "1" => true,
            "no" | "n" | "false" | "off" | "0" => false,
            _ => return Err(NodeSettingsError::WatchSettings(v.into())),
        },
    };
    Ok((listen, watch))
}

/// Log levels outside 0..5 are the nearest end, as the original daemon
/// took them.
pub fn clamp_log_level(level: i64) -> u8 {
    level.clamp(0, 5) as u8
}

/// The alarm receivers and community, from the flags or the file.
pub fn inform(flags: &NodeFlags, file: &Config) -> Result<InformConfig, NodeSettingsError> {
    let targets = flags.snmp_ip.as_deref().or(file.get("snmp_ip")).unwrap_or("");
    let community = flags.snmp_community.as_deref().or(file.get("snmp_community"));
    InformConfig::from_settings(targets, community).map_err(NodeSettingsError::SnmpTargets)
}

/// A CPU limit is a percentage of the node's total CPU; 0 disables it.
pub fn check_cpu_limit(percent: f64) -> Result<(), NodeSettingsError> {
    if (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(NodeSettingsError::CpuLimitOutOfRange(percent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Config {
        Config::parse(text, Path::new("config")).unwrap()
    }

    #[test]
    fn the_file_fills_what_the_flags_leave_out() {
        let f = file("local_ip=10.0.0.5\nlog_level=4\nastaire_cpu_limit_percentage=12.5\nsnmp_ip=10.0.0.9\n");
        let s = NodeSettings::resolve(&NodeFlags::default(), &f).unwrap();
        assert_eq!((s.local_name.as_str(), s.log_level, s.cpu_limit_percent), ("10.0.0.5:11211", 4, 12.5));
        assert_eq!(s.inform.targets, [("10.0.0.9".to_string(), 162)]);
        let flags = NodeFlags {
            local_name: Some("10.0.0.6:11311".into()),
            log_level: Some(1),
            cpu_limit_percent: Some(0.0),
            snmp_ip: Some(String::new()),
            snmp_community: None,
            ..NodeFlags::default()
        };
        let s = NodeSettings::resolve(&flags, &f).unwrap();
        assert_eq!((s.local_name.as_str(), s.log_level, s.cpu_limit_percent), ("10.0.0.6:11311", 1, 0.0));
        assert!(s.inform.targets.is_empty(), "an empty --snmp-ip overrides the file");
    }

    #[test]
    fn the_spill_limit_comes_from_the_flag_or_the_file() {
        let base = "local_ip=10.0.0.5\n";
        let none = NodeSettings::resolve(&NodeFlags::default(), &file(base)).unwrap();
        assert_eq!(none.spill_limit, None, "by default, half the free space at each resync");
        let f = file(&format!("{base}astaire_spill_limit=5000000\n"));
        assert_eq!(NodeSettings::resolve(&NodeFlags::default(), &f).unwrap().spill_limit, Some(5_000_000));
        let flags = NodeFlags { spill_limit: Some(7), ..NodeFlags::default() };
        assert_eq!(NodeSettings::resolve(&flags, &f).unwrap().spill_limit, Some(7), "the flag wins");
        let bad = NodeSettings::resolve(&NodeFlags::default(), &file(&format!("{base}astaire_spill_limit=5G\n")));
        assert_eq!(bad.unwrap_err().to_string(), "astaire_spill_limit \"5G\" is not a number of bytes");
    }

    #[test]
    fn defaults_without_a_file() {
        let flags = NodeFlags { local_name: Some("10.0.0.1:11211".into()), ..NodeFlags::default() };
        let s = NodeSettings::resolve(&flags, &Config::default()).unwrap();
        assert_eq!((s.log_level, s.cpu_limit_percent), (DEFAULT_LOG_LEVEL, DEFAULT_CPU_LIMIT_PERCENT));
        assert_eq!(s.inform.community, "clearwater");
    }

    #[test]
    fn an_ipv6_local_ip_is_bracketed_and_a_hostname_kept() {
        let s = NodeSettings::resolve(&NodeFlags::default(), &file("local_ip=fd00::5\n")).unwrap();
        assert_eq!(s.local_name, "[fd00::5]:11211");
        let s = NodeSettings::resolve(&NodeFlags::default(), &file("local_ip=vellum-1.example\n")).unwrap();
        assert_eq!(s.local_name, "vellum-1.example:11211");
        let flags = NodeFlags { local_name: Some("fd00::5:11211".into()), ..NodeFlags::default() };
        assert_eq!(NodeSettings::resolve(&flags, &Config::default()).unwrap().local_name, "[fd00::5]:11211");
    }

    #[test]
    fn log_levels_out_of_range_are_clamped_as_the_original_did() {
        let level =
            |v: &str| NodeSettings::resolve(&NodeFlags::default(), &file(&format!("local_ip=a\nlog_level={v}\n")));
        assert_eq!(level("9").unwrap().log_level, 5);
        assert_eq!(level("-3").unwrap().log_level, 0);
        assert_eq!(level("3").unwrap().log_level, 3);
    }

    #[test]
    fn bad_values_are_named() {
        let none = NodeFlags::default();
        let err = |text: &str| NodeSettings::resolve(&none, &file(text)).unwrap_err().to_string();
        assert_eq!(
            err("local_ip=10.0.0.1\nlog_level=high\n"),
            "log_level \"high\" in the configuration is not a number"
        );
        assert_eq!(
            err("local_ip=10.0.0.1\nastaire_cpu_limit_percentage=lots\n"),
            "astaire_cpu_limit_percentage \"lots\" is not a number"
        );
        assert_eq!(
            err("local_ip=10.0.0.1\nastaire_cpu_limit_percentage=150\n"),
            "CPU limit 150 is not a percentage (0-100; 0 disables it)"
        );
        assert_eq!(err(""), "no --local-name and no local_ip in the configuration");
        assert!(err("local_ip='a b'\n").starts_with("local name: server \"a b:11211\" has a bad host"));
        assert!(err("local_ip=10.0.0.1\nsnmp_ip=10.0.0.9,,10.0.0.8\n").starts_with("snmp_ip: empty"));
    }

    /// Issue 31: off by default, from the file, the flag winning.
    #[test]
    fn the_metrics_address_and_the_watch_come_from_the_flags_or_the_file() {
        let base = "local_ip=10.0.0.5\n";
        let s = NodeSettings::resolve(&NodeFlags::default(), &file(base)).unwrap();
        assert_eq!((s.metrics_listen, s.watch), (None, true), "no endpoint, watched");
        let f = file(&format!("{base}astaire_metrics_listen=127.0.0.1:9150\nastaire_watch_settings=no\n"));
        let s = NodeSettings::resolve(&NodeFlags::default(), &f).unwrap();
        assert_eq!((s.metrics_listen.as_deref(), s.watch), (Some("127.0.0.1:9150"), false));
        let flags = NodeFlags { metrics_listen: Some("[::1]:9151".into()), no_watch: true, ..NodeFlags::default() };
        let s = NodeSettings::resolve(&flags, &file(base)).unwrap();
        assert_eq!((s.metrics_listen.as_deref(), s.watch), (Some("[::1]:9151"), false));
        let err = |text: &str| NodeSettings::resolve(&NodeFlags::default(), &file(text)).unwrap_err().to_string();
        assert_eq!(
            err(&format!("{base}astaire_metrics_listen=9150\n")),
            "astaire_metrics_listen: metrics address \"9150\" is not host:port or [ipv6]:port"
        );
        assert!(err(&format!("{base}astaire_metrics_listen=0.0.0.0:99999\n")).contains("bad port \"99999\""));
        assert_eq!(
            err(&format!("{base}astaire_watch_settings=sometimes\n")),
            "astaire_watch_settings \"sometimes\" is not yes or no"
        );
    }

    #[test]
    fn the_placement_comes_from_the_flags_or_the_file() {
        use crate::placement::{KeyText, Scheme};
        let base = "local_ip=10.0.0.5\n";
        let s = NodeSettings::resolve(&NodeFlags::default(), &file(base)).unwrap();
        assert_eq!(
            (s.placement.scheme, s.placement.key_text, s.placement.pool_seed),
            (Scheme::Clearwater, KeyText::Str, None)
        );
        let f = file(&format!("{base}astaire_placement=Rendezvous\nastaire_key_text=bytes\nastaire_pool_seed=foo\nastaire_key_prefix=app:\n"));
        let s = NodeSettings::resolve(&NodeFlags::default(), &f).unwrap();
        assert_eq!((s.placement.scheme, s.placement.key_text), (Scheme::Rendezvous, KeyText::Bytes));
        assert_eq!(s.placement.pool_seed.as_deref(), Some("foo"));
        assert_eq!(s.placement.key_prefix.as_deref(), Some("app:"));
        let jump = crate::placement::PlacementOptions { placement: Some("jump".into()), ..Default::default() };
        let flags = NodeFlags { placement: jump, ..NodeFlags::default() };
        assert_eq!(NodeSettings::resolve(&flags, &f).unwrap().placement.scheme, Scheme::Jump, "the flag wins");
        let err = |text: &str| NodeSettings::resolve(&NodeFlags::default(), &file(text)).unwrap_err().to_string();
        let e = err(&format!("{base}astaire_placement=modulo\n"));
        assert!(e.starts_with("unknown placement \"modulo\" (--placement, astaire_placement): the placements are clearwater, ketama, rendezvous, jump, dalli, "), "{e}");
        assert!(matches!(
            NodeSettings::resolve(&NodeFlags::default(), &file(&format!("{base}astaire_placement=modulo\n"))),
            Err(NodeSettingsError::Placement(_))
        ));
        assert!(err(&format!("{base}astaire_key_text=utf8\n")).contains("astaire_key_text \"utf8\""));
    }

    #[test]
    fn the_families_options_come_from_the_flags_or_the_file() {
        use crate::placement::{hashes::KeyHash, twemproxy::Distribution, PlacementOptions, Scheme};
        let base = "local_ip=10.0.0.5\n";
        let f = file(&format!(
            "{base}astaire_placement=twemproxy\nastaire_hash=murmur\nastaire_distribution=modula\nastaire_hash_tag={{}}\n"
        ));
        let p = NodeSettings::resolve(&NodeFlags::default(), &f).unwrap().placement;
        assert_eq!(
            (p.scheme, p.hash, p.distribution, p.hash_tag),
            (Scheme::Twemproxy, Some(KeyHash::Murmur), Distribution::Modula, Some(*b"{}"))
        );
        let flags = NodeFlags {
            placement: PlacementOptions { hash: Some("jenkins".into()), ..Default::default() },
            ..NodeFlags::default()
        };
        assert_eq!(NodeSettings::resolve(&flags, &f).unwrap().placement.hash, Some(KeyHash::Jenkins), "the flag wins");
        let f = file(&format!("{base}astaire_placement=mcrouter-weighted\nastaire_salt=s1\n"));
        let p = NodeSettings::resolve(&NodeFlags::default(), &f).unwrap().placement;
        assert_eq!((p.scheme, p.salt.as_deref()), (Scheme::McrouterWeighted, Some("s1")));
        let e = NodeSettings::resolve(
            &NodeFlags::default(),
            &file(&format!("{base}astaire_placement=twemproxy\nastaire_hash=fnv\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("\"fnv\" is not a twemproxy hash (--hash, astaire_hash): the hashes are one_at_a_time, md5,"),
            "{e}"
        );
    }
}
