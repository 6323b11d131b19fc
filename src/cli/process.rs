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
/// symlink or a FIFO named like the next log file, which this process
/// (root, for an old init script) would then write through or wait on. So
/// only the daemon's user (or root) may write there
/// ([`astaire::log_files::directory_refusal`]); it is created 0750 when
/// missing.
fn private_log_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
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
    // SAFETY: geteuid only reads this process's credentials.
    let euid = unsafe { libc::geteuid() };
    match astaire::log_files::directory_refusal(meta.uid(), meta.mode(), euid) {
        Some(why) => Err(format!("log directory {shown}: {why}")),
        None => Ok(()),
    }
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
    let fail = |why: String| format!("pidfile {}: {why}", path.display());
    // Only a regular file, never through a symlink, never waiting on a
    // FIFO (the daemon may run as root). 0640 after the umask: written by
    // us only, read by root's tools and the service's group.
    let file =
        astaire::files::open_own(path, astaire::files::Writing::InPlace, 0o640).map_err(|e| format!("pidfile: {e}"))?;
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
/// The directory and both files are checked before detaching, so that a
/// refusal still reaches the terminal that started us.
pub fn detach(log_dir: Option<&Path>) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let mut outputs = Vec::new();
    if let Some(dir) = log_dir {
        private_log_dir(dir)?;
        for (name, fd) in [("astaire_out.log", libc::STDOUT_FILENO), ("astaire_err.log", libc::STDERR_FILENO)] {
            let file = astaire::files::open_own(&dir.join(name), astaire::files::Writing::Append, 0o640)
                .map_err(|e| e.to_string())?;
            outputs.push((file, fd));
        }
    }
    nix::unistd::daemon(true, false).map_err(|e| format!("cannot detach: {e}"))?;
    for (file, fd) in outputs {
        nix::unistd::dup2(file.as_raw_fd(), fd).map_err(|e| format!("cannot send output to its log: {e}"))?;
    }
    Ok(())
}

/// The number of cores the CPU limit is a share of.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
