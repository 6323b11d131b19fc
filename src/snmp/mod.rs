//! SNMP: the Astaire MIB served over AgentX. Reads [`crate::stats`] only;
//! knows nothing of memcached.

pub mod agentx;
pub mod alarm_agent;
pub mod inform;
pub mod mib;
pub mod reporter;
pub mod uptime;
pub mod zmtp;
