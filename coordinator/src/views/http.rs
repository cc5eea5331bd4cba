//! The status page: `/` is a small self-refreshing HTML page; `/api/status` the JSON
//! [`Status`] it shows (the job's summary and one page of its tasks, filtered by the
//! query: see docs/status-page.md); `/api/timeline?since=N` the attempts changed since
//! change N, a bounded batch at a time, for its timeline. Served with axum on the
//! coordinator's runtime during the job.
//!
//! Cost under the job's lock per request: O(page × log M + workers) for the status,
//! O(batch) for the timeline; the JSON is written after the lock is released.
//!
//! Who may look: on a loopback address, anyone on this machine (as before). On any other
//! address the job must have a token, and a browser gets in only through a one-time
//! login link printed at start (`/login?code=…`), which trades the code for a session
//! cookie. The token itself is never asked for over HTTP: this page is not encrypted,
//! and the token would travel in the clear; a code used once, and a cookie that only
//! shows the page, are worth little to an eavesdropper.

use crate::service::Shared;
use crate::views::attempts::Changes;
use crate::views::listing::TaskQuery;
use crate::views::status::Status;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::{Json, Router};
use mr::auth::Token;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The page; it fetches `/api/status` every second, and the timeline's changes.
const PAGE: &str = include_str!("status.html");

/// Where the page takes the timeline's drawing code ([`crate::views::timeline::SCRIPT`],
/// shared with the job's HTML history).
const TIMELINE_JS_MARK: &str = "/*TIMELINE_JS*/";

/// The page with the timeline code in it, made once.
fn page_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| PAGE.replace(TIMELINE_JS_MARK, crate::views::timeline::SCRIPT))
}

/// The most attempts one `/api/timeline` answer carries (about 100 bytes each): a page
/// catching up on a long job asks again at once while `more` is set.
pub const TIMELINE_BATCH: usize = 5000;

/// How long [`HttpServer::stop`] waits for open requests.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// The session cookie's name.
const COOKIE: &str = "mr_session";

/// A running status server.
pub struct HttpServer {
    addr: SocketAddr,
    login: Option<String>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Who may see the page.
struct Page {
    shared: Arc<Shared>,
    /// None on loopback: anyone on this machine. Else the login code not yet used, or
    /// the one session it opened (one code, used once: one session).
    access: Option<Mutex<Login>>,
}

enum Login {
    /// The code printed at start, not used yet.
    Pending(String),
    /// The session id its use gave out.
    Session(String),
}

/// Binds `addr` (`HOST:PORT`, or a bare port for 127.0.0.1; port 0 picks one) and serves
/// the status of the job in `shared` until [`HttpServer::stop`]. Off loopback it needs
/// `token` set, and makes a one-time login link ([`HttpServer::login_url`]).
pub async fn serve(addr: &str, shared: Arc<Shared>, token: &Token) -> std::io::Result<HttpServer> {
    let addr = if addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{addr}")
    } else {
        addr.to_string()
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    let login = if addr.ip().is_loopback() {
        None
    } else if !token.is_set() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "off loopback the status page needs the job's token (--token-file or MR_TOKEN); or serve it on 127.0.0.1 and use an SSH tunnel",
        ));
    } else {
        Some(mr::auth::random_hex())
    };
    let page = Arc::new(Page {
        shared,
        access: login
            .as_ref()
            .map(|code| Mutex::new(Login::Pending(code.clone()))),
    });
    let app = Router::new()
        .route("/", get(page_html))
        .route("/api/status", get(status))
        .route("/api/timeline", get(timeline))
        .route("/login", get(log_in))
        .layer(axum::middleware::from_fn_with_state(page.clone(), gate))
        .with_state(page);
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
    Ok(HttpServer {
        addr,
        login,
        stop,
        task,
    })
}

/// Lets a request through if the page is open to it: on loopback always; else with a
/// session cookie, or to `/login` (which checks its code itself).
async fn gate(
    State(page): State<Arc<Page>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(access) = &page.access else {
        return next.run(req).await;
    };
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    let session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|sid| {
            matches!(&*access.lock().unwrap_or_else(|p| p.into_inner()),
                Login::Session(open) if mr::auth::same_secret(open.as_bytes(), sid.as_bytes()))
        });
    if session {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "log in with the one-time link the coordinator printed at start\n",
        )
            .into_response()
    }
}

/// Trades the one-time code for a session cookie.
async fn log_in(State(page): State<Arc<Page>>, uri: Uri) -> axum::response::Response {
    let Some(access) = &page.access else {
        return Redirect::to("/").into_response();
    };
    let given = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap_or("");
    let mut a = access.lock().unwrap_or_else(|p| p.into_inner());
    let valid = matches!(&*a,
        Login::Pending(code) if mr::auth::same_secret(code.as_bytes(), given.as_bytes()));
    if !valid {
        return (
            StatusCode::FORBIDDEN,
            "this login link is wrong or was already used\n",
        )
            .into_response();
    }
    let sid = mr::auth::random_hex();
    *a = Login::Session(sid.clone());
    let cookie = format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

impl HttpServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to open in a browser: the page, or off loopback its one-time login link.
    pub fn login_url(&self) -> String {
        match &self.login {
            None => format!("http://{}/", self.addr),
            Some(code) => format!("http://{}/login?code={code}", self.addr),
        }
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

async fn page_html() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(page_text()))
}

/// A query the page cannot use: 400, with what is accepted.
fn bad_query(why: String) -> axum::response::Response {
    let body = serde_json::json!({ "error": why });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn status(State(page): State<Arc<Page>>, uri: Uri) -> axum::response::Response {
    let query = match TaskQuery::parse(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(why) => return bad_query(why),
    };
    // The guard lives for this statement only: the JSON is written without the lock.
    let status = Status::of(&page.shared.lock(), Instant::now(), &query);
    ([(header::CACHE_CONTROL, "no-store")], Json(status)).into_response()
}

/// The timeline's changes: the attempts that changed after change `since` (0: from
/// the start), at most `limit` (and [`TIMELINE_BATCH`]), with the job's elapsed time.
#[derive(serde::Serialize)]
struct TimelineReply {
    /// Seconds since the job started (frozen at its end): where the running bars end.
    elapsed_secs: f64,
    #[serde(flatten)]
    changes: Changes,
}

async fn timeline(State(page): State<Arc<Page>>, uri: Uri) -> axum::response::Response {
    let mut since = 0u64;
    let mut limit = TIMELINE_BATCH;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => match value.parse() {
                Ok(n) => since = n,
                Err(_) => return bad_query(format!("since={value:?}: expected a whole number")),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) => limit = n.clamp(1, TIMELINE_BATCH),
                Err(_) => return bad_query(format!("limit={value:?}: expected a whole number")),
            },
            "_" => {}
            _ => {
                return bad_query(format!(
                    "unknown parameter {key:?}: expected since or limit"
                ))
            }
        }
    }
    let reply = {
        let job = page.shared.lock();
        TimelineReply {
            elapsed_secs: job.timeline.elapsed(Instant::now()).as_secs_f64(),
            changes: job.attempts.since(since, limit),
        }
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(reply)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::status::tests::sample_job;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A minimal HTTP/1.1 GET: returns the status line and the body.
    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let (line, _, body) = get_with(addr, path, "").await;
        (line, body)
    }

    /// A GET with extra header lines: the status line, the headers and the body.
    async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (String, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        let (line, rest) = head.split_once("\r\n").unwrap_or((head, ""));
        (line.to_string(), rest.to_string(), body.to_string())
    }

    #[tokio::test]
    async fn off_loopback_the_page_needs_the_token_and_a_one_time_login() {
        let (job, _) = sample_job();
        let shared = Shared::new(job, Duration::from_millis(500));
        let e = serve("0.0.0.0:0", shared.clone(), &Token::none())
            .await
            .err()
            .expect("no token, not loopback");
        assert!(e.to_string().contains("needs the job's token"), "{e}");

        let server = serve("0.0.0.0:0", shared.clone(), &Token::new("t"))
            .await
            .unwrap();
        let url = server.login_url();
        assert!(!url.contains("t@") && url.contains("/login?code="), "{url}");
        let code = url.split("code=").nth(1).unwrap().to_string();
        let addr: SocketAddr = ([127, 0, 0, 1], server.local_addr().port()).into();
        // Without a session: nothing but the refusal.
        for path in ["/", "/api/status", "/api/timeline?since=0"] {
            let (line, body) = get(addr, path).await;
            assert_eq!(line, "HTTP/1.1 401 Unauthorized", "{path}");
            assert!(!body.contains("running"), "{body}");
        }
        let (line, _) = get(addr, "/login?code=0000").await;
        assert_eq!(line, "HTTP/1.1 403 Forbidden");
        // The code, once: a session cookie.
        let (line, headers, _) = get_with(addr, &format!("/login?code={code}"), "").await;
        assert_eq!(line, "HTTP/1.1 303 See Other");
        let cookie = headers
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (line, _) = get(addr, &format!("/login?code={code}")).await;
        assert_eq!(line, "HTTP/1.1 403 Forbidden", "the code works once");
        let (line, _, body) = get_with(addr, "/api/status", &format!("Cookie: {cookie}\r\n")).await;
        assert_eq!(line, "HTTP/1.1 200 OK");
        assert!(body.contains("\"running\""), "{body}");
        let (line, _, _) = get_with(addr, "/api/status", "Cookie: mr_session=forged\r\n").await;
        assert_eq!(line, "HTTP/1.1 401 Unauthorized");
        server.stop().await;
    }

    #[tokio::test]
    async fn serves_the_status_json_and_the_page() {
        let (job, _) = sample_job();
        let shared = Shared::new(job, Duration::from_millis(500));
        let server = serve("127.0.0.1:0", shared.clone(), &Token::none())
            .await
            .unwrap();
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

    #[tokio::test]
    async fn the_status_takes_a_page_and_filters_and_the_timeline_comes_in_changes() {
        let (job, _) = sample_job();
        let shared = Shared::new(job, Duration::from_millis(500));
        let server = serve("127.0.0.1:0", shared.clone(), &Token::none())
            .await
            .unwrap();
        let addr = server.local_addr();
        let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();

        let (line, body) = get(addr, "/api/status?state=done&kind=map&per_page=10").await;
        assert_eq!(line, "HTTP/1.1 200 OK");
        let v = json(&body);
        let ids: Vec<&str> = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        assert_eq!(ids, ["map-0"]);
        assert_eq!(
            (v["page"]["matched"].as_u64(), v["page"]["total"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(
            v["workers"].as_array().unwrap().len(),
            2,
            "the summary with any page"
        );
        let (line, body) = get(addr, "/api/status?state=stuck").await;
        assert_eq!(line, "HTTP/1.1 400 Bad Request");
        assert!(json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("idle, running, done or failed"));

        // From the start: both attempts (map-0's changed twice: once).
        let (line, body) = get(addr, "/api/timeline?since=0").await;
        assert_eq!(line, "HTTP/1.1 200 OK");
        let t = json(&body);
        assert_eq!(
            (t["seq"].as_u64(), t["more"].as_bool()),
            (Some(3), Some(false))
        );
        let attempts = t["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            (attempts[0]["id"].as_u64(), attempts[0]["outcome"].as_str()),
            (Some(0), Some("done"))
        );
        assert_eq!(attempts[1]["end"], serde_json::Value::Null, "map-1 runs");
        // A batch at a time, then nothing new.
        let (_, body) = get(addr, "/api/timeline?since=0&limit=1").await;
        let t = json(&body);
        assert_eq!(
            (t["seq"].as_u64(), t["more"].as_bool()),
            (Some(1), Some(true))
        );
        let (_, body) = get(addr, "/api/timeline?since=3").await;
        assert_eq!(json(&body)["attempts"].as_array().unwrap().len(), 0);
        let (line, _) = get(addr, "/api/timeline?since=soon").await;
        assert_eq!(line, "HTTP/1.1 400 Bad Request");

        // The page has the timeline's code in it, and asks for both.
        let (_, page) = get(addr, "/").await;
        assert!(page.contains("function mrTimeline(root)") && !page.contains("/*TIMELINE_JS*/"));
        assert!(page.contains("/api/timeline?since=") && page.contains("/api/status?"));
        server.stop().await;
    }
}
