//! What a job shows people while it runs and after it ends: the progress display, the
//! status page and the report, started and stopped around [`crate::run`].

use crate::service::Shared;
use crate::views::history;
use crate::views::http::{self, HttpServer};
use crate::views::progress::{self, Progress};
use crate::views::report::Report;
use crate::Config;
use anyhow::Context as _;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// How long the status page stays up after the job ends, so it can show the end.
const HTTP_LINGER: Duration = Duration::from_millis(1200);

/// The running views of one job.
pub struct Monitor {
    progress: Option<Progress>,
    http: Option<HttpServer>,
    report: Option<(PathBuf, File)>,
    html: Option<(PathBuf, File)>,
    summary: bool,
}

impl Monitor {
    /// Starts what `config` asks for. The report files are created now and the status
    /// page bound now, so that a bad path or address fails before any work is done.
    pub async fn start(config: &Config, shared: &Arc<Shared>) -> anyhow::Result<Monitor> {
        let create = |path: &Option<PathBuf>, what: &str| -> anyhow::Result<_> {
            match path {
                Some(path) => {
                    let file = File::create(path)
                        .with_context(|| format!("cannot create {what} {}", path.display()))?;
                    Ok(Some((path.clone(), file)))
                }
                None => Ok(None),
            }
        };
        let report = create(&config.report_file, "report file")?;
        let html = create(&config.report_html, "HTML report file")?;
        let http = match &config.http {
            Some(addr) => {
                let server = http::serve(addr, shared.clone(), &config.token)
                    .await
                    .with_context(|| format!("cannot serve the status page on {addr}"))?;
                info!("status page at {}", server.login_url());
                Some(server)
            }
            None => None,
        };
        let progress = config.progress.then(|| Progress::start(shared.clone()));
        Ok(Monitor {
            progress,
            http,
            report,
            html,
            summary: config.progress,
        })
    }

    /// Stops the views and returns the report; prints it and writes the JSON and HTML
    /// files if asked to (the HTML rendered from that JSON, as `mr report` renders it).
    /// A report file that cannot be written is logged, not fatal: the job's output is
    /// already final.
    pub async fn finish(self, shared: &Shared) -> Report {
        if let Some(p) = self.progress {
            p.finish().await;
        }
        let events = shared.event_counts();
        let report = Report::of(&shared.lock(), events, Instant::now());
        if self.summary {
            progress::eprint(format!("{report}\n").as_bytes());
        }
        match (self.report, self.html) {
            // JSON only: straight into the file, as it is written.
            (Some((path, file)), None) => {
                let mut out = std::io::BufWriter::new(file);
                if let Err(e) = report.write_json(&mut out).and_then(|()| out.flush()) {
                    tracing::error!("cannot write report file {}: {e}", path.display());
                }
            }
            // The page is rendered from the very JSON the report file gets.
            (json_file, Some((path, mut file))) => {
                let json = report.to_json();
                if let Some((path, mut f)) = json_file {
                    if let Err(e) = f.write_all(json.as_bytes()) {
                        tracing::error!("cannot write report file {}: {e}", path.display());
                    }
                }
                let written = history::render(&json)
                    .map_err(|e| e.to_string())
                    .and_then(|html| file.write_all(html.as_bytes()).map_err(|e| e.to_string()));
                match written {
                    Ok(()) => info!("job history at {}", path.display()),
                    Err(e) => tracing::error!("cannot write HTML report {}: {e}", path.display()),
                }
            }
            (None, None) => {}
        }
        if let Some(http) = self.http {
            tokio::time::sleep(HTTP_LINGER).await;
            http.stop().await;
        }
        report
    }
}
