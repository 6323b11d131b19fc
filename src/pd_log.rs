//! Problem-determination logs: the daemon's major events, to syslog as a
//! Clearwater node's tooling reads them (facility LOCAL7, ident `astaire`
//! with the pid, `<id> - Description: … @@Cause: … @@Effect: … @@Action: …`,
//! at most 1 KiB). Ids 7001-7007 are the original Astaire's; 7008-7011 are
//! ours, for events it had no record for. The records are pure
//! ([`record`]); [`PdLog`] only sends them.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where syslog listens on Linux.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility LOCAL7.
const LOCAL7: u8 = 23;
/// The longest record, as cpp-common's pdlog truncates.
const MAX_RECORD: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Err = 3,
    Warning = 4,
    Info = 6,
}

/// A major event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdEvent {
    /// 7001: the daemon cannot start with its options or configuration.
    BadConfiguration(String),
    /// 7002.
    Started,
    /// 7003: stopped by a termination signal.
    Ended,
    /// 7005: vbuckets left behind by a resync.
    ResyncIncomplete { vbuckets: usize },
    /// 7006: a resync with work started.
    ResyncStarted { pairs: u64 },
    /// 7007: that resync ended.
    ResyncEnded,
    /// 7008: `cluster_settings` is invalid; nothing changed.
    InvalidClusterSettings(String),
    /// 7011: the OS could not read `cluster_settings` (missing, permissions,
    /// out of file descriptors); nothing changed.
    SettingsUnreadable { file: String, error: String },
    /// 7009: the local memcached cannot be reached.
    LocalUnreachable(String),
    /// 7010: a source failed during a resync.
    SourceFailed { source: String, why: String },
}

/// The id, severity and text of `event`.
pub fn record(event: &PdEvent) -> (u16, Severity, String) {
    use PdEvent::*;
    let (id, severity, description, cause, effect, action): (u16, Severity, String, &str, &str, &str) = match event {
        BadConfiguration(why) => (
            7001,
            Severity::Err,
            format!("Fatal - Astaire cannot start: {why}."),
            "The options or the configuration in /etc/clearwater are invalid.",
            "Astaire is not running, and is restarted until the configuration is fixed.",
            "Correct the configuration named above.",
        ),
        Started => {
            (7002, Severity::Info, "Astaire started.".into(), "The application is starting.", "Normal.", "None.")
        }
        Ended => (
            7003,
            Severity::Err,
            "Astaire ended - termination signal received.".into(),
            "Astaire was asked to stop.",
            "Astaire is no longer resynchronising memcached data.",
            "Restart Astaire if this was not expected.",
        ),
        ResyncIncomplete { vbuckets } => (
            7005,
            Severity::Err,
            format!(
                "Astaire failed to synchronise some data: {vbuckets} vbuckets could not be pulled from any source."
            ),
            "Every source of those vbuckets failed or could not be reached.",
            "Finishing the resize now risks losing data or redundancy.",
            "(1). Check that every memcached in cluster_settings is running and reachable. \
             (2). Run 'service astaire reload' to try again before finishing the resize.",
        ),
        ResyncStarted { pairs } => (
            7006,
            Severity::Info,
            format!("Astaire has started a resynchronisation ({pairs} vbucket-source pairs)."),
            "The cluster is resizing, the local memcached restarted, or a resync was asked for.",
            "Data is being moved to this node.",
            "Wait for the resynchronisation to finish before continuing a resize.",
        ),
        ResyncEnded => (
            7007,
            Severity::Info,
            "Astaire has finished a resynchronisation.".into(),
            "The resynchronisation ended.",
            "This node holds its data, unless 7005 was logged just before.",
            "Continue the resize once every node has finished.",
        ),
        InvalidClusterSettings(why) => (
            7008,
            Severity::Err,
            format!("Astaire found an invalid cluster_settings: {why}."),
            "The cluster_settings file is invalid.",
            "Nothing changed: Astaire keeps the view it had.",
            "Correct the file named above, then run 'service astaire reload'.",
        ),
        SettingsUnreadable { file, error } => (
            7011,
            Severity::Err,
            format!("Astaire cannot read {file}: {error}."),
            "The system refused to read the cluster settings: the file is missing or unreadable by Astaire's user, \
             or Astaire has run out of file descriptors.",
            "Nothing changed: Astaire keeps the view it had (at start, Astaire does not start).",
            "Correct what the error names, then run 'service astaire reload'.",
        ),
        LocalUnreachable(why) => (
            7009,
            Severity::Err,
            format!("Astaire cannot reach the local memcached: {why}."),
            "The local memcached is not running or not listening where local_ip says.",
            "No data can be resynchronised to this node; Astaire retries every 10 s.",
            "Start the local memcached, or correct local_ip.",
        ),
        SourceFailed { source, why } => (
            7010,
            Severity::Warning,
            format!("Astaire could not read from memcached {source}: {why}."),
            "The source failed or stopped answering during a resynchronisation.",
            "Its vbuckets come from their other replica when it has one.",
            "Check the memcached named above.",
        ),
    };
    let text = format!("{id} - Description: {description} @@Cause: {cause} @@Effect: {effect} @@Action: {action}");
    (id, severity, crate::memcached::proto::printable(truncate(text.as_bytes(), MAX_RECORD)))
}

fn truncate(b: &[u8], max: usize) -> &[u8] {
    b.get(..max).unwrap_or(b)
}

/// The syslog datagram for `event` from process `pid` (RFC 3164 as a
/// local syslog takes it: the receiver stamps the time).
pub fn datagram(event: &PdEvent, pid: u32) -> Vec<u8> {
    let (_, severity, text) = record(event);
    let pri = u16::from(LOCAL7) * 8 + severity as u16;
    format!("<{pri}>astaire[{pid}]: {text}").into_bytes()
}

/// Sends records to syslog; a syslog that is not there loses them quietly
/// (the trace log has the same events). The socket is made once, up front:
/// a process out of file descriptors (one of the events worth a record)
/// could not make one then.
#[derive(Debug, Clone)]
pub struct PdLog {
    socket: Option<PathBuf>,
    sender: Option<Arc<UnixDatagram>>,
}

impl PdLog {
    pub fn to(socket: &Path) -> PdLog {
        PdLog { socket: Some(socket.to_owned()), sender: UnixDatagram::unbound().ok().map(Arc::new) }
    }

    pub fn disabled() -> PdLog {
        PdLog { socket: None, sender: None }
    }

    pub fn report(&self, event: &PdEvent) {
        let Some(path) = &self.socket else { return };
        let datagram = datagram(event, std::process::id());
        let sent = match &self.sender {
            Some(sender) => sender.send_to(&datagram, path),
            None => UnixDatagram::unbound().and_then(|s| s.send_to(&datagram, path)),
        };
        if let Err(e) = sent {
            tracing::debug!("PD log to {} not sent: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_as_clearwater_s_pd_logs() {
        let d = String::from_utf8(datagram(&PdEvent::Started, 42)).unwrap();
        assert_eq!(
            d,
            "<190>astaire[42]: 7002 - Description: Astaire started. @@Cause: The application is starting. \
             @@Effect: Normal. @@Action: None."
        );
        let d = String::from_utf8(datagram(&PdEvent::ResyncIncomplete { vbuckets: 3 }, 1)).unwrap();
        assert!(
            d.starts_with("<187>astaire[1]: 7005 - Description: Astaire failed to synchronise some data: 3 vbuckets")
        );
        assert!(d.contains(" @@Action: (1). Check"), "{d}");
        let (id, severity, _) = record(&PdEvent::SourceFailed { source: "a:1".into(), why: "refused".into() });
        assert_eq!((id, severity), (7010, Severity::Warning));
        let unreadable = PdEvent::SettingsUnreadable {
            file: "/etc/clearwater/cluster_settings".into(),
            error: "Too many open files".into(),
        };
        let (id, severity, text) = record(&unreadable);
        assert_eq!((id, severity), (7011, Severity::Err));
        assert!(
            text.starts_with(
                "7011 - Description: Astaire cannot read /etc/clearwater/cluster_settings: Too many open files."
            ),
            "{text}"
        );
    }

    #[test]
    fn hostile_text_stays_one_bounded_printable_line() {
        let why = format!("line\nforged 7002 - {}", "x".repeat(5000));
        let (_, _, text) = record(&PdEvent::InvalidClusterSettings(why));
        assert!(!text.contains('\n'), "{text}");
        assert!(text.len() <= 4 * MAX_RECORD, "{}", text.len());
        assert!(text.starts_with("7008 - Description: Astaire found an invalid cluster_settings: line"));
    }
}
