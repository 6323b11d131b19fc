//! The process around a command: file modes, logging, the runtime, signals,
//! and for the daemon the pidfile, nice and detaching.

use astaire::exit::Exit;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Files and directories we create are never world-readable or
/// group-writable, whatever umask we were started with (a service
/// manager's, an operator's 000): log files 0640, directories 0750.
pub fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
}

/// One thread runs every task: the copy pipeline is I/O bound and its stages
/// hand batches to each other, so cross-thread wake-ups of a work-stealing
/// runtime cost more than they give (measured: 35-45% less CPU, 25% less
/// wall time for the 1,000,000-key benchmark). The AgentX subagent has its
/// own thread.
/// Runs `work` (which gives the exit code) on that runtime.
pub fn with_runtime(work: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            super::output::error(format!("cannot start the runtime: {e}"));
            Exit::Usage.code()
        }
    }
}

/// A log directory that others can write to would let them plant a
/// symlink named like the next log file, which this process (root, for the
/// init script) would then write through. So it must not be writable by
/// other users; it is created 0750 when missing.
fn private_log_dir(dir: &Path) -> Result<(), String> {
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

/// Logs to stderr, or when a directory is given to Clearwater's hourly
/// files there (`astaire_YYYYMMDDTHH0000Z.txt`, `astaire_current.txt`,
/// trimmed to `max_directory_size`). `ASTAIRE_LOG` (an `EnvFilter`)
/// overrides the level.
pub fn init_logging(
    level: u8,
    dir: Option<&Path>,
    max_directory_size: u64,
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
            let files = astaire::log_files::HourlyFiles::new(dir, max_directory_size);
            let (writer, guard) = tracing_appender::non_blocking(files);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(false)
                .event_format(astaire::log_files::ClearwaterFormat)
                .init();
            super::output::log_goes_to_files();
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

/// SIGINT and SIGTERM set the returned flag, so the copy stops at its next
/// safe point (the alarm cleared, the AgentX session closed); a second one
/// exits at once with 130.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, Exit::Interrupted.code().into(), stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    Ok(stop)
}

/// Creates `path`, takes an exclusive lock on it and writes our pid. The
/// lock is held as long as the returned file lives.
pub fn lock_pidfile(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |why: String| format!("pidfile {}: {why}", path.display());
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
            Some(libc::ELOOP) => fail("is a symlink; refusing to write through it".to_owned()),
            _ => fail(e.to_string()),
        })?;
    let mut locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| fail(format!("already locked by another process ({e})")))?;
    locked.set_len(0).map_err(|e| fail(e.to_string()))?;
    writeln!(locked, "{}", std::process::id()).map_err(|e| fail(e.to_string()))?;
    Ok(locked)
}

/// Raises the soft limit on open files to the hard one (systemd's default
/// soft limit is 1024; the unit's `LimitNOFILE` sets the hard one), so the
/// copy has room beside the control clients. Returns the soft limit now in
/// force; a failure is logged and the limit as it was is returned.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!("cannot read the open files limit: {e}");
            return 1024;
        }
    };
    // An unlimited hard limit is not a soft one the kernel takes (it caps
    // descriptors at fs.nr_open, 1048576 by default).
    let target = hard.min(1 << 20);
    if soft >= target {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!("open files limit raised from {soft} to {target}");
            target
        }
        Err(e) => {
            tracing::warn!("cannot raise the open files limit from {soft} to {target}: {e}");
            soft
        }
    }
}

/// Sets this process's scheduling priority; a failure is only worth a word.
pub fn set_nice(nice: i32) {
    // SAFETY: setpriority only changes this process's scheduling priority.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        eprintln!("astaire: cannot set nice {nice}: {}", std::io::Error::last_os_error());
    }
}

/// Detaches from the terminal (the init script's `--daemon`). With a log
/// directory, what would still reach stdout and stderr (a panic, say) goes
/// to `astaire_out.log` and `astaire_err.log` there, as on a Clearwater node.
pub fn detach(log_dir: Option<&Path>) -> Result<(), String> {
    nix::unistd::daemon(true, false).map_err(|e| format!("cannot detach: {e}"))?;
    let Some(dir) = log_dir else { return Ok(()) };
    private_log_dir(dir)?;
    for (name, fd) in [("astaire_out.log", libc::STDOUT_FILENO), ("astaire_err.log", libc::STDERR_FILENO)] {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        nix::unistd::dup2(file.as_raw_fd(), fd).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The number of cores the CPU limit is a share of.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
