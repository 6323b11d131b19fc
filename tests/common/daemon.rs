//! `astaire daemon` as a child process, with its own control socket and
//! log, for the daemon integration tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub control: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon for `local` with `settings`; `extra` are more options.
    pub fn start(local: &str, settings: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_open_files(local, settings, extra, None)
    }

    /// [`Daemon::start`] with its open files limit (soft, hard) set before
    /// it starts, as systemd's `LimitNOFILE` or `ulimit -n` would.
    pub fn start_with_open_files(local: &str, settings: &Path, extra: &[&str], limit: Option<(u64, u64)>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let control = dir.path().join("control");
        let log = dir.path().join("daemon.log");
        let mut cmd = Command::new(super::astaire_binary());
        if let Some((soft, hard)) = limit {
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            // SAFETY: between fork and exec only setrlimit runs, which is
            // async-signal-safe, on a value copied into the closure.
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        let child = cmd
            .args(["--log-level", "4", "daemon", "--local-name", local, "--cluster-settings"])
            .arg(settings)
            .arg("--control-socket")
            .arg(&control)
            // No node configuration unless the test gives one.
            .args(if extra.contains(&"--config") { &[][..] } else { &["--config", "/dev/null"][..] })
            .args(["--nice", "0", "--pd-log", "none"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start astaire daemon");
        let d = Daemon { child, control, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.status().is_none() {
            assert!(Instant::now() < deadline, "daemon did not come up: {}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("signal");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `astaire ARGS --control-socket …`, for at most `limit`.
    fn client(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new(super::astaire_binary());
        cmd.args(args).arg("--control-socket").arg(&self.control);
        let what = format!("`astaire {}` to answer on {}", args.join(" "), self.control.display());
        super::run_bounded(&mut cmd, limit, &what)
    }

    /// `astaire ARGS --control-socket …`, killed if it has not finished
    /// within `within`: its output and how long it took.
    pub fn client_within(&self, args: &[&str], within: Duration) -> (Output, Duration) {
        let mut cmd = Command::new(super::astaire_binary());
        cmd.args(args).arg("--control-socket").arg(&self.control);
        run_within(cmd, within)
    }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM for the daemon: {status}"))
    }

    /// `astaire status --json`, parsed; `None` when unreachable.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = self.client(&["status", "--json"], Duration::from_secs(15));
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// Waits until `status` reports `state` (at most 10 s).
    pub fn wait_for_state(&self, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status().is_none_or(|s| s["state"] != state) {
            assert!(Instant::now() < deadline, "never {state}: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `astaire wait-sync --timeout SECONDS`: its exit code and output.
    pub fn wait_sync(&self, timeout: u64) -> (Option<i32>, String) {
        let limit = Duration::from_secs(timeout + 15);
        let out = self.client(&["wait-sync", "--timeout", &timeout.to_string()], limit);
        (out.status.code(), super::text(&out))
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "daemon did not stop: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log().lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

/// Runs `cmd` to the end, or kills it after `within` (then its exit
/// status is the kill's): its output, and how long it ran.
pub fn run_within(mut cmd: Command, within: Duration) -> (Output, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let started = Instant::now();
    let mut child = cmd
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("run the command");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    (Output { status, stdout: std::fs::read(&out).expect("out"), stderr: std::fs::read(&err).expect("err") }, took)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
