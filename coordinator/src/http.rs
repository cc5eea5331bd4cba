//! The status page: `/` is a small self-refreshing HTML page, `/api/status` the JSON
//! [`Status`] it shows. Served with axum on the coordinator's runtime during the job.

use crate::service::Shared;
use crate::status::Status;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The page; it fetches `/api/status` every second.
const PAGE: &str = include_str!("status.html");

/// How long [`HttpServer::stop`] waits for open requests.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// A running status server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds `addr` (`HOST:PORT`; port 0 picks one) and serves the status of the job in
/// `shared` until [`HttpServer::stop`].
pub async fn serve(addr: &str, shared: Arc<Shared>) -> std::io::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .with_state(shared);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "status page server failed");
        }
    });
    Ok(HttpServer { addr, stop, task })
}

impl HttpServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish briefly, then closes everything.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let status = Status::of(&shared.lock(), Instant::now());
    ([(header::CACHE_CONTROL, "no-store")], Json(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::sample_job;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A minimal HTTP/1.1 GET: returns the status line and the body.
    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }

    #[tokio::test]
    async fn serves_the_status_json_and_the_page() {
        let (job, _) = sample_job();
        let shared = Shared::new(job, Duration::from_millis(500));
        let server = serve("127.0.0.1:0", shared.clone()).await.unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);

        let (line, body) = get(addr, "/api/status").await;
        assert_eq!(line, "HTTP/1.1 200 OK");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["state"], "running");
        assert_eq!(v["counts"]["maps"], 2);
        assert_eq!(v["counts"]["maps_done"], 1);
        assert_eq!(v["tasks"].as_array().unwrap().len(), 3);
        assert_eq!(v["workers"][1]["current_task"], "map-1");
        assert!(v["workers"][0]["heartbeat_age_secs"].as_f64().unwrap() >= 0.0);

        // The JSON follows the job.
        shared.lock().workers.register(
            mr::rpc::WorkerInfo {
                host: "other".into(),
                pid: 33,
                data_addr: None,
            },
            Instant::now(),
        );
        let (_, body) = get(addr, "/api/status").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["workers"][2]["host"], "other");
        assert_eq!(v["counts"]["workers"], 3);

        let (line, body) = get(addr, "/").await;
        assert_eq!(line, "HTTP/1.1 200 OK");
        assert!(body.contains("/api/status"), "the page polls the JSON");
        let (line, _) = get(addr, "/nope").await;
        assert_eq!(line, "HTTP/1.1 404 Not Found");

        server.stop().await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "stopped"
        );
    }
}
