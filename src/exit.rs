//! Exit codes, for orchestrators: the one table every command uses.

/// How `resync`, `plan`, `verify` and `daemon` end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// The resync left vbuckets behind, verify found differences, or
    /// `plan --count` could not list a source.
    Incomplete,
    /// Bad arguments, options or node configuration; the daemon could not
    /// take its control socket or pidfile; a file the OS could not read
    /// (missing, permissions, out of file descriptors). An unreadable
    /// `cluster_settings` is one of these, not invalid settings: nothing
    /// is known about its content, and an orchestrator that reads 3 would
    /// go and fix a file that may be fine.
    Usage,
    /// An invalid `cluster_settings` file: its content, or what the path
    /// leads to (not a regular file, larger than any settings file).
    BadSettings,
    /// The local memcached could not be reached.
    LocalUnreachable,
    /// Stopped by SIGINT or SIGTERM at a safe point (128 + SIGINT).
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Incomplete => 1,
            Exit::Usage => 2,
            Exit::BadSettings => 3,
            Exit::LocalUnreachable => 4,
            Exit::Interrupted => 130,
        }
    }
}

/// How `wait-sync` and `status` end: the daemon's answer, not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitExit {
    /// Nothing running or pending, and the last resync succeeded.
    Succeeded,
    /// Nothing running or pending, and the last resync failed.
    Failed,
    /// `--timeout` passed first.
    TimedOut,
    /// No daemon answered on the control socket.
    Unreachable,
}

impl WaitExit {
    pub const fn code(self) -> u8 {
        match self {
            WaitExit::Succeeded => 0,
            WaitExit::Failed => 1,
            WaitExit::TimedOut => 2,
            WaitExit::Unreachable => 3,
        }
    }
}

/// The help text's summary of both tables.
pub const SUMMARY: &str =
    "Exit codes: 0 success, 1 vbuckets failed / differences found / a source not listed, 2 usage \
(or a file that cannot be read), 3 invalid cluster_settings, 4 local memcached unreachable, 130 resync stopped by SIGINT/SIGTERM. \
wait-sync: 0 synced, 1 the last resync failed, 2 timeout, 3 no daemon.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let all =
            [Exit::Ok, Exit::Incomplete, Exit::Usage, Exit::BadSettings, Exit::LocalUnreachable, Exit::Interrupted];
        assert_eq!(all.map(Exit::code), [0, 1, 2, 3, 4, 130]);
        let wait = [WaitExit::Succeeded, WaitExit::Failed, WaitExit::TimedOut, WaitExit::Unreachable];
        assert_eq!(wait.map(WaitExit::code), [0, 1, 2, 3]);
    }
}
