//! Network addresses as operators write them: `host:port`, `[v6]:port`,
//! and for SNMP targets a bare host or IPv6 address with a default port.
//! The one place they are parsed (cluster_settings servers, SNMP targets,
//! the AgentX master, the node's `local_ip`). Pure.

use thiserror::Error;

/// What an address names, for its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A memcached server (cluster_settings, `--local-name`): the port is required.
    Server,
    /// An SNMP notification receiver: the port may be left out.
    SnmpTarget,
    /// An AgentX master reached over TCP: the port is required.
    AgentxMaster,
    /// Where the metrics endpoint listens (issue 31): the port is required.
    MetricsListen,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::SnmpTarget => "SNMP target",
            Role::AgentxMaster => "AgentX master",
            Role::MetricsListen => "metrics address",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddrError {
    #[error("empty {0} entry (stray comma?)")]
    Empty(Role),
    #[error("{role} {entry:?} is not {}", forms(*.role))]
    NotAnAddress { role: Role, entry: String },
    #[error("{role} {entry:?} has a bad host")]
    BadHost { role: Role, entry: String },
    #[error("{role} {entry:?} has a bad port {port:?}")]
    BadPort { role: Role, entry: String, port: String },
}

fn forms(role: Role) -> &'static str {
    match role {
        Role::SnmpTarget => "host, host:port or [ipv6]:port",
        Role::Server | Role::AgentxMaster | Role::MetricsListen => "host:port or [ipv6]:port",
    }
}

/// A host (an IPv6 address without its brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// `host:port` or `[v6]:port`, the port required (1-65535).
    pub fn parse(entry: &str, role: Role) -> Result<HostPort, AddrError> {
        if entry.is_empty() {
            return Err(AddrError::Empty(role));
        }
        let not = || AddrError::NotAnAddress { role, entry: entry.to_owned() };
        let (host, port) = split_host_port(entry).ok_or_else(not)?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(AddrError::BadHost { role, entry: entry.to_owned() });
        }
        let port = parse_port(port).ok_or_else(|| AddrError::BadPort {
            role,
            entry: entry.to_owned(),
            port: port.to_owned(),
        })?;
        Ok(HostPort { host: host.to_owned(), port })
    }

    /// Like [`HostPort::parse`], but a bare host, or a bare IPv6 address,
    /// gets `default_port`. Surrounding blanks are ignored.
    pub fn parse_with_default(entry: &str, role: Role, default_port: u16) -> Result<HostPort, AddrError> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(AddrError::Empty(role));
        }
        let not = || AddrError::NotAnAddress { role, entry: entry.to_owned() };
        if entry.starts_with('[') && entry.ends_with(']') {
            let host = &entry[1..entry.len() - 1];
            host.parse::<std::net::Ipv6Addr>().map_err(|_| not())?;
            return Ok(HostPort { host: host.to_owned(), port: default_port });
        }
        if entry.matches(':').count() > 1 && !entry.starts_with('[') {
            entry.parse::<std::net::Ipv6Addr>().map_err(|_| not())?;
            return Ok(HostPort { host: entry.to_owned(), port: default_port });
        }
        if !entry.contains(':') {
            if entry.contains(char::is_whitespace) {
                return Err(AddrError::BadHost { role, entry: entry.to_owned() });
            }
            return Ok(HostPort { host: entry.to_owned(), port: default_port });
        }
        HostPort::parse(entry, role)
    }

    /// A node's name as given for the local node: `host:port` or
    /// `[v6]:port` as they are, and also the unbracketed `v6:port` that
    /// the original init script passes (`$local_ip:11211`), bracketed
    /// here to match cluster_settings (which brackets IPv6 verbatim).
    pub fn local_name(entry: &str) -> Result<String, AddrError> {
        match HostPort::parse(entry, Role::Server) {
            Ok(_) => Ok(entry.to_owned()),
            Err(e @ AddrError::NotAnAddress { .. }) => {
                let (host, port) = entry.rsplit_once(':').ok_or(e.clone())?;
                host.parse::<std::net::Ipv6Addr>().map_err(|_| e.clone())?;
                let port = parse_port(port).ok_or_else(|| AddrError::BadPort {
                    role: Role::Server,
                    entry: entry.to_owned(),
                    port: port.to_owned(),
                })?;
                Ok(HostPort::joined(host, port))
            }
            Err(e) => Err(e),
        }
    }

    /// `host:port`, bracketing an IPv6 host: what a socket connect takes,
    /// and how Clearwater names a node (`local_ip` plus memcached's port).
    pub fn joined(host: &str, port: u16) -> String {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&HostPort::joined(&self.host, self.port))
    }
}

/// Splits `host:port` / `[v6]:port`; the host comes back without brackets.
/// An unbracketed IPv6 address is ambiguous, so it is refused.
pub fn split_host_port(entry: &str) -> Option<(&str, &str)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        Some((host, port))
    } else {
        let (host, port) = entry.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        Some((host, port))
    }
}

fn parse_port(port: &str) -> Option<u16> {
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort { host: host.into(), port }
    }

    #[test]
    fn servers_need_a_port_and_brackets_around_ipv6() {
        let p = |e: &str| HostPort::parse(e, Role::Server);
        assert_eq!(p("10.0.0.1:11211"), Ok(hp("10.0.0.1", 11211)));
        assert_eq!(p("[fd00::1]:11211"), Ok(hp("fd00::1", 11211)));
        assert_eq!(p("memcached-2.example:11211"), Ok(hp("memcached-2.example", 11211)));
        assert!(matches!(p(""), Err(AddrError::Empty(Role::Server))));
        assert!(matches!(p("10.0.0.1"), Err(AddrError::NotAnAddress { .. })));
        assert!(matches!(p("fd00::1:11211"), Err(AddrError::NotAnAddress { .. })), "ambiguous");
        assert!(matches!(p("[nothex]:1"), Err(AddrError::NotAnAddress { .. })));
        assert!(matches!(p(":11211"), Err(AddrError::BadHost { .. })));
        assert!(matches!(p("a b:1"), Err(AddrError::BadHost { .. })));
        for port in ["0", "65536", "x", ""] {
            assert!(matches!(p(&format!("a:{port}")), Err(AddrError::BadPort { .. })), "{port}");
        }
        assert_eq!(
            p("a:99999").unwrap_err().to_string(),
            "server \"a:99999\" has a bad port \"99999\"",
            "the message names the entry and the port"
        );
    }

    #[test]
    fn snmp_targets_default_their_port() {
        let p = |e: &str| HostPort::parse_with_default(e, Role::SnmpTarget, 162);
        assert_eq!(p(" 10.0.0.9 "), Ok(hp("10.0.0.9", 162)));
        assert_eq!(p("10.0.0.9:1162"), Ok(hp("10.0.0.9", 1162)));
        assert_eq!(p("fd00::9"), Ok(hp("fd00::9", 162)));
        assert_eq!(p("[fd00::9]"), Ok(hp("fd00::9", 162)));
        assert_eq!(p("[fd00::9]:1162"), Ok(hp("fd00::9", 1162)));
        assert_eq!(p("alarms.example"), Ok(hp("alarms.example", 162)));
        assert!(matches!(p(""), Err(AddrError::Empty(_))));
        assert!(matches!(p("fd00::zz"), Err(AddrError::NotAnAddress { .. })));
        assert!(matches!(p(":162"), Err(AddrError::BadHost { .. })));
        assert!(matches!(p("a:x"), Err(AddrError::BadPort { .. })));
        assert_eq!(
            p("fd00::zz").unwrap_err().to_string(),
            "SNMP target \"fd00::zz\" is not host, host:port or [ipv6]:port"
        );
    }

    #[test]
    fn a_local_name_may_be_unbracketed_ipv6_as_the_original_init_script_passes_it() {
        assert_eq!(HostPort::local_name("fd00::1:11211").unwrap(), "[fd00::1]:11211");
        assert_eq!(HostPort::local_name("[fd00::1]:11211").unwrap(), "[fd00::1]:11211");
        assert_eq!(HostPort::local_name("10.0.0.1:11211").unwrap(), "10.0.0.1:11211");
        assert_eq!(HostPort::local_name("vellum-1.example:11211").unwrap(), "vellum-1.example:11211");
        assert!(HostPort::local_name("fd00::zz:11211").is_err());
        assert!(HostPort::local_name("fd00::1:0").is_err());
        assert!(HostPort::local_name("10.0.0.1").is_err());
    }

    #[test]
    fn joined_brackets_ipv6_hosts_only() {
        assert_eq!(HostPort::joined("10.0.0.1", 11211), "10.0.0.1:11211");
        assert_eq!(HostPort::joined("fd00::1", 11211), "[fd00::1]:11211");
        assert_eq!(hp("fd00::1", 1).to_string(), "[fd00::1]:1");
    }
}
