//! Debian's real Prometheus server on a private loopback port and data
//! directory, scraping one target every second, and its query API.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// The Prometheus server: `ASTAIRE_TEST_PROMETHEUS`, or `prometheus` on PATH.
pub fn binary() -> String {
    std::env::var("ASTAIRE_TEST_PROMETHEUS").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "prometheus".into())
}

impl Prometheus {
    /// Starts scraping `target` (HOST:PORT, path /metrics) every second.
    pub fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: astaire\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = super::free_port_pub();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}): install Debian's prometheus (scripts/setup.sh does)", binary())
            });
        let p = Prometheus { port, child, dir };
        super::wait_until(
            Duration::from_secs(30),
            "Prometheus answering /-/ready",
            || super::http::get(&p.address(), "/-/ready", "").is_ok_and(|r| r.status == 200),
            || p.log(),
        );
        p
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// An instant query: its `data.result` array.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let q = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
        let reply = super::http::get(&self.address(), &format!("/api/v1/query?query={q}"), "")
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        let body = if reply.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            dechunk(&reply.body)
        } else {
            reply.body.clone()
        };
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {promql}: {e}: {}", reply.body));
        assert_eq!(v["status"], "success", "query {promql}: {v}");
        v["data"]["result"].clone()
    }

    /// The single value of an instant query; `None` when it has none.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        result.as_array()?.first()?["value"][1].as_str()?.parse().ok()
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
