//! The HTTP side: `/metrics`, `/healthz`, `/readyz`, served by hyper on a
//! thread with a one-thread runtime of its own.
//!
//! Why a thread of its own: the daemon's loop and the copy share one
//! current-thread runtime; a scrape must not wait behind a busy copy, and a
//! client that floods the endpoint must not take turns from the copy. The
//! AgentX subagent is placed the same way for the same reason.
//!
//! The limits a hostile client meets: request heads larger than
//! [`HttpLimits::max_head`] are answered 431 and the connection closed (by
//! hyper); a head not complete within [`HttpLimits::head_timeout`] closes
//! the connection; no connection lives longer than
//! [`HttpLimits::connection_lifetime`]; at most [`HttpLimits::connections`]
//! are open at once, and a new one past that closes the oldest (a scrape
//! is answered in a millisecond: the oldest connection is the one most
//! likely held open by a client that sends nothing, as the control socket
//! does with its longest-idle client). Only GET and HEAD are answered;
//! request bodies are never read.
// Reads network input: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::exposition::{negotiate, Exposition};
use crate::stats::{Readiness, Stats};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// What a client may hold or send.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once.
    pub connections: usize,
    /// Bytes of a request's line and headers.
    pub max_head: usize,
    /// Time to send a whole request head.
    pub head_timeout: Duration,
    /// Time a connection may stay open, however busy.
    pub connection_lifetime: Duration,
    /// How long the daemon's loop may go without turning before
    /// `/healthz` says it is stuck.
    pub liveness: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections: 32,
            // A scrape's head is a few hundred bytes.
            max_head: 16 * 1024,
            head_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
            liveness: Duration::from_secs(30),
        }
    }
}

/// One answer, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: String) -> Answer {
        Answer { status, content_type: "text/plain; charset=utf-8", body }
    }
}

/// What `/healthz` answers, from how long ago the daemon's loop turned.
pub fn healthz(since_heartbeat: Duration, limit: Duration) -> Answer {
    if since_heartbeat <= limit {
        Answer::text(200, "ok\n".into())
    } else {
        Answer::text(
            503,
            format!(
                "the daemon's loop has not turned for {} s (limit {} s)\n",
                since_heartbeat.as_secs(),
                limit.as_secs()
            ),
        )
    }
}

/// What `/readyz` answers: 200 only when in sync with the settings.
pub fn readyz(readiness: Readiness, servers: u64, new_servers: u64) -> Answer {
    let lists = format!("servers={servers} new_servers={new_servers}");
    match readiness {
        Readiness::Ready => Answer::text(200, format!("ready: in sync with the cluster settings ({lists})\n")),
        other => Answer::text(503, format!("not ready: {} ({lists})\n", other.reason())),
    }
}

/// Routes one request: pure but for the scrape itself.
pub fn answer(
    method: &Method,
    path: &str,
    accept: Option<&str>,
    stats: &Stats,
    exposition: &Exposition,
    limits: &HttpLimits,
) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return Answer::text(405, "only GET and HEAD\n".into());
    }
    match path {
        "/metrics" => {
            let format = negotiate(accept);
            Answer { status: 200, content_type: format.content_type(), body: exposition.render(format) }
        }
        "/healthz" => healthz(stats.node.since_heartbeat(), limits.liveness),
        "/readyz" => {
            let n = &stats.node;
            use std::sync::atomic::Ordering::Relaxed;
            readyz(n.readiness(), n.servers.load(Relaxed), n.new_servers.load(Relaxed))
        }
        _ => Answer::text(404, "not found: try /metrics, /healthz or /readyz\n".into()),
    }
}

/// A running endpoint; stop it with [`MetricsServer::shutdown`].
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl MetricsServer {
    /// Serves on `listener` (already bound, so that a bad address fails
    /// the daemon's start) from a thread of its own.
    pub fn spawn(
        listener: std::net::TcpListener,
        stats: Arc<Stats>,
        limits: HttpLimits,
    ) -> std::io::Result<MetricsServer> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (stop, stopped) = watch::channel(false);
        let (finished, done) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => serve(l, stats, limits, stopped).await,
                    Err(e) => warn!("metrics endpoint not started: {e}"),
                }
            });
            let _ = finished.send(());
        })?;
        info!(address = %local_addr, "serving /metrics, /healthz and /readyz");
        Ok(MetricsServer { local_addr, stop, done })
    }

    /// Stops accepting and waits (at most 2 s) for the thread.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(2), self.done).await.is_err() {
            debug!("metrics endpoint did not stop in time");
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<Stats>,
    limits: HttpLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let exposition = Arc::new(Exposition::new(stats.clone()));
    // Open connections, oldest first: their ids and how to close them.
    let mut open: VecDeque<(u64, oneshot::Sender<()>)> = VecDeque::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<u64>();
    let mut next_id: u64 = 0;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8192))
        .max_header_size(limits.max_head)
        .keep_alive(true);
    let mut evicted: u64 = 0;
    loop {
        let (socket, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    debug!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while let Ok(id) = ended_rx.try_recv() {
            open.retain(|(open_id, _)| *open_id != id);
        }
        while open.len() >= limits.connections.max(1) {
            if let Some((_, close)) = open.pop_front() {
                let _ = close.send(());
                evicted += 1;
                if evicted.is_power_of_two() {
                    warn!(%peer, evicted, "metrics endpoint: {} connections open; closed the oldest", limits.connections);
                }
            }
        }
        let (close_tx, close_rx) = oneshot::channel::<()>();
        next_id += 1;
        let id = next_id;
        open.push_back((id, close_tx));
        let (stats, exposition, http, ended) = (stats.clone(), exposition.clone(), http.clone(), ended_tx.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                let a = answer(req.method(), req.uri().path(), accept, &stats, &exposition, &limits);
                let head = req.method() == Method::HEAD;
                async move { Ok::<_, std::convert::Infallible>(response(a, head)) }
            });
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(socket), service);
            tokio::select! {
                served = tokio::time::timeout(limits.connection_lifetime, conn) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, "metrics connection: {e}"),
                    Err(_) => debug!(%peer, "metrics connection closed after {} s", limits.connection_lifetime.as_secs()),
                },
                _ = close_rx => debug!(%peer, "metrics connection closed for a newer one"),
            }
            let _ = ended.send(id);
        });
    }
}

fn response(a: Answer, head: bool) -> Response<Full<Bytes>> {
    let body = if head { Bytes::new() } else { Bytes::from(a.body) };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_heartbeat() {
        let limit = Duration::from_secs(30);
        assert_eq!(healthz(Duration::from_secs(1), limit).status, 200);
        let stuck = healthz(Duration::from_secs(31), limit);
        assert_eq!(stuck.status, 503);
        assert_eq!(stuck.body, "the daemon's loop has not turned for 31 s (limit 30 s)\n");
    }

    #[test]
    fn ready_only_when_in_sync() {
        assert_eq!(
            readyz(Readiness::Ready, 4, 0),
            Answer::text(200, "ready: in sync with the cluster settings (servers=4 new_servers=0)\n".into())
        );
        for r in [
            Readiness::Starting,
            Readiness::Pending,
            Readiness::Resyncing,
            Readiness::Failed,
            Readiness::NotMember,
            Readiness::LocalUnreachable,
            Readiness::Stopping,
        ] {
            let a = readyz(r, 3, 4);
            assert_eq!(a.status, 503, "{r:?}");
            assert_eq!(a.body, format!("not ready: {} (servers=3 new_servers=4)\n", r.reason()));
        }
    }

    #[test]
    fn routes_and_methods() {
        let stats = Stats::new();
        let exposition = Exposition::new(stats.clone());
        let limits = HttpLimits::default();
        let get = |path: &str, accept: Option<&str>| answer(&Method::GET, path, accept, &stats, &exposition, &limits);
        assert_eq!(get("/metrics", None).content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(get("/metrics", Some("application/openmetrics-text"))
            .content_type
            .starts_with("application/openmetrics-text"));
        assert_eq!(get("/nothing", None).status, 404);
        assert_eq!(get("/readyz", None).status, 503, "starting");
        stats.node.set_readiness(Readiness::Ready);
        assert_eq!(get("/readyz", None).status, 200);
        assert_eq!(answer(&Method::POST, "/metrics", None, &stats, &exposition, &limits).status, 405);
    }
}
