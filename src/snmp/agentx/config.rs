//! What the subagent connects to and how it behaves: the master's address,
//! the registration priority, the timers and the reconnect backoff. Pure.

use crate::addr::{HostPort, Role};
use crate::backoff::Backoff;
use std::path::PathBuf;
use std::time::Duration;

/// Where the master listens: `tcp:HOST:PORT`, `unix:PATH` or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterAddress {
    Unix(PathBuf),
    Tcp(String),
}

impl std::str::FromStr for MasterAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<MasterAddress, String> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            HostPort::parse(rest, Role::AgentxMaster)
                .map_err(|e| format!("AgentX address {s:?}: expected tcp:HOST:PORT ({e})"))?;
            Ok(MasterAddress::Tcp(rest.to_owned()))
        } else if let Some(path) = s.strip_prefix("unix:") {
            Ok(MasterAddress::Unix(path.into()))
        } else if s.starts_with('/') {
            Ok(MasterAddress::Unix(s.into()))
        } else {
            Err(format!("AgentX address {s:?}: expected tcp:HOST:PORT, unix:PATH or an absolute path"))
        }
    }
}

impl std::fmt::Display for MasterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            MasterAddress::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Debian's default master socket.
pub const DEFAULT_MASTER: &str = "/var/agentx/master";

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub master: MasterAddress,
    /// Registration priority: lower wins; 127 is the AgentX default.
    pub priority: u8,
    pub ping_interval: Duration,
    /// How long to wait for the master's answer to Open, Register, Ping.
    pub response_timeout: Duration,
    /// Reconnect backoff bounds.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A session that lasted this long was a real session: losing it
    /// reconnects at once and is worth a warning. A shorter one (a master
    /// that accepts and closes, or refuses the registration) keeps the
    /// backoff growing, quietly.
    pub stable_after: Duration,
}

/// The pause before the next connection attempt, after one that ended
/// with a session of `lasted` (`None`: no session at all): a lasting
/// session lost reconnects after the minimum, anything else backs off.
pub fn pause_after(config: &AgentConfig, backoff: &mut Backoff, lasted: Option<Duration>) -> Duration {
    if lasted.is_some_and(|l| l >= config.stable_after) {
        backoff.reset();
    }
    backoff.next_pause()
}

impl AgentConfig {
    /// Backoff in tens of milliseconds rather than seconds, for tests.
    #[cfg(test)]
    pub(crate) fn quick(master: MasterAddress) -> AgentConfig {
        AgentConfig {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            stable_after: Duration::from_secs(10),
            ..AgentConfig::new(master)
        }
    }

    pub fn new(master: MasterAddress) -> AgentConfig {
        AgentConfig {
            master,
            priority: 127,
            ping_interval: Duration::from_secs(15),
            response_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            stable_after: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(master: MasterAddress) -> AgentConfig {
        AgentConfig::quick(master)
    }

    #[test]
    fn backoff_grows_until_a_session_lasts() {
        let c = config(MasterAddress::Tcp("127.0.0.1:1".into()));
        let ms = Duration::from_millis;
        let mut b = Backoff::new(c.min_backoff, c.max_backoff);
        assert_eq!(pause_after(&c, &mut b, None), ms(50), "the first failure waits the minimum");
        assert_eq!(pause_after(&c, &mut b, None), ms(100), "no session: doubles");
        assert_eq!(pause_after(&c, &mut b, Some(ms(3))), ms(200), "a session closed at once: doubles");
        assert_eq!(pause_after(&c, &mut b, Some(Duration::from_secs(9))), ms(400), "doubles to the cap");
        assert_eq!(pause_after(&c, &mut b, Some(Duration::from_secs(9))), ms(400), "capped");
        assert_eq!(pause_after(&c, &mut b, Some(Duration::from_secs(10))), ms(50), "a lasting session: at once");
    }

    #[test]
    fn master_addresses_parse_in_every_form() {
        let p = |s: &str| s.parse::<MasterAddress>();
        assert_eq!(p("tcp:127.0.0.1:705"), Ok(MasterAddress::Tcp("127.0.0.1:705".into())));
        assert_eq!(p("tcp:[::1]:705"), Ok(MasterAddress::Tcp("[::1]:705".into())));
        assert_eq!(p("unix:/run/agentx"), Ok(MasterAddress::Unix("/run/agentx".into())));
        assert_eq!(p("/var/agentx/master"), Ok(MasterAddress::Unix("/var/agentx/master".into())));
        for bad in ["tcp:localhost", "tcp::705", "relative/path", ""] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
