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
        let dir = tempfile::tempdir().expect("tempdir");
        let control = dir.path().join("control");
        let log = dir.path().join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_astaire"))
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_astaire"));
        cmd.args(args).arg("--control-socket").arg(&self.control);
        let what = format!("`astaire {}` to answer on {}", args.join(" "), self.control.display());
        super::run_bounded(&mut cmd, limit, &what)
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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
